"""Helpers for tests that write small datasets in the official layouts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def save_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def random_image(rng: np.random.Generator, h: int, w: int, c: int = 3) -> np.ndarray:
    shape = (h, w, c) if c > 1 else (h, w)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)
