"""CPU rehearsal of CARN in LIPT's small and paper plans (issue 22): CARN is not in the smoke plan (it does not
learn SR at a fair tiny size within the smoke budget: methods/lipt/recipe.py NOT_AT_SMOKE), so this rehearses
the code path it does run: DIV2K and the benchmark sets in their official layouts
(tests/fixtures_official/div2k.py), two training steps, two test images, the record with its costs.

The batch and LR patch are shrunk in the spec (a CARN step at batch 16 of 48x48 patches costs seconds on one
CPU thread); the code path is unchanged."""
from __future__ import annotations

import pytest

from bench import runner
from bench.store import Store
from methods.lipt import recipe
# data_root is a pytest fixture: tests take it as a parameter, which ruff reads as a redefinition
from tests.recipes.test_rehearsal_lipt import CAPS, data_root  # noqa: F401
# ruff: noqa: F811

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """One torch and one BLAS thread for every test here (tests/conftest.py)."""


def _spec(scale, sr_scale, dataset, data_root, **train):
    (spec,) = [s for s in runner.plan("lipt", scale, ["carn"], data_root=data_root, rehearsal=CAPS)
               if s.setting["sr_scale"] == sr_scale and s.dataset == dataset]
    return spec.with_overrides(train={**spec.train, **train})


def test_carn_is_planned_at_small_and_paper_but_not_at_smoke():
    assert "carn" not in {s.entry for s in recipe.plan(None, "smoke", None)}
    small = [s for s in recipe.plan(None, "small", None) if s.entry == "carn"]
    paper = [s for s in recipe.plan(None, "paper", None) if s.entry == "carn"]
    assert len(small) == 2 * 5 and len(paper) == 3 * 5  # x2/x4 (x2/x3/x4) on the five benchmark sets
    train = paper[0].train  # the official README flags: patch 64, batch 64, 600k steps, lr 1e-4 halved at 400k
    assert (train["lr_patch"], train["batch_size"], train["steps"], train["lr"]) == (64, 64, 600_000, 1e-4)
    assert train["milestones"] == [400_000] and train["grad_clip"] == 10.0
    assert small[0].train["milestones"] == [1333]  # 400k of 600k, scaled to 2,000 steps


def test_carn_small_rehearsal_trains_evaluates_records(store_root, data_root):
    spec = _spec("small", 2, "set5", data_root, batch_size=1, lr_patch=16)
    out = runner.execute(spec, Store(store_root), data_root=data_root, show_progress=False, log=lambda m: None)
    result = out.result
    assert result["status"] == "complete" and result["rehearsal"]
    metrics = {m["metric"]: m for m in result["metrics"]}
    for name in ("psnr_y@matlab", "ssim_y@matlab", "psnr_gain_y@bicubic"):
        assert metrics[name]["n"] == 2  # max_samples reached the evaluation
    cost = result["cost"]
    assert cost["train_steps"] == 2
    # the single-scale x2 network (hand count in tests/models/test_carn.py) and the paper's multi-scale count
    assert cost["params_m"] == pytest.approx(0.964163, abs=1e-6)
    assert cost["params_m_paper_convention"] == pytest.approx(1.591939, abs=1e-6)


def test_carn_paper_rehearsal_counts_the_papers_720p_mult_adds(store_root, data_root):
    """x3 at paper scale; the 720p MACs match the CARN paper's Mult-Adds (118.8G at x3; LIPT's table: 119G),
    by hand: per LR pixel 812,736 (entry, cascade) + 331,776 (up3) + 9 x 1,728 (exit at HR), plus the frozen
    1x1 mean shifts (9 at LR, 9 x 9 at HR), over 240 x 427 LR pixels."""
    spec = _spec("paper", 3, "urban100", data_root, batch_size=1, lr_patch=16)
    out = runner.execute(spec, Store(store_root), data_root=data_root, show_progress=False, log=lambda m: None)
    cost = out.result["cost"]
    assert out.result["status"] == "complete" and cost["train_steps"] == 2
    assert cost["gmacs_720p_lr_hw"] == [240, 427]
    by_hand = (812_736 + 331_776 + 9 * 1728 + 9 + 9 * 9) * 240 * 427 / 1e9
    assert cost["gmacs_720p"] == pytest.approx(by_hand, rel=1e-6)
    assert by_hand == pytest.approx(118.8, rel=0.01)
