"""Soft Teacher and STAC on the SSOD core (baselines/ssod/soft_teacher.py, stac.py, strong_aug.py): each published
rule against a hand calculation — soft background weights and the weighted classification loss, box-jitter
noise and the regression reliability, which pseudo-boxes teach which head, STAC's offline confidence filter and
its mapping back to image coordinates — and the box-aware strong augmentation's geometry."""
from __future__ import annotations

import math

import pytest
import torch

from baselines.ssod.augment import ResizeSpec
from baselines.ssod.configs import SMOKE_DETECTOR, named_config
from baselines.ssod.data import CategoryMap, collate
from baselines.ssod.detector import build_detector
from baselines.ssod.soft_teacher import (
    SoftTeacher,
    SoftTeacherConfig,
    SoftTeacherPairs,
    jitter_boxes,
    pseudo_targets,
    regression_uncertainty,
    soft_background_weights,
    soft_cls_loss,
)
from baselines.ssod.stac import (
    STAC,
    STACConfig,
    STACPairs,
    confident_detections,
    offline_pseudo_labels,
)
from baselines.ssod.strong_aug import affine_matrix, colour_op, transform_boxes, warp
from bench.registry import BenchError


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ---------------------------------------------------------------------------------------------------------
# Soft Teacher

def test_soft_background_weights_and_loss_match_a_hand_calculation():
    labels = torch.tensor([2, 0, 0])
    # teacher logits (background first): RoI 1 -> p_bg = e^2 / (e^2 + 1 + 1), RoI 2 -> p_bg = 1 / (1 + e^1 + 1)
    teacher = torch.tensor([[0.0, 3.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    w = soft_background_weights(labels, teacher)
    e = math.e
    expected = [1.0, e ** 2 / (e ** 2 + 2), 1 / (2 + e)]   # a foreground RoI weighs 1 whatever the teacher says
    assert w.tolist() == pytest.approx(expected)
    student = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    ce = [math.log(2 + e) - 1, math.log(2 + e) - 1, math.log(3)]  # -log softmax of the student at the label
    hand = sum(c * wi for c, wi in zip(ce, expected)) / sum(expected)
    assert float(soft_cls_loss(student, labels, w)) == pytest.approx(hand)
    # a batch whose weights sum below 1 is divided by 1 (max(sum, 1) in the official loss)
    small = torch.tensor([0.0, 0.25, 0.25])
    assert float(soft_cls_loss(student, labels, small)) == pytest.approx(0.25 * ce[1] + 0.25 * ce[2])


def test_box_jitter_draws_normal_offsets_scaled_by_the_box_sides():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0], [5.0, 5.0, 5.5, 5.2]])  # 20 x 40, and a sub-pixel box
    out = jitter_boxes(boxes, times=3, scale=0.06, generator=torch.Generator().manual_seed(0))
    noise = torch.randn((3, 2, 4), generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([[1.2, 2.4, 1.2, 2.4], [0.06, 0.06, 0.06, 0.06]])  # 0.06 x (w, h, w, h), sides clamped at 1
    assert torch.allclose(out, boxes[None] + noise * sigma[None])


def test_regression_uncertainty_matches_a_hand_calculation():
    # two refined copies per box. Box 0: x1 and x2 differ by 2 (std 2 / sqrt 2), mean box 10 x 20 px.
    # Box 1: identical copies (std 0). Box 2: y1 and y2 differ by 0.8 (std 0.8 / sqrt 2), mean box 20 x 10 px.
    refined = torch.tensor([[[0.0, 0.0, 10.0, 20.0], [0.0, 0.0, 5.0, 5.0], [0.0, 0.0, 20.0, 10.0]],
                            [[2.0, 0.0, 12.0, 20.0], [0.0, 0.0, 5.0, 5.0], [0.0, 0.8, 20.0, 10.8]]])
    s = 2 / math.sqrt(2)
    expected = [(s / 10 + 0 + s / 10 + 0) / 4, 0.0, (0 + (0.8 / math.sqrt(2)) / 10) * 2 / 4]  # 0.0354, 0, 0.0283
    unc = regression_uncertainty(refined)
    assert unc.tolist() == pytest.approx(expected)
    # the official reliability rule: a box is a regression target iff its uncertainty is below 0.02
    assert (unc < 0.02).tolist() == [False, True, False]
    assert regression_uncertainty(torch.zeros(10, 0, 4)).shape == (0,)


def test_pseudo_targets_pick_by_score_for_rpn_and_cls_and_by_jitter_for_regression():
    cfg = SoftTeacherConfig()  # official: rpn / cls > 0.9, regression uncertainty < 0.02
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0], [40.0, 40.0, 50.0, 50.0],
                          [60.0, 0.0, 64.0, 10.0]])
    scores = torch.tensor([0.95, 0.6, 0.9, 0.99])
    labels = torch.tensor([1, 2, 3, 1])
    unc = torch.tensor([0.05, 0.01, 0.001, 0.001])
    shift = affine_matrix("translate_x", 0.1, 64, 64)  # +6.4 px: the last box leaves the 64-px image
    (rb, rl), (_, cl), (gb, gl) = pseudo_targets(boxes, scores, labels, unc, shift, (64, 64), cfg)
    assert rl.tolist() == [1] and cl.tolist() == [1]          # 0.9 is not > 0.9; the last box has no area left
    assert torch.allclose(rb, torch.tensor([[6.4, 0.0, 16.4, 10.0]]))
    assert gl.tolist() == [2, 3]                                # a 0.6-score box is reliable enough to regress
    assert torch.allclose(gb, boxes[1:3] + torch.tensor([6.4, 0.0, 6.4, 0.0]))
    no_jitter = SoftTeacherConfig(box_jitter=False)
    assert len(pseudo_targets(boxes, scores, labels, unc, shift, (64, 64), no_jitter)[2][1]) == 0


def _smoke_data():
    from bench.data.smoke import labelled_split

    labelled, unlabelled = labelled_split(10.0, 1)
    return labelled, unlabelled, CategoryMap(labelled.data["categories"])


def test_soft_teacher_trains_a_step_and_the_matrix_maps_weak_to_strong():
    torch.manual_seed(0)
    labelled, unlabelled, cats = _smoke_data()
    recipe = named_config("smoke-soft-teacher")
    pairs = SoftTeacherPairs(labelled, unlabelled, cats, recipe.augment)
    batch = collate([pairs[0], pairs[1]])
    assert [m.shape for m in batch["u_matrix"]] == [(3, 3), (3, 3)]
    module = SoftTeacher(build_detector(SMOKE_DETECTOR), recipe.ssod).train()
    loss, logs = module(batch)
    assert torch.isfinite(loss) and {"unsup_loss_roi_cls", "unsup_loss_roi_box", "soft_bg_weight"} <= set(logs)
    loss.backward()
    assert module.student.cls_score.weight.grad is not None and module.teacher.cls_score.weight.grad is None
    with pytest.raises(BenchError, match="jitter_times"):
        SoftTeacherConfig(jitter_times=1)


# ---------------------------------------------------------------------------------------------------------
# STAC

def test_stac_keeps_confident_boxes_or_each_images_best():
    # STAC's get_pseudo_gt: scores >= min(0.9, max score)
    assert confident_detections(torch.tensor([0.95, 0.92, 0.5]), 0.9).tolist() == [True, True, False]
    assert confident_detections(torch.tensor([0.6, 0.3, 0.6]), 0.9).tolist() == [True, False, True]
    assert confident_detections(torch.tensor([0.9, 0.89]), 0.9).tolist() == [True, False]
    assert confident_detections(torch.zeros(0), 0.9).tolist() == []


class _FixedTeacher(torch.nn.Module):
    """Detects the same boxes on every image, in the coordinates of the view it is given."""

    def __init__(self):
        super().__init__()
        self.sizes = []

    def detect(self, images):
        self.sizes += [tuple(img.shape[-2:]) for img in images]
        det = {"boxes": torch.tensor([[8.0, 16.0, 40.0, 48.0], [0.0, 0.0, 4.0, 4.0], [10.0, 10.0, 20.0, 30.0]]),
               "scores": torch.tensor([0.97, 0.91, 0.4]), "labels": torch.tensor([2, 1, 3])}
        return [dict(det) for _ in images]


def test_offline_pseudo_labels_are_filtered_once_and_mapped_to_image_coordinates():
    _, unlabelled, cats = _smoke_data()
    teacher = _FixedTeacher().train()
    view = ResizeSpec("fixed", (256, 128))  # 64-px images detected at 128 px: boxes come back halved
    pseudo = offline_pseudo_labels(teacher, unlabelled, cats, 0.9, view, batch_size=100)
    assert len(pseudo) == len(unlabelled) and set(teacher.sizes) == {(128, 128)}
    boxes, labels = pseudo[0]
    assert labels.tolist() == [2, 1]
    assert torch.allclose(boxes, torch.tensor([[4.0, 8.0, 20.0, 24.0], [0.0, 0.0, 2.0, 2.0]]))
    assert teacher.training  # the teacher's mode is restored


def test_stac_pairs_carry_pseudo_boxes_and_train_a_step():
    torch.manual_seed(0)
    labelled, unlabelled, cats = _smoke_data()
    recipe = named_config("smoke-stac")
    box = (torch.tensor([[10.0, 10.0, 30.0, 40.0]]), torch.tensor([2]))
    empty = (torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    pseudo = [box if i % 2 == 0 else empty for i in range(len(unlabelled))]
    pairs = STACPairs(labelled, unlabelled, cats, recipe.augment, pseudo)
    item = pairs[0]
    assert item["labels"][1].tolist() == [2] and item["boxes"][1].shape == (1, 4)
    assert pairs[1]["boxes"][1].shape == (0, 4)   # an image without pseudo-boxes: all its RoIs are background
    module = STAC(build_detector(SMOKE_DETECTOR), recipe.ssod, pseudo).train()
    assert module.pseudo_per_image()["offline"] == pytest.approx(sum(len(p[1]) for p in pseudo) / len(pseudo))
    loss, logs = module(collate([pairs[0], pairs[1]]))
    assert torch.isfinite(loss) and "unsup_loss_roi_cls" in logs and "sup_loss_roi_cls" in logs
    with pytest.raises(BenchError, match="pseudo-label sets"):
        STACPairs(labelled, unlabelled, cats, recipe.augment, pseudo[:-1])
    with pytest.raises(BenchError, match="student_init"):
        STACConfig(student_init="imagenet")


# ---------------------------------------------------------------------------------------------------------
# LabelMatch's re-implementations (the protocol of CTF's table: configs soft-teacher-40k / stac-40k)

def test_labelmatch_stac_filter_keeps_only_scores_above_the_threshold():
    # hikvision-research/SSOD STACHook: `box[-1] > score_thr`, no best-box fallback
    assert confident_detections(torch.tensor([0.95, 0.9, 0.91]), 0.9, keep_best=False).tolist() == [True, False, True]
    assert confident_detections(torch.tensor([0.6, 0.3]), 0.9, keep_best=False).tolist() == [False, False]
    teacher = _FixedTeacher()
    _, unlabelled, cats = _smoke_data()
    pseudo = offline_pseudo_labels(teacher, unlabelled, cats, 0.95, ResizeSpec(), keep_best=False)
    assert pseudo[0][1].tolist() == [2]   # 0.97 only; with the fallback the same (0.97 is the best)
    pseudo = offline_pseudo_labels(teacher, unlabelled, cats, 0.98, ResizeSpec(), keep_best=False)
    assert pseudo[0][1].tolist() == []    # the fallback would keep the 0.97 box


def _smoke_with(name, **ssod):
    from dataclasses import replace

    recipe = named_config(name)
    return replace(recipe, ssod=replace(recipe.ssod, **ssod))


def test_labelmatch_soft_teacher_has_no_box_terms_on_unlabelled_images():
    """use_bbox_reg=False in LabelMatch's SoftTeacher zeroes every unlabelled 'bbox' loss, the RPN's included."""
    torch.manual_seed(0)
    labelled, unlabelled, cats = _smoke_data()
    recipe = _smoke_with("smoke-soft-teacher", box_jitter=False, unsup_rpn_box=False, views="labelmatch")
    pairs = SoftTeacherPairs(labelled, unlabelled, cats, recipe.augment, views="labelmatch")
    batch = collate([pairs[0], pairs[1]])
    # the smoke views keep the 64-px size: the student view only differs in pixels, the matrix is the identity
    assert all(torch.equal(m, torch.eye(3, dtype=torch.float64)) for m in batch["u_matrix"])
    assert all(w.shape == s.shape and not torch.equal(w, s) for w, s in zip(batch["u_weak"], batch["u_strong"]))
    module = SoftTeacher(build_detector(SMOKE_DETECTOR), recipe.ssod).train()
    _, logs = module(batch)
    unsup = {k for k in logs if k.startswith("unsup_")}
    assert unsup == {"unsup_loss_rpn_cls", "unsup_loss_roi_cls"}
    official = SoftTeacher(build_detector(SMOKE_DETECTOR), _smoke_with("smoke-soft-teacher").ssod).train()
    assert "unsup_loss_rpn_box" in official(batch)[1]
    with pytest.raises(BenchError, match="views"):
        SoftTeacherConfig(views="mean-teacher")


def test_labelmatch_stac_views_keep_the_pseudo_boxes_and_change_the_pixels():
    """AugmentationUT(use_re=True, use_box=False): colour ops and erasing only, so without resize or flip the
    pseudo-boxes reach the student unchanged (the official strong view moves them with its affine)."""
    from dataclasses import replace

    torch.manual_seed(0)
    labelled, unlabelled, cats = _smoke_data()
    recipe = _smoke_with("smoke-stac", keep_best=False, views="labelmatch")
    aug = replace(recipe.augment, flip_prob=0.0)
    box = (torch.tensor([[10.0, 10.0, 30.0, 40.0]]), torch.tensor([2]))
    pseudo = [box] * len(unlabelled)
    pairs = STACPairs(labelled, unlabelled, cats, aug, pseudo, views="labelmatch")
    original = pairs.unlabelled.get(0)[0]
    for i in range(8):
        item = pairs[i]
        assert torch.equal(item["boxes"][1], box[0]) and item["labels"][1].tolist() == [2]
        assert item["images"][1].shape == original.shape
    assert not torch.equal(pairs[0]["images"][1], original)
    official = STACPairs(labelled, unlabelled, cats, aug, pseudo)
    moved = sum(not torch.equal(official[i]["boxes"][1], box[0]) for i in range(8))
    assert moved > 0


# ---------------------------------------------------------------------------------------------------------
# strong augmentation geometry

def test_rotation_about_the_centre_moves_boxes_as_by_hand():
    m = affine_matrix("rotate", 90.0, 64, 64)
    # (x, y) -> (32 - (y - 32), 32 + (x - 32)): box [8, 16, 24, 20] -> corners span x 44..48, y 8..24
    boxes, keep = transform_boxes(torch.tensor([[8.0, 16.0, 24.0, 20.0]]), m, 64, 64)
    assert keep.tolist() == [True]
    assert torch.allclose(boxes, torch.tensor([[44.0, 8.0, 48.0, 24.0]]), atol=1e-5)
    shear = affine_matrix("shear_x", 45.0, 64, 64)   # x' = x + (y - 32)
    boxes, _ = transform_boxes(torch.tensor([[10.0, 30.0, 20.0, 40.0]]), shear, 64, 64)
    assert torch.allclose(boxes, torch.tensor([[8.0, 30.0, 28.0, 40.0]]), atol=1e-5)


def test_warp_by_a_whole_pixel_translation_shifts_the_image():
    image = torch.rand(3, 8, 10)
    out = warp(image, affine_matrix("translate_x", 0.2, 8, 10), fill=0.5)   # +2 px
    assert torch.allclose(out[:, :, 2:], image[:, :, :-2], atol=1e-6)
    assert torch.allclose(out[:, :, :2], torch.full_like(out[:, :, :2], 0.5))


def test_colour_ops_follow_the_auto_augment_levels():
    image = torch.tensor([0.1, 0.5, 0.9]).view(3, 1, 1).expand(3, 2, 2).clone()
    # solarize at level 5: threshold (256 - 128) / 256 = 0.5 -> values >= 0.5 are inverted
    out = colour_op(image, "solarize", 5)
    assert out[:, 0, 0].tolist() == pytest.approx([0.1, 0.5, 0.1])
    # brightness at level 5: factor 0.1 + 1.8 * 0.5 = 1.0 (identity); at level 1: 0.28
    assert torch.allclose(colour_op(image, "brightness", 5), image)
    assert torch.allclose(colour_op(image, "brightness", 1), image * 0.28)
