"""The mean teacher: an exponential moving average of the student, updated after every optimizer step.

    teacher <- keep_rate * teacher + (1 - keep_rate) * student

LabelMatch calls keep_rate "momentum" (0.996) and averages the whole state dict, buffers included; Unbiased Teacher
calls it EMA_KEEP_RATE (0.9996); CTF writes W_t <- (1 - alpha) W_t + alpha W_s, i.e. keep_rate = 1 - alpha. Integer
buffers (BatchNorm's num_batches_tracked) are copied. The teacher never receives gradients and stays in eval mode.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


def make_teacher(student: nn.Module) -> nn.Module:
    return copy.deepcopy(student).eval().requires_grad_(False)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, keep_rate: float) -> None:
    if not 0.0 <= keep_rate <= 1.0:
        raise ValueError(f"keep_rate must lie in [0, 1], got {keep_rate}")
    # The state dict (persistent entries only: constant buffers such as the pixel mean are left alone).
    student_state = student.state_dict(keep_vars=True)
    for name, value in teacher.state_dict(keep_vars=True).items():
        source = student_state[name].detach()
        if value.dtype.is_floating_point:
            value.data.mul_(keep_rate).add_(source.to(value.dtype), alpha=1.0 - keep_rate)
        else:
            value.data.copy_(source)
