"""Box-aware strong augmentation of STAC and Soft Teacher: one colour op, one geometric op, then cutout.

Both methods draw (restated from google-research/ssl_detection utils/augmentation.py, RandomAugmentBBox 'strong',
and microsoft/SoftTeacher configs/soft_teacher/base.py, strong_pipeline):
* colour: ONE of the RandAugment colour ops (Identity, AutoContrast, Equalize, Solarize, Color, Contrast,
  Brightness, Sharpness, Posterize) at a magnitude m drawn from 1..9 (STAC: np.random.randint(1, 10)), mapped as
  in the auto_augment code STAC ships: enhancement factor 0.1 + 1.8 m / 10, solarize threshold (256 - 25.6 m) / 256,
  posterize to 4 - int(0.4 m) bits;
* geometric: ONE of translate-x (+-10 % of the width), translate-y (+-10 % of the height), rotate (+-30 degrees)
  or shear-x (+-30 degrees), about the image centre, boxes transformed through their four corners (the enclosing
  box, clipped to the image; boxes left with no area are dropped); STAC also draws, with equal chance instead of
  the global affine, an in-box affine: a weak affine (translate +-5 %, rotate / shear +-10 degrees) of the pixels
  inside one random box (boxes unchanged);
* colour and geometric in random order, then cutout: 1-5 squares of side s x the shorter image side, s ~ U(0, 0.2),
  centred uniformly in the image, filled with grey (imgaug's Cutout fills 128; the affine's border fill is STAC's
  cval 125).

Images are float tensors [3, H, W] in 0..1; boxes xyxy in continuous pixel coordinates (pixel i covers [i, i+1]).
A geometric op is a 3x3 matrix M with [x', y', 1] = M [x, y, 1], so a caller can map boxes between views
(Soft Teacher maps the teacher's pseudo-boxes into the student view and the student's RoIs back). All randomness
comes from torch's global generator (seeded and checkpointed by the shared training loop).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

COLOUR_OPS = ("identity", "autocontrast", "equalize", "solarize", "color", "contrast", "brightness", "sharpness",
              "posterize")
GEOMETRIC_OPS = ("translate_x", "translate_y", "rotate", "shear_x")
BORDER_FILL = 125.0 / 255.0   # STAC's imgaug Affine cval
CUTOUT_FILL = 128.0 / 255.0   # imgaug Cutout's default cval


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


# ---------------------------------------------------------------------------------------------------------
# colour

def colour_op(image: Tensor, name: str, magnitude: int) -> Tensor:
    """One RandAugment colour op at integer magnitude 1..9 (auto_augment's level / 10 parameterisation)."""
    import torchvision.transforms.v2.functional as TF

    factor = 0.1 + 1.8 * magnitude / 10.0
    if name == "identity":
        return image
    if name == "autocontrast":
        return TF.autocontrast(image)
    if name == "equalize":
        return TF.equalize((image * 255).round().to(torch.uint8)).float() / 255.0
    if name == "solarize":
        return TF.solarize(image, (256 - int(magnitude * 256 / 10)) / 256.0)
    if name == "color":
        return TF.adjust_saturation(image, factor).clamp(0, 1)
    if name == "contrast":
        return TF.adjust_contrast(image, factor).clamp(0, 1)
    if name == "brightness":
        return TF.adjust_brightness(image, factor).clamp(0, 1)
    if name == "sharpness":
        return TF.adjust_sharpness(image, factor).clamp(0, 1)
    if name == "posterize":
        bits = 4 - int(magnitude * 4 / 10)
        return TF.posterize((image * 255).round().to(torch.uint8), bits).float() / 255.0
    raise ValueError(f"unknown colour op {name!r}")


def random_colour(image: Tensor) -> Tensor:
    name = COLOUR_OPS[int(torch.randint(0, len(COLOUR_OPS), ()))]
    return colour_op(image, name, int(torch.randint(1, 10, ())))


# ---------------------------------------------------------------------------------------------------------
# geometry

def affine_matrix(name: str, amount: float, height: int, width: int) -> Tensor:
    """M (3x3, float64) of one geometric op about the image centre. amount: a fraction of the side for the
    translations, degrees for rotate and shear."""
    cx, cy = width / 2.0, height / 2.0
    to_centre = torch.tensor([[1.0, 0, -cx], [0, 1.0, -cy], [0, 0, 1.0]], dtype=torch.float64)
    back = torch.tensor([[1.0, 0, cx], [0, 1.0, cy], [0, 0, 1.0]], dtype=torch.float64)
    if name == "translate_x":
        return torch.tensor([[1.0, 0, amount * width], [0, 1.0, 0], [0, 0, 1.0]], dtype=torch.float64)
    if name == "translate_y":
        return torch.tensor([[1.0, 0, 0], [0, 1.0, amount * height], [0, 0, 1.0]], dtype=torch.float64)
    if name == "rotate":
        a = math.radians(amount)
        core = torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1.0]],
                            dtype=torch.float64)
    elif name == "shear_x":
        core = torch.tensor([[1.0, math.tan(math.radians(amount)), 0], [0, 1.0, 0], [0, 0, 1.0]], dtype=torch.float64)
    else:
        raise ValueError(f"unknown geometric op {name!r}")
    return back @ core @ to_centre


def random_affine(height: int, width: int, translate: float = 0.1, degrees: float = 30.0) -> Tensor:
    name = GEOMETRIC_OPS[int(torch.randint(0, len(GEOMETRIC_OPS), ()))]
    limit = translate if name.startswith("translate") else degrees
    return affine_matrix(name, _uniform(-limit, limit), height, width)


def warp(image: Tensor, matrix: Tensor, fill: float = BORDER_FILL) -> Tensor:
    """The image seen through M (output pixel centre p samples the input at M^-1 p, bilinear), same size."""
    _, h, w = image.shape
    inverse = torch.linalg.inv(matrix).to(torch.float32)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32) + 0.5, torch.arange(w, dtype=torch.float32) + 0.5,
                            indexing="ij")
    points = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1) @ inverse.T
    grid = torch.stack([points[..., 0] / w * 2 - 1, points[..., 1] / h * 2 - 1], dim=-1)[None]
    stacked = torch.cat([image, torch.ones_like(image[:1])])[None]
    out = F.grid_sample(stacked, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    inside = out[3:4]
    return out[:3] + (1 - inside) * fill


def transform_boxes(boxes: Tensor, matrix: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """(boxes enclosing the four transformed corners, clipped to the image; mask of those with positive area)."""
    if len(boxes) == 0:
        return boxes.reshape(0, 4), torch.zeros(0, dtype=torch.bool, device=boxes.device)
    x1, y1, x2, y2 = boxes.unbind(-1)
    corners = torch.stack([torch.stack([x1, y1], -1), torch.stack([x2, y1], -1), torch.stack([x2, y2], -1),
                           torch.stack([x1, y2], -1)], dim=1)                                   # [N, 4, 2]
    m = matrix.to(boxes.dtype).to(boxes.device)
    moved = corners @ m[:2, :2].T + m[:2, 2]
    out = torch.cat([moved.min(dim=1).values, moved.max(dim=1).values], dim=-1)
    out[:, 0::2] = out[:, 0::2].clamp(0, width)
    out[:, 1::2] = out[:, 1::2].clamp(0, height)
    keep = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
    return out, keep


def in_box_affine(image: Tensor, boxes: Tensor) -> Tensor:
    """STAC's in-box affine: a weak affine (translate +-5 %, rotate / shear +-10 degrees) of one random box's
    pixels; boxes are unchanged."""
    if len(boxes) == 0:
        return image
    k = int(torch.randint(0, len(boxes), ()))
    x1, y1, x2, y2 = (int(v) for v in boxes[k].tolist())
    if x2 - x1 < 2 or y2 - y1 < 2:
        return image
    crop = image[:, y1:y2, x1:x2]
    matrix = random_affine(crop.shape[1], crop.shape[2], translate=0.05, degrees=10.0)
    image = image.clone()
    image[:, y1:y2, x1:x2] = warp(crop, matrix)
    return image


def cutout(image: Tensor, iterations: tuple[int, int] = (1, 5), size: float = 0.2,
           fill: float = CUTOUT_FILL) -> Tensor:
    _, h, w = image.shape
    image = image.clone()
    for _ in range(int(torch.randint(iterations[0], iterations[1] + 1, ()))):
        side = _uniform(0.0, size) * min(h, w)
        cx, cy = _uniform(0, w), _uniform(0, h)
        x1, x2 = max(0, round(cx - side / 2)), min(w, round(cx + side / 2))
        y1, y2 = max(0, round(cy - side / 2)), min(h, round(cy + side / 2))
        image[:, y1:y2, x1:x2] = fill
    return image


def strong_view(image: Tensor, boxes: Tensor, in_box: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Colour and geometric op in random order, then cutout. Returns (image, boxes, keep mask, M): boxes are the
    transformed input boxes (only those with `keep` survive), M the geometric matrix (identity for an in-box
    affine). in_box: STAC's choice between the in-box and the global affine; Soft Teacher only has the global."""
    _, h, w = image.shape
    matrix = torch.eye(3, dtype=torch.float64)
    keep = torch.ones(len(boxes), dtype=torch.bool)
    geometric_first = bool(torch.rand(()) < 0.5)
    for step in ("geometric", "colour") if geometric_first else ("colour", "geometric"):
        if step == "colour":
            image = random_colour(image)
        elif in_box and bool(torch.rand(()) < 0.5):
            image = in_box_affine(image, boxes)
        else:
            matrix = random_affine(h, w)
            image = warp(image, matrix)
            boxes, keep = transform_boxes(boxes, matrix, h, w)
    return cutout(image), boxes, keep, matrix
