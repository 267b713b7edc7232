"""fd_dct8@patches: an offline distribution distance of local texture, for CPU smoke runs of SR papers.

What it stands for: the no-reference SR metrics (CLIPIQA, MUSIQ, MANIQA) and FID-type scores reward outputs
whose local textures look like real high-resolution images, whatever their pixel-wise error. Those need
downloaded network weights; this distance needs none. It compares the *distribution* of 8x8 luma patches of
the restored images with that of the ground-truth set: every 8x8 patch at stride 4 of the MATLAB Y channel
(BT.601, float64, [0, 255]) after a border crop, its mean removed, orthonormal 2-D DCT-II, the 63 AC
coefficients as a feature vector; then the Frechet distance between the two sets' Gaussian fits (float64,
bench.metrics.generative.frechet_distance). Blurry outputs lose AC energy and noisy ones gain it, so both move
the distance. It is NOT FID, not paired (a permutation of the images gives the same value) and its scale has
no meaning outside this protocol. Lower is better.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.metrics.base import MetricResult
from bench.registry import BenchError

PATCH = 8
STRIDE = 4


def dct_matrix(n: int = PATCH) -> np.ndarray:
    """Orthonormal DCT-II matrix C (rows are basis vectors): coefficients = C @ x @ C.T."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    c = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    c[0] /= np.sqrt(2.0)
    return c


def patch_features(image: np.ndarray, crop_border: int = 0) -> np.ndarray:
    """[N, 63] AC DCT coefficients of the 8x8 stride-4 luma patches of one uint8 HxWx3 image."""
    from numpy.lib.stride_tricks import sliding_window_view

    from bench.metrics.restoration import rgb_to_y_matlab

    y = rgb_to_y_matlab(np.asarray(image), round_y=False)
    if crop_border:
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    if min(y.shape) < PATCH:
        raise BenchError(f"fd_dct8@patches: image of {y.shape[0]}x{y.shape[1]} after the crop is below {PATCH}x{PATCH}")
    patches = sliding_window_view(y, (PATCH, PATCH))[::STRIDE, ::STRIDE].reshape(-1, PATCH, PATCH)
    c = dct_matrix()
    coeffs = np.einsum("ki,nij,lj->nkl", c, patches, c).reshape(len(patches), -1)
    return coeffs[:, 1:]  # the DC term is the patch mean, which carries no texture


def fd_dct8_patches(preds: Sequence[np.ndarray], targets: Sequence[np.ndarray], crop_border: int = 0) -> MetricResult:
    from bench.metrics.generative import frechet_distance

    if len(preds) == 0 or len(targets) == 0:
        raise BenchError("fd_dct8@patches needs at least one restored and one reference image")
    a = np.concatenate([patch_features(p, crop_border) for p in preds])
    b = np.concatenate([patch_features(t, crop_border) for t in targets])
    value = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    protocol: dict[str, Any] = {"patch": PATCH, "stride": STRIDE, "space": "MATLAB Y (BT.601), float64",
                                "features": "63 AC coefficients of the orthonormal 8x8 DCT-II",
                                "crop_border": crop_border, "patches": [len(a), len(b)]}
    return MetricResult(name="fd_dct8@patches", value=value, n=len(preds), per_item=None, protocol=protocol)
