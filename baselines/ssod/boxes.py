"""Box utilities shared by the detector and the SSOD methods: IoU, greedy NMS that is fast on CPU, box codes.

`nms` returns exactly what greedy NMS returns (keep the best box, drop every box overlapping it by IoU >
threshold, repeat), computed as a fixed point over the pairwise IoU matrix (Cluster-NMS, Zheng et al. 2021):
a box is kept iff no KEPT higher-scoring box overlaps it; iterating that rule from "all kept" converges to the
greedy answer. On a CPU-only torch the project's torchvision layer runs NMS as a Python loop, one box per
iteration; this version does a handful of [n, n] tensor operations instead. On GPU torchvision's kernel is used.
"""
from __future__ import annotations

import torch
from torch import Tensor

# Above this many boxes the [n, n] IoU matrix gets large; fall back to torchvision's operator.
MATRIX_NMS_MAX_BOXES = 4096


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU [len(a), len(b)] of xyxy boxes (no +1 on widths, as torchvision and mmdet >= 2.0)."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices of the boxes greedy NMS keeps, by decreasing score (ties: lower index first)."""
    if boxes.is_cuda or boxes.shape[0] > MATRIX_NMS_MAX_BOXES:
        from torchvision.ops import nms as tv_nms

        return tv_nms(boxes, scores, iou_threshold)
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    overlaps = box_iou(boxes[order], boxes[order]).triu(diagonal=1) > iou_threshold  # [i, j]: i before j
    keep = torch.ones(len(order), dtype=torch.bool, device=boxes.device)
    while True:
        suppressed = (overlaps & keep[:, None]).any(dim=0)
        new_keep = ~suppressed
        if torch.equal(new_keep, keep):
            return order[keep]
        keep = new_keep


def batched_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each group (class or FPN level), indices sorted by decreasing score. Few groups: one NMS per
    group (several small IoU matrices instead of one large one); many groups or GPU: torchvision's trick of
    moving the groups' boxes apart so that they never overlap, then one NMS."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    ids = groups.unique()
    if boxes.is_cuda or len(ids) > 32:
        offsets = groups.to(boxes) * (boxes.max() + 1)
        return nms(boxes + offsets[:, None], scores, iou_threshold)
    kept = []
    for g in ids:
        members = (groups == g).nonzero().squeeze(1)
        kept.append(members[nms(boxes[members], scores[members], iou_threshold)])
    keep = torch.cat(kept)
    return keep[torch.argsort(scores[keep], descending=True, stable=True)]


def clip_boxes(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clip xyxy boxes to an image of (height, width)."""
    h, w = size
    return torch.stack([boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h),
                        boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)], dim=1)


def scale_boxes(boxes: Tensor, sx: float, sy: float) -> Tensor:
    return boxes * boxes.new_tensor([sx, sy, sx, sy])
