"""The SSOD training objectives: supervised-only burn-in, Unbiased Teacher and LabelMatch.

Each semi-supervised method is an nn.Module holding the student (trained), its EMA teacher (see teacher.py) and the
pseudo-label thresholds as buffers, so the shared loop's checkpoints carry everything and a resumed run continues
exactly. `forward(batch)` returns (total loss, logged extras); `after_step()` updates the teacher (called by a
bench.train Hook after every optimizer step, as LabelMatch updates its EMA at the start of the next iteration).

Unbiased Teacher (ICLR 2021; facebookresearch/unbiased-teacher, restated): labelled loss on the strong and weak
copies; the teacher's detections on the weak unlabelled view with score >= 0.7 are pseudo-boxes for the strong view;
only classification terms learn from them (RPN objectness and the RoI focal loss, gamma 1.5; both box-regression
terms are multiplied by 0 in the official trainer); unsupervised weight 4.

LabelMatch (CVPR 2022; hikvision-research/SSOD, restated): reliable and uncertain pseudo-boxes from the ACT
thresholds (pseudo.py); the RPN learns from reliable + uncertain boxes (objectness and box terms); the RoI head
samples against both (Detector.sample_rois); uncertain RoIs are fed to the TEACHER's box head on the weak view
(proposal self-assignment) and learn its class distribution softmax(z_t / 0.5) with soft cross-entropy on the
student's softmax(z_s / 1.0), summed and divided by images x RoIs per image; an uncertain box whose RoIs have mean
IoU >= 0.8 with the teacher's refined boxes and mean teacher score >= 0.8 for its class is promoted (mining) to a
hard target. Unsupervised weight 2, EMA keep-rate 0.996.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.ssod.boxes import box_iou, scale_boxes
from baselines.ssod.detector import Detector, SampledRoIs
from baselines.ssod.pseudo import (
    act_thresholds,
    collect_scores,
    split_pseudo_labels,
    to_tensor,
)
from baselines.ssod.teacher import ema_update, make_teacher
from bench.registry import BenchError

METHOD_NAMES = ("unbiased-teacher", "labelmatch")


@dataclass(frozen=True)
class SSODConfig:
    method: str = "labelmatch"
    keep_rate: float = 0.996                # EMA keep-rate (LabelMatch 0.996, UT 0.9996 on COCO / 0.999 on VOC)
    unsup_weight: float = 2.0               # LabelMatch 2.0, UT 4.0 (COCO) / 2.0 (VOC)
    # Unbiased Teacher
    score_thresh: float = 0.7               # UT BBOX_THRESHOLD
    cls_loss: str = "ce"                    # "focal" in UT's RoI head
    focal_gamma: float = 1.5
    # LabelMatch
    initial_thresh: float = 0.9             # both thresholds before the first ACT update (LabelMatch score_thr)
    act_percent: float = 0.2
    act_min_thr: float = 0.05
    act_interval: int = 1000                # iterations between ACT updates (LabelMatch update_interval)
    act_images: int = 10000                 # unlabelled images the teacher labels for ACT (manual_length)
    teacher_temperature: float = 0.5
    student_temperature: float = 1.0
    mining: bool = True
    mining_iou: float = 0.8
    mining_score: float = 0.8
    # Teacher detections below this score are never pseudo-labels; 0.05 equals LabelMatch's floor on both
    # thresholds, so candidate filtering changes nothing there.
    candidate_score: float = 0.05

    def __post_init__(self) -> None:
        if self.method not in METHOD_NAMES:
            raise BenchError(f"unknown SSOD method {self.method!r}; expected one of {', '.join(METHOD_NAMES)}")
        if not 0.0 <= self.keep_rate <= 1.0:
            raise BenchError(f"keep_rate must lie in [0, 1], got {self.keep_rate}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SSODConfig:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise BenchError(f"SSODConfig: unknown field {unknown[0]!r}")
        return cls(**data)


# ---------------------------------------------------------------------------------------------------------
# pieces shared with CTF (methods/ctf)

@dataclass
class PseudoLabels:
    """A teacher's view of an unlabelled batch: its features on the weak view (reused by proposal
    self-assignment) and the reliable / uncertain boxes per image, in the STUDENT view's coordinates."""

    features: dict[str, Tensor]
    reliable: list[tuple[Tensor, Tensor]]
    uncertain: list[tuple[Tensor, Tensor]]
    to_student: list[Tensor]
    stats: dict[str, float] = field(default_factory=dict)


@torch.no_grad()
def teacher_pseudo_labels(teacher: Detector, weak: Sequence[Tensor], to_student: Sequence[Tensor],
                          thr_pos: Tensor, thr_unc: Tensor, candidate_score: float) -> PseudoLabels:
    image_list, features = teacher.extract(list(weak))
    proposals, _ = teacher.rpn.run(image_list, features, None, train_proposals=False)
    logits, deltas = teacher.box_forward(features, proposals)
    dets = teacher.postprocess(logits, deltas, proposals, image_list.image_sizes, candidate_score)
    reliable, uncertain = [], []
    for det, factors in zip(dets, to_student):
        sx, sy = float(factors[0]), float(factors[1])
        (rb, rl), (ub, ul) = split_pseudo_labels(det["boxes"], det["scores"], det["labels"], thr_pos, thr_unc)
        reliable.append((scale_boxes(rb, sx, sy), rl))
        uncertain.append((scale_boxes(ub, sx, sy), ul))
    n = max(len(weak), 1)
    stats = {"pseudo_reliable": sum(len(r[1]) for r in reliable) / n,
             "pseudo_uncertain": sum(len(u[1]) for u in uncertain) / n}
    return PseudoLabels(features, reliable, uncertain, list(to_student), stats)


def to_teacher_view(boxes: Tensor, factors: Tensor) -> Tensor:
    return scale_boxes(boxes, 1.0 / float(factors[0]), 1.0 / float(factors[1]))


@dataclass
class StudentRoIs:
    """The student's sampled RoIs on an unlabelled batch and its class logits for them (for extra terms such as
    CTF's cross-pair consistency)."""

    samples: list[SampledRoIs]
    logits: Tensor


def labelmatch_unlabelled_losses(student: Detector, teacher: Detector, strong: Sequence[Tensor],
                                 pseudo: PseudoLabels, cfg: SSODConfig,
                                 keep: list | None = None) -> tuple[dict[str, Tensor], dict[str, float]]:
    """LabelMatch's losses on one unlabelled batch (before the unsupervised weight); `teacher` is the network
    whose box head judges the uncertain RoIs (the one that made `pseudo`). If `keep` is a list, the student's
    RoIs and logits are appended to it as a StudentRoIs."""
    image_list, features = student.extract(list(strong))
    rpn_targets = [torch.cat([r[0], u[0]]) for r, u in zip(pseudo.reliable, pseudo.uncertain)]
    proposals, losses = student.rpn.run(image_list, features, rpn_targets, train_proposals=True)
    samples = [student.sample_rois(p, r[0], r[1], u[0], u[1])
               for p, r, u in zip(proposals, pseudo.reliable, pseudo.uncertain)]
    kind = torch.cat([s.kind for s in samples])
    logits, deltas = student.box_forward(features, [s.boxes for s in samples])
    hard_weight = (kind != 1).to(logits.dtype)
    soft_target, mined = _self_assignment(teacher, samples, pseudo, cfg, logits.dtype)
    if mined is not None:
        hard_weight[kind == 1] = mined
    losses.update(student.roi_losses(logits, deltas, samples, hard_weight, "ce"))
    if soft_target is not None:
        log_p = F.log_softmax(logits[kind == 1] / cfg.student_temperature, dim=-1)
        per_roi = -(soft_target * log_p).sum(dim=-1) * (1.0 - mined)
        losses["loss_soft_cls"] = per_roi.sum() / (len(strong) * student.cfg.roi_batch_per_image)
    else:
        losses["loss_soft_cls"] = logits.sum() * 0.0
    if keep is not None:
        keep.append(StudentRoIs(samples, logits))
    stats = dict(pseudo.stats)
    stats["mined_rois"] = float(mined.sum()) if mined is not None else 0.0
    stats["uncertain_rois"] = float((kind == 1).sum())
    return losses, stats


@torch.no_grad()
def _self_assignment(teacher: Detector, samples: list[SampledRoIs], pseudo: PseudoLabels, cfg: SSODConfig,
                     dtype: torch.dtype) -> tuple[Tensor | None, Tensor | None]:
    """Proposal self-assignment: the teacher's class distribution (temperature tau_t) on every uncertain RoI,
    and the mining decision (1 = promoted to a hard target) per uncertain RoI, in `samples` order."""
    rois_t = [to_teacher_view(s.boxes[s.kind == 1], f) for s, f in zip(samples, pseudo.to_student)]
    if sum(len(r) for r in rois_t) == 0:
        return None, None
    logits_t, deltas_t = teacher.box_forward(pseudo.features, rois_t)
    soft = F.softmax(logits_t / cfg.teacher_temperature, dim=-1)
    prob = F.softmax(logits_t, dim=-1)
    mined = torch.zeros(len(logits_t), dtype=dtype, device=logits_t.device)
    if not cfg.mining:
        return soft, mined
    start = 0
    for s, rois, factors, (unc_boxes, unc_labels) in zip(samples, rois_t, pseudo.to_student, pseudo.uncertain):
        k = len(rois)
        if k == 0:
            continue
        which = s.uncertain_index[s.kind == 1]
        labels = unc_labels[which]
        refined = teacher.decode(deltas_t[start:start + k], rois, labels)
        boxes_t = to_teacher_view(unc_boxes, factors)
        for j in which.unique().tolist():
            member = which == j
            mean_iou = box_iou(boxes_t[j:j + 1], refined[member]).mean()
            mean_score = prob[start:start + k][member, int(unc_labels[j])].mean()
            if mean_iou >= cfg.mining_iou and mean_score >= cfg.mining_score:
                mined[start:start + k][member] = 1.0
        start += k
    return soft, mined


def unbiased_teacher_unlabelled_losses(student: Detector, strong: Sequence[Tensor], pseudo: PseudoLabels,
                                       cfg: SSODConfig) -> tuple[dict[str, Tensor], dict[str, float]]:
    """UT: RPN objectness and RoI classification on the reliable pseudo-boxes; box terms are not used."""
    image_list, features = student.extract(list(strong))
    boxes = [r[0] for r in pseudo.reliable]
    proposals, rpn = student.rpn.run(image_list, features, boxes, train_proposals=True)
    samples = [student.sample_rois(p, r[0], r[1]) for p, r in zip(proposals, pseudo.reliable)]
    logits, deltas = student.box_forward(features, [s.boxes for s in samples])
    roi = student.roi_losses(logits, deltas, samples, logits.new_ones(len(logits)), cfg.cls_loss, cfg.focal_gamma)
    return {"loss_rpn_cls": rpn["loss_rpn_cls"], "loss_roi_cls": roi["loss_roi_cls"]}, dict(pseudo.stats)


def labelled_losses(student: Detector, batch: dict[str, Any], cls_loss: str) -> dict[str, Tensor]:
    return student.supervised_losses(batch["images"], batch["boxes"], batch["labels"], cls_loss)


def total(losses: dict[str, Tensor], weight: float = 1.0) -> Tensor:
    return sum(losses.values()) * weight


def floats(losses: dict[str, Tensor], prefix: str) -> dict[str, float]:
    return {f"{prefix}{k}": float(v.detach()) for k, v in losses.items()}


# ---------------------------------------------------------------------------------------------------------
# the modules the shared loop trains

class SupervisedOnly(nn.Module):
    """Burn-in / supervised baseline: the detector trained on the labelled split only."""

    def __init__(self, detector: Detector, cls_loss: str = "ce"):
        super().__init__()
        self.student = detector
        self.cls_loss = cls_loss

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        losses = labelled_losses(self.student, batch, self.cls_loss)
        return total(losses), floats(losses, "sup_")

    def eval_network(self) -> Detector:
        return self.student


class MeanTeacher(nn.Module):
    """Student + EMA teacher + per-class thresholds: Unbiased Teacher or LabelMatch (cfg.method)."""

    def __init__(self, detector: Detector, cfg: SSODConfig, boxes_per_image: float = 1.0,
                 class_ratio: Sequence[float] | None = None):
        super().__init__()
        self.cfg = cfg
        self.student = detector
        self.teacher = make_teacher(detector)
        c = detector.num_classes
        first = cfg.score_thresh if cfg.method == "unbiased-teacher" else cfg.initial_thresh
        self.register_buffer("thr_pos", torch.full((c,), float(first)))
        self.register_buffer("thr_unc", torch.full((c,), float(first)))
        ratio = torch.full((c,), 1.0 / c) if class_ratio is None else torch.as_tensor(class_ratio, dtype=torch.float64)
        self.register_buffer("class_ratio", ratio.double())
        self.register_buffer("boxes_per_image", torch.tensor(float(boxes_per_image), dtype=torch.float64))
        # images seen, reliable and uncertain pseudo-boxes the student learned from (LabelMatch's pseudo_num logs)
        self.register_buffer("pseudo_counts", torch.zeros(3, dtype=torch.float64))

    def train(self, mode: bool = True) -> MeanTeacher:
        super().train(mode)
        self.teacher.eval()  # the teacher only ever predicts
        return self

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        cfg = self.cfg
        sup = labelled_losses(self.student, batch, cfg.cls_loss)
        pseudo = teacher_pseudo_labels(self.teacher, batch["u_weak"], batch["u_to_student"], self.thr_pos,
                                       self.thr_unc, cfg.candidate_score)
        if cfg.method == "unbiased-teacher":
            unsup, stats = unbiased_teacher_unlabelled_losses(self.student, batch["u_strong"], pseudo, cfg)
        else:
            unsup, stats = labelmatch_unlabelled_losses(self.student, self.teacher, batch["u_strong"], pseudo, cfg)
        loss = total(sup) + total(unsup, cfg.unsup_weight)
        self.count_pseudo(pseudo)
        return loss, {**floats(sup, "sup_"), **floats(unsup, "unsup_"), **stats}

    @torch.no_grad()
    def count_pseudo(self, pseudo: PseudoLabels) -> None:
        self.pseudo_counts += torch.tensor([len(pseudo.reliable), sum(len(r[1]) for r in pseudo.reliable),
                                            sum(len(u[1]) for u in pseudo.uncertain)], dtype=torch.float64)

    def pseudo_per_image(self) -> dict[str, float]:
        images = max(float(self.pseudo_counts[0]), 1.0)
        return {"reliable": float(self.pseudo_counts[1]) / images, "uncertain": float(self.pseudo_counts[2]) / images}

    def after_step(self) -> None:
        ema_update(self.teacher, self.student, self.cfg.keep_rate)

    @torch.no_grad()
    def refresh_thresholds(self, images: Sequence[Tensor], batch_size: int = 8) -> dict[str, float]:
        """LabelMatch's ACT update from the teacher's detections on `images` (test view of unlabelled images)."""
        if self.cfg.method != "labelmatch":
            return {}
        pos, unc = act_update(self.teacher, images, float(self.boxes_per_image), self.class_ratio.cpu().numpy(),
                              self.cfg, batch_size)
        self.thr_pos.copy_(to_tensor(pos, self.thr_pos))
        self.thr_unc.copy_(to_tensor(unc, self.thr_unc))
        return {**{f"thr_pos_{c + 1}": float(v) for c, v in enumerate(pos)},
                **{f"thr_unc_{c + 1}": float(v) for c, v in enumerate(unc)}}

    def eval_network(self) -> Detector:
        return self.teacher  # LabelMatch, UT: the EMA teacher is evaluated


@torch.no_grad()
def act_update(teacher: Detector, images: Sequence[Tensor], boxes_per_image: float, class_ratio,
               cfg: SSODConfig, batch_size: int = 8):
    # The test-time detections (score_thr 0.001 in LabelMatch's test_cfg): scores below the 0.05 floor still
    # decide which index of the sorted list is read, so they must not be filtered away beforehand.
    dets = []
    for i in range(0, len(images), batch_size):
        dets.extend(teacher.detect(list(images[i:i + batch_size])))
    scores = collect_scores(dets, teacher.num_classes)
    return act_thresholds(scores, len(images), boxes_per_image, class_ratio, cfg.act_percent, cfg.act_min_thr)
