"""Multi-scale RoIAlign for the detector's box head, fast on CPU.

On a CPU-only torch the project's torchvision layer (tools/_tv_cpu_shim.py) provides `roi_align` as a loop over
RoIs: exact, but far too slow to train a detector with it (512 RoIs per image, with autograd). Here the same
operator is computed for a FIXED sampling ratio as two small matrix products per image: bilinear sampling is
separable, so each RoI's sample grid is `Wy @ F @ Wx^T` with sparse interpolation matrices Wy [PH*S, H] and
Wx [PW*S, W] (the S x S average of a bin folded in). The result equals torchvision's kernel (same border rules: samples more than one pixel outside the
map give 0, coordinates are clamped into it); tests/models/test_ssod.py checks it against the reference.

On GPU, or with the adaptive sampling ratio (<= 0, mmdet's setting), torchvision's own `roi_align` is used.
Level assignment follows the FPN paper (torchvision's LevelMapper, identical to mmdet's finest_scale=56 rule).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _axis_weights(coords: Tensor, size: int) -> Tensor:
    """Interpolation weights [K, S, size] for sample coordinates [K, S] along one axis of length `size`,
    with torchvision's kernel rules (zero beyond one pixel outside, clamp at 0, last index saturates)."""
    outside = (coords < -1.0) | (coords > size)
    v = coords.clamp(min=0)
    low = v.floor().long()
    saturated = low >= size - 1
    low = torch.where(saturated, torch.full_like(low, size - 1), low)
    high = torch.where(saturated, low, low + 1)
    v = torch.where(saturated, low.to(v.dtype), v)
    frac = v - low.to(v.dtype)
    w = torch.zeros(*coords.shape, size, dtype=coords.dtype, device=coords.device)
    w.scatter_add_(-1, low.unsqueeze(-1), (1.0 - frac).unsqueeze(-1))
    w.scatter_add_(-1, high.unsqueeze(-1), frac.unsqueeze(-1))
    return w * (~outside).unsqueeze(-1).to(w.dtype)


def roi_align_fixed(features: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float,
                    sampling_ratio: int, aligned: bool) -> Tensor:
    """torchvision.ops.roi_align for sampling_ratio > 0: features [N,C,H,W], rois [K,5] (batch, x1, y1, x2, y2)."""
    if sampling_ratio <= 0:
        raise ValueError("roi_align_fixed needs a fixed sampling_ratio > 0")
    ph, pw = output_size
    s = sampling_ratio
    n, c, height, width = features.shape
    out = features.new_zeros((rois.shape[0], c, ph, pw))
    if rois.numel() == 0:
        return out
    rois = rois.to(features.dtype)
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, i] * spatial_scale - offset for i in range(1, 5))
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:  # legacy rule: malformed RoIs are forced to 1x1
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    grid = (torch.arange(s, dtype=features.dtype, device=features.device) + 0.5) / s
    ys = y1[:, None, None] + (torch.arange(ph, dtype=features.dtype, device=features.device)[None, :, None]
                              + grid[None, None, :]) * (roi_h / ph)[:, None, None]
    xs = x1[:, None, None] + (torch.arange(pw, dtype=features.dtype, device=features.device)[None, :, None]
                              + grid[None, None, :]) * (roi_w / pw)[:, None, None]
    # Averaging the S x S samples of a bin is linear too: fold it into the interpolation matrices.
    wy = _axis_weights(ys.reshape(-1, ph * s), height).reshape(-1, ph, s, height).mean(dim=2)  # [K, PH, H]
    wx = _axis_weights(xs.reshape(-1, pw * s), width).reshape(-1, pw, s, width).mean(dim=2)    # [K, PW, W]
    batch = rois[:, 0].long()
    pieces = []
    for b in range(n):
        idx = (batch == b).nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        rows = torch.einsum("kph,chw->kcpw", wy[idx], features[b])        # [k, C, PH, W]
        pieces.append((idx, torch.einsum("kcpw,kqw->kcpq", rows, wx[idx])))  # [k, C, PH, PW]
    for idx, pooled in pieces:
        out = out.index_copy(0, idx, pooled)
    return out


def fpn_levels(boxes: Tensor, k_min: int, k_max: int, canonical_scale: float = 224.0,
               canonical_level: int = 4, eps: float = 1e-6) -> Tensor:
    """FPN level index (0 = finest pooled level) of each box [K,4]: floor(k0 + log2(sqrt(area) / 224))."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    level = torch.floor(canonical_level + torch.log2(area.clamp(min=0).sqrt() / canonical_scale + eps))
    return (level.clamp(min=k_min, max=k_max) - k_min).long()


class MultiScaleRoIAlign(nn.Module):
    """Drop-in for torchvision's MultiScaleRoIAlign (same call: features dict, proposals, image sizes), with
    the feature strides given explicitly and the CPU fast path above."""

    def __init__(self, featmap_names: list[str], strides: list[int], output_size: int = 7,
                 sampling_ratio: int = 2, aligned: bool = False):
        super().__init__()
        self.featmap_names = list(featmap_names)
        self.strides = list(strides)
        self.output_size = (output_size, output_size)
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.k_min = round(math.log2(self.strides[0]))
        self.k_max = round(math.log2(self.strides[-1]))

    def _pool(self, feature: Tensor, rois: Tensor, scale: float) -> Tensor:
        if feature.is_cuda or self.sampling_ratio <= 0:
            from torchvision.ops import roi_align

            return roi_align(feature, rois, self.output_size, scale, self.sampling_ratio, self.aligned)
        return roi_align_fixed(feature, rois, self.output_size, scale, self.sampling_ratio, self.aligned)

    def forward(self, features: dict[str, Tensor], proposals: list[Tensor], image_shapes=None) -> Tensor:
        maps = [features[name] for name in self.featmap_names]
        boxes = torch.cat(proposals, dim=0)
        batch = torch.cat([torch.full((len(p), 1), i, dtype=boxes.dtype, device=boxes.device)
                           for i, p in enumerate(proposals)], dim=0)
        rois = torch.cat([batch, boxes], dim=1)
        c = maps[0].shape[1]
        out = maps[0].new_zeros((rois.shape[0], c, *self.output_size))
        if rois.shape[0] == 0:
            return out
        levels = fpn_levels(boxes, self.k_min, self.k_max) if len(maps) > 1 else torch.zeros_like(batch[:, 0]).long()
        for level, (feature, stride) in enumerate(zip(maps, self.strides)):
            idx = (levels == level).nonzero().squeeze(1)
            if idx.numel():
                out = out.index_copy(0, idx, self._pool(feature, rois[idx], 1.0 / stride))
        return out
