"""The super-resolution training and evaluation loop every SR paper of the harness shares.

* `SRPatchDataset`: aligned random LR/HR patches of paired images (BasicSR/EDSR style: LR patch p at a random
  position, the HR patch p*s at the same place), with the usual random h-flip, v-flip and transpose.
  The randomness comes from torch's global generator, which bench.train seeds per rank and checkpoints, so
  a run resumes bit-exactly with ``num_workers=0`` (and is deterministic for a fresh run with workers).
* `train_sr`: L1 loss in the model's own value range, through the one shared loop (bench.train.train).
* `inference_model`: the network used for evaluation: ``model.deploy()`` when the model has one (structural
  re-parameterisation, e.g. LIPT), else the model in eval mode.
* `super_resolve`: one whole-image forward (the model's own padding), optionally the x8 flip/rotate
  self-ensemble (a declared flag: numbers with and without it are not comparable).
* `evaluate_sr`: per-image PSNR/SSIM rows written as resumable shards of the run store, MACs counted during
  the real forward, and the metric records built from those rows.

Images travel as uint8 HWC arrays; a model sees float [0, rgb_range] NCHW (each model declares its
``rgb_range``: 255 for EDSR/ELAN/LIPT, 1 for SwinIR/IMDN).
"""
from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.registry import BenchError

SR_METRICS = ("psnr_y@matlab", "ssim_y@matlab")


# ---------------------------------------------------------------------------------------------- training data
def _pairs_in_memory(pairs: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """(hr, lr) uint8 arrays from a list of (hr, lr) tuples or an indexed dataset of {"hr", "lr"} items."""
    out = []
    for i in range(len(pairs)):
        item = pairs[i]
        hr, lr = (item["hr"], item["lr"]) if isinstance(item, dict) else item
        out.append((np.ascontiguousarray(hr), np.ascontiguousarray(lr)))
    return out


class SRPatchDataset:
    """Random aligned (LR, HR) patches, ``repeat`` passes over the images per epoch.

    pairs:    a sequence of (hr, lr) uint8 HWC arrays, or an indexed dataset of {"hr", "lr"} items
              (bench.data.open_dataset of a paired-SR card); hr must be lr's size times ``scale``.
    lr_patch: LR patch side; the HR patch is ``lr_patch * scale``.
    preload:  read every pair once into memory (small sets; DIV2K fits in ~9 GB); False reads each item
              from the source on every access (real folders: decode in DataLoader workers).
    Items are (lr, hr) float32 CHW tensors in [0, 1].
    """

    def __init__(self, pairs: Any, scale: int, lr_patch: int, repeat: int = 1, augment: bool = True,
                 preload: bool = True):
        if lr_patch < 1 or repeat < 1:
            raise BenchError(f"SR patches need lr_patch >= 1 and repeat >= 1, got {lr_patch}, {repeat}")
        if len(pairs) == 0:
            raise BenchError("SR training set is empty")
        self.scale, self.lr_patch, self.repeat, self.augment = int(scale), int(lr_patch), int(repeat), augment
        self.source = _pairs_in_memory(pairs) if preload else pairs
        self.count = len(pairs)

    def __len__(self) -> int:
        return self.count * self.repeat

    def _pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        item = self.source[index]
        return (item["hr"], item["lr"]) if isinstance(item, dict) else item

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        hr, lr = self._pair(index % self.count)
        s, p = self.scale, self.lr_patch
        h, w = lr.shape[:2]
        if hr.shape[0] < h * s or hr.shape[1] < w * s:
            raise BenchError(f"SR pair {index % self.count}: HR {hr.shape[:2]} is smaller than LR {lr.shape[:2]} "
                             f"x{s}")
        if h < p or w < p:
            raise BenchError(f"SR pair {index % self.count}: LR image {h}x{w} is smaller than the {p}x{p} patch")
        top = int(torch.randint(0, h - p + 1, ()).item())
        left = int(torch.randint(0, w - p + 1, ()).item())
        lr_patch = lr[top: top + p, left: left + p]
        hr_patch = hr[top * s: (top + p) * s, left * s: (left + p) * s]
        if self.augment:  # h-flip, v-flip, transpose: the eight symmetries of the square, as BasicSR/ELAN/LIPT
            hflip, vflip, transpose = (bool(b) for b in torch.randint(0, 2, (3,)).tolist())
            lr_patch, hr_patch = (_augment(a, hflip, vflip, transpose) for a in (lr_patch, hr_patch))
        return _to_chw_unit(lr_patch), _to_chw_unit(hr_patch)


def _augment(img: np.ndarray, hflip: bool, vflip: bool, transpose: bool) -> np.ndarray:
    if hflip:
        img = img[:, ::-1]
    if vflip:
        img = img[::-1, :]
    if transpose:
        img = img.transpose(1, 0, 2)
    return img


def _to_chw_unit(img: np.ndarray) -> torch.Tensor:
    if img.ndim == 2:
        img = img[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)


# -------------------------------------------------------------------------------------------------- training
def l1_loss(rgb_range: float) -> Callable[[nn.Module, Any], torch.Tensor]:
    """L1 between the SR output and HR, both in the model's [0, rgb_range] (what every official code does)."""

    def loss_fn(model: nn.Module, batch: Any) -> torch.Tensor:
        lr, hr = batch
        return F.l1_loss(model(lr * rgb_range), hr * rgb_range)

    return loss_fn


def train_sr(model: nn.Module, data: SRPatchDataset, cfg: Any, out_dir: Path, resume: bool = True,
             stop_after: int | None = None):
    """Train ``model`` with the L1 loss through bench.train.train (checkpoints and resume in ``out_dir``)."""
    from bench.train import train

    rgb_range = float(getattr(model, "rgb_range", 1.0))
    return train(model, l1_loss(rgb_range), data, cfg, out_dir, resume=resume, stop_after=stop_after)


# ------------------------------------------------------------------------------------------------- inference
def inference_model(model: nn.Module) -> nn.Module:
    """The evaluated network: the re-parameterised (deployed) copy if the model defines ``deploy()``."""
    deploy = getattr(model, "deploy", None)
    if callable(deploy):
        return deploy().eval()
    return model.eval()


# The x8 self-ensemble: transpose or not, then h-flip / v-flip; each transform is its own inverse except that
# the flips must be undone before the transpose (applied in reverse order below).
_ENSEMBLE = [(t, h, v) for t in (False, True) for h in (False, True) for v in (False, True)]


def _transform(x: torch.Tensor, transpose: bool, hflip: bool, vflip: bool, inverse: bool = False) -> torch.Tensor:
    ops: list[Callable[[torch.Tensor], torch.Tensor]] = []
    if transpose:
        ops.append(lambda t: t.transpose(-1, -2))
    if hflip:
        ops.append(lambda t: t.flip(-1))
    if vflip:
        ops.append(lambda t: t.flip(-2))
    for op in (reversed(ops) if inverse else ops):
        x = op(x)
    return x


@torch.no_grad()
def super_resolve(model: nn.Module, lr: np.ndarray, device: str | torch.device = "cpu",
                  self_ensemble: bool = False) -> np.ndarray:
    """SR of one uint8 HWC image: float64 HWC in the model's [0, rgb_range] (not clamped, not rounded)."""
    rgb_range = float(getattr(model, "rgb_range", 1.0))
    x = _to_chw_unit(lr)[None].to(device) * rgb_range
    if not self_ensemble:
        y = model(x)
    else:
        y = torch.stack([_transform(model(_transform(x, *t)), *t, inverse=True) for t in _ENSEMBLE]).mean(0)
    return y[0].permute(1, 2, 0).double().cpu().numpy()


def _macs_of_call(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``fn`` under torch's FlopCounterMode: its result and its MACs (FLOPs / 2, bench.profile's rule)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        out = fn()
    return out, counter.get_total_flops() // 2


def evaluate_sr(model: nn.Module, items: Any, scale: int, handle: Any, seed: int, shard_prefix: str, *,
                device: str | torch.device = "cpu", self_ensemble: bool = False, chunk: int = 8,
                work_dir: Path | None = None, log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """PSNR-Y and SSIM-Y (MATLAB dialects, crop = scale) of ``model`` on ``items`` ({"hr", "lr", "name"}).

    Items are evaluated in chunks; each finished chunk is one shard of the run store (rows: image, lr_hw,
    the two metrics, gmacs of that image's forward), so a killed evaluation resumes at the first missing
    chunk. The returned aggregates are recomputed from all rows. ``handle`` is a bench.store.RunHandle.
    Returns {"rows", "metrics": {dialect: mean}, "protocol": {dialect: protocol}, "gmacs_mean", "n"}.
    """
    from bench.atomic import write_json
    from bench.metrics import compute

    float_range = float(getattr(model, "rgb_range", 1.0))
    n = len(items)
    if n == 0:
        raise BenchError(f"{shard_prefix}: no test images to evaluate")
    protocol_path = (work_dir or handle.work_dir(seed)) / f"{shard_prefix}-protocol.json"
    rows: list[dict[str, Any]] = []
    for start in range(0, n, chunk):
        shard = f"{shard_prefix}-{start // chunk:04d}"
        if handle.shard_done(seed, shard) and protocol_path.exists():
            rows.extend(json.loads(line) for line in handle.shard_path(seed, shard).read_text().splitlines()
                        if line.strip())
            continue
        preds, targets, names, macs, sizes = [], [], [], [], []
        for i in range(start, min(start + chunk, n)):
            item = items[i]
            sr, count = _macs_of_call(lambda lr=item["lr"]: super_resolve(model, lr, device, self_ensemble))
            preds.append(sr)
            targets.append(item["hr"])
            names.append(str(item.get("name", i)))
            macs.append(count)
            sizes.append(list(item["lr"].shape[:2]))
        results = {d: compute(d, preds=preds, targets=targets, crop_border=scale, float_range=float_range,
                              self_ensemble=self_ensemble) for d in SR_METRICS}
        if not protocol_path.exists():
            write_json(protocol_path, {d: r.protocol for d, r in results.items()})
        chunk_rows = [{"image": names[k], "lr_hw": sizes[k], "gmacs": macs[k] / 1e9,
                       **{d: results[d].per_item[k] for d in SR_METRICS}} for k in range(len(names))]
        handle.write_shard(seed, shard, chunk_rows)
        rows.extend(chunk_rows)
        log(f"    {shard}: {len(rows)}/{n} images")
    protocol = json.loads(protocol_path.read_text())
    means = {d: math.fsum(r[d] for r in rows) / len(rows) for d in SR_METRICS}
    return {"rows": rows, "metrics": means, "protocol": protocol, "n": len(rows),
            "gmacs_mean": math.fsum(r["gmacs"] for r in rows) / len(rows)}


def bicubic_reference(items: Any, scale: int, dialect: str = "psnr_y@matlab") -> dict[str, Any]:
    """``dialect`` of MATLAB-bicubic upscaling (bench.data.imresize, uint8 like MATLAB on uint8 input) of the
    items' own LR images against their HR, crop = scale: the trivial baseline an SR model has to beat.
    Returns {"value": mean, "per_item": [...], "n"}."""
    from bench.data.imresize import imresize
    from bench.metrics import compute

    if len(items) == 0:
        raise BenchError("bicubic reference: no test images")
    preds, targets = [], []
    for i in range(len(items)):
        item = items[i]
        preds.append(imresize(item["lr"], float(scale)))
        targets.append(item["hr"])
    result = compute(dialect, preds=preds, targets=targets, crop_border=scale, float_range=255.0,
                     self_ensemble=False)
    per_item = [float(v) for v in result.per_item]
    return {"value": math.fsum(per_item) / len(per_item), "per_item": per_item, "n": len(per_item)}


# -------------------------------------------------------------------------------------------------- profiling
def count_macs_meta(model: nn.Module, input_shape: Sequence[int]) -> int:
    """MACs of one forward at ``input_shape`` counted on the meta device (no memory, no arithmetic)."""
    from bench.profile import count_macs

    meta = copy.deepcopy(model).to("meta")
    return count_macs(meta, torch.zeros(*input_shape, device="meta"))
