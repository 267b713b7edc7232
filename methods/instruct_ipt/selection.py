"""Finding the task-sensitive weights by the toy procedure, and the rank analysis of their task changes.

The paper finds "task-sensitive" weights by a toy experiment: fine-tune the shared model briefly on each task
alone and see which weights move most. Here: from a jointly trained backbone, one short single-task fine-tune per
task (a copy each); for every candidate weight matrix the relative change ||W_t - W||_F / ||W||_F is measured
per task, and candidates are ranked by its mean over tasks. The top ``top_k`` become the modulated weights.
Which weights the paper picked is unknown, so the candidates are every 2-D weight of IPT's transformer body
(attention projections, FFN, the linear encoding and MLP head) and ``top_k`` is a knob.

Rank analysis: the singular values of each task's change dW_t of a selected weight; its effective rank is the
number of singular values holding ``energy`` of the squared Frobenius norm. A small effective rank is what
motivates low-rank task biases (the paper's argument); the recipe records the numbers.
"""
from __future__ import annotations

import torch
from torch import nn


def candidate_weights(backbone: nn.Module) -> dict[str, tuple[int, int]]:
    """Every 2-D weight of the transformer body (IPT: ``body.*``), name -> (out, in)."""
    return {name: tuple(p.shape) for name, p in backbone.named_parameters()
            if name.startswith("body.") and p.ndim == 2 and "embed" not in name and "position" not in name}


def relative_change(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor],
                    names: list[str]) -> dict[str, float]:
    return {n: float((after[n] - before[n]).norm() / before[n].norm().clamp_min(1e-12)) for n in names}


def effective_rank(delta: torch.Tensor, energy: float = 0.9) -> int:
    """Smallest k whose top-k singular values hold ``energy`` of ||delta||_F^2 (0 for a zero matrix)."""
    s2 = torch.linalg.svdvals(delta.double()) ** 2
    total = float(s2.sum())
    if total == 0.0:
        return 0
    cumulative = torch.cumsum(s2, 0) / total
    return int((cumulative < energy).sum()) + 1


def rank_by_mean_change(changes: list[dict[str, float]]) -> list[tuple[str, float]]:
    """Candidates sorted by their mean relative change over tasks, largest first (ties by name)."""
    names = list(changes[0])
    means = {n: sum(c[n] for c in changes) / len(changes) for n in names}
    return sorted(means.items(), key=lambda kv: (-kv[1], kv[0]))
