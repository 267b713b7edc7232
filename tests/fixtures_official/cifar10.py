"""CIFAR-10, "python version", tiny, in its official layout.

Layout (https://www.cs.toronto.edu/~kriz/cifar.html, cifar-10-python.tar.gz extracted; datasets/cifar10.yaml,
bench.data.archives.Cifar10Batches): ``cifar-10-batches-py/data_batch_1`` ... ``data_batch_5``,
``test_batch`` and ``batches.meta``. Each batch is a protocol-2 pickle of a dict with the keys the official
files carry (written by Python 2, so they load as bytes with ``encoding="bytes"``): ``batch_label``,
``labels`` (list of ints 0..9), ``data`` (uint8 N x 3072: the 1024 red values of a row-major 32x32 image, then
green, then blue) and ``filenames``; ``batches.meta`` holds ``label_names``, ``num_cases_per_batch`` and
``num_vis`` (3072). The real batches hold 10,000 images each; these hold ``per_batch``.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def images(rng: np.random.Generator, count: int, size: int = 32) -> np.ndarray:
    """uint8 [count, size, size, 3]: smooth random colour fields (bilinear up from 4x4)."""
    from PIL import Image

    out = np.empty((count, size, size, 3), dtype=np.uint8)
    for i in range(count):
        coarse = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        out[i] = np.asarray(Image.fromarray(coarse).resize((size, size), resample=Image.BILINEAR))
    return out


def write_cifar10(data_root: Path, per_batch: int = 4, seed: int = 0) -> Path:
    """cifar-10-batches-py/ under data_root; returns data_root."""
    rng = np.random.default_rng(seed)
    folder = data_root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, name in enumerate(names):
        pixels = images(rng, per_batch)
        labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        batch = {b"batch_label": f"{'testing' if name == 'test_batch' else 'training'} batch {b + 1} of 5".encode(),
                 b"labels": labels,
                 b"data": pixels.transpose(0, 3, 1, 2).reshape(per_batch, 3072),
                 b"filenames": [f"image_{b}_{i}.png".encode() for i in range(per_batch)]}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
    meta = {b"num_cases_per_batch": per_batch, b"label_names": [n.encode() for n in LABEL_NAMES], b"num_vis": 3072}
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(meta, handle, protocol=2)
    return data_root
