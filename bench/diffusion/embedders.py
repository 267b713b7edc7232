"""Timestep and class-label embedders shared by DiT and U-DiT.

Both official code bases use the same two modules (GLIDE-style sinusoidal timestep features followed by a
two-layer MLP, and a label table with one extra "null" row for classifier-free guidance). The attribute names
(`mlp.0`, `mlp.2`, `embedding_table`) are those of the official checkpoints, so their state dicts load as is.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def timestep_features(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal features of (possibly fractional) timesteps: [cos(t*f_0..f_{h-1}), sin(t*f_0..f_{h-1})].

    f_k = max_period^(-k/h), h = dim // 2. The cos half comes first, as in GLIDE/DiT (not the Transformer
    paper's sin-first order); an odd ``dim`` gets one zero column at the end.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    features = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        features = torch.cat([features, torch.zeros_like(features[:, :1])], dim=-1)
    return features


class TimestepEmbedder(nn.Module):
    """t -> Linear(256, d) -> SiLU -> Linear(d, d) on the sinusoidal features."""

    def __init__(self, hidden_size: int, frequency_dim: int = 256):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_features(t, self.frequency_dim).to(self.mlp[0].weight.dtype))


class LabelEmbedder(nn.Module):
    """Class labels -> vectors, with label dropout to the null class ``num_classes`` for CFG training.

    The table has ``num_classes + 1`` rows when ``dropout_prob > 0`` (the last row is the null class), as in
    the official code, so a 1000-class ImageNet model has 1001 rows.
    """

    def __init__(self, num_classes: int, hidden_size: int, dropout_prob: float):
        super().__init__()
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob
        self.embedding_table = nn.Embedding(num_classes + int(dropout_prob > 0), hidden_size)

    @property
    def null_class(self) -> int:
        return self.num_classes

    def drop_labels(self, labels: torch.Tensor, force_drop: torch.Tensor | None = None) -> torch.Tensor:
        """Replace dropped labels by the null class: ``force_drop`` (bool/0-1 per row) or a Bernoulli draw."""
        if force_drop is None:
            drop = torch.rand(labels.shape[0], device=labels.device) < self.dropout_prob
        else:
            drop = force_drop.to(labels.device).bool()
        return torch.where(drop, torch.full_like(labels, self.num_classes), labels)

    def forward(self, labels: torch.Tensor, train: bool, force_drop: torch.Tensor | None = None) -> torch.Tensor:
        if (train and self.dropout_prob > 0) or force_drop is not None:
            labels = self.drop_labels(labels, force_drop)
        return self.embedding_table(labels)
