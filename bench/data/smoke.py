"""Embedded smoke datasets: built from data that ships inside the project's dependencies, no network.

`digits`: scikit-learn's 1,797 handwritten 8x8 digits (16 grey levels), scaled to 0..255 and upsampled
bilinearly to 16x16, one channel, uint8. Split by index: every sixth image (i % 6 == 0) is `test` (300),
the rest `train` (1,497). Deterministic, no randomness.

`photos`: real photographs shipped inside installed packages (scikit-image, scikit-learn, matplotlib), a fixed
train list and a disjoint test list; `photo_pairs` gives (HR, MATLAB-bicubic LR) pairs for SR.
`shapes_coco`: a synthetic detection set in COCO form (3 shape classes on photo crops) with the COCO-standard
semi-supervised partial split. `forensics_shapes`: authentic photo crops and manipulated ones (splice or blur
in-painting) with binary masks. `instruct_toy`: templated instructions in Dolly's fields.

Everything is deterministic (fixed lists, fixed seeds) and built in memory on first use (cached per process);
no set is ever called by a real dataset's name.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

DIGITS_SIZE = 16


@lru_cache(maxsize=None)
def _digits_all() -> tuple[np.ndarray, np.ndarray]:
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float64) * (255.0 / 16.0))[:, None]
    x = F.interpolate(x, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False)
    images = x.round().clamp(0, 255).to(torch.uint8).numpy()
    return images, bunch.target.astype(np.int64)


def digits(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 [N,1,16,16], labels int64 [N]) of the `train` or `test` split."""
    images, labels = _digits_all()
    is_test = np.arange(len(images)) % 6 == 0
    if split == "test":
        mask = is_test
    elif split == "train":
        mask = ~is_test
    else:
        raise ValueError(f"digits has splits 'train' and 'test', not {split!r}")
    return images[mask], labels[mask]


def digits_dataset(split: str = "train"):
    """`digits` as an IndexedDataset (items: image HWC uint8 16x16x1, label), for `open_dataset`."""
    from bench.data.base import InMemoryDataset

    images, labels = digits(split)
    items = [{"image": img.transpose(1, 2, 0), "label": int(y)} for img, y in zip(images, labels, strict=True)]
    return InMemoryDataset(f"digits-{split}", items)


# ---------------------------------------------------------------------------------------------------------
# photos

# (source, name): "skimage" = skimage.data.<name>(), "sklearn" = sklearn's load_sample_image, "matplotlib" =
# matplotlib's sample data. Only photographs (no synthetic test patterns), and only files that load offline
# (dependencies.md section 3). Grey photos are replicated to three channels. The two lists share no scene
# (the stereo motorcycle pair contributes only its left view, to train).
PHOTO_SOURCES: dict[str, list[tuple[str, str]]] = {
    "train": [("skimage", "astronaut"), ("skimage", "coffee"), ("skimage", "rocket"), ("sklearn", "china.jpg"),
              ("skimage", "hubble_deep_field"), ("skimage", "immunohistochemistry"),
              ("skimage", "stereo_motorcycle"), ("skimage", "camera"), ("skimage", "brick"),
              ("skimage", "grass"), ("skimage", "coins"), ("skimage", "moon")],
    "test": [("skimage", "chelsea"), ("sklearn", "flower.jpg"), ("matplotlib", "grace_hopper.jpg"),
             ("skimage", "retina"), ("skimage", "gravel"), ("skimage", "clock"), ("skimage", "page"),
             ("skimage", "cell")],
}


def _check_split(split: str, allowed: tuple[str, ...] = ("train", "test")) -> None:
    if split not in allowed:
        raise ValueError(f"split must be one of {allowed}, not {split!r}")


def _load_photo(source: str, name: str) -> np.ndarray:
    if source == "skimage":
        import skimage.data

        image = getattr(skimage.data, name)()
        if name == "stereo_motorcycle":
            image = image[0]  # (left, right, disparity): keep the left view
    elif source == "sklearn":
        # The JPEG that sklearn's load_sample_image decodes with PIL, read directly: importing sklearn
        # costs seconds on the 2-core runners.
        import importlib.util
        from pathlib import Path

        from bench.data.images import read_image

        package = Path(importlib.util.find_spec("sklearn").submodule_search_locations[0])
        image = read_image(package / "datasets" / "images" / name)
    else:
        import matplotlib.cbook
        from PIL import Image

        with matplotlib.cbook.get_sample_data(name) as f, Image.open(f) as im:
            image = np.array(im.convert("RGB"))
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3]).astype(np.uint8)


@lru_cache(maxsize=None)
def _photos_cached(split: str, size: int | None) -> tuple[tuple[str, np.ndarray], ...]:
    out = []
    for source, name in PHOTO_SOURCES[split]:
        image = _load_photo(source, name)
        if size is not None:
            image = _square_resize(image, size)
        image.setflags(write=False)
        out.append((name.split(".")[0], image))
    return tuple(out)


def _square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Centre square crop, then MATLAB-bicubic (antialiased) resize: the same filter as the SR LR path."""
    from bench.data.imresize import imresize

    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return imresize(image[top: top + side, left: left + side], output_shape=(size, size))


PHOTOS_DIR_ENV = "BENCH_PHOTOS_DIR"
_PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


def _extra_photos(size: int | None, load: bool = True) -> list[tuple[str, np.ndarray | None]]:
    """(name, image) of the images in the folder named by $BENCH_PHOTOS_DIR, sorted by file name, read
    with PIL as RGB; [] when the variable is unset or empty. Read on every call (not cached), so changing
    the variable or the folder takes effect at once. They extend the `train` split only: the test list
    stays the fixed, documented one so that reported smoke figures remain comparable."""
    import os
    from pathlib import Path

    from bench.registry import BenchError

    folder = os.environ.get(PHOTOS_DIR_ENV, "")
    if not folder:
        return []
    root = Path(folder)
    if not root.is_dir():
        raise BenchError(f"{PHOTOS_DIR_ENV}={folder!r} is not a folder")
    files = sorted(f for f in root.iterdir() if f.is_file() and f.suffix.lower() in _PHOTO_SUFFIXES)
    out: list[tuple[str, np.ndarray | None]] = []
    for f in files:
        image = None
        if load:
            from PIL import Image

            with Image.open(f) as im:
                image = np.array(im.convert("RGB"), dtype=np.uint8)
            if size is not None:
                image = _square_resize(image, size)
        out.append((f.stem, image))
    return out


def photos(split: str = "train", size: int | None = None) -> list[np.ndarray]:
    """The split's photos as HWC uint8 RGB arrays (copies). `size` gives size x size images: centre square
    crop then MATLAB-bicubic resize; None keeps each photo's own size."""
    _check_split(split)
    extra = [img for _, img in _extra_photos(size)] if split == "train" else []
    return [img.copy() for _, img in _photos_cached(split, size)] + extra


def photo_names(split: str = "train") -> list[str]:
    _check_split(split)
    extra = [name for name, _ in _extra_photos(None, load=False)] if split == "train" else []
    return [name.split(".")[0] for _, name in PHOTO_SOURCES[split]] + extra


def photo_pairs(split: str = "test", scale: int = 2, size: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(HR, LR) pairs: HR = the photo (optionally `size`-d) cropped to a multiple of `scale`, LR = its MATLAB
    bicubic downscale by `scale`, rounded to uint8 as MATLAB does for uint8 input."""
    from bench.data.imresize import bicubic_lr

    return [bicubic_lr(img, scale) for img in photos(split, size)]


def photos_dataset(split: str = "train", size: int | None = None, scale: int | None = None):
    """`photos` as an IndexedDataset: items {image, name}, or {hr, lr, scale, name} when `scale` is given."""
    from bench.data.base import InMemoryDataset

    names = photo_names(split)
    if scale is None:
        items = [{"image": img, "name": n} for n, img in zip(names, photos(split, size), strict=True)]
        return InMemoryDataset(f"photos-{split}", items)
    items = [{"hr": hr, "lr": lr, "scale": scale, "name": n}
             for n, (hr, lr) in zip(names, photo_pairs(split, scale, size), strict=True)]
    return InMemoryDataset(f"photos-{split}-x{scale}", items)


# ---------------------------------------------------------------------------------------------------------
# shapes-coco

SHAPE_CLASSES = ("rectangle", "ellipse", "triangle")
_SHAPES_COUNTS = {"train": 256, "val": 64}
_BACKGROUND_SIDE = 160  # photos are shrunk to this side, then random crops become the backgrounds


def _shape_mask(kind: str, size: int, x0: int, y0: int, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of one filled shape inside the box (x0, y0, w, h), sampled at pixel centres."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    if kind == "rectangle":
        return (xx >= x0) & (xx < x0 + w) & (yy >= y0) & (yy < y0 + h)
    if kind == "ellipse":
        cx, cy, rx, ry = x0 + w / 2, y0 + h / 2, w / 2, h / 2
        return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
    # Triangle: apex somewhere on the top edge, base along the bottom edge of the box.
    apex = (x0 + rng.uniform(0.2, 0.8) * w, y0)
    corners = [apex, (x0 + w, y0 + h), (x0, y0 + h)]
    inside = np.ones((size, size), dtype=bool)
    for (ax, ay), (bx, by) in zip(corners, corners[1:] + corners[:1], strict=True):
        inside &= (bx - ax) * (yy - ay) - (by - ay) * (xx - ax) >= 0
    return inside


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


@lru_cache(maxsize=None)
def _shapes_cached(split: str, size: int, seed: int) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    backgrounds = [img for _, img in _photos_cached("train" if split == "train" else "test", _BACKGROUND_SIDE)]
    n = _SHAPES_COUNTS[split]
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    coco = {"info": {"description": f"bench shapes-coco smoke set ({split}); synthetic, NOT COCO"},
            "images": [], "annotations": [],
            "categories": [{"id": i + 1, "name": c, "supercategory": "shape"} for i, c in enumerate(SHAPE_CLASSES)]}
    for i in range(n):
        bg = backgrounds[rng.integers(len(backgrounds))]
        top, left = rng.integers(0, _BACKGROUND_SIDE - size + 1, size=2)
        canvas = bg[top: top + size, left: left + size].astype(np.int16)
        boxes: list[tuple[int, int, int, int]] = []
        for _ in range(int(rng.integers(1, 5))):
            for _attempt in range(20):  # rejection sampling: objects never touch, so no box is occluded
                w, h = (int(v) for v in rng.integers(size // 6, size // 2, size=2))
                x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
                if all(x0 + w + 1 < bx or bx + bw + 1 < x0 or y0 + h + 1 < by or by + bh + 1 < y0
                       for bx, by, bw, bh in boxes):
                    break
            else:
                continue
            boxes.append((x0, y0, w, h))
            category = int(rng.integers(len(SHAPE_CLASSES)))
            mask = _shape_mask(SHAPE_CLASSES[category], size, x0, y0, w, h, rng)
            # A colour far from the local background mean, so every object is visible.
            local = canvas[mask].mean(axis=0) if mask.any() else np.full(3, 128.0)
            colour = np.where(local > 127, rng.integers(0, 60, size=3), rng.integers(196, 256, size=3))
            canvas[mask] = colour
            ys, xs = np.nonzero(mask)
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1, "image_id": i + 1, "category_id": category + 1,
                "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)],
                "area": int(mask.sum()), "iscrowd": 0, "segmentation": _rle(mask),
            })
        images[i] = canvas.astype(np.uint8)
        coco["images"].append({"id": i + 1, "file_name": f"shapes_{split}_{i + 1:06d}.png",
                               "width": size, "height": size})
    images.setflags(write=False)
    return images, coco


def _shapes_dataset(name: str, images: np.ndarray, coco: dict):
    import copy

    from bench.data.base import InMemoryDataset
    from bench.data.coco import coco_api

    coco = copy.deepcopy(coco)  # COCOeval writes into ground-truth dicts; keep the cached set pristine

    anns_by_image: dict[int, list] = {}
    for ann in coco["annotations"]:
        anns_by_image.setdefault(ann["image_id"], []).append(ann)
    # Image ids are 1..N in generation order, so id - 1 indexes the pixel array of the full split.
    items = [{"image": images[img["id"] - 1], "image_id": img["id"], "file_name": img["file_name"],
              "annotations": anns_by_image.get(img["id"], []), "width": img["width"], "height": img["height"]}
             for img in coco["images"]]
    return InMemoryDataset(name, items, data=coco, coco=coco_api(coco), categories=coco["categories"])


def shapes_coco(split: str = "train", size: int = 64, seed: int = 0):
    """The shapes detection set as an IndexedDataset of COCO-style items (image, image_id, file_name,
    annotations); `.data` is the COCO dict and `.coco` its pycocotools index, ready for COCOeval.
    256 train / 64 val images of `size` x `size`, 1-4 non-touching objects each, 3 classes."""
    _check_split(split, ("train", "val"))
    images, coco = _shapes_cached(split, size, seed)
    return _shapes_dataset(f"shapes-coco-{split}", images, coco)


def labelled_split(pct: float, fold: int, size: int = 64, seed: int = 0):
    """(labelled, unlabelled) views of shapes-coco train, drawn by the same COCO-standard partial-split code
    as the real COCO splits (`fold` is the split seed, 1-5 in the papers; draws are with replacement)."""
    from bench.data.coco import coco_partial_split

    images, coco = _shapes_cached("train", size, seed)
    labelled, unlabelled = coco_partial_split(coco, pct, fold)
    return (_shapes_dataset(f"shapes-coco-train.{fold}@{pct:g}", images, labelled),
            _shapes_dataset(f"shapes-coco-train.{fold}@{pct:g}-unlabeled", images, unlabelled))


# ---------------------------------------------------------------------------------------------------------
# forensics-shapes

_FORENSICS_COUNTS = {"train": 96, "test": 48}  # half authentic, half manipulated


def _region_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """A rectangle or ellipse covering roughly 5-30 % of the image."""
    w, h = (int(v) for v in rng.integers(size // 4, size // 2 + 1, size=2))
    x0, y0 = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
    kind = "rectangle" if rng.random() < 0.5 else "ellipse"
    return _shape_mask(kind, size, x0, y0, w, h, rng)


@lru_cache(maxsize=None)
def _forensics_cached(split: str, size: int, seed: int) -> tuple[dict, ...]:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng([seed, 2 if split == "train" else 3])
    sources = [img for _, img in _photos_cached(split, _BACKGROUND_SIDE)]

    def crop() -> tuple[int, np.ndarray]:
        k = int(rng.integers(len(sources)))
        top, left = rng.integers(0, _BACKGROUND_SIDE - size + 1, size=2)
        return k, sources[k][top: top + size, left: left + size].copy()

    n = _FORENSICS_COUNTS[split]
    kinds = ["authentic"] * (n // 2) + ["splice"] * (n // 4) + ["blur"] * (n - n // 2 - n // 4)
    rng.shuffle(kinds)
    items = []
    for i, kind in enumerate(kinds):
        k, image = crop()
        mask = np.zeros((size, size), dtype=bool)
        if kind == "splice":
            donor_k, donor = crop()
            while donor_k == k:  # paste from a different photo, as a real splice would
                donor_k, donor = crop()
            mask = _region_mask(size, rng)
            image[mask] = donor[mask]
        elif kind == "blur":
            mask = _region_mask(size, rng)
            blurred = gaussian_filter(image.astype(np.float64), sigma=(3.0, 3.0, 0.0))
            image[mask] = np.clip(np.round(blurred[mask]), 0, 255).astype(np.uint8)
        image.setflags(write=False)
        mask.setflags(write=False)
        items.append({"image": image, "mask": mask, "label": int(kind != "authentic"), "kind": kind,
                      "name": f"forensics_{split}_{i:04d}"})
    return tuple(items)


def forensics_shapes(split: str = "train", size: int = 64, seed: int = 0):
    """Manipulation detection smoke set: items {image HWC uint8, mask bool HW, label (1 = manipulated),
    kind (authentic / splice / blur), name}. 96 train / 48 test, half authentic. Manipulated images get a
    region spliced from a crop of another photo, or replaced by a Gaussian blur (sigma 3) of itself."""
    from bench.data.base import InMemoryDataset

    _check_split(split)
    return InMemoryDataset(f"forensics-shapes-{split}", list(_forensics_cached(split, size, seed)))


# ---------------------------------------------------------------------------------------------------------
# instruct-toy

_WORDS = ("apple", "river", "stone", "cloud", "garden", "window", "candle", "forest", "pencil", "bridge",
          "silver", "orange", "rabbit", "planet", "violin", "market", "butter", "shadow", "island", "mirror",
          "tiger", "ocean", "castle", "pepper", "winter", "summer", "yellow", "purple", "rocket", "anchor",
          "basket", "cotton", "dragon", "engine", "falcon", "ginger", "helmet", "jungle", "kettle", "lemon",
          "magnet", "needle", "oyster", "parrot", "quartz", "saddle", "tunnel", "velvet", "walnut", "zebra",
          "meadow", "harbor", "lantern", "marble", "nectar", "puzzle", "ribbon", "spider", "timber", "wagon")
_INSTRUCT_COUNTS = {"train": 512, "valid": 64, "test": 64}
INSTRUCT_CATEGORIES = ("add", "subtract", "multiply", "reverse", "capitalise", "first_letters", "count_letters",
                       "sort_numbers")


def _instruction(rng: np.random.Generator) -> dict[str, str]:
    category = INSTRUCT_CATEGORIES[int(rng.integers(len(INSTRUCT_CATEGORIES)))]
    word = _WORDS[int(rng.integers(len(_WORDS)))]
    a, b = (int(v) for v in rng.integers(0, 100, size=2))
    context = ""
    if category == "add":
        instruction, response = f"What is {a} plus {b}?", str(a + b)
    elif category == "subtract":
        instruction, response = f"What is {a} minus {b}?", str(a - b)
    elif category == "multiply":
        a, b = a % 13, b % 13
        instruction, response = f"What is {a} times {b}?", str(a * b)
    elif category == "reverse":
        instruction, response = f"Write the word '{word}' backwards.", word[::-1]
    elif category == "capitalise":
        instruction, response = f"Write the word '{word}' in capital letters.", word.upper()
    elif category == "first_letters":
        words = [_WORDS[int(k)] for k in rng.choice(len(_WORDS), size=3, replace=False)]
        instruction = "List the first letter of each word in the input, separated by commas."
        context, response = " ".join(words), ", ".join(w[0] for w in words)
    elif category == "count_letters":
        instruction, response = f"How many letters are in the word '{word}'?", str(len(word))
    else:
        numbers = [int(v) for v in rng.integers(0, 50, size=int(rng.integers(3, 6)))]
        instruction = "Sort the numbers in the input from smallest to largest."
        context, response = ", ".join(map(str, numbers)), ", ".join(map(str, sorted(numbers)))
    return {"instruction": instruction, "context": context, "response": response, "category": category}


@lru_cache(maxsize=None)
def _instruct_cached(seed: int) -> dict[str, tuple[dict[str, str], ...]]:
    rng = np.random.default_rng([seed, 4])
    seen: set[tuple[str, str]] = set()
    out: dict[str, tuple[dict[str, str], ...]] = {}
    for split in ("test", "valid", "train"):  # held-out splits first; train never repeats their prompts
        records: list[dict[str, str]] = []
        while len(records) < _INSTRUCT_COUNTS[split]:
            rec = _instruction(rng)
            key = (rec["instruction"], rec["context"])
            if key not in seen:
                seen.add(key)
                records.append(rec)
        out[split] = tuple(records)
    return out


def instruct_toy(split: str = "train", seed: int = 0) -> list[dict[str, str]]:
    """Templated instructions with exact answers in Dolly's fields (instruction, context, response,
    category): 512 train / 64 valid / 64 test, no prompt shared between splits."""
    _check_split(split, ("train", "valid", "test"))
    return [dict(r) for r in _instruct_cached(seed)[split]]


def instruct_toy_dataset(split: str = "train", seed: int = 0):
    """`instruct_toy` as an IndexedDataset with the fields InstructionJsonl produces."""
    from bench.data.base import InMemoryDataset

    items = [dict(r, references=[r["response"]]) for r in instruct_toy(split, seed)]
    return InMemoryDataset(f"instruct-toy-{split}", items)


def write_jsonl(records: list[dict], path) -> None:
    """Write records as JSON Lines (e.g. instruct_toy for an lm-eval task or the InstructionJsonl loader)."""
    import json
    from pathlib import Path

    Path(path).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------
# degradations (restoration smoke pairs over `photos`)
#
# Every degradation maps a uint8 HWC image to a uint8 HWC image and is a pure function of
# (image, kind, level, seed): all randomness comes from numpy.random.default_rng(seed). Each works in float64
# on the 0..255 scale, then rounds and clips to uint8 once at the end.

# Level ranges per kind (lo, hi): lo < level <= hi, except jpeg: an integer quality with lo <= q <= hi.
DEGRADATION_LEVELS: dict[str, tuple[float, float]] = {
    "noise": (0.0, 75.0),   # Gaussian sigma on the 0..255 scale; papers report 15 / 25 / 50 (75 for FFDNet)
    "blur": (0.0, 10.0),    # Gaussian blur sigma in pixels
    "jpeg": (10, 40),       # PIL JPEG quality; the JPEG-artifact papers report 10 / 20 / 30 / 40
    "rain": (0.0, 0.1),     # fraction of pixels that start a streak
    "haze": (0.0, 3.0),     # scattering coefficient beta (depth runs 0..1)
    "snow": (0.0, 0.05),    # fraction of pixels that seed a flake
}
NOISE_LEVELS = (15, 25, 50)
JPEG_QUALITIES = (10, 20, 30, 40)

# Synthetic-weather constants: the papers' rain/haze/snow sets were made with other generators (Rain100,
# RESIDE, Snow100K) whose exact parameters are not all published, so these are documented choices.
RAIN_ANGLE_DEG = 75.0        # streak direction, degrees from the horizontal (a steady slant, as in Rain100)
RAIN_LENGTH_FRACTION = 0.08  # streak length as a fraction of the image's shorter side (at least 3 px)
RAIN_BRIGHTNESS = (40.0, 90.0)  # additive intensity of one streak, uniform in this range (0..255 scale)
HAZE_AIRLIGHT = 0.9          # global atmospheric light A on the 0..1 scale (RESIDE draws A in 0.7..1.0)
SNOW_FLAKE_RADII = (1, 2, 3)  # flake radii in px; bigger flakes are rarer (density weights below)
SNOW_RADIUS_WEIGHTS = (0.6, 0.3, 0.1)


def _check_degradation(kind: str, level: float) -> None:
    from bench.registry import BenchError

    if kind not in DEGRADATION_LEVELS:
        raise BenchError(f"unknown degradation {kind!r}; known: {', '.join(DEGRADATION_LEVELS)}")
    lo, hi = DEGRADATION_LEVELS[kind]
    numeric = isinstance(level, (int, float, np.integer, np.floating)) and not isinstance(level, bool)
    if kind == "jpeg":
        if not numeric or not float(level).is_integer() or not lo <= level <= hi:
            raise BenchError(f"jpeg quality must be an integer in {lo}..{hi}, not {level!r}")
    elif not numeric or not lo < level <= hi:
        raise BenchError(f"{kind} level must be in ({lo:g}, {hi:g}], not {level!r}")


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    # KAIR/SwinIR add N(0, sigma/255) to the float [0,1] image; on the 0..255 scale that is N(0, sigma).
    # We then round and clip to uint8 (as when such a noisy image is saved), so the returned noise is
    # slightly less than sigma near 0 and 255 (about 1 % at sigma 50 on mid-grey).
    return _to_uint8(image + rng.normal(0.0, sigma, size=image.shape))


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return _to_uint8(gaussian_filter(image, sigma=(sigma, sigma, 0.0), mode="reflect"))


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    import io

    from PIL import Image

    # PIL's defaults otherwise (4:2:0 chroma subsampling for RGB, as in the papers' PIL/OpenCV pipelines).
    channels = image.shape[2]
    pil = Image.fromarray(image[:, :, 0] if channels == 1 else image)
    buffer = io.BytesIO()
    pil.save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        out = np.array(decoded.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    return out.reshape(image.shape)


def _line_kernel(length: int, angle_deg: float) -> np.ndarray:
    """A 0/1 kernel holding a one-pixel-wide segment of `length` px through its centre at `angle_deg`."""
    half = (length - 1) / 2
    t = np.linspace(-half, half, 4 * length)
    dx, dy = np.cos(np.radians(angle_deg)), -np.sin(np.radians(angle_deg))  # rows grow downwards
    side = 2 * int(np.ceil(half)) + 1
    kernel = np.zeros((side, side))
    kernel[np.round(side // 2 + t * dy).astype(int), np.round(side // 2 + t * dx).astype(int)] = 1.0
    return kernel


def _rain(image: np.ndarray, density: float, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import convolve, gaussian_filter

    h, w = image.shape[:2]
    # Draw the same random fields whatever the density, so a higher density only adds streaks.
    starts = rng.random((h, w)) < density
    strength = rng.uniform(*RAIN_BRIGHTNESS, size=(h, w))
    seeds = np.where(starts, strength, 0.0)
    length = max(3, round(RAIN_LENGTH_FRACTION * min(h, w)))
    # Convolving the seed points with a line segment smears each along the rain direction (a motion blur);
    # a light Gaussian then softens the streak edges. Both kernels are non-negative.
    streaks = gaussian_filter(convolve(seeds, _line_kernel(length, RAIN_ANGLE_DEG), mode="constant"), 0.5)
    return _to_uint8(image + streaks[:, :, None])  # additive: rain only brightens


def haze_transmission(h: int, w: int, beta: float) -> np.ndarray:
    """t = exp(-beta * d) for the synthetic depth d: a vertical linear ramp from 1 (top row, far: the sky)
    to 0 (bottom row, near). Shape (h, w), float64."""
    depth = np.linspace(1.0, 0.0, h)[:, None] * np.ones((1, w))
    return np.exp(-beta * depth)


def _haze(image: np.ndarray, beta: float) -> np.ndarray:
    # Atmospheric scattering model I = J t + A (1 - t) on the 0..1 scale, deterministic (no randomness).
    t = haze_transmission(image.shape[0], image.shape[1], beta)[:, :, None]
    return _to_uint8((image / 255.0 * t + HAZE_AIRLIGHT * (1.0 - t)) * 255.0)


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius: radius + 1, -radius: radius + 1]
    return xx ** 2 + yy ** 2 <= radius ** 2


def _snow(image: np.ndarray, density: float, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import gaussian_filter, grey_dilation

    h, w = image.shape[:2]
    clear = np.ones((h, w))  # product of (1 - opacity) over the flake layers
    for radius, weight in zip(SNOW_FLAKE_RADII, SNOW_RADIUS_WEIGHTS, strict=True):
        # Fixed draws per layer whatever the density, so a higher density only adds flakes.
        seeds = rng.random((h, w)) < density * weight
        opacity = rng.uniform(0.6, 1.0, size=(h, w))
        flakes = grey_dilation(np.where(seeds, opacity, 0.0), footprint=_disk(radius))
        clear *= 1.0 - np.clip(gaussian_filter(flakes, sigma=radius / 2), 0.0, 1.0)
    alpha = (1.0 - clear)[:, :, None]
    return _to_uint8(image + alpha * (255.0 - image))  # blend toward white: snow only brightens


def degrade(image: np.ndarray, kind: str, level: float, seed: int = 0) -> np.ndarray:
    """Degrade a uint8 HWC image (1 or 3 channels) by `kind` at `level`; deterministic given
    (image, kind, level, seed). Kinds and levels (DEGRADATION_LEVELS): noise (sigma, 0..255 scale),
    blur (Gaussian sigma, px), jpeg (quality 10..40), rain (streak density), haze (beta), snow (flake
    density). Returns a new uint8 array of the same shape."""
    from bench.registry import BenchError

    _check_degradation(kind, level)
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (1, 3):
        raise BenchError(f"degrade expects a uint8 HxWx1 or HxWx3 image, got {image.dtype} {image.shape}")
    if kind == "jpeg":
        return _jpeg(image, int(level))
    rng = np.random.default_rng(seed)
    x = image.astype(np.float64)
    if kind == "noise":
        return _add_noise(x, float(level), rng)
    if kind == "blur":
        return _blur(x, float(level))
    if kind == "rain":
        return _rain(x, float(level), rng)
    if kind == "haze":
        return _haze(x, float(level))
    return _snow(x, float(level), rng)


def image_seed(seed: int, index: int) -> int:
    """The seed of image `index` in `degraded_pairs`: a function of (seed, index) only, so one image's
    degradation never depends on which other images are processed or in what order."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def degraded_pairs(split: str, kind: str, level: float, seed: int = 0,
                   size: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(clean, degraded) pairs over `photos(split, size)`; image i is degraded with image_seed(seed, i)."""
    _check_degradation(kind, level)  # fail before loading any photo
    return [(clean, degrade(clean, kind, level, image_seed(seed, i)))
            for i, clean in enumerate(photos(split, size))]
