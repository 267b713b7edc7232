"""Forensics metrics against scikit-learn, a rank-statistic AUC (Mann-Whitney U) and masks counted by hand."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu
from sklearn.metrics import accuracy_score, f1_score, jaccard_score

from bench.metrics import forensics as F
from bench.registry import BenchError


@pytest.fixture(scope="module")
def maps():
    """6 images: 4 manipulated (blob masks), 2 authentic; soft predictions correlated with the masks."""
    rng = np.random.default_rng(0)
    preds, masks = [], []
    yy, xx = np.mgrid[:24, :32]
    for i in range(6):
        mask = np.zeros((24, 32), np.uint8)
        if i < 4:
            cy, cx, r = rng.integers(6, 18), rng.integers(6, 26), rng.integers(3, 7)
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
        pred = np.clip(0.55 * mask + rng.uniform(0, 0.6, mask.shape), 0, 1)
        preds.append(np.round(pred, 2))  # rounded scores create ties, which AUC must handle
        masks.append(mask)
    return preds, masks


def auc_by_ranks(scores, labels):
    """AUC = P(score of a positive > score of a negative) + 0.5 P(tie) = U / (n_pos n_neg)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    return mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg))


def test_pixel_f1_iou_auc_match_references(maps):
    preds, masks = maps
    f1, iou, auc = F.pixel_f1(preds, masks), F.pixel_iou(preds, masks), F.pixel_auc(preds, masks)
    for k in range(4):
        gt, hit = masks[k].ravel(), (preds[k] > 0.5).ravel()
        assert f1.per_item[k] == pytest.approx(f1_score(gt, hit), abs=1e-12)
        assert iou.per_item[k] == pytest.approx(jaccard_score(gt, hit), abs=1e-12)
        assert auc.per_item[k] == pytest.approx(auc_by_ranks(preds[k].ravel(), gt), abs=1e-12)
    for result in (f1, iou, auc):
        assert result.n == 4 and result.extra["n_authentic_skipped"] == 2  # authentic images excluded
        assert result.value == pytest.approx(np.mean(result.per_item), abs=1e-15)
    assert f1.extra["image_indices"] == [0, 1, 2, 3]


def test_small_masks_by_hand():
    gt = np.array([[1, 1, 0, 0],
                   [1, 1, 0, 0],
                   [0, 0, 0, 0],
                   [0, 0, 0, 0]], dtype=np.uint8) * 255  # 0/255 masks are accepted
    pred = np.array([[0.9, 0.5, 0.7, 0.0],   # 0.5 is NOT positive (score > threshold, strict)
                     [0.8, 0.2, 0.0, 0.0],
                     [0.0, 0.0, 0.0, 0.0],
                     [0.0, 0.0, 0.0, 0.6]])
    # TP = 2 (0.9, 0.8), FP = 2 (0.7, 0.6), FN = 2 (0.5, 0.2)
    assert F.pixel_f1([pred], [gt]).value == pytest.approx(2 * 2 / (2 * 2 + 2 + 2))
    assert F.pixel_iou([pred], [gt]).value == pytest.approx(2 / 6)
    # cut points "score >= s": s=.8 -> TP 2 FP 0 FN 2 (F1 4/6); s=.5 -> TP 3 FP 2 FN 1 (6/9);
    # s=.2 -> TP 4 FP 2 FN 0 (8/10, the best); s=0 takes every pixel -> TP 4 FP 12 (8/20)
    best = F.pixel_f1_best([pred], [gt])
    assert best.value == pytest.approx(0.8)
    assert best.extra["best_thresholds"] == [0.2]
    assert "optimistic" in best.protocol["threshold"]


def test_best_threshold_f1_is_the_max_over_thresholds(maps):
    preds, masks = maps
    best = F.pixel_f1_best(preds, masks)
    at_half = F.pixel_f1(preds, masks)
    for k in range(4):
        brute = max(f1_score(masks[k].ravel(), (preds[k] >= t).ravel()) for t in np.unique(preds[k]))
        assert best.per_item[k] == pytest.approx(brute, abs=1e-12)
        assert best.per_item[k] >= at_half.per_item[k]


def test_image_level_metrics():
    scores = np.array([0.9, 0.2, 0.5, 0.7, 0.4, 0.6, 0.1, 0.5])
    labels = np.array([1, 0, 1, 1, 0, 0, 0, 1])
    acc = F.image_acc(scores, labels)
    assert acc.value == pytest.approx(accuracy_score(labels, scores > 0.5))  # 0.5 itself is "authentic"
    assert acc.value == pytest.approx(5 / 8)
    assert F.image_auc(scores, labels).value == pytest.approx(auc_by_ranks(scores, labels), abs=1e-12)
    with pytest.raises(BenchError, match="both"):
        F.image_auc(scores, np.ones(8, int))
    with pytest.raises(BenchError, match="0 \\(authentic\\) or 1"):
        F.image_acc(scores, labels * 2)


def test_errors():
    gt = np.zeros((4, 4), np.uint8)
    with pytest.raises(BenchError, match="no manipulated image"):
        F.pixel_f1([np.zeros((4, 4))], [gt])
    gt[0, 0] = 1
    with pytest.raises(BenchError, match="probabilities"):
        F.pixel_f1([np.full((4, 4), 2.0)], [gt])
    with pytest.raises(BenchError, match="differ in shape"):
        F.pixel_f1([np.zeros((4, 5))], [gt])
    full = np.ones((4, 4), np.uint8)
    with pytest.raises(BenchError, match="whole image"):
        F.pixel_auc([np.zeros((4, 4))], [full])
