"""End-to-end smoke reproduction of QAC through bench.runner.execute with a private run store: both entries
(EDM, EDM + quantized condition encoder) are trained with bench.train on the embedded digits and scored with
fd_digits per (NFE, solver) setting, with the digits_is@digits-cnn sanity floor on the sanity setting; a removed
seed record is recomputed from the stored shards and checkpoint.

The schedule is shortened here (100 steps, 3 settings, 64 samples) to keep the test fast; the real smoke plan
is the same code with SMOKE_TRAIN / SMOKE_SAMPLER (its CPU time and numbers are in the recipe's comments)."""
from __future__ import annotations

import math
import time

import pytest

from bench import papers, runner
from bench.sanity import run_sanity
from bench.store import Store
from methods.qac import recipe


@pytest.fixture()
def qac_paper():
    """The manifest may not list the recipe yet: register it for this test, then restore the entry."""
    reg = papers.registries()["papers"]
    old = reg.get("qac")
    reg.unregister("qac")
    reg.register("qac", "methods.qac.recipe", **old.meta)
    papers.card.cache_clear()
    yield "qac"
    reg.unregister("qac")
    reg.register("qac", old.target, **old.meta)
    papers.card.cache_clear()


def test_smoke_plan_is_the_documented_grid(qac_paper):
    specs = runner.plan(qac_paper, "smoke")
    assert [s.entry for s in specs] == ["edm", "qac"]
    for spec in specs:
        assert spec.dataset == "digits" and spec.metrics == ["fd_digits"]
        assert spec.stands_for["dataset"] == "cifar10" and spec.stands_for["metrics"] == {"fd_digits": "fid@edm"}
        nfes = sorted({s["nfe"] for s in recipe.settings(spec.sampler)})
        assert nfes == [4, 6, 8, 12, 18, 35]
        # the claims' {nfe: 6}: sampled with every single-call-per-step solver, each declared as standing for it
        at_six = sorted(s["solver"] for s in recipe.settings(spec.sampler) if s["nfe"] == 6)
        assert at_six == ["dpmpp2m", "euler", "ipndm"]
        assert spec.stands_for["settings"] == [{"paper": {"nfe": 6}, "ours": {"nfe": 6, "solver": s}}
                                               for s in ("dpmpp2m", "euler", "ipndm")]
        assert spec.sampler["sanity"] in recipe.settings(spec.sampler)
        assert spec.train["threads"] == 1 and spec.args["network"]["label_dim"] == 0  # unconditional, like edm
    assert specs[0].train == specs[1].train and specs[0].sampler == specs[1].sampler  # same budget for both
    paper = runner.plan(qac_paper, "paper")
    assert {(s.entry, s.dataset) for s in paper} == {(e, d) for e in ("edm", "qac", "edm-official")
                                                      for d in recipe.PAPER_DATASETS} | {("edm-cond", "cifar10")}
    assert all(s.sampler["seed_ranges"] == 3 and s.sampler["num_samples"] == 50_000 for s in paper)
    assert all(s.metrics == ["fid@ref-npz"] for s in paper)


@pytest.mark.slow
def test_smoke_reproduction_runs_both_entries_and_resumes(qac_paper, store_root):
    short_train = dict(recipe.SMOKE_TRAIN, total_kimg=3.2)  # 100 steps
    short_sampler = dict(recipe.SMOKE_SAMPLER, grid={"dpmpp2m": [4, 6], "heun": [5]}, num_samples=64,
                         batch_size=64, sanity={"nfe": 5, "solver": "heun"})
    specs = [s.with_overrides(train=short_train, sampler=short_sampler) for s in runner.plan(qac_paper, "smoke")]
    store = Store(store_root)
    t0 = time.perf_counter()
    results = {s.entry: runner.execute(s, store, log=print, show_progress=False).result for s in specs}
    print(f"shortened smoke wall time {time.perf_counter() - t0:.1f} s")
    for entry, result in results.items():
        assert result["status"] == "complete", entry
        fd = [m for m in result["metrics"] if m["metric"] == "fd_digits"]
        settings = {(m["setting"]["solver"], m["setting"]["nfe"]): m["value"] for m in fd}
        print(entry, settings, result["cost"])
        assert set(settings) == {("dpmpp2m", 4), ("dpmpp2m", 6), ("heun", 5)}
        assert all(math.isfinite(v) and v > 0 for v in settings.values())
        assert all(m["n"] == 64 for m in fd)
        # the sanity metric, with its floor, on the sanity setting's samples
        (sane,) = [m for m in result["metrics"] if m["metric"] == "digits_is@digits-cnn"]
        assert len(result["metrics"]) == 4 and sane["setting"] == {"nfe": 5, "solver": "heun"} and sane["n"] == 64
        floor = sane["floor"]
        trivial = sane["protocol"]["trivial_scores"]
        assert floor["trivial"] == max(trivial, key=trivial.get) and floor["trivial_value"] == trivial[floor["trivial"]]
        assert floor["value"] == pytest.approx((floor["trivial_value"] + sane["protocol"]["data_score"]) / 2)
        assert 1.0 <= sane["value"] <= 10.0
        assert run_sanity(result).checks[0]["passed"] == (sane["value"] > floor["value"])
        assert result["provenance"]["checkpoint_sha256"] and result["provenance"]["dataset_fingerprint"]
        assert result["provenance"]["train_steps"] == 100
    qac_cost = results["qac"]["cost"]
    assert qac_cost["extra_params"] == 428 and qac_cost["extra_params_share"] <= 0.01
    assert qac_cost["params_m"] == pytest.approx(results["edm"]["cost"]["params_m"] + 428e-6)
    assert results["qac"]["provenance"]["code_prior"]["images"] == 1497

    # Resume inside a run: drop the finished seed record; the rerun reuses the checkpoint and the shards.
    run_dir = store.run_dir(specs[1])
    (run_dir / "seeds" / "0.json").unlink()
    (run_dir / "result.json").unlink()
    t1 = time.perf_counter()
    again = runner.execute(specs[1], store, log=print, show_progress=False).result
    assert time.perf_counter() - t1 < 0.5 * (time.perf_counter() - t0)
    before = {(m["metric"], m["setting"]["solver"], m["setting"]["nfe"]): m["value"]
              for m in results["qac"]["metrics"]}
    after = {(m["metric"], m["setting"]["solver"], m["setting"]["nfe"]): m["value"] for m in again["metrics"]}
    assert after == before


def _write_edm_zip(path, count, resolution):
    """A dataset zip in the layout of EDM's dataset_tool.py: 00000/img%08d.png + dataset.json."""
    import io
    import json
    import zipfile

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for i in range(count):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)).save(buf, "PNG")
            zf.writestr(f"00000/img{i:08d}.png", buf.getvalue())
        zf.writestr("dataset.json", json.dumps({"labels": None}))


def test_paper_path_trains_on_an_edm_zip_and_takes_the_min_over_seed_ranges(qac_paper, tmp_path, monkeypatch):
    """The paper-scale code path on a tiny stand-in: EDM zip loading, training, QAC's prior, sample shards per
    seed range, and EDM's min-over-ranges protocol. The FID itself needs the Inception weights (an asset), so
    the metric is replaced by the mean pixel of the samples, which is enough to check the bookkeeping."""
    import numpy as np

    from bench.metrics.base import MetricResult
    from bench.recipe import RunContext
    from bench.store import Store

    root = tmp_path / "data"
    _write_edm_zip(root / "edm" / "ffhq-64x64.zip", count=8, resolution=64)
    (root / "edm" / "fid-refs").mkdir(parents=True)
    np.savez(root / "edm" / "fid-refs" / "ffhq-64x64.npz", mu=np.zeros(4), sigma=np.eye(4))
    seen = []

    def fake_compute(dialect, samples, reference):
        assert dialect == "fid@ref-npz" and reference.endswith("ffhq-64x64.npz")
        seen.append(samples.shape)
        return MetricResult(name=dialect, value=float(samples.float().mean()), n=len(samples), protocol={})

    monkeypatch.setattr("bench.metrics.api.compute", fake_compute)
    (spec,) = [s for s in runner.plan(qac_paper, "paper") if s.entry == "qac" and s.dataset == "ffhq-64"]
    tiny = dict(spec.args["network"], model_channels=8, channel_mult=[1, 1], num_blocks=1, attn_resolutions=[])
    spec = spec.with_overrides(
        args=dict(spec.args, network=tiny, qac={"code_dim": 2, "levels": 2, "encoder_widths": [4], "norm_groups": 1}),
        train={"batch_size": 4, "total_kimg": 0.008, "lr": 1e-3, "lr_rampup_kimg": 0, "ema_halflife_kimg": 0.5},
        sampler=dict(spec.sampler, grid={"euler": [2]}, num_samples=3, batch_size=3, seed_ranges=2))
    ctx = RunContext(handle=Store(tmp_path / "runs").open(spec), data_root=root, show_progress=False)
    result = recipe.run_seed(spec, 0, ctx)
    (record,) = result.metrics
    assert record["metric"] == "fid@ref-npz" and record["setting"] == {"nfe": 2, "solver": "euler"}
    assert record["protocol"]["seed_ranges"] == [[0, 3], [3, 6]]
    assert len(record["protocol"]["per_range"]) == 2 and record["value"] == min(record["protocol"]["per_range"])
    assert seen == [(3, 3, 64, 64), (3, 3, 64, 64)]
    assert result.provenance["code_prior"]["images"] == 8 and result.provenance["train_steps"] == 2
    assert result.provenance["dataset_fingerprint"].startswith("sha256:")
