"""IMDN: Information Multi-Distillation Network (Hui et al., ACM MM 2019).

Structure and parameter names follow Zheng222/IMDN ``model/architecture.py`` (class IMDN) and
``model/block.py`` (IMDModule, CCALayer), so its released checkpoints load. Inputs and outputs are in
[0, rgb_range] with rgb_range = 1 (no mean shift), as in the official code.

* fea_conv 3x3 (3 -> 64); six IMD blocks; 1x1 fusion of their concatenated outputs (+ LeakyReLU 0.05);
  LR_conv 3x3 plus a long skip; upsampler conv3x3 (64 -> 3 s^2) + PixelShuffle(s).
* IMD block: four 3x3 convs that each keep a quarter of their output ("distilled") and pass on the rest,
  contrast-aware channel attention (std + mean pooling, 1x1 squeeze by 16), 1x1 fusion, residual.
"""
from __future__ import annotations

import torch
from torch import nn

from .common import check_image, check_scale, pick_variant, pixel_shuffle_upsampler

# IMDN paper (Table of lightweight SR results) [M]: 694K / 703K / 715K parameters at x2 / x3 / x4. The
# official code counts 694,404 / 703,059 / 715,176.
PUBLISHED_PARAMS = {2: 694e3, 3: 703e3, 4: 715e3}

VARIANTS = {
    "imdn": dict(nf=64, num_modules=6),
    "tiny": dict(nf=16, num_modules=2),  # CPU smoke scale (nf must stay a multiple of 16 for the CCA squeeze)
}

LEAKY_SLOPE = 0.05


class CCALayer(nn.Module):
    """Contrast-aware channel attention: sigmoid(MLP(std + mean)) per channel."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.conv_du = nn.Sequential(nn.Conv2d(channels, channels // reduction, 1), nn.ReLU(),
                                     nn.Conv2d(channels // reduction, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()  # population std, as the official one
        return x * self.conv_du(std + mean)


class IMDModule(nn.Module):
    def __init__(self, channels: int, distillation_rate: float = 0.25):
        super().__init__()
        self.distilled = int(channels * distillation_rate)
        self.remaining = channels - self.distilled
        self.c1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.c2 = nn.Conv2d(self.remaining, channels, 3, padding=1)
        self.c3 = nn.Conv2d(self.remaining, channels, 3, padding=1)
        self.c4 = nn.Conv2d(self.remaining, self.distilled, 3, padding=1)
        self.act = nn.LeakyReLU(LEAKY_SLOPE)
        self.c5 = nn.Conv2d(self.distilled * 4, channels, 1)
        self.cca = CCALayer(self.distilled * 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = (self.distilled, self.remaining)
        d1, r1 = torch.split(self.act(self.c1(x)), split, dim=1)
        d2, r2 = torch.split(self.act(self.c2(r1)), split, dim=1)
        d3, r3 = torch.split(self.act(self.c3(r2)), split, dim=1)
        out = torch.cat([d1, d2, d3, self.c4(r3)], dim=1)
        return self.c5(self.cca(out)) + x


class IMDN(nn.Module):
    def __init__(self, scale: int = 4, nf: int = 64, num_modules: int = 6, rgb_range: float = 1.0,
                 colors: int = 3):
        super().__init__()
        check_scale("IMDN", scale)
        self.scale, self.rgb_range, self.colors = scale, rgb_range, colors
        self.num_modules = num_modules
        self.fea_conv = nn.Conv2d(colors, nf, 3, padding=1)
        for i in range(num_modules):  # official names IMDB1..IMDB6
            self.add_module(f"IMDB{i + 1}", IMDModule(nf))
        self.c = nn.Sequential(nn.Conv2d(nf * num_modules, nf, 1), nn.LeakyReLU(LEAKY_SLOPE))
        self.LR_conv = nn.Conv2d(nf, nf, 3, padding=1)
        self.upsampler = pixel_shuffle_upsampler(nf, colors, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image("IMDN", x, self.colors)
        x = x / self.rgb_range  # the network is trained on [0, 1]
        fea = self.fea_conv(x)
        outs, h = [], fea
        for i in range(self.num_modules):
            h = getattr(self, f"IMDB{i + 1}")(h)
            outs.append(h)
        lr = self.LR_conv(self.c(torch.cat(outs, dim=1))) + fea
        return self.upsampler(lr) * self.rgb_range


def build(scale: int = 4, variant: str = "imdn", **overrides) -> IMDN:
    return IMDN(scale=scale, **{**pick_variant("IMDN", variant, VARIANTS), **overrides})
