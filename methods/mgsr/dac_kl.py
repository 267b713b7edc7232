"""DAC-KL, MGSR's token-level loss: KL on an adaptively clipped, high-density part of the teacher distribution.

What the paper fixes (papers-other 3.3 (b), from the ICLR-2025 reviews [S]): a small learnable sub-network
reads the teacher's output distribution and predicts two quantile bounds (u, l); a sigmoid soft mask keeps the
part of the teacher distribution between them; the target-class (max-probability) entry is concatenated to
the kept part; the same entries are taken from the student distribution; the loss is a KL between the two;
the sub-network is trained end to end. Everything else is open, and is ours [I], configurable:

* features: the top-`top_k` sorted teacher probabilities (zero-padded) and the teacher entropy;
  sub-network: Linear -> GELU -> Linear (hidden `hidden`) -> 2 logits (a, b); l = sigmoid(a),
  u = l + (1 - l) sigmoid(b), so 0 < l < u < 1; initialised to l ~ 0.02, u ~ 0.98 (starts as almost plain KL);
* each vocabulary entry v, in the teacher's descending order, sits at the middle of its cumulative-mass
  interval, c_v = (mass ranked before v) + p_v / 2; soft mask m_v = sigmoid((c_v - l)/tau) * sigmoid((u - c_v)/tau)
  (tau = `mask_temperature`); the teacher's argmax always has m = 1 (the concatenated target class, which
  is therefore never counted twice);
* both masked vectors are renormalised, p^_v = m_v p_v / sum m p and q^_v = m_v q_v / sum m q, and the loss is
  KL(p^ || q^) averaged over response tokens. With m = 1 everywhere this is exactly KL(p || q) (the forward
  KL with the teacher entropy), the property the issue asks to test;
* the sub-network's objective (the paper says only "trained end to end"): the KL alone would shrink the kept
  part to the target class (a 1-entry distribution has KL 0), so it needs a counterweight. Default
  `subnet_objective="density"`: the mask is detached from the student's KL and f_sub minimises
  (1 - kept teacher mass) + density_weight * (kept entries / V); at the optimum an entry is kept when its
  teacher probability exceeds density_weight / V, i.e. f_sub learns, per distribution, the smallest region
  holding most of the mass (a highest-density region; density_weight 1 = denser than uniform).
  `subnet_objective="kl+coverage"`: f_sub minimises the student's KL plus coverage_weight * (1 - kept mass)
  (end to end through the KL; it clips whatever the student matches worst);
* `bounds="fixed"` replaces the sub-network by constant (l, u) (the fixed-threshold variant of App. D.1).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bench.registry import BenchError

BOUNDS = ("learned", "fixed")
SUBNET_OBJECTIVES = ("density", "kl+coverage")


class BoundNet(nn.Module):
    """f_sub: teacher distribution -> (l, u)."""

    def __init__(self, top_k: int = 256, hidden: int = 256, init_lower: float = 0.02, init_upper: float = 0.98):
        super().__init__()
        self.top_k = int(top_k)
        self.net = nn.Sequential(nn.Linear(self.top_k + 1, hidden), nn.GELU(), nn.Linear(hidden, 2))
        nn.init.zeros_(self.net[2].weight)
        with torch.no_grad():   # start near "nothing clipped": l = init_lower, u = l + (1 - l) * sigmoid(b)
            b = (init_upper - init_lower) / (1 - init_lower)
            self.net[2].bias.copy_(torch.tensor([math.log(init_lower / (1 - init_lower)), math.log(b / (1 - b))]))

    def forward(self, teacher_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = min(self.top_k, teacher_probs.shape[-1])
        top = torch.topk(teacher_probs, k, dim=-1).values
        if k < self.top_k:
            top = F.pad(top, (0, self.top_k - k))
        entropy = -(teacher_probs * teacher_probs.clamp_min(1e-30).log()).sum(-1, keepdim=True)
        a, b = self.net(torch.cat([top, entropy], -1)).unbind(-1)
        lower = torch.sigmoid(a)
        upper = lower + (1 - lower) * torch.sigmoid(b)
        return lower, upper


def density_mask(teacher_probs: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor,
                 temperature: float | None = 0.01) -> torch.Tensor:
    """m_v in [0, 1] for every vocabulary entry ([..., V]); temperature None gives the hard 0/1 mask."""
    sorted_p, order = torch.sort(teacher_probs, dim=-1, descending=True)
    centre = sorted_p.cumsum(-1) - sorted_p / 2
    lo, up = lower[..., None], upper[..., None]
    if temperature is None:
        kept_sorted = ((centre >= lo) & (centre <= up)).to(teacher_probs.dtype)
    else:
        kept_sorted = torch.sigmoid((centre - lo) / temperature) * torch.sigmoid((up - centre) / temperature)
    mask = torch.zeros_like(teacher_probs).scatter(-1, order, kept_sorted)
    target = F.one_hot(teacher_probs.argmax(-1), teacher_probs.shape[-1]).to(mask.dtype)
    return torch.maximum(mask, target)   # the target class is always kept


def clipped_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(p^ || q^) per position for the renormalised masked distributions ([..., V] -> [...])."""
    logp = F.log_softmax(teacher_logits.float(), -1)
    logq = F.log_softmax(student_logits.float(), -1)
    logm = mask.clamp_min(1e-30).log()
    log_ph = F.log_softmax(logp + logm, -1)   # log(m p / sum m p)
    log_qh = F.log_softmax(logq + logm, -1)
    ph = log_ph.exp()
    return torch.where(ph > 0, ph * (log_ph - log_qh), torch.zeros_like(ph)).sum(-1)


class DACKL(nn.Module):
    def __init__(self, bounds: str = "learned", top_k: int = 256, hidden: int = 256,
                 mask_temperature: float | None = 0.01,
                 subnet_objective: str = "density", density_weight: float = 1.0, coverage_weight: float = 1.0,
                 fixed_lower: float = 0.0, fixed_upper: float = 0.95):
        super().__init__()
        if bounds not in BOUNDS:
            raise BenchError(f"DAC-KL bounds must be one of {', '.join(BOUNDS)}, got {bounds!r}")
        if subnet_objective not in SUBNET_OBJECTIVES:
            raise BenchError(f"DAC-KL subnet_objective must be one of {', '.join(SUBNET_OBJECTIVES)}, "
                             f"got {subnet_objective!r}")
        if not 0.0 <= fixed_lower < fixed_upper <= 1.0:
            raise BenchError(f"DAC-KL needs 0 <= fixed_lower < fixed_upper <= 1, got {fixed_lower}, {fixed_upper}")
        if bounds == "learned" and mask_temperature is None:
            raise BenchError("DAC-KL with learned bounds needs a soft mask (mask_temperature > 0) to train f_sub")
        self.bounds = bounds
        self.temperature = None if mask_temperature is None else float(mask_temperature)  # None: hard 0/1 mask
        self.subnet_objective = subnet_objective
        self.density_weight, self.coverage_weight = float(density_weight), float(coverage_weight)
        self.fixed = (float(fixed_lower), float(fixed_upper))
        self.subnet = BoundNet(top_k, hidden) if bounds == "learned" else None

    def forward(self, teacher_logits: torch.Tensor, student_logits: torch.Tensor,
                token_mask: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(loss, stats): token-mean KL(p^ || q^) plus, with a learned f_sub, its own objective's term."""
        p = F.softmax(teacher_logits.float(), -1).detach()
        if self.subnet is not None:
            lower, upper = self.subnet(p)
        else:
            lower = torch.full(p.shape[:-1], self.fixed[0], device=p.device)
            upper = torch.full(p.shape[:-1], self.fixed[1], device=p.device)
        mask = density_mask(p, lower, upper, self.temperature)
        end_to_end = self.subnet is not None and self.subnet_objective == "kl+coverage"
        kl = clipped_kl(teacher_logits, student_logits, mask if end_to_end else mask.detach())
        weights = token_mask.float()
        denom = weights.sum().clamp_min(1.0)

        def mean(x: torch.Tensor) -> torch.Tensor:
            return (x * weights).sum() / denom

        clipped_mass = mean(1 - (mask * p).sum(-1))
        loss_kl = mean(kl)
        loss = loss_kl
        if self.subnet is not None:
            if end_to_end:
                loss = loss + self.coverage_weight * clipped_mass
            else:
                kept_share = mean(mask.mean(-1))
                loss = loss + clipped_mass + self.density_weight * kept_share
        stats = {"dac_kl": loss_kl.detach(), "kept_mass": 1 - clipped_mass.detach(),
                 "kept_share": mean(mask.detach().mean(-1)), "lower": mean(lower.detach()),
                 "upper": mean(upper.detach())}
        return loss, stats
