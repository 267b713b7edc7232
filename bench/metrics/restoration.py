"""Restoration / super-resolution dialects: PSNR and SSIM on MATLAB's Y or on RGB, and weight-gated pyiqa IQA.

Inputs are HWC images (uint8, or float with an explicit ``float_range``): one image, an NHWC array, or a list of
images of possibly different sizes. Every result carries per-image values and the full protocol.

The MATLAB convention (``psnr_y@matlab``, ``ssim_y@matlab``), as the SR papers' evaluation scripts use it:
1. quantise to uint8 first (float model outputs: ``x * 255 / float_range``, clip, round half to even, exactly
   BasicSR's ``tensor2img``); uint8 inputs are used as they are;
2. Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 (BT.601 limited range, MATLAB ``rgb2ycbcr``), which MATLAB
   returns as uint8 for uint8 input: we round it too, in exact integer arithmetic, halves upwards like MATLAB's
   uint8 conversion. (194 of the 2^24 RGB colours fall exactly on .5; pyiqa's ``to_y_channel`` converts in
   floating point and rounds with torch.round, which puts 157 of them one grey level lower in float64: that is
   why we compute Y ourselves.)
3. crop ``crop_border`` (= the SR scale) pixels from every side;
4. float64 arithmetic; PSNR with L = 255 through pyiqa's ``psnr`` function (eps = 0, so identical images give
   inf as in MATLAB); SSIM as MATLAB's ``ssim_index``: 11x11 Gaussian window, sigma 1.5, "valid" filtering,
   K = (0.01, 0.03), L = 255, no downsampling. pyiqa's SSIM clamps the contrast-structure term at 0
   (``F.relu``), which ``ssim_index`` does not; on noisy images that changes the 4th decimal (TID2013 I03:
   0.7341 vs 0.7339), so SSIM is our own float64 code (verified against scikit-image in tests/conformance);
5. mean over images.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import types
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

import numpy as np

from bench.metrics import _assets
from bench.metrics.base import MetricResult, check_same_length, library_version, mean_of
from bench.registry import BenchError

# MATLAB rgb2ycbcr's first row times 1000: Y*255000 = 255000*16 + 65481 R + 128553 G + 24966 B (exact integers).
_Y_WEIGHTS_X1000 = (65481, 128553, 24966)
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K = (0.01, 0.03)


# ---------------------------------------------------------------------------------------------------------------
# input handling
# ---------------------------------------------------------------------------------------------------------------
def as_image_list(images: Any, what: str = "images") -> list[np.ndarray]:
    """One HWC/HW image, an NHWC array or a sequence of images -> list of HWC arrays (no copy when possible)."""
    if hasattr(images, "detach"):  # a torch tensor: metrics work on host memory
        images = images.detach().cpu().numpy()
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            return [np.asarray(im) for im in images]
        if images.ndim in (2, 3):
            return [images]
        raise BenchError(f"{what}: expected HWC/HW images or an NHWC batch, got an array of shape {images.shape}")
    if isinstance(images, (list, tuple)):
        return [np.asarray(im.detach().cpu().numpy() if hasattr(im, "detach") else im) for im in images]
    raise BenchError(f"{what}: expected numpy arrays (HWC) or a list of them, got {type(images).__name__}")


def _check_hwc(img: np.ndarray, what: str) -> np.ndarray:
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3):
        hint = " (it looks CHW: pass HWC)" if img.ndim == 3 and img.shape[0] in (1, 3) else ""
        raise BenchError(f"{what}: expected an HxWx3 or HxW image, got shape {img.shape}{hint}")
    return img


def quantize_uint8(img: np.ndarray, float_range: float | None, what: str = "image") -> np.ndarray:
    """uint8 stays as is; a float image in [0, float_range] becomes uint8 like BasicSR's tensor2img."""
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.bool_ or not np.issubdtype(img.dtype, np.floating):
        raise BenchError(f"{what}: dtype {img.dtype} is not supported; pass uint8, or float with float_range")
    if float_range is None:
        raise BenchError(f"{what} is float ({img.dtype}): say what its range is with float_range=1.0 or 255.0")
    scaled = np.clip(img.astype(np.float64) * (255.0 / float_range), 0.0, 255.0)
    return np.round(scaled).astype(np.uint8)  # np.round: half to even, as BasicSR's tensor2img


def rgb_to_y_matlab(img: np.ndarray, round_y: bool = True) -> np.ndarray:
    """BT.601 limited-range luma of a uint8 HxWx3 image as float64 HxW, exactly as MATLAB's rgb2ycbcr.

    round_y=True returns MATLAB's uint8 result (exact integer arithmetic, .5 rounded up); round_y=False keeps the
    unrounded float64 value (BasicSR's convention, for reference).
    """
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise BenchError(f"rgb_to_y_matlab expects a uint8 HxWx3 image, got {img.dtype} {img.shape}")
    rgb = img.astype(np.int64)
    wr, wg, wb = _Y_WEIGHTS_X1000
    scaled = wr * rgb[..., 0] + wg * rgb[..., 1] + wb * rgb[..., 2]  # = 255000 * (Y - 16)
    if round_y:
        return (16 + (scaled + 127500) // 255000).astype(np.float64)
    return 16.0 + scaled.astype(np.float64) / 255000.0


def crop_border_of(img: np.ndarray, border: int) -> np.ndarray:
    if border < 0:
        raise BenchError(f"crop_border must be >= 0, got {border}")
    if border == 0:
        return img
    if 2 * border >= min(img.shape[0], img.shape[1]):
        raise BenchError(f"crop_border={border} removes the whole {img.shape[0]}x{img.shape[1]} image")
    return img[border:-border, border:-border]


def _prepared_pairs(preds: Any, targets: Any, *, space: str, crop_border: int, float_range: float | None,
                    round_y: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield float64 (pred, target) pairs, HxW for space='y', HxWxC for space='rgb', already cropped."""
    pred_list, target_list = as_image_list(preds, "preds"), as_image_list(targets, "targets")
    check_same_length(pred_list, target_list, "images")
    for i, (p, t) in enumerate(zip(pred_list, target_list)):
        p = _check_hwc(quantize_uint8(p, float_range, f"preds[{i}]"), f"preds[{i}]")
        t = _check_hwc(quantize_uint8(t, float_range, f"targets[{i}]"), f"targets[{i}]")
        if p.shape != t.shape:
            raise BenchError(f"image {i}: prediction {p.shape} and reference {t.shape} differ in shape "
                             f"(crop the output to the reference size first)")
        if space == "y":
            if p.shape[2] == 3:
                p, t = rgb_to_y_matlab(p, round_y), rgb_to_y_matlab(t, round_y)
            else:  # a grey image is its own luma
                p, t = p[..., 0].astype(np.float64), t[..., 0].astype(np.float64)
        else:
            p, t = p.astype(np.float64), t.astype(np.float64)
        yield crop_border_of(p, crop_border), crop_border_of(t, crop_border)


# ---------------------------------------------------------------------------------------------------------------
# PSNR / SSIM arithmetic
# ---------------------------------------------------------------------------------------------------------------
def psnr_float64(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """PSNR of two float64 arrays through pyiqa's psnr function (MSE pooled over all pixels and channels)."""
    import torch
    from pyiqa.archs.psnr_arch import psnr as pyiqa_psnr

    def to_nchw(x: np.ndarray) -> torch.Tensor:
        x = x[:, :, None] if x.ndim == 2 else x
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]

    value = pyiqa_psnr(to_nchw(a), to_nchw(b), test_y_channel=False, data_range=data_range, eps=0.0)
    return float(value.item())


def _gaussian_1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    # MATLAB fspecial('gaussian', 11, 1.5) is the outer product of this normalised 1-D kernel with itself.
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """filter2(window, x, 'valid') for a separable window: correlate rows then columns, keep full overlaps."""
    from scipy.ndimage import correlate1d

    half = len(g) // 2
    out = correlate1d(correlate1d(x, g, axis=0, mode="constant"), g, axis=1, mode="constant")
    return out[half:-half, half:-half]


def ssim_matlab_2d(a: np.ndarray, b: np.ndarray, data_range: float = 255.0,
                   clamp_negative_cs: bool = False) -> float:
    """Mean SSIM of two float64 HxW arrays as MATLAB's ssim_index (no downsampling).

    clamp_negative_cs=True applies pyiqa's F.relu to the contrast-structure term; it is not part of the MATLAB
    convention and exists so tests can show that this is the only difference from pyiqa.
    """
    if min(a.shape) < SSIM_WINDOW:
        raise BenchError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} after cropping, got {a.shape}")
    g = _gaussian_1d()
    c1, c2 = (SSIM_K[0] * data_range) ** 2, (SSIM_K[1] * data_range) ** 2
    mu1, mu2 = _filter_valid(a, g), _filter_valid(b, g)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = _filter_valid(a * a, g) - mu1_sq
    sigma2_sq = _filter_valid(b * b, g) - mu2_sq
    sigma12 = _filter_valid(a * b, g) - mu12
    cs_map = (2.0 * sigma12 + c2) / (sigma1_sq + sigma2_sq + c2)
    if clamp_negative_cs:
        cs_map = np.maximum(cs_map, 0.0)
    ssim_map = (2.0 * mu12 + c1) / (mu1_sq + mu2_sq + c1) * cs_map
    return float(ssim_map.mean())


def ssim_float64(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of HxW or HxWxC float64 arrays; colour images: mean of the per-channel SSIMs (BasicSR, MATLAB)."""
    if a.ndim == 2:
        return ssim_matlab_2d(a, b)
    return float(np.mean([ssim_matlab_2d(a[..., c], b[..., c]) for c in range(a.shape[2])]))


# ---------------------------------------------------------------------------------------------------------------
# dialects
# ---------------------------------------------------------------------------------------------------------------
def _protocol(space: str, crop_border: int, float_range: float | None, self_ensemble: bool,
              implementation: str, round_y: bool = True) -> dict[str, Any]:
    protocol: dict[str, Any] = {
        "quantize": "uint8 inputs as given; float inputs: x*255/float_range, clip [0,255], round half to even",
        "float_range": float_range,
        "crop_border": crop_border,
        "dtype": "float64",
        "data_range": 255,
        "aggregate": "mean over images",
        "implementation": implementation,
        # declared by the caller (it is how the predictions were made), recorded so tables never mix the two
        "self_ensemble_x8": bool(self_ensemble),
    }
    if space == "y":
        protocol["space"] = ("Y of BT.601 limited range (MATLAB rgb2ycbcr: Y = 16 + (65.481 R + 128.553 G + "
                             "24.966 B)/255); grey images used as they are")
        protocol["y_rounding"] = "uint8 as MATLAB (exact, .5 up)" if round_y else "none (float64 Y)"
    else:
        protocol["space"] = "RGB, all channels"
    return protocol


def _evaluate(name: str, preds: Any, targets: Any, *, space: str, crop_border: int, float_range: float | None,
              self_ensemble: bool, pair_fn: Callable[[np.ndarray, np.ndarray], float], implementation: str,
              extra_protocol: dict[str, Any] | None = None, round_y: bool = True) -> MetricResult:
    values = [pair_fn(p, t) for p, t in _prepared_pairs(preds, targets, space=space, crop_border=crop_border,
                                                        float_range=float_range, round_y=round_y)]
    protocol = _protocol(space, crop_border, float_range, self_ensemble, implementation, round_y)
    protocol.update(extra_protocol or {})
    return MetricResult(name=name, value=mean_of(values), n=len(values), per_item=values, protocol=protocol)


_PSNR_IMPL = f"pyiqa {library_version('pyiqa')} archs.psnr_arch.psnr(test_y_channel=False, data_range=255, eps=0)"
_SSIM_IMPL = "bench float64 ssim_index (scipy.ndimage separable Gaussian, valid region)"
_SSIM_PROTOCOL = {"ssim_window": "11x11 Gaussian, sigma 1.5, valid", "ssim_K": list(SSIM_K), "downsample": False}


def psnr_y_matlab(preds: Any, targets: Any, crop_border: int = 0, float_range: float | None = None,
                  self_ensemble: bool = False) -> MetricResult:
    """``psnr_y@matlab``: PSNR (dB) on MATLAB's uint8 Y channel, border crop = SR scale, mean over images."""
    return _evaluate("psnr_y@matlab", preds, targets, space="y", crop_border=crop_border, float_range=float_range,
                     self_ensemble=self_ensemble, pair_fn=psnr_float64, implementation=_PSNR_IMPL)


def ssim_y_matlab(preds: Any, targets: Any, crop_border: int = 0, float_range: float | None = None,
                  self_ensemble: bool = False) -> MetricResult:
    """``ssim_y@matlab``: MATLAB ssim_index on MATLAB's uint8 Y channel, border crop = SR scale."""
    return _evaluate("ssim_y@matlab", preds, targets, space="y", crop_border=crop_border, float_range=float_range,
                     self_ensemble=self_ensemble, pair_fn=ssim_float64, implementation=_SSIM_IMPL,
                     extra_protocol=_SSIM_PROTOCOL)


def psnr_y_basicsr(preds: Any, targets: Any, crop_border: int = 0, float_range: float | None = None,
                   self_ensemble: bool = False) -> MetricResult:
    """``psnr_y@basicsr``: as psnr_y@matlab but Y is not rounded (BasicSR's calculate_psnr, test_y_channel)."""
    return _evaluate("psnr_y@basicsr", preds, targets, space="y", crop_border=crop_border, float_range=float_range,
                     self_ensemble=self_ensemble, pair_fn=psnr_float64, implementation=_PSNR_IMPL, round_y=False)


def ssim_y_basicsr(preds: Any, targets: Any, crop_border: int = 0, float_range: float | None = None,
                   self_ensemble: bool = False) -> MetricResult:
    """``ssim_y@basicsr``: as ssim_y@matlab but Y is not rounded (BasicSR's calculate_ssim, test_y_channel)."""
    return _evaluate("ssim_y@basicsr", preds, targets, space="y", crop_border=crop_border, float_range=float_range,
                     self_ensemble=self_ensemble, pair_fn=ssim_float64, implementation=_SSIM_IMPL,
                     extra_protocol=_SSIM_PROTOCOL, round_y=False)


def psnr_rgb(preds: Any, targets: Any, crop_border: int = 0, float_range: float | None = None,
             self_ensemble: bool = False) -> MetricResult:
    """``psnr_rgb``: PSNR (dB) with the MSE pooled over the three channels, uint8-rounded inputs."""
    return _evaluate("psnr_rgb", preds, targets, space="rgb", crop_border=crop_border, float_range=float_range,
                     self_ensemble=self_ensemble, pair_fn=psnr_float64, implementation=_PSNR_IMPL)


def ssim_rgb(preds: Any, targets: Any, crop_border: int = 0, float_range: float | None = None,
             self_ensemble: bool = False) -> MetricResult:
    """``ssim_rgb``: ssim_index per channel, averaged over R, G, B."""
    return _evaluate("ssim_rgb", preds, targets, space="rgb", crop_border=crop_border, float_range=float_range,
                     self_ensemble=self_ensemble, pair_fn=ssim_float64, implementation=_SSIM_IMPL,
                     extra_protocol=_SSIM_PROTOCOL)


# ---------------------------------------------------------------------------------------------------------------
# weight-gated pyiqa metrics
# ---------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _torch_hub_with(files: dict[str, Path]) -> Iterator[None]:
    """Point torch.hub at a temporary folder whose checkpoints/ holds links to our asset files.

    torchvision loads backbone weights (AlexNet, VGG16) by file name from <hub dir>/checkpoints and only
    downloads when the file is absent; linking the verified asset there makes it use ours, offline.
    """
    import torch.hub

    previous = torch.hub.get_dir()
    with tempfile.TemporaryDirectory(prefix="bench-hub-") as hub:
        checkpoints = Path(hub) / "checkpoints"
        checkpoints.mkdir()
        for filename, path in files.items():
            os.symlink(Path(path).resolve(), checkpoints / filename)
        torch.hub.set_dir(hub)
        try:
            yield
        finally:
            torch.hub.set_dir(previous)


def _to_unit_tensor(img: np.ndarray) -> Any:
    import torch

    img = _check_hwc(img, "image")
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div(255.0)[None]


def _score_with_pyiqa(name: str, metric: Any, preds: Any, targets: Any | None, crop_border: int,
                      float_range: float | None, protocol: dict[str, Any]) -> MetricResult:
    import torch

    pred_list = [quantize_uint8(p, float_range, f"preds[{i}]") for i, p in enumerate(as_image_list(preds))]
    target_list = None
    if targets is not None:
        target_list = [quantize_uint8(t, float_range, f"targets[{i}]") for i, t in enumerate(as_image_list(targets))]
        check_same_length(pred_list, target_list, "images")
    values = []
    with torch.no_grad():
        for i, p in enumerate(pred_list):
            p = crop_border_of(_check_hwc(p, f"preds[{i}]"), crop_border)
            if target_list is None:
                score = metric(_to_unit_tensor(p))
            else:
                t = crop_border_of(_check_hwc(target_list[i], f"targets[{i}]"), crop_border)
                if p.shape != t.shape:
                    raise BenchError(f"image {i}: prediction {p.shape} and reference {t.shape} differ in shape")
                score = metric(_to_unit_tensor(p), _to_unit_tensor(t))
            values.append(float(score.reshape(-1)[0].item()))
    protocol = {"inputs": "uint8 (floats quantised as in psnr_y@matlab), scaled to [0,1], RGB",
                "crop_border": crop_border, "float_range": float_range, "aggregate": "mean over images",
                "library": f"pyiqa {library_version('pyiqa')}", **protocol}
    return MetricResult(name=name, value=mean_of(values), n=len(values), per_item=values, protocol=protocol)


def _asset_record(*names: str) -> dict[str, str]:
    """asset name -> resolved path (raises the one-line BenchError for the first missing one)."""
    return {name: str(_assets.require(name)) for name in names}


def _create_pyiqa(metric_name: str, **options: Any) -> Any:
    import pyiqa
    import torch

    return pyiqa.create_metric(metric_name, as_loss=False, device=torch.device("cpu"), **options)


def _lpips(name: str, net: str, backbone_asset: str, head_asset: str, preds: Any, targets: Any,
           crop_border: int, float_range: float | None) -> MetricResult:
    files = _asset_record(backbone_asset, head_asset)
    backbone = Path(files[backbone_asset])
    with _torch_hub_with({_assets.asset_path(backbone_asset).name: backbone}):
        metric = _create_pyiqa("lpips" if net == "alex" else "lpips-vgg", net=net, version="0.1",
                               pretrained=True, pretrained_model_path=files[head_asset])
    _check_lpips_heads_loaded(metric.net, Path(files[head_asset]))
    return _score_with_pyiqa(name, metric, preds, targets, crop_border, float_range,
                             {"network": f"LPIPS v0.1 {net}", "normalize": "[0,1] -> [-1,1] inside pyiqa",
                              "assets": files})


def _check_lpips_heads_loaded(net: Any, head_file: Path) -> None:
    """pyiqa loads the LPIPS heads with strict=False: a file without them would silently leave random heads."""
    import torch
    from pyiqa.archs.arch_util import clean_state_dict

    state = clean_state_dict(torch.load(head_file, map_location="cpu", weights_only=False))  # as pyiqa reads it
    missing = [k for k in net.state_dict() if k.startswith("lin") and k not in state]
    if missing:
        raise BenchError(f"{head_file} does not hold the LPIPS linear heads (missing {missing[0]} and "
                         f"{len(missing) - 1} more): it is not the published LPIPS v0.1 file")


def lpips_alex(preds: Any, targets: Any, crop_border: int = 0, float_range: float | None = None) -> MetricResult:
    """``lpips_alex``: pyiqa LPIPS v0.1 with the AlexNet backbone (weights are assets)."""
    return _lpips("lpips_alex", "alex", "lpips-alexnet-backbone", "lpips-alex-head", preds, targets, crop_border,
                  float_range)


def lpips_vgg(preds: Any, targets: Any, crop_border: int = 0, float_range: float | None = None) -> MetricResult:
    """``lpips_vgg``: pyiqa LPIPS v0.1 with the VGG16 backbone (weights are assets)."""
    return _lpips("lpips_vgg", "vgg", "lpips-vgg16-backbone", "lpips-vgg-head", preds, targets, crop_border,
                  float_range)


# NIQE options are pyiqa's defaults, written out so that a change of default upstream cannot move our numbers.
NIQE_OPTIONS = {"test_y_channel": True, "color_space": "yiq", "version": "original"}


def niqe(preds: Any, crop_border: int = 0, float_range: float | None = None) -> MetricResult:
    """``niqe``: pyiqa NIQE (no reference) with its pristine-model parameters file as an asset."""
    files = _asset_record("niqe-params")
    metric = _create_pyiqa("niqe", crop_border=crop_border, pretrained_model_path=files["niqe-params"],
                           **NIQE_OPTIONS)
    # the crop is applied by pyiqa's NIQE itself (crop_border above), so the adapter does not crop again
    return _score_with_pyiqa("niqe", metric, preds, None, 0, float_range,
                             {"options": {**NIQE_OPTIONS, "crop_border": crop_border}, "assets": files})


def musiq(preds: Any, float_range: float | None = None) -> MetricResult:
    """``musiq``: pyiqa MUSIQ trained on KonIQ-10k (no reference)."""
    files = _asset_record("musiq-koniq")
    metric = _create_pyiqa("musiq", pretrained="koniq10k", pretrained_model_path=files["musiq-koniq"])
    return _score_with_pyiqa("musiq", metric, preds, None, 0, float_range,
                             {"checkpoint": "koniq10k", "assets": files})


def clipiqa(preds: Any, float_range: float | None = None) -> MetricResult:
    """``clipiqa``: pyiqa CLIP-IQA (fixed antonym prompts, CLIP RN50 given as a file)."""
    files = _asset_record("clip-rn50")
    try:
        metric = _create_pyiqa("clipiqa", model_type="clipiqa", backbone=files["clip-rn50"])
    except ModuleNotFoundError as exc:
        raise BenchError(f"clipiqa needs the 'clip' package to import ({exc}); with setuptools>=81 install "
                         f"'setuptools<81' for pkg_resources") from None
    return _score_with_pyiqa("clipiqa", metric, preds, None, 0, float_range,
                             {"backbone": "CLIP RN50", "model_type": "clipiqa", "assets": files})


@contextlib.contextmanager
def _maniqa_without_timm_download() -> Iterator[None]:
    """pyiqa's MANIQA always asks timm for ImageNet ViT-B/8 weights (a Hugging Face download), then our
    checkpoint is loaded with strict=True over every parameter, the ViT included. So the download is useless:
    build the ViT uninitialised instead, for the duration of the constructor only."""
    import timm
    from pyiqa.archs import maniqa_arch

    original = maniqa_arch.timm
    maniqa_arch.timm = types.SimpleNamespace(
        create_model=lambda model_name, pretrained=False, **kw: timm.create_model(model_name, pretrained=False, **kw))
    try:
        yield
    finally:
        maniqa_arch.timm = original


def maniqa(preds: Any, float_range: float | None = None) -> MetricResult:
    """``maniqa``: pyiqa MANIQA trained on KonIQ-10k (no reference; in eval mode pyiqa averages 20 uniform
    224x224 crops, deterministic)."""
    files = _asset_record("maniqa-koniq")
    with _maniqa_without_timm_download():
        metric = _create_pyiqa("maniqa", train_dataset="koniq", pretrained=False)
    metric.load_weights(files["maniqa-koniq"], weight_keys=None)  # strict load, as pyiqa's own default path
    return _score_with_pyiqa("maniqa", metric, preds, None, 0, float_range,
                             {"checkpoint": "koniq", "assets": files})
