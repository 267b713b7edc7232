"""Scoring files directly (what ``bench score METRIC --pred PATH --ref PATH`` runs).

Image dialects take an image pair or two folders whose images are matched by file stem (``baby.png`` with
``baby.png`` or ``baby.bmp``); no-reference dialects (niqe, musiq, clipiqa, maniqa) take ``--pred`` only.
Detection dialects take a COCO results JSON (``--pred``) and a COCO ground-truth JSON (``--ref``).
The result lists the matched file stems in ``extra["items"]``, in the order of ``per_item``.

Files are read at their own bit depth and converted by one declared rule (recorded in the result's protocol
as "file_inputs"), never silently:
- 8-bit files are used as they are; 16-bit PNG/TIFF are quantised to uint8 exactly as the image dialects
  quantise float inputs: v * 255 / 65535, rounded half to even (so a 16-bit copy of an 8-bit image, v * 257,
  scores as the 8-bit image); other depths (float, 32-bit) are refused;
- an alpha channel is dropped when fully opaque; a transparent pixel is refused (what it should be blended
  onto is not ours to guess);
- grey against colour is refused (a PSNR between a grey and an RGB image mixes two questions); two grey
  images are compared as one channel; palette images are expanded to the RGB they encode;
- two files with the same stem in one folder (x.png and x.bmp) are refused, naming both.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.metrics.base import MetricResult
from bench.registry import BenchError, load_target

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")
NO_REFERENCE = {"niqe", "musiq", "clipiqa", "maniqa"}
TAKES_CROP = {"psnr_y@matlab", "ssim_y@matlab", "psnr_y@basicsr", "ssim_y@basicsr", "psnr_rgb", "ssim_rgb",
              "lpips_alex", "lpips_vgg", "niqe"}


FILE_INPUTS_RULE = ("8-bit as read; 16-bit quantised like float inputs (v*255/65535, round half to even); "
                    "opaque alpha dropped, transparency refused; grey vs colour refused; palette expanded to RGB")


def _images_by_stem(path: Path) -> dict[str, Path]:
    if path.is_file():
        return {path.stem: path}
    if not path.is_dir():
        raise BenchError(f"{path} is neither an image file nor a folder")
    files: dict[str, Path] = {}
    for p in sorted(path.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES or not p.is_file():
            continue
        if p.stem in files:
            raise BenchError(f"ambiguous images in {path}: {files[p.stem].name} and {p.name} share the stem "
                             f"{p.stem!r}; keep one of them")
        files[p.stem] = p
    if not files:
        raise BenchError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {path}")
    return files


def _load(path: Path) -> tuple[np.ndarray, bool]:
    """(uint8 HxW or HxWx3 pixels, whether the file was 16-bit) by the module's declared rule."""
    from bench.data.images import read_image_native
    from bench.metrics.restoration import quantize_uint8

    image = read_image_native(path)
    pixels, layout = image.pixels, image.layout
    if layout in ("LA", "RGBA"):
        alpha = pixels[..., -1]
        full = (1 << image.bits) - 1
        if (alpha != full).any():
            raise BenchError(f"image {path} has {int((alpha != full).sum())} transparent pixels (alpha below "
                             f"{full}); flatten it onto its background first")
        pixels = pixels[..., 0] if layout == "LA" else pixels[..., :3]
    if image.bits == 16:
        pixels = quantize_uint8(pixels.astype(np.float64), 65535.0, str(path))
    return np.ascontiguousarray(pixels), image.bits == 16


def _load_pair(pred: Path, ref: Path) -> tuple[np.ndarray, np.ndarray, int]:
    p, p16 = _load(pred)
    r, r16 = _load(ref)
    if (p.ndim == 2) != (r.ndim == 2):
        grey, colour = (pred, ref) if p.ndim == 2 else (ref, pred)
        raise BenchError(f"{grey} is greyscale but {colour} is colour; convert one so both are grey or both RGB")
    return p, r, int(p16) + int(r16)


def _file_protocol(sixteen: int, files: int) -> dict[str, Any]:
    protocol: dict[str, Any] = {"file_inputs": FILE_INPUTS_RULE}
    if sixteen:
        protocol["file_inputs_16bit"] = f"{sixteen} of {files} files were 16-bit, quantised to uint8"
    return protocol


def score_files(dialect: str, pred: str | Path, ref: str | Path | None = None, crop_border: int = 0) -> MetricResult:
    from bench.metrics.api import dialect_spec

    spec = dialect_spec(dialect)
    if spec.get("target") is None:
        raise BenchError(f"{dialect!r} is only reported by papers; it cannot be scored here")
    fn = load_target(spec["target"])
    family = spec.get("family")
    if family == "detection":
        if ref is None:
            raise BenchError(f"{dialect} needs --ref (the COCO ground-truth JSON)")
        return fn(gt=Path(ref), dets=Path(pred))
    if family != "restoration":
        raise BenchError(f"bench score handles image and detection dialects; {dialect!r} is a {family} metric")
    preds = _images_by_stem(Path(pred))
    kwargs: dict[str, Any] = {"crop_border": crop_border} if dialect in TAKES_CROP else {}
    if crop_border and dialect not in TAKES_CROP:
        raise BenchError(f"{dialect} has no border crop")
    if dialect in NO_REFERENCE:
        stems = sorted(preds)
        loaded = [_load(preds[s]) for s in stems]
        result = fn([pixels for pixels, _ in loaded], **kwargs)
        file_protocol = _file_protocol(sum(wide for _, wide in loaded), len(loaded))
    else:
        if ref is None:
            raise BenchError(f"{dialect} is a full-reference metric: pass --ref")
        refs = _images_by_stem(Path(ref))
        if Path(pred).is_file() and Path(ref).is_file():
            stems, refs = [next(iter(preds))], {next(iter(preds)): Path(ref)}
        else:
            stems = sorted(set(preds) & set(refs))
            missing = sorted(set(preds) ^ set(refs))
            if not stems:
                raise BenchError(f"no file stem is shared by {pred} and {ref}")
            if missing:
                raise BenchError(f"{len(missing)} images have no partner (e.g. {missing[0]!r}); match names by stem")
        pairs = [_load_pair(preds[s], refs[s]) for s in stems]
        result = fn([p for p, _, _ in pairs], [r for _, r, _ in pairs], **kwargs)
        file_protocol = _file_protocol(sum(wide for _, _, wide in pairs), 2 * len(pairs))
    result.extra["items"] = stems
    result.protocol.setdefault("dialect", spec["protocol"])
    result.protocol.update(file_protocol)
    return result
