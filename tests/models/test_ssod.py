"""SSOD core (baselines/ssod): RoIAlign and NMS against torchvision's operators, EMA update, pseudo-label
filtering and LabelMatch's ACT thresholds against hand calculations, RoI sampling, box mapping between views,
detections in COCO results format scored by pycocotools, and the R50-FPN parameter count torchvision documents."""
from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pytest
import torch
import torchvision  # noqa: F401  (registers torchvision's operators, or the project's CPU versions of them)

from baselines.ssod.augment import (
    AugmentConfig,
    ResizeSpec,
    hflip,
    resize,
    unlabelled_views,
)
from baselines.ssod.boxes import batched_nms, nms
from baselines.ssod.configs import SMOKE_DETECTOR, named_config, with_overrides
from baselines.ssod.data import CategoryMap
from baselines.ssod.detector import DetectorConfig, build_detector
from baselines.ssod.evaluate import predict, score
from baselines.ssod.pseudo import act_thresholds, label_prior, split_pseudo_labels
from baselines.ssod.roi_align import roi_align_fixed
from baselines.ssod.teacher import ema_update
from bench.registry import BenchError


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread is as fast, and does not stall on a busy 2-core runner."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _random_boxes(n: int, seed: int, span: float = 60.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * span - 4
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * span / 2 + 0.5
    return torch.cat([xy, xy + wh], dim=1)


# ---------------------------------------------------------------------------------------------------------
# operators

@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [1, 2])
def test_roi_align_fixed_equals_torchvision_operator(aligned, sampling_ratio):
    g = torch.Generator().manual_seed(0)
    features = torch.randn(2, 3, 11, 13, generator=g, dtype=torch.float64)
    boxes = _random_boxes(40, 1, span=20.0)  # some RoIs reach past the map: the border rules matter
    rois = torch.cat([torch.randint(0, 2, (40, 1), generator=g).double(), boxes], dim=1)
    ours = roi_align_fixed(features, rois, (7, 7), 0.75, sampling_ratio, aligned)
    reference = torch.ops.torchvision.roi_align(features, rois, 0.75, 7, 7, sampling_ratio, aligned)
    assert torch.allclose(ours, reference, atol=1e-12, rtol=0)


def test_roi_align_fixed_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(3)
    features = torch.randn(1, 2, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 0.5, 1.0, 4.5, 5.0], [0, 2.0, 0.2, 5.9, 3.3]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda f: roi_align_fixed(f, rois, (3, 3), 1.0, 2, True), (features,))


def _greedy_nms(boxes: torch.Tensor, scores: torch.Tensor, thr: float) -> list[int]:
    """Textbook greedy NMS in plain Python (the independent reference)."""
    b = boxes.tolist()

    def iou(p, q):
        w = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
        h = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
        inter = w * h
        return inter / ((p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter)

    keep: list[int] = []
    for i in sorted(range(len(b)), key=lambda k: (-float(scores[k]), k)):
        if all(iou(b[i], b[j]) <= thr for j in keep):
            keep.append(i)
    return keep


@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
def test_nms_equals_greedy_reference(thr):
    boxes = _random_boxes(300, 5).float()
    scores = torch.rand(300, generator=torch.Generator().manual_seed(6))
    assert nms(boxes, scores, thr).tolist() == _greedy_nms(boxes, scores, thr)


def test_batched_nms_equals_torchvision():
    from torchvision.ops import batched_nms as tv_batched_nms

    boxes = _random_boxes(400, 7).float()
    g = torch.Generator().manual_seed(8)
    scores, groups = torch.rand(400, generator=g), torch.randint(0, 5, (400,), generator=g)
    ours = batched_nms(boxes, scores, groups, 0.5)
    assert ours.tolist() == tv_batched_nms(boxes, scores, groups, 0.5).tolist()


# ---------------------------------------------------------------------------------------------------------
# mean teacher and pseudo-labels

def test_ema_update_matches_hand_calculation():
    student, teacher = torch.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2)
    with torch.no_grad():
        teacher.weight.fill_(1.0)
        student.weight.fill_(3.0)
        teacher.running_mean.fill_(2.0)
        student.running_mean.fill_(6.0)
    student.num_batches_tracked.fill_(7)
    ema_update(teacher, student, keep_rate=0.75)
    # 0.75 * 1 + 0.25 * 3 = 1.5; buffers are averaged as LabelMatch does (0.75 * 2 + 0.25 * 6 = 3); counters copied
    assert torch.equal(teacher.weight.detach(), torch.full((2,), 1.5))
    assert torch.equal(teacher.running_mean, torch.full((2,), 3.0))
    assert int(teacher.num_batches_tracked) == 7
    assert torch.equal(student.weight.detach(), torch.full((2,), 3.0)), "the student is never changed"
    with pytest.raises(ValueError):
        ema_update(teacher, student, keep_rate=1.5)


def test_label_prior_counts_missing_classes_once():
    # 4 labelled images: 6 boxes of class 10, 1 of class 20, none of class 30 (counted as 1): 8 boxes in all
    anns = [{"category_id": 10}] * 6 + [{"category_id": 20}]
    per_image, ratio = label_prior(anns, 4, [10, 20, 30])
    assert per_image == 2.0
    assert ratio.tolist() == [0.75, 0.125, 0.125]


def test_act_thresholds_match_hand_example():
    # M = 10 unlabelled images, 2 boxes per image, ratios (0.75, 0.125, 0.125): P = (15, 2.5, 2.5)
    # reliable index int(0.2 P) = (3, 0, 0); uncertain index int(P) = (15, 2, 2), clipped to the list length
    class_a = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15,
               0.1, 0.05, 0.01]
    rng = np.random.default_rng(0)
    scores = [rng.permutation(class_a), np.array([0.3, 0.6]), np.zeros(0)]
    pos, unc = act_thresholds(scores, 10, 2.0, np.array([0.75, 0.125, 0.125]), percent=0.2)
    # class A: 4th best 0.8, 16th best 0.2; class B: best 0.6, last (index 1) 0.3; class C: no scores -> floor 0.05
    assert pos.tolist() == pytest.approx([0.8, 0.6, 0.05], abs=0)
    assert unc.tolist() == pytest.approx([0.2, 0.3, 0.05], abs=0)


def test_pseudo_label_filtering_splits_reliable_and_uncertain():
    boxes = torch.arange(24, dtype=torch.float32).view(6, 4)
    scores = torch.tensor([0.95, 0.5, 0.2, 0.85, 0.6, 0.04])
    labels = torch.tensor([1, 1, 1, 2, 2, 2])
    thr_pos, thr_unc = torch.tensor([0.9, 0.6]), torch.tensor([0.3, 0.05])
    (rb, rl), (ub, ul) = split_pseudo_labels(boxes, scores, labels, thr_pos, thr_unc)
    # class 1: 0.95 reliable, 0.5 uncertain, 0.2 dropped; class 2: 0.85 and 0.6 reliable (>= 0.6), 0.04 dropped
    assert rl.tolist() == [1, 2, 2] and torch.equal(rb, boxes[[0, 3, 4]])
    assert ul.tolist() == [1] and torch.equal(ub, boxes[[1]])
    # Unbiased Teacher: one threshold (0.7) for both: no uncertain boxes
    (rb, rl), (ub, _) = split_pseudo_labels(boxes, scores, labels, torch.full((2,), 0.7), torch.full((2,), 0.7))
    assert rl.tolist() == [1, 2] and len(ub) == 0


# ---------------------------------------------------------------------------------------------------------
# detector pieces

def _smoke_detector(**changes):
    torch.manual_seed(0)
    cfg = DetectorConfig(**{**SMOKE_DETECTOR.to_dict(), **changes})
    return build_detector(cfg)


def test_sample_rois_reliable_then_uncertain_then_negative():
    det = _smoke_detector(roi_batch_per_image=8, roi_positive_fraction=0.5)
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    unc = torch.tensor([[30.0, 30.0, 40.0, 40.0]])
    proposals = torch.tensor([[0.0, 0.0, 10.0, 9.0],      # IoU 0.9 with the reliable box
                              [31.0, 30.0, 40.0, 40.0],   # IoU 0.9 with the uncertain box
                              [30.0, 30.0, 40.0, 38.0],   # IoU 0.8 with the uncertain box
                              [50.0, 50.0, 60.0, 60.0],   # background
                              [0.0, 0.0, 10.0, 30.0]])    # IoU 1/3 with the reliable box: background
    s = det.sample_rois(proposals, gt, torch.tensor([2]), unc, torch.tensor([3]))
    kinds = s.kind.tolist()
    # candidates: the uncertain box, the reliable box, then the proposals; quota of positives int(8 * 0.5) = 4:
    # 2 reliable (GT + proposal 0), then 2 of the 3 uncertain candidates, then 4 negatives (only 2 exist)
    assert kinds.count(0) == 2 and kinds.count(1) == 2 and kinds.count(2) == 2
    assert s.labels[s.kind == 0].tolist() == [2, 2] and s.labels[s.kind == 1].tolist() == [3, 3]
    assert s.labels[s.kind == 2].tolist() == [0, 0]
    assert (s.uncertain_index[s.kind == 1] == 0).all() and (s.uncertain_index[s.kind != 1] == -1).all()


def test_supervised_losses_are_finite_and_train():
    det = _smoke_detector()
    det.train()
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 64)]
    boxes = [torch.tensor([[5.0, 5.0, 30.0, 25.0]]), torch.tensor([[10.0, 20.0, 50.0, 60.0], [0.0, 0.0, 12.0, 12.0]])]
    labels = [torch.tensor([1]), torch.tensor([2, 3])]
    losses = det.supervised_losses(images, boxes, labels)
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_box", "loss_roi_cls", "loss_roi_box"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert det.cls_score.weight.grad is not None and det.backbone.body.stem[0].weight.grad.abs().sum() > 0


def test_resnet50_fpn_parameter_count_matches_torchvision():
    # torchvision documents fasterrcnn_resnet50_fpn (91 classes, class-specific boxes) at 41,755,286 parameters
    det = build_detector(DetectorConfig(arch="resnet50-fpn", num_classes=90, class_agnostic=False))
    assert sum(p.numel() for p in det.parameters()) == 41_755_286
    # LabelMatch's head: 80 classes + background, class-agnostic regression: 41,755,286 - (1024 + 1) * (91 + 364)
    # + (1024 + 1) * (81 + 4)
    det = build_detector(DetectorConfig(arch="resnet50-fpn", num_classes=80))
    assert sum(p.numel() for p in det.parameters()) == 41_755_286 - 1025 * 455 + 1025 * 85
    # stem and stage 1 frozen (trainable_layers = 3), as LabelMatch's frozen_stages = 1
    assert not det.backbone.body.layer1[0].conv1.weight.requires_grad and det.backbone.body.layer2[0].conv1.weight.requires_grad


def test_missing_backbone_weights_are_a_clear_error(tmp_path):
    with pytest.raises(BenchError, match="resnet50-19c8e357"):
        build_detector(DetectorConfig(arch="resnet50-fpn", backbone_weights=str(tmp_path / "nope.pth")))


# ---------------------------------------------------------------------------------------------------------
# views

def test_resize_and_flip_move_boxes_with_the_image():
    image = torch.zeros(3, 40, 80)
    boxes = torch.tensor([[10.0, 5.0, 30.0, 25.0]])
    out, moved, (sx, sy) = resize(image, boxes, ResizeSpec("fixed", (160, 60)))
    # factor min(160 / 80, 60 / 40) = 1.5: 120 x 60
    assert out.shape[-2:] == (60, 120) and (sx, sy) == (1.5, 1.5)
    assert moved.tolist() == [[15.0, 7.5, 45.0, 37.5]]
    flipped_img, flipped = hflip(out, moved)
    assert flipped.tolist() == [[120 - 45.0, 7.5, 120 - 15.0, 37.5]]
    assert torch.equal(flipped_img, out.flip(-1))


def test_unlabelled_views_map_teacher_boxes_to_the_student_view():
    torch.manual_seed(0)
    cfg = AugmentConfig(teacher_resize=ResizeSpec("fixed", (200, 50)), student_resize=ResizeSpec("fixed", (200, 75)),
                        student_colour=False, student_erasing=False, flip_prob=0.0)
    image = torch.rand(3, 20, 40)
    views = unlabelled_views(image, cfg)
    assert views["weak"].shape[-2:] == (50, 100) and views["strong"].shape[-2:] == (75, 150)
    assert views["to_student"].tolist() == [1.5, 1.5]


def test_config_overrides_and_unknown_names():
    recipe = with_overrides(named_config("labelmatch-160k"), {"semi": {"steps": 10}, "ssod": {"keep_rate": 0.9}})
    assert recipe.semi.steps == 10 and recipe.ssod.keep_rate == 0.9 and recipe.semi.batch_size == 16
    assert named_config("labelmatch-40k").semi.batch_size == 32 and named_config("labelmatch-40k").semi.lr == 0.02
    with pytest.raises(BenchError, match="Did you mean .labelmatch-40k"):
        named_config("labelmatch-80k")
    with pytest.raises(BenchError, match="no field"):
        with_overrides(recipe, {"semi": {"stepz": 1}})


def test_smoke_supervised_only_model_gets_the_semi_supervised_budget():
    """map_gain@supervised compares against supervised-only training on the same labelled images for the same
    steps: the smoke supervised recipe carries the same burn-in and the same (labelled-only) second stage."""
    supervised = named_config("smoke-supervised")
    for name in ("smoke-unbiased-teacher", "smoke-labelmatch"):
        semi = named_config(name)
        assert supervised.burn_in == semi.burn_in and supervised.semi == semi.semi, name
        assert supervised.burn_in_loss() == semi.burn_in_loss() == "ce", name  # one shared burn-in



# ---------------------------------------------------------------------------------------------------------
# COCO results

class _OracleDetector(torch.nn.Module):
    """Returns given boxes (in the test view's coordinates) for each image, in order."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs = list(outputs)

    def detect(self, images):
        return [self.outputs.pop(0) for _ in images]


def _tiny_ground_truth():
    images = [{"id": 7, "file_name": "a.png", "width": 40, "height": 20},
              {"id": 9, "file_name": "b.png", "width": 40, "height": 20}]
    anns = [{"id": 1, "image_id": 7, "category_id": 5, "bbox": [2, 2, 10, 8], "area": 80, "iscrowd": 0},
            {"id": 2, "image_id": 9, "category_id": 8, "bbox": [20, 5, 12, 10], "area": 120, "iscrowd": 0}]
    return {"images": images, "annotations": anns, "categories": [{"id": 5, "name": "a"}, {"id": 8, "name": "b"}]}


def test_predictions_are_coco_results_scored_by_pycocotools():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from bench.data.base import InMemoryDataset

    gt = _tiny_ground_truth()
    items = [{"image": np.zeros((20, 40, 3), np.uint8), "image_id": i["id"], "annotations": []} for i in gt["images"]]
    dataset = InMemoryDataset("tiny", items)
    cats = CategoryMap(gt["categories"])
    # the test view doubles the size; the detector answers in that view: label 1 = category 5, label 2 = category 8
    outputs = [{"boxes": torch.tensor([[4.0, 4.0, 24.0, 20.0], [50.0, 10.0, 70.0, 30.0]]),
                "scores": torch.tensor([0.9, 0.3]), "labels": torch.tensor([1, 2])},
               {"boxes": torch.tensor([[40.0, 10.0, 64.0, 30.0]]), "scores": torch.tensor([0.8]),
                "labels": torch.tensor([2])}]
    results = predict(_OracleDetector(outputs), dataset, cats, ResizeSpec("fixed", (80, 40)))
    assert results[0] == {"image_id": 7, "category_id": 5, "bbox": [2.0, 2.0, 10.0, 8.0], "score": pytest.approx(0.9)}
    assert results[2]["category_id"] == 8 and results[2]["bbox"] == [20.0, 5.0, 12.0, 10.0]
    ours = score(gt, results)
    # independent pycocotools run on the same results
    coco = COCO()
    coco.dataset = copy.deepcopy(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(results)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ours["coco_bbox_map@pycocotools"].value == pytest.approx(100 * ev.stats[0])
    assert ours["coco_bbox_ap50@pycocotools"].value == pytest.approx(100 * ev.stats[1])
    # both ground-truth boxes found exactly, each ranked above the false positive of another image's class
    assert ours["coco_bbox_map@pycocotools"].value == pytest.approx(100.0)


def test_real_detector_output_is_accepted_by_cocoeval():
    from bench.data.smoke import shapes_coco

    val = shapes_coco("val")
    subset_ids = {img["id"] for img in val.data["images"][:3]}
    gt = dict(val.data, images=[i for i in val.data["images"] if i["id"] in subset_ids],
              annotations=[a for a in val.data["annotations"] if a["image_id"] in subset_ids])
    from bench.data.base import InMemoryDataset

    items = [val[i] for i in range(3)]
    det = _smoke_detector()
    results = predict(det, InMemoryDataset("three", items), CategoryMap(val.data["categories"]))
    assert results and all(r["category_id"] in {1, 2, 3} and len(r["bbox"]) == 4 for r in results)
    assert len({r["image_id"] for r in results}) <= 3 and all(r["image_id"] in subset_ids for r in results)
    value = score(gt, results)["coco_bbox_map@pycocotools"].value
    assert 0.0 <= value <= 100.0
