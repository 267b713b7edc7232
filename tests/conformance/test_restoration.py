"""PSNR/SSIM dialects against independent references: a NumPy/scikit-image implementation of MATLAB's formulas
written here, pyiqa's published TID2013 calibration values, and hand calculations of crop and rounding."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bench.metrics import restoration as R
from bench.registry import BenchError


# --- independent reference (MATLAB formulas, written out here) --------------------------------------------------
def matlab_y(img_uint8: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr on uint8, first channel: float formula, uint8 conversion rounds halves up.

    Non-tie fractional parts are multiples of 1/255000 away from .5, so the 1e-9 nudge only decides exact ties."""
    rgb = img_uint8.astype(np.float64)
    y = 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0
    return np.floor(y + 0.5 + 1e-9)


def crop(img: np.ndarray, b: int) -> np.ndarray:
    return img[b:-b, b:-b] if b else img


def ref_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(peak_signal_noise_ratio(b, a, data_range=255))


def ref_ssim(a: np.ndarray, b: np.ndarray) -> float:
    # MATLAB ssim_index: 11x11 Gaussian sigma 1.5 (skimage: truncate 3.5 -> radius 5), population covariance
    kwargs = dict(data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    if a.ndim == 3:
        kwargs["channel_axis"] = 2
    return float(structural_similarity(b, a, **kwargs))


@pytest.fixture(scope="module")
def photo_pairs():
    """Real photographs shipped with scikit-image and deterministic degraded versions (blur + noise)."""
    from scipy.ndimage import uniform_filter

    rng = np.random.default_rng(0)
    pairs = []
    for image in (skimage.data.astronaut()[100:228, 150:310], skimage.data.coffee()[50:170, 200:340],
                  skimage.data.chelsea()[60:180, 120:250]):
        blurred = uniform_filter(image.astype(np.float64), size=(3, 3, 1))
        noisy = np.clip(np.round(blurred + rng.normal(0, 6, image.shape)), 0, 255).astype(np.uint8)
        pairs.append((noisy, image))
    return pairs


# --- Y conversion and rounding ------------------------------------------------------------------------------------
def test_y_of_primaries_by_hand():
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8)
    # 16 + 65.481 = 81.481 -> 81; 16 + 128.553 = 144.553 -> 145; 16 + 24.966 = 40.966 -> 41; white 235
    assert R.rgb_to_y_matlab(img).tolist() == [[16.0, 235.0, 81.0, 145.0, 41.0]]
    unrounded = R.rgb_to_y_matlab(img, round_y=False)
    assert unrounded[0, 2] == pytest.approx(81.481, abs=1e-12)


def test_exact_halves_round_up_like_matlab_and_pyiqa_disagrees_there():
    # 65481 R + 128553 G + 24966 B = 127500 (mod 255000) puts Y exactly on .5: find every such colour
    v = np.arange(256, dtype=np.int64)
    n = 65481 * v[:, None, None] + 128553 * v[None, :, None] + 24966 * v[None, None, :]
    ties = np.argwhere(n % 255000 == 127500)
    assert len(ties) == 194
    exact = 16 + n[tuple(ties.T)] / 255000  # k + 0.5 (exact in binary)
    assert np.all(exact % 1 == 0.5)
    pixels = ties.astype(np.uint8)[None]  # a 1 x 194 RGB image
    assert np.array_equal(R.rgb_to_y_matlab(pixels)[0], np.floor(exact) + 1)
    # pyiqa converts in floating point and rounds with torch.round: on most of these colours it lands one grey
    # level lower (157 of 194 in float64 here), which is why the dialect computes Y itself
    import torch
    from pyiqa.utils.color_util import to_y_channel

    t = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).double()[None] / 255.0
    pyiqa_y = to_y_channel(t, 255.0, "ycbcr")[0, 0, 0].numpy()
    disagree = pyiqa_y != R.rgb_to_y_matlab(pixels)[0]
    assert disagree.sum() > 100
    assert np.all(pyiqa_y[disagree] == np.floor(exact)[disagree])


def test_float_inputs_are_quantised_like_tensor2img():
    target = np.full((16, 16, 3), 100, np.uint8)
    pred01 = np.full((16, 16, 3), 110.49 / 255.0)  # -> 110
    pred255 = np.full((16, 16, 3), 110.51)  # -> 111
    assert R.psnr_rgb(pred01, target.astype(np.float64) / 255, float_range=1.0).value == pytest.approx(
        10 * np.log10(255 ** 2 / 100.0), abs=1e-9)
    assert R.psnr_rgb(pred255, target.astype(np.float64), float_range=255.0).value == pytest.approx(
        10 * np.log10(255 ** 2 / 121.0), abs=1e-9)
    with pytest.raises(BenchError, match="float_range"):
        R.psnr_rgb(pred01, target)


# --- crop by hand -------------------------------------------------------------------------------------------------
def test_crop_border_by_hand():
    ref = np.full((20, 20), 128, np.uint8)
    pred = ref.copy()
    pred[0, 0] = 138  # one border pixel off by 10 (grey image: its own luma)
    pred[5, 7] = 131  # one interior pixel off by 3
    full = R.psnr_y_matlab(pred, ref, crop_border=0).value
    assert full == pytest.approx(10 * np.log10(255 ** 2 / ((100 + 9) / 400)), abs=1e-9)
    cropped = R.psnr_y_matlab(pred, ref, crop_border=2).value
    assert cropped == pytest.approx(10 * np.log10(255 ** 2 / (9 / 256)), abs=1e-9)
    assert R.psnr_y_matlab(pred, ref, crop_border=6).value == np.inf  # the difference pixel (5,7) is cropped
    with pytest.raises(BenchError, match="removes the whole"):
        R.psnr_y_matlab(pred, ref, crop_border=10)


# --- real photographs vs the independent reference ----------------------------------------------------------------
@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_psnr_ssim_y_and_rgb_match_independent_reference(photo_pairs, scale):
    preds, refs = [p for p, _ in photo_pairs], [r for _, r in photo_pairs]
    psnr_y = R.psnr_y_matlab(preds, refs, crop_border=scale)
    ssim_y = R.ssim_y_matlab(preds, refs, crop_border=scale)
    psnr_c = R.psnr_rgb(preds, refs, crop_border=scale)
    ssim_c = R.ssim_rgb(preds, refs, crop_border=scale)
    for i, (p, r) in enumerate(photo_pairs):
        yp, yr = crop(matlab_y(p), scale), crop(matlab_y(r), scale)
        assert psnr_y.per_item[i] == pytest.approx(ref_psnr(yp, yr), abs=1e-6)
        assert ssim_y.per_item[i] == pytest.approx(ref_ssim(yp, yr), abs=1e-4)
        cp, cr = crop(p, scale).astype(np.float64), crop(r, scale).astype(np.float64)
        assert psnr_c.per_item[i] == pytest.approx(ref_psnr(cp, cr), abs=1e-6)
        assert ssim_c.per_item[i] == pytest.approx(ref_ssim(cp, cr), abs=1e-4)
    assert psnr_y.value == pytest.approx(np.mean(psnr_y.per_item), abs=1e-12)
    assert psnr_y.n == 3 and psnr_y.protocol["crop_border"] == scale
    # Y and RGB are different conventions: on these photos they differ by far more than any tolerance
    assert abs(psnr_y.value - psnr_c.value) > 0.1


def test_basicsr_dialect_differs_only_by_y_rounding(photo_pairs):
    p, r = photo_pairs[0]
    y_float = lambda im: 16.0 + (65.481 * im[..., 0] + 128.553 * im[..., 1] + 24.966 * im[..., 2]) / 255.0
    expected = ref_psnr(y_float(p.astype(np.float64)), y_float(r.astype(np.float64)))
    assert R.psnr_y_basicsr(p, r).value == pytest.approx(expected, abs=1e-6)
    assert R.psnr_y_basicsr(p, r).value != R.psnr_y_matlab(p, r).value


# --- pyiqa's golden TID2013 values (images ship in the pyiqa wheel) ---------------------------------------------
TID = ["I03", "I04", "I06", "I08", "I19"]
# dependencies.md 2.2 = pyiqa ResultsCalibra/calibration_summary.csv "(ours)" rows
GOLDEN_PSNR = [21.1136, 20.9872, 27.0138, 23.3002, 21.6186]
GOLDEN_SSIM_YIQ = [0.6997, 0.9978, 0.9989, 0.9671, 0.6522]


@pytest.fixture(scope="module")
def tid_pairs():
    import pyiqa

    root = Path(pyiqa.__file__).parent.parent / "ResultsCalibra"
    if not root.is_dir():
        pytest.skip("pyiqa wheel without ResultsCalibra")
    load = lambda p: np.asarray(Image.open(p).convert("RGB"))
    return [(load(root / "dist_dir" / f"{n}.bmp"), load(root / "ref_dir" / f"{n}.bmp")) for n in TID]


def test_psnr_rgb_reproduces_pyiqa_calibration(tid_pairs):
    result = R.psnr_rgb([d for d, _ in tid_pairs], [r for _, r in tid_pairs])
    for value, golden, (d, r) in zip(result.per_item, GOLDEN_PSNR, tid_pairs):
        # pyiqa's own run is float32 with eps=1e-8 on a [0,1] scale: it sits within 1e-4 dB of the exact value
        assert value == pytest.approx(golden, abs=1.5e-4)
        assert value == pytest.approx(ref_psnr(d.astype(np.float64), r.astype(np.float64)), abs=1e-9)


def test_ssim_core_reproduces_pyiqa_calibration_when_given_pyiqa_conventions(tid_pairs):
    """pyiqa's default SSIM = YIQ luma rounded half-to-even, cs clamped at 0: with those two switches our core
    reproduces its calibration values; the MATLAB dialect (no clamp) differs on the noisy I03/I08/I19."""
    for (d, r), golden in zip(tid_pairs, GOLDEN_SSIM_YIQ):
        yiq = lambda im: np.round(im.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))
        assert R.ssim_matlab_2d(yiq(d), yiq(r), clamp_negative_cs=True) == pytest.approx(golden, abs=6e-5)
    d, r = tid_pairs[0]
    y_d, y_r = matlab_y(d), matlab_y(r)
    assert R.ssim_matlab_2d(y_d, y_r) == pytest.approx(ref_ssim(y_d, y_r), abs=1e-9)
    assert R.ssim_matlab_2d(y_d, y_r, clamp_negative_cs=True) - R.ssim_matlab_2d(y_d, y_r) > 1e-4


def test_pyiqa_ycbcr_ssim_differs_from_matlab_only_by_the_clamp(tid_pairs):
    import pyiqa
    import torch

    d, r = tid_pairs[0]
    to_t = lambda im: torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1))).double()[None] / 255.0
    metric = pyiqa.create_metric("ssim", test_y_channel=True, color_space="ycbcr", device=torch.device("cpu"))
    pyiqa_value = float(metric(to_t(d), to_t(r)))
    clamped = R.ssim_matlab_2d(R.rgb_to_y_matlab(d), R.rgb_to_y_matlab(r), clamp_negative_cs=True)
    assert pyiqa_value == pytest.approx(clamped, abs=2e-6)
    assert abs(pyiqa_value - R.ssim_y_matlab(d, r).value) > 1e-4


# --- input errors and records -------------------------------------------------------------------------------------
def test_bad_inputs_give_one_line_errors():
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(BenchError, match="differ in shape"):
        R.psnr_rgb(a, np.zeros((16, 18, 3), np.uint8))
    with pytest.raises(BenchError, match="CHW"):
        R.psnr_rgb(np.zeros((3, 16, 16), np.uint8), np.zeros((3, 16, 16), np.uint8))
    with pytest.raises(BenchError, match="2 predicted images but 1"):
        R.psnr_rgb([a, a], [a])
    with pytest.raises(BenchError, match="at least 11x11"):
        R.ssim_rgb(np.zeros((12, 12, 3), np.uint8), np.zeros((12, 12, 3), np.uint8), crop_border=1)


def test_protocol_records_convention_and_self_ensemble(photo_pairs):
    p, r = photo_pairs[0]
    result = R.ssim_y_matlab(p, r, crop_border=4, self_ensemble=True)
    assert result.protocol["self_ensemble_x8"] is True
    assert result.protocol["crop_border"] == 4 and result.protocol["dtype"] == "float64"
    assert "rgb2ycbcr" in result.protocol["space"] and result.protocol["y_rounding"].startswith("uint8")
    assert result.per_item == [result.value]
