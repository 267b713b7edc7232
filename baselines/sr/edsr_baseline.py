"""EDSR-baseline (Lim et al., CVPRW 2017): 16 residual blocks of 64 channels, no BN, residual scale 1.

Structure and parameter names follow sanghyun-son/EDSR-PyTorch ``src/model/edsr.py`` so its released
``edsr_baseline_x{2,3,4}`` checkpoints load. Inputs and outputs are in [0, rgb_range] (255 there).
Upsampler: x2 and x4 use one/two (conv 64 -> 256, PixelShuffle(2)) steps, x3 one (conv 64 -> 576,
PixelShuffle(3)) step; then a conv 64 -> 3.
"""
from __future__ import annotations

import torch
from torch import nn

from .common import MeanShift, check_image, check_scale, pick_variant

# Published parameter counts: 1.37 / 1.56 / 1.52 M at x2 / x3 / x4 (LIPT's light-SR table, figs/light.png
# [F]; the EDSR paper gives 1.5 M for the x4 baseline). The official code counts 1,369,859 / 1,554,499 /
# 1,517,571 trainable parameters.
PUBLISHED_PARAMS = {2: 1.37e6, 3: 1.56e6, 4: 1.52e6}

VARIANTS = {
    "baseline": dict(n_resblocks=16, n_feats=64, res_scale=1.0),
    "tiny": dict(n_resblocks=2, n_feats=16, res_scale=1.0),  # CPU smoke scale
}


class ResBlock(nn.Module):
    def __init__(self, n_feats: int, res_scale: float):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * self.res_scale + x


def _upsampler(scale: int, n_feats: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    if scale in (2, 4):
        for _ in range({2: 1, 4: 2}[scale]):
            layers += [nn.Conv2d(n_feats, 4 * n_feats, 3, padding=1), nn.PixelShuffle(2)]
    else:  # 3
        layers += [nn.Conv2d(n_feats, 9 * n_feats, 3, padding=1), nn.PixelShuffle(3)]
    return nn.Sequential(*layers)


class EDSR(nn.Module):
    def __init__(self, scale: int = 4, n_resblocks: int = 16, n_feats: int = 64, res_scale: float = 1.0,
                 rgb_range: float = 255.0, colors: int = 3):
        super().__init__()
        check_scale("EDSR", scale)
        self.scale, self.rgb_range, self.colors = scale, rgb_range, colors
        self.sub_mean = MeanShift(rgb_range, sign=-1)
        self.add_mean = MeanShift(rgb_range, sign=+1)
        self.head = nn.Sequential(nn.Conv2d(colors, n_feats, 3, padding=1))
        self.body = nn.Sequential(*[ResBlock(n_feats, res_scale) for _ in range(n_resblocks)],
                                  nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.tail = nn.Sequential(_upsampler(scale, n_feats), nn.Conv2d(n_feats, colors, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image("EDSR", x, self.colors)
        x = self.head(self.sub_mean(x))
        x = self.body(x) + x
        return self.add_mean(self.tail(x))


def build(scale: int = 4, variant: str = "baseline", **overrides) -> EDSR:
    return EDSR(scale=scale, **{**pick_variant("EDSR", variant, VARIANTS), **overrides})
