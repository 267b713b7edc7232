"""RCAN (Zhang et al., ECCV 2018): residual groups of residual channel-attention blocks (RCAB).

Structure and parameter names follow sanghyun-son/EDSR-PyTorch ``src/model/rcan.py`` (the layout of the
official RCAN_BIX{2,3,4}.pt checkpoints), so an official state dict loads strictly:
``head.0``, ``body.{g}.body.{b}.body.{0,2}`` (the RCAB's two 3x3 convs), ``body.{g}.body.{b}.body.3.conv_du.{0,2}``
(channel attention: 1x1 squeeze to C/reduction, ReLU, 1x1 excite, sigmoid), ``body.{g}.body.{n_resblocks}``
(the group's closing conv), ``body.{n_resgroups}`` (the body's closing conv), ``tail.0`` (upsampler),
``tail.1`` (conv to RGB), ``sub_mean``/``add_mean`` (fixed DIV2K mean shifts). Inputs/outputs in [0, 255].

The body is exposed as ``body_blocks()`` (the residual groups) and ``body_end`` (closing conv) so that
distillation code can tap and swap features between residual groups (baselines/sr_kd, methods/mipkd).
"""
from __future__ import annotations

import torch
from torch import nn

from .common import MeanShift, check_image, check_scale, pick_variant
from .edsr_baseline import _upsampler

# Published counts: RCAN paper (10 groups x 20 RCAB, 64 ch) ~15.6M at x4 (DCKD Table 1 reprints 15.6M for the
# teacher and 5.2M for the 10 x 6 student) [S]. Trainable parameters here (the mean shifts are frozen, as
# officially): 15,592,355 at x4, 5,171,315 for the 10 x 6 student (within 0.1% and 0.6%).
PUBLISHED_PARAMS = {"rcan": 15.6e6, "rcan-student": 5.2e6}

VARIANTS = {
    "rcan": {"n_resgroups": 10, "n_resblocks": 20, "n_feats": 64, "reduction": 16},  # the official RCAN
    "rcan-student": {"n_resgroups": 10, "n_resblocks": 6, "n_feats": 64, "reduction": 16},  # DUKD/MiPKD depth student
    "tiny-teacher": {"n_resgroups": 2, "n_resblocks": 2, "n_feats": 16, "reduction": 4},  # CPU smoke scale
    "tiny": {"n_resgroups": 2, "n_resblocks": 1, "n_feats": 16, "reduction": 4},
}


class CALayer(nn.Module):
    """Channel attention: global average pool, squeeze-excite through two 1x1 convs, sigmoid gate."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(nn.Conv2d(channels, channels // reduction, 1), nn.ReLU(),
                                     nn.Conv2d(channels // reduction, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(self.avg_pool(x))


class RCAB(nn.Module):
    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, padding=1), CALayer(channels, reduction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x  # the official RCAB ignores res_scale (its mul is commented out)


class ResidualGroup(nn.Module):
    def __init__(self, channels: int, reduction: int, n_resblocks: int):
        super().__init__()
        self.body = nn.Sequential(*[RCAB(channels, reduction) for _ in range(n_resblocks)],
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class RCAN(nn.Module):
    def __init__(self, scale: int = 4, n_resgroups: int = 10, n_resblocks: int = 20, n_feats: int = 64,
                 reduction: int = 16, rgb_range: float = 255.0, colors: int = 3):
        super().__init__()
        check_scale("RCAN", scale)
        if n_feats // reduction < 1:
            raise ValueError(f"RCAN: n_feats {n_feats} // reduction {reduction} leaves no attention channel")
        self.scale, self.rgb_range, self.colors, self.n_feats = scale, rgb_range, colors, n_feats
        self.sub_mean = MeanShift(rgb_range, sign=-1)
        self.add_mean = MeanShift(rgb_range, sign=+1)
        self.head = nn.Sequential(nn.Conv2d(colors, n_feats, 3, padding=1))
        self.body = nn.Sequential(*[ResidualGroup(n_feats, reduction, n_resblocks) for _ in range(n_resgroups)],
                                  nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.tail = nn.Sequential(_upsampler(scale, n_feats), nn.Conv2d(n_feats, colors, 3, padding=1))

    def body_blocks(self) -> list[nn.Module]:
        return list(self.body)[:-1]

    @property
    def body_end(self) -> nn.Module:
        return self.body[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image("RCAN", x, self.colors)
        x = self.head(self.sub_mean(x))
        x = self.body(x) + x
        return self.add_mean(self.tail(x))


def build(scale: int = 4, variant: str = "rcan", **overrides) -> RCAN:
    return RCAN(scale=scale, **{**pick_variant("RCAN", variant, VARIANTS), **overrides})
