"""The Real-ESRGAN second-order degradation (Wang et al., ICCVW 2021), as ResShift/SinSR/TAD-SR train with it.

Restated from the documented parameters (Real-ESRGAN's ``options/train_realesrnet_x4plus.yml``, BasicSR
``data/degradations.py`` formulas, ResShift ``configs/realsr_swinunet_realesrgan256.yaml`` [R]); our own code.

Kernels (size k odd, grid -k//2+1 .. k//2, all normalised to sum 1):
* bivariate Gaussian  exp(-1/2 x^T S^-1 x), S = R diag(sx^2, sy^2) R^T (iso: sx = sy, no rotation);
* generalized Gaussian exp(-1/2 (x^T S^-1 x)^beta), beta in betag_range;
* plateau              1 / (1 + (x^T S^-1 x)^beta), beta in betap_range;
* sinc (circular low-pass) cutoff * J1(cutoff r) / (2 pi r), centre cutoff^2 / (4 pi).
First stage: blur (a kernel of random size 7..21, sinc with sinc_prob, cutoff in [pi/3, pi] below size 13 else
[pi/5, pi]), random resize (up/down/keep with resize_prob, area/bilinear/bicubic), Gaussian or Poisson noise
(colour or grey), JPEG. Second stage (with second_order_prob; ResShift 0.5, Real-ESRGAN 1.0): blur with
second_blur_prob, resize relative to the target LR size, noise, then in random order [resize to the LR size +
final sinc (final_sinc_prob, else identity)] and JPEG. Output clamped and rounded to 8 bits.

Deviations (documented): JPEG goes through OpenCV's libjpeg encoder per image (the official code uses DiffJPEG,
a differentiable re-implementation; the quantisation tables are the same standard ones), and every random draw
comes from one numpy Generator per image, so a (seed, image index) fixes the LR exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")


# ------------------------------------------------------------------------------------------------- kernels
def mesh_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ax = np.arange(-size // 2 + 1.0, size // 2 + 1.0)
    xx, yy = np.meshgrid(ax, ax)
    return xx, yy


def sigma_matrix(sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    return rot @ np.diag([sigma_x ** 2, sigma_y ** 2]) @ rot.T


def _quadratic_form(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """x^T S^-1 x on the kernel grid."""
    xx, yy = mesh_grid(size)
    inv = np.linalg.inv(sigma_matrix(sigma_x, sigma_y, theta))
    return inv[0, 0] * xx ** 2 + (inv[0, 1] + inv[1, 0]) * xx * yy + inv[1, 1] * yy ** 2


def _normalised(kernel: np.ndarray) -> np.ndarray:
    return kernel / kernel.sum()


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float = 0.0) -> np.ndarray:
    return _normalised(np.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_y, theta)))


def generalized_gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    return _normalised(np.exp(-0.5 * np.power(_quadratic_form(size, sigma_x, sigma_y, theta), beta)))


def plateau_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    return _normalised(1.0 / (np.power(_quadratic_form(size, sigma_x, sigma_y, theta), beta) + 1.0))


def sinc_kernel(size: int, cutoff: float, pad_to: int = 0) -> np.ndarray:
    """Circular low-pass filter (2-D sinc) with cut-off frequency ``cutoff`` (radians), normalised."""
    from scipy.special import j1

    if size % 2 == 0:
        raise ValueError("kernel size must be odd")
    xx, yy = mesh_grid(size)
    r = np.sqrt(xx ** 2 + yy ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = cutoff * j1(cutoff * r) / (2 * np.pi * r)
    kernel[r == 0] = cutoff ** 2 / (4 * np.pi)
    kernel = _normalised(kernel)
    return pad_kernel(kernel, pad_to) if pad_to > size else kernel


def pad_kernel(kernel: np.ndarray, size: int) -> np.ndarray:
    pad = (size - kernel.shape[0]) // 2
    return np.pad(kernel, ((pad, pad), (pad, pad))) if pad > 0 else kernel


def pulse_kernel(size: int) -> np.ndarray:
    kernel = np.zeros((size, size))
    kernel[size // 2, size // 2] = 1.0
    return kernel


# ----------------------------------------------------------------------------------------------- settings
@dataclass
class StageConfig:
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)


def _second_stage() -> StageConfig:
    return StageConfig(sinc_prob=0.1, blur_sigma=(0.2, 1.5), resize_prob=(0.3, 0.4, 0.3), resize_range=(0.3, 1.2),
                       noise_range=(1.0, 25.0), poisson_scale_range=(0.05, 2.5))


@dataclass
class DegradationConfig:
    """ResShift's realsr x4 degradation (configs/realsr_swinunet_realesrgan256.yaml [R])."""
    sf: int = 4
    kernel_range: tuple[int, ...] = tuple(2 * v + 1 for v in range(3, 11))  # 7, 9, ..., 21
    max_kernel: int = 21
    first: StageConfig = field(default_factory=StageConfig)
    second: StageConfig = field(default_factory=_second_stage)
    second_order_prob: float = 0.5
    second_blur_prob: float = 0.8
    final_sinc_prob: float = 0.8

    def describe(self) -> dict[str, Any]:
        import dataclasses

        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------- sampling
def random_kernel(rng: np.random.Generator, stage: StageConfig, cfg: DegradationConfig) -> np.ndarray:
    size = int(rng.choice(cfg.kernel_range))
    if rng.uniform() < stage.sinc_prob:
        cutoff = rng.uniform(np.pi / 3, np.pi) if size < 13 else rng.uniform(np.pi / 5, np.pi)
        return sinc_kernel(size, cutoff, pad_to=cfg.max_kernel)
    kind = KERNEL_TYPES[int(rng.choice(len(KERNEL_TYPES), p=np.asarray(stage.kernel_prob) / sum(stage.kernel_prob)))]
    sx = rng.uniform(*stage.blur_sigma)
    if kind.endswith("iso") and not kind.endswith("aniso"):
        sy, theta = sx, 0.0
    else:
        sy, theta = rng.uniform(*stage.blur_sigma), rng.uniform(-np.pi, np.pi)
    if kind.startswith("generalized"):
        kernel = generalized_gaussian_kernel(size, sx, sy, theta, rng.uniform(*stage.betag_range))
    elif kind.startswith("plateau"):
        kernel = plateau_kernel(size, sx, sy, theta, rng.uniform(*stage.betap_range))
    else:
        kernel = gaussian_kernel(size, sx, sy, theta)
    return pad_kernel(kernel, cfg.max_kernel)


def filter2d(image: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    """Depthwise 2-D filtering of a [C, H, W] image with reflect padding (BasicSR filter2D)."""
    k = kernel.shape[0]
    weight = torch.as_tensor(kernel, dtype=image.dtype).expand(image.shape[0], 1, k, k)
    pad = k // 2
    x = image[None]
    mode = "reflect" if pad < min(image.shape[-2:]) else "replicate"  # tiny maps: reflect needs pad < size
    x = F.pad(x, (pad, pad, pad, pad), mode=mode)
    return F.conv2d(x, weight, groups=image.shape[0])[0]


def _resize(image: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    size = (max(1, size[0]), max(1, size[1]))
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(image[None], size=size, mode=mode, **kwargs)[0]


def _random_resize(rng: np.random.Generator, image: torch.Tensor, stage: StageConfig,
                   base: tuple[int, int] | None = None) -> torch.Tensor:
    kind = int(rng.choice(3, p=np.asarray(stage.resize_prob) / sum(stage.resize_prob)))
    scale = (rng.uniform(1, stage.resize_range[1]) if kind == 0
             else rng.uniform(stage.resize_range[0], 1) if kind == 1 else 1.0)
    mode = ("area", "bilinear", "bicubic")[int(rng.integers(3))]
    h, w = base if base is not None else image.shape[-2:]
    return _resize(image, (int(h * scale), int(w * scale)), mode)


def _gray(image: torch.Tensor) -> torch.Tensor:
    return (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2])[None]


def _random_noise(rng: np.random.Generator, image: torch.Tensor, stage: StageConfig) -> torch.Tensor:
    gray = rng.uniform() < stage.gray_noise_prob
    if rng.uniform() < stage.gaussian_noise_prob:
        sigma = rng.uniform(*stage.noise_range) / 255.0
        shape = (1, *image.shape[1:]) if gray else image.shape
        noise = torch.as_tensor(rng.standard_normal(shape), dtype=image.dtype) * sigma
        noise = noise.expand_as(image)
    else:  # Poisson: counts of photons at 2**ceil(log2(#distinct 8-bit levels)) per unit of intensity
        scale = rng.uniform(*stage.poisson_scale_range)
        src = _gray(image) if gray else image
        src = (src.clamp(0, 1) * 255).round() / 255
        vals = 2 ** math.ceil(math.log2(max(2, len(torch.unique(src)))))
        counts = rng.poisson(src.double().numpy() * vals)
        noise = (torch.as_tensor(counts / vals, dtype=image.dtype) - src) * scale
        noise = noise.expand_as(image)
    return (image + noise).clamp(0, 1)


def jpeg(image: torch.Tensor, quality: float) -> torch.Tensor:
    """Encode/decode with libjpeg (OpenCV) at ``quality``; [C, H, W] RGB float in [0, 1]."""
    import cv2

    arr = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", arr[:, :, ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
    return torch.as_tensor(np.ascontiguousarray(out), dtype=image.dtype).permute(2, 0, 1) / 255.0


def degrade(hr: np.ndarray, rng: np.random.Generator, cfg: DegradationConfig | None = None) -> np.ndarray:
    """LR (uint8 HWC, HR size / sf) of an HR uint8 HWC image under one random draw of the pipeline."""
    cfg = cfg or DegradationConfig()
    h, w = hr.shape[:2]
    if h % cfg.sf or w % cfg.sf:
        raise ValueError(f"HR size {h}x{w} is not a multiple of the scale {cfg.sf}")
    lr_size = (h // cfg.sf, w // cfg.sf)
    x = torch.as_tensor(np.ascontiguousarray(hr), dtype=torch.float32).permute(2, 0, 1) / 255.0
    # kernels are drawn up front, in a fixed order, like the dataset does before the model's feed_data
    k1 = random_kernel(rng, cfg.first, cfg)
    k2 = random_kernel(rng, cfg.second, cfg)
    if rng.uniform() < cfg.final_sinc_prob:
        size = int(rng.choice(cfg.kernel_range))
        final = sinc_kernel(size, rng.uniform(np.pi / 3, np.pi), pad_to=cfg.max_kernel)
    else:
        final = pulse_kernel(cfg.max_kernel)
    # first stage
    x = filter2d(x, k1)
    x = _random_resize(rng, x, cfg.first)
    x = _random_noise(rng, x, cfg.first)
    x = jpeg(x, rng.uniform(*cfg.first.jpeg_range))
    # second stage
    if rng.uniform() < cfg.second_order_prob:
        if rng.uniform() < cfg.second_blur_prob:
            x = filter2d(x, k2)
        x = _random_resize(rng, x, cfg.second, base=lr_size)
        x = _random_noise(rng, x, cfg.second)
    mode = ("area", "bilinear", "bicubic")[int(rng.integers(3))]
    quality = rng.uniform(*cfg.second.jpeg_range)
    if rng.uniform() < 0.5:  # resize back + sinc, then JPEG
        x = filter2d(_resize(x, lr_size, mode), final)
        x = jpeg(x, quality)
    else:  # JPEG, then resize back + sinc
        x = jpeg(x, quality)
        x = filter2d(_resize(x, lr_size, mode), final)
    x = (x.clamp(0, 1) * 255).round()
    return x.permute(1, 2, 0).numpy().astype(np.uint8)


def degrade_batch(images: list[np.ndarray], seed: int, cfg: DegradationConfig | None = None) -> list[np.ndarray]:
    """LR of each image, image i drawn from numpy Generator(SeedSequence([seed, i])): order-independent."""
    return [degrade(img, np.random.default_rng([int(seed), i]), cfg) for i, img in enumerate(images)]
