"""Optimisers and learning-rate schedules named by TrainConfig.

A schedule is a picklable callable ``factor(t)``: the multiplier of the peak lr used by the optimizer step
with 0-based index ``t``. It drives torch's LambdaLR, whose state (the step count) goes into checkpoints.
"""
from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

import torch

from bench.train.config import TrainConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)


class LRSchedule:
    """Linear warm-up followed by constant / cosine / linear decay / step decay."""

    def __init__(self, kind: str, total_steps: int, warmup_steps: int = 0, warmup_offset: int = 1,
                 min_ratio: float = 0.0, milestones: Iterable[int] = (), gamma: float = 0.1):
        self.kind = kind
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.warmup_offset = warmup_offset
        self.min_ratio = min_ratio
        self.milestones = list(milestones)
        self.gamma = gamma

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> LRSchedule:
        return cls(cfg.schedule, cfg.steps, cfg.warmup_steps, cfg.warmup_offset, cfg.min_lr / cfg.lr,
                   cfg.milestones, cfg.gamma)

    def __call__(self, t: int) -> float:
        if t < self.warmup_steps:
            warm = min(1.0, (t + self.warmup_offset) / self.warmup_steps)
        else:
            warm = 1.0
        if self.kind == "step":
            # Milestones count optimizer steps from the start (warm-up included), like torch's MultiStepLR.
            return warm * self.gamma ** bisect.bisect_right(self.milestones, t)
        if self.kind == "constant" or t < self.warmup_steps:
            return warm
        decay_steps = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (t - self.warmup_steps) / decay_steps)
        if self.kind == "cosine":
            return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0 - (1.0 - self.min_ratio) * progress  # linear


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, LRSchedule.from_config(cfg))
