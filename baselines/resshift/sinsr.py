"""SinSR (Wang et al., CVPR 2024): one-step distillation of ResShift, and the one-step/teacher helpers it shares
with TAD-SR.

SinSR's objective (wyf0912/SinSR ``models/gaussian_diffusion.py`` ``training_losses_distill`` [R]; restated):
* regression: the student at t = T-1 on x_T = y + kappa sqrt(eta_T) eps, squared error to the teacher's
  deterministic T-step sample from the same x_T;
* ``learn_xT``: the student at t = 0, fed the teacher's sample (normalised at level T-1), predicts x_T;
  squared error to x_T (the deterministic map is learnt in both directions);
* consistency preserving (``finetune_use_gt``): the student maps the ground truth back to x_T (t = 0, no
  gradient), then forward again at T-1; squared error to the ground truth.
Weights 1.0 and 1.0 for the two extra terms [I: SinSR's config file was not read]. Per-sample means over
C x H x W, then the batch mean.
"""
from __future__ import annotations

import torch
from torch import nn

from baselines.resshift.schedule import ResShiftSchedule


def teacher_sample(schedule: ResShiftSchedule, teacher: nn.Module, y: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return schedule.sample(teacher, y, y, noise, deterministic=True)


def student_forward(schedule: ResShiftSchedule, student: nn.Module, y: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """One network evaluation at t = T-1 from the prior (no clamp: the official student output is raw)."""
    t = schedule.timesteps(schedule.steps - 1, y.shape[0], y.device)
    return student(schedule.scale_input(schedule.prior_sample(y, noise), t), t, y)


def sinsr_loss(schedule: ResShiftSchedule, student: nn.Module, y: torch.Tensor, noise: torch.Tensor,
               teacher_out: torch.Tensor, gt: torch.Tensor, w_xt: float = 1.0, w_gt: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """SinSR's distillation loss; returns (loss, student output)."""
    b = y.shape[0]
    t_last = schedule.timesteps(schedule.steps - 1, b, y.device)
    t_zero = schedule.timesteps(0, b, y.device)
    x_T = schedule.prior_sample(y, noise)
    out = student(schedule.scale_input(x_T, t_last), t_last, y)
    loss = (out - teacher_out).pow(2).flatten(1).mean(1)
    if w_xt:
        pred_xT = student(schedule.scale_input(teacher_out, t_last), t_zero, y)
        loss = loss + w_xt * (pred_xT - x_T).pow(2).flatten(1).mean(1)
    if w_gt:
        with torch.no_grad():
            inv = student(schedule.scale_input(gt, t_last), t_zero, y)
        back = student(schedule.scale_input(inv, t_last), t_last, y)
        loss = loss + w_gt * (back - gt).pow(2).flatten(1).mean(1)
    return loss.mean(), out
