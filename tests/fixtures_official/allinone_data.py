"""A tiny data root in the official layouts the all-in-one cards name (datasets/*.yaml): clean-image folders
(BSD400, WED, CBSD68), paired input/target folders (GoPro, Rain100L), RESIDE's hazy/clear naming with the
<id>_<A>_<beta> stems (OTS, SOTS outdoor) and Snow100K's synthetic/gt folders. Images are random 64x64 PNG/JPEG."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def _img(path: Path, rng: np.random.Generator, size: int = 64) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


def write_allinone_data_root(root: Path, n: int = 2) -> Path:
    rng = np.random.default_rng(0)
    for folder in ("denoising/train/BSD400", "denoising/train/WED", "testsets/CBSD68"):
        for i in range(n):
            _img(root / folder / f"{i:04d}.png", rng)
    for base in ("deblurring/train/GoPro", "deblurring/test/GoPro", "deraining/train/Rain100L",
                 "deraining/test/Rain100L"):
        for i in range(n):
            _img(root / base / "input" / f"{i:04d}.png", rng)
            _img(root / base / "target" / f"{i:04d}.png", rng)
    for base, clean in (("dehazing/OTS", "clear"), ("dehazing/SOTS/outdoor", "gt")):
        for i in range(n):
            _img(root / base / "hazy" / f"{i:04d}_0.8_0.2.jpg", rng)
            _img(root / base / clean / f"{i:04d}.png", rng)
    for base in ("desnowing/Snow100K/train", "desnowing/Snow100K/test/Snow100K-L"):
        for i in range(n):
            _img(root / base / "synthetic" / f"{i:04d}.jpg", rng)
            _img(root / base / "gt" / f"{i:04d}.jpg", rng)
    return root
