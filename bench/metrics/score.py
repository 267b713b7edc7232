"""Scoring files directly (what ``bench score METRIC --pred PATH --ref PATH`` runs).

Image dialects take an image pair or two folders whose images are matched by file stem (``baby.png`` with
``baby.png`` or ``baby.bmp``); no-reference dialects (niqe, musiq, clipiqa, maniqa) take ``--pred`` only.
Detection dialects take a COCO results JSON (``--pred``) and a COCO ground-truth JSON (``--ref``).
The result lists the matched file stems in ``extra["items"]``, in the order of ``per_item``.
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


def _images_by_stem(path: Path) -> dict[str, Path]:
    if path.is_file():
        return {path.stem: path}
    if not path.is_dir():
        raise BenchError(f"{path} is neither an image file nor a folder")
    files = {p.stem: p for p in sorted(path.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    if not files:
        raise BenchError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {path}")
    return files


def _load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except OSError as exc:
        raise BenchError(f"cannot read image {path}: {exc}") from None


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
        result = fn([_load_rgb(preds[s]) for s in stems], **kwargs)
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
        result = fn([_load_rgb(preds[s]) for s in stems], [_load_rgb(refs[s]) for s in stems], **kwargs)
    result.extra["items"] = stems
    result.protocol.setdefault("dialect", spec["protocol"])
    return result
