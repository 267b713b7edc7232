"""NVSM-SA: LIPT's self-attention with a non-volatile (pre-computed, input-independent) sampling mask.

The input projection doubles the channels and splits them into two branches of C channels each:

* branch 0, dense local window attention: plain non-overlapping p x p windows;
* branch 1, sparse large window attention: each p x p tile is expanded to a 2p x 2p window (the tile and
  its right, lower and diagonal neighbours, wrapping circularly at the image border), and a fixed p x p
  subset of that window is sampled per axis by a boolean mask. The tokens are laid out at the tile's
  position and attended as an ordinary p x p window, so every token sees a 2p x 2p field at p x p cost.

Within a branch the first C/2 channels are the queries (which double as keys: the attention is
softmax(q q^T), with no 1/sqrt(d) scaling and no position bias, as in ELAN and the official code) and the
last C/2 the values. A second, paired sub-block reuses the first one's attention matrices: its projection
is C -> C and yields only values (C/2 per branch). As in the official code, the reused sparse-branch
matrix is applied to the *un-sampled* local window of the values.

Facts from Lucien66/LIPT ``models/lipt_block.py`` (HEAD e6e4ec9); the mask offsets are generalised to any
even window size (the official code hard-codes p = 8 and p = 16; both are reproduced exactly).
"""
from __future__ import annotations

import torch
from torch import nn

from bench.registry import BenchError

MASK_TYPES = ("sparse", "dense")


def sampling_mask(window: int, mask_type: str = "sparse") -> torch.Tensor:
    """Boolean mask over the 2p offsets of an expanded window (one axis) choosing the p sampled offsets.

    ``sparse`` (the paper's NVSM): every other offset of the own tile (0, 2, ..., p-2), then the odd offsets
    of the neighbour tile (p+1, p+3, ..., 2p-1). For p = 8: {0,2,4,6, 9,11,13,15}.
    ``dense`` (the official ablation): offsets 0..p-1, i.e. the plain local window.
    """
    if window < 2 or window % 2:
        raise BenchError(f"NVSM-SA window size must be an even number >= 2, got {window}")
    mask = torch.zeros(2 * window, dtype=torch.bool)
    if mask_type == "sparse":
        mask[0:window:2] = True
        mask[window + 1:2 * window:2] = True
    elif mask_type == "dense":
        mask[:window] = True
    else:
        raise BenchError(f"unknown NVSM mask type {mask_type!r}; known: {', '.join(MASK_TYPES)}")
    return mask


def sampling_index(length: int, window: int, mask_type: str = "sparse", device=None) -> torch.Tensor:
    """For every output position along one axis, the source position it samples (circular wrap-around).

    Position ``t * p + i`` of tile ``t`` takes source ``(t * p + offsets[i]) mod length``; this is the
    official "pad right/bottom circularly by p, unfold 2p windows with stride p, keep masked offsets".
    """
    offsets = sampling_mask(window, mask_type).nonzero().flatten().to(device)
    pos = torch.arange(length, device=device)
    return (pos - pos % window + offsets[pos % window]) % length


def sample_sparse(x: torch.Tensor, window: int, mask_type: str = "sparse") -> torch.Tensor:
    """Re-lay ``x`` [B, C, H, W] so that each p x p tile holds its sampled 2p x 2p-window tokens."""
    h, w = x.shape[-2:]
    rows = sampling_index(h, window, mask_type, x.device)
    cols = sampling_index(w, window, mask_type, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def to_windows(x: torch.Tensor, p: int) -> torch.Tensor:
    """[B, C, H, W] -> [B * H/p * W/p, p*p, C] (row-major windows, row-major tokens)."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b * (h // p) * (w // p), p * p, c)


def from_windows(tokens: torch.Tensor, p: int, b: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`to_windows`."""
    c = tokens.shape[-1]
    x = tokens.view(b, h // p, w // p, p, p, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, c, h, w)


class NVSMSA(nn.Module):
    """One NVSM-SA unit. ``calc_attn=False`` makes it the attention-reusing member of a pair.

    ``shifts`` > 0 applies a Swin-style cyclic shift by -p/2 before attention and +p/2 after (no mask).
    H and W must be multiples of every window size (the network pads its input to ensure it).
    """

    def __init__(self, channels: int, window_sizes: tuple[int, int] = (8, 8), shifts: int = 0,
                 calc_attn: bool = True, mask_type: str = "sparse", deploy: bool = False):
        super().__init__()
        if len(window_sizes) != 2:
            raise BenchError(f"NVSM-SA has two branches (dense local, sparse large) and needs two window "
                             f"sizes, got {list(window_sizes)}")
        if channels % 2:
            raise BenchError(f"NVSM-SA needs an even channel count (q/v halves), got {channels}")
        for p in window_sizes:
            sampling_mask(p, mask_type)  # validates
        self.channels = channels
        self.window_sizes = tuple(int(p) for p in window_sizes)
        self.shifts = shifts
        self.calc_attn = calc_attn
        self.mask_type = mask_type
        proj_out = 2 * channels if calc_attn else channels
        # Official split sizes: two halves of the projected channels.
        self.split_chns = [proj_out // 2, proj_out // 2]
        if deploy:
            self.project_inp = nn.Conv2d(channels, proj_out, 1)
        else:
            self.project_inp = nn.Sequential(nn.Conv2d(channels, proj_out, 1), nn.BatchNorm2d(proj_out))
        self.project_out = nn.Conv2d(channels, channels, 1)

    @property
    def deployed(self) -> bool:
        return isinstance(self.project_inp, nn.Conv2d)

    @torch.no_grad()
    def fused_input_projection(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Kernel and bias (float64) of ``project_inp`` with its BN folded (eval form)."""
        from .reparam import fold_conv_bn

        if self.deployed:
            return self.project_inp.weight.double(), self.project_inp.bias.double()
        conv, bn = self.project_inp
        return fold_conv_bn(conv, bn)

    def forward(self, x: torch.Tensor, prev_atns: list[torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, _, h, w = x.shape
        if prev_atns is None and not self.calc_attn:
            raise BenchError("an attention-reusing NVSM-SA unit needs the attention maps of its pair")
        if any(h % p or w % p for p in self.window_sizes):
            raise BenchError(f"NVSM-SA input {h}x{w} is not a multiple of the window sizes "
                             f"{list(self.window_sizes)}; pad it first (LIPT.forward does)")
        branches = torch.split(self.project_inp(x), self.split_chns, dim=1)
        outs, atns = [], []
        for idx, feat in enumerate(branches):
            p = self.window_sizes[idx]
            if self.shifts > 0:
                feat = torch.roll(feat, shifts=(-(p // 2), -(p // 2)), dims=(2, 3))
            if prev_atns is None:
                if idx == 1:  # sparse large-window branch
                    feat = sample_sparse(feat, p, self.mask_type)
                q, v = to_windows(feat, p).chunk(2, dim=-1)
                atn = (q @ q.transpose(-2, -1)).softmax(dim=-1)
            else:
                v = to_windows(feat, p)
                atn = prev_atns[idx]
            y = from_windows(atn @ v, p, b, h, w)
            if self.shifts > 0:
                y = torch.roll(y, shifts=(p // 2, p // 2), dims=(2, 3))
            outs.append(y)
            atns.append(atn)
        return self.project_out(torch.cat(outs, dim=1)), atns
