"""Pseudo-labels: per-class score filtering and LabelMatch's adaptive label-distribution-aware thresholds (ACT).

Filtering: a teacher detection of class c with score s is a RELIABLE pseudo-box if s >= tau_pos[c], UNCERTAIN if
tau_unc[c] <= s < tau_pos[c], and dropped otherwise. Unbiased Teacher is the special case tau_pos = tau_unc = 0.7
for every class (no uncertain boxes).

ACT (hikvision-research/SSOD, labelmatch_hooks.py, restated): from the labelled split take the class counts
(a class with no box counts as 1), the mean number of boxes per image n = sum(counts) / images and the class
ratios r_c = counts_c / sum(counts). The teacher is run on M unlabelled images; P_c = M * n * r_c is the number
of class-c objects those images are expected to hold. With s_c sorted decreasingly (an empty list counts as [0]):
    tau_pos[c] = max(0.05, s_c[min(int(P_c * percent), len(s_c) - 1)])      (percent = 0.2)
    tau_unc[c] = max(min_thr, s_c[min(int(P_c), len(s_c) - 1)])               (min_thr = 0.05)
Before the first computation both thresholds are 0.9 (LabelMatch's score_thr).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor


def label_prior(annotations: Sequence[dict[str, Any]], num_images: int, cat_ids: Sequence[int]) -> tuple[float, np.ndarray]:
    """(boxes per image, class ratios in `cat_ids` order) of a labelled split, LabelMatch's way."""
    counts = {cid: 0 for cid in cat_ids}
    for ann in annotations:
        counts[int(ann["category_id"])] += 1
    per_class = np.array([max(counts[cid], 1) for cid in cat_ids], dtype=np.float64)
    total = per_class.sum()
    return float(total / num_images), per_class / total


def act_thresholds(scores_per_class: Sequence[np.ndarray], num_images: int, boxes_per_image: float,
                   class_ratio: np.ndarray, percent: float = 0.2, min_thr: float = 0.05,
                   floor_pos: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(reliable, uncertain) thresholds per class from the teacher's detection scores on `num_images` images."""
    potential = num_images * boxes_per_image * np.asarray(class_ratio, dtype=np.float64)
    pos = np.zeros(len(scores_per_class))
    unc = np.zeros(len(scores_per_class))
    for c, scores in enumerate(scores_per_class):
        s = np.sort(np.asarray(scores, dtype=np.float64))[::-1] if len(scores) else np.zeros(1)
        pos[c] = max(floor_pos, s[min(int(potential[c] * percent), len(s) - 1)])
        unc[c] = max(min_thr, s[min(int(potential[c]), len(s) - 1)])
    return pos, unc


def split_pseudo_labels(boxes: Tensor, scores: Tensor, labels: Tensor, thr_pos: Tensor,
                        thr_unc: Tensor) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """((reliable boxes, labels), (uncertain boxes, labels)) of one image's detections; labels are 1..C and the
    threshold tensors are indexed by label - 1."""
    pos_thr = thr_pos[labels - 1]
    unc_thr = thr_unc[labels - 1]
    reliable = scores >= pos_thr
    uncertain = (scores >= unc_thr) & ~reliable
    return (boxes[reliable], labels[reliable]), (boxes[uncertain], labels[uncertain])


def collect_scores(detections: Sequence[dict[str, Tensor]], num_classes: int) -> list[np.ndarray]:
    """Detection scores per class (index label - 1) over a list of per-image detections."""
    out: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    for det in detections:
        scores, labels = det["scores"].cpu().numpy(), det["labels"].cpu().numpy()
        for c in range(num_classes):
            out[c].append(scores[labels == c + 1])
    return [np.concatenate(v) if v else np.zeros(0) for v in out]


def to_tensor(values: np.ndarray, like: Tensor) -> Tensor:
    return torch.as_tensor(np.asarray(values), dtype=like.dtype, device=like.device)
