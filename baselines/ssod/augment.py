"""Weak and strong views for SSOD, on float images [3, H, W] in 0..1 with xyxy boxes.

Geometry (LabelMatch / mmdet conventions):
* `resize`: mmdet's keep-ratio Resize. Three modes: "ratio" (img_scale (S, S) times a ratio drawn from
  ratio_range: scale factor = S * r / longer side), "range" (img_scale [(L, s_min), (L, s_max)]: the short target is
  drawn uniformly in [s_min, s_max]; factor = min(L / long side, short / short side)), "choice" ((L, s1, s2, ...):
  detectron2's multi-scale short edge), "fixed" ((L, s): test resize), or None (keep the size: the smoke set's 64-pixel images).
* `hflip`: x -> W - x (mmdet 2.x and torchvision).
Photometric ("UT strong", Albumentations in LabelMatch): ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8 in random order,
ToGray p 0.2, GaussianBlur sigma 0.1-2 p 0.5; then three random-erasing passes (p 0.7/0.5/0.3, area
0.05-0.2/0.02-0.2/0.02-0.2, aspect 0.3-3.3/0.1-6/0.05-8, random fill) on the unlabelled student view only.

All randomness comes from torch's global generator, which the shared training loop seeds per rank and stores in
its checkpoints, so a resumed run draws the same views.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from baselines.ssod.boxes import scale_boxes
from bench.registry import BenchError

ERASING_PASSES = ((0.7, (0.05, 0.2), (0.3, 3.3)), (0.5, (0.02, 0.2), (0.1, 6.0)), (0.3, (0.02, 0.2), (0.05, 8.0)))


@dataclass(frozen=True)
class ResizeSpec:
    mode: str | None = None                 # None | "ratio" | "range" | "choice" | "fixed"
    scale: tuple[int, ...] = ()             # ratio: (S,); range: (L, s_min, s_max); choice: (L, s1, ...); fixed: (L, s)
    ratio_range: tuple[float, float] = (1.0, 1.0)


@dataclass(frozen=True)
class AugmentConfig:
    """The views of one method. LabelMatch (paper config) as defaults would be: labelled = ratio (1024, 0.2-1.8) +
    flip + colour; teacher = range (1333, 500-800); student = ratio (1024, 0.2-1.8) + colour + erasing."""

    labelled_resize: ResizeSpec = ResizeSpec()
    labelled_colour: bool = True            # LabelMatch: UT-strong colour ops on labelled images (no erasing)
    labelled_weak_copy: bool = False        # Unbiased Teacher: also train on the weak (flip/resize only) copy
    teacher_resize: ResizeSpec = ResizeSpec()
    student_resize: ResizeSpec | None = None  # None: the student view shares the teacher view's geometry (UT)
    student_colour: bool = True
    student_erasing: bool = True
    flip_prob: float = 0.5
    test_resize: ResizeSpec = ResizeSpec()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentConfig:
        def spec(value):
            if value is None or isinstance(value, ResizeSpec):
                return value
            return ResizeSpec(value.get("mode"), tuple(value.get("scale", ())), tuple(value.get("ratio_range", (1.0, 1.0))))

        data = dict(data)
        for key in ("labelled_resize", "teacher_resize", "student_resize", "test_resize"):
            if key in data:
                data[key] = spec(data[key])
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise BenchError(f"AugmentConfig: unknown field {unknown[0]!r}")
        return cls(**data)


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def resize_factor(height: int, width: int, spec: ResizeSpec) -> float:
    if spec.mode is None:
        return 1.0
    if spec.mode == "ratio":
        return spec.scale[0] * _uniform(*spec.ratio_range) / max(height, width)
    if spec.mode == "range":
        long_edge, short_lo, short_hi = spec.scale
        short = math.floor(_uniform(short_lo, short_hi + 1))  # mmdet: np.random.randint(min, max + 1)
        return min(long_edge / max(height, width), short / min(height, width))
    if spec.mode == "choice":  # detectron2 ResizeShortestEdge(choice): one short edge from the list
        long_edge, *shorts = spec.scale
        short = shorts[int(torch.randint(0, len(shorts), ()))]
        return min(long_edge / max(height, width), short / min(height, width))
    if spec.mode == "fixed":
        long_edge, short = spec.scale
        return min(long_edge / max(height, width), short / min(height, width))
    raise BenchError(f"unknown resize mode {spec.mode!r}; expected None, 'ratio', 'range', 'choice' or 'fixed'")


def resize(image: Tensor, boxes: Tensor, spec: ResizeSpec) -> tuple[Tensor, Tensor, tuple[float, float]]:
    """Resized image, boxes and the (x, y) factors actually applied (new size / old size)."""
    h, w = image.shape[-2:]
    factor = resize_factor(h, w, spec)
    new_h, new_w = int(h * factor + 0.5), int(w * factor + 0.5)
    if (new_h, new_w) == (h, w):
        return image, boxes, (1.0, 1.0)
    out = F.interpolate(image[None], size=(new_h, new_w), mode="bilinear", align_corners=False)[0]
    sx, sy = new_w / w, new_h / h
    return out, scale_boxes(boxes, sx, sy), (sx, sy)


def hflip(image: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
    w = image.shape[-1]
    flipped = boxes.clone()
    flipped[:, 0] = w - boxes[:, 2]
    flipped[:, 2] = w - boxes[:, 0]
    return image.flip(-1), flipped


def colour_strong(image: Tensor) -> Tensor:
    """Unbiased Teacher's strong colour augmentation (boxes unchanged)."""
    import torchvision.transforms.v2.functional as TF

    if float(torch.rand(())) < 0.8:
        factors = {"brightness": _uniform(0.6, 1.4), "contrast": _uniform(0.6, 1.4),
                   "saturation": _uniform(0.6, 1.4), "hue": _uniform(-0.1, 0.1)}
        ops = {"brightness": TF.adjust_brightness, "contrast": TF.adjust_contrast,
               "saturation": TF.adjust_saturation, "hue": TF.adjust_hue}
        names = list(ops)
        for i in torch.randperm(4).tolist():
            image = ops[names[i]](image, factors[names[i]])
    if float(torch.rand(())) < 0.2:
        image = TF.rgb_to_grayscale(image, num_output_channels=3)
    if float(torch.rand(())) < 0.5:
        sigma = _uniform(0.1, 2.0)
        # Kernel covering +-3 sigma (odd, >= 3); Albumentations draws it from its blur_limit instead.
        k = max(3, 2 * math.ceil(3 * sigma) + 1)
        k = min(k, 2 * (min(image.shape[-2:]) // 2) - 1)
        image = TF.gaussian_blur(image, [k, k], [sigma, sigma])
    return image.clamp(0, 1)


def random_erasing(image: Tensor) -> Tensor:
    """Three passes of torchvision-style random erasing with uniform random fill."""
    _, h, w = image.shape
    image = image.clone()
    for p, (a_lo, a_hi), (r_lo, r_hi) in ERASING_PASSES:
        if float(torch.rand(())) >= p:
            continue
        for _ in range(10):
            area = h * w * _uniform(a_lo, a_hi)
            ratio = math.exp(_uniform(math.log(r_lo), math.log(r_hi)))
            eh, ew = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
            if 0 < eh < h and 0 < ew < w:
                top = int(torch.randint(0, h - eh + 1, ()))
                left = int(torch.randint(0, w - ew + 1, ()))
                image[:, top:top + eh, left:left + ew] = torch.rand(3, eh, ew)
                break
    return image


def labelled_view(image: Tensor, boxes: Tensor, cfg: AugmentConfig, colour: bool | None = None) -> tuple[Tensor, Tensor]:
    image, boxes, _ = resize(image, boxes, cfg.labelled_resize)
    if float(torch.rand(())) < cfg.flip_prob:
        image, boxes = hflip(image, boxes)
    if cfg.labelled_colour if colour is None else colour:
        image = colour_strong(image)
    return image, boxes


def unlabelled_views(image: Tensor, cfg: AugmentConfig) -> dict[str, Any]:
    """Teacher (weak) and student (strong) views of one unlabelled image sharing one flip, and the per-axis
    factors that map teacher-view boxes to the student view (box_student = box_teacher * (sx, sy))."""
    empty = image.new_zeros((0, 4))
    if float(torch.rand(())) < cfg.flip_prob:
        image, _ = hflip(image, empty)
    weak, _, _ = resize(image, empty, cfg.teacher_resize)
    if cfg.student_resize is None:
        strong = weak
    else:
        strong, _, _ = resize(image, empty, cfg.student_resize)
    sx, sy = strong.shape[-1] / weak.shape[-1], strong.shape[-2] / weak.shape[-2]
    if cfg.student_colour:
        strong = colour_strong(strong)
    if cfg.student_erasing:
        strong = random_erasing(strong)
    return {"weak": weak, "strong": strong, "to_student": torch.tensor([sx, sy])}
