"""Mix Transformer (SegFormer's MiT) pieces, the CMX fusion modules and the all-MLP decoder, with the module names
of the official code (NVlabs/SegFormer mix_transformer, as vendored by TruFor in ``lib/models/cmx`` and by IMDLBenCo in
``model_zoo/trufor/cmx``) so that their state dicts load strictly.

Written from the official structure (read, not copied): overlapping patch embedding (conv k7 s4 then k3 s2),
efficient self-attention with spatial reduction ``sr_ratio``, Mix-FFN (fc1 -> depthwise 3x3 -> GELU -> fc2), a
LayerNorm after every stage; FRM (channel + spatial rectification, lambda 0.5 each) and FFM (cross-path "efficient"
attention + channel embedding) from CMX; the decoder projects the four stages to ``embed_dim``, upsamples to the
first stage, concatenates (order c4, c3, c2, c1), fuses with 1x1 conv + BN + ReLU and predicts with a 1x1 conv.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class MiTConfig:
    """A MiT size. mit-b0..b5 are the official ones (SegFormer Table 6 / mix_transformer.py)."""

    embed_dims: tuple[int, ...] = (64, 128, 320, 512)
    num_heads: tuple[int, ...] = (1, 2, 5, 8)
    depths: tuple[int, ...] = (3, 4, 6, 3)
    sr_ratios: tuple[int, ...] = (8, 4, 2, 1)
    mlp_ratio: int = 4
    norm_eps: float = 1e-6
    extra: dict = field(default_factory=dict)


MIT = {
    "mit-b0": MiTConfig(embed_dims=(32, 64, 160, 256), depths=(2, 2, 2, 2)),
    "mit-b1": MiTConfig(depths=(2, 2, 2, 2)),
    "mit-b2": MiTConfig(depths=(3, 4, 6, 3)),
    "mit-b3": MiTConfig(depths=(3, 4, 18, 3)),
    "mit-b4": MiTConfig(depths=(3, 8, 27, 3)),
    "mit-b5": MiTConfig(depths=(3, 6, 40, 3)),
    # bench's smoke size: the same structure at 1/8 the width and one block per stage
    "mit-tiny": MiTConfig(embed_dims=(8, 16, 24, 32), num_heads=(1, 1, 2, 2), depths=(1, 1, 1, 1),
                          sr_ratios=(4, 2, 1, 1), mlp_ratio=2),
}


def mit_config(name: str | MiTConfig) -> MiTConfig:
    if isinstance(name, MiTConfig):
        return name
    if name not in MIT:
        raise ValueError(f"unknown MiT variant {name!r}; known: {', '.join(MIT)}")
    return MIT[name]


def tokens_to_map(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return x.transpose(1, 2).reshape(x.shape[0], -1, h, w)


class DWConv(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return self.dwconv(tokens_to_map(x, h, w)).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return self.fc2(F.gelu(self.dwconv(self.fc1(x), h, w)))


class Attention(nn.Module):
    """Efficient self-attention: keys/values from a ``sr_ratio``-strided conv of the map (sequence reduction)."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int):
        super().__init__()
        self.num_heads, self.sr_ratio = num_heads, sr_ratio
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim, bias=True)
        self.kv = nn.Linear(dim, dim * 2, bias=True)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        q = self.q(x).reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)
        if self.sr_ratio > 1:
            x = self.norm(self.sr(tokens_to_map(x, h, w)).flatten(2).transpose(1, 2))
        k, v = self.kv(x).reshape(b, -1, 2, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, sr_ratio: int, eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.mlp(self.norm2(x), h, w)


class OverlapPatchEmbed(nn.Module):
    def __init__(self, patch_size: int, stride: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride, patch_size // 2)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


def stage_modules(cfg: MiTConfig, stage: int, in_chans: int) -> tuple[OverlapPatchEmbed, nn.ModuleList, nn.LayerNorm]:
    """Patch embedding, blocks and closing norm of one stage (0-based), as the official MiT builds them."""
    dim_in = in_chans if stage == 0 else cfg.embed_dims[stage - 1]
    embed = OverlapPatchEmbed(7 if stage == 0 else 3, 4 if stage == 0 else 2, dim_in, cfg.embed_dims[stage])
    blocks = nn.ModuleList(Block(cfg.embed_dims[stage], cfg.num_heads[stage], cfg.mlp_ratio, cfg.sr_ratios[stage],
                                 cfg.norm_eps) for _ in range(cfg.depths[stage]))
    return embed, blocks, nn.LayerNorm(cfg.embed_dims[stage], eps=cfg.norm_eps)


def run_stage(x_map: torch.Tensor, embed: nn.Module, blocks: nn.ModuleList, norm: nn.Module,
              before_blocks=None) -> torch.Tensor:
    """One MiT stage on a map: embed -> (optional map-level hook, e.g. GIMFormer's FSB) -> blocks -> norm -> map."""
    x, h, w = embed(x_map)
    if before_blocks is not None:
        x = before_blocks(tokens_to_map(x, h, w)).flatten(2).transpose(1, 2)
    for blk in blocks:
        x = blk(x, h, w)
    return tokens_to_map(norm(x), h, w).contiguous()


class MixTransformer(nn.Module):
    """Single-stream MiT encoder (SegFormer's backbone): keys patch_embed{1-4}, block{1-4}, norm{1-4}."""

    def __init__(self, cfg: str | MiTConfig = "mit-b2", in_chans: int = 3):
        super().__init__()
        self.cfg = mit_config(cfg)
        for s in range(4):
            embed, blocks, norm = stage_modules(self.cfg, s, in_chans)
            setattr(self, f"patch_embed{s + 1}", embed)
            setattr(self, f"block{s + 1}", blocks)
            setattr(self, f"norm{s + 1}", norm)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for s in range(1, 5):
            x = run_stage(x, getattr(self, f"patch_embed{s}"), getattr(self, f"block{s}"), getattr(self, f"norm{s}"))
            outs.append(x)
        return outs


# ---------------------------------------------------------------------------------------------------------
# CMX fusion (FRM, FFM)

class ChannelWeights(nn.Module):
    def __init__(self, dim: int, reduction: int = 1):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim * 4, dim * 4 // reduction), nn.ReLU(inplace=True),
                                 nn.Linear(dim * 4 // reduction, dim * 2), nn.Sigmoid())

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        b = x1.shape[0]
        x = torch.cat((x1, x2), dim=1)
        y = torch.cat((x.mean(dim=(2, 3)), x.amax(dim=(2, 3))), dim=1)
        return self.mlp(y).reshape(b, 2, self.dim, 1, 1).permute(1, 0, 2, 3, 4)  # [2, B, C, 1, 1]


class SpatialWeights(nn.Module):
    def __init__(self, dim: int, reduction: int = 1):
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(dim * 2, dim // reduction, 1), nn.ReLU(inplace=True),
                                 nn.Conv2d(dim // reduction, 2, 1), nn.Sigmoid())

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x1.shape
        return self.mlp(torch.cat((x1, x2), dim=1)).reshape(b, 2, 1, h, w).permute(1, 0, 2, 3, 4)


class FeatureRectifyModule(nn.Module):
    """FRM: each stream adds the other, scaled by 0.5 x channel weight + 0.5 x spatial weight."""

    def __init__(self, dim: int, reduction: int = 1, lambda_c: float = 0.5, lambda_s: float = 0.5):
        super().__init__()
        self.lambda_c, self.lambda_s = lambda_c, lambda_s
        self.channel_weights = ChannelWeights(dim, reduction)
        self.spatial_weights = SpatialWeights(dim, reduction)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cw, sw = self.channel_weights(x1, x2), self.spatial_weights(x1, x2)
        out1 = x1 + self.lambda_c * cw[1] * x2 + self.lambda_s * sw[1] * x2
        out2 = x2 + self.lambda_c * cw[0] * x1 + self.lambda_s * sw[0] * x1
        return out1, out2


class CrossAttention(nn.Module):
    """Each stream's queries against the other's key-value context (B x heads x C x C), softmax over keys' dim."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.kv1 = nn.Linear(dim, dim * 2, bias=False)
        self.kv2 = nn.Linear(dim, dim * 2, bias=False)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, c = x1.shape
        heads = self.num_heads
        q1 = x1.reshape(b, n, heads, c // heads).transpose(1, 2)
        q2 = x2.reshape(b, n, heads, c // heads).transpose(1, 2)
        k1, v1 = self.kv1(x1).reshape(b, n, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
        k2, v2 = self.kv2(x2).reshape(b, n, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
        ctx1 = ((k1.transpose(-2, -1) @ v1) * self.scale).softmax(dim=-2)
        ctx2 = ((k2.transpose(-2, -1) @ v2) * self.scale).softmax(dim=-2)
        y1 = (q1 @ ctx2).transpose(1, 2).reshape(b, n, c)
        y2 = (q2 @ ctx1).transpose(1, 2).reshape(b, n, c)
        return y1, y2


class CrossPath(nn.Module):
    def __init__(self, dim: int, reduction: int = 1, num_heads: int = 1):
        super().__init__()
        inner = dim // reduction
        self.channel_proj1 = nn.Linear(dim, inner * 2)
        self.channel_proj2 = nn.Linear(dim, inner * 2)
        self.cross_attn = CrossAttention(inner, num_heads)
        self.end_proj1 = nn.Linear(inner * 2, dim)
        self.end_proj2 = nn.Linear(inner * 2, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y1, u1 = F.relu(self.channel_proj1(x1)).chunk(2, dim=-1)
        y2, u2 = F.relu(self.channel_proj2(x2)).chunk(2, dim=-1)
        v1, v2 = self.cross_attn(u1, u2)
        return (self.norm1(x1 + self.end_proj1(torch.cat((y1, v1), dim=-1))),
                self.norm2(x2 + self.end_proj2(torch.cat((y2, v2), dim=-1))))


class ChannelEmbed(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, reduction: int = 1):
        super().__init__()
        mid = out_channels // reduction
        self.residual = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.channel_embed = nn.Sequential(nn.Conv2d(in_channels, mid, 1, bias=True),
                                           nn.Conv2d(mid, mid, 3, 1, 1, bias=True, groups=mid),
                                           nn.ReLU(inplace=True),
                                           nn.Conv2d(mid, out_channels, 1, bias=True),
                                           nn.BatchNorm2d(out_channels))
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.residual(x) + self.channel_embed(x))


class FeatureFusionModule(nn.Module):
    """FFM: cross-path exchange on tokens, then concatenation mapped back to C channels."""

    def __init__(self, dim: int, reduction: int = 1, num_heads: int = 1):
        super().__init__()
        self.cross = CrossPath(dim, reduction, num_heads)
        self.channel_emb = ChannelEmbed(dim * 2, dim, reduction)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x1.shape
        t1, t2 = self.cross(x1.flatten(2).transpose(1, 2), x2.flatten(2).transpose(1, 2))
        return self.channel_emb(tokens_to_map(torch.cat((t1, t2), dim=-1), h, w))


class DualMixTransformer(nn.Module):
    """CMX's RGBXTransformer: an RGB MiT (patch_embed/block/norm) and an extra-modality MiT (extra_*), fused after
    every stage by FRMs[i] then FFMs[i]; the rectified streams continue, the fused map is the stage's output.

    Hooks (None in CMX/TruFor): ``rgb_pre[i]`` maps the RGB stage's embedded map before its blocks (GIMFormer's FSB);
    ``rgb_post[i]`` / ``extra_post[i]`` map each stream after its stage norm (GIMFormer's MWAM)."""

    def __init__(self, cfg: str | MiTConfig = "mit-b2", in_chans: int = 3, extra_in_chans: int = 3):
        super().__init__()
        self.cfg = mit_config(cfg)
        for s in range(4):
            for prefix, chans in (("", in_chans), ("extra_", extra_in_chans)):
                embed, blocks, norm = stage_modules(self.cfg, s, chans)
                setattr(self, f"{prefix}patch_embed{s + 1}", embed)
                setattr(self, f"{prefix}block{s + 1}", blocks)
                setattr(self, f"{prefix}norm{s + 1}", norm)
        dims, heads = self.cfg.embed_dims, self.cfg.num_heads
        self.FRMs = nn.ModuleList(FeatureRectifyModule(dims[s]) for s in range(4))
        self.FFMs = nn.ModuleList(FeatureFusionModule(dims[s], num_heads=heads[s]) for s in range(4))
        self.rgb_pre: list | None = None
        self.rgb_post: list | None = None
        self.extra_post: list | None = None

    def forward(self, x_rgb: torch.Tensor, x_e: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for s in range(4):
            i = s + 1
            pre = self.rgb_pre[s] if self.rgb_pre is not None else None
            x_rgb = run_stage(x_rgb, getattr(self, f"patch_embed{i}"), getattr(self, f"block{i}"),
                              getattr(self, f"norm{i}"), pre)
            x_e = run_stage(x_e, getattr(self, f"extra_patch_embed{i}"), getattr(self, f"extra_block{i}"),
                            getattr(self, f"extra_norm{i}"))
            if self.rgb_post is not None:
                x_rgb = self.rgb_post[s](x_rgb)
            if self.extra_post is not None:
                x_e = self.extra_post[s](x_e)
            x_rgb, x_e = self.FRMs[s](x_rgb, x_e)
            outs.append(self.FFMs[s](x_rgb, x_e))
        return outs


# ---------------------------------------------------------------------------------------------------------
# all-MLP decoder

class MLP(nn.Module):
    def __init__(self, input_dim: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Linear(input_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.flatten(2).transpose(1, 2))


class DecoderHead(nn.Module):
    """SegFormer's all-MLP head (CMX/TruFor layout: linear_c{1-4}.proj, linear_fuse.{0 conv, 1 BN}, linear_pred)."""

    def __init__(self, in_channels: tuple[int, ...], num_classes: int, embed_dim: int, dropout: float = 0.1):
        super().__init__()
        for k, c in zip((1, 2, 3, 4), in_channels):
            setattr(self, f"linear_c{k}", MLP(c, embed_dim))
        self.linear_fuse = nn.Sequential(nn.Conv2d(embed_dim * 4, embed_dim, 1), nn.BatchNorm2d(embed_dim),
                                         nn.ReLU(inplace=True))
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.linear_pred = nn.Conv2d(embed_dim, num_classes, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        size = feats[0].shape[2:]
        parts = []
        for k in (4, 3, 2, 1):
            f = feats[k - 1]
            e = getattr(self, f"linear_c{k}")(f).transpose(1, 2).reshape(f.shape[0], -1, *f.shape[2:])
            parts.append(e if k == 1 else F.interpolate(e, size=size, mode="bilinear", align_corners=False))
        return self.linear_pred(self.dropout(self.linear_fuse(torch.cat(parts, dim=1))))
