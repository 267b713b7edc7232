"""bench.metrics.forensics against IMDLBenCo's own evaluator formulas (scu-zjz/IMDLBenCo, IMDLBenCo/evaluation/).

The reference functions below restate, in torch and on a [N, 1, H, W] batch, what IMDLBenCo's evaluators compute
(read from F1.py, IOU.py, AUC.py, Accuracy.py; not imported: the package pins numpy<2 and needs CUDA/NCCL):
- PixelF1 (mode "origin"): predict = (p > 0.5); TP/FP/FN summed per image; precision = TP/(TP+FP+1e-8),
  recall = TP/(TP+FN+1e-8), F1 = 2PR/(P+R+1e-8), one value per image;
- PixelIOU: intersection / (sum(pred) + sum(mask) - intersection + 1e-8) per image;
- PixelAUC: per image, argsort scores descending, cumulative TP/FP rates, torch.trapz(tpr, fpr); an image with an
  empty mask returns 0.0 (which is why bench averages pixel metrics over manipulated images only);
- ImageAccuracy: mean of (score > 0.5) == label; ImageAUC: sklearn roc_auc_score on the raw scores.
The tester sums the per-image values and divides by the image count: a plain mean over the images it is given, so
IMDLBenCo's number on a manipulated-only test set is bench's mean over manipulated images.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from bench.metrics import forensics as F


def imdlbenco_pixel_f1(predict: torch.Tensor, mask: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    predict = (predict > threshold).float()
    tp = torch.sum(predict * mask, dim=(1, 2, 3))
    fp = torch.sum(predict * (1 - mask), dim=(1, 2, 3))
    fn = torch.sum((1 - predict) * mask, dim=(1, 2, 3))
    precision = tp / (tp + fp + 1e-8)
    recall = tp / (tp + fn + 1e-8)
    return 2 * precision * recall / (precision + recall + 1e-8)


def imdlbenco_pixel_iou(predict: torch.Tensor, mask: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    predict = (predict > threshold).float().flatten(1)
    mask = mask.flatten(1)
    intersection = torch.sum(predict * mask, dim=1)
    union = torch.sum(predict, dim=1) + torch.sum(mask, dim=1) - intersection
    return intersection / (union + 1e-8)


def imdlbenco_pixel_auc(predict: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    values = []
    for y_scores, y_true in zip(predict, mask):
        y_true, y_scores = y_true.flatten(), y_scores.flatten()
        if torch.sum(y_true) == 0:
            values.append(0.0)
            continue
        y_sorted = y_true[torch.argsort(y_scores, descending=True)]
        n_pos = torch.sum(y_sorted).item()
        n_neg = len(y_sorted) - n_pos
        tpr = torch.cumsum(y_sorted, dim=0) / n_pos
        fpr = torch.cumsum(1 - y_sorted, dim=0) / n_neg
        values.append(torch.trapz(tpr, fpr).item())
    return torch.tensor(values, dtype=torch.float64)


def imdlbenco_image_accuracy(scores: torch.Tensor, labels: torch.Tensor) -> float:
    return float(torch.sum((scores > 0.5).float() == labels).item() / scores.shape[0])


def hand_made_batch():
    """Five 12x16 images: four manipulated (a rectangle, an L shape, a thin stripe, a single pixel) and one authentic.

    Scores are distinct within each image (a strictly increasing ramp, shuffled, plus a mask-aligned offset) so that
    IMDLBenCo's sort-based AUC, which does not merge tied scores, is well defined."""
    h, w = 12, 16
    masks = np.zeros((5, h, w), np.float64)
    masks[0, 2:7, 3:9] = 1                 # rectangle
    masks[1, 1:9, 1:3] = 1                 # L shape: vertical bar ...
    masks[1, 7:9, 1:10] = 1                # ... and foot
    masks[2, :, 12] = 1                    # one-pixel-wide stripe
    masks[3, 5, 5] = 1                     # a single pixel
    # masks[4] stays empty: authentic
    rng = np.random.default_rng(21)
    preds = np.empty_like(masks)
    strengths = [0.45, 0.3, 0.1, 0.6, 0.0]
    for k in range(5):
        ramp = rng.permutation(h * w).reshape(h, w) / (h * w) * 0.5  # distinct values in [0, 0.5)
        preds[k] = np.clip(ramp + strengths[k] * masks[k] + 0.05 * (k == 1), 0, 1)
    preds[2][masks[2] == 1] = 0.2  # a miss: the stripe is predicted below 0.5 everywhere -> F1 = IoU = 0
    preds[2][0, 12] = 0.2001        # keep the stripe's scores distinct
    return preds, masks


@pytest.fixture(scope="module")
def batch():
    preds, masks = hand_made_batch()
    return preds, masks, torch.from_numpy(preds)[:, None], torch.from_numpy(masks)[:, None]


def test_pixel_f1_and_iou_equal_imdlbenco_per_image_and_mean(batch):
    preds, masks, tp, tm = batch
    manipulated = [0, 1, 2, 3]
    ref_f1 = imdlbenco_pixel_f1(tp, tm).numpy()
    ref_iou = imdlbenco_pixel_iou(tp, tm).numpy()
    ours_f1, ours_iou = F.pixel_f1(list(preds), list(masks)), F.pixel_iou(list(preds), list(masks))
    assert ours_f1.extra["image_indices"] == manipulated and ours_f1.extra["n_authentic_skipped"] == 1
    np.testing.assert_allclose(ours_f1.per_item, ref_f1[manipulated], atol=1e-7)  # IMDLBenCo's 1e-8 epsilons
    np.testing.assert_allclose(ours_iou.per_item, ref_iou[manipulated], atol=1e-7)
    assert ours_f1.value == pytest.approx(ref_f1[manipulated].mean(), abs=1e-7)
    assert ours_iou.value == pytest.approx(ref_iou[manipulated].mean(), abs=1e-7)
    assert ref_f1[2] == pytest.approx(0.0, abs=1e-12)  # the missed stripe counts as 0, in both
    # IMDLBenCo's F1 and IoU on the authentic image are 0 by construction: averaging over all five images would
    # only shrink the mean by 4/5, which is why bench (and this conformance) keeps manipulated images only.
    assert ref_f1[4] == 0.0 and ref_iou[4] == 0.0


def test_pixel_auc_equals_imdlbenco_trapezoid(batch):
    preds, masks, tp, tm = batch
    ref = imdlbenco_pixel_auc(tp, tm).numpy()
    ours = F.pixel_auc(list(preds), list(masks))
    np.testing.assert_allclose(ours.per_item, ref[:4], atol=1e-6)  # trapz in float64 vs sklearn's
    assert ours.value == pytest.approx(ref[:4].mean(), abs=1e-6)
    assert ref[4] == 0.0  # IMDLBenCo's value on an authentic image: bench skips it instead


def test_image_accuracy_and_auc_equal_imdlbenco():
    scores = torch.tensor([0.9, 0.5, 0.51, 0.2, 0.7, 0.05, 0.49, 0.95])  # 0.5 is authentic (strict >)
    labels = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    assert F.image_acc(scores.tolist(), labels.int().tolist()).value == pytest.approx(
        imdlbenco_image_accuracy(scores, labels), abs=1e-12)
    assert F.image_acc(scores.tolist(), labels.int().tolist()).value == pytest.approx(5 / 8)  # by hand
    assert F.image_auc(scores.tolist(), labels.int().tolist()).value == pytest.approx(
        roc_auc_score(labels.numpy(), scores.numpy()), abs=1e-12)


def test_f1_best_is_the_optimistic_max_over_thresholds(batch):
    """F1-best is not an IMDLBenCo evaluator (TruFor reports it): it must equal the max, over every candidate
    threshold t (each distinct score, 'score >= t'), of IMDLBenCo's F1 formula, and never be below F1 at 0.5."""
    preds, masks, tp, tm = batch
    ours = F.pixel_f1_best(list(preds), list(masks))
    f1_half = F.pixel_f1(list(preds), list(masks))
    for k, value in zip(ours.extra["image_indices"], ours.per_item):
        candidates = np.unique(preds[k])
        brute = max(float(imdlbenco_pixel_f1(tp[k:k + 1], tm[k:k + 1], threshold=np.nextafter(t, -1))[0])
                    for t in candidates)
        assert value == pytest.approx(brute, abs=1e-7)
    assert all(b >= f - 1e-12 for b, f in zip(ours.per_item, f1_half.per_item))
    assert "optimistic" in ours.protocol["threshold"]
