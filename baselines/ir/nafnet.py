"""NAFNet (Chen et al., ECCV 2022, megvii-research/NAFNet) at its official shapes.

Parameter names and shapes follow the official ``basicsr/models/archs/NAFNet_arch.py`` (``intro``, ``encoders.i.j``,
``downs.i``, ``middle_blks.j``, ``ups.i.0``, ``decoders.i.j``, ``ending``; inside a block ``conv1..conv5``,
``sca.1``, ``norm1/norm2`` with ``weight``/``bias``, ``beta``/``gamma``), so an official checkpoint's
``params`` dict loads strictly (tests/models/test_sam_prior_models.py).

Configs (the official option files, options/train|test/{GoPro,SIDD}/NAFNet-width{32,64}.yml):
* GoPro: enc [1, 1, 1, 28], middle 1, dec [1, 1, 1, 1];
* SIDD: enc [2, 2, 4, 8], middle 12, dec [2, 2, 2, 2].
The "tiny" config is ours, for the CPU smoke runs.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

CONFIGS: dict[str, dict[str, Any]] = {
    "gopro-w32": {"width": 32, "enc_blk_nums": [1, 1, 1, 28], "middle_blk_num": 1, "dec_blk_nums": [1, 1, 1, 1]},
    "gopro-w64": {"width": 64, "enc_blk_nums": [1, 1, 1, 28], "middle_blk_num": 1, "dec_blk_nums": [1, 1, 1, 1]},
    "sidd-w32": {"width": 32, "enc_blk_nums": [2, 2, 4, 8], "middle_blk_num": 12, "dec_blk_nums": [2, 2, 2, 2]},
    "sidd-w64": {"width": 64, "enc_blk_nums": [2, 2, 4, 8], "middle_blk_num": 12, "dec_blk_nums": [2, 2, 2, 2]},
    # ours: two levels, one block each (CPU smoke)
    "tiny": {"width": 8, "enc_blk_nums": [1, 1], "middle_blk_num": 1, "dec_blk_nums": [1, 1]},
}


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of an NCHW map (NAFNet's LayerNorm2d: biased variance, eps 1e-6)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def simple_gate(x: torch.Tensor) -> torch.Tensor:
    """NAFNet's activation replacement: split the channels in two halves and multiply them."""
    a, b = x.chunk(2, dim=1)
    return a * b


class NAFBlock(nn.Module):
    def __init__(self, c: int, dw_expand: int = 2, ffn_expand: int = 2):
        super().__init__()
        dw = c * dw_expand
        ffn = c * ffn_expand
        self.norm1 = ChannelLayerNorm(c)
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)  # depth-wise
        # simplified channel attention: global average pool + 1x1 conv, no activation (index 1 as officially)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.norm2 = ChannelLayerNorm(c)
        self.conv4 = nn.Conv2d(c, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1)
        # zero-initialised residual scales: every block starts as the identity
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = simple_gate(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self.sca(x))
        y = inp + x * self.beta
        x = self.conv5(simple_gate(self.conv4(self.norm2(y))))
        return y + x * self.gamma


class NAFNet(nn.Module):
    """U-Net of NAFBlocks with a global residual; inputs are padded to a multiple of 2**levels and cropped back."""

    rgb_range = 1.0

    def __init__(self, img_channel: int = 3, width: int = 16, middle_blk_num: int = 1,
                 enc_blk_nums: list[int] | tuple[int, ...] = (), dec_blk_nums: list[int] | tuple[int, ...] = ()):
        super().__init__()
        if len(enc_blk_nums) != len(dec_blk_nums):
            raise ValueError("NAFNet needs as many decoder levels as encoder levels")
        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        chan = width
        for num in enc_blk_nums:
            self.encoders.append(nn.Sequential(*[NAFBlock(chan) for _ in range(num)]))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, stride=2))
            chan *= 2
        self.middle_blks = nn.Sequential(*[NAFBlock(chan) for _ in range(middle_blk_num)])
        for num in dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, chan * 2, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(chan) for _ in range(num)]))
        self.padder_size = 2 ** len(self.encoders)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        # zero padding on the bottom/right to a multiple of 2**levels, as the official check_image_size
        pad_h, pad_w = (-h) % self.padder_size, (-w) % self.padder_size
        inp = F.pad(inp, (0, pad_w, 0, pad_h))
        x = self.intro(inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = decoder(up(x) + skip)
        x = self.ending(x) + inp
        return x[:, :, :h, :w]


def build(variant: str = "gopro-w32", **overrides: Any) -> NAFNet:
    """NAFNet of a named config (CONFIGS), with optional overrides of its constructor arguments."""
    if variant not in CONFIGS:
        raise ValueError(f"unknown NAFNet config {variant!r}; known: {', '.join(CONFIGS)}")
    return NAFNet(**{**CONFIGS[variant], **overrides})
