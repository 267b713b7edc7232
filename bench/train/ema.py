"""Exponential moving average of model weights, with the two warm-up conventions the papers use."""
from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn


class EMA:
    """``ema <- decay * ema + (1 - decay) * weights`` after every optimizer step.

    ``module`` is a full copy of the model in eval mode with gradients off: pass it to evaluation code as
    is. Buffers (BatchNorm statistics) are copied, not averaged, as DiT's and timm's EMA do.

    warmup_steps: the EMA equals the weights for the first N updates (decay 0).
    rampup_ratio: EDM's ramp-up: half-life in steps = min(half-life of ``decay``, rampup_ratio * step).
    """

    def __init__(self, model: nn.Module, decay: float, warmup_steps: int = 0, rampup_ratio: float | None = None):
        self.decay = float(decay)
        self.warmup_steps = int(warmup_steps)
        self.rampup_ratio = rampup_ratio
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        """Decay used by the update that follows optimizer step ``step`` (1-based)."""
        if step <= self.warmup_steps:
            return 0.0
        if self.rampup_ratio is None or self.decay == 0.0:
            return self.decay
        halflife = math.log(0.5) / math.log(self.decay)
        return 0.5 ** (1.0 / min(halflife, self.rampup_ratio * step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> float:
        weight = 1.0 - self.decay_at(step)
        for ema_p, p in zip(self.module.parameters(), model.parameters(), strict=True):
            # lerp with weight 1 returns the weights exactly (torch computes end - diff * (1 - w) for w >= 0.5).
            ema_p.lerp_(p.detach().to(ema_p.dtype), weight)
        for ema_b, b in zip(self.module.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)
        return 1.0 - weight

    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model`` (e.g. a model evaluated in place)."""
        model.load_state_dict(self.module.state_dict())

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state)
