"""The LIPT recipe: its plans at the three scales, the shared SR train/eval pieces, profile, and (slow) a reduced
smoke reproduction through bench.runner.execute with resume."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from baselines.manifest import BASELINES
from baselines.sr import carn, edsr_baseline, elan_light, imdn, swinir_light
from baselines.sr.train_eval import SRPatchDataset, evaluate_sr, super_resolve
from bench import papers, runner
from bench.data.smoke import photo_names
from bench.profile import count_params
from bench.recipe import RunContext
from bench.registry import BenchError
from bench.store import Store
from methods.lipt import recipe
from methods.lipt.model import build_lipt
from methods.manifest import METHODS

ENTRIES = ["lipt-tiny", "lipt-small", "swinir-light", "elan-light", "edsr-baseline", "imdn"]  # smoke
PLANNED = [*ENTRIES, "carn"]  # small and paper (CARN is not at smoke: recipe.NOT_AT_SMOKE)
FIVE = ["set5", "set14", "b100", "urban100", "manga109"]


@pytest.fixture()
def lipt_paper():
    """The manifest may not list the recipe yet: register it for this test, then restore the entry."""
    reg = papers.registries()["papers"]
    old = reg.get("lipt")
    reg.unregister("lipt")
    reg.register("lipt", "methods.lipt.recipe", **old.meta)
    yield "lipt"
    reg.unregister("lipt")
    reg.register("lipt", old.target, **old.meta)


def _ctx(store_root, spec):
    return RunContext(handle=Store(store_root).open(spec), log=lambda m: None, show_progress=False)


# ---------------------------------------------------------------------------------------------------- plans
def test_smoke_plan_has_every_entry_at_x2_and_x4_on_photos():
    specs = recipe.plan(None, "smoke", None)
    assert sorted((s.entry, s.setting["sr_scale"]) for s in specs) == sorted((e, k) for e in ENTRIES for k in (2, 4))
    assert len({s.run_id() for s in specs}) == len(specs) == 12
    for s in specs:
        assert (s.dataset, s.split, s.scale, s.seeds) == ("photos", "test", "smoke", [0])
        assert s.stands_for == {"dataset": FIVE, "metrics": {"psnr_y@matlab": "psnr_y@matlab",
                                                             "ssim_y@matlab": "ssim_y@matlab"},
                                "settings": [{"paper": {"sr_scale": 2}, "ours": {"sr_scale": 2}},
                                             {"paper": {"sr_scale": 4}, "ours": {"sr_scale": 4}}]}
        assert s.metrics == ["psnr_y@matlab", "ssim_y@matlab"] and s.sampler["self_ensemble"] is False
        assert (s.train["loss"], s.train["optimizer"], s.train["batch_size"]) == ("l1", "adam", 4)
        assert s.train["threads"] == 1 and not s.train["share_training"]
    # one budget for every entry: the same training config
    assert len({json.dumps(s.train, sort_keys=True) for s in specs}) == 1


def test_smoke_claims_match_our_x2_and_x4_records_only():
    from bench.claims import match_setting

    spec = recipe.plan(None, "smoke", None)[0]
    mappings = spec.stands_for["settings"]
    for k in (2, 4):
        assert match_setting({"sr_scale": k}, {"sr_scale": k}, mappings)[0]
        assert not match_setting({"sr_scale": 3}, {"sr_scale": k}, mappings)[0]  # no x3 run stands for x3


def test_implementations_are_the_registered_targets():
    assert METHODS["lipt"]["target"] == recipe.IMPLS["lipt"]
    for impl in ("swinir-light", "elan-light", "edsr-baseline", "imdn", "carn"):
        assert BASELINES[impl]["target"] == recipe.IMPLS[impl]


@pytest.mark.parametrize("entry, s, published, count", [
    ("lipt-small", 2, 2.33e6, None), ("lipt-small", 4, 2.81e6, None),
    ("swinir-light", 2, swinir_light.PUBLISHED_PARAMS[2], swinir_light.paper_param_count),
    ("elan-light", 4, elan_light.PUBLISHED_PARAMS[4], None),
    ("edsr-baseline", 3, edsr_baseline.PUBLISHED_PARAMS[3], None), ("imdn", 2, imdn.PUBLISHED_PARAMS[2], None),
    ("carn", 3, carn.PUBLISHED_PARAMS[3], carn.paper_param_count)])
def test_paper_plan_builds_the_published_architectures(entry, s, published, count):
    spec = next(x for x in recipe.plan(None, "paper", None) if x.entry == entry and x.setting["sr_scale"] == s)
    # LIPT's deployed architecture directly (fusing the training form is tested in tests/models/test_lipt.py)
    args = {**spec.args, "deploy": True} if spec.impl == "lipt" else spec.args
    n = (count or count_params)(recipe.build_model(spec.impl, args, s))
    assert abs(n - published) / published < 0.01, (entry, s, n)


def test_paper_plan_covers_five_sets_three_scales_with_official_schedules():
    specs = recipe.plan(None, "paper", None)
    assert len(specs) == 7 * 3 * 5
    for e in PLANNED:
        for k in (2, 3, 4):
            assert sorted(s.dataset for s in specs if s.entry == e and s.setting["sr_scale"] == k) == sorted(FIVE)
    small = next(s for s in specs if s.entry == "lipt-small")
    # config/lightx2.yml: 800 images x repeat 80 / batch 32 = 2,000 iterations per epoch, 1000 epochs, lr halved
    # at epochs 250/400/450/475/500
    assert small.train["steps"] == 2_000_000
    assert small.train["milestones"] == [500_000, 800_000, 900_000, 950_000, 1_000_000]
    assert [recipe._lr_patch(small.train, k) for k in (2, 3, 4)] == [256, 170, 128]
    swin = next(s for s in specs if s.entry == "swinir-light")
    assert (swin.train["ema_decay"], swin.train["steps"], recipe._lr_patch(swin.train, 4)) == (0.999, 500_000, 64)
    edsr = next(s for s in specs if s.entry == "edsr-baseline")
    assert (edsr.train["steps"], edsr.train["milestones"], edsr.train["lr"]) == (300_000, [200_000], 1e-4)
    # every schedule is a valid TrainConfig in fp32 (the official codes do not use mixed precision)
    for s in specs[::5]:
        cfg = recipe.train_config(s, 0, RunContext(handle=None, show_progress=False))
        assert cfg.optimizer == "adam" and cfg.precision == "fp32" and cfg.steps == s.train["steps"]


def test_one_training_is_shared_by_the_five_test_sets(tmp_path):
    specs = recipe.plan(None, "paper", None)
    dirs = {(s.entry, s.setting["sr_scale"], s.dataset): recipe.train_dir(s, 0, _ctx(tmp_path, s)) for s in specs
            if s.entry in ("lipt-small", "imdn")}
    for e in ("lipt-small", "imdn"):
        for k in (2, 3, 4):
            assert len({d for (e2, k2, _), d in dirs.items() if (e2, k2) == (e, k)}) == 1
    assert len(set(dirs.values())) == 2 * 3
    assert all(d.parent.parent.name == "_shared" for d in dirs.values())


def test_small_plan_scales_the_paper_milestones():
    specs = recipe.plan(None, "small", None)
    assert len(specs) == 7 * 2 * 5 and {s.setting["sr_scale"] for s in specs} == {2, 4}
    small = next(s for s in specs if s.entry == "lipt-small")
    assert (small.train["steps"], small.train["train_subset"]) == (2000, 100)
    assert small.train["milestones"] == [500, 800, 900, 950, 1000]  # 2M-step schedule scaled to 2,000


def test_bad_scale_and_missing_data_give_one_line_errors(tmp_path):
    with pytest.raises(BenchError, match="unknown scale"):
        recipe.plan(None, "huge", None)
    spec = next(s for s in recipe.plan(None, "small", None) if s.entry == "edsr-baseline")
    ctx = _ctx(tmp_path / "runs", spec)
    with pytest.raises(BenchError, match="no data root"):
        recipe.trained_model(spec, 0, ctx)
    ctx.data_root = tmp_path
    with pytest.raises(BenchError) as err:
        recipe.trained_model(spec, 0, ctx)
    assert "\n" not in str(err.value) and "dataset 'div2k': missing" in str(err.value)


# ------------------------------------------------------------------------------------------- SR train/eval
def test_patches_stay_aligned_through_crop_and_augmentation():
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)
    # every LR pixel is a 2x2 block of the HR image: a patch pair is aligned, whatever the crop and symmetry,
    # exactly when the HR patch is the LR patch with each pixel repeated 2x2 (one HR pixel off breaks it)
    hr = np.repeat(np.repeat(lr, 2, axis=0), 2, axis=1)
    data = SRPatchDataset([(hr, lr)], scale=2, lr_patch=8, repeat=50)
    torch.manual_seed(0)
    first = [data[i] for i in range(len(data))]
    for lr_t, hr_t in first:
        assert lr_t.shape == (3, 8, 8) and hr_t.shape == (3, 16, 16)
        assert torch.equal(hr_t, lr_t.repeat_interleave(2, -1).repeat_interleave(2, -2))
        assert 0.0 <= float(hr_t.min()) <= float(hr_t.max()) <= 1.0
    assert len({tuple(t.flatten()[:6].tolist()) for t, _ in first}) > 20  # crops and flips vary
    torch.manual_seed(0)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, (data[i] for i in range(len(data)))))


def test_self_ensemble_is_the_mean_of_the_eight_symmetries():
    torch.manual_seed(0)

    class Skewed(nn.Module):  # a conv with an asymmetric kernel: not equivariant, so the ensemble matters
        rgb_range = 255.0

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 12, 3, padding=1)

        def forward(self, x):
            return F.pixel_shuffle(self.conv(x), 2)

    model = Skewed().eval()
    lr = np.random.default_rng(1).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    expected = []
    for flip in (False, True):  # the dihedral group with numpy's own rot90/flip
        for k in range(4):
            x = np.rot90(lr[:, ::-1] if flip else lr, k)
            y = super_resolve(model, np.ascontiguousarray(x))
            y = np.rot90(y, -k)
            expected.append(y[:, ::-1] if flip else y)
    got = super_resolve(model, lr, self_ensemble=True)
    assert np.allclose(got, np.mean(expected, axis=0), atol=1e-4)
    assert not np.allclose(got, super_resolve(model, lr), atol=1e-2)


def _y_matlab(img):
    rgb = img.astype(np.float64)
    return np.floor(16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255 + 0.5)


def test_evaluation_rows_match_skimage_and_resume_from_shards(tmp_path):
    from skimage.metrics import peak_signal_noise_ratio

    class Nearest(nn.Module):
        rgb_range = 255.0
        calls = 0

        def forward(self, x):
            Nearest.calls += 1
            return F.interpolate(x, scale_factor=2, mode="nearest")

    rng = np.random.default_rng(3)
    items = [{"hr": rng.integers(0, 256, (24, 20, 3), dtype=np.uint8), "name": f"im{i}"} for i in range(3)]
    for item in items:
        item["lr"] = np.ascontiguousarray(item["hr"][::2, ::2])
    spec = recipe.plan(None, "smoke", None)[0]
    handle = Store(tmp_path).open(spec)
    out = evaluate_sr(Nearest(), items, 2, handle, 0, "toy-x2", chunk=2)
    assert [r["image"] for r in out["rows"]] == ["im0", "im1", "im2"] and out["n"] == 3
    assert len(handle.read_items(0)) == 3 and len(list((handle.dir / "items" / "0").glob("*.jsonl"))) == 2
    for item, row in zip(items, out["rows"]):
        sr = np.repeat(np.repeat(item["lr"], 2, 0), 2, 1)
        ref = peak_signal_noise_ratio(_y_matlab(item["hr"])[2:-2, 2:-2], _y_matlab(sr)[2:-2, 2:-2], data_range=255)
        assert row["psnr_y@matlab"] == pytest.approx(ref, abs=1e-9)
        # 3 -> 3 channel nearest upsampling has no MACs; the row still records the LR size
        assert row["lr_hw"] == [12, 10] and row["gmacs"] == 0
    assert out["metrics"]["psnr_y@matlab"] == pytest.approx(np.mean([r["psnr_y@matlab"] for r in out["rows"]]))
    assert out["protocol"]["psnr_y@matlab"]["crop_border"] == 2
    calls = Nearest.calls
    again = evaluate_sr(Nearest(), items, 2, handle, 0, "toy-x2", chunk=2)
    assert Nearest.calls == calls and again["metrics"] == out["metrics"]  # all shards done: no forward


@pytest.mark.parametrize("s", [2, 4])
def test_bicubic_reference_is_matlab_bicubic_psnr_y_computed_directly(s):
    from skimage.metrics import peak_signal_noise_ratio

    from baselines.sr.train_eval import bicubic_reference
    from bench.data.imresize import imresize
    from bench.data.smoke import photo_pairs

    pairs = photo_pairs("test", s, 48)
    items = [{"hr": hr, "lr": lr} for hr, lr in pairs]
    ref = bicubic_reference(items, s)
    expected = []
    for hr, lr in pairs:
        up = imresize(lr, float(s))  # MATLAB imresize(lr, s, 'bicubic') on uint8: a uint8 image
        assert up.dtype == np.uint8 and up.shape == hr.shape
        c = slice(s, -s)
        expected.append(peak_signal_noise_ratio(_y_matlab(hr)[c, c], _y_matlab(up)[c, c], data_range=255))
    assert ref["n"] == len(pairs) and ref["per_item"] == pytest.approx(expected, abs=1e-9)
    assert ref["value"] == pytest.approx(np.mean(expected), abs=1e-9)


def test_seed_record_carries_the_gain_over_bicubic_and_flags_a_model_that_did_not_learn(tmp_path, monkeypatch):
    from baselines.sr.train_eval import bicubic_reference
    from bench.sanity import FAILED, run_sanity

    class Nearest(nn.Module):  # pixel replication: worse than bicubic on photos, i.e. "did not learn"
        rgb_range = 255.0

        def forward(self, x):
            return F.interpolate(x, scale_factor=4, mode="nearest")

    spec = next(x for x in recipe.plan(None, "smoke", None)
                if x.entry == "edsr-baseline" and x.setting["sr_scale"] == 4)
    facts = {"train_steps": 0, "train_wall_s": 0.0, "train_cpu_s": 0.0, "checkpoint": str(tmp_path / "none.pt"),
             "train_dir": str(tmp_path)}
    monkeypatch.setattr(recipe, "trained_model", lambda *a: (Nearest(), facts))
    ctx = _ctx(tmp_path, spec)
    out = recipe.run_seed(spec, 0, ctx)
    records = {m["metric"]: m for m in out.metrics}
    gain = records["psnr_gain_y@bicubic"]
    test = recipe.evaluation_set(spec, ctx, 4)
    bicubic = bicubic_reference(test, 4)["value"]
    assert gain["floor"]["value"] == 0.0 and gain["floor"]["trivial_value"] == pytest.approx(bicubic, abs=1e-12)
    assert gain["value"] == pytest.approx(records["psnr_y@matlab"]["value"] - bicubic, abs=1e-12)
    assert gain["setting"] == {"sr_scale": 4} and gain["n"] == len(test) == records["psnr_y@matlab"]["n"]
    assert gain["value"] < 0 and run_sanity({"metrics": out.metrics}).status == FAILED


def test_profile_counts_params_and_macs_of_edsr_tiny_by_hand():
    (row,) = recipe.profile(scale="smoke", entries=["edsr-baseline"], repeats=2)
    c, hw = 16, 64 * 64

    def conv(cin, cout, k=3):
        return cin * cout * k * k + cout

    params = conv(3, c) + 4 * conv(c, c) + conv(c, c) + 2 * conv(c, 4 * c) + conv(c, 3)
    assert round(row["params_m"] * 1e6) == params == count_params(edsr_baseline.build(4, "tiny"))
    macs = (3 * 3 * hw + 3 * c * 9 * hw + 5 * c * c * 9 * hw + c * 4 * c * 9 * hw + c * 4 * c * 9 * 4 * hw
            + c * 3 * 9 * 16 * hw + 3 * 3 * 16 * hw)  # mean shifts, head, body, two x2 upsamplers, tail
    assert row["gmacs"] == pytest.approx(macs / 1e9, rel=1e-12)
    assert (row["input"], row["output"], row["sr_scale"], row["repeats"]) == ("64x64", "256x256", 4, 2)
    assert row["latency_ms"] > 0 and row["latency_iqr_ms"] >= 0 and row["nfe"] is None
    with pytest.raises(BenchError, match="unknown lipt entry"):
        recipe.profile(entries=["lipt-huge"])


# ------------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_reduced_smoke_reproduction_records_and_resumes(lipt_paper, store_root):
    picked = {("lipt-small", 2), ("lipt-small", 4), ("edsr-baseline", 2)}
    specs = [s.with_overrides(train={**s.train, "steps": 4, "warmup_steps": 1, "ckpt_every": 2})
             for s in runner.plan(lipt_paper, "smoke") if (s.entry, s.setting["sr_scale"]) in picked]
    store = Store(store_root)
    results = {(s.entry, s.setting["sr_scale"]): runner.execute(s, store, log=lambda m: None).result for s in specs}
    n_photos = len(photo_names("test"))
    for spec in specs:
        key = (spec.entry, spec.setting["sr_scale"])
        result = results[key]
        assert result["status"] == "complete"
        values = {m["metric"]: m for m in result["metrics"]}
        assert set(values) == {"psnr_y@matlab", "ssim_y@matlab", "psnr_gain_y@bicubic"}
        assert values["psnr_gain_y@bicubic"]["floor"]["value"] == 0.0
        for m in values.values():
            assert m["setting"] == {"sr_scale": key[1]} and m["n"] == n_photos and math.isfinite(m["value"])
            assert m["protocol"]["crop_border"] == key[1] and m["protocol"]["self_ensemble"] is False
        assert 5 < values["psnr_y@matlab"]["value"] < 60 and 0 < values["ssim_y@matlab"]["value"] <= 1
        rows = store.handle(spec).read_items(0)
        assert len(rows) == n_photos and sorted(r["image"] for r in rows) == sorted(photo_names("test"))
        assert result["provenance"]["checkpoint_sha256"] and result["provenance"]["dataset_fingerprint"]
        if spec.impl == "lipt":  # the evaluated network is the deployed one
            deployed = build_lipt(scale=key[1], **spec.args).deploy()
            assert result["cost"]["params_m"] == pytest.approx(count_params(deployed) / 1e6, abs=1e-12)
            assert result["cost"]["params_m_training"] > result["cost"]["params_m"]
            assert values["psnr_y@matlab"]["protocol"]["deployed"] is True
    # a run killed after training and evaluation but before its seed record: nothing is recomputed
    spec = specs[0]
    run_dir = store.run_dir(spec)
    log = run_dir / "work" / "0" / "train" / "train_log.jsonl"
    shards = sorted((run_dir / "items" / "0").glob("*.jsonl"))
    before = (log.read_text(), [p.stat().st_mtime_ns for p in shards])
    (run_dir / "seeds" / "0.json").unlink()
    (run_dir / "result.json").unlink()
    again = runner.execute(spec, store, log=lambda m: None).result
    assert (log.read_text(), [p.stat().st_mtime_ns for p in shards]) == before
    assert json.dumps(again["metrics"], sort_keys=True) == json.dumps(results[(spec.entry, 2)]["metrics"],
                                                                      sort_keys=True)
    # deterministic: the same spec in a fresh store gives the same numbers to the last bit
    edsr = next(s for s in specs if s.entry == "edsr-baseline")
    other = runner.execute(edsr, Store(store_root / "other"), log=lambda m: None).result
    assert [m["value"] for m in other["metrics"]] == [m["value"] for m in results[("edsr-baseline", 2)]["metrics"]]
