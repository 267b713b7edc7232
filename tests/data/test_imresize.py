"""MATLAB-compatible bicubic resize: hand-derived MATLAB values and the documented properties."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bench.data.imresize import bicubic_lr, cubic, imresize, modcrop
from bench.registry import BenchError

# MATLAB's x2 antialiased bicubic taps: h(d) = 0.5 * k(0.5 d) at d = +-0.5, +-1.5, +-2.5, +-3.5, with
# k(0.25) = 111/128, k(0.75) = 29/128, k(1.25) = -9/128, k(1.75) = -3/128 (Keys, a = -0.5), so in 256ths:
HALF_TAPS = np.array([-3, -9, 29, 111, 111, 29, -9, -3]) / 256.0


def test_cubic_kernel_matches_keys_a_minus_half():
    x = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, -0.5, -1.5])
    # 1.5|x|^3 - 2.5|x|^2 + 1 on [0, 1]; -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2 on (1, 2]; 0 beyond.
    want = np.array([1.0, 111 / 128, 0.5625, 29 / 128, 0.0, -9 / 128, -0.0625, -3 / 128, 0.0, 0.0, 0.5625, -0.0625])
    np.testing.assert_allclose(cubic(x), want, rtol=0, atol=1e-15)
    assert HALF_TAPS.sum() == 1.0


def test_downscale_by_two_of_an_impulse_gives_matlab_taps():
    row = np.zeros(32)
    row[16] = 1.0  # 1-based position 17
    out = imresize(np.tile(row, (3, 1)), (1.0, 0.5))[1]
    # Output u (1-based) reads input coordinate 2u - 0.5; its weight on position 17 is h(2u - 0.5 - 17),
    # so u = 7, 8, 9, 10 get taps -3, 29, 111, -9 (/256) and every other output is 0.
    want = np.zeros(16)
    want[[6, 7, 8, 9]] = np.array([-3, 29, 111, -9]) / 256.0
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-15)
    assert out.shape == (16,)


def test_ramp_downscale_uses_symmetric_borders():
    ramp = np.arange(1.0, 17.0)[None, :].repeat(2, axis=0)  # 1..16
    out = imresize(ramp, (1.0, 0.5))[0]
    # u = 1 reads x = 1.5 over 1-based taps -2..5, which MATLAB's symmetric extension maps to the values
    # 3, 2, 1, 1, 2, 3, 4, 5: (-3*3 - 9*2 + 29*1 + 111*1 + 111*2 + 29*3 - 9*4 - 3*5) / 256 = 371/256.
    assert out[0] == pytest.approx(371 / 256, abs=1e-14)
    # u = 2 reads x = 3.5 over taps 0..7; only tap 0 (weight -3/256) is mirrored, reading 1 instead of 0.
    assert out[1] == pytest.approx(3.5 - 3 / 256, abs=1e-14)
    # From u = 3 on, every tap is inside: the output sits on the ramp at x = 2u - 0.5.
    np.testing.assert_allclose(out[2:6], [5.5, 7.5, 9.5, 11.5], rtol=0, atol=1e-13)
    # The last output mirrors the first: 17 - 371/256.
    assert out[7] == pytest.approx(17 - 371 / 256, abs=1e-13)


def _matlab_reference(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB's imresize algorithm written out with loops and 1-based indices (an independent check of the
    vectorised implementation): per axis, weights h(x - j) over j = floor(x - w/2) + 0..ceil(w)+1,
    normalised, symmetric-extended indices."""
    def kernel_1d(n_in: int) -> np.ndarray:
        n_out = math.ceil(round(n_in * scale, 9))
        width = 4.0 / scale if scale < 1 else 4.0
        h = (lambda d: scale * cubic(np.array(scale * d))) if scale < 1 else (lambda d: cubic(np.array(d)))
        m = np.zeros((n_out, n_in))
        for u in range(1, n_out + 1):
            x = u / scale + 0.5 * (1 - 1 / scale)
            left = math.floor(x - width / 2)
            taps = [(j, float(h(x - j))) for j in range(left, left + math.ceil(width) + 2)]
            total = sum(w for _, w in taps)
            for j, w in taps:
                k = (j - 1) % (2 * n_in)  # position in [1..n, n..1]
                src = k if k < n_in else 2 * n_in - 1 - k
                m[u - 1, src] += w / total
        return m

    a = kernel_1d(img.shape[0])
    b = kernel_1d(img.shape[1])
    return np.einsum("ui,ij...,vj->uv...", a, img.astype(np.float64), b)


@pytest.mark.parametrize("scale", [0.5, 1 / 3, 0.25, 0.37, 2.0, 3.0])
def test_matches_loop_reference_on_random_colour_image(scale):
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, size=(13, 17, 3))
    np.testing.assert_allclose(imresize(img, scale), _matlab_reference(img, scale), rtol=0, atol=1e-10)


@pytest.mark.parametrize("scale", [0.5, 1 / 3, 0.6, 2.0])
def test_constant_image_stays_constant(scale):
    img = np.full((20, 15, 3), 77.25)
    out = imresize(img, scale)
    np.testing.assert_allclose(out, 77.25, rtol=0, atol=1e-12)
    u8 = imresize(np.full((20, 15), 200, dtype=np.uint8), scale)
    assert u8.dtype == np.uint8 and np.all(u8 == 200)


@pytest.mark.parametrize("scale", [1 / 3, 0.5, 2.0])
def test_linear_ramp_is_linear_away_from_borders(scale):
    yy, xx = np.mgrid[0:48, 0:60].astype(np.float64)
    img = 3.0 * xx - 2.0 * yy + 5.0
    out = imresize(img, scale)
    # Output (r, c) (0-based) samples input coordinate (c + 0.5) / scale - 0.5 (0-based) on each axis.
    rows = (np.arange(out.shape[0]) + 0.5) / scale - 0.5
    cols = (np.arange(out.shape[1]) + 0.5) / scale - 0.5
    want = 3.0 * cols[None, :] - 2.0 * rows[:, None] + 5.0
    margin = math.ceil(3 * max(scale, 1.0 / scale))  # beyond the kernel's reach of the border
    inner = (slice(margin, -margin), slice(margin, -margin))
    np.testing.assert_allclose(out[inner], want[inner], rtol=0, atol=1e-9)
    assert not np.allclose(out[0, 0], want[0, 0], atol=1e-6)  # the symmetric border bends the ramp


def test_output_size_rounds_up_like_matlab_and_ignores_float_noise():
    assert imresize(np.zeros((7, 9)), 0.5).shape == (4, 5)
    assert imresize(np.zeros((300, 30)), 1 / 3).shape == (100, 10)
    assert imresize(np.zeros((10, 10)), output_shape=(4, 7)).shape == (4, 7)


def test_uint8_input_is_rounded_and_saturated():
    img = np.zeros((16, 16), dtype=np.uint8)
    img[:, 8:] = 255
    out = imresize(img, 0.5)
    assert out.dtype == np.uint8
    ref = _matlab_reference(img, 0.5)
    assert ref.min() < 0 and ref.max() > 255  # the kernel's negative lobes over/undershoot the step
    np.testing.assert_array_equal(out, np.clip(np.floor(ref + 0.5), 0, 255).astype(np.uint8))


def test_bicubic_lr_crops_to_a_multiple_of_the_scale():
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, size=(31, 26, 3), dtype=np.uint8)
    cropped, lr = bicubic_lr(hr, 3)
    assert cropped.shape == (30, 24, 3) and lr.shape == (10, 8, 3) and lr.dtype == np.uint8
    np.testing.assert_array_equal(cropped, hr[:30, :24])
    np.testing.assert_array_equal(lr, imresize(modcrop(hr, 3), 1 / 3))


def test_bad_arguments_raise_one_line_errors():
    with pytest.raises(BenchError, match="exactly one of"):
        imresize(np.zeros((4, 4)))
    with pytest.raises(BenchError, match="HW or HWC"):
        imresize(np.zeros(4), 0.5)
    with pytest.raises(BenchError, match="positive integer"):
        bicubic_lr(np.zeros((4, 4)), 1.5)
