"""One distillation wrapper for SR students, trained through the shared loop (bench.train.train).

`Distiller` is the module the loop optimises: the student plus any training-only modules a method adds
(MiPKD's encoders/decoders); the teacher is frozen and held outside the module tree, so it is neither
optimised nor written into checkpoints, and the deployed network is ``distiller.student`` alone.

Loss of one batch (images in the model's [0, rgb_range], like the official codes):
    pixel_weight * L1(S(x), y)                                     every entry (the student alone: only this)
  + logits_weight * L1(S(x), T(x))                                 every KD entry (DUKD's configs add it to each)
  + feature_weight * {fitnet, at, fakd}(S taps, T taps)            the feature baselines
  + extra_loss(...)                                                a method's own terms (subclass hook)
Taps are DUKD's FAKD positions (head, inner stage boundaries, body output); see stages.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.registry import BenchError

from .losses import FEATURE_LOSSES
from .stages import Staged, StagedOutput

KD_KINDS = ("none", "logits", *FEATURE_LOSSES)


class Distiller(nn.Module):
    def __init__(self, student: nn.Module, teacher: nn.Module | None, kd: str = "none", n_stages: int = 3,
                 pixel_weight: float = 1.0, logits_weight: float = 1.0, feature_weight: float = 10.0):
        super().__init__()
        if kd not in KD_KINDS:
            raise BenchError(f"unknown SR distillation {kd!r}; known: {', '.join(KD_KINDS)}")
        if kd != "none" and teacher is None:
            raise BenchError(f"distillation {kd!r} needs a teacher")
        self.student, self.kd, self.n_stages = student, kd, int(n_stages)
        self.pixel_weight, self.logits_weight, self.feature_weight = pixel_weight, logits_weight, feature_weight
        self.rgb_range = float(getattr(student, "rgb_range", 1.0))
        if teacher is not None:
            if float(getattr(teacher, "rgb_range", 1.0)) != self.rgb_range:
                raise BenchError("teacher and student must share one rgb_range")
            teacher.eval().requires_grad_(False)
        # a plain attribute, not a submodule: outside parameters(), state_dict() and EMA copies
        object.__setattr__(self, "_teacher", teacher)

    @property
    def teacher(self) -> nn.Module | None:
        return self._teacher

    def student_stages(self) -> Staged:
        return Staged(self.student, self.n_stages)

    def teacher_stages(self) -> Staged:
        return Staged(self.teacher, self.n_stages)

    def teacher_forward(self, x: torch.Tensor) -> StagedOutput:
        teacher = self.teacher
        if next(teacher.parameters()).device != x.device:
            teacher.to(x.device)
        with torch.no_grad():
            return self.teacher_stages().forward(x)

    def extra_loss(self, x: torch.Tensor, s: StagedOutput, t: StagedOutput) -> tuple[torch.Tensor, dict[str, Any]]:
        """A method's own loss terms (none here)."""
        return x.new_zeros(()), {}

    def forward(self, lr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        x, y = lr * self.rgb_range, hr * self.rgb_range
        s = self.student_stages().forward(x)
        pixel = F.l1_loss(s.out, y)
        loss, extras = self.pixel_weight * pixel, {"pixel": pixel.detach()}
        if self.kd == "none":
            return loss, extras
        t = self.teacher_forward(x)
        logits = F.l1_loss(s.out, t.out)
        loss = loss + self.logits_weight * logits
        extras["logits_kd"] = logits.detach()
        if self.kd in FEATURE_LOSSES:
            feat = FEATURE_LOSSES[self.kd](s.taps(), t.taps())
            loss = loss + self.feature_weight * feat
            extras[f"{self.kd}_kd"] = feat.detach()
        more, more_extras = self.extra_loss(x, s, t)
        return loss + more, {**extras, **more_extras}


def _distiller_loss(model: nn.Module, batch: Any):
    lr, hr = batch
    return model(lr, hr)  # through the (possibly DDP-wrapped) module, so DDP averages the gradients


def train_distiller(distiller: Distiller, data: Any, cfg: Any, out_dir: Path, resume: bool = True):
    """Train ``distiller`` (student + training-only modules) with bench.train.train; returns its TrainResult."""
    from bench.train import train

    return train(distiller, _distiller_loss, data, cfg, out_dir, resume=resume)
