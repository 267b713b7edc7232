"""CPU rehearsal of Soft Teacher and STAC in CTF's small and paper plans (issue 22): COCO 2017 in its official
layout and the torchvision ResNet-50 checkpoint (tests/fixtures_official/coco.py), the COCO-standard 10 % split
drawn on the fly, ResNet-50-FPN detectors, the burn-in both share with LabelMatch's protocol, the semi-supervised
stage with LabelMatch's re-implementation knobs (soft-teacher-40k / stac-40k: threshold 0.9, UT-strong views, no box
jitter, no RPN box term, STAC's offline labels without the best-box fallback), the supervised reference, COCOeval
on the first test images and the record.

As in test_rehearsal_ctf.py (whose data, caps and tenfold-smaller views this reuses), one step per stage, one image
per batch, two test images. STAC labels every unlabelled image of the split offline and Soft Teacher scores the
student's RoIs with its teacher: at the configs' 1,000 proposals per image (512 sampled RoIs) that costs about a
minute of one CPU thread, so the detectors here keep a tenth of them (same code path)."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from baselines.ssod import configs
from baselines.ssod.configs import named_config, stac_epoch_steps
from bench import runner
from bench.cli import app
from bench.store import Store

# data_root and small_views are pytest fixtures (small_views autouse): imported, they apply here too
from tests.recipes.test_rehearsal_ctf import (  # noqa: F401
    CAPS,
    N_TRAIN,
    _metrics,
    _one_image,
    data_root,
    small_views,
)

# ruff: noqa: F811

pytestmark = pytest.mark.slow
ENTRIES = ("soft-teacher", "stac")
FEWER_PROPOSALS = {"rpn_pre_nms_train": 200, "rpn_post_nms_train": 100, "rpn_pre_nms_test": 100,
                   "rpn_post_nms_test": 100, "roi_batch_per_image": 64}


@pytest.fixture(autouse=True)
def fewer_proposals(small_views, monkeypatch):
    """On top of small_views: every named config's detector with a tenth of its proposals and sampled RoIs."""
    shrunk_views = configs.named_config

    def named(name, backbone_weights=None):
        recipe = shrunk_views(name, backbone_weights)
        return replace(recipe, detector=replace(recipe.detector, **FEWER_PROPOSALS))

    monkeypatch.setattr(configs, "named_config", named)


def _run_both(specs, store_root, data_root):
    store, logs = Store(store_root), []
    outs = {s.entry: runner.execute(_one_image(s), store, data_root=data_root, show_progress=False,
                                    log=logs.append).result for s in specs}
    for entry, result in outs.items():
        assert result["status"] == "complete" and result["rehearsal"] == CAPS, entry
        metrics = _metrics(result)
        assert metrics["coco_bbox_map@pycocotools"]["n"] == 2  # max_samples: two of the four val images
        assert "map_gain@supervised" in metrics
        assert result["cost"]["burn_in_steps"] == 1 and result["cost"]["semi_steps"] == 1
    # both start from one burn-in (same detector, schedule, view, split and seed): trained once, reused
    assert len(list((store_root / "ctf" / "_shared").glob("burnin-*"))) == 1
    return outs


def test_small_rehearsal_soft_teacher_and_stac(store_root, data_root):
    specs = runner.plan("ctf", "small", list(ENTRIES), data_root=data_root, rehearsal=CAPS)
    assert [s.args["config"] for s in specs] == ["soft-teacher-40k", "stac-40k"]
    outs = _run_both(specs, store_root, data_root)
    soft, stac = outs["soft-teacher"], outs["stac"]
    ssod = soft["provenance"]["recipe"]["ssod"]
    assert (ssod["views"], ssod["box_jitter"], ssod["unsup_rpn_box"], ssod["cls_thresh"]) == ("labelmatch", False,
                                                                                             False, 0.9)
    assert soft["provenance"]["eval_model"] == "teacher (EMA)"
    assert stac["provenance"]["recipe"]["ssod"]["keep_best"] is False
    assert stac["provenance"]["eval_model"].startswith("student")
    assert stac["provenance"]["stac_offline_boxes"] >= 0
    split = stac["provenance"]["split"]
    assert split["labelled_images"] + split["unlabelled_images"] == N_TRAIN


def test_paper_rehearsal_soft_teacher_and_stac_coco10(store_root, data_root):
    """Paper scale at 10 % fold 1: LabelMatch's split-sized COCO burn-in, STAC's epoch-based schedule (capped)."""
    specs = [s.with_overrides(seeds=[1])
             for s in runner.plan("ctf", "paper", list(ENTRIES), data_root=data_root, rehearsal=CAPS)
             if s.dataset == "coco2017" and s.setting["label_pct"] == 10.0]
    assert [s.args["config"] for s in specs] == ["soft-teacher-40k", "stac-40k"]
    outs = _run_both(specs, store_root, data_root)
    for result in outs.values():
        assert _metrics(result)["coco_bbox_map@pycocotools"]["setting"] == {"label_pct": 10.0, "fold": 1,
                                                                            "train_iters": 40000}


def test_stac_epoch_schedule_matches_labelmatch_formula():
    # stac_standard.py at 10 %: unlabeled_image = int(118287 * 0.9) = 106458, int(40000 * 32 / 106458) + 1 = 13
    # epochs of ceil(106458 / 32) = 3327 iterations; at 1 %: 117104 images, 11 epochs of 3660
    assert stac_epoch_steps(106458, 10.0) == 13 * 3327 == 43251
    assert stac_epoch_steps(117104, 1.0) == 11 * 3660 == 40260


def test_paper_dry_run_shows_both_entries_with_their_configs(tmp_path, store_root):
    res = CliRunner().invoke(app, ["reproduce", "ctf", "--scale", "paper", "--data-root", str(tmp_path),
                                   "--dry-run"], env={"BENCH_RESULTS": str(store_root), "COLUMNS": "1000"})
    assert res.exit_code == 0, res.output
    specs = json.loads(res.output[res.output.index("["):])
    configs = {(s["entry"], s["dataset"], s["setting"].get("label_pct")): s["args"]["config"] for s in specs
               if s["entry"] in ENTRIES}
    for pct in (1.0, 5.0, 10.0):
        assert configs[("soft-teacher", "coco2017", pct)] == "soft-teacher-40k"
        assert configs[("stac", "coco2017", pct)] == "stac-40k"
    assert configs[("soft-teacher", "voc07", None)] == "soft-teacher-voc"
    assert configs[("stac", "voc07", None)] == "stac-voc"
    seeds = {s["seeds"] == [1, 2, 3, 4, 5] for s in specs if s["entry"] in ENTRIES and s["dataset"] == "coco2017"}
    assert seeds == {True}  # the five STAC folds, as every other COCO entry
    # the VOC configs: the table's 80k iterations at 8 + 8 images, LR by the configs' rule
    voc = named_config("stac-voc").semi
    assert (voc.steps, voc.batch_size, voc.lr) == (80000, 8, 0.005)
