"""The Real-ESRGAN second-order degradation (bench/data/realesrgan_degrade.py): kernels against independent
computations (scipy's multivariate normal, a numerical Bessel integral), and the seeded pipeline."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.data import realesrgan_degrade as rd


def _grid(size):
    ax = np.arange(size) - size // 2
    return np.meshgrid(ax, ax)


@pytest.mark.parametrize("sx,sy,theta", [(1.5, 1.5, 0.0), (2.0, 0.7, 0.6), (0.4, 2.5, -2.0)])
def test_gaussian_kernel_is_scipys_normal_density_on_the_grid(sx, sy, theta):
    from scipy.stats import multivariate_normal

    size = 21
    xx, yy = _grid(size)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    cov = rot @ np.diag([sx * sx, sy * sy]) @ rot.T
    pdf = multivariate_normal(mean=[0, 0], cov=cov).pdf(np.stack([xx, yy], -1))
    got = rd.gaussian_kernel(size, sx, sy, theta)
    assert got.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(got, pdf / pdf.sum(), atol=1e-12)


def test_generalized_and_plateau_kernels_by_hand():
    size, s = 7, 1.3
    # beta = 1: the generalized Gaussian is the Gaussian
    assert np.allclose(rd.generalized_gaussian_kernel(size, s, s, 0.0, 1.0), rd.gaussian_kernel(size, s, s))
    # plateau, isotropic: k(x) proportional to 1 / (1 + (|x|^2 / s^2)^beta); ratio of the (0, 1) tap to the centre
    beta = 1.7
    k = rd.plateau_kernel(size, s, s, 0.0, beta)
    assert k.sum() == pytest.approx(1.0)
    assert k[3, 4] / k[3, 3] == pytest.approx(1.0 / (1.0 + (1.0 / s ** 2) ** beta))
    g = rd.generalized_gaussian_kernel(size, s, s, 0.0, beta)
    assert g[3, 5] / g[3, 3] == pytest.approx(math.exp(-0.5 * (4.0 / s ** 2) ** beta))


def _bessel_j1(x: float) -> float:
    """J1(x) = (1/pi) int_0^pi cos(tau - x sin tau) dtau, by the trapezoid rule (independent of scipy.special)."""
    tau = np.linspace(0.0, np.pi, 20001)
    return float(np.trapezoid(np.cos(tau - x * np.sin(tau)), tau) / np.pi)


@pytest.mark.parametrize("cutoff", [np.pi / 3, 2.0, np.pi])
def test_sinc_kernel_matches_the_closed_form(cutoff):
    size = 13
    k = rd.sinc_kernel(size, cutoff)
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    c = size // 2
    # closed form, unnormalised: centre cutoff^2 / (4 pi); at radius r: cutoff J1(cutoff r) / (2 pi r)
    for dr, dc in [(0, 1), (1, 1), (0, 3), (2, 3)]:
        r = math.hypot(dr, dc)
        want = (cutoff * _bessel_j1(cutoff * r) / (2 * math.pi * r)) / (cutoff ** 2 / (4 * math.pi))
        assert k[c + dr, c + dc] / k[c, c] == pytest.approx(want, rel=1e-6)
    padded = rd.sinc_kernel(size, cutoff, pad_to=21)
    assert padded.shape == (21, 21) and np.allclose(padded[4:17, 4:17], k)


def test_random_kernels_are_normalised_and_padded():
    cfg = rd.DegradationConfig()
    rng = np.random.default_rng(0)
    for _ in range(50):
        k = rd.random_kernel(rng, cfg.first, cfg)
        assert k.shape == (21, 21) and k.sum() == pytest.approx(1.0, abs=1e-9)


def test_filtering_with_a_pulse_is_the_identity_and_jpeg_95_is_close():
    img = torch.rand(3, 24, 24)
    assert torch.allclose(rd.filter2d(img, rd.pulse_kernel(21)), img, atol=1e-6)
    smooth = torch.linspace(0, 1, 24).expand(3, 24, 24).contiguous()
    assert (rd.jpeg(smooth, 95) - smooth).abs().mean() < 0.02


def test_degradation_is_seeded_per_image_and_has_the_lr_size():
    from bench.data.smoke import photos

    images = photos("train", 64)[:3]
    a = rd.degrade_batch(images, seed=5)
    b = rd.degrade_batch(images, seed=5)
    c = rd.degrade_batch(images, seed=6)
    assert all(x.shape == (16, 16, 3) and x.dtype == np.uint8 for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))
    # image i depends on (seed, i) only, not on the other images of the batch
    assert np.array_equal(rd.degrade_batch(images[:2], seed=5)[1], a[1])
    with pytest.raises(ValueError, match="multiple of the scale"):
        rd.degrade(images[0][:63], np.random.default_rng(0))
