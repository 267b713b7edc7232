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
    from bench.data.imresize import imresize

    out = []
    for source, name in PHOTO_SOURCES[split]:
        image = _load_photo(source, name)
        if size is not None:
            # Centre square crop, then MATLAB-bicubic (antialiased) resize: the same filter as the SR LR path.
            h, w = image.shape[:2]
            side = min(h, w)
            top, left = (h - side) // 2, (w - side) // 2
            image = imresize(image[top: top + side, left: left + side], output_shape=(size, size))
        image.setflags(write=False)
        out.append((name.split(".")[0], image))
    return tuple(out)


def photos(split: str = "train", size: int | None = None) -> list[np.ndarray]:
    """The split's photos as HWC uint8 RGB arrays (copies). `size` gives size x size images: centre square
    crop then MATLAB-bicubic resize; None keeps each photo's own size."""
    _check_split(split)
    return [img.copy() for _, img in _photos_cached(split, size)]


def photo_names(split: str = "train") -> list[str]:
    _check_split(split)
    return [name.split(".")[0] for _, name in PHOTO_SOURCES[split]]


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
    backgrounds = photos("train" if split == "train" else "test", _BACKGROUND_SIDE)
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
    sources = photos(split, _BACKGROUND_SIDE)

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
