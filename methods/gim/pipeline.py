"""GIM's local manipulation pipeline as code: region proposal -> local edit -> blend with the exact mask -> random
degradations of both the real and the manipulated image.

GIM (papers-other 4.2): SAM segments objects of ImageNet / VOC photos, an LLM writes a prompt, and three generative
inpainters (Stable Diffusion, GLIDE, DDNM) repaint the masked object; three random degradations then hit both the
manipulated and the original image. Each inpainter is a "generator" of the benchmark (cross-generator setting: train on
one, test on the others).

Smoke scale (embedded photos, CPU): the same four steps with classical editors standing in for the generative ones,
each edit type a generator:
- ``copy-move``: the region is filled from elsewhere in the same photo, resampled (random shift, scale 0.8-1.25);
- ``splice``: the region is filled from another photo (random crop, resampled the same way) taken by another
  camera, whose sensor noise is 1.5-2.5x stronger or weaker than the host's (``SPLICE_NOISE_RATIO``);
- ``inpaint-telea``: OpenCV's Telea fast-marching inpainting of the region;
- ``inpaint-biharmonic``: scikit-image's biharmonic inpainting of the region.
Regions come from SLIC superpixels (scikit-image): one segment, grown by its neighbours until it covers 10-35 % of
the image: content-aligned "object" masks as SAM gives, without the model. Blending is a hard composite, so the mask
is exact: every pixel outside it is the original's, bit for bit (before the degradations, which touch every pixel).

Paper scale: ``sam_regions`` (segment-anything, a SAM checkpoint asset) and ``diffusion_inpaint`` (diffusers'
StableDiffusionInpaintPipeline from a local folder) do the two generative steps; a missing package or asset is one
clear error line. Everything is seeded: item i of a set is drawn from ``SeedSequence([seed, split code, i])``, and
every item carries a record of its draws (photo, crop, region, editor parameters, degradations).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from bench.registry import BenchError

GENERATORS = ("copy-move", "splice", "inpaint-telea", "inpaint-biharmonic")
SOURCE_SIDE = 160          # photos are shrunk to this side, then random crops (rescaled to `size`) are the images
REGION_FRACTION = (0.10, 0.35)
CAMERA_NOISE = (10.0, 20.0)  # per-photo sensor-noise sigma (0..255): the embedded photos are smooth downscales [I]
# a splice donor's camera is noisier or cleaner than the host's by 1.5-2.5x: with independent draws in CAMERA_NOISE
# many splices had the host's level, and a 150-step smoke detector did not learn splices on every seed [I]
SPLICE_NOISE_RATIO: tuple[float, float] | None = (1.5, 2.5)
DEGRADATION_PROB = 0.1     # each of the three degradations hits an image with this probability (GIM: "random")
JPEG_QUALITY = (70, 95)    # GIM's three degradations are not named (papers-other 4.2): JPEG, blur and noise [I]
BLUR_SIGMA = (0.4, 1.0)
NOISE_SIGMA = (1.0, 4.0)


@dataclass
class Item:
    image: np.ndarray          # HxWx3 uint8
    mask: np.ndarray           # HxW bool, exact: the pixels the editor replaced
    label: int                 # 1 manipulated, 0 authentic
    generator: str             # editor name, "authentic" for the real counterpart
    name: str
    record: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# region proposal

def propose_region(image: np.ndarray, rng: np.random.Generator, fraction=REGION_FRACTION) -> tuple[np.ndarray, dict]:
    """A content-aligned region (SLIC superpixels, grown to `fraction` of the image). Returns (bool mask, record)."""
    from scipy.ndimage import binary_dilation
    from skimage.segmentation import slic

    h, w = image.shape[:2]
    segments = slic(image, n_segments=int(rng.integers(10, 20)), compactness=10.0, start_label=0)
    lo, hi = int(fraction[0] * h * w), int(fraction[1] * h * w)
    labels = np.unique(segments)
    mask = segments == labels[int(rng.integers(len(labels)))]
    while mask.sum() < lo:
        ring = binary_dilation(mask) & ~mask
        neighbours = np.unique(segments[ring])
        grown = mask | (segments == neighbours[int(rng.integers(len(neighbours)))])
        if grown.sum() > hi:  # the next segment overshoots: take part of it, keep the mask connected
            break
        mask = grown
    if mask.sum() > hi or mask.sum() < max(4, lo // 2):
        mask = _ellipse(h, w, rng, fraction)  # degenerate segmentation (flat photo crop): an elliptic region
        kind = "ellipse-fallback"
    else:
        kind = "slic"
    ys, xs = np.nonzero(mask)
    return mask, {"proposal": kind, "bbox": [int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max())],
                  "fraction": round(float(mask.mean()), 4)}


def _ellipse(h: int, w: int, rng: np.random.Generator, fraction) -> np.ndarray:
    area = rng.uniform(*fraction) * h * w
    aspect = rng.uniform(0.6, 1.6)
    ry, rx = np.sqrt(area / np.pi * aspect), np.sqrt(area / np.pi / aspect)
    cy, cx = rng.uniform(ry, h - ry), rng.uniform(rx, w - rx)
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


# ---------------------------------------------------------------------------------------------------------
# local editors (each returns a full edited image; `blend` keeps only its masked pixels)

def _resampled(source: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A random crop of `source`, rescaled to `size` x `size` (bilinear): the resampling trace."""
    import cv2

    scale = float(rng.choice([-1.0, 1.0]) * rng.uniform(np.log(1.2), np.log(1.6)))
    scale = float(np.exp(scale))  # 0.62-0.83 or 1.2-1.6: a visible resampling, as a pasted object is rescaled
    side = min(int(round(size / scale)), source.shape[0], source.shape[1])
    top, left = (int(v) for v in rng.integers(0, np.array(source.shape[:2]) - side + 1))
    patch = cv2.resize(np.ascontiguousarray(source[top: top + side, left: left + side]), (size, size),
                       interpolation=cv2.INTER_LINEAR)
    return patch, {"scale": round(scale, 4), "from": [top, left, side]}


def copy_move(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
              same_photo: np.ndarray) -> tuple[np.ndarray, dict]:
    """Fill from another place of the same photo (`same_photo`: the whole photo at the image's scale)."""
    return _resampled(same_photo, image.shape[0], rng)


def splice(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, donor: np.ndarray) -> tuple[np.ndarray, dict]:
    """Fill from another photo (`donor`, at the image's scale)."""
    return _resampled(donor, image.shape[0], rng)


def inpaint_telea(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    import cv2

    radius = int(rng.integers(2, 5))
    return cv2.inpaint(np.ascontiguousarray(image), mask.astype(np.uint8) * 255, radius, cv2.INPAINT_TELEA), {"radius": radius}


def inpaint_biharmonic(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    from skimage.restoration import inpaint_biharmonic as biharmonic

    out = biharmonic(image.astype(np.float64) / 255.0, mask, channel_axis=-1)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8), {}


def blend(original: np.ndarray, edited: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Hard composite: the edited pixels inside the mask, the original's outside (so the mask is exact)."""
    return np.where(mask[:, :, None], edited, original).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------
# degradations (applied to real and manipulated images alike)

def degrade_randomly(image: np.ndarray, rng: np.random.Generator, prob: float = DEGRADATION_PROB) -> tuple[np.ndarray, list]:
    import cv2

    applied = []
    out = image
    if rng.random() < prob:
        sigma = float(rng.uniform(*BLUR_SIGMA))
        out = cv2.GaussianBlur(out, (0, 0), sigma)
        applied.append(["blur", round(sigma, 3)])
    if rng.random() < prob:
        sigma = float(rng.uniform(*NOISE_SIGMA))
        out = np.clip(np.round(out + rng.normal(0.0, sigma, out.shape)), 0, 255).astype(np.uint8)
        applied.append(["noise", round(sigma, 3)])
    if rng.random() < prob:
        quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        applied.append(["jpeg", quality])
    return out, applied


# ---------------------------------------------------------------------------------------------------------
# the smoke set

def camera_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian sensor noise: every smoke photo gets its own level before editing, so an editor leaves the low-level
    trace a real one does (an inpainted region is noise-free, a spliced one has another camera's noise, a resampled one
    a filtered noise); the embedded photos are downscaled, which removed theirs."""
    return np.clip(np.round(image + rng.normal(0.0, sigma, image.shape)), 0, 255).astype(np.uint8)


def _donor_camera(camera: float, rng: np.random.Generator) -> float:
    """A splice donor's sensor-noise sigma: another camera, whose level differs from the host's by a factor drawn
    log-uniformly in SPLICE_NOISE_RATIO, up or down (None: drawn independently in CAMERA_NOISE)."""
    if SPLICE_NOISE_RATIO is None:
        return float(rng.uniform(*CAMERA_NOISE))
    ratio = float(np.exp(rng.uniform(np.log(SPLICE_NOISE_RATIO[0]), np.log(SPLICE_NOISE_RATIO[1]))))
    return camera * ratio if rng.random() < 0.5 else camera / ratio


@lru_cache(maxsize=4)
def _sources(split: str) -> tuple[tuple[str, np.ndarray], ...]:
    from bench.data.smoke import _photos_cached

    return _photos_cached(split, SOURCE_SIDE)


def edit(generator: str, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
         donor: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    if generator == "copy-move":
        return copy_move(image, mask, rng, donor)
    if generator == "splice":
        return splice(image, mask, rng, donor)
    if generator == "inpaint-telea":
        return inpaint_telea(image, mask, rng)
    if generator == "inpaint-biharmonic":
        return inpaint_biharmonic(image, mask, rng)
    raise BenchError(f"unknown generator {generator!r}; known: {', '.join(GENERATORS)}")


def make_pair(split: str, generator: str, index: int, size: int, seed: int) -> tuple[Item, Item]:
    """The (authentic, manipulated) pair `index` of `generator` in `split`: one seeded draw, fully recorded."""
    sources = _sources(split)
    code = GENERATORS.index(generator) if generator in GENERATORS else len(GENERATORS)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0 if split == "train" else 1, code, index]))
    k = int(rng.integers(len(sources)))
    crop = int(rng.integers(size, 2 * size + 1))
    top, left = (int(v) for v in rng.integers(0, SOURCE_SIDE - crop + 1, size=2))
    import cv2

    real = cv2.resize(np.ascontiguousarray(sources[k][1][top: top + crop, left: left + crop]), (size, size),
                      interpolation=cv2.INTER_AREA)
    camera = float(rng.uniform(*CAMERA_NOISE))
    real = camera_noise(real, camera, rng)
    mask, region = propose_region(real, rng)
    donor, donor_name, donor_camera = None, None, None
    if generator in ("splice", "copy-move"):
        d = k
        if generator == "splice":
            d = int(rng.integers(len(sources) - 1))
            d += d >= k  # another photo
        side = max(size, int(round(SOURCE_SIDE * size / crop)))  # the donor photo at the image's scale
        donor = cv2.resize(np.ascontiguousarray(sources[d][1]), (side, side), interpolation=cv2.INTER_AREA)
        donor_camera = camera if d == k else _donor_camera(camera, rng)  # another camera for a splice
        donor = camera_noise(donor, donor_camera, rng)
        donor_name = sources[d][0]
    edited, params = edit(generator, real, mask, rng, donor)
    fake = blend(real, edited, mask)
    real_out, real_deg = degrade_randomly(real, rng)
    fake_out, fake_deg = degrade_randomly(fake, rng)
    base = {"split": split, "seed": seed, "index": index, "photo": sources[k][0], "crop": [top, left, crop],
            "size": size, "camera_noise": round(camera, 3)}
    name = f"{generator}_{split}_{index:04d}"
    authentic = Item(real_out, np.zeros((size, size), bool), 0, "authentic", f"{name}_au",
                     {**base, "pair_of": generator, "degradations": real_deg})
    manipulated = Item(fake_out, mask, 1, generator, f"{name}_tp",
                       {**base, "region": region, "editor": params, "donor": donor_name,
                        "donor_camera_noise": None if donor_camera is None else round(donor_camera, 3),
                        "degradations": fake_deg})
    return authentic, manipulated


def gim_smoke_set(split: str, generators: tuple[str, ...], pairs_per_generator: int, size: int = 32,
                  seed: int = 0) -> list[Item]:
    """Paired authentic/manipulated items for each generator (train from the train photos, test from the test ones)."""
    if split not in ("train", "test"):
        raise BenchError(f"split must be train or test, not {split!r}")
    items: list[Item] = []
    for g in generators:
        for i in range(pairs_per_generator):
            items.extend(make_pair(split, g, i, size, seed))
    return items


def records(items: list[Item]) -> list[dict[str, Any]]:
    """Per-item provenance rows (what the run store keeps beside the metrics)."""
    return [{"name": it.name, "label": it.label, "generator": it.generator, **it.record} for it in items]


# ---------------------------------------------------------------------------------------------------------
# paper scale: the generative steps (assets)

def _require_package(module: str, what: str, pip_name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise BenchError(f"{what} needs the Python package {pip_name!r} (pip install {pip_name})") from None


def sam_regions(image: np.ndarray, checkpoint: str | Path | None = None, model_type: str = "vit_h",
                device: str = "cpu", fraction=REGION_FRACTION) -> list[np.ndarray]:
    """SAM automatic masks of `image` whose area is within `fraction` (GIM's object regions). Without `checkpoint`
    the declared asset sam-vit-h ($BENCH_ASSETS/sam_vit_h_4b8939.pth; `bench assets gim`)."""
    if checkpoint is None:
        from bench.assets import require

        checkpoint = require("sam-vit-h")
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise BenchError(f"SAM checkpoint not found: {checkpoint} (download sam_vit_h_4b8939.pth from "
                         "https://github.com/facebookresearch/segment-anything#model-checkpoints)")
    sam_pkg = _require_package("segment_anything", "SAM region proposal", "segment-anything")
    sam = sam_pkg.sam_model_registry[model_type](checkpoint=str(checkpoint)).to(device)
    masks = sam_pkg.SamAutomaticMaskGenerator(sam).generate(image)
    area = image.shape[0] * image.shape[1]
    return [m["segmentation"] for m in masks if fraction[0] <= m["area"] / area <= fraction[1]]


def diffusion_inpaint(image: np.ndarray, mask: np.ndarray, prompt: str, model_dir: str | Path, seed: int,
                      device: str = "cpu", steps: int = 50) -> np.ndarray:
    """Stable Diffusion inpainting of the masked region (diffusers, local weights only), hard-blended back so that the
    mask stays exact (the VAE otherwise re-encodes every pixel)."""
    model_dir = Path(model_dir)
    if not (model_dir / "model_index.json").is_file():
        raise BenchError(f"inpainting model not found: {model_dir}/model_index.json (download "
                         "stabilityai/stable-diffusion-2-inpainting with huggingface-cli into that folder)")
    diffusers = _require_package("diffusers", "diffusion inpainting", "diffusers")
    import torch
    from PIL import Image

    pipe = diffusers.StableDiffusionInpaintPipeline.from_pretrained(str(model_dir), local_files_only=True).to(device)
    generator = torch.Generator(device=device).manual_seed(int(seed))
    h, w = image.shape[:2]
    out = pipe(prompt=prompt, image=Image.fromarray(image), mask_image=Image.fromarray(mask.astype(np.uint8) * 255),
               num_inference_steps=steps, generator=generator, height=h, width=w).images[0]
    return blend(image, np.asarray(out.convert("RGB").resize((w, h))), mask)


def smoke_dataset(split: str = "test", size: int = 32, pairs_per_generator: int = 12, seed: int = 0,
                  generators: tuple[str, ...] = GENERATORS):
    """The gim-smoke card's builder: {image, mask, label, generator, name, record} items of every generator."""
    from bench.data.base import InMemoryDataset

    items = gim_smoke_set(split, tuple(generators), pairs_per_generator, size, seed)
    return InMemoryDataset(f"gim-smoke-{split}", [{"image": it.image, "mask": it.mask, "label": it.label,
                                                  "generator": it.generator, "name": it.name, "record": it.record}
                                                 for it in items])
