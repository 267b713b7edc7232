"""CARN: Cascading Residual Network (Ahn, Kang and Sohn, ECCV 2018).

Structure and parameter names follow nmhkahn/CARN-pytorch ``carn/model/carn.py`` (Net, Block) and
``carn/model/ops.py`` (MeanShift, BasicBlock, ResidualBlock, UpsampleBlock), so ``model.state_dict()`` of the
official ``Net`` loads strictly. Inputs and outputs are in [0, rgb_range] with rgb_range = 1: the official
dataset feeds ``ToTensor()`` images and its MeanShift adds/subtracts the DIV2K mean itself (no x255).

* entry conv3x3 (3 -> 64); three cascading blocks ``b1..b3``, each followed by a 1x1 conv + ReLU
  (``c1..c3``) over the concatenation of the entry features and every block output so far (global cascade);
* a block: three residual blocks (conv3x3, ReLU, conv3x3, + x, ReLU), each followed by a 1x1 conv + ReLU over
  the concatenation of the block input and every residual block output so far (local cascade);
* upsampler: (conv3x3 64 -> 256, ReLU, PixelShuffle(2)) once (x2) or twice (x4), or (conv3x3 64 -> 576, ReLU,
  PixelShuffle(3)) (x3); then exit conv3x3 (64 -> 3) and the mean added back.

The published CARN is the multi-scale model (``Net(multi_scale=True)``, trained with a random x2/x3/x4 per
batch): one body and three upsamplers ``upsample.up2/up3/up4``, 1,592K parameters (CARN paper, Table 1 and
Fig. 1; LIPT's table prints 1.59M at every scale). The released ``checkpoint/carn.pth`` is that model. Here a
network is built for one factor ``scale`` (what its forward uses unless given another); variant "carn" keeps all
three upsamplers (the official layout and count), "carn-single" is the official ``multi_scale=False`` option
(one ``upsample.up``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.registry import BenchError

from . import common
from .common import check_image, check_scale, pick_variant

# CARN paper (Ahn et al. 2018, Table 1 / Fig. 1) [M]: 1,592K parameters for the multi-scale model; LIPT's table
# [F] prints 1.59M at x2, x3 and x4. The official layer shapes give 1,591,939 trainable parameters (the frozen
# mean shifts add 24): 967,104 for the shared body + exit and 147,712 / 332,352 / 295,424 for up2 / up3 / up4.
PUBLISHED_PARAMS = {2: 1.592e6, 3: 1.592e6, 4: 1.592e6}

VARIANTS = {
    "carn": {"channels": 64, "n_blocks": 3, "n_residual": 3, "multi_scale": True},
    "carn-single": {"channels": 64, "n_blocks": 3, "n_residual": 3, "multi_scale": False},
    # CPU scale (profiles, tests): the same cascade, narrower and shallower, one upsampler. It is not in LIPT's
    # smoke plan: it does not beat bicubic within that budget (methods/lipt/recipe.py NOT_AT_SMOKE).
    "tiny": {"channels": 16, "n_blocks": 2, "n_residual": 2, "multi_scale": False},
}

CARN_MEAN = common.DIV2K_RGB_MEAN  # ops.MeanShift((0.4488, 0.4371, 0.4040)) in carn.py


class MeanShift(nn.Module):
    """ops.MeanShift: a frozen 1x1 conv ``shifter`` adding (sign +1) or subtracting (-1) rgb_range x mean."""

    def __init__(self, rgb_range: float, sign: int):
        super().__init__()
        self.shifter = common.MeanShift(rgb_range, sign, CARN_MEAN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shifter(x)


class BasicBlock(nn.Module):
    """ops.BasicBlock as CARN uses it: 1x1 conv + ReLU (the cascade's fusion layers)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ResidualBlock(nn.Module):
    """ops.ResidualBlock: relu(conv(relu(conv(x))) + x); note the ReLU after the addition."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + x)


def cascade(x: torch.Tensor, units: list[nn.Module], fusions: list[nn.Module]) -> torch.Tensor:
    """The cascading connection of carn.py: c_i = cat(c_{i-1}, unit_i(o_{i-1})), o_i = fusion_i(c_i)."""
    concat = out = x
    for unit, fuse in zip(units, fusions):
        concat = torch.cat([concat, unit(out)], dim=1)
        out = fuse(concat)
    return out


class Block(nn.Module):
    """carn.py Block: residual blocks b1..bn with local cascading 1x1 fusions c1..cn."""

    def __init__(self, channels: int, n_residual: int):
        super().__init__()
        self.n = n_residual
        for i in range(1, n_residual + 1):
            self.add_module(f"b{i}", ResidualBlock(channels))
        for i in range(1, n_residual + 1):
            self.add_module(f"c{i}", BasicBlock(channels * (i + 1), channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cascade(x, [getattr(self, f"b{i}") for i in range(1, self.n + 1)],
                       [getattr(self, f"c{i}") for i in range(1, self.n + 1)])


class ScaleUpsampler(nn.Module):
    """ops._UpsampleBlock (group 1): (conv3x3 -> 4C, ReLU, PixelShuffle(2)) x log2(s), or one x3 step."""

    def __init__(self, channels: int, scale: int):
        super().__init__()
        steps = [(4, 2)] * {2: 1, 4: 2}[scale] if scale in (2, 4) else [(9, 3)]
        layers: list[nn.Module] = []
        for mult, factor in steps:
            layers += [nn.Conv2d(channels, mult * channels, 3, padding=1), nn.ReLU(), nn.PixelShuffle(factor)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class UpsampleBlock(nn.Module):
    """ops.UpsampleBlock: ``up2/up3/up4`` when multi_scale, else one ``up`` for the build's scale."""

    def __init__(self, channels: int, scale: int, multi_scale: bool):
        super().__init__()
        self.multi_scale, self.scale = multi_scale, scale
        if multi_scale:
            for s in common.SCALES:
                self.add_module(f"up{s}", ScaleUpsampler(channels, s))
        else:
            self.up = ScaleUpsampler(channels, scale)

    def forward(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        check_scale("CARN", scale)
        if self.multi_scale:
            return getattr(self, f"up{scale}")(x)
        if scale != self.scale:
            raise BenchError(f"this single-scale CARN upsamples x{self.scale}, not x{scale}")
        return self.up(x)


class CARN(nn.Module):
    def __init__(self, scale: int = 4, channels: int = 64, n_blocks: int = 3, n_residual: int = 3,
                 multi_scale: bool = True, rgb_range: float = 1.0, colors: int = 3):
        super().__init__()
        check_scale("CARN", scale)
        self.scale, self.rgb_range, self.colors, self.n = scale, rgb_range, colors, n_blocks
        self.sub_mean = MeanShift(rgb_range, sign=-1)
        self.add_mean = MeanShift(rgb_range, sign=+1)
        self.entry = nn.Conv2d(colors, channels, 3, padding=1)
        for i in range(1, n_blocks + 1):
            self.add_module(f"b{i}", Block(channels, n_residual))
        for i in range(1, n_blocks + 1):
            self.add_module(f"c{i}", BasicBlock(channels * (i + 1), channels))
        self.upsample = UpsampleBlock(channels, scale, multi_scale)
        self.exit = nn.Conv2d(channels, colors, 3, padding=1)

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        """``scale`` as in the official ``Net.forward(x, scale)``; None: the factor this network was built for."""
        check_image("CARN", x, self.colors)
        x = self.entry(self.sub_mean(x))
        x = cascade(x, [getattr(self, f"b{i}") for i in range(1, self.n + 1)],
                    [getattr(self, f"c{i}") for i in range(1, self.n + 1)])
        out = self.upsample(x, self.scale if scale is None else scale)
        return self.add_mean(self.exit(out))


def build(scale: int = 4, variant: str = "carn", **overrides) -> CARN:
    return CARN(scale=scale, **{**pick_variant("CARN", variant, VARIANTS), **overrides})


def paper_param_count(model: CARN) -> int:
    """Trainable parameters as the CARN paper counts them: the multi-scale model, i.e. this network's body and
    exit plus the three upsamplers up2/up3/up4 at its width (1,591,939 at 64 channels, "1,592K")."""
    body = sum(p.numel() for name, p in model.named_parameters()
               if p.requires_grad and not name.startswith("upsample."))
    width = model.entry.out_channels
    return body + sum(p.numel() for s in common.SCALES for p in ScaleUpsampler(width, s).parameters())
