"""`bench reproduce tad-sr`: the plans at each scale (equal student budgets, honest stands_for, the paper's
configs), the paper scale's one-line refusals, and (slow) the whole smoke reproduction with its floors."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bench import runner
from bench.cli import app
from bench.registry import BenchError


def test_smoke_plan_gives_the_students_the_same_budget_and_pool():
    specs = {s.entry: s for s in runner.plan("tad-sr", "smoke")}
    assert set(specs) == {"resshift", "sinsr", "tad-sr"}
    assert specs["resshift"].sampler["nfe"] == 15 and specs["sinsr"].sampler["nfe"] == specs["tad-sr"].sampler["nfe"] == 1
    # one training config for all three runs: the shared teacher, and the same student steps/batch/lr
    assert specs["sinsr"].train == specs["tad-sr"].train == specs["resshift"].train
    assert specs["tad-sr"].train["tad"]["lambda_gan"] == 0.02 and specs["tad-sr"].train["tad"]["uniform_noise"]
    for spec in specs.values():
        assert spec.setting == {"sr_scale": 4}
        # the smoke metrics stand for none of the claims' metrics (no claim is decided at smoke)
        assert spec.stands_for["metrics"] == {}
        assert spec.stands_for["settings"] == [{"paper": {"sr_scale": 4}, "ours": {"sr_scale": 4}}]


def test_paper_plan_has_the_official_configs_and_refuses_without_data_in_one_line(tmp_path):
    specs = runner.plan("tad-sr", "paper")
    assert {s.dataset for s in specs} == {"resshift-imagenet-test", "realsr", "realset65"}
    tad = next(s for s in specs if s.entry == "tad-sr" and s.dataset == "realsr")
    assert tad.metrics == ["clipiqa", "musiq"]  # no ground truth on RealSR
    assert tad.train["iterations"] == 30_000 and tad.train["lr"] == 5e-5 and tad.train["batch_size"] == 8
    assert tad.sampler["steps"] == 15 and tad.sampler["kappa"] == 2.0 and tad.sampler["space"] == "latent"
    from bench.recipe import RunContext
    from bench.store import Store
    from methods.tad_sr import recipe

    store = Store(tmp_path / "runs")
    ctx = RunContext(handle=store.handle(tad), data_root=tmp_path / "data")
    with pytest.raises(BenchError) as err:
        recipe.run_seed(tad, 0, ctx)
    assert "\n" not in str(err.value) and "realsr" in str(err.value).lower()


def test_dry_run_prints_the_paper_configs():
    result = CliRunner().invoke(app, ["reproduce", "tad-sr", "--scale", "paper", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "configs/TAD-SR.yaml" in result.output and "resshift-imagenet-test" in result.output


@pytest.mark.slow
def test_smoke_reproduction_records_the_bicubic_floor(smoke_store, one_torch_thread):
    """The smoke records the honest real-world SR floor (PSNR over MATLAB bicubic of the same degraded LR).
    The tiny models do not clear it (measured, see the recipe's docstring), so this checks the record, not a
    pass: the trivial value is bicubic's PSNR computed here independently, and the teacher's one-call x0 (the
    estimate of the posterior mean its floor judges) beats its own 15-step sample, which pays PSNR for being a
    sample."""
    from bench.data.imresize import imresize
    from bench.metrics import compute
    from bench.sanity import run_sanity
    from bench.store import Store
    from methods.tad_sr import pipeline as P
    from methods.tad_sr import recipe

    store = Store(smoke_store)
    specs = runner.plan("tad-sr", "smoke")
    results = {s.entry: runner.execute(s, store, log=print).result for s in specs}
    images, test = recipe._test_pairs(specs[0])
    bicubic = [imresize(lr, 4.0) for lr in P.to_uint8(test.lr)]
    psnr_bicubic = compute("psnr_y@matlab", preds=bicubic, targets=images, crop_border=4, float_range=255.0,
                           self_ensemble=False).value
    for entry, result in results.items():
        assert result["status"] == "complete", entry
        names = {m["metric"] for m in result["metrics"]}
        assert names == {"psnr_y@matlab", "ssim_y@matlab", "fd_dct8@patches", "psnr_gain_y@bicubic"}
        floor = next(m for m in result["metrics"] if m["metric"] == "psnr_gain_y@bicubic")
        assert floor["floor"]["value"] == 0.0
        assert floor["floor"]["trivial_value"] == pytest.approx(psnr_bicubic, abs=1e-9)
        assert run_sanity(result).status == ("passed" if floor["value"] > 0 else "did not learn")
        print(entry, json.dumps({m["metric"]: m["value"] for m in result["metrics"]}), result["cost"]["nfe"])
    teacher = next(m for m in results["resshift"]["metrics"] if m["metric"] == "psnr_gain_y@bicubic")
    assert teacher["protocol"]["judged_psnr_y"] > teacher["protocol"]["sample_psnr_y"]
    assert results["resshift"]["cost"]["nfe"] == 15 and results["tad-sr"]["cost"]["nfe"] == 1
    # the teacher was trained once: both students reused it
    assert not results["resshift"]["provenance"]["teacher_reused"]
    assert results["sinsr"]["provenance"]["teacher_reused"] and results["tad-sr"]["provenance"]["teacher_reused"]
