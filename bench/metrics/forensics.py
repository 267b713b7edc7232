"""Image manipulation detection / localisation dialects (IMDLBenCo semantics unless the name says otherwise).

Pixel metrics (``pixel_f1``, ``pixel_iou``, ``pixel_auc``, ``pixel_f1_best``) are computed per image and averaged
over the **manipulated** images only (ground-truth mask with at least one positive pixel): on an authentic image
F1/IoU/AUC are 0 or undefined by construction (IMDLBenCo#46), so including them only lowers the mean. Predicted
maps are probabilities in [0, 1]; ground-truth masks are binarised with the same rule (> 0.5; 0/1 or 0/255 masks
are accepted: 0/255 masks are divided by 255 first). Binarisation is ``score > threshold`` (strict, IMDLBenCo).

* ``pixel_f1``: F1 = 2TP / (2TP + FP + FN) at threshold 0.5 (0 when TP = 0; IMDLBenCo's 1e-9 epsilons change
  nothing visible).
* ``pixel_f1_best``: per-image oracle threshold (the max F1 over all thresholds), labelled OPTIMISTIC: it uses
  the ground truth to choose the threshold (TruFor's "F1-best").
* ``pixel_iou``: TP / (TP + FP + FN) at 0.5.
* ``pixel_auc``: per-image ROC AUC of the soft map (scikit-learn ``roc_auc_score``).
* ``image_acc``: accuracy of ``score > 0.5`` against labels (1 = manipulated) over all images.
* ``image_auc``: ROC AUC of the raw image scores over all images (scikit-learn).
"""
from __future__ import annotations

from typing import Any
from collections.abc import Sequence

import numpy as np

from bench.metrics.base import MetricResult, check_same_length, library_version, mean_of
from bench.registry import BenchError

THRESHOLD = 0.5
_PIXEL_PROTOCOL = {
    "averaging": "per-image, mean over manipulated images (gt mask has a positive pixel)",
    "binarise": "score > threshold (strict); gt mask > 0.5 after scaling 0/255 masks to 0/1",
    "inverse_max": False,
    "boundary_band": None,
}


def _as_map(x: Any, what: str) -> np.ndarray:
    arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    arr = np.squeeze(arr)
    if arr.ndim != 2:
        raise BenchError(f"{what}: expected an HxW map, got shape {np.shape(x)}")
    return arr


def _gt_binary(mask: Any, what: str) -> np.ndarray:
    m = _as_map(mask, what).astype(np.float64)
    if m.max(initial=0.0) > 1.0:
        if m.max() > 255.0:
            raise BenchError(f"{what}: mask values go up to {m.max()}, expected 0/1 or 0/255")
        m = m / 255.0
    return m > 0.5


def _pred_map(pred: Any, what: str) -> np.ndarray:
    p = _as_map(pred, what).astype(np.float64)
    if p.size and (p.min() < 0.0 or p.max() > 1.0):
        raise BenchError(f"{what}: predicted maps must be probabilities in [0, 1], got [{p.min()}, {p.max()}]")
    return p


def _manipulated_pairs(preds: Sequence[Any], masks: Sequence[Any]) -> tuple[list[tuple[np.ndarray, np.ndarray]],
                                                                            list[int]]:
    check_same_length(preds, masks, "maps")
    pairs, indices = [], []
    for i, (p, m) in enumerate(zip(preds, masks)):
        gt = _gt_binary(m, f"masks[{i}]")
        pm = _pred_map(p, f"preds[{i}]")
        if pm.shape != gt.shape:
            raise BenchError(f"image {i}: predicted map {pm.shape} and mask {gt.shape} differ in shape")
        if gt.any():
            pairs.append((pm, gt))
            indices.append(i)
    if not pairs:
        raise BenchError("no manipulated image (every mask is empty): pixel metrics are undefined")
    return pairs, indices


def _counts(pred: np.ndarray, gt: np.ndarray, threshold: float) -> tuple[int, int, int]:
    hit = pred > threshold
    tp = int(np.count_nonzero(hit & gt))
    return tp, int(np.count_nonzero(hit & ~gt)), int(np.count_nonzero(~hit & gt))


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2.0 * tp / (2 * tp + fp + fn) if tp else 0.0


def _best_f1(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """Max F1 over every threshold (each distinct score), and the threshold that reaches it."""
    order = np.argsort(-pred.ravel(), kind="stable")
    scores, labels = pred.ravel()[order], gt.ravel()[order]
    tp = np.cumsum(labels)
    fp = np.cumsum(~labels)
    last_of_each_score = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]  # "score >= s" cut points
    tp, fp = tp[last_of_each_score], fp[last_of_each_score]
    fn = labels.sum() - tp
    f1 = np.where(tp > 0, 2.0 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    best = int(np.argmax(f1))
    return float(f1[best]), float(scores[last_of_each_score][best])


def _pixel_result(name: str, values: list[float], indices: list[int], n_total: int, protocol: dict) -> MetricResult:
    return MetricResult(name=name, value=mean_of(values), n=len(values), per_item=values,
                        protocol={**_PIXEL_PROTOCOL, **protocol},
                        extra={"image_indices": indices, "n_authentic_skipped": n_total - len(values)})


def pixel_f1(preds: Sequence[Any], masks: Sequence[Any], threshold: float = THRESHOLD) -> MetricResult:
    """``pixel_f1``: per-image F1 at a fixed threshold, mean over manipulated images."""
    pairs, idx = _manipulated_pairs(preds, masks)
    values = [_f1(*_counts(p, g, threshold)) for p, g in pairs]
    return _pixel_result("pixel_f1", values, idx, len(preds), {"threshold": threshold})


def pixel_f1_best(preds: Sequence[Any], masks: Sequence[Any]) -> MetricResult:
    """``pixel_f1_best``: OPTIMISTIC per-image best-threshold F1 (threshold picked with the ground truth)."""
    pairs, idx = _manipulated_pairs(preds, masks)
    best = [_best_f1(p, g) for p, g in pairs]
    result = _pixel_result("pixel_f1_best", [b[0] for b in best], idx, len(preds),
                           {"threshold": "per-image oracle (score >= t, best over all t): optimistic"})
    result.extra["best_thresholds"] = [b[1] for b in best]
    return result


def pixel_iou(preds: Sequence[Any], masks: Sequence[Any], threshold: float = THRESHOLD) -> MetricResult:
    """``pixel_iou``: per-image IoU at a fixed threshold, mean over manipulated images."""
    pairs, idx = _manipulated_pairs(preds, masks)
    values = []
    for p, g in pairs:
        tp, fp, fn = _counts(p, g, threshold)
        values.append(tp / (tp + fp + fn))  # tp + fn > 0 on a manipulated image
    return _pixel_result("pixel_iou", values, idx, len(preds), {"threshold": threshold})


def pixel_auc(preds: Sequence[Any], masks: Sequence[Any]) -> MetricResult:
    """``pixel_auc``: per-image pixel ROC AUC (scikit-learn), mean over manipulated images.

    A fully manipulated image (no negative pixel) has no ROC curve; it is skipped and counted in extra."""
    from sklearn.metrics import roc_auc_score

    pairs, idx = _manipulated_pairs(preds, masks)
    values, kept, fully = [], [], []
    for (p, g), i in zip(pairs, idx):
        if g.all():
            fully.append(i)
            continue
        values.append(float(roc_auc_score(g.ravel(), p.ravel())))
        kept.append(i)
    if not values:
        raise BenchError("pixel AUC is undefined: every manipulated mask covers the whole image")
    result = _pixel_result("pixel_auc", values, kept, len(preds),
                           {"auc": f"sklearn.metrics.roc_auc_score {library_version('scikit-learn')}"})
    result.extra["fully_manipulated_skipped"] = fully
    return result


def _image_inputs(scores: Sequence[float], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    check_same_length(s, y, "image scores/labels")
    if not np.isin(y, (0, 1)).all():
        raise BenchError("image labels must be 0 (authentic) or 1 (manipulated)")
    return s, y.astype(int)


def image_acc(scores: Sequence[float], labels: Sequence[int], threshold: float = THRESHOLD) -> MetricResult:
    """``image_acc``: real/fake accuracy of ``score > threshold`` over all images."""
    s, y = _image_inputs(scores, labels)
    correct = [float(v) for v in ((s > threshold).astype(int) == y)]
    return MetricResult(name="image_acc", value=mean_of(correct), n=len(correct), per_item=correct,
                        protocol={"threshold": threshold, "binarise": "score > threshold", "positive": "manipulated"})


def image_auc(scores: Sequence[float], labels: Sequence[int]) -> MetricResult:
    """``image_auc``: ROC AUC of the raw image scores (not thresholded: IMDLBenCo#53) over all images."""
    from sklearn.metrics import roc_auc_score

    s, y = _image_inputs(scores, labels)
    if y.min() == y.max():
        raise BenchError("image AUC needs both authentic and manipulated images")
    return MetricResult(name="image_auc", value=float(roc_auc_score(y, s)), n=len(s), per_item=None,
                        protocol={"auc": f"sklearn.metrics.roc_auc_score {library_version('scikit-learn')}",
                                  "scores": "raw, not thresholded", "positive": "manipulated"})
