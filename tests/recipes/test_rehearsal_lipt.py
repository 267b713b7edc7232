"""CPU rehearsal of LIPT's small and paper code paths (issue 15): DIV2K and the five benchmark sets written in
their official layouts (tests/fixtures_official/div2k.py), a few training steps, a few test images, the record
and the table; the paper scale also under `--nproc 2` (torchrun, gloo) through the CLI.

The rehearsal caps (RunSpec.rehearsal) cut steps and test images only. Where a LIPT network would still cost
tens of CPU seconds per step at the paper's batch (LIPT-Small, batch 16 of 48x48 LR patches: ~30 s), the test
also shrinks the batch/patch in the spec: the code path (same functions, same branches) is unchanged."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bench import runner
from bench.cli import app
from bench.store import Store
from tests.fixtures_official.div2k import write_sr_data_root

pytestmark = pytest.mark.slow

CAPS = {"max_steps": 2, "max_samples": 2}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_sr_data_root(tmp_path_factory.mktemp("sr-data"))


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """One torch and one BLAS thread for every test here (tests/conftest.py)."""


def _specs(scale, entry, sr_scale, datasets, data_root, **train):
    specs = [s for s in runner.plan("lipt", scale, [entry], data_root=data_root, rehearsal=CAPS)
             if s.setting["sr_scale"] == sr_scale and s.dataset in datasets]
    assert len(specs) == len(datasets)
    return [s.with_overrides(train={**s.train, **train}) if train else s for s in specs]


def _metrics(result):
    return {m["metric"]: m for m in result["metrics"]}


def _check_record(out, steps, n_images):
    result = out.result
    assert result["status"] == "complete"
    assert out.spec.rehearsal == CAPS and result["rehearsal"]
    metrics = _metrics(result)
    for name in ("psnr_y@matlab", "ssim_y@matlab", "psnr_gain_y@bicubic"):
        assert metrics[name]["n"] == n_images  # max_samples reached the evaluation
    assert result["cost"]["train_steps"] == steps  # max_steps reached the training config


def test_lipt_small_rehearsal_trains_evaluates_records(store_root, data_root):
    """Small scale: LIPT-Tiny x2 on Set5 then B100 (the second run reuses the first's training); DIV2K subset in
    memory (train_subset), whole-image evaluation of the first two test images, deploy() before evaluation."""
    specs = _specs("small", "lipt-tiny", 2, ["set5", "b100"], data_root, batch_size=2, lr_patch=16)
    store = Store(store_root)
    logs = []
    outs = [runner.execute(s, store, data_root=data_root, show_progress=False, log=logs.append) for s in specs]
    for out in outs:
        _check_record(out, steps=2, n_images=2)
    assert any("training 2 steps on 2 images" in line for line in logs)  # the DIV2K fixture, both images
    assert any("reusing the finished training" in line for line in logs)  # one training, several test sets
    # the real run of the same entry has another id: a rehearsal never mixes with it
    real = [s for s in runner.plan("lipt", "small", ["lipt-tiny"], data_root=data_root)
            if s.setting["sr_scale"] == 2 and s.dataset == "set5"][0]
    assert real.run_id() != specs[0].run_id()
    table = CliRunner().invoke(app, ["table", "lipt", "--all", "--format", "json"],
                               env={"BENCH_RESULTS": str(store_root)})
    assert table.exit_code == 0, table.output
    cells = json.loads(table.output)["cells"]
    ours = [c for c in cells if c.get("run_id") in {o.run_id for o in outs}]
    assert {c["dataset"] for c in ours} == {"set5", "b100"}
    assert all(c["rehearsal"] and c["paper"] is None for c in ours)  # badged rows, never beside a paper number


@pytest.mark.parametrize("entry", ["lipt-small", "swinir-light", "elan-light", "imdn"])
def test_lipt_small_rehearsal_other_entries(store_root, data_root, entry):
    """The other small-scale entries at their paper widths (SwinIR-light with its EMA), x4 on Manga109, one image
    of 16x16 LR patches per step."""
    (spec,) = _specs("small", entry, 4, ["manga109"], data_root, batch_size=1, lr_patch=16)
    out = runner.execute(spec, Store(store_root), data_root=data_root, show_progress=False, log=lambda m: None)
    _check_record(out, steps=2, n_images=2)


def test_lipt_paper_rehearsal_deploys_and_counts_720p_cost(store_root, data_root):
    """Paper scale: LIPT-Small (hr_patch branch, DataLoader workers, no preload, shared training dir, the
    720p MACs column); batch and HR patch shrunk so one step costs ~1 CPU second."""
    (spec,) = _specs("paper", "lipt-small", 3, ["urban100"], data_root, batch_size=1, hr_patch=48)
    out = runner.execute(spec, Store(store_root), data_root=data_root, show_progress=False, log=lambda m: None)
    _check_record(out, steps=2, n_images=2)
    cost = out.result["cost"]
    assert cost["gmacs_720p_lr_hw"] == [240, 427]  # ceil(720 / 3), ceil(1280 / 3)
    assert "params_m_training" in cost  # LIPT was re-parameterised before evaluation


def test_lipt_paper_rehearsal_cli_nproc2_gloo(store_root, data_root):
    """`bench reproduce lipt --scale paper --max-steps 2 --max-samples 1 --nproc 2`: torchrun with two gloo
    workers on the CPU, every paper-scale run of EDSR-baseline (x2/x3/x4 x five test sets, one shared training
    per factor), then the table."""
    env = {"BENCH_RESULTS": str(store_root)}
    cli = CliRunner()
    res = cli.invoke(app, ["reproduce", "lipt", "--scale", "paper", "--entry", "edsr-baseline", "--data-root",
                           str(data_root), "--max-steps", "2", "--max-samples", "1", "--nproc", "2",
                           "--device", "cpu"], env=env)
    assert res.exit_code == 0, res.output
    store = Store(store_root)
    specs = runner.plan("lipt", "paper", ["edsr-baseline"], data_root=data_root, world_size=2,
                        rehearsal={"max_steps": 2, "max_samples": 1})
    assert len(specs) == 15
    for spec in specs:
        result = store.read_result(store.run_dir(spec))
        assert result is not None and result["status"] == "complete", spec.dataset
        assert _metrics(result)["psnr_y@matlab"]["n"] == 1
    table = cli.invoke(app, ["table", "lipt", "--all", "--format", "md"], env=env)
    assert table.exit_code == 0 and "paper, rehearsal" in table.output  # the badge beside each of our numbers


def test_lipt_paper_without_rehearsal_names_the_missing_file(store_root, data_root, tmp_path):
    """Outside a rehearsal a missing folder is still one line naming it and where to get it."""
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(data_root, broken)
    shutil.rmtree(broken / "DIV2K" / "DIV2K_train_LR_bicubic" / "X4")
    res = CliRunner().invoke(app, ["reproduce", "lipt", "--scale", "paper", "--entry", "imdn", "--data-root",
                                   str(broken), "--device", "cpu"],
                             env={"BENCH_RESULTS": str(store_root), "COLUMNS": "1000"})
    assert res.exit_code != 0
    # raised before the first training step (the first run is x2, so its X4 check is the DIV2K split layout's)
    assert "training" not in res.output
    (line,) = [x for x in res.output.splitlines() if x.startswith("error:")]
    assert "DIV2K/DIV2K_train_LR_bicubic/X4" in line and "LR_bicubic_X{2,3,4}.zip" in line
