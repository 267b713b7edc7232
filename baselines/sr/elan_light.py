"""ELAN-light (Zhang et al., ECCV 2022): Efficient Long-range Attention Network, lightweight configuration.

Config (xindongzhang/ELAN ``configs/elan_light_x4.yml``): C=60, 24 sub-blocks with attention shared in pairs
(12 ELAB blocks), expansion 2, three attention branches with windows 4, 8 and 16, inputs in [0, 255] minus the
DIV2K mean, reflect padding to a multiple of 16. Structure and names follow ``models/elan_block.py`` /
``models/elan_network.py``:

* ELAB = (LFE, GMSA) x 2: LFE is shift-conv (C -> 2C) -> ReLU -> shift-conv (2C -> C); GMSA projects with a
  1x1 conv + BN (C -> 2C), splits into three groups attended in windows of 4, 8 and 16 with
  softmax(q q^T) (no key, no scaling), and a 1x1 output conv. The second GMSA reuses the first one's maps.
* shift-conv: five channel groups shifted by one pixel left, right, up, down or not at all (zero fill), then a
  1x1 conv. The shift is done by slicing here (no multiply-adds); ELAN implements it as a fixed depthwise
  3x3 conv, which computes the same thing.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.registry import BenchError

from .common import MeanShift, check_image, check_scale, lcm, pick_variant, reflect_pad_to_multiple

# ELAN paper, Table 2 (lightweight SR) [M]: 582K / 590K / 601K at x2 / x3 / x4 (trainable parameters; the
# official code's frozen shift kernels and mean shifts are not counted). LIPT's table prints 0.59 / 0.60 M
# at x3 / x4, consistent, and 0.62 M at x2 (apparently a typo there).
PUBLISHED_PARAMS = {2: 582e3, 3: 590e3, 4: 601e3}

VARIANTS = {
    "light": dict(channels=60, sub_blocks=24, n_share=1, r_expand=2, window_sizes=(4, 8, 16)),
    "tiny": dict(channels=12, sub_blocks=4, n_share=1, r_expand=2, window_sizes=(2, 4, 8)),  # CPU smoke
}


def shift_features(x: torch.Tensor) -> torch.Tensor:
    """ELAN's fixed channel shift: groups of C//5 channels take their right, left, lower and upper
    neighbour (zero outside the image); the remaining channels stay."""
    g = x.shape[1] // 5
    p = F.pad(x, (1, 1, 1, 1))
    return torch.cat([p[:, 0 * g:1 * g, 1:-1, 2:],    # value from the right neighbour
                      p[:, 1 * g:2 * g, 1:-1, :-2],   # from the left neighbour
                      p[:, 2 * g:3 * g, 2:, 1:-1],    # from the lower neighbour
                      p[:, 3 * g:4 * g, :-2, 1:-1],   # from the upper neighbour
                      x[:, 4 * g:]], dim=1)


class ShiftConv2d(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1x1 = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1x1(shift_features(x))


class LFE(nn.Module):
    def __init__(self, channels: int, r_expand: int):
        super().__init__()
        self.conv0 = ShiftConv2d(channels, channels * r_expand)
        self.act = nn.ReLU()
        self.conv1 = ShiftConv2d(channels * r_expand, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.act(self.conv0(x)))


class GMSA(nn.Module):
    """Group-wise multi-scale self-attention; ``calc_attn=False`` reuses the maps it is given."""

    def __init__(self, channels: int, window_sizes: tuple[int, ...], shifts: int, calc_attn: bool):
        super().__init__()
        n = len(window_sizes)
        proj = 2 * channels if calc_attn else channels
        if proj % n or (calc_attn and (proj // n) % 2):
            raise BenchError(f"ELAN channels {channels} cannot be split into {n} attention groups of q/v pairs")
        self.window_sizes, self.shifts, self.calc_attn = tuple(window_sizes), shifts, calc_attn
        self.split_chns = [proj // n] * n
        self.project_inp = nn.Sequential(nn.Conv2d(channels, proj, 1), nn.BatchNorm2d(proj))
        self.project_out = nn.Conv2d(channels, channels, 1)

    @staticmethod
    def _windows(x: torch.Tensor, p: int) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(-1, p * p, c)

    @staticmethod
    def _merge(t: torch.Tensor, p: int, b: int, h: int, w: int) -> torch.Tensor:
        c = t.shape[-1]
        return t.view(b, h // p, w // p, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, h, w)

    def forward(self, x: torch.Tensor, prev_atns: list[torch.Tensor] | None = None):
        b, _, h, w = x.shape
        outs, atns = [], []
        for idx, feat in enumerate(torch.split(self.project_inp(x), self.split_chns, dim=1)):
            p = self.window_sizes[idx]
            if self.shifts:
                feat = torch.roll(feat, shifts=(-(p // 2), -(p // 2)), dims=(2, 3))
            tokens = self._windows(feat, p)
            if prev_atns is None:
                q, v = tokens.chunk(2, dim=-1)
                atn = (q @ q.transpose(-2, -1)).softmax(dim=-1)
            else:
                v, atn = tokens, prev_atns[idx]
            y = self._merge(atn @ v, p, b, h, w)
            if self.shifts:
                y = torch.roll(y, shifts=(p // 2, p // 2), dims=(2, 3))
            outs.append(y)
            atns.append(atn)
        return self.project_out(torch.cat(outs, dim=1)), atns


class ELAB(nn.Module):
    def __init__(self, channels: int, r_expand: int, shifts: int, window_sizes: tuple[int, ...], n_share: int):
        super().__init__()
        self.n_share = n_share
        self.modules_lfe = nn.ModuleDict({f"lfe_{i}": LFE(channels, r_expand) for i in range(1 + n_share)})
        self.modules_gmsa = nn.ModuleDict({f"gmsa_{i}": GMSA(channels, window_sizes, shifts, calc_attn=(i == 0))
                                           for i in range(1 + n_share)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        atns = None
        for i in range(1 + self.n_share):
            x = self.modules_lfe[f"lfe_{i}"](x) + x
            y, atns = self.modules_gmsa[f"gmsa_{i}"](x, atns)
            x = y + x
        return x


class ELAN(nn.Module):
    def __init__(self, scale: int = 4, channels: int = 60, sub_blocks: int = 24, n_share: int = 1,
                 r_expand: int = 2, window_sizes=(4, 8, 16), rgb_range: float = 255.0, colors: int = 3):
        super().__init__()
        check_scale("ELAN", scale)
        if channels < 5:
            raise BenchError(f"ELAN shift-conv needs at least 5 channels, got {channels}")
        self.scale, self.rgb_range, self.colors = scale, rgb_range, colors
        self.pad_multiple = lcm(window_sizes)
        self.sub_mean = MeanShift(rgb_range, sign=-1)
        self.add_mean = MeanShift(rgb_range, sign=+1)
        self.head = nn.Sequential(nn.Conv2d(colors, channels, 3, padding=1))
        self.body = nn.Sequential(*[ELAB(channels, r_expand, i % 2, tuple(window_sizes), n_share)
                                    for i in range(sub_blocks // (1 + n_share))])
        self.tail = nn.Sequential(nn.Conv2d(channels, colors * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image("ELAN", x, self.colors)
        h, w = x.shape[-2:]
        x = self.head(self.sub_mean(reflect_pad_to_multiple("ELAN", x, self.pad_multiple)))
        x = self.body(x) + x
        x = self.add_mean(self.tail(x))
        return x[:, :, : h * self.scale, : w * self.scale]


def build(scale: int = 4, variant: str = "light", **overrides) -> ELAN:
    return ELAN(scale=scale, **{**pick_variant("ELAN", variant, VARIANTS), **overrides})
