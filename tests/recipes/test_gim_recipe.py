"""The gim recipe: its plan, the two benchmark settings' data, one short seed end to end, and a CPU rehearsal of the
small/paper path on GIM-layout folders (Tp/Gt/Au, as datasets/gim.yaml declares) that the test writes."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bench import runner
from bench.registry import BenchError
from bench.sanity import run_sanity
from bench.store import Store
from methods.gim import recipe as R
from methods.manifest import PAPERS


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """One torch and one BLAS thread for every test here (tests/conftest.py)."""


def test_plan_runs_every_entry_in_both_settings_with_equal_budgets():
    specs = R.plan(None, "smoke", None)
    assert {(s.entry, s.setting["protocol"]) for s in specs} == {(e, p) for e in R.ENTRIES for p in R.SETTINGS}
    for protocol in R.SETTINGS:
        budgets = {repr(sorted(s.train.items())) for s in specs if s.setting["protocol"] == protocol}
        assert len(budgets) == 1  # same steps, batch, LR, loss weighting for method and baselines
    mapped = [m["paper"] for m in specs[0].stands_for["settings"]]
    assert mapped == [{"protocol": "mix-generator"}, {"protocol": "cross-generator"}]
    assert all(s.seeds == [0, 1, 2] for s in specs)
    assert PAPERS["gim"]["recipe"] == "methods.gim.recipe"
    with pytest.raises(BenchError, match="unknown scale"):
        R.plan(None, "huge", None)


def test_cross_generator_tests_only_on_unseen_editors():
    spec = next(s for s in R.plan(None, "smoke", None) if s.setting["protocol"] == "cross-generator")
    train, test, seen = R.smoke_data(spec)
    assert set(train.generators) == {"authentic", "splice"}
    assert set(test.generators) == {"authentic", "copy-move", "inpaint-telea", "inpaint-biharmonic"}
    assert set(seen.generators) == {"authentic", "splice"}  # the sanity floor's in-distribution images
    n = R.SMOKE["test_pairs_per_generator"]
    assert (test.labels == 1).sum() == (test.labels == 0).sum() == 3 * n
    assert (seen.labels == 1).sum() == n  # the splice images the floor is measured on
    mix = next(s for s in R.plan(None, "smoke", None) if s.setting["protocol"] == "mix-generator")
    mtrain, mtest, _ = R.smoke_data(mix)
    assert len(mtrain) == len(train)  # the same training-set size in both settings
    assert set(mtest.generators) == {"authentic", "splice", "copy-move", "inpaint-telea", "inpaint-biharmonic"}


def test_random_map_floor_by_hand():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2, :2] = True  # f = 1/4 -> F1 = 0.25 / 0.75
    masks[1, :, :2] = True   # f = 1/2 -> F1 = 0.5
    data = R.Split(np.zeros((2, 3, 4, 4), np.float32), masks, np.array([1, 1]), ["a", "a"], ["x", "y"])
    assert R.random_f1(data) == pytest.approx((1 / 3 + 0.5) / 2)


def test_lr_schedule_warms_up_linearly_then_decays_poly():
    assert [R._poly(s, 100, 0.9, warmup=4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert R._poly(4, 100, 0.9, warmup=4) == pytest.approx(0.96 ** 0.9)
    assert R._poly(50, 100, 0.9) == pytest.approx(0.5 ** 0.9)


def test_one_short_seed_records_metrics_and_sanity_floors(tmp_path):
    spec = next(s for s in R.plan(None, "smoke", None)
                if s.entry == "gimformer" and s.setting["protocol"] == "mix-generator")
    spec = spec.with_overrides(seeds=[0], train={**spec.train, "steps": 3, "tracer_steps": 2})
    out = runner.execute(spec, Store(tmp_path), show_progress=False, log=lambda _: None)
    metrics = {m["metric"]: m for m in out.result["metrics"]}
    assert set(R.METRICS) <= set(metrics)
    n = 4 * R.SMOKE["test_pairs_per_generator"]  # four editors' manipulated images and as many authentic ones
    assert metrics["pixel_f1"]["n"] == n and metrics["image_auc"]["n"] == 2 * n
    assert metrics["pixel_f1_gain@random"]["floor"]["value"] == 0.0
    assert run_sanity(out.result).status in ("passed", "did not learn")
    assert out.result["cost"]["train_steps"] == 3 and out.result["cost"]["tracer_steps"] == 2


# ---------------------------------------------------------------------------------------------------------
# rehearsal of small / paper on GIM-layout folders

def _write_split(root, rng, n_pairs: int, size: int = 40):
    for sub in ("Tp", "Gt", "Au"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_pairs):
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        mask[5:20, 8:25] = 255
        fake = image.copy()
        fake[mask > 0] = 128
        Image.fromarray(image).save(root / "Au" / f"au_{i}.png")
        Image.fromarray(fake).save(root / "Tp" / f"tp_{i}.png")
        Image.fromarray(mask).save(root / "Gt" / f"tp_{i}.png")


@pytest.fixture(scope="module")
def gim_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("gim-data")
    rng = np.random.default_rng(0)
    for rel in ("gim/mix-generator/train", "gim/mix-generator/test", "gim/cross-generator/sd/train",
                "gim/cross-generator/sd/test", "gim/cross-generator/glide/test", "gim/cross-generator/ddnm/test"):
        _write_split(root / rel, rng, 2)
    return root


TINY = {"gimformer": dict(R.ENTRIES["gimformer"][2], image_size=32), "trufor": R.ENTRIES["trufor"][2],
        "mvss-net": R.ENTRIES["mvss-net"][2], "segformer": R.ENTRIES["segformer"][2]}


@pytest.mark.slow
@pytest.mark.parametrize("scale", ["small", "paper"])
def test_rehearsal_reads_gim_folders_in_both_settings(scale, gim_root, tmp_path):
    """The real-data path: the card's folders, both settings, every entry; networks shrunk to the smoke configs and
    32 px so the rehearsal costs seconds (the code path is the one the scale runs)."""
    specs = runner.plan("gim", scale, None, data_root=gim_root, rehearsal={"max_steps": 1, "max_samples": 4})
    assert len(specs) == 8
    store = Store(tmp_path)
    for spec in specs:
        spec = spec.with_overrides(args=TINY[spec.entry], train={**spec.train, "size": 32, "batch_size": 2})
        out = runner.execute(spec, store, data_root=gim_root, show_progress=False, log=lambda _: None)
        metrics = {m["metric"]: m for m in out.result["metrics"]}
        assert out.result["status"] == "complete" and out.result["cost"]["train_steps"] == 1
        n_test = 4 if spec.setting["protocol"] == "mix-generator" else 8  # glide + ddnm, 4 images each
        assert metrics["image_acc"]["n"] == n_test


def test_missing_gim_folders_fail_with_one_line(tmp_path):
    spec = R.plan(None, "paper", None)[0]
    with pytest.raises(BenchError, match="dataset 'gim'"):
        runner.execute(spec, Store(tmp_path / "store"), data_root=tmp_path, show_progress=False, log=lambda _: None)
