"""SwinIR-light (Liang et al., ICCVW 2021): the lightweight SR configuration of SwinIR.

Config (JingyunLiang/SwinIR README / main_test_swinir.py, task lightweight_sr): embed 60, four residual Swin
transformer blocks (RSTB) of 6 layers, 6 heads, window 8, MLP ratio 2, one conv per RSTB, 'pixelshuffledirect'
upsampler (conv3x3 60 -> 3 s^2 + PixelShuffle), inputs in [0, 1] minus the DIV2K mean. Parameter names follow
``models/network_swinir.py`` so the released ``002_lightweightSR_DIV2K_s64w8_SwinIR-S_x{2,3,4}`` weights load
through :func:`from_official_state_dict`.

The input is reflect-padded at the bottom/right to a multiple of the window and the output cropped back.
Shifted windows use the usual region mask (-100 between tokens from different regions), computed for the
actual (padded) size and cached.
"""
from __future__ import annotations

import torch
from torch import nn

from .common import (
    DIV2K_RGB_MEAN,
    check_image,
    check_scale,
    pick_variant,
    pixel_shuffle_upsampler,
    reflect_pad_to_multiple,
)

# SwinIR paper, Table 3 (lightweight SR) [M; x2 confirmed by SwinIR issue #45]: 878K / 886K / 897K. The code
# holds 32,400 more (910,152 at x2, as issue #45 measured): the published counts leave out the 24 relative
# position bias tables (24 x 225 x 6). :func:`paper_param_count` applies that convention.
PUBLISHED_PARAMS = {2: 878e3, 3: 886e3, 4: 897e3}

VARIANTS = {
    "light": dict(embed_dim=60, depths=(6, 6, 6, 6), num_heads=(6, 6, 6, 6), window_size=8, mlp_ratio=2.0),
    "tiny": dict(embed_dim=12, depths=(2, 2), num_heads=(2, 2), window_size=4, mlp_ratio=2.0),  # CPU smoke
    # classical SR (main_test_swinir.py, task classical_sr): SwinIR-M, 'pixelshuffle' upsampler; and the 60-dim
    # 4-RSTB student of the SR distillation papers (DUKD/DCKD configs: 'c60s24', pixelshuffle) [R]
    "classical-m": dict(embed_dim=180, depths=(6,) * 6, num_heads=(6,) * 6, window_size=8, mlp_ratio=2.0,
                        upsampler="pixelshuffle"),
    "kd-student": dict(embed_dim=60, depths=(6,) * 4, num_heads=(6,) * 4, window_size=8, mlp_ratio=2.0,
                       upsampler="pixelshuffle"),
}

# The classical models' 'pixelshuffle' tail: conv_before_upsample (conv embed -> 64, LeakyReLU), ``upsample``
# (conv 64 -> 4*64 + PixelShuffle(2) per x2 step, or conv 64 -> 9*64 + PixelShuffle(3)), conv_last (64 -> 3).
NUM_FEAT = 64

SHIFTED_MASK_VALUE = -100.0  # what SwinIR adds between tokens of different regions of a shifted window


def window_partition(x: torch.Tensor, w: int) -> torch.Tensor:
    """[B, H, W, C] -> [B * H/w * W/w, w*w, C]."""
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def window_reverse(windows: torch.Tensor, w: int, b: int, h: int, wd: int) -> torch.Tensor:
    c = windows.shape[-1]
    x = windows.view(b, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, wd, c)


def relative_position_index(w: int) -> torch.Tensor:
    """[w*w, w*w] index into the (2w-1)^2 relative-position table."""
    coords = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (w - 1)
    return rel[..., 0] * (2 * w - 1) + rel[..., 1]


def shifted_window_mask(h: int, wd: int, w: int, shift: int, device=None) -> torch.Tensor:
    """[nW, w*w, w*w] additive mask: 0 within a region, -100 across regions after the cyclic shift."""
    regions = torch.zeros(1, h, wd, 1, device=device)
    cuts = (slice(0, -w), slice(-w, -shift), slice(-shift, None))
    label = 0
    for hs in cuts:
        for ws in cuts:
            regions[:, hs, ws, :] = label
            label += 1
    ids = window_partition(regions, w).squeeze(-1)
    diff = ids[:, None, :] - ids[:, :, None]
    return diff.ne(0).float() * SHIFTED_MASK_VALUE


class WindowAttention(nn.Module):
    def __init__(self, dim: int, window_size: int, num_heads: int):
        super().__init__()
        self.window_size, self.num_heads = window_size, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.flatten()]
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.num_heads, n, n) + mask[None, :, None]
            attn = attn.view(bw, self.num_heads, n, n)
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, mlp_ratio: float):
        super().__init__()
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self._mask_cache: dict[tuple, torch.Tensor] = {}

    def _mask(self, h: int, w: int, device) -> torch.Tensor | None:
        if self.shift_size == 0:
            return None
        key = (h, w, str(device))
        if key not in self._mask_cache:
            self._mask_cache = {key: shifted_window_mask(h, w, self.window_size, self.shift_size, device)}
        return self._mask_cache[key]

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        h, w = size
        b, _, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        if self.shift_size:
            y = torch.roll(y, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
        windows = self.attn(window_partition(y, self.window_size), self._mask(h, w, x.device).to(x.dtype)
                            if self.shift_size else None)
        y = window_reverse(windows, self.window_size, b, h, w)
        if self.shift_size:
            y = torch.roll(y, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        x = x + y.reshape(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class BasicLayer(nn.Module):
    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float):
        super().__init__()
        self.blocks = nn.ModuleList([
            SwinTransformerBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, mlp_ratio)
            for i in range(depth)])

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x, size)
        return x


class RSTB(nn.Module):
    """Residual Swin Transformer Block: Swin layers, then a 3x3 conv on the image layout, plus a skip."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float):
        super().__init__()
        self.residual_group = BasicLayer(dim, depth, num_heads, window_size, mlp_ratio)
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        b, _, c = x.shape
        y = self.residual_group(x, size).transpose(1, 2).reshape(b, c, *size)
        return self.conv(y).flatten(2).transpose(1, 2) + x


class PatchEmbedNorm(nn.Module):
    """SwinIR's patch embedding of the lightweight model: flatten to tokens + LayerNorm (key ``norm``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.flatten(2).transpose(1, 2))


class SwinIR(nn.Module):
    def __init__(self, scale: int = 2, embed_dim: int = 60, depths=(6, 6, 6, 6), num_heads=(6, 6, 6, 6),
                 window_size: int = 8, mlp_ratio: float = 2.0, rgb_range: float = 1.0, colors: int = 3,
                 upsampler: str = "pixelshuffledirect"):
        super().__init__()
        check_scale("SwinIR", scale)
        if upsampler not in ("pixelshuffledirect", "pixelshuffle"):
            raise ValueError(f"SwinIR upsampler must be pixelshuffledirect or pixelshuffle, got {upsampler!r}")
        self.upsampler = upsampler
        self.scale, self.rgb_range, self.colors, self.window_size = scale, rgb_range, colors, window_size
        self.register_buffer("mean", torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.conv_first = nn.Conv2d(colors, embed_dim, 3, padding=1)
        self.patch_embed = PatchEmbedNorm(embed_dim)
        self.layers = nn.ModuleList([RSTB(embed_dim, d, h, window_size, mlp_ratio)
                                     for d, h in zip(depths, num_heads)])
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, padding=1)
        if upsampler == "pixelshuffledirect":
            self.upsample = pixel_shuffle_upsampler(embed_dim, colors, scale)
        else:
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, NUM_FEAT, 3, padding=1),
                                                      nn.LeakyReLU(inplace=True))
            steps = [(2, 4)] * {2: 1, 4: 2}[scale] if scale in (2, 4) else [(3, 9)]
            self.upsample = nn.Sequential(*[m for s, mult in steps for m in
                                            (nn.Conv2d(NUM_FEAT, mult * NUM_FEAT, 3, padding=1), nn.PixelShuffle(s))])
            self.conv_last = nn.Conv2d(NUM_FEAT, colors, 3, padding=1)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:  # SwinIR's initialisation of linear and norm layers
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.patch_embed(x)
        for layer in self.layers:
            tokens = layer(tokens, (h, w))
        return self.norm(tokens).transpose(1, 2).reshape(b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image("SwinIR", x, self.colors)
        h, w = x.shape[-2:]
        x = reflect_pad_to_multiple("SwinIR", x, self.window_size)
        x = x / self.rgb_range - self.mean.to(x.dtype)
        x = self.conv_first(x)
        x = self.conv_after_body(self.forward_features(x)) + x
        x = self.reconstruct(x)
        x = (x + self.mean.to(x.dtype)) * self.rgb_range
        return x[:, :, : h * self.scale, : w * self.scale]


    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The upsampling tail, from the body's output (plus its residual) to the image (mean not yet added)."""
        if self.upsampler == "pixelshuffledirect":
            return self.upsample(x)
        return self.conv_last(self.upsample(self.conv_before_upsample(x)))


def build(scale: int = 4, variant: str = "light", **overrides) -> SwinIR:
    return SwinIR(scale=scale, **{**pick_variant("SwinIR", variant, VARIANTS), **overrides})


def paper_param_count(model: SwinIR) -> int:
    """Parameters as SwinIR's paper counts them: everything except the relative position bias tables."""
    return sum(p.numel() for name, p in model.named_parameters()
               if not name.endswith("relative_position_bias_table"))


def from_official_state_dict(state_dict: dict) -> dict:
    """Strip what the official checkpoints carry beyond our parameters: the ``params``/``params_ema``
    wrapper and the derived buffers (``attn_mask``, ``relative_position_index``) we recompute."""
    for wrapper in ("params_ema", "params"):
        if wrapper in state_dict:
            state_dict = state_dict[wrapper]
            break
    return {k: v for k, v in state_dict.items()
            if not k.endswith(("attn_mask", "relative_position_index"))}
