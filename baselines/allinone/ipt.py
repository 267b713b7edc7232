"""IPT (Chen et al., CVPR 2021) at the official shape of huawei-noah/Pretrained-IPT (`model/ipt.py`).

Written from the official module tree (attribute names, shapes and data flow read there, code not copied), so
that a state dict saved by the official code loads strictly:

* ``sub_mean`` / ``add_mean``: fixed 1x1 convs shifting by the DIV2K mean (times rgb_range), not trained;
* ``head[t]``: conv3x3 (3 -> n_feats) and two residual blocks with 5x5 convs, one head per task;
* ``body``: the 64-ch feature is cut into non-overlapping ``patch_dim`` x ``patch_dim`` patches (576-d tokens at
  the defaults), a linear encoding with a residual, learned positions (added once, before the encoder), a
  pre-norm transformer encoder and decoder (``num_layers`` each; attention without biases), the decoder's
  queries/keys get the task's query embedding (``query_embed``, one row per query: seq_len x dim), then an MLP
  head with a residual, folded back to the feature map;
* ``tail[t]``: the EDSR upsampler for the task's scale (empty at scale 1) and conv3x3 (n_feats -> 3).

The body works on ``patch_size`` x ``patch_size`` inputs only (learned positions, fixed fold size): whole images
go through :meth:`IPT.forward_tiles` (overlapping tiles, overlaps averaged; the official ``forward_chop`` is a
different tiling, so whole-image numbers need not match it bit for bit).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Official defaults (option.py): the pretrained model has 6 task heads/tails (x2, x3, x4, two noise levels, rain).
OFFICIAL: dict[str, Any] = {"n_feats": 64, "patch_size": 48, "patch_dim": 3, "num_heads": 12, "num_layers": 12,
                            "num_queries": 1, "rgb_range": 255, "scales": (2,)}
DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


def _conv(cin: int, cout: int, k: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)


class MeanShift(nn.Conv2d):
    """A frozen 1x1 conv adding ``sign * rgb_range * mean`` (EDSR's MeanShift; weights are the identity)."""

    def __init__(self, rgb_range: float, sign: int = -1):
        super().__init__(3, 3, 1)
        with torch.no_grad():
            self.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.bias.copy_(sign * rgb_range * torch.tensor(DIV2K_MEAN))
        for p in self.parameters():
            p.requires_grad = False


class ResBlock(nn.Module):
    def __init__(self, n_feats: int, kernel: int):
        super().__init__()
        self.body = nn.Sequential(_conv(n_feats, n_feats, kernel), nn.ReLU(True), _conv(n_feats, n_feats, kernel))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


def upsampler(scale: int, n_feats: int) -> nn.Sequential:
    """EDSR's upsampler: log2(s) x (conv to 4C, PixelShuffle 2) for powers of two, one conv to 9C + shuffle 3 at
    x3; empty at x1 (the denoise/derain tails)."""
    layers: list[nn.Module] = []
    if scale & (scale - 1) == 0:
        for _ in range(int(math.log2(scale))):
            layers += [_conv(n_feats, 4 * n_feats, 3), nn.PixelShuffle(2)]
    elif scale == 3:
        layers += [_conv(n_feats, 9 * n_feats, 3), nn.PixelShuffle(3)]
    else:
        raise ValueError(f"IPT upsamples by powers of two or 3, not {scale}")
    return nn.Sequential(*layers)


class EncoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, bias=False)
        self.linear1, self.linear2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm1(x)
        qk = h if pos is None else h + pos
        x = x + self.self_attn(qk, qk, h, need_weights=False)[0]
        return x + self.linear2(F.relu(self.linear1(self.norm2(x))))


class DecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, bias=False)
        self.multihead_attn = nn.MultiheadAttention(dim, heads, bias=False)
        self.linear1, self.linear2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.self_attn(h + query_pos, h + query_pos, h, need_weights=False)[0]
        h = self.norm2(x)
        x = x + self.multihead_attn(h + query_pos, memory, memory, need_weights=False)[0]
        return x + self.linear2(F.relu(self.linear1(self.norm3(x))))


class Stack(nn.Module):
    """Holds ``layers`` (the official TransformerEncoder/Decoder wrapper: only a ModuleList)."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)


class LearnedPositionalEncoding(nn.Module):
    def __init__(self, seq_len: int, dim: int):
        super().__init__()
        self.pe = nn.Embedding(seq_len, dim)
        self.register_buffer("position_ids", torch.arange(seq_len).expand((1, -1)))  # persistent, as official

    def forward(self) -> torch.Tensor:
        return self.pe(self.position_ids)  # [1, L, D]


class VisionTransformer(nn.Module):
    def __init__(self, img_dim: int, patch_dim: int, channels: int, num_heads: int, num_layers: int,
                 num_queries: int):
        super().__init__()
        if img_dim % patch_dim:
            raise ValueError(f"patch_size {img_dim} is not a multiple of patch_dim {patch_dim}")
        dim = channels * patch_dim * patch_dim
        if dim % num_heads:
            raise ValueError(f"token dim {dim} is not divisible by {num_heads} heads")
        hidden = 4 * dim
        self.img_dim, self.patch_dim, self.dim = img_dim, patch_dim, dim
        self.seq_len = (img_dim // patch_dim) ** 2
        self.linear_encoding = nn.Linear(dim, dim)
        # indices 0 (Linear), 1 (Dropout), 2 (ReLU), 3 (Linear), 4 (Dropout) as the official Sequential
        self.mlp_head = nn.Sequential(nn.Linear(dim, hidden), nn.Dropout(0.0), nn.ReLU(), nn.Linear(hidden, dim),
                                      nn.Dropout(0.0))
        self.query_embed = nn.Embedding(num_queries, dim * self.seq_len)
        self.encoder = Stack([EncoderLayer(dim, num_heads, hidden) for _ in range(num_layers)])
        self.decoder = Stack([DecoderLayer(dim, num_heads, hidden) for _ in range(num_layers)])
        self.position_encoding = LearnedPositionalEncoding(self.seq_len, dim)
        for layer in self.encoder.layers:  # the official encoder re-initialises its attention input projection
            nn.init.kaiming_uniform_(layer.self_attn.in_proj_weight, a=math.sqrt(5))

    def forward(self, x: torch.Tensor, query_idx: int) -> torch.Tensor:
        b = x.shape[0]
        if x.shape[-2:] != (self.img_dim, self.img_dim):
            raise ValueError(f"IPT's body takes {self.img_dim}x{self.img_dim} inputs, got {tuple(x.shape[-2:])}")
        tokens = F.unfold(x, self.patch_dim, stride=self.patch_dim).permute(2, 0, 1)  # [L, B, D] (seq first)
        tokens = self.linear_encoding(tokens) + tokens
        # through the Embedding module (not a view of its weight), so that module hooks (FlopCounterMode) see an
        # ordinary activation
        index = torch.full((1,), int(query_idx), dtype=torch.long, device=x.device)
        query = self.query_embed(index).view(self.seq_len, 1, self.dim).expand(-1, b, -1)
        pos = self.position_encoding().transpose(0, 1)  # [L, 1, D]
        h = tokens + pos
        for layer in self.encoder.layers:
            h = layer(h)
        memory, out = h, h
        for layer in self.decoder.layers:
            out = layer(out, memory, query)
        out = self.mlp_head(out) + out
        return F.fold(out.permute(1, 2, 0), self.img_dim, self.patch_dim, stride=self.patch_dim)


class IPT(nn.Module):
    """IPT with one head, tail and decoder query per task; ``forward(x, task)`` picks them (the official
    ``set_scale`` index). ``scales`` gives each task's upscaling factor (1 for restoration tasks)."""

    def __init__(self, scales: tuple[int, ...] = (1,), n_feats: int = 64, patch_size: int = 48, patch_dim: int = 3,
                 num_heads: int = 12, num_layers: int = 12, num_queries: int | None = None,
                 rgb_range: float = 255, n_colors: int = 3):
        super().__init__()
        self.scales, self.rgb_range, self.patch_size = tuple(int(s) for s in scales), float(rgb_range), patch_size
        self.num_queries = len(self.scales) if num_queries is None else int(num_queries)
        self.sub_mean, self.add_mean = MeanShift(rgb_range, -1), MeanShift(rgb_range, 1)
        self.head = nn.ModuleList([nn.Sequential(_conv(n_colors, n_feats, 3), ResBlock(n_feats, 5),
                                                 ResBlock(n_feats, 5)) for _ in self.scales])
        self.body = VisionTransformer(patch_size, patch_dim, n_feats, num_heads, num_layers, self.num_queries)
        self.tail = nn.ModuleList([nn.Sequential(upsampler(s, n_feats), _conv(n_feats, n_colors, 3))
                                   for s in self.scales])

    def forward(self, x: torch.Tensor, task: int = 0) -> torch.Tensor:
        if not 0 <= task < len(self.scales):
            raise ValueError(f"task {task} out of range: this IPT has {len(self.scales)} heads")
        feat = self.head[task](self.sub_mean(x))
        res = self.body(feat, min(task, self.num_queries - 1)) + feat
        return self.add_mean(self.tail[task](res))

    def forward_tiles(self, x: torch.Tensor, task: int = 0, overlap: int | None = None,
                      forward: Any = None, chunk: int = 64) -> torch.Tensor:
        """Whole-image restoration (scale-1 tasks): overlapping ``patch_size`` tiles, overlaps averaged.
        ``forward(tile)`` replaces ``self(tile, task)`` (Instruct-IPT passes its modulated call)."""
        forward = forward or (lambda t: self(t, task))
        p = self.patch_size
        overlap = p // 4 if overlap is None else overlap
        h, w = x.shape[-2:]
        if h < p or w < p:
            raise ValueError(f"image {h}x{w} is smaller than IPT's {p}x{p} tile")

        def starts(n: int) -> list[int]:
            step = p - overlap
            s = list(range(0, n - p + 1, step))
            return s if s[-1] == n - p else s + [n - p]

        out = torch.zeros_like(x)
        count = torch.zeros_like(x[:, :1])
        tiles, where = [], []
        for i in starts(h):
            for j in starts(w):
                tiles.append(x[..., i:i + p, j:j + p])
                where.append((i, j))
        batch = torch.cat(tiles, 0)
        step = max(1, int(chunk)) * x.shape[0]  # bounded memory on large images (hundreds of tiles)
        restored = torch.cat([forward(batch[i:i + step]) for i in range(0, batch.shape[0], step)]).split(x.shape[0], 0)
        for (i, j), t in zip(where, restored, strict=True):
            out[..., i:i + p, j:j + p] += t
            count[..., i:i + p, j:j + p] += 1
        return out / count


def build(variant: str = "official", **overrides: Any) -> IPT:
    cfg = dict(OFFICIAL) if variant == "official" else {}
    cfg.update(overrides)
    return IPT(**cfg)


def param_count_formula(n_feats: int, patch_dim: int, patch_size: int, num_layers: int, scales: tuple[int, ...],
                        num_queries: int) -> int:
    """IPT's parameter count from its layer sizes (independent of the modules above; the two MeanShift convs
    count too: they are parameters in the official state dict, just frozen)."""
    d = n_feats * patch_dim ** 2
    hid, seq = 4 * d, (patch_size // patch_dim) ** 2
    attn = 4 * d * d  # in_proj (3 d^2) + out_proj (d^2), no biases
    ffn = d * hid + hid + hid * d + d
    enc = attn + ffn + 2 * 2 * d
    dec = 2 * attn + ffn + 3 * 2 * d
    body = num_layers * (enc + dec) + (d * d + d) + (d * hid + hid + hid * d + d) + num_queries * seq * d + seq * d
    conv = lambda cin, cout, k: cin * cout * k * k + cout
    head = conv(3, n_feats, 3) + 4 * conv(n_feats, n_feats, 5)
    tails = 0
    for s in scales:
        ups = (int(math.log2(s)) * conv(n_feats, 4 * n_feats, 3)) if s & (s - 1) == 0 else conv(n_feats, 9 * n_feats, 3)
        tails += ups + conv(n_feats, 3, 3)
    return 2 * conv(3, 3, 1) + len(scales) * head + body + tails
