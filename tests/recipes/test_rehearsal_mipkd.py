"""CPU rehearsal of MiPKD's small and paper code paths: DIV2K and the five benchmark sets in their official layouts
(tests/fixtures_official/div2k.py), the official teacher checkpoints as assets in $BENCH_ASSETS (an EDSR-PyTorch
layout RCAN state dict; a SwinIR ``params_ema`` .pth with its derived buffers), a few student steps, a few test
images, the records. The paper's networks are used at full size; only batch and patch are shrunk in the spec (a
teacher forward at batch 16 of 48x48 patches costs tens of CPU seconds), which leaves the code path unchanged."""
from __future__ import annotations

import pytest
import torch

from bench import runner
from bench.registry import BenchError
from bench.store import Store
from methods.mipkd import recipe
from tests.fixtures_official.div2k import write_sr_data_root

pytestmark = pytest.mark.slow

CAPS = {"max_steps": 2, "max_samples": 2}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_sr_data_root(tmp_path_factory.mktemp("sr-data"))


@pytest.fixture(autouse=True)
def assets(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_ASSETS", str(tmp_path / "assets"))
    (tmp_path / "assets").mkdir()
    return tmp_path / "assets"


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """One torch and one BLAS thread for every test here (tests/conftest.py)."""


def _write_teacher(folder, name, file, wrap=None):
    torch.manual_seed(0)
    state = recipe.build_network(name, 4).state_dict()
    if wrap:  # the official SwinIR release: {"params_ema": ...} with the derived buffers
        state = {wrap: {**state, "layers.0.residual_group.blocks.0.attn.relative_position_index":
                        torch.zeros(64, 64, dtype=torch.long)}}
    torch.save(state, folder / file)


def _specs(scale, entry, teacher, datasets, data_root):
    specs = [s for s in runner.plan("mipkd", scale, [entry], data_root=data_root, rehearsal=CAPS)
             if s.setting["teacher"] == teacher and s.setting["sr_scale"] == 4 and s.dataset in datasets]
    assert len(specs) == len(datasets)
    return [s.with_overrides(train={**s.train, "batch_size": 2, "lr_patch": 8, "num_workers": 0}) for s in specs]


def test_small_rehearsal_rcan_pair_loads_the_teacher_and_shares_one_training(store_root, data_root, assets):
    specs = _specs("small", "mipkd", "rcan-c64g10b20", ["set5", "b100"], data_root)
    store = Store(store_root)
    with pytest.raises(BenchError, match=r"missing asset mipkd-teacher-rcan-x4"):
        runner.execute(specs[0], store, data_root=data_root, show_progress=False, log=lambda m: None)
    _write_teacher(assets, "rcan-c64g10b20", "RCAN_BIX4.pt")
    logs: list[str] = []
    outs = [runner.execute(s, store, data_root=data_root, show_progress=False, log=logs.append) for s in specs]
    for out in outs:
        result = out.result
        assert result["status"] == "complete" and result["rehearsal"]
        metrics = {m["metric"]: m for m in result["metrics"]}
        assert {m["n"] for m in metrics.values()} == {2}
        assert result["cost"]["train_steps"] == 2
        assert result["cost"]["params_m"] == pytest.approx(5.171315)  # the deployed RCAN student, mixers dropped
    assert any("reusing the finished training" in line for line in logs)


def test_paper_rehearsal_swinir_pair_reads_the_official_release_wrapper(store_root, data_root, assets):
    _write_teacher(assets, "swinir-c180s36", "001_classicalSR_DIV2K_s48w8_SwinIR-M_x4.pth", wrap="params_ema")
    (spec,) = _specs("paper", "fakd", "swinir-c180s36", ["urban100"], data_root)
    out = runner.execute(spec, Store(store_root), data_root=data_root, show_progress=False, log=lambda m: None)
    assert out.result["status"] == "complete"
    assert out.result["cost"]["params_m"] == pytest.approx(1.235439)
