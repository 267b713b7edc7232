"""DiT (Peebles & Xie, ICCV 2023): a class-conditional diffusion transformer on latent patches.

Architecture as in the official facebookresearch/DiT ``models.py`` (read for shapes and names, re-written
here): patchify with a p x p stride-p conv, add a fixed 2-D sin-cos position embedding, condition every block
with adaLN-Zero on c = t_emb + y_emb, and predict eps plus a variance interpolation (2C channels).

Module names equal the official ones, so official checkpoints (and their ``ema`` weights) load directly with
`load_official_state_dict`. The same class builds the paper's twelve configs and tiny smoke-scale models.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.diffusion.checkpoint import load_exact
from bench.diffusion.embedders import LabelEmbedder, TimestepEmbedder
from bench.registry import BenchError

# name -> (depth, hidden size, heads, patch size); DiT paper Table 1 and models.py.
DIT_CONFIGS: dict[str, dict[str, int]] = {
    f"DiT-{size}/{patch}": {"depth": depth, "hidden_size": hidden, "num_heads": heads, "patch_size": patch}
    for size, (depth, hidden, heads) in {"S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16),
                                         "XL": (28, 1152, 16)}.items()
    for patch in (2, 4, 8)
}

# The smoke-scale model the harness trains on the embedded 16x16 digits (pixel space, one channel).
SMOKE_CONFIG: dict[str, int] = {"input_size": 16, "in_channels": 1, "num_classes": 10, "depth": 4,
                                "hidden_size": 128, "num_heads": 4, "patch_size": 2}


def sincos_pos_embed_2d(dim: int, grid: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position embedding [grid*grid, dim] (MAE/DiT layout), float64.

    Token n = row * grid + col. The first dim/2 channels encode the column, the last dim/2 the row (the MAE
    code builds its mesh with x first; DiT inherits that order). Each half is [sin(p w_k), cos(p w_k)],
    w_k = 10000^(-k / (dim/4)), k = 0 .. dim/4 - 1.
    """
    if dim % 4:
        raise BenchError(f"the 2-D sin-cos position embedding needs a width divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    pos = torch.arange(grid, dtype=torch.float64)
    rows, cols = torch.meshgrid(pos, pos, indexing="ij")

    def encode(p: torch.Tensor) -> torch.Tensor:
        angles = p.reshape(-1, 1) * omega[None]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)

    return torch.cat([encode(cols), encode(rows)], dim=1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x * (1 + scale) + shift, with per-sample vectors broadcast over tokens."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_channels: int, hidden_size: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, hidden_size, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, T, D], T in row-major order


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (qkv bias on, as timm's default in DiT)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise BenchError(f"hidden size {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(d_head)) v
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class DiTBlock(nn.Module):
    """adaLN-Zero block: x += gate * Attn(mod(LN(x))); x += gate * MLP(mod(LN(x)))."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_a.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_a, scale_a))
        return x + gate_m.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_m, scale_m))


class FinalLayer(nn.Module):
    def __init__(self, hidden_size: int, patch_size: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class DiT(nn.Module):
    """Diffusion transformer; defaults are DiT-XL/2 at 256x256 (32x32x4 latents, 1000 classes).

    class_dropout_prob: label dropout for classifier-free guidance (0.1 in DiT); > 0 adds the null class row.
    learn_sigma: output 2C channels (eps and the variance interpolation), as every DiT config does.
    """

    def __init__(self, input_size: int = 32, patch_size: int = 2, in_channels: int = 4, hidden_size: int = 1152,
                 depth: int = 28, num_heads: int = 16, mlp_ratio: float = 4.0, class_dropout_prob: float = 0.1,
                 num_classes: int = 1000, learn_sigma: bool = True):
        super().__init__()
        if input_size % patch_size:
            raise BenchError(f"input size {input_size} is not divisible by patch size {patch_size}")
        self.input_size = input_size
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.num_classes = num_classes
        self.grid = input_size // patch_size

        self.x_embedder = PatchEmbed(patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = LabelEmbedder(num_classes, hidden_size, class_dropout_prob)
        # A frozen Parameter (not a buffer) because the official checkpoints store it under "pos_embed".
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid * self.grid, hidden_size), requires_grad=False)
        self.blocks = nn.ModuleList([DiTBlock(hidden_size, num_heads, mlp_ratio) for _ in range(depth)])
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)
        self.initialize_weights()

    @property
    def null_class(self) -> int:
        return self.num_classes

    def initialize_weights(self) -> None:
        """DiT's initialisation: Xavier linears, N(0, 0.02) embeddings, zero adaLN and output layers."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        with torch.no_grad():
            self.pos_embed.copy_(sincos_pos_embed_2d(self.pos_embed.shape[-1], self.grid)[None])
        w = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # like a Linear over the flattened patch
        nn.init.zeros_(self.x_embedder.proj.bias)
        nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        for layer in (self.final_layer.adaLN_modulation[-1], self.final_layer.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, p*p*C] -> [B, C, H, W]; each token's vector is laid out (p_row, p_col, channel)."""
        b, p, c, g = x.shape[0], self.patch_size, self.out_channels, self.grid
        x = x.reshape(b, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(b, c, g * p, g * p)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor,
                force_drop: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, C, H, W] latents, t: [B] timesteps (0..999), y: [B] labels (num_classes = null)."""
        if x.shape[-2:] != (self.input_size, self.input_size) or x.shape[1] != self.in_channels:
            raise BenchError(f"DiT expects inputs [B, {self.in_channels}, {self.input_size}, {self.input_size}], "
                             f"got {list(x.shape)}")
        tokens = self.x_embedder(x) + self.pos_embed
        c = self.t_embedder(t) + self.y_embedder(y, self.training, force_drop)
        for block in self.blocks:
            tokens = block(tokens, c)
        return self.unpatchify(self.final_layer(tokens, c))


def dit(name: str, **overrides: Any) -> DiT:
    """Build an official config by name ("DiT-XL/2", ...); ``overrides`` change e.g. input_size/num_classes."""
    if name not in DIT_CONFIGS:
        from bench.registry import unknown_name_message

        raise BenchError(unknown_name_message("DiT config", name, list(DIT_CONFIGS)))
    return DiT(**{**DIT_CONFIGS[name], **overrides})


def load_official_state_dict(model: DiT, checkpoint: Any) -> DiT:
    """Load an official DiT state dict (or a ``train.py`` checkpoint: its ``ema`` is used, as ``find_model``).

    Raises a one-line BenchError naming the first missing/unexpected key or shape mismatch.
    """
    blocks = len(model.blocks)
    what = f"DiT (depth {blocks}, width {model.pos_embed.shape[-1]}, patch {model.patch_size})"
    return load_exact(model, checkpoint, what)
