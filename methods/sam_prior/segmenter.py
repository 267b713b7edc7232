"""The semantic prior: a label map per training image, from SAM (small/paper) or a weight-free stand-in (smoke).

* ``sam``: the official ``segment-anything`` package, ``SamAutomaticMaskGenerator`` over a ViT-B/H checkpoint in its
  official layout (the ``sam_vit_b_01ec64.pth`` / ``sam_vit_h_4b8939.pth`` files of the SAM release), declared as
  assets in methods/sam_prior/assets.yaml. Missing file or package -> one BenchError line.
* ``slic`` / ``felzenszwalb``: scikit-image superpixels, the smoke stand-in (no weights, deterministic).

SAM gives overlapping binary masks; we paint them largest first so that smaller (finer) masks win, and pixels no
mask covers keep label 0 (a "background" region). Every label map is int32 HxW.

Masks are computed once per training image and cached as .npy under the run store's shared work area
(``<store>/sam-prior/_shared/masks/<source>-<digest>/``), so every entry, seed and run reuses them.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.registry import BenchError

SOURCES = ("sam", "slic", "felzenszwalb")
SAM_ASSETS = {"vit_b": "sam-vit-b", "vit_h": "sam-vit-h"}


def slic_labels(image: np.ndarray, n_segments: int = 24, compactness: float = 10.0, sigma: float = 1.0) -> np.ndarray:
    """SLIC superpixels. sigma 1 pre-smooths: on the noisy (sigma 25) smoke photos SLIC without it returns 1-3
    segments instead of ~20 (measured on the 12 train photos at 96x96)."""
    from skimage.segmentation import slic

    return slic(image, n_segments=n_segments, compactness=compactness, sigma=sigma, start_label=0,
                channel_axis=-1).astype(np.int32)


def felzenszwalb_labels(image: np.ndarray, scale: float = 100.0, sigma: float = 0.8,
                        min_size: int = 20) -> np.ndarray:
    from skimage.segmentation import felzenszwalb

    return felzenszwalb(image, scale=scale, sigma=sigma, min_size=min_size).astype(np.int32)


def masks_to_labels(masks: list[dict[str, Any]], shape: tuple[int, int]) -> np.ndarray:
    """SAM's automatic masks (dicts with a boolean ``segmentation`` and an ``area``) -> one label map."""
    labels = np.zeros(shape, dtype=np.int32)
    for k, m in enumerate(sorted(masks, key=lambda m: -int(m["area"])), start=1):
        labels[np.asarray(m["segmentation"], dtype=bool)] = k
    return labels


class SamLabeler:
    """SAM's automatic mask generator on one device; built once, applied to many images."""

    def __init__(self, model_type: str = "vit_b", device: str = "cpu", points_per_side: int = 32):
        if model_type not in SAM_ASSETS:
            raise BenchError(f"unknown SAM model {model_type!r}; known: {', '.join(SAM_ASSETS)}")
        try:
            from segment_anything import SamAutomaticMaskGenerator, sam_model_registry
        except ImportError:
            raise BenchError("the segment-anything package is missing: pip install segment-anything "
                             "(pure Python; pyproject lists it)") from None
        from bench.assets import require

        checkpoint = require(SAM_ASSETS[model_type])  # one clear line when the weights are absent
        sam = sam_model_registry[model_type](checkpoint=str(checkpoint)).to(device).eval()
        self.generator = SamAutomaticMaskGenerator(sam, points_per_side=points_per_side)
        self.model_type = model_type

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return masks_to_labels(self.generator.generate(np.ascontiguousarray(image)), image.shape[:2])


def make_labeler(prior: dict[str, Any], device: str = "cpu"):
    """A function uint8 HxWx3 -> int32 HxW label map for the spec's ``prior`` knobs."""
    source = prior.get("source")
    if source == "slic":
        return lambda im: slic_labels(im, int(prior.get("n_segments", 24)), float(prior.get("compactness", 10.0)),
                                     float(prior.get("sigma", 1.0)))
    if source == "felzenszwalb":
        return lambda im: felzenszwalb_labels(im, float(prior.get("scale", 100.0)))
    if source == "sam":
        return SamLabeler(prior.get("sam_model", "vit_b"), device, int(prior.get("points_per_side", 32)))
    raise BenchError(f"unknown prior source {source!r}; known: {', '.join(SOURCES)}")


def cached_labels(images: list[np.ndarray], prior: dict[str, Any], cache_root: Path, fingerprint: str,
                  device: str = "cpu", log=lambda m: None) -> list[np.ndarray]:
    """Label maps of ``images``, computed once and kept in ``cache_root/<source>-<digest>/<index>.npy``.

    The digest covers the prior's knobs and the images' fingerprint, so another segmenter or other images never
    reuse a wrong cache."""
    key = json.dumps({"prior": prior, "images": fingerprint}, sort_keys=True)
    folder = Path(cache_root) / f"{prior.get('source')}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "key.json").write_text(key)
    labeler = None
    out = []
    for i, image in enumerate(images):
        path = folder / f"{i:06d}.npy"
        if path.exists():
            out.append(np.load(path))
            continue
        if labeler is None:
            labeler = make_labeler(prior, device)
            log(f"  computing {prior.get('source')} masks for {len(images)} training images into {folder}")
        labels = labeler(image)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, labels)
        tmp.replace(path)  # atomic: a killed run never leaves half a file
        out.append(labels)
    return out
