"""ResShift's denoiser ``UNetModelSwin`` (zsyOAOA/ResShift models/unet.py + models/swin_transformer.py [R]).

Parameter and buffer names follow the official module tree, so an official state dict (``input_blocks.*``,
``middle_block.*``, ``output_blocks.*``, ``time_embed.*``, ``out.*``, Swin ``BasicLayer`` with ``patch_embed``,
``blocks.N.attn.relative_position_bias_table``, persistent ``relative_position_index`` and, in shifted blocks,
``attn_mask`` buffers) loads strictly. Our own code: written from the official structure, not copied.

Structure (realsr x4: image_size 64, model_channels 160, channel_mult [1,2,2,4], 2 res-blocks per level, Swin
at every resolution in attention_resolutions [64,32,16,8] after the first res-block of a level, swin depth 2,
embed 192, window 8, mlp 4, num_head_channels 32, scale-shift norm, conv resampling):
* the LR image (lq) is concatenated to the input; when lq_size == image_size no feature extractor (Identity),
  else log2(lq_size/image_size) x [conv3x3, SiLU, strided conv] growing 16 -> 32 -> ... channels;
* ResBlock: GroupNorm(32)-SiLU-conv3x3, time embedding -> (scale, shift) FiLM on the second GroupNorm, SiLU,
  dropout, zero-init conv3x3, 1x1 skip when the width changes;
* Swin BasicLayer: 1x1 conv patch-embed to embed_dim, ``depth`` Swin blocks on (B, C, H, W) maps with GroupNorm
  (not LayerNorm) and 1x1-conv MLPs, plain then shifted windows, 1x1 conv back to the block's width. Note: the
  official layer has no residual around it (the blocks inside are residual).
``norm_groups`` (official 32) exists only so that the CPU smoke configs can be narrower than 32 channels.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Config of the realsr x4 teacher (configs/realsr_swinunet_realesrgan256.yaml [R]); TAD-SR's student is a copy.
REALSR_X4: dict[str, Any] = dict(image_size=64, in_channels=3, model_channels=160, out_channels=3,
                                 attention_resolutions=(64, 32, 16, 8), channel_mult=(1, 2, 2, 4),
                                 num_res_blocks=(2, 2, 2, 2), num_head_channels=32, swin_depth=2,
                                 swin_embed_dim=192, window_size=8, mlp_ratio=4.0, lq_size=64, norm_groups=32)
# Published size: 119 M parameters for ResShift and SinSR (a later paper's table, dossier 6.6 [S]).
PUBLISHED_PARAMS_M = 119.0


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 (the official GroupNorm32)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[cos | sin] sinusoidal embedding of (possibly fractional) timesteps."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1) if dim % 2 else emb


class TimestepSequential(nn.Sequential):
    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class Downsample(nn.Module):
    def __init__(self, channels: int, out_channels: int | None = None):
        super().__init__()
        self.op = nn.Conv2d(channels, out_channels or channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int, out_channels: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(channels, out_channels or channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResBlock(nn.Module):
    def __init__(self, channels: int, emb_channels: int, dropout: float, out_channels: int | None, groups: int,
                 scale_shift: bool = True):
        super().__init__()
        out_channels = out_channels or channels
        self.scale_shift = scale_shift
        self.in_layers = nn.Sequential(GroupNorm32(groups, channels), nn.SiLU(),
                                       nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, (2 if scale_shift else 1) * out_channels))
        self.out_layers = nn.Sequential(GroupNorm32(groups, out_channels), nn.SiLU(), nn.Dropout(dropout),
                                        nn.Conv2d(out_channels, out_channels, 3, padding=1))
        nn.init.zeros_(self.out_layers[-1].weight)
        nn.init.zeros_(self.out_layers[-1].bias)
        self.skip_connection = (nn.Identity() if out_channels == channels
                                else nn.Conv2d(channels, out_channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        e = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


# ------------------------------------------------------------------------------------------ Swin (B, C, H, W)
def window_partition(x: torch.Tensor, w: int) -> torch.Tensor:
    """(B, C, H, W) -> (B * nW, w*w, C)."""
    b, c, h, wd = x.shape
    x = x.view(b, c, h // w, w, wd // w, w).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(-1, w * w, c)


def window_reverse(windows: torch.Tensor, w: int, h: int, wd: int) -> torch.Tensor:
    """(B * nW, w*w, C) -> (B, C, H, W)."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // w) * (wd // w))
    x = windows.view(b, h // w, wd // w, w, w, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, c, h, wd)


def relative_position_index(w: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (w - 1)
    return rel[..., 0] * (2 * w - 1) + rel[..., 1]


def shifted_window_mask(h: int, wd: int, w: int, shift: int) -> torch.Tensor:
    """(nW, w*w, w*w): 0 inside a region of the cyclically shifted map, -100 across regions."""
    regions = torch.zeros(1, 1, h, wd)
    label = 0
    cuts = (slice(0, -w), slice(-w, -shift), slice(-shift, None))
    for hs in cuts:
        for ws in cuts:
            regions[:, :, hs, ws] = label
            label += 1
    ids = window_partition(regions, w).squeeze(-1)
    diff = ids[:, None, :] - ids[:, :, None]
    return diff.ne(0).float() * -100.0


class WindowAttention(nn.Module):
    def __init__(self, dim: int, window_size: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window_size))  # persistent
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        bw, n, c = x.shape
        q, k, v = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0).to(attn.dtype)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(bw // nw, nw, self.num_heads, n, n) + mask[None, :, None]).view(bw, self.num_heads, n, n)
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, resolution: int, num_heads: int, window_size: int, shift: int, mlp_ratio: float,
                 groups: int):
        super().__init__()
        if resolution <= window_size:  # the official rule: one window, no shift, when the map is small
            window_size, shift = resolution, 0
        self.window_size, self.shift, self.resolution = window_size, shift, resolution
        self.norm1 = GroupNorm32(groups, dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = GroupNorm32(groups, dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        if shift:
            self.register_buffer("attn_mask", shifted_window_mask(resolution, resolution, window_size, shift))
        else:
            self.attn_mask = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.norm1(x)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(2, 3))
        mask = None
        if self.shift:
            mask = (self.attn_mask if (h, w) == (self.resolution, self.resolution)
                    else shifted_window_mask(h, w, self.window_size, self.shift).to(x.device))
            mask = mask.to(x.dtype)
        y = window_reverse(self.attn(window_partition(y, self.window_size), mask), self.window_size, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(2, 3))
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class BasicLayer(nn.Module):
    def __init__(self, in_chans: int, embed_dim: int, num_heads: int, window_size: int, depth: int, img_size: int,
                 mlp_ratio: float, groups: int):
        super().__init__()
        self.patch_embed = PatchEmbed(in_chans, embed_dim)
        self.patch_unembed = PatchEmbed(embed_dim, in_chans)  # official PatchUnEmbed: a 1x1 conv named proj
        self.blocks = nn.ModuleList([
            SwinBlock(embed_dim, img_size, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, mlp_ratio,
                      groups) for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for blk in self.blocks:
            x = blk(x)
        return self.patch_unembed(x)


class UNetModelSwin(nn.Module):
    def __init__(self, image_size: int = 64, in_channels: int = 3, model_channels: int = 160, out_channels: int = 3,
                 num_res_blocks: int | Sequence[int] = 2, attention_resolutions: Sequence[int] = (64, 32, 16, 8),
                 dropout: float = 0.0, channel_mult: Sequence[int] = (1, 2, 2, 4), num_head_channels: int = 32,
                 swin_depth: int = 2, swin_embed_dim: int = 192, window_size: int = 8, mlp_ratio: float = 4.0,
                 lq_size: int = 64, norm_groups: int = 32, use_scale_shift_norm: bool = True):
        super().__init__()
        blocks = [num_res_blocks] * len(channel_mult) if isinstance(num_res_blocks, int) else list(num_res_blocks)
        self.model_channels = model_channels
        emb_dim = model_channels * 4
        g = norm_groups
        heads = swin_embed_dim // num_head_channels
        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if lq_size == image_size:
            self.feature_extractor: nn.Module = nn.Identity()
            lq_ch = 3
        else:
            layers: list[nn.Module] = []
            feat, lq_ch = 3, 16
            for _ in range(int(math.log2(lq_size / image_size))):
                layers += [nn.Conv2d(feat, lq_ch, 3, 1, 1), nn.SiLU(), Downsample(lq_ch, lq_ch * 2)]
                lq_ch *= 2
                feat = lq_ch
            self.feature_extractor = nn.Sequential(*layers)

        def swin(ch: int, res: int) -> BasicLayer:
            return BasicLayer(ch, swin_embed_dim, heads, window_size, swin_depth, res, mlp_ratio, g)

        def res_block(cin: int, cout: int) -> ResBlock:
            return ResBlock(cin, emb_dim, dropout, cout, g, use_scale_shift_norm)

        ch = input_ch = int(channel_mult[0] * model_channels)
        self.input_blocks = nn.ModuleList([TimestepSequential(nn.Conv2d(in_channels + lq_ch, ch, 3, padding=1))])
        chans, ds = [ch], image_size
        for level, mult in enumerate(channel_mult):
            for j in range(blocks[level]):
                layers = [res_block(ch, int(mult * model_channels))]
                ch = int(mult * model_channels)
                if ds in attention_resolutions and j == 0:
                    layers.append(swin(ch, ds))
                self.input_blocks.append(TimestepSequential(*layers))
                chans.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(TimestepSequential(Downsample(ch)))
                chans.append(ch)
                ds //= 2
        self.middle_block = TimestepSequential(res_block(ch, ch), swin(ch, ds), res_block(ch, ch))
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(blocks[level] + 1):
                layers = [res_block(ch + chans.pop(), int(model_channels * mult))]
                ch = int(model_channels * mult)
                if ds in attention_resolutions and i == 0:
                    layers.append(swin(ch, ds))
                if level and i == blocks[level]:
                    layers.append(Upsample(ch))
                    ds *= 2
                self.output_blocks.append(TimestepSequential(*layers))
        self.out = nn.Sequential(GroupNorm32(g, ch), nn.SiLU(), nn.Conv2d(input_ch, out_channels, 3, padding=1))

    def encoder_features(self, x: torch.Tensor, t: torch.Tensor, lq: torch.Tensor,
                         taps: Sequence[int]) -> list[torch.Tensor]:
        """Features after the input blocks listed in ``taps`` and after the middle block (TAD-SR's ``only_fea``
        path, the time-aware discriminator's input)."""
        emb = self.time_embed(timestep_embedding(t, self.model_channels))
        h = torch.cat([x, self.feature_extractor(lq)], dim=1)
        feats = []
        for i, module in enumerate(self.input_blocks):
            h = module(h, emb)
            if i in taps:
                feats.append(h)
        feats.append(self.middle_block(h, emb))
        return feats

    def forward(self, x: torch.Tensor, t: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        emb = self.time_embed(timestep_embedding(t, self.model_channels))
        h = torch.cat([x, self.feature_extractor(lq)], dim=1)
        hs = []
        for module in self.input_blocks:
            h = module(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for module in self.output_blocks:
            h = module(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)


class ResidualPrediction(nn.Module):
    """The official ``predict_type: residual`` parameterisation (ModelMeanType.RESIDUAL): the network predicts
    y - x0 and x0 = y - output. Here y is the conditioning ``lq`` itself, which holds in pixel space (the lq
    fed to the network is the upsampled LR, i.e. y). The realsr x4 config predicts x0 directly (``xstart``)."""

    def __init__(self, net: UNetModelSwin):
        super().__init__()
        self.net = net

    @property
    def input_blocks(self) -> nn.ModuleList:
        return self.net.input_blocks

    def encoder_features(self, x: torch.Tensor, t: torch.Tensor, lq: torch.Tensor,
                         taps: Sequence[int]) -> list[torch.Tensor]:
        return self.net.encoder_features(x, t, lq, taps)

    def forward(self, x: torch.Tensor, t: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        return lq - self.net(x, t, lq)


def build(variant: str = "realsr-x4", **overrides: Any) -> UNetModelSwin:
    if variant != "realsr-x4":
        raise ValueError(f"unknown ResShift variant {variant!r}; known: realsr-x4 (override fields for smoke)")
    return UNetModelSwin(**{**REALSR_X4, **overrides})
