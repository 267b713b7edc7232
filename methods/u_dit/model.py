"""U-DiT (Tian et al., NeurIPS 2024): a U-shaped diffusion transformer whose attention runs on downsampled
token groups.

Architecture per the official YuchuanTian/U-DiT ``udit_models.py`` (read for shapes and names, re-written
here; see the dossier papers-diffusion.md section 5.3):

* Stem conv 3x3 (no patchify, no absolute position embedding); stages at H, H/2, H/4, H/2, H with widths
  C, 2C, 4C, 2C, 2C and [2, 5, 8, 5, 2] blocks; each block holds two (attention, FFN) sub-layers with their
  own adaLN-Zero modulation. Down: conv 3x3 (halve channels) + pixel-unshuffle; up: conv 3x3 (double
  channels) + pixel-shuffle, concat the encoder skip, 1x1 conv. Three (t, y) embedder pairs of widths C, 2C,
  4C; the last decoder stage and the head use the 2C condition (as the official code).
* Attention on downsampled tokens: X' = DWConv5x5(X) + X, split into the s*s polyphase groups
  X'[:, a::s, b::s]; each group attends within itself (weights shared), with RoPE-2D on q/k and
  cosine-similarity logits scaled by a learnable per-head temperature; the groups are merged back and
  projected by a 1x1 conv. With s = 2 the attention matmuls cost 1/4 of full attention.
* FFN with depthwise convs and RepVGG-style re-parameterisation: training form
  1x1 -> 1x1 -> GELU -> (identity + DW5 + DW3 + DW1) -> 1x1 -> 1x1; in eval mode it runs as one 1x1, one DW5
  and one 1x1 whose weights are fused from the training ones.

Fusion differs from the official code on purpose: the official ``add_buffer`` adds the 3x3/1x1/identity
kernels in place into a ``detach()`` view of the 5x5 parameter, so every train -> eval switch corrupts the
trainable weights (dossier 5.5 #1). Here the fused kernels are computed out of place into a cache that is
rebuilt whenever the source parameters change (version counter or storage), so eval -> train -> eval is
exact and the parameters are never touched.

Module names equal the official ones, so the released checkpoints (``ema`` entry) load with
`load_official_state_dict`.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.diffusion.checkpoint import load_exact
from bench.diffusion.embedders import LabelEmbedder, TimestepEmbedder
from bench.registry import BenchError, unknown_name_message

# U-DiT paper Table 8 / udit_models.py: all three use depth [2,5,8,5,2], mlp ratio 2, down factor 2,
# cosine attention, RoPE-2D, DW5 + shortcut downsampler and the re-parameterised FFN.
UDIT_CONFIGS: dict[str, dict[str, Any]] = {
    "U-DiT-S": {"hidden_size": 96, "num_heads": 4},
    "U-DiT-B": {"hidden_size": 192, "num_heads": 8},
    "U-DiT-L": {"hidden_size": 384, "num_heads": 16},
}

# The official code clamps the log temperature at 4.6052 (~ln 100) before exp; the same constant keeps
# released checkpoints bit-compatible.
LOGIT_SCALE_MAX = 4.6052


# -------------------------------------------------------------------------------------------------- helpers
def layer_norm_2d(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """LayerNorm over channels at each pixel, no affine ([B, C, H, W])."""
    return F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), eps=eps).permute(0, 3, 1, 2)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]


def split_groups(x: torch.Tensor, s: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, s*s, (H/s)*(W/s), C]: group a*s+b holds pixels (a::s, b::s), tokens row-major."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // s, s, w // s, s).permute(0, 3, 5, 2, 4, 1)
    return x.reshape(b, s * s, (h // s) * (w // s), c)


def merge_groups(x: torch.Tensor, s: int, h: int, w: int) -> torch.Tensor:
    """Inverse of `split_groups`: [B, s*s, (H/s)*(W/s), C] -> [B, C, H, W]."""
    b, _, _, c = x.shape
    x = x.reshape(b, s, s, h // s, w // s, c).permute(0, 5, 3, 1, 4, 2)
    return x.reshape(b, c, h, w)


def rope2d_angles(head_dim: int, rows: int, cols: int, theta: float = 10_000.0,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """Rotation angles [rows*cols, head_dim/2] of RoPE-2D as U-DiT defines it.

    Channel pair j of a head rotates by col * w_{j//2} when j is even and row * w_{j//2} when j is odd,
    w_k = theta^(-4k / head_dim), k < head_dim/4. Token n = row * cols + col. (The official code only
    supports square grids and derives col = n % side; this is the same on squares.)
    """
    if head_dim % 4:
        raise BenchError(f"RoPE-2D needs a head dimension divisible by 4, got {head_dim}")
    omega = theta ** (-4.0 * torch.arange(head_dim // 4, dtype=torch.float32, device=device) / head_dim)
    row = torch.arange(rows, dtype=torch.float32, device=device).repeat_interleave(cols)
    col = torch.arange(cols, dtype=torch.float32, device=device).repeat(rows)
    angles = torch.stack([col[:, None] * omega[None], row[:, None] * omega[None]], dim=-1)  # [N, d/4, 2]
    return angles.reshape(rows * cols, head_dim // 2)


@functools.lru_cache(maxsize=64)
def _rope_cos_sin(head_dim: int, rows: int, cols: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # Shared by every attention layer with the same grid (44 of them in U-DiT): computed once per shape/device,
    # outside inference mode so that tables first built while sampling can still be used for training.
    with torch.inference_mode(False), torch.no_grad():
        angles = rope2d_angles(head_dim, rows, cols, device=device)
        return torch.cos(angles), torch.sin(angles)


def apply_rope(x: torch.Tensor, angles: torch.Tensor | None = None,
               cos_sin: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Rotate consecutive channel pairs (x_2j, x_2j+1) of x [..., N, d] by angles [N, d/2] (in float32)."""
    cos, sin = cos_sin if cos_sin is not None else (torch.cos(angles), torch.sin(angles))
    xf = x.float()
    a, b = xf[..., 0::2], xf[..., 1::2]
    out = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)
    return out.to(x.dtype)


# ----------------------------------------------------------------------------------------------- attention
class DownSampler(nn.Module):
    """Depthwise k x k conv (with bias) plus an optional identity shortcut, before the group split."""

    def __init__(self, dim: int, kernel_size: int, shortcut: bool):
        super().__init__()
        self.shortcut = shortcut
        self.layer = nn.Conv2d(dim, dim, kernel_size, padding=(kernel_size - 1) // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x) + x if self.shortcut else self.layer(x)


class DownsampledAttention(nn.Module):
    """Self-attention within each of the down_factor^2 polyphase token groups (U-DiT's DownSample_Attn).

    attention: "cosine" (U-DiT: softmax(tau_h * cos(q, k)), tau_h = exp(min(theta_h, ~ln 100)), theta_h
        initialised to ln 10) or "dot" (softmax(q k^T / sqrt(d)), the "vanilla" ablation).
    rope: apply RoPE-2D (positions on the downsampled grid) to q and k.
    """

    def __init__(self, dim: int, num_heads: int, down_factor: int = 2, attention: str = "cosine",
                 rope: bool = True, downsampler_kernel: int = 5, downsampler_shortcut: bool = True):
        super().__init__()
        if attention not in ("cosine", "dot"):
            raise BenchError(f"unknown attention {attention!r}; choose 'cosine' or 'dot'")
        if dim % num_heads:
            raise BenchError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.down_factor = down_factor
        self.attention = attention
        self.rope = rope
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.to_out = nn.Conv2d(dim, dim, 1)
        if attention == "cosine":
            self.logit_scale = nn.Parameter(torch.full((num_heads, 1, 1), math.log(10.0)))
        self.downsampler = DownSampler(dim, downsampler_kernel, downsampler_shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s = self.down_factor
        tokens = split_groups(self.downsampler(x), s)  # [B, G, N, C]
        groups, n = tokens.shape[1], tokens.shape[2]
        qkv = self.to_qkv(tokens).reshape(b * groups, n, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B*G, heads, N, d]
        if self.rope:
            cos_sin = _rope_cos_sin(self.head_dim, h // s, w // s, x.device)
            q, k = apply_rope(q, cos_sin=cos_sin), apply_rope(k, cos_sin=cos_sin)
        if self.attention == "cosine":
            tau = torch.clamp(self.logit_scale, max=LOGIT_SCALE_MAX).exp().to(q.dtype)  # [heads, 1, 1]
            # softmax(tau * q^ k^T) == SDPA(tau * q^, k^, v, scale=1): lets fused attention kernels run.
            out = F.scaled_dot_product_attention(F.normalize(q, dim=-1) * tau, F.normalize(k, dim=-1), v, scale=1.0)
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        out = out.permute(0, 2, 1, 3).reshape(b, groups, n, c)  # heads back into channels, head-major
        return self.to_out(merge_groups(out, s, h, w))


# ------------------------------------------------------------------------------------------------------ FFN
def _conv1x1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1)


def _fuse_1x1_pair(first: nn.Conv2d, second: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Two stacked 1x1 convs as one: W = W2 W1, b = W2 b1 + b2."""
    w1, w2 = first.weight[:, :, 0, 0], second.weight[:, :, 0, 0]
    return (w2 @ w1)[:, :, None, None], w2 @ first.bias + second.bias


class RepFeedForward(nn.Module):
    """U-DiT's FFN: hidden = dim * mlp_ratio, exact (erf) GELU, identity + DW5 + DW3 + DW1 branches.

    Training form (``module.training`` or gradients enabled) runs the branches; eval mode under no_grad runs
    the fused form: conv1x1(W_in) -> GELU -> DW5(K5 + pad(K3) + pad(K1) + identity) -> conv1x1(W_out).
    The fused tensors live in a private cache (not in the state dict, never written into parameters).
    """

    def __init__(self, dim: int, mlp_ratio: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.dim, self.hidden = dim, hidden
        self.project_in = nn.Sequential(_conv1x1(dim, hidden // 2), _conv1x1(hidden // 2, hidden))
        self.dwconv = nn.ModuleList([nn.Conv2d(hidden, hidden, k, padding=k // 2, groups=hidden) for k in (5, 3, 1)])
        self.project_out = nn.Sequential(_conv1x1(hidden, hidden // 2), _conv1x1(hidden // 2, dim))
        self._fused: tuple[torch.Tensor, ...] | None = None
        self._fused_key: tuple[Any, ...] | None = None

    def deploy_num_params(self) -> int:
        """Parameters of the fused form: 1x1 (dim->hidden), DW5, 1x1 (hidden->dim), with biases."""
        return (self.dim * self.hidden + self.hidden) + (25 * self.hidden + self.hidden) + (self.hidden * self.dim + self.dim)

    def _source_key(self) -> tuple[Any, ...]:
        # In-place updates (optimizer steps, load_state_dict) bump _version; .to()/.half() change storage.
        return tuple((p.data_ptr(), p._version, p.device, p.dtype) for p in self.parameters())

    @torch.no_grad()
    def fuse(self) -> tuple[torch.Tensor, ...]:
        """(Re)compute the fused weights from the current parameters, out of place; returns them."""
        w_in, b_in = _fuse_1x1_pair(*self.project_in)
        k5, k3, k1 = (conv.weight for conv in self.dwconv)
        kernel = k5 + F.pad(k3, (1, 1, 1, 1)) + F.pad(k1 + 1.0, (2, 2, 2, 2))  # +1 at the centre: identity
        bias = sum(conv.bias for conv in self.dwconv)
        w_out, b_out = _fuse_1x1_pair(*self.project_out)
        self._fused = (w_in, b_in, kernel, bias, w_out, b_out)
        self._fused_key = self._source_key()
        return self._fused

    def train(self, mode: bool = True) -> RepFeedForward:
        super().train(mode)
        if not mode:
            self.fuse()  # eagerly, so that profiling an eval model does not count the fusion itself
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            h = F.gelu(self.project_in(x))
            h = h + sum(conv(h) for conv in self.dwconv)
            return self.project_out(h)
        fused = self._fused if self._fused_key == self._source_key() else self.fuse()
        w_in, b_in, kernel, bias, w_out, b_out = fused
        h = F.gelu(F.conv2d(x, w_in, b_in))
        h = F.conv2d(h, kernel, bias, padding=2, groups=self.hidden)
        return F.conv2d(h, w_out, b_out)


class ConvMlp(nn.Module):
    """Plain 1x1-conv MLP with tanh GELU (the official ``ffn_type='basic'``, used by the vanilla ablation)."""

    def __init__(self, dim: int, mlp_ratio: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.fc1 = _conv1x1(dim, hidden)
        self.fc2 = _conv1x1(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


# ------------------------------------------------------------------------------------------------- network
class UDiTBlock(nn.Module):
    """Two adaLN-Zero (attention, FFN) sub-layers; the official names carry the sub-layer index (attn1, mlp2...)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, ffn: str, **attn_kwargs: Any):
        super().__init__()
        if ffn not in ("rep", "basic"):
            raise BenchError(f"unknown FFN type {ffn!r}; choose 'rep' or 'basic'")
        for i in (1, 2):
            setattr(self, f"attn{i}", DownsampledAttention(dim, num_heads, **attn_kwargs))
            setattr(self, f"mlp{i}", RepFeedForward(dim, mlp_ratio) if ffn == "rep" else ConvMlp(dim, mlp_ratio))
            setattr(self, f"adaLN_modulation{i}", nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim)))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        for i in (1, 2):
            mod = getattr(self, f"adaLN_modulation{i}")(c)
            shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = mod.chunk(6, dim=1)
            x = x + gate_a[:, :, None, None] * getattr(self, f"attn{i}")(modulate(layer_norm_2d(x), shift_a, scale_a))
            x = x + gate_m[:, :, None, None] * getattr(self, f"mlp{i}")(modulate(layer_norm_2d(x), shift_m, scale_m))
        return x


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class StemConv(nn.Module):
    def __init__(self, in_channels: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class FinalLayer(nn.Module):
    def __init__(self, dim: int, out_channels: int):
        super().__init__()
        self.out_proj = nn.Conv2d(dim, out_channels, 3, padding=1)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.out_proj(modulate(layer_norm_2d(x), shift, scale))


class UDiT(nn.Module):
    """U-DiT; defaults are the official U-DiT-S/B/L switches, with U-DiT-B's widths.

    input_size: the latent side the model is meant for (32 for 256x256 images); it fixes nothing in the
        weights (no absolute position embedding), any side divisible by 4 * down_factor works.
    depth: blocks per stage (enc-1, enc-2, bottleneck, dec-2, dec-1); each block has two sub-layers.
    independent_label_dropout: the official code draws label dropout separately for each of its three label
        embedders (so one sample can be conditional at one stage and unconditional at another). True keeps
        that; False drops a sample's label at all three stages together (the textbook CFG training).
    attention / rope / ffn / downsampler_*: the ablation switches of the paper (Tables 7, 9, 10); the
        defaults are the released models'.
    """

    def __init__(self, input_size: int = 32, in_channels: int = 4, hidden_size: int = 192, num_heads: int = 8,
                 depth: Sequence[int] = (2, 5, 8, 5, 2), mlp_ratio: float = 2.0, down_factor: int = 2,
                 class_dropout_prob: float = 0.1, num_classes: int = 1000, learn_sigma: bool = True,
                 attention: str = "cosine", rope: bool = True, ffn: str = "rep", downsampler_kernel: int = 5,
                 downsampler_shortcut: bool = True, independent_label_dropout: bool = True):
        super().__init__()
        if len(depth) != 5:
            raise BenchError(f"U-DiT depth lists blocks for 5 stages, got {list(depth)}")
        self.input_size = input_size
        self.in_channels = in_channels
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.num_classes = num_classes
        self.down_factor = down_factor
        self.independent_label_dropout = independent_label_dropout
        c = hidden_size
        block = {"num_heads": num_heads, "mlp_ratio": mlp_ratio, "ffn": ffn, "down_factor": down_factor, "attention": attention,
                     "rope": rope, "downsampler_kernel": downsampler_kernel, "downsampler_shortcut": downsampler_shortcut}

        self.x_embedder = StemConv(in_channels, c)
        for level, width in ((1, c), (2, 2 * c), (3, 4 * c)):
            setattr(self, f"t_embedder_{level}", TimestepEmbedder(width))
            setattr(self, f"y_embedder_{level}", LabelEmbedder(num_classes, width, class_dropout_prob))
        self.encoder_level_1 = nn.ModuleList([UDiTBlock(c, **block) for _ in range(depth[0])])
        self.down1_2 = Downsample(c)
        self.encoder_level_2 = nn.ModuleList([UDiTBlock(2 * c, **block) for _ in range(depth[1])])
        self.down2_3 = Downsample(2 * c)
        self.latent = nn.ModuleList([UDiTBlock(4 * c, **block) for _ in range(depth[2])])
        self.up3_2 = Upsample(4 * c)
        self.reduce_chan_level2 = nn.Conv2d(4 * c, 2 * c, 1)
        self.decoder_level_2 = nn.ModuleList([UDiTBlock(2 * c, **block) for _ in range(depth[3])])
        self.up2_1 = Upsample(2 * c)
        self.reduce_chan_level1 = nn.Conv2d(2 * c, 2 * c, 1)
        self.decoder_level_1 = nn.ModuleList([UDiTBlock(2 * c, **block) for _ in range(depth[4])])
        self.output = nn.Conv2d(2 * c, 2 * c, 3, padding=1)
        self.final_layer = FinalLayer(2 * c, self.out_channels)
        self.initialize_weights()

    @property
    def null_class(self) -> int:
        return self.num_classes

    def blocks(self) -> list[UDiTBlock]:
        return [*self.encoder_level_1, *self.encoder_level_2, *self.latent, *self.decoder_level_2, *self.decoder_level_1]

    def initialize_weights(self) -> None:
        """The official initialisation: Xavier for every linear and conv (depthwise included), zero biases,
        N(0, 0.02) label tables and timestep MLPs, zero adaLN-Zero modulations and output conv."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        w = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        for level in (1, 2, 3):
            nn.init.normal_(getattr(self, f"y_embedder_{level}").embedding_table.weight, std=0.02)
            t_mlp = getattr(self, f"t_embedder_{level}").mlp
            nn.init.normal_(t_mlp[0].weight, std=0.02)
            nn.init.normal_(t_mlp[2].weight, std=0.02)
        for blk in self.blocks():
            for i in (1, 2):
                nn.init.zeros_(getattr(blk, f"adaLN_modulation{i}")[-1].weight)
                nn.init.zeros_(getattr(blk, f"adaLN_modulation{i}")[-1].bias)
        for layer in (self.final_layer.adaLN_modulation[-1], self.final_layer.out_proj):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def num_params(self, deploy: bool = False) -> int:
        """Parameters of the training form, or of the deployed form (re-parameterised FFNs), as the paper's
        Table 8 counts them."""
        total = sum(p.numel() for p in self.parameters())
        if deploy:
            for module in self.modules():
                if isinstance(module, RepFeedForward):
                    total += module.deploy_num_params() - sum(p.numel() for p in module.parameters())
        return total

    def _conditions(self, t: torch.Tensor, y: torch.Tensor, force_drop: torch.Tensor | None) -> list[torch.Tensor]:
        if self.training and not self.independent_label_dropout and force_drop is None:
            prob = self.y_embedder_1.dropout_prob
            force_drop = torch.rand(y.shape[0], device=y.device) < prob if prob > 0 else None
        return [getattr(self, f"t_embedder_{i}")(t) + getattr(self, f"y_embedder_{i}")(y, self.training, force_drop)
                for i in (1, 2, 3)]

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor,
                force_drop: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, C, H, W] (H, W divisible by 4 * down_factor), t: [B] timesteps, y: [B] labels."""
        multiple = 4 * self.down_factor
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] % multiple or x.shape[3] % multiple:
            raise BenchError(f"U-DiT expects [B, {self.in_channels}, H, W] with H and W divisible by {multiple}, "
                             f"got {list(x.shape)}")
        c1, c2, c3 = self._conditions(t, y, force_drop)
        enc1 = self.x_embedder(x)
        for blk in self.encoder_level_1:
            enc1 = blk(enc1, c1)
        enc2 = self.down1_2(enc1)
        for blk in self.encoder_level_2:
            enc2 = blk(enc2, c2)
        h = self.down2_3(enc2)
        for blk in self.latent:
            h = blk(h, c3)
        h = self.reduce_chan_level2(torch.cat([self.up3_2(h), enc2], dim=1))
        for blk in self.decoder_level_2:
            h = blk(h, c2)
        h = self.reduce_chan_level1(torch.cat([self.up2_1(h), enc1], dim=1))
        for blk in self.decoder_level_1:
            h = blk(h, c2)
        return self.final_layer(self.output(h), c2)


def udit(name: str, **overrides: Any) -> UDiT:
    """Build U-DiT-S/B/L by name; ``overrides`` change e.g. input_size, num_classes or the ablation switches."""
    if name not in UDIT_CONFIGS:
        raise BenchError(unknown_name_message("U-DiT config", name, list(UDIT_CONFIGS)))
    return UDiT(**{**UDIT_CONFIGS[name], **overrides})


def load_official_state_dict(model: UDiT, checkpoint: Any) -> UDiT:
    """Load a released U-DiT checkpoint or state dict (a ``train.py`` dict loads its ``ema``), strictly."""
    return load_exact(model, checkpoint, f"U-DiT (width {model.x_embedder.proj.out_channels})")
