"""CTF (Collaboration of Teachers, arXiv 2405.13374) on top of LabelMatch: K teacher-student pairs with DPCO.

Established (dossier section 2.2): several teacher-student pairs trained in parallel; a burn-in makes their teachers
diverse; DPCO picks the teacher with the lowest accumulated labelled loss and its pseudo-labels guide the OTHER
students; each teacher is the EMA of its own student (W_t <- (1 - alpha) W_t + alpha W_s); the objective is
L = L_l + lambda_u L_u + beta L_DPC with beta = 2. CTF is plugged into LabelMatch.

Not published, so these are documented knobs (CTFConfig), with the reading we chose as default:
* pairs = 2 (K is not given).
* burn-in diversity: pair k's burn-in uses seed `seed + k` (its own initialisation and data order).
* DPCO: dpco.py (running sum of each teacher's supervised loss on the current labelled batch, argmin).
  `dpco_warmup` steps accumulate before the first selection; until then every student uses its own teacher.
* guidance "replace" (default, dossier sketch step 3): student k != best learns L_u (LabelMatch's whole unlabelled
  objective: ACT pseudo-boxes, proposal self-assignment, mining) from the BEST teacher's pseudo-labels and that
  teacher's box head; the best pair's student uses its own teacher. "add": every student keeps its own teacher's
  L_u and students k != best get L_DPC only.
* L_DPC (beta = 2): a cross-pair consistency between the best teacher and student k != best on ALL of student k's
  sampled RoIs of the unlabelled batch: soft cross-entropy of softmax(z_student / tau_s) towards the best teacher's
  softmax(z_teacher / tau_t) on the same regions (mapped to the teacher's view), normalised like LabelMatch's soft
  loss (images x RoIs per image). `dpc_loss="none"` switches it off. This form is a hypothesis.
* Evaluation: the teacher of the pair DPCO selects at the end (a single network, not an ensemble).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.ssod.detector import Detector
from baselines.ssod.methods import (
    MeanTeacher,
    PseudoLabels,
    SSODConfig,
    StudentRoIs,
    floats,
    labelled_losses,
    labelmatch_unlabelled_losses,
    teacher_pseudo_labels,
    to_teacher_view,
    total,
)
from bench.registry import BenchError
from methods.ctf.dpco import accumulate, guide_of, select_best

GUIDANCE = ("replace", "add")
DPC_LOSSES = ("soft_ce", "none")


@dataclass(frozen=True)
class CTFConfig:
    pairs: int = 2                # K: not published
    beta: float = 2.0             # weight of L_DPC (published)
    dpco_decay: float = 1.0       # 1 = plain running sum of the teachers' labelled losses
    dpco_warmup: int = 0          # steps of accumulation before the first selection
    guidance: str = "replace"     # see the module docstring
    dpc_loss: str = "soft_ce"     # "soft_ce" | "none"

    def __post_init__(self) -> None:
        if self.pairs < 2:
            raise BenchError(f"CTF needs at least 2 teacher-student pairs, got {self.pairs}")
        if self.guidance not in GUIDANCE:
            raise BenchError(f"unknown CTF guidance {self.guidance!r}; expected one of {', '.join(GUIDANCE)}")
        if self.dpc_loss not in DPC_LOSSES:
            raise BenchError(f"unknown CTF dpc_loss {self.dpc_loss!r}; expected one of {', '.join(DPC_LOSSES)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CTFConfig:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise BenchError(f"CTFConfig: unknown field {unknown[0]!r}")
        return cls(**data)


def dpc_consistency(student: Detector, guide: Detector, rois: StudentRoIs, pseudo: PseudoLabels, images: int,
                    tau_t: float, tau_s: float) -> Tensor:
    """Soft cross-entropy from the guiding teacher's class distribution to the student's on the student's RoIs."""
    boxes = [to_teacher_view(s.boxes, f) for s, f in zip(rois.samples, pseudo.to_student)]
    if sum(len(b) for b in boxes) == 0:
        return rois.logits.sum() * 0.0
    with torch.no_grad():
        logits_t, _ = guide.box_forward(pseudo.features, boxes)
        target = F.softmax(logits_t / tau_t, dim=-1)
    log_p = F.log_softmax(rois.logits / tau_s, dim=-1)
    return -(target * log_p).sum() / (images * student.cfg.roi_batch_per_image)


class CTF(nn.Module):
    """K MeanTeacher pairs (LabelMatch objective) trained together, with DPCO state as buffers."""

    def __init__(self, detectors: Sequence[Detector], ssod: SSODConfig, cfg: CTFConfig,
                 boxes_per_image: float = 1.0, class_ratio: Sequence[float] | None = None):
        super().__init__()
        if len(detectors) != cfg.pairs:
            raise BenchError(f"CTF with {cfg.pairs} pairs needs {cfg.pairs} burn-in detectors, got {len(detectors)}")
        if ssod.method != "labelmatch":
            raise BenchError("CTF is implemented on top of LabelMatch (ssod.method must be 'labelmatch')")
        self.cfg, self.ssod = cfg, ssod
        self.pairs = nn.ModuleList([MeanTeacher(d, ssod, boxes_per_image, class_ratio) for d in detectors])
        self.register_buffer("accumulated", torch.zeros(cfg.pairs, dtype=torch.float64))
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("selections", torch.zeros(cfg.pairs, dtype=torch.long))

    def best(self) -> int | None:
        if int(self.steps_seen) <= self.cfg.dpco_warmup:
            return None
        return select_best(self.accumulated)

    @torch.no_grad()
    def teacher_labelled_losses(self, batch: dict[str, Any]) -> Tensor:
        losses = []
        for pair in self.pairs:
            out = pair.teacher.supervised_losses(batch["images"], batch["boxes"], batch["labels"], self.ssod.cls_loss)
            losses.append(sum(out.values()).detach())
        return torch.stack(losses)

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        cfg, ssod = self.cfg, self.ssod
        # DPCO: the teachers' performance on labelled data, accumulated; then the guide for this step.
        teacher_losses = self.teacher_labelled_losses(batch)
        self.accumulated.copy_(accumulate(self.accumulated, teacher_losses, cfg.dpco_decay))
        self.steps_seen += 1
        best = self.best()
        if best is not None:
            self.selections[best] += 1
        pseudo_cache: dict[int, PseudoLabels] = {}

        def pseudo_of(k: int) -> PseudoLabels:
            if k not in pseudo_cache:
                pair = self.pairs[k]
                pseudo_cache[k] = teacher_pseudo_labels(pair.teacher, batch["u_weak"], batch["u_to_student"],
                                                        pair.thr_pos, pair.thr_unc, ssod.candidate_score)
            return pseudo_cache[k]

        loss = torch.zeros((), device=self.accumulated.device)
        extras: dict[str, float] = {}
        for k, pair in enumerate(self.pairs):
            sup = labelled_losses(pair.student, batch, ssod.cls_loss)
            g = guide_of(k, best, cfg.guidance)
            keep: list[StudentRoIs] = []
            unsup, stats = labelmatch_unlabelled_losses(pair.student, self.pairs[g].teacher, batch["u_strong"],
                                                        pseudo_of(g), ssod, keep=keep)
            pair.count_pseudo(pseudo_of(g))
            loss = loss + total(sup) + total(unsup, ssod.unsup_weight)
            if best is not None and k != best and cfg.dpc_loss == "soft_ce":
                dpc = dpc_consistency(pair.student, self.pairs[best].teacher, keep[0], pseudo_of(best),
                                      len(batch["u_strong"]), ssod.teacher_temperature, ssod.student_temperature)
                loss = loss + cfg.beta * dpc
                extras[f"pair{k}_loss_dpc"] = float(dpc.detach())
            extras.update(floats(sup, f"pair{k}_sup_"))
            extras.update(floats(unsup, f"pair{k}_unsup_"))
            extras.update({f"pair{k}_{name}": v for name, v in stats.items()})
        extras.update({f"teacher{k}_labelled_loss": float(v) for k, v in enumerate(teacher_losses)})
        extras["best_teacher"] = -1 if best is None else best
        return loss, extras

    def after_step(self) -> None:
        for pair in self.pairs:
            pair.after_step()

    def refresh_thresholds(self, images: Sequence[Tensor], batch_size: int = 8) -> dict[str, float]:
        out: dict[str, float] = {}
        for k, pair in enumerate(self.pairs):
            out.update({f"pair{k}_{name}": v for name, v in pair.refresh_thresholds(images, batch_size).items()})
        return out

    def eval_pair(self) -> int:
        return select_best(self.accumulated)

    def eval_network(self) -> Detector:
        return self.pairs[self.eval_pair()].teacher
