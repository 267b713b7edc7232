"""EDM's U-Nets: DDPM++ / NCSN++ (`SongUNet`) and ADM (`DhariwalUNet`), as in NVlabs/edm.

Written from the EDM paper and the facts of its repository (layer names, shapes, initialisation, ordering):
the attribute names and the order of the encoder/decoder entries are those of `training/networks.py`, so a
state dict taken out of an official pickle (see `baselines.edm.pickles`) loads strictly, and the parameter
counts equal the official ones (tests/models/test_edm.py checks 55,735,299 for CIFAR-10 DDPM++ cond, etc.).

Our one extension, off by default so that official configurations are unchanged: an optional conditioning
vector (`cond_dim`, added to the noise embedding through a bias-free linear map like EDM's augmentation
labels) and optional conditioning planes (`cond_channels`, concatenated to the input of the first conv).
Methods such as QAC use them to feed an extra condition without touching the rest of the network.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.functional import silu

from bench.registry import BenchError


# --------------------------------------------------------------------------------------------- layers
def initial_weights(shape: Sequence[int], mode: str, fan_in: int, fan_out: int) -> torch.Tensor:
    """EDM's four initialisers (uniform ones draw U(-1,1) scaled, normal ones N(0,1) scaled)."""
    if mode == "xavier_uniform":
        return math.sqrt(6.0 / (fan_in + fan_out)) * (torch.rand(*shape) * 2 - 1)
    if mode == "xavier_normal":
        return math.sqrt(2.0 / (fan_in + fan_out)) * torch.randn(*shape)
    if mode == "kaiming_uniform":
        return math.sqrt(3.0 / fan_in) * (torch.rand(*shape) * 2 - 1)
    if mode == "kaiming_normal":
        return math.sqrt(1.0 / fan_in) * torch.randn(*shape)
    raise BenchError(f"unknown init mode {mode!r}; use xavier_uniform, xavier_normal, kaiming_uniform or "
                     f"kaiming_normal")


class Linear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, init_mode: str = "kaiming_normal",
                 init_weight: float = 1.0, init_bias: float = 0.0):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        fans = {"mode": init_mode, "fan_in": in_features, "fan_out": out_features}
        self.weight = nn.Parameter(initial_weights([out_features, in_features], **fans) * init_weight)
        self.bias = nn.Parameter(initial_weights([out_features], **fans) * init_bias) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x @ self.weight.to(x.dtype).t()
        return out + self.bias.to(x.dtype) if self.bias is not None else out


def _resample_kernel(taps: Sequence[float]) -> torch.Tensor:
    """Separable FIR filter [1,1,k,k] normalised to unit DC gain (EDM's resample_filter buffer)."""
    f = torch.as_tensor(list(taps), dtype=torch.float32)
    return (torch.outer(f, f) / f.sum().square())[None, None]


class Conv2d(nn.Module):
    """3x3/1x1 convolution with optional 2x FIR up/downsampling; ``kernel=0`` resamples only (no weights)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, bias: bool = True, up: bool = False,
                 down: bool = False, resample_filter: Sequence[float] = (1, 1), fused_resample: bool = False,
                 init_mode: str = "kaiming_normal", init_weight: float = 1.0, init_bias: float = 0.0):
        if up and down:
            raise BenchError("Conv2d cannot upsample and downsample at once")
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.up, self.down, self.fused_resample = up, down, fused_resample
        fans = {"mode": init_mode, "fan_in": in_channels * kernel * kernel,
                "fan_out": out_channels * kernel * kernel}
        shape = [out_channels, in_channels, kernel, kernel]
        self.weight = nn.Parameter(initial_weights(shape, **fans) * init_weight) if kernel else None
        self.bias = nn.Parameter(initial_weights([out_channels], **fans) * init_bias) if kernel and bias else None
        # A None buffer is absent from the state dict, exactly as in the official layout.
        self.register_buffer("resample_filter", _resample_kernel(resample_filter) if (up or down) else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        F = torch.nn.functional
        w = self.weight.to(x.dtype) if self.weight is not None else None
        f = self.resample_filter.to(x.dtype) if self.resample_filter is not None else None
        w_pad = w.shape[-1] // 2 if w is not None else 0
        f_pad = (f.shape[-1] - 1) // 2 if f is not None else 0
        if self.fused_resample and self.up and w is not None:
            x = F.conv_transpose2d(x, f.mul(4).tile([self.in_channels, 1, 1, 1]), groups=self.in_channels,
                                   stride=2, padding=max(f_pad - w_pad, 0))
            x = F.conv2d(x, w, padding=max(w_pad - f_pad, 0))
        elif self.fused_resample and self.down and w is not None:
            x = F.conv2d(x, w, padding=w_pad + f_pad)
            x = F.conv2d(x, f.tile([self.out_channels, 1, 1, 1]), groups=self.out_channels, stride=2)
        else:
            if self.up:
                x = F.conv_transpose2d(x, f.mul(4).tile([self.in_channels, 1, 1, 1]), groups=self.in_channels,
                                       stride=2, padding=f_pad)
            if self.down:
                x = F.conv2d(x, f.tile([self.in_channels, 1, 1, 1]), groups=self.in_channels, stride=2, padding=f_pad)
            if w is not None:
                x = F.conv2d(x, w, padding=w_pad)
        if self.bias is not None:
            x = x + self.bias.to(x.dtype).reshape(1, -1, 1, 1)
        return x


class GroupNorm(nn.Module):
    """Group norm with at most 32 groups and at least ``min_channels_per_group`` channels per group."""

    def __init__(self, num_channels: int, num_groups: int = 32, min_channels_per_group: int = 4, eps: float = 1e-5):
        super().__init__()
        self.num_groups = max(1, min(num_groups, num_channels // min_channels_per_group))
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.group_norm(x, self.num_groups, self.weight.to(x.dtype), self.bias.to(x.dtype),
                                              self.eps)


def attention_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """softmax over keys of q.k / sqrt(c), computed in float32 whatever the input dtype (as EDM does)."""
    scale = 1.0 / math.sqrt(k.shape[1])
    logits = torch.einsum("ncq,nck->nqk", q.float(), k.float() * scale)
    return logits.softmax(dim=2).to(q.dtype)


class UNetBlock(nn.Module):
    """Residual block (GroupNorm-SiLU-conv, embedding injection, GroupNorm-SiLU-dropout-conv) with optional
    up/downsampling and single-layer self-attention; the union of the DDPM++, NCSN++ and ADM blocks."""

    def __init__(self, in_channels: int, out_channels: int, emb_channels: int, up: bool = False, down: bool = False,
                 attention: bool = False, num_heads: int | None = None, channels_per_head: int = 64,
                 dropout: float = 0.0, skip_scale: float = 1.0, eps: float = 1e-5,
                 resample_filter: Sequence[float] = (1, 1), resample_proj: bool = False, adaptive_scale: bool = True,
                 init: dict[str, Any] | None = None, init_zero: dict[str, Any] | None = None,
                 init_attn: dict[str, Any] | None = None):
        super().__init__()
        init = dict(init or {})
        init_zero = dict(init_zero if init_zero is not None else {"init_weight": 0})
        self.in_channels, self.out_channels, self.emb_channels = in_channels, out_channels, emb_channels
        if not attention:
            self.num_heads = 0
        else:
            self.num_heads = num_heads if num_heads is not None else out_channels // channels_per_head
        self.dropout, self.skip_scale, self.adaptive_scale = dropout, skip_scale, adaptive_scale

        self.norm0 = GroupNorm(in_channels, eps=eps)
        self.conv0 = Conv2d(in_channels, out_channels, kernel=3, up=up, down=down, resample_filter=resample_filter,
                            **init)
        self.affine = Linear(emb_channels, out_channels * (2 if adaptive_scale else 1), **init)
        self.norm1 = GroupNorm(out_channels, eps=eps)
        self.conv1 = Conv2d(out_channels, out_channels, kernel=3, **init_zero)
        self.skip = None
        if out_channels != in_channels or up or down:
            # a 1x1 projection when the width changes (or resample_proj), else a weight-free resampling
            kernel = 1 if (resample_proj or out_channels != in_channels) else 0
            self.skip = Conv2d(in_channels, out_channels, kernel=kernel, up=up, down=down,
                               resample_filter=resample_filter, **init)
        if self.num_heads:
            self.norm2 = GroupNorm(out_channels, eps=eps)
            qkv_init = init_attn if init_attn is not None else init
            self.qkv = Conv2d(out_channels, out_channels * 3, kernel=1, **qkv_init)
            self.proj = Conv2d(out_channels, out_channels, kernel=1, **init_zero)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        residual = x
        x = self.conv0(silu(self.norm0(x)))
        params = self.affine(emb)[:, :, None, None].to(x.dtype)
        if self.adaptive_scale:
            scale, shift = params.chunk(2, dim=1)
            x = silu(torch.addcmul(shift, self.norm1(x), scale + 1))
        else:
            x = silu(self.norm1(x + params))
        x = self.conv1(torch.nn.functional.dropout(x, p=self.dropout, training=self.training))
        x = (x + (self.skip(residual) if self.skip is not None else residual)) * self.skip_scale
        if self.num_heads:
            n, c = x.shape[:2]
            q, k, v = self.qkv(self.norm2(x)).reshape(n * self.num_heads, c // self.num_heads, 3, -1).unbind(2)
            attended = torch.einsum("nqk,nck->ncq", attention_weights(q, k), v)
            x = (self.proj(attended.reshape(*x.shape)) + x) * self.skip_scale
        return x


class PositionalEmbedding(nn.Module):
    """Transformer sinusoids [cos | sin] of a scalar; ``endpoint`` puts the lowest frequency at exactly 1/max."""

    def __init__(self, num_channels: int, max_positions: int = 10000, endpoint: bool = False):
        super().__init__()
        self.num_channels, self.max_positions, self.endpoint = num_channels, max_positions, endpoint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.num_channels // 2
        exponent = torch.arange(half, dtype=torch.float32, device=x.device) / (half - (1 if self.endpoint else 0))
        freqs = (1.0 / self.max_positions) ** exponent
        args = torch.outer(x, freqs.to(x.dtype))
        return torch.cat([args.cos(), args.sin()], dim=1)


class FourierEmbedding(nn.Module):
    """NCSN++'s random Fourier features: fixed Gaussian frequencies (std ``scale``) stored as a buffer."""

    def __init__(self, num_channels: int, scale: float = 16.0):
        super().__init__()
        self.register_buffer("freqs", torch.randn(num_channels // 2) * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        args = torch.outer(x, (2 * math.pi * self.freqs).to(x.dtype))
        return torch.cat([args.cos(), args.sin()], dim=1)


# --------------------------------------------------------------------------------------------- SongUNet
class SongUNet(nn.Module):
    """DDPM++ (positional embedding, standard encoder, filter [1,1]) and NCSN++ (Fourier embedding, residual
    encoder, filter [1,3,3,1]) of Song et al., in EDM's re-implementation. Defaults are EDM's."""

    def __init__(self, img_resolution: int, in_channels: int, out_channels: int, label_dim: int = 0,
                 augment_dim: int = 0, model_channels: int = 128, channel_mult: Sequence[int] = (1, 2, 2, 2),
                 channel_mult_emb: int = 4, num_blocks: int = 4, attn_resolutions: Sequence[int] = (16,),
                 dropout: float = 0.10, label_dropout: float = 0.0, embedding_type: str = "positional",
                 channel_mult_noise: int = 1, encoder_type: str = "standard", decoder_type: str = "standard",
                 resample_filter: Sequence[float] = (1, 1), cond_dim: int = 0, cond_channels: int = 0):
        for name, value, allowed in (("embedding_type", embedding_type, ("fourier", "positional")),
                                     ("encoder_type", encoder_type, ("standard", "skip", "residual")),
                                     ("decoder_type", decoder_type, ("standard", "skip"))):
            if value not in allowed:
                raise BenchError(f"SongUNet {name} {value!r} is not one of {', '.join(allowed)}")
        super().__init__()
        self.label_dropout = label_dropout
        self.cond_dim, self.cond_channels = cond_dim, cond_channels
        emb_channels = model_channels * channel_mult_emb
        noise_channels = model_channels * channel_mult_noise
        init = {"init_mode": "xavier_uniform"}
        init_zero = {"init_mode": "xavier_uniform", "init_weight": 1e-5}
        init_attn = {"init_mode": "xavier_uniform", "init_weight": math.sqrt(0.2)}
        block = {"emb_channels": emb_channels, "num_heads": 1, "dropout": dropout, "skip_scale": math.sqrt(0.5),
                 "eps": 1e-6, "resample_filter": resample_filter, "resample_proj": True, "adaptive_scale": False,
                 "init": init, "init_zero": init_zero, "init_attn": init_attn}

        # Mapping network: noise embedding (+ labels, augmentation labels, our optional condition) -> 2 layers.
        if embedding_type == "positional":
            self.map_noise = PositionalEmbedding(noise_channels, endpoint=True)
        else:
            self.map_noise = FourierEmbedding(noise_channels)
        self.map_label = Linear(label_dim, noise_channels, **init) if label_dim else None
        self.map_augment = Linear(augment_dim, noise_channels, bias=False, **init) if augment_dim else None
        self.map_cond = Linear(cond_dim, noise_channels, bias=False, **init) if cond_dim else None
        self.map_layer0 = Linear(noise_channels, emb_channels, **init)
        self.map_layer1 = Linear(emb_channels, emb_channels, **init)

        # Encoder: one stem conv, then per level an optional downsampling block and num_blocks blocks.
        self.enc = nn.ModuleDict()
        cout = in_channels + cond_channels
        caux = in_channels
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level == 0:
                self.enc[f"{res}x{res}_conv"] = Conv2d(cout, model_channels, kernel=3, **init)
                cout = model_channels
            else:
                self.enc[f"{res}x{res}_down"] = UNetBlock(cout, cout, down=True, **block)
                if encoder_type == "skip":
                    self.enc[f"{res}x{res}_aux_down"] = Conv2d(caux, caux, kernel=0, down=True,
                                                               resample_filter=resample_filter)
                    self.enc[f"{res}x{res}_aux_skip"] = Conv2d(caux, cout, kernel=1, **init)
                if encoder_type == "residual":
                    self.enc[f"{res}x{res}_aux_residual"] = Conv2d(caux, cout, kernel=3, down=True,
                                                                   resample_filter=resample_filter,
                                                                   fused_resample=True, **init)
                    caux = cout
            for idx in range(num_blocks):
                cin, cout = cout, model_channels * mult
                self.enc[f"{res}x{res}_block{idx}"] = UNetBlock(cin, cout, attention=res in attn_resolutions, **block)
        skips = [m.out_channels for name, m in self.enc.items() if "aux" not in name]

        # Decoder: mirror of the encoder, each block eating one skip; output head at the top level.
        self.dec = nn.ModuleDict()
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            if level == len(channel_mult) - 1:
                self.dec[f"{res}x{res}_in0"] = UNetBlock(cout, cout, attention=True, **block)
                self.dec[f"{res}x{res}_in1"] = UNetBlock(cout, cout, **block)
            else:
                self.dec[f"{res}x{res}_up"] = UNetBlock(cout, cout, up=True, **block)
            for idx in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), model_channels * mult
                attn = idx == num_blocks and res in attn_resolutions
                self.dec[f"{res}x{res}_block{idx}"] = UNetBlock(cin, cout, attention=attn, **block)
            if decoder_type == "skip" or level == 0:
                if decoder_type == "skip" and level < len(channel_mult) - 1:
                    self.dec[f"{res}x{res}_aux_up"] = Conv2d(out_channels, out_channels, kernel=0, up=True,
                                                             resample_filter=resample_filter)
                self.dec[f"{res}x{res}_aux_norm"] = GroupNorm(cout, eps=1e-6)
                self.dec[f"{res}x{res}_aux_conv"] = Conv2d(cout, out_channels, kernel=3, **init_zero)

    def embedding(self, noise_labels: torch.Tensor, class_labels: torch.Tensor | None,
                  augment_labels: torch.Tensor | None, cond: torch.Tensor | None) -> torch.Tensor:
        emb = self.map_noise(noise_labels)
        emb = emb.reshape(emb.shape[0], 2, -1).flip(1).reshape(*emb.shape)  # EDM feeds [sin | cos]
        if self.map_label is not None:
            labels = class_labels
            if self.training and self.label_dropout:
                keep = torch.rand([labels.shape[0], 1], device=labels.device) >= self.label_dropout
                labels = labels * keep.to(labels.dtype)
            emb = emb + self.map_label(labels * math.sqrt(self.map_label.in_features))
        if self.map_augment is not None and augment_labels is not None:
            emb = emb + self.map_augment(augment_labels)
        if self.map_cond is not None:
            if cond is None:
                raise BenchError(f"this network was built with cond_dim={self.cond_dim}: "
                                 f"pass cond=[N, {self.cond_dim}]")
            emb = emb + self.map_cond(cond.to(emb.dtype))
        return silu(self.map_layer1(silu(self.map_layer0(emb))))

    def forward(self, x: torch.Tensor, noise_labels: torch.Tensor, class_labels: torch.Tensor | None = None,
                augment_labels: torch.Tensor | None = None, cond: torch.Tensor | None = None,
                cond_map: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.embedding(noise_labels, class_labels, augment_labels, cond)
        aux = x  # NCSN++'s residual encoder path sees the image channels only
        if self.cond_channels:
            if cond_map is None or cond_map.shape[1] != self.cond_channels:
                raise BenchError(f"this network was built with cond_channels={self.cond_channels}: pass "
                                 f"cond_map=[N, {self.cond_channels}, H, W]")
            x = torch.cat([x, cond_map.to(x.dtype)], dim=1)
        skips: list[torch.Tensor] = []
        for name, block in self.enc.items():
            if "aux_down" in name:
                aux = block(aux)
            elif "aux_skip" in name:
                x = skips[-1] = x + block(aux)
            elif "aux_residual" in name:
                x = skips[-1] = aux = (x + block(aux)) / math.sqrt(2)
            else:
                x = block(x, emb) if isinstance(block, UNetBlock) else block(x)
                skips.append(x)
        aux, head = None, None
        for name, block in self.dec.items():
            if "aux_up" in name:
                aux = block(aux)
            elif "aux_norm" in name:
                head = block(x)
            elif "aux_conv" in name:
                head = block(silu(head))
                aux = head if aux is None else head + aux
            else:
                if x.shape[1] != block.in_channels:
                    x = torch.cat([x, skips.pop()], dim=1)
                x = block(x, emb)
        return aux


# --------------------------------------------------------------------------------------------- ADM
class DhariwalUNet(nn.Module):
    """The ADM U-Net of Dhariwal & Nichol (guided-diffusion) in EDM's re-implementation; defaults are EDM's
    ImageNet-64 configuration (192 channels, mult [1,2,3,4], 3 blocks, attention at 32/16/8)."""

    def __init__(self, img_resolution: int, in_channels: int, out_channels: int, label_dim: int = 0,
                 augment_dim: int = 0, model_channels: int = 192, channel_mult: Sequence[int] = (1, 2, 3, 4),
                 channel_mult_emb: int = 4, num_blocks: int = 3, attn_resolutions: Sequence[int] = (32, 16, 8),
                 dropout: float = 0.10, label_dropout: float = 0.0, cond_dim: int = 0):
        super().__init__()
        self.label_dropout = label_dropout
        self.cond_dim = cond_dim
        emb_channels = model_channels * channel_mult_emb
        init = {"init_mode": "kaiming_uniform", "init_weight": math.sqrt(1 / 3), "init_bias": math.sqrt(1 / 3)}
        init_zero = {"init_mode": "kaiming_uniform", "init_weight": 0, "init_bias": 0}
        block = {"emb_channels": emb_channels, "channels_per_head": 64, "dropout": dropout, "init": init,
                 "init_zero": init_zero}

        self.map_noise = PositionalEmbedding(model_channels)
        self.map_augment = Linear(augment_dim, model_channels, bias=False, **init_zero) if augment_dim else None
        self.map_cond = Linear(cond_dim, model_channels, bias=False, **init) if cond_dim else None
        self.map_layer0 = Linear(model_channels, emb_channels, **init)
        self.map_layer1 = Linear(emb_channels, emb_channels, **init)
        self.map_label = (Linear(label_dim, emb_channels, bias=False, init_mode="kaiming_normal",
                                 init_weight=math.sqrt(label_dim)) if label_dim else None)

        self.enc = nn.ModuleDict()
        cout = in_channels
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level == 0:
                self.enc[f"{res}x{res}_conv"] = Conv2d(cout, model_channels * mult, kernel=3, **init)
                cout = model_channels * mult
            else:
                self.enc[f"{res}x{res}_down"] = UNetBlock(cout, cout, down=True, **block)
            for idx in range(num_blocks):
                cin, cout = cout, model_channels * mult
                self.enc[f"{res}x{res}_block{idx}"] = UNetBlock(cin, cout, attention=res in attn_resolutions, **block)
        skips = [m.out_channels for m in self.enc.values()]

        self.dec = nn.ModuleDict()
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            if level == len(channel_mult) - 1:
                self.dec[f"{res}x{res}_in0"] = UNetBlock(cout, cout, attention=True, **block)
                self.dec[f"{res}x{res}_in1"] = UNetBlock(cout, cout, **block)
            else:
                self.dec[f"{res}x{res}_up"] = UNetBlock(cout, cout, up=True, **block)
            for idx in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), model_channels * mult
                self.dec[f"{res}x{res}_block{idx}"] = UNetBlock(cin, cout, attention=res in attn_resolutions, **block)
        self.out_norm = GroupNorm(cout)
        self.out_conv = Conv2d(cout, out_channels, kernel=3, **init_zero)

    def forward(self, x: torch.Tensor, noise_labels: torch.Tensor, class_labels: torch.Tensor | None = None,
                augment_labels: torch.Tensor | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.map_noise(noise_labels)
        if self.map_augment is not None and augment_labels is not None:
            emb = emb + self.map_augment(augment_labels)
        if self.map_cond is not None:
            if cond is None:
                raise BenchError(f"this network was built with cond_dim={self.cond_dim}: "
                                 f"pass cond=[N, {self.cond_dim}]")
            emb = emb + self.map_cond(cond.to(emb.dtype))
        emb = self.map_layer1(silu(self.map_layer0(emb)))
        if self.map_label is not None:
            labels = class_labels
            if self.training and self.label_dropout:
                keep = torch.rand([labels.shape[0], 1], device=labels.device) >= self.label_dropout
                labels = labels * keep.to(labels.dtype)
            emb = emb + self.map_label(labels)
        emb = silu(emb)
        skips = []
        for block in self.enc.values():
            x = block(x, emb) if isinstance(block, UNetBlock) else block(x)
            skips.append(x)
        for block in self.dec.values():
            if x.shape[1] != block.in_channels:
                x = torch.cat([x, skips.pop()], dim=1)
            x = block(x, emb)
        return self.out_conv(silu(self.out_norm(x)))


MODEL_TYPES: dict[str, type[nn.Module]] = {"SongUNet": SongUNet, "DhariwalUNet": DhariwalUNet}

# The official `train.py --arch` presets [R NVlabs/edm train.py]. Dataset-specific overrides (channel_mult
# [1,2,2,2] via --cres at 64x64, dropout, augment_dim 9 with augmentation) come on top.
ARCHS: dict[str, dict[str, Any]] = {
    "ddpmpp": {"model_type": "SongUNet", "embedding_type": "positional", "encoder_type": "standard",
               "decoder_type": "standard", "channel_mult_noise": 1, "resample_filter": [1, 1],
               "model_channels": 128, "channel_mult": [2, 2, 2]},
    "ncsnpp": {"model_type": "SongUNet", "embedding_type": "fourier", "encoder_type": "residual",
               "decoder_type": "standard", "channel_mult_noise": 2, "resample_filter": [1, 3, 3, 1],
               "model_channels": 128, "channel_mult": [2, 2, 2]},
    "adm": {"model_type": "DhariwalUNet", "model_channels": 192, "channel_mult": [1, 2, 3, 4]},
}


def arch_kwargs(arch: str, **overrides: Any) -> dict[str, Any]:
    if arch not in ARCHS:
        raise BenchError(f"unknown EDM architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    return {**ARCHS[arch], **overrides}
