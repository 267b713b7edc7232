"""Image file reading with PIL: one-line errors that name the file, and deterministic file listing.

Every loader reads images through `read_image` so that a corrupt, truncated or missing file always fails with
the same one-line `BenchError` naming its path (never a PIL traceback deep inside a data-loader worker).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
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


# ------------------------------------------------------------------------------------------- native reading
@dataclass(frozen=True)
class NativeImage:
    """An image file's pixels at their own bit depth: uint8 or uint16, HxW ("L"), HxWx2 ("LA"), HxWx3 ("RGB")
    or HxWx4 ("RGBA"). Nothing is clipped, rescaled or blended: what to do with depth and alpha is the
    caller's declared rule (bench/metrics/score.py)."""

    pixels: np.ndarray
    layout: str
    bits: int
    path: Path


# PIL modes that are one of our layouts after a lossless conversion (a palette is an encoding of RGB, "1" of L)
_LOSSLESS = {"1": "L", "L": "L", "LA": "LA", "La": "LA", "RGB": "RGB", "RGBX": "RGB", "RGBA": "RGBA",
             "PA": "RGBA", "YCbCr": "RGB"}
_SIXTEEN_BIT_GREY = {"I;16", "I;16B", "I;16L", "I;16N"}


def _png_header(path: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR chunk, None for another format."""
    with open(path, "rb") as handle:
        head = handle.read(26)
    if len(head) < 26 or not head.startswith(b"\x89PNG\r\n\x1a\n") or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _stored_bits(im, path: Path) -> int:
    """Bits per sample as stored in the file (PIL silently keeps only the high byte of 16-bit colour)."""
    if im.format == "PNG":
        header = _png_header(path)
        return header[0] if header else 8
    if im.format == "TIFF":
        bits = im.tag_v2.get(258, (8,))
        return max(bits) if isinstance(bits, tuple) else int(bits)
    return 16 if im.mode in _SIXTEEN_BIT_GREY else 8


def _read_16bit_colour(path: Path, png_colour_type: int | None) -> NativeImage:
    """16-bit colour PNG/TIFF through OpenCV (installed with pyiqa), which keeps all 16 bits."""
    import cv2

    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype != np.uint16:
        raise BenchError(f"cannot read the 16-bit image {path} at its bit depth; save it as an 8- or 16-bit "
                         f"RGB PNG")
    if pixels.ndim == 2:
        return NativeImage(pixels, "L", 16, path)
    channels = pixels.shape[2]
    if channels == 4 and png_colour_type == 4:  # grey + alpha, which OpenCV expands to BGRA
        return NativeImage(np.ascontiguousarray(pixels[..., [0, 3]]), "LA", 16, path)
    if channels == 3:
        return NativeImage(np.ascontiguousarray(pixels[..., ::-1]), "RGB", 16, path)
    if channels == 4:
        return NativeImage(np.ascontiguousarray(pixels[..., [2, 1, 0, 3]]), "RGBA", 16, path)
    raise BenchError(f"image {path} has {channels} channels; expected grey, RGB or RGBA")


def read_image_native(path: str | Path) -> NativeImage:
    """Read an image file without losing depth or alpha; anything else is one BenchError line naming the file:
    a corrupt or truncated file, several frames, floating-point or 32-bit samples, CMYK and other spaces."""
    import warnings

    path = Path(path)
    if not path.is_file():
        raise BenchError(f"image not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # PIL only warns about a truncated TIFF: refuse it
            return _decode_native(path)
    except BenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises a zoo (OSError, SyntaxError, struct.error...) on bad files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(f"corrupt or unreadable image {path}: {reason}") from None


def _decode_native(path: Path) -> NativeImage:
    from PIL import Image

    with Image.open(path) as im:
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
            raise BenchError(f"image {path} has {frames} frames; give one image per file")
        im.load()
        bits = _stored_bits(im, path)
        header = _png_header(path) if im.format == "PNG" else None
        if bits == 16 and im.mode not in _SIXTEEN_BIT_GREY:
            return _read_16bit_colour(path, header[1] if header else None)
        if im.mode == "F" or bits not in (1, 2, 4, 8, 16):
            kind = "floating-point" if im.mode == "F" else f"{bits}-bit"
            raise BenchError(f"image {path} has {kind} samples (mode {im.mode}); bench reads 8- and 16-bit "
                             f"images: save it as an 8- or 16-bit PNG")
        if im.mode in _SIXTEEN_BIT_GREY or (im.mode == "I" and bits == 16):
            return NativeImage(np.array(im).astype(np.uint16), "L", 16, path)
        if im.mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        if im.mode not in _LOSSLESS:
            kind = {"I": "32-bit integer"}.get(im.mode, f"{im.mode} colour")
            raise BenchError(f"image {path} has {kind} pixels (mode {im.mode}); save it as an 8- or 16-bit "
                             f"grey or RGB PNG")
        layout = _LOSSLESS[im.mode]
        if im.mode != layout:
            im = im.convert(layout)
        return NativeImage(np.array(im, dtype=np.uint8), layout, 8, path)
