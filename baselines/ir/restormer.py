"""Restormer (Zamir et al., CVPR 2022, swz30/Restormer) at its official shapes.

Parameter names and shapes follow the official ``basicsr/models/archs/restormer_arch.py`` (``patch_embed.proj``,
``encoder_level{1,2,3}``, ``latent``, ``decoder_level{3,2,1}``, ``refinement``, ``down1_2.body.0``,
``up4_3.body.0``, ``reduce_chan_level{3,2}``, ``output``; inside a block ``norm{1,2}.body.weight|bias``,
``attn.temperature|qkv|qkv_dwconv|project_out``, ``ffn.project_in|dwconv|project_out``), so an official
checkpoint's ``params`` dict loads strictly (tests/models/test_sam_prior_models.py).

Configs: "restormer" is the official default (deraining, motion deblurring; 26.13M parameters), "restormer-denoise"
its real/Gaussian denoising option (LayerNorm_type BiasFree). "tiny" is ours, for the CPU smoke runs.
The dual-pixel defocus variant (6 input channels, skip_conv) is not built.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

CONFIGS: dict[str, dict[str, Any]] = {
    "restormer": {"dim": 48, "num_blocks": [4, 6, 6, 8], "num_refinement_blocks": 4, "heads": [1, 2, 4, 8],
                  "ffn_expansion_factor": 2.66, "bias": False, "layernorm_type": "WithBias"},
    "restormer-denoise": {"dim": 48, "num_blocks": [4, 6, 6, 8], "num_refinement_blocks": 4,
                          "heads": [1, 2, 4, 8], "ffn_expansion_factor": 2.66, "bias": False,
                          "layernorm_type": "BiasFree"},
    # ours: same four levels, one block each, 8 channels at level 1, no refinement stage (CPU smoke budget)
    "tiny": {"dim": 8, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 0, "heads": [1, 1, 2, 2],
             "ffn_expansion_factor": 2.0, "bias": False, "layernorm_type": "WithBias"},
}


class _TokenLayerNorm(nn.Module):
    """LayerNorm over channels of an NCHW map (Restormer's to_3d -> LayerNorm -> to_4d), biased variance, eps 1e-5.

    The parameters sit in a ``body`` child like the official wrapper. BiasFree: no mean subtraction, no bias."""

    def __init__(self, dim: int, with_bias: bool):
        super().__init__()
        self.body = nn.Module()
        self.body.weight = nn.Parameter(torch.ones(dim))
        self.with_bias = with_bias
        if with_bias:
            self.body.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.permute(0, 2, 3, 1)  # channels last: normalise each pixel's feature vector
        var = t.var(-1, keepdim=True, unbiased=False)
        if self.with_bias:
            t = (t - t.mean(-1, keepdim=True)) / torch.sqrt(var + 1e-5) * self.body.weight + self.body.bias
        else:
            t = t / torch.sqrt(var + 1e-5) * self.body.weight
        return t.permute(0, 3, 1, 2)


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network: 1x1 up to 2*hidden, depth-wise 3x3, GELU gate, 1x1 down."""

    def __init__(self, dim: int, expansion: float, bias: bool):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class MDTA(nn.Module):
    """Multi-Dconv-head transposed attention: channel-to-channel attention per head, L2-normalised q/k with a
    learned per-head temperature."""

    def __init__(self, dim: int, heads: int, bias: bool):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        q, k, v = (t.reshape(b, self.heads, c // self.heads, h * w) for t in (q, k, v))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, expansion: float, bias: bool, layernorm_type: str):
        super().__init__()
        with_bias = layernorm_type != "BiasFree"
        self.norm1 = _TokenLayerNorm(dim, with_bias)
        self.attn = MDTA(dim, heads, bias)
        self.norm2 = _TokenLayerNorm(dim, with_bias)
        self.ffn = GDFN(dim, expansion, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class _Resample(nn.Module):
    """Down: 3x3 conv to C/2 then pixel-unshuffle (-> 2C). Up: 3x3 conv to 2C then pixel-shuffle (-> C/2)."""

    def __init__(self, channels: int, down: bool):
        super().__init__()
        out = channels // 2 if down else channels * 2
        self.body = nn.Sequential(nn.Conv2d(channels, out, 3, padding=1, bias=False),
                                  nn.PixelUnshuffle(2) if down else nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class _PatchEmbed(nn.Module):
    def __init__(self, in_c: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_c, dim, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Restormer(nn.Module):
    """Four-level encoder-decoder of transformer blocks with a refinement stage and a global residual.

    Inputs must be a multiple of 8 on each side (the official test scripts pad to it); ``forward`` pads with
    reflection and crops back, as those scripts do."""

    rgb_range = 1.0

    def __init__(self, inp_channels: int = 3, out_channels: int = 3, dim: int = 48,
                 num_blocks: list[int] | tuple[int, ...] = (4, 6, 6, 8), num_refinement_blocks: int = 4,
                 heads: list[int] | tuple[int, ...] = (1, 2, 4, 8), ffn_expansion_factor: float = 2.66,
                 bias: bool = False, layernorm_type: str = "WithBias"):
        super().__init__()

        def stage(width: int, n: int, head: int) -> nn.Sequential:
            return nn.Sequential(*[TransformerBlock(width, head, ffn_expansion_factor, bias, layernorm_type)
                                   for _ in range(n)])

        d1, d2, d3, d4 = dim, dim * 2, dim * 4, dim * 8
        self.patch_embed = _PatchEmbed(inp_channels, d1)
        self.encoder_level1 = stage(d1, num_blocks[0], heads[0])
        self.down1_2 = _Resample(d1, down=True)
        self.encoder_level2 = stage(d2, num_blocks[1], heads[1])
        self.down2_3 = _Resample(d2, down=True)
        self.encoder_level3 = stage(d3, num_blocks[2], heads[2])
        self.down3_4 = _Resample(d3, down=True)
        self.latent = stage(d4, num_blocks[3], heads[3])
        self.up4_3 = _Resample(d4, down=False)
        self.reduce_chan_level3 = nn.Conv2d(d4, d3, 1, bias=bias)
        self.decoder_level3 = stage(d3, num_blocks[2], heads[2])
        self.up3_2 = _Resample(d3, down=False)
        self.reduce_chan_level2 = nn.Conv2d(d3, d2, 1, bias=bias)
        self.decoder_level2 = stage(d2, num_blocks[1], heads[1])
        self.up2_1 = _Resample(d2, down=False)
        # level 1 of the decoder keeps the concatenated 2*dim channels (no 1x1 reduction), as officially
        self.decoder_level1 = stage(d2, num_blocks[0], heads[0])
        self.refinement = stage(d2, num_refinement_blocks, heads[0])
        self.output = nn.Conv2d(d2, out_channels, 3, padding=1, bias=bias)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        pad_h, pad_w = (-h) % 8, (-w) % 8
        x = F.pad(inp, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else inp
        e1 = self.encoder_level1(self.patch_embed(x))
        e2 = self.encoder_level2(self.down1_2(e1))
        e3 = self.encoder_level3(self.down2_3(e2))
        lat = self.latent(self.down3_4(e3))
        d3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(lat), e3], 1)))
        d2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(d3), e2], 1)))
        d1 = self.refinement(self.decoder_level1(torch.cat([self.up2_1(d2), e1], 1)))
        out = self.output(d1) + x
        return out[:, :, :h, :w]


def build(variant: str = "restormer", **overrides: Any) -> Restormer:
    if variant not in CONFIGS:
        raise ValueError(f"unknown Restormer config {variant!r}; known: {', '.join(CONFIGS)}")
    return Restormer(**{**CONFIGS[variant], **overrides})
