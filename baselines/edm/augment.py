"""EDM's non-leaky augmentation pipe [R NVlabs/edm training/augment.py, train.py], written from its description.

What EDM's config F trains with (train.py lines 59 and 143-146): ``AugmentPipe(p=--augment, xflip=1e8, yflip=1,
scale=1, rotate_frac=1, aniso=1, translate_frac=1)`` with the network's ``augment_dim = 9``; ``--augment``
defaults to 0.12 (CIFAR-10) and the README's FFHQ / AFHQv2 64x64 commands pass ``--augment=0.15``.
`EDM_CONFIG_F` holds these multipliers; `AugmentPipe.from_config` builds the pipe from a spec's dict.

Each transform fires per image with probability ``multiplier * p`` (xflip's 1e8 makes it always "selected"; the
flip itself is then a fair coin, so half the images are mirrored and the network is told which). The pipe
returns the augmented images and the labels of what it did, concatenated in the order the transforms run:

    index  transform        label                        (config F; 9 values)
    0      xflip            1 if mirrored left-right else 0
    1      yflip            1 if mirrored top-bottom else 0
    2      scale            w, the log2 scale in units of scale_std (s = 2^(w scale_std))
    3, 4   rotate_frac      cos(theta) - 1, sin(theta)
    5, 6   aniso            w cos(r), w sin(r)  (log2 stretch w in units of aniso_std, along angle r)
    7, 8   translate_frac   tx, ty in units of translate_frac_std * (W, H)

A transform that does not fire gives zeros (so an untouched image has an all-zero label vector, which is what the
network sees at sampling time). The network learns what the labels mean and is sampled with zero labels: that
is what keeps the augmentations from leaking into the generated images.

Pixel blitting (x/y flips, integer rotation, integer translation with mirrored borders) moves pixels exactly. The
geometric transforms (isotropic scale, rotation, anisotropic scale, fractional translation) are composed into one
inverse affine map per image and executed as the official pipe does: pad with reflection, upsample 2x with the
sym6 wavelet low-pass, bilinear resampling (zeros outside), filter and downsample 2x, crop. The sym6 filter pair
reconstructs perfectly, so an identity map returns the image (up to float rounding).

Random numbers are drawn in the official order and shapes from torch's global generator (or ``generator``), so
for the same seed the pipe makes the official draws. EDM's colour transforms (brightness, contrast, luma flip,
hue, saturation) are not used by any EDM config and are not implemented.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from bench.registry import BenchError

# EDM train.py: c.augment_kwargs.update(xflip=1e8, yflip=1, scale=1, rotate_frac=1, aniso=1, translate_frac=1)
EDM_CONFIG_F = {"xflip": 1e8, "yflip": 1.0, "scale": 1.0, "rotate_frac": 1.0, "aniso": 1.0, "translate_frac": 1.0}
# train.py --augment default (CIFAR-10); README's FFHQ/AFHQv2 64x64 commands: --augment=0.15
EDM_AUGMENT_P = {"cifar10": 0.12, "ffhq-64": 0.15, "afhqv2-64": 0.15}
# The labels of config F, in the order the official pipe concatenates them.
CONFIG_F_LABELS = ("xflip", "yflip", "scale", "rotate_cos_minus_1", "rotate_sin", "aniso_w_cos", "aniso_w_sin",
                   "translate_x", "translate_y")

# Low-pass filter of the sym6 wavelet (official table 'sym6'), used to upsample and downsample around the resampling.
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633, 0.4910559419267466,
        0.787641141030194, 0.3379294217276218, -0.07263752278646252, -0.021060292512300564, 0.04472490177066578,
        0.0017677118642428036, -0.007800708325034148)


# ------------------------------------------------------------------------------- 3x3 homogeneous matrices
def _matrix(rows: list[list[Any]], like: torch.Tensor | None = None) -> torch.Tensor:
    """[3, 3] (all constants) or [N, 3, 3] when some entries are per-image tensors shaped like ``like``."""
    if like is None:
        return torch.tensor(rows, dtype=torch.float32)
    elems = [x if isinstance(x, torch.Tensor) else torch.full_like(like, float(x)) for row in rows for x in row]
    return torch.stack(elems, dim=-1).reshape(like.shape + (3, 3))


def translate2d(tx: Any, ty: Any) -> torch.Tensor:
    like = tx if isinstance(tx, torch.Tensor) else None
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], like)


def scale2d(sx: Any, sy: Any) -> torch.Tensor:
    like = sx if isinstance(sx, torch.Tensor) else None
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], like)


def rotate2d(theta: torch.Tensor) -> torch.Tensor:
    return _matrix([[theta.cos(), -theta.sin(), 0], [theta.sin(), theta.cos(), 0], [0, 0, 1]], theta)


# ------------------------------------------------------------------------------------------------ the pipe
@dataclass(frozen=True)
class AugmentPipe:
    """EDM's AugmentPipe restricted to pixel blitting and geometric transforms (the ones EDM uses).

    ``p`` is the overall probability; every other multiplier scales it per transform (0 = off, the official
    default for all of them). ``pipe(images) -> (augmented images, labels [N, n_labels])``.
    """

    p: float = 1.0
    xflip: float = 0.0
    yflip: float = 0.0
    rotate_int: float = 0.0
    translate_int: float = 0.0
    translate_int_max: float = 0.125  # range of integer translation, relative to the image size
    scale: float = 0.0
    rotate_frac: float = 0.0
    aniso: float = 0.0
    translate_frac: float = 0.0
    scale_std: float = 0.2  # log2 standard deviation of isotropic scaling
    rotate_frac_max: float = 1.0  # range of fractional rotation, 1 = full circle
    aniso_std: float = 0.2  # log2 standard deviation of anisotropic scaling
    aniso_rotate_prob: float = 0.5  # probability of stretching along a rotated axis
    translate_frac_std: float = 0.125  # standard deviation of fractional translation, relative to the image size

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not math.isfinite(value) or value < 0:
                raise BenchError(f"augment {name} must be a finite non-negative number, got {value}")
        if self.p > 1:
            raise BenchError(f"augment p is a probability, got {self.p}")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> AugmentPipe:
        """From a spec's ``train["augment"]`` dict; an unknown key is one clear error."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(config) - known)
        if unknown:
            raise BenchError(f"unknown augment option {unknown[0]!r}; options: {', '.join(sorted(known))}")
        return cls(**{k: float(v) for k, v in config.items()})

    @property
    def label_dim(self) -> int:
        """Length of the label vector: what the network's augment_dim must be (9 for config F)."""
        return (int(self.xflip > 0) + int(self.yflip > 0) + 2 * int(self.rotate_int > 0)
                + 2 * int(self.translate_int > 0) + int(self.scale > 0) + 2 * int(self.rotate_frac > 0)
                + 2 * int(self.aniso > 0) + 2 * int(self.translate_frac > 0))

    def __call__(self, images: torch.Tensor,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = images.shape
        device = images.device

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(shape, device=device, generator=generator)

        def randn(*shape: int) -> torch.Tensor:
            return torch.randn(shape, device=device, generator=generator)

        def randint(high: int, *shape: int) -> torch.Tensor:
            return torch.randint(high, shape, device=device, generator=generator)

        def fires(multiplier: float, *shape: int) -> torch.Tensor:
            return rand(*shape) < multiplier * self.p

        labels: list[torch.Tensor] = []

        # --- pixel blitting (exact)
        if self.xflip > 0:
            flip = randint(2, n, 1, 1, 1)
            flip = torch.where(fires(self.xflip, n, 1, 1, 1), flip, torch.zeros_like(flip))
            images = torch.where(flip == 1, images.flip(3), images)
            labels.append(flip)
        if self.yflip > 0:
            flip = randint(2, n, 1, 1, 1)
            flip = torch.where(fires(self.yflip, n, 1, 1, 1), flip, torch.zeros_like(flip))
            images = torch.where(flip == 1, images.flip(2), images)
            labels.append(flip)
        if self.rotate_int > 0:
            k = randint(4, n, 1, 1, 1)
            k = torch.where(fires(self.rotate_int, n, 1, 1, 1), k, torch.zeros_like(k))
            images = torch.where((k == 1) | (k == 2), images.flip(3), images)
            images = torch.where((k == 2) | (k == 3), images.flip(2), images)
            images = torch.where((k == 1) | (k == 3), images.transpose(2, 3), images)
            labels += [(k == 1) | (k == 2), (k == 2) | (k == 3)]
        if self.translate_int > 0:
            shift = rand(2, n, 1, 1, 1) * 2 - 1
            shift = torch.where(fires(self.translate_int, 1, n, 1, 1, 1), shift, torch.zeros_like(shift))
            tx = shift[0].mul(w * self.translate_int_max).round().to(torch.int64)
            ty = shift[1].mul(h * self.translate_int_max).round().to(torch.int64)
            images = integer_translate(images, tx, ty)
            labels += [tx.div(w * self.translate_int_max), ty.div(h * self.translate_int_max)]

        # --- geometric parameters: one inverse map (output pixel -> input pixel) per image
        g_inv: torch.Tensor | None = None

        def compose(*maps: torch.Tensor) -> None:  # right-multiplied one by one, in the official order
            nonlocal g_inv
            for m in maps:
                g_inv = m if g_inv is None else g_inv @ m

        if self.scale > 0:
            v = randn(n)
            v = torch.where(fires(self.scale, n), v, torch.zeros_like(v))
            s = v.mul(self.scale_std).exp2()
            compose(scale2d(1 / s, 1 / s))
            labels.append(v)
        if self.rotate_frac > 0:
            theta = (rand(n) * 2 - 1) * (math.pi * self.rotate_frac_max)
            theta = torch.where(fires(self.rotate_frac, n), theta, torch.zeros_like(theta))
            compose(rotate2d(theta))  # official: rotate2d_inv(-theta)
            labels += [theta.cos() - 1, theta.sin()]
        if self.aniso > 0:
            v = randn(n)
            r = (rand(n) * 2 - 1) * math.pi
            v = torch.where(fires(self.aniso, n), v, torch.zeros_like(v))
            r = torch.where(rand(n) < self.aniso_rotate_prob, r, torch.zeros_like(r))
            s = v.mul(self.aniso_std).exp2()
            compose(rotate2d(-r), scale2d(1 / s, 1 / (1 / s)), rotate2d(r))  # official: scale2d_inv(s, 1 / s)
            labels += [v * r.cos(), v * r.sin()]
        if self.translate_frac > 0:
            t = randn(2, n)
            t = torch.where(fires(self.translate_frac, 1, n), t, torch.zeros_like(t))
            compose(translate2d(-t[0].mul(w * self.translate_frac_std), -t[1].mul(h * self.translate_frac_std)))
            labels += [t[0], t[1]]
        if g_inv is not None:
            images = resample(images, g_inv.to(device))

        if not labels:
            return images, images.new_zeros(n, 0, dtype=torch.float32)
        return images, torch.cat([x.to(torch.float32).reshape(n, -1) for x in labels], dim=1)


def integer_translate(images: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """out[y, x] = in[mirror(y + ty), mirror(x - tx)] per image (tx, ty int64 [N, 1, 1, 1]); the mirror repeats
    no edge pixel (torch's 'reflect' padding), as the official index arithmetic does."""
    n, c, h, w = images.shape
    y = torch.arange(h, device=images.device).view(1, 1, h, 1)
    x = torch.arange(w, device=images.device).view(1, 1, 1, w)
    x = w - 1 - (w - 1 - (x - tx) % (w * 2 - 2)).abs()
    y = h - 1 - (h - 1 - (y + ty) % (h * 2 - 2)).abs()
    rows = y.expand(n, c, h, w)
    cols = x.expand(n, c, h, w)
    flat = images.reshape(n, c, h * w)
    return flat.gather(2, (rows * w + cols).reshape(n, c, h * w)).reshape(n, c, h, w)


def resample(images: torch.Tensor, g_inv: torch.Tensor) -> torch.Tensor:
    """Apply the inverse affine maps ``g_inv`` [N, 3, 3] (pixel coordinates centred on the image, x right, y
    down) as the official pipe does: reflect-pad by the margin the maps need, 2x sym6 upsampling, bilinear
    grid_sample with zeros outside, sym6 filtering and 2x downsampling, crop back to H x W."""
    n, c, h, w = images.shape
    device, dtype = images.device, images.dtype
    cx, cy = (w - 1) / 2, (h - 1) / 2
    corners = torch.tensor([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], device=device)
    corners = g_inv @ corners.t()  # [N, xyz, corner]: where each output corner reads from
    taps = len(SYM6)
    hz_pad = taps // 4
    margin = corners[:, :2, :].permute(1, 0, 2).flatten(1)  # [xy, N * corner]
    margin = torch.cat([-margin, margin]).max(dim=1).values  # [x0, y0, x1, y1]
    margin = margin + torch.tensor([hz_pad * 2 - cx, hz_pad * 2 - cy] * 2, device=device)
    margin = margin.max(torch.zeros(4, device=device)).min(torch.tensor([w - 1, h - 1] * 2, device=device,
                                                                        dtype=margin.dtype))
    mx0, my0, mx1, my1 = (int(v) for v in margin.ceil().to(torch.int32))

    images = F.pad(images, [mx0, mx1, my0, my1], mode="reflect")
    g_inv = translate2d((mx0 - mx1) / 2, (my0 - my1) / 2).to(device) @ g_inv

    # 2x upsampling: zero insertion, then the reversed low-pass along x and along y
    kernel = torch.tensor(SYM6[::-1], dtype=dtype, device=device).view(1, 1, taps).tile([c, 1, 1])
    pad = (taps + 1) // 2
    images = torch.stack([images, torch.zeros_like(images)], dim=4).reshape(n, c, images.shape[2], -1)[:, :, :, :-1]
    images = F.conv2d(images, kernel.unsqueeze(2), groups=c, padding=[0, pad])
    images = torch.stack([images, torch.zeros_like(images)], dim=3).reshape(n, c, -1, images.shape[3])[:, :, :-1, :]
    images = F.conv2d(images, kernel.unsqueeze(3), groups=c, padding=[pad, 0])
    g_inv = scale2d(2, 2).to(device) @ g_inv @ scale2d(0.5, 0.5).to(device)
    g_inv = translate2d(-0.5, -0.5).to(device) @ g_inv @ translate2d(0.5, 0.5).to(device)

    # resampling on the upsampled grid, in affine_grid's normalised coordinates
    shape = [n, c, (h + hz_pad * 2) * 2, (w + hz_pad * 2) * 2]
    g_inv = (scale2d(2 / images.shape[3], 2 / images.shape[2]).to(device) @ g_inv
             @ scale2d(shape[3] / 2, shape[2] / 2).to(device))
    grid = F.affine_grid(theta=g_inv[:, :2, :].to(dtype), size=shape, align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # 2x downsampling with the low-pass, then the crop of the filter's margin
    kernel = torch.tensor(SYM6, dtype=dtype, device=device).view(1, 1, taps).tile([c, 1, 1])
    pad = (taps - 1) // 2
    images = F.conv2d(images, kernel.unsqueeze(2), groups=c, stride=[1, 2], padding=[0, pad])[:, :, :, hz_pad:-hz_pad]
    return F.conv2d(images, kernel.unsqueeze(3), groups=c, stride=[2, 1], padding=[pad, 0])[:, :, hz_pad:-hz_pad, :]


def edm_config_f(dataset: str) -> dict[str, float]:
    """The augment dict EDM config F trains ``dataset`` with: p from train.py / the README, the multipliers of
    train.py. One clear error for a dataset EDM gives no p for."""
    if dataset not in EDM_AUGMENT_P:
        raise BenchError(f"EDM gives no augment probability for {dataset!r}; known: {', '.join(EDM_AUGMENT_P)}")
    return {"p": EDM_AUGMENT_P[dataset], **EDM_CONFIG_F}
