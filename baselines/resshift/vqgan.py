"""ResShift's VQGAN f4 autoencoder (``ldm.models.autoencoder.VQModelTorch``), the latent space of the teacher and
both one-step students.

Written from the official structure (zsyOAOA/ResShift ``ldm/models/autoencoder.py`` ``VQModelTorch``,
``ldm/modules/diffusionmodules/model.py`` ``Encoder``/``Decoder``/``ResnetBlock``, ``ldm/modules/vqvae/quantize.py``
``VectorQuantizer2`` [R]); not copied. Parameter names follow the official module tree, so the released
``autoencoder_vq_f4.pth`` (a plain state dict) loads strictly:
``encoder.conv_in``, ``encoder.down.{i}.block.{j}.{norm1,conv1,norm2,conv2,nin_shortcut}``,
``encoder.down.{i}.downsample.conv``, ``encoder.mid.{block_1,attn_1,block_2}``, ``encoder.norm_out``,
``encoder.conv_out``, ``quant_conv``, ``quantize.embedding.weight``, ``post_quant_conv``, and the decoder's mirror
(``decoder.up.{i}.block.{j}``, ``decoder.up.{i}.upsample.conv``).

Facts that matter for equal outputs:
* GroupNorm(32, eps 1e-6), swish; ResnetBlock without time embedding (temb_channels 0: no ``temb_proj``);
* downsampling pads (0, 1, 0, 1) with zeros, then a stride-2 3x3 conv without padding; upsampling is nearest x2
  then a 3x3 conv;
* the middle stage always has one single-head attention block (1x1-conv q, k, v, proj_out), even with
  ``attn_resolutions: []`` (realsr config), which puts attention nowhere else;
* ``encode`` = encoder + quant_conv, WITHOUT quantising; ``decode`` quantises first (nearest codebook entry in
  Euclidean distance, ``force_not_quantize`` False by default), then post_quant_conv + decoder. ResShift diffuses
  in the unquantised latent and quantises only when it decodes.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# configs/realsr_swinunet_realesrgan256.yaml ``autoencoder.params`` [R]; scale_factor 1.0 (``diffusion.params``).
F4_CONFIG: dict[str, Any] = dict(embed_dim=3, n_embed=8192,
                                 ddconfig=dict(double_z=False, z_channels=3, resolution=256, in_channels=3, out_ch=3,
                                               ch=128, ch_mult=(1, 2, 4), num_res_blocks=2, attn_resolutions=(),
                                               dropout=0.0))
SCALE_FACTOR = 1.0


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, ch, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.in_channels, self.out_channels = cin, cout
        self.norm1 = _norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = _norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))  # dropout 0.0 in every released config
        return (self.nin_shortcut(x) if self.in_channels != self.out_channels else x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions, 1x1 convs for q, k, v and the output projection."""

    def __init__(self, ch: int):
        super().__init__()
        self.norm = _norm(ch)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(ch, ch, 1) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = self.norm(x)
        q, k, v = (m(n).reshape(b, c, h * w).transpose(1, 2) for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj_out(out.transpose(1, 2).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _level(blocks: list[nn.Module], attn: list[nn.Module]) -> nn.Module:
    level = nn.Module()
    level.block = nn.ModuleList(blocks)
    level.attn = nn.ModuleList(attn)
    return level


def _mid(ch: int) -> nn.Module:
    mid = nn.Module()
    mid.block_1, mid.attn_1, mid.block_2 = ResnetBlock(ch, ch), AttnBlock(ch), ResnetBlock(ch, ch)
    return mid


def _run_mid(mid: nn.Module, h: torch.Tensor) -> torch.Tensor:
    return mid.block_2(mid.attn_1(mid.block_1(h)))


def _res_blocks(num_res_blocks: int | Sequence[int], levels: int) -> list[int]:
    return [int(num_res_blocks)] * levels if isinstance(num_res_blocks, int) else [int(n) for n in num_res_blocks]


class Encoder(nn.Module):
    def __init__(self, *, ch: int, ch_mult: Sequence[int], num_res_blocks: int | Sequence[int],
                 attn_resolutions: Sequence[int], in_channels: int, resolution: int, z_channels: int,
                 double_z: bool = True, **_: Any):
        super().__init__()
        blocks = _res_blocks(num_res_blocks, len(ch_mult))
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        res, cin = resolution, ch
        for i, mult in enumerate(ch_mult):
            cout = ch * mult
            level = _level([ResnetBlock(cin if j == 0 else cout, cout) for j in range(blocks[i])],
                           [AttnBlock(cout) for _ in range(blocks[i])] if res in attn_resolutions else [])
            cin = cout
            if i != len(ch_mult) - 1:
                level.downsample = Downsample(cout)
                res //= 2
            self.down.append(level)
        self.mid = _mid(cin)
        self.norm_out = _norm(cin)
        self.conv_out = nn.Conv2d(cin, 2 * z_channels if double_z else z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[j](h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = _run_mid(self.mid, h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, *, ch: int, out_ch: int, ch_mult: Sequence[int], num_res_blocks: int | Sequence[int],
                 attn_resolutions: Sequence[int], resolution: int, z_channels: int, **_: Any):
        super().__init__()
        blocks = _res_blocks(num_res_blocks, len(ch_mult))
        cin = ch * ch_mult[-1]
        res = resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = nn.Conv2d(z_channels, cin, 3, padding=1)
        self.mid = _mid(cin)
        ups: list[nn.Module] = []
        for i in reversed(range(len(ch_mult))):
            cout = ch * ch_mult[i]
            level = _level([ResnetBlock(cin if j == 0 else cout, cout) for j in range(blocks[i] + 1)],
                           [AttnBlock(cout) for _ in range(blocks[i] + 1)] if res in attn_resolutions else [])
            cin = cout
            if i != 0:
                level.upsample = Upsample(cout)
                res *= 2
            ups.insert(0, level)  # up[i] is the level at resolution / 2**i, as in the official tree
        self.up = nn.ModuleList(ups)
        self.norm_out = _norm(cin)
        self.conv_out = nn.Conv2d(cin, out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = _run_mid(self.mid, self.conv_in(z))
        for level in reversed(self.up):
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[j](h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    """The nearest codebook entry per latent position (``VectorQuantizer2`` at inference: no remap)."""

    def __init__(self, n_embed: int, embed_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / n_embed, 1.0 / n_embed)

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        codes = self.embedding.weight
        # |z|^2 + |e|^2 - 2 z.e, the official expansion (ties and rounding then match it)
        d = flat.pow(2).sum(1, keepdim=True) + codes.pow(2).sum(1) - 2 * flat @ codes.t()
        return d.argmin(1).view(z.shape[0], z.shape[2], z.shape[3])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.indices(z)).permute(0, 3, 1, 2).contiguous()


class VQModelTorch(nn.Module):
    def __init__(self, ddconfig: Mapping[str, Any], n_embed: int, embed_dim: int):
        super().__init__()
        self.encoder = Encoder(**ddconfig)
        self.decoder = Decoder(**ddconfig)
        self.quantize = VectorQuantizer(n_embed, embed_dim)
        self.quant_conv = nn.Conv2d(ddconfig["z_channels"], embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, ddconfig["z_channels"], 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant_conv(self.encoder(x))

    def decode(self, h: torch.Tensor, force_not_quantize: bool = False) -> torch.Tensor:
        quant = h if force_not_quantize else self.quantize(h)
        return self.decoder(self.post_quant_conv(quant))

    def forward(self, x: torch.Tensor, force_not_quantize: bool = False) -> torch.Tensor:
        return self.decode(self.encode(x), force_not_quantize)


def build(config: Mapping[str, Any] | None = None) -> VQModelTorch:
    cfg = dict(F4_CONFIG if config is None else config)
    return VQModelTorch(dict(cfg["ddconfig"]), int(cfg["n_embed"]), int(cfg["embed_dim"]))


def official_state_dict(checkpoint: Any) -> dict[str, torch.Tensor]:
    """The model's tensors from a released checkpoint: a plain state dict, or one under ``state_dict``, with the
    ``module.`` (DDP) and ``_orig_mod.`` (torch.compile) prefixes ResShift's ``reload_model`` also accepts."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else checkpoint
    if not isinstance(state, Mapping):
        raise ValueError(f"expected a state dict, got {type(state).__name__}")
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "_orig_mod."):
            key = key.removeprefix(prefix)
        out[key] = value
    return out


def load(path: Any, config: Mapping[str, Any] | None = None) -> VQModelTorch:
    """``VQModelTorch`` at ``config`` (default: the f4 autoencoder) with the file's weights, loaded strictly."""
    model = build(config)
    model.load_state_dict(official_state_dict(torch.load(path, map_location="cpu", weights_only=True)), strict=True)
    return model.eval().requires_grad_(False)
