"""Feature-distillation losses for SR, as the SR-KD literature implements them (DUKD's models/fakd_model.py
names the four; the formulas are the original papers'). Each takes lists of student and teacher feature maps
at the same positions (widths may differ: every loss compares width-free statistics) and returns the mean
over positions. Teacher features should arrive detached.

* FitNet (Romero et al. 2015) as SR-KD codes run it without a regressor: the channel-mean map, L1.
* AT (Zagoruyko & Komodakis 2017): the spatial attention map sum_c f_c^2, flattened and L2-normalised per
  sample; mean squared difference.
* FAKD (He et al. 2020): the spatial affinity matrix of channel-L2-normalised features (positions i, j
  dot-product over channels, HW x HW), L1.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from bench.registry import BenchError


def _paired(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> None:
    if len(student) != len(teacher) or not student:
        raise BenchError(f"feature KD needs the same non-zero number of student and teacher features, got "
                         f"{len(student)} and {len(teacher)}")
    for s, t in zip(student, teacher):
        if s.shape[0] != t.shape[0] or s.shape[-2:] != t.shape[-2:]:
            raise BenchError(f"feature KD: student {list(s.shape)} and teacher {list(t.shape)} differ in batch or size")


def fitnet_map(f: torch.Tensor) -> torch.Tensor:
    return f.mean(dim=1)


def attention_map(f: torch.Tensor) -> torch.Tensor:
    return F.normalize(f.pow(2).sum(dim=1).flatten(1), dim=1)


def affinity_matrix(f: torch.Tensor) -> torch.Tensor:
    flat = F.normalize(f.flatten(2), dim=1)  # [B, C, HW], unit length over channels at each position
    return flat.transpose(1, 2) @ flat  # [B, HW, HW]


def fitnet_loss(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> torch.Tensor:
    _paired(student, teacher)
    return torch.stack([F.l1_loss(fitnet_map(s), fitnet_map(t)) for s, t in zip(student, teacher)]).mean()


def at_loss(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> torch.Tensor:
    _paired(student, teacher)
    return torch.stack([(attention_map(s) - attention_map(t)).pow(2).mean()
                        for s, t in zip(student, teacher)]).mean()


def fakd_loss(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> torch.Tensor:
    _paired(student, teacher)
    return torch.stack([F.l1_loss(affinity_matrix(s), affinity_matrix(t)) for s, t in zip(student, teacher)]).mean()


FEATURE_LOSSES = {"fitnet": fitnet_loss, "at": at_loss, "fakd": fakd_loss}
