"""fd_dct8@patches (bench/metrics/patch_fd.py), the offline texture distance of the TAD-SR smoke runs: the DCT
basis against scipy's, the patch grid by hand, and the behaviours the smoke comparison relies on."""
from __future__ import annotations

import numpy as np
import pytest

from bench.metrics import compute
from bench.metrics.patch_fd import dct_matrix, patch_features


def test_dct_basis_is_scipys_orthonormal_dct_ii():
    from scipy.fft import dct

    c = dct_matrix(8)
    assert np.allclose(c, dct(np.eye(8), norm="ortho", axis=0))
    assert np.allclose(c @ c.T, np.eye(8))


def test_patch_grid_and_dc_removal():
    img = np.random.default_rng(0).integers(0, 256, (40, 36, 3), dtype=np.uint8)
    feats = patch_features(img, crop_border=4)
    # 32x28 after the crop: ((32-8)/4+1) x ((28-8)/4+1) = 7 x 6 patches, 63 AC coefficients each
    assert feats.shape == (42, 63)
    flat = np.full((16, 16, 3), 128, dtype=np.uint8)
    assert np.allclose(patch_features(flat), 0.0)  # a flat patch has no AC energy


def test_distance_is_zero_on_the_same_set_order_free_and_grows_with_blur():
    from scipy.ndimage import uniform_filter

    rng = np.random.default_rng(1)
    images = [np.clip(rng.normal(128, 40, (48, 48, 3)), 0, 255).astype(np.uint8) for _ in range(4)]
    fd = lambda preds: compute("fd_dct8@patches", preds=preds, targets=images, crop_border=4).value  # noqa: E731
    assert fd(images) == pytest.approx(0.0, abs=1e-6)
    assert fd(images[::-1]) == pytest.approx(0.0, abs=1e-6)
    blurred = [uniform_filter(im, size=(3, 3, 1)) for im in images]
    more = [uniform_filter(im, size=(5, 5, 1)) for im in images]
    assert 0 < fd(blurred) < fd(more)
