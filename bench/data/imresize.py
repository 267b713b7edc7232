"""MATLAB-compatible `imresize(img, scale, 'bicubic')`, in float64.

The classical SR benchmarks (DIV2K LR_bicubic, the EDSR benchmark folders) were made with MATLAB's imresize,
and PIL/OpenCV bicubic differ from it by tenths of a dB in PSNR, so LR images made here follow MATLAB exactly:

* cubic convolution kernel with a = -0.5 (Keys), support [-2, 2];
* antialiasing when shrinking: the kernel is stretched by 1/scale (h(x) = scale * k(scale * x)) so it also
  low-pass filters, and its support grows to 4/scale input pixels;
* MATLAB's index mapping: output pixel u (1-based) samples input coordinate x = u/scale + (1 - 1/scale)/2;
* weights normalised to sum to 1 for every output pixel;
* borders handled by symmetric reflection that repeats the edge pixel (..., 2, 1, 1, 2, ...);
* output size ceil(scale * input size); dimensions processed in increasing order of their scale;
* uint8 input gives uint8 output, rounded half away from zero and saturated, like MATLAB.
"""
from __future__ import annotations

import math

import numpy as np

from bench.registry import BenchError


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic')."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    inner = 1.5 * ax3 - 2.5 * ax2 + 1.0
    outer = -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    return np.where(ax <= 1.0, inner, np.where(ax <= 2.0, outer, 0.0))


def contributions(in_length: int, out_length: int, scale: float,
                  antialiasing: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per output pixel: the 0-based input indices it reads and their weights, both [out_length, P]."""
    kernel_width = 4.0
    if scale < 1.0 and antialiasing:
        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * cubic(scale * x)
        kernel_width = kernel_width / scale
    else:
        kernel = cubic
    u = np.arange(1, out_length + 1, dtype=np.float64) / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based, may fall outside
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric extension with edge repetition: position p maps into [1, n] by reflecting at 0.5 and n + 0.5.
    mirror = np.concatenate([np.arange(1, in_length + 1), np.arange(in_length, 0, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_length)] - 1
    return indices, weights


def weight_matrix(in_length: int, out_length: int, scale: float, antialiasing: bool = True) -> np.ndarray:
    """The resize along one axis as a dense [out_length, in_length] matrix (mirrored taps accumulate)."""
    indices, weights = contributions(in_length, out_length, scale, antialiasing)
    matrix = np.zeros((out_length, in_length), dtype=np.float64)
    rows = np.repeat(np.arange(out_length), indices.shape[1])
    np.add.at(matrix, (rows, indices.ravel()), weights.ravel())
    return matrix


def _resize_axis(x: np.ndarray, axis: int, out_length: int, scale: float, antialiasing: bool) -> np.ndarray:
    # A matrix product keeps memory at O(out x in) even for strong downscaling of large photos.
    matrix = weight_matrix(x.shape[axis], out_length, scale, antialiasing)
    return np.moveaxis(np.tensordot(matrix, x, axes=([1], [axis])), 0, axis)


def _output_length(length: int, scale: float) -> int:
    # ceil(scale * n) as MATLAB, after rounding away float noise (300 * (1/3) must give 100, not 101).
    return math.ceil(round(length * scale, 9))


def imresize(image: np.ndarray, scale: float | tuple[float, float] | None = None,
             output_shape: tuple[int, int] | None = None, antialiasing: bool = True) -> np.ndarray:
    """Resize an HW or HWC image like MATLAB's `imresize(image, scale, 'bicubic')`.

    Give either `scale` (one factor, or one per axis: 0.5 halves) or `output_shape` (H, W); with
    `output_shape` each axis uses scale = out / in, as MATLAB does.
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3):
        raise BenchError(f"imresize expects an HW or HWC image, got shape {img.shape}")
    if (scale is None) == (output_shape is None):
        raise BenchError("imresize needs exactly one of scale or output_shape")
    in_hw = img.shape[:2]
    if scale is not None:
        scales = (float(scale), float(scale)) if np.isscalar(scale) else tuple(float(s) for s in scale)
        if len(scales) != 2 or min(scales) <= 0:
            raise BenchError(f"imresize scale must be positive, got {scale}")
        out_hw = tuple(_output_length(n, s) for n, s in zip(in_hw, scales, strict=True))
    else:
        out_hw = tuple(int(n) for n in output_shape)
        if len(out_hw) != 2 or min(out_hw) < 1:
            raise BenchError(f"imresize output_shape must be two positive sizes, got {output_shape}")
        scales = tuple(o / n for o, n in zip(out_hw, in_hw, strict=True))

    was_uint8 = img.dtype == np.uint8
    out = img.astype(np.float64)
    # MATLAB resizes the axis with the smaller scale first (stable order on ties: rows first).
    for axis in sorted((0, 1), key=lambda a: scales[a]):
        out = _resize_axis(out, axis, out_hw[axis], scales[axis], antialiasing)
    if was_uint8:
        return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)
    return out


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop H and W down to multiples of `scale` (top-left anchored, as BasicSR/EDSR do)."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def bicubic_lr(hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(HR cropped to a multiple of `scale`, its MATLAB-bicubic LR) for integer SR factor `scale`."""
    if int(scale) != scale or scale < 1:
        raise BenchError(f"SR scale must be a positive integer, got {scale}")
    hr = modcrop(hr, int(scale))
    return hr, imresize(hr, 1.0 / int(scale))  # exactly MATLAB's imresize(hr, 1/scale, 'bicubic')
