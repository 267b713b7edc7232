"""CPU rehearsal of Instruct-IPT's small and paper code paths: the all-in-one training and test sets written in
their official layouts (tests/fixtures_official/allinone_data.py), a few steps, a few images, the records. The
official IPT (115M parameters) costs tens of CPU seconds per step, so the rehearsal also narrows the IPT-based
entries' widths in the spec (the code path, same functions and branches, is unchanged), as the LIPT rehearsal
does. The paper scale's CLIP text encoder is an asset: missing, the run stops in one line naming it."""
from __future__ import annotations

import pytest

from bench import runner
from bench.registry import BenchError
from bench.store import Store
from tests.fixtures_official.allinone_data import write_allinone_data_root

pytestmark = pytest.mark.slow

CAPS = {"max_steps": 2, "max_samples": 2}
NARROW = {"airnet": {"n_feats": 8, "n_groups": 1, "n_blocks": 1},
          "promptir": {"dim": 8, "num_blocks": (1, 1, 1, 1), "num_refinement_blocks": 1, "heads": (1, 1, 1, 1),
                       "prompt_dims": (8, 16, 32), "prompt_sizes": (16, 8, 4)},
          "ipt": {"n_feats": 8, "num_heads": 2, "num_layers": 1}}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_allinone_data_root(tmp_path_factory.mktemp("allinone-data"))


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """One torch and one BLAS thread for every test here (tests/conftest.py)."""


def _narrow(spec):
    if spec.impl == "instruct-ipt":
        args = {"backbone": {**spec.args["backbone"], **NARROW["ipt"]}}
    else:
        args = {**spec.args, **NARROW[spec.impl]}
    return spec.with_overrides(args=args, train={**spec.train, "crop": 48, "crops": 1})


@pytest.mark.parametrize("entry", ["instruct-ipt", "ipt", "airnet", "promptir"])
def test_small_rehearsal_trains_and_records_every_task(store_root, data_root, entry):
    (spec,) = [_narrow(s) for s in runner.plan("instruct-ipt", "small", [entry], data_root=data_root, rehearsal=CAPS)]
    out = runner.execute(spec, Store(store_root), data_root=data_root, show_progress=False, log=lambda _: None)
    result = out.result
    assert result["status"] == "complete" and result["rehearsal"]
    tasks = {(m["metric"], m["setting"].get("task"), m["setting"].get("noise_sigma")) for m in result["metrics"]}
    for t in ("deblur", "derain", "dehaze", "desnow", "average"):
        assert ("psnr_rgb", t, None) in tasks and ("ssim_rgb", t, None) in tasks
    assert {("psnr_rgb", "denoise", s) for s in (15, 25, 50)} <= tasks
    by_task = {m["setting"].get("task"): m for m in result["metrics"] if m["metric"] == "psnr_rgb"}
    assert by_task["derain"]["n"] == 2  # max_samples reached the evaluation
    assert any(m["metric"] == "psnr_gain@degraded" for m in result["metrics"])
    if entry == "instruct-ipt":
        assert result["provenance"]["selected_weights"] and result["provenance"]["instruction_decisions"] == 14


def test_paper_scale_without_the_clip_asset_stops_in_one_line(store_root, data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_ASSETS", str(tmp_path / "no-assets"))
    (spec,) = [_narrow(s) for s in runner.plan("instruct-ipt", "paper", ["instruct-ipt"], data_root=data_root,
                                               rehearsal=CAPS)]
    from bench.recipe import RunContext
    from methods.instruct_ipt.recipe import run_seed

    with pytest.raises(BenchError, match="missing asset clip-vit-b32") as err:
        run_seed(spec, 0, RunContext(handle=None, data_root=data_root, log=lambda _: None))
    assert "\n" not in str(err.value)


def test_missing_training_folder_is_named_before_training(tmp_path):
    from methods.instruct_ipt import realdata

    root = write_allinone_data_root(tmp_path / "data")
    import shutil

    shutil.rmtree(root / "dehazing" / "OTS")
    with pytest.raises(BenchError, match="reside-ots.*missing"):
        realdata.check_data(root, train=True)
