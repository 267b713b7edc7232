"""ImageNet-1k (ILSVRC-2012) for the DiT / U-DiT protocol, tiny, in its official layout, and ADM's reference batch.

Layouts (datasets/imagenet-256.yaml; bench.data.folders.ImageNetFolder reads them):
* ``imagenet/train/<wnid>/<wnid>_<n>.JPEG``: the extracted ILSVRC2012_img_train.tar (one tar per class, named
  by its WordNet id, files ``n01440764_10026.JPEG``), and ``imagenet/val/<wnid>/ILSVRC2012_val_<8 digits>.JPEG``
  (val sorted into class folders, the usual valprep.sh layout). All 1000 class folders are written, since the
  loader refuses a half-extracted copy; each holds ``per_class`` small JPEGs of a non-square size, so the ADM
  centre crop (bicubic up to short side 256, centre crop) runs as on real photos. The folder names are valid
  but synthetic WordNet ids (``n0000000k``, ascending), which gives the same sorted-wnid labels 0..999.
* ``imagenet/VIRTUAL_imagenet256_labeled.npz`` (https://openaipublic.blob.core.windows.net/diffusion/jul-2021/
  ref_batches/imagenet/256/VIRTUAL_imagenet256_labeled.npz, guided-diffusion's evaluations/evaluator.py): keys
  ``arr_0`` (uint8 [N, 256, 256, 3] reference images; 10,000 in the real file, a few here), ``arr_1`` (their
  labels), ``mu`` (2048) and ``sigma`` (2048 x 2048) of the Inception pool features, ``mu_s`` (2023) and
  ``sigma_s`` (2023 x 2023) of the spatial features sFID uses. Statistics are random (sigma symmetric positive
  definite), so a FID against it is a finite number that means nothing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

NUM_CLASSES = 1000
IMAGE_SIZE = (40, 30)  # (width, height): landscape, smaller than 256, so crop and upscale both run


def wnid(k: int) -> str:
    return f"n{k:08d}"


def _jpeg_bytes(rng: np.random.Generator, size: tuple[int, int]) -> bytes:
    import io

    from PIL import Image

    coarse = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize(size, resample=Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_imagenet(data_root: Path, per_class: int = 1, with_val: bool = True, seed: int = 0) -> Path:
    """imagenet/train (and imagenet/val) under data_root; returns data_root."""
    rng = np.random.default_rng(seed)
    splits = ["train", "val"] if with_val else ["train"]
    for split in splits:
        for k in range(NUM_CLASSES):
            folder = data_root / "imagenet" / split / wnid(k)
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(per_class):
                name = (f"{wnid(k)}_{10000 + n}.JPEG" if split == "train"
                        else f"ILSVRC2012_val_{k * per_class + n + 1:08d}.JPEG")
                (folder / name).write_bytes(_jpeg_bytes(rng, IMAGE_SIZE))
    return data_root


def random_statistics(rng: np.random.Generator, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """A mean and a symmetric positive-definite covariance of dimension ``dim`` (float64)."""
    mu = rng.normal(0, 0.1, size=dim)
    a = rng.normal(0, 1, size=(dim, 64))
    sigma = a @ a.T / 64 + 1e-3 * np.eye(dim)
    return mu, sigma


def write_adm_reference(path: Path, num_images: int = 4, seed: int = 0) -> Path:
    """ADM's reference batch .npz with the official keys (see the module docstring)."""
    rng = np.random.default_rng(seed)
    mu, sigma = random_statistics(rng, 2048)
    mu_s, sigma_s = random_statistics(rng, 2023)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = rng.integers(0, 256, size=(num_images, 256, 256, 3), dtype=np.uint8)
    labels = rng.integers(0, NUM_CLASSES, size=num_images)
    np.savez(path, arr_0=images, arr_1=labels, mu=mu, sigma=sigma, mu_s=mu_s, sigma_s=sigma_s)
    return path
