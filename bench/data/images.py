"""Image file reading with PIL: one-line errors that name the file, and deterministic file listing.

Every loader reads images through `read_image` so that a corrupt, truncated or missing file always fails with
the same one-line `BenchError` naming its path (never a PIL traceback deep inside a data-loader worker).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from bench.registry import BenchError

# The extensions the official datasets use (PNG for SR/restoration sets, JPEG for ImageNet/COCO/VOC, BMP for
# some classic test sets, TIFF for a few of the denoising sets). Matching is case-insensitive (".JPEG").
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def is_image_file(name: str | Path) -> bool:
    return str(name).lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files under `folder`, sorted by their path relative to it (a stable order on every machine)."""
    pattern = "**/*" if recursive else "*"
    files = [p for p in folder.glob(pattern) if p.is_file() and is_image_file(p.name)]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _decode(fp, label: str, mode: str | None) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(fp) as im:
            im.load()  # decode now: a truncated file fails here rather than later, half-read
            if mode is not None and im.mode != mode:
                im = im.convert(mode)
            return np.array(im)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BenchError(f"corrupt or unreadable image {label}: {reason}") from None


def read_image(path: str | Path, mode: str | None = "RGB") -> np.ndarray:
    """Read an image file as a uint8 array: HWC for "RGB", HW for "L"; `mode=None` keeps the file's own mode."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"image not found: {path}")
    return _decode(path, str(path), mode)


def read_image_bytes(data: bytes, label: str, mode: str | None = "RGB") -> np.ndarray:
    """Decode an image held in memory (e.g. a zip member); `label` names it in errors."""
    return _decode(io.BytesIO(data), label, mode)


def read_mask(path: str | Path, threshold: int = 128) -> np.ndarray:
    """Read a binary mask as bool HW: grey level >= `threshold` is foreground.

    Forensics masks are stored as 0/255 PNGs, but JPEG-compressed or anti-aliased masks contain intermediate
    values; 128 splits them at mid-grey (the IMDLBenCo convention of mask/255 > 0.5).
    """
    return read_image(path, mode="L") >= threshold
