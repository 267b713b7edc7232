"""Strict loading of official state dicts, with one-line errors a user can act on.

`torch.nn.Module.load_state_dict` reports every problem in a multi-line message and, with ``strict=False``,
silently skips what does not fit. Loading a reproduction checkpoint must do neither: the first missing key,
unexpected key or shape mismatch is named in a single `BenchError` line, before anything is copied.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from bench.registry import BenchError


def unwrap_checkpoint(obj: Any, prefer: tuple[str, ...] = ("ema", "model")) -> Mapping[str, torch.Tensor]:
    """The state dict inside a training checkpoint.

    The official DiT/U-DiT ``train.py`` saves ``{"model", "ema", "opt", "args"}`` and their samplers load
    ``ema`` (DiT ``find_model``); a bare state dict is returned unchanged.
    """
    if not isinstance(obj, Mapping):
        raise BenchError(f"checkpoint is a {type(obj).__name__}, expected a state dict or a dict holding one")
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    for key in prefer:
        if key in obj and isinstance(obj[key], Mapping):
            return obj[key]
    raise BenchError(f"checkpoint has no state dict: expected tensors or one of the keys {list(prefer)}, "
                     f"found {sorted(map(str, obj))[:8]}")


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise a one-line BenchError naming the first missing/unexpected key or shape mismatch."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]

    def more(items: list[str]) -> str:
        return f" (and {len(items) - 1} more)" if len(items) > 1 else ""

    if missing:
        raise BenchError(f"{what} state dict: missing key {missing[0]!r}{more(missing)}")
    if unexpected:
        raise BenchError(f"{what} state dict: unexpected key {unexpected[0]!r}{more(unexpected)}")
    for key, ref in expected.items():
        got = state_dict[key]
        if not isinstance(got, torch.Tensor):
            raise BenchError(f"{what} state dict: {key!r} is a {type(got).__name__}, not a tensor")
        if tuple(got.shape) != tuple(ref.shape):
            raise BenchError(f"{what} state dict: shape mismatch for {key!r}: "
                             f"checkpoint {tuple(got.shape)}, model {tuple(ref.shape)}")


def load_exact(model: nn.Module, checkpoint: Any, what: str) -> nn.Module:
    """Validate then load (strict) a checkpoint or state dict into ``model``; returns the model."""
    state_dict = unwrap_checkpoint(checkpoint)
    check_state_dict(model, state_dict, what)
    model.load_state_dict(state_dict, strict=True)
    return model
