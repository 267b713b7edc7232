"""Lets a torchvision wheel built against CUDA torch import on a CPU-only torch.

torchvision 0.28.0 (the only release that accepts torch 2.13.0) is a CUDA build: its compiled ops library
cannot load on the CPU torch, and its fake-op registrations then fail at import with "operator
torchvision::nms does not exist", which breaks torch-fidelity, pyiqa, timm, torchmetrics and transformers.

Installed as a .pth hook, this module waits for the first `import torchvision` and, only if the compiled ops
cannot be loaded, defines the torchvision op schemas with pure-PyTorch CPU kernels for nms and roi_align.
On a torchvision whose ops load normally it does nothing. TV_CPU_SHIM=0 disables it.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

_LIBRARY = None  # the torch.library.Library that owns our definitions; exactly one per process
ACTIVE = False  # True once the pure-PyTorch kernels are registered


def nms_reference(boxes, scores, iou_threshold: float):
    """Greedy NMS: keep the highest score, drop every box overlapping it by IoU > threshold, repeat."""
    import torch

    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1) * (y2 - y1)
    suppressed = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    keep = []
    for i in torch.argsort(scores, descending=True, stable=True).tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        w = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1)).clamp(min=0)
        h = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1)).clamp(min=0)
        inter = w * h
        suppressed |= inter / (areas[i] + areas - inter) > iou_threshold
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def _bilinear(feature, y, x):
    """Sample feature [C,H,W] at float coordinates y, x (same shape S); torchvision's roi_align rules:
    points further than one pixel outside the map give 0, coordinates are clamped into the map."""
    import torch

    height, width = feature.shape[-2:]
    outside = (y < -1.0) | (y > height) | (x < -1.0) | (x > width)
    y = y.clamp(min=0)
    x = x.clamp(min=0)
    y_low = y.floor().long().clamp(max=height - 1)
    x_low = x.floor().long().clamp(max=width - 1)
    y_high = (y_low + 1).clamp(max=height - 1)
    x_high = (x_low + 1).clamp(max=width - 1)
    y = torch.where(y_low >= height - 1, y_low.to(y.dtype), y)
    x = torch.where(x_low >= width - 1, x_low.to(x.dtype), x)
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    value = (hy * hx * feature[:, y_low, x_low] + hy * lx * feature[:, y_low, x_high]
             + ly * hx * feature[:, y_high, x_low] + ly * lx * feature[:, y_high, x_high])
    return torch.where(outside, torch.zeros_like(value), value)


def roi_align_reference(features, rois, spatial_scale: float, pooled_height: int, pooled_width: int,
                        sampling_ratio: int, aligned: bool):
    """RoIAlign as torchvision defines it: rois [K,5] = (batch index, x1, y1, x2, y2) in input coordinates;
    each output bin averages a grid of bilinear samples (sampling_ratio per side, or ceil(bin size) if <= 0)."""
    import math

    import torch

    out = features.new_zeros((rois.shape[0], features.shape[1], pooled_height, pooled_width))
    offset = 0.5 if aligned else 0.0
    for k, roi in enumerate(rois.tolist()):
        batch, x1, y1, x2, y2 = int(roi[0]), *roi[1:]
        x1, y1, x2, y2 = (v * spatial_scale - offset for v in (x1, y1, x2, y2))
        roi_w, roi_h = x2 - x1, y2 - y1
        if not aligned:  # legacy behaviour: force malformed RoIs to be 1x1
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / pooled_height, roi_w / pooled_width
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / pooled_height)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / pooled_width)
        count = max(grid_h * grid_w, 1)
        dtype, device = features.dtype, features.device
        ph = torch.arange(pooled_height, dtype=dtype, device=device)
        pw = torch.arange(pooled_width, dtype=dtype, device=device)
        iy = (torch.arange(grid_h, dtype=dtype, device=device) + 0.5) / max(grid_h, 1)
        ix = (torch.arange(grid_w, dtype=dtype, device=device) + 0.5) / max(grid_w, 1)
        ys = y1 + (ph[:, None] + iy[None, :]) * bin_h  # [PH, GH]
        xs = x1 + (pw[:, None] + ix[None, :]) * bin_w  # [PW, GW]
        y = ys[:, None, :, None].expand(pooled_height, pooled_width, grid_h, grid_w)
        x = xs[None, :, None, :].expand(pooled_height, pooled_width, grid_h, grid_w)
        samples = _bilinear(features[batch], y, x)  # [C, PH, PW, GH, GW]
        out[k] = samples.sum(dim=(-1, -2)) / count
    return out


def _roi_align_op(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
    return roi_align_reference(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned)


def ensure_torchvision_importable() -> None:
    """Register CPU kernels for torchvision's ops if, and only if, its compiled library cannot load."""
    global _LIBRARY, ACTIVE
    if _LIBRARY is not None or "torchvision" in sys.modules:
        return
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return
    import torch

    try:
        torch.ops.torchvision.nms  # defined already: native ops loaded, or another copy of the shim ran
        return
    except (AttributeError, RuntimeError):
        pass
    package_dir = os.path.dirname(spec.origin)
    for name in os.listdir(package_dir):
        if name.startswith("_C") and name.endswith((".so", ".pyd")):
            try:
                torch.ops.load_library(os.path.join(package_dir, name))
                return  # compiled ops load (matching torch build): nothing to do
            except (OSError, ImportError, RuntimeError):
                pass
    library = torch.library.Library("torchvision", "DEF")
    library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.define("roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
                   "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor")
    # nms has no gradient and torchvision registers a fake (meta) kernel for it: a plain CPU kernel.
    # roi_align is CompositeImplicitAutograd: the kernel is plain PyTorch, so autograd differentiates it.
    library.impl("nms", nms_reference, "CPU")
    library.impl("roi_align", _roi_align_op, "CompositeImplicitAutograd")
    _LIBRARY = library
    ACTIVE = True


def _mark_ops_available(torchvision_module) -> None:
    """torchvision.ops wrappers refuse to run unless extension._has_ops(); once torchvision has finished
    importing (its meta/autograd registrations for the compiled ops were skipped), report our ops."""
    original = torchvision_module.extension._has_ops
    available = lambda: True  # noqa: E731
    torchvision_module.extension._has_ops = available
    # Some torchvision.ops modules bound `_has_ops` by name at import (roi_align would otherwise fall back to
    # its torch.compile'd Python path, which differs from the C++ kernel at the borders): rebind those too.
    for name, module in list(sys.modules.items()):
        if name.startswith("torchvision.") and getattr(module, "_has_ops", None) is original:
            module._has_ops = available


class _ImportHook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            try:
                sys.meta_path.remove(self)
            except ValueError:
                pass
            ensure_torchvision_importable()
            if ACTIVE:
                spec = importlib.machinery.PathFinder.find_spec(name, path)
                if spec is not None and spec.loader is not None:
                    original = spec.loader.exec_module

                    def exec_module(module, _original=original):
                        _original(module)
                        _mark_ops_available(module)

                    spec.loader.exec_module = exec_module
                    return spec
        return None


if os.environ.get("TV_CPU_SHIM", "1") != "0" and not any(isinstance(f, _ImportHook) for f in sys.meta_path):
    sys.meta_path.insert(0, _ImportHook())
