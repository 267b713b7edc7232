"""Pieces shared by the SR baselines: input checks, window padding, the DIV2K mean shift."""
from __future__ import annotations

import difflib
import math

import torch
import torch.nn.functional as F
from torch import nn

from bench.registry import BenchError

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
SCALES = (2, 3, 4)


def check_scale(name: str, scale: int, allowed: tuple[int, ...] = SCALES) -> None:
    if scale not in allowed:
        raise BenchError(f"{name} scale must be one of {', '.join(map(str, allowed))}, got {scale}")


def pick_variant(name: str, variant: str, variants: dict) -> dict:
    if variant not in variants:
        close = difflib.get_close_matches(variant, list(variants), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise BenchError(f"unknown {name} variant {variant!r}.{hint} Known: {', '.join(variants)}")
    return dict(variants[variant])


def check_image(name: str, x: torch.Tensor, colors: int = 3) -> None:
    if x.ndim != 4 or x.shape[1] != colors:
        raise BenchError(f"{name} expects a [B, {colors}, H, W] tensor, got shape {list(x.shape)}")


def reflect_pad_to_multiple(name: str, x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad the bottom and right of ``x`` up to a multiple of ``multiple`` (the SwinIR/ELAN way)."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    if pad_h >= h or pad_w >= w:
        raise BenchError(f"{name} input {h}x{w} is too small to reflect-pad to a multiple of {multiple}; "
                         f"use at least {multiple // 2 + 1} pixels per side")
    return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")


def lcm(values) -> int:
    return math.lcm(*values)


class MeanShift(nn.Conv2d):
    """Fixed 1x1 conv adding (sign=+1) or subtracting (sign=-1) rgb_range * mean (EDSR/ELAN style)."""

    def __init__(self, rgb_range: float, sign: int, mean: tuple[float, ...] = DIV2K_RGB_MEAN):
        super().__init__(len(mean), len(mean), kernel_size=1)
        with torch.no_grad():
            self.weight.copy_(torch.eye(len(mean)).view(len(mean), len(mean), 1, 1))
            self.bias.copy_(sign * rgb_range * torch.tensor(mean))
        self.requires_grad_(False)


def pixel_shuffle_upsampler(in_ch: int, out_ch: int, scale: int) -> nn.Sequential:
    """conv3x3 (in -> out * s^2) + PixelShuffle(s): the one-step upsampler of the lightweight models."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
