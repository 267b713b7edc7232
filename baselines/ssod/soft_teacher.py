"""Soft Teacher (ICCV 2021; microsoft/SoftTeacher ssod/models/soft_teacher.py and configs/soft_teacher/base.py,
restated) on the SSOD core: an EMA teacher labels the weak view of each unlabelled image, the student learns on a
strong view.

Pseudo-boxes: the teacher's detections (its training proposals, the test-time box head: score > 0.05, NMS 0.5,
100 per image) with score > 0.5 (`initial_thresh`). Three subsets of them teach the student:
* RPN (objectness and box terms): score > 0.9 (`rpn_thresh`);
* RoI classification: score > 0.9 (`cls_thresh`), with SOFT BACKGROUND weighting: the student's sampled RoIs are
  mapped back into the teacher's view and scored by the teacher's box head; a RoI sampled as background weighs its
  cross-entropy by the teacher's background probability there, a foreground RoI weighs 1, and the loss is
  sum(weight x CE) / max(sum(weight), 1);
* RoI box regression: by BOX JITTERING instead of the score. Each pseudo-box is jittered `jitter_times` (10) times
  by N(0, (0.06 x side)^2) offsets per coordinate (x by the width, y by the height), the teacher's box head refines
  every copy, and the per-coordinate standard deviation of the refined boxes over the copies, divided by the mean
  refined box's width / height (clamped at 1 pixel), is averaged over the four coordinates: a box whose value is
  below 0.02 (`reg_unc_thresh`) is a regression target, whatever its score. The student samples RoIs against these
  boxes again (the official code runs roi_head.forward_train a second time) and only its box loss is used.
The unsupervised losses (RPN cls + box, RoI cls, RoI box) are weighted by 4.0 (`unsup_weight`; LabelMatch's
re-implementation, whose numbers CTF's table cites, uses 2.0 and no box jitter). EMA momentum 0.999.

Views: one shared flip; weak = the teacher resize; strong = the student resize plus strong_aug.strong_view (one
colour op and one global affine in random order, then cutout); the matrix M that maps weak-view to strong-view
coordinates travels with the batch (`u_matrix`). Labelled images: resize, flip and one RandAugment colour op.
Deviation: the official sampler draws 1 labelled : 4 unlabelled images per batch; SemiPairs's 1 : 1 keeps every
SSOD entry on the same images per step (and is the protocol of LabelMatch's re-implementation, below).

LabelMatch's re-implementation (hikvision-research/SSOD mmdet_extension/models/detectors/soft_teacher.py with
configs/soft_teacher/soft_teacher_standard.py), whose numbers CTF's table cites, differs in four knobs, all set by
baselines.ssod.configs' soft-teacher-40k / soft-teacher-voc:
* one score threshold 0.9 (`score_thr`) for the RPN and the classification targets, no box jitter
  (`box_jitter=False`: "Not support box jitter now");
* `use_bbox_reg=False` zeroes EVERY unlabelled loss whose name holds 'bbox', the RPN's box term included
  (`unsup_rpn_box=False`);
* weight_u 2.0 and EMA momentum 0.996 (its defaults; the config sets neither);
* its views (`views="labelmatch"`): labelled = resize + flip + UT-strong colour (AugmentationUT, no erasing);
  student = resize + UT-strong colour + three random erasings, no affine (pipeline_u_1); teacher = resize
  (pipeline_u), one shared flip.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.ssod.augment import hflip, resize
from baselines.ssod.boxes import clip_boxes
from baselines.ssod.data import SemiPairs
from baselines.ssod.detector import Detector
from baselines.ssod.methods import floats, labelled_losses, total
from baselines.ssod.strong_aug import random_colour, strong_view, transform_boxes
from baselines.ssod.teacher import ema_update, make_teacher
from bench.registry import BenchError

# "official": microsoft/SoftTeacher's pipelines; "labelmatch": hikvision-research/SSOD's (Unbiased Teacher's strong
# colour ops and random erasing, no geometric op)
VIEWS = ("official", "labelmatch")


@dataclass(frozen=True)
class SoftTeacherConfig:
    method: str = "soft-teacher"
    keep_rate: float = 0.999            # MeanTeacher hook momentum
    unsup_weight: float = 4.0
    candidate_score: float = 0.05       # the teacher's test_cfg.rcnn score_thr (mmdet's Faster R-CNN default)
    initial_thresh: float = 0.5         # pseudo_label_initial_score_thr
    rpn_thresh: float = 0.9             # rpn_pseudo_threshold
    cls_thresh: float = 0.9             # cls_pseudo_threshold
    reg_unc_thresh: float = 0.02        # reg_pseudo_threshold
    jitter_times: int = 10
    jitter_scale: float = 0.06
    box_jitter: bool = True             # False: LabelMatch's re-implementation (no regression on pseudo-boxes)
    unsup_rpn_box: bool = True          # False: LabelMatch's use_bbox_reg=False also drops the RPN box term
    views: str = "official"             # "official" (RandAugment op + affine + cutout) | "labelmatch" (UT strong)
    cls_loss: str = "ce"                # the burn-in's classification loss (recipe.burn_in_loss)
    act_interval: int = 0               # no threshold refresh (LabelMatch's ACT only)
    act_images: int = 0                 # no ACT images to score (the recipe's caps read it)

    def __post_init__(self) -> None:
        if self.method != "soft-teacher":
            raise BenchError(f"SoftTeacherConfig is for method 'soft-teacher', got {self.method!r}")
        if not 0.0 <= self.keep_rate <= 1.0:
            raise BenchError(f"keep_rate must lie in [0, 1], got {self.keep_rate}")
        if self.jitter_times < 2:
            raise BenchError(f"jitter_times must be at least 2 (a standard deviation), got {self.jitter_times}")
        if self.views not in VIEWS:
            raise BenchError(f"views must be one of {', '.join(VIEWS)}, got {self.views!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------------------
# the two rules, as functions a test can check by hand

def jitter_boxes(boxes: Tensor, times: int, scale: float, generator: torch.Generator | None = None) -> Tensor:
    """[times, N, 4] copies of boxes [N, 4] shifted by N(0, 1) x scale x (w, h, w, h) (sides clamped at 1)."""
    wh = (boxes[:, 2:4] - boxes[:, :2]).clamp(min=1.0)
    sigma = torch.cat([wh, wh], dim=1) * scale
    noise = torch.randn((times, *boxes.shape), generator=generator, dtype=boxes.dtype).to(boxes.device)
    return boxes[None] + noise * sigma[None]


def regression_uncertainty(refined: Tensor) -> Tensor:
    """[N] box-jitter uncertainty of refined copies [times, N, 4]: per-coordinate std over the copies (unbiased,
    as torch.std) divided by the mean box's (w, h, w, h) clamped at 1, averaged over the 4 coordinates."""
    if refined.shape[1] == 0:
        return refined.new_zeros(0)
    mean = refined.mean(dim=0)
    wh = (mean[:, 2:4] - mean[:, :2]).clamp(min=1.0)
    return (refined.std(dim=0) / torch.cat([wh, wh], dim=1)).mean(dim=1)


def soft_background_weights(labels: Tensor, teacher_logits: Tensor) -> Tensor:
    """Per-RoI weights of the classification loss: 1 for foreground RoIs (label > 0), the teacher's background
    probability (softmax column 0) for background RoIs."""
    background = F.softmax(teacher_logits, dim=-1)[:, 0]
    return torch.where(labels > 0, torch.ones_like(background), background)


def soft_cls_loss(logits: Tensor, labels: Tensor, weights: Tensor) -> Tensor:
    return (F.cross_entropy(logits, labels, reduction="none") * weights).sum() / weights.sum().clamp(min=1.0)


def pseudo_targets(boxes: Tensor, scores: Tensor, labels: Tensor, uncertainty: Tensor, matrix: Tensor,
                   size: tuple[int, int], cfg: SoftTeacherConfig):
    """One image's ((RPN boxes, labels), (classification boxes, labels), (regression boxes, labels)) in the
    student view: the teacher's boxes moved by `matrix` (boxes left with no area dropped), selected by score for
    RPN (> rpn_thresh) and classification (> cls_thresh) and by box-jitter uncertainty (< reg_unc_thresh) for
    regression, whatever their score (none without box jitter)."""
    moved, valid = transform_boxes(boxes, matrix, size[0], size[1])
    rpn = valid & (scores > cfg.rpn_thresh)
    cls = valid & (scores > cfg.cls_thresh)
    reg = valid & (uncertainty < cfg.reg_unc_thresh) & cfg.box_jitter
    return (moved[rpn], labels[rpn]), (moved[cls], labels[cls]), (moved[reg], labels[reg])


# ---------------------------------------------------------------------------------------------------------
# data

class SoftTeacherPairs(SemiPairs):
    """SemiPairs with Soft Teacher's views: a RandAugment colour op on labelled images; the unlabelled strong view
    through a recorded affine (`u_matrix`: weak-view -> strong-view coordinates). With views="labelmatch"
    LabelMatch's views instead (SemiPairs's: UT-strong colour, erasing on the student view), `u_matrix` then only
    scales between the two resizes."""

    def __init__(self, labelled: Any, unlabelled: Any, cats, aug, cache: bool = True, views: str = "official"):
        super().__init__(labelled, unlabelled, cats, aug, cache)
        self.views = views

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.views == "labelmatch":
            item = super().__getitem__(index)
            sx, sy = (float(v) for v in item.pop("u_to_student"))
            item["u_matrix"] = torch.diag(torch.tensor([sx, sy, 1.0], dtype=torch.float64))
            return item
        pick = int(torch.randint(0, len(self.labelled), ()))
        image, boxes, labels, _ = self.labelled.get(pick)
        image, boxes, _ = resize(image, boxes, self.aug.labelled_resize)
        if float(torch.rand(())) < self.aug.flip_prob:
            image, boxes = hflip(image, boxes)
        image = random_colour(image)
        u_image, _, _, u_id = self.unlabelled.get(index)
        empty = u_image.new_zeros((0, 4))
        if float(torch.rand(())) < self.aug.flip_prob:
            u_image, _ = hflip(u_image, empty)
        weak, _, _ = resize(u_image, empty, self.aug.teacher_resize)
        strong, _, _ = resize(u_image, empty, self.aug.student_resize or self.aug.teacher_resize)
        scale = torch.diag(torch.tensor([strong.shape[-1] / weak.shape[-1], strong.shape[-2] / weak.shape[-2], 1.0],
                                        dtype=torch.float64))
        strong, _, _, affine = strong_view(strong, empty, in_box=False)
        return {"images": [image], "boxes": [boxes], "labels": [labels], "u_weak": weak, "u_strong": strong,
                "u_matrix": affine @ scale, "u_image_id": u_id}


# ---------------------------------------------------------------------------------------------------------
# the module the shared loop trains

@dataclass
class TeacherView:
    features: dict[str, Tensor]
    sizes: list[tuple[int, int]]
    boxes: list[Tensor]             # teacher-view pseudo-boxes with score > initial_thresh
    scores: list[Tensor]
    labels: list[Tensor]
    uncertainty: list[Tensor]       # box-jitter regression uncertainty (zeros when box_jitter is off)


class SoftTeacher(nn.Module):
    def __init__(self, detector: Detector, cfg: SoftTeacherConfig):
        super().__init__()
        self.cfg = cfg
        self.student = detector
        self.teacher = make_teacher(detector)
        # images seen; pseudo-boxes for RPN, classification and regression (logged as per-image means)
        self.register_buffer("pseudo_counts", torch.zeros(4, dtype=torch.float64))

    def train(self, mode: bool = True) -> SoftTeacher:
        super().train(mode)
        self.teacher.eval()
        return self

    @torch.no_grad()
    def teacher_view(self, weak: Sequence[Tensor]) -> TeacherView:
        teacher, cfg = self.teacher, self.cfg
        image_list, features = teacher.extract(list(weak))
        proposals, _ = teacher.rpn.run(image_list, features, None, train_proposals=True)
        logits, deltas = teacher.box_forward(features, proposals)
        dets = teacher.postprocess(logits, deltas, proposals, image_list.image_sizes, cfg.candidate_score)
        boxes, scores, labels = [], [], []
        for det in dets:
            keep = (det["scores"] > cfg.initial_thresh) & (det["boxes"][:, 2] > det["boxes"][:, 0]) \
                & (det["boxes"][:, 3] > det["boxes"][:, 1])
            boxes.append(det["boxes"][keep])
            scores.append(det["scores"][keep])
            labels.append(det["labels"][keep])
        sizes = list(image_list.image_sizes)
        uncertainty = self.jitter_uncertainty(features, boxes, labels, sizes) if cfg.box_jitter \
            else [b.new_zeros(len(b)) for b in boxes]
        return TeacherView(features, sizes, boxes, scores, labels, uncertainty)

    @torch.no_grad()
    def jitter_uncertainty(self, features: dict[str, Tensor], boxes: list[Tensor], labels: list[Tensor],
                           sizes: list[tuple[int, int]]) -> list[Tensor]:
        times = self.cfg.jitter_times
        jittered = [jitter_boxes(b, times, self.cfg.jitter_scale).reshape(-1, 4) for b in boxes]
        _, deltas = self.teacher.box_forward(features, jittered)
        out, start = [], 0
        for rois, lab, size in zip(jittered, labels, sizes):
            k = len(rois)
            refined = clip_boxes(self.teacher.decode(deltas[start:start + k], rois, lab.repeat(times)), size)
            out.append(regression_uncertainty(refined.reshape(times, -1, 4)))
            start += k
        return out

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        cfg = self.cfg
        sup = labelled_losses(self.student, batch, "ce")
        view = self.teacher_view(batch["u_weak"])
        unsup, stats = self.unlabelled_losses(batch["u_strong"], batch["u_matrix"], view)
        loss = total(sup) + total(unsup, cfg.unsup_weight)
        return loss, {**floats(sup, "sup_"), **floats(unsup, "unsup_"), **stats}

    def unlabelled_losses(self, strong: Sequence[Tensor], matrices: Sequence[Tensor],
                          view: TeacherView) -> tuple[dict[str, Tensor], dict[str, float]]:
        cfg, student = self.cfg, self.student
        rpn_t, cls_t, reg_t = [], [], []
        for img, m, boxes, scores, labels, unc in zip(strong, matrices, view.boxes, view.scores, view.labels,
                                                      view.uncertainty):
            rpn, cls, reg = pseudo_targets(boxes, scores, labels, unc, m, tuple(img.shape[-2:]), cfg)
            rpn_t.append(rpn[0])
            cls_t.append(cls)
            reg_t.append(reg)
        image_list, features = student.extract(list(strong))
        proposals, losses = student.rpn.run(image_list, features, rpn_t, train_proposals=True)
        if not cfg.unsup_rpn_box:
            losses.pop("loss_rpn_box")
        # classification: standard sampling against the confident boxes, background weighted by the teacher
        samples = [student.sample_rois(p, b, lab) for p, (b, lab) in zip(proposals, cls_t)]
        logits, _ = student.box_forward(features, [s.boxes for s in samples])
        labels = torch.cat([s.labels for s in samples])
        with torch.no_grad():
            back = [transform_boxes(s.boxes, torch.linalg.inv(m), size[0], size[1])[0]
                    for s, m, size in zip(samples, matrices, view.sizes)]
            teacher_logits, _ = self.teacher.box_forward(view.features, back)
            weights = soft_background_weights(labels, teacher_logits)
        losses["loss_roi_cls"] = soft_cls_loss(logits, labels, weights)
        # regression: the jitter-reliable boxes, sampled again, box term only
        if cfg.box_jitter:
            samples_r = [student.sample_rois(p, b, lab) for p, (b, lab) in zip(proposals, reg_t)]
            logits_r, deltas_r = student.box_forward(features, [s.boxes for s in samples_r])
            losses["loss_roi_box"] = student.roi_losses(logits_r, deltas_r, samples_r,
                                                        logits_r.new_ones(len(logits_r)))["loss_roi_box"]
        n = float(len(strong))
        counts = [float(sum(len(b) for b in rpn_t)), float(sum(len(b) for b, _ in cls_t)),
                  float(sum(len(b) for b, _ in reg_t))]
        with torch.no_grad():
            self.pseudo_counts += torch.tensor([n, *counts], dtype=torch.float64)
        stats = {"pseudo_rpn": counts[0] / n, "pseudo_cls": counts[1] / n, "pseudo_reg": counts[2] / n,
                 "soft_bg_weight": float(weights[labels == 0].mean()) if bool((labels == 0).any()) else 0.0}
        return losses, stats

    def pseudo_per_image(self) -> dict[str, float]:
        images = max(float(self.pseudo_counts[0]), 1.0)
        return {name: float(self.pseudo_counts[i + 1]) / images for i, name in enumerate(("rpn", "cls", "reg"))}

    def after_step(self) -> None:
        ema_update(self.teacher, self.student, self.cfg.keep_rate)

    def eval_network(self) -> Detector:
        return self.teacher
