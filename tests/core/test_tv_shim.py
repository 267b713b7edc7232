"""The torchvision CPU compatibility layer: nms and roi_align against independent references."""
from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
import torch

import _tv_cpu_shim


def brute_force_nms(boxes: list[list[float]], scores: list[float], thr: float) -> list[int]:
    """Plain-Python greedy NMS written from the definition."""
    def iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep: list[int] = []
    for i in order:
        if all(iou(boxes[i], boxes[k]) <= thr for k in keep):
            keep.append(i)
    return keep


def test_nms_hand_computed():
    from torchvision.ops import nms

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 5.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # IoU(0,1) = 81/119 = 0.68 -> 1 suppressed by 0; IoU(3,0) = 50/100 = 0.5, not > 0.5 -> both kept
    assert nms(boxes, scores, 0.5).tolist() == [3, 0, 2]
    # at 0.4, box 0 falls to box 3 (0.5 > 0.4), which frees box 1: IoU(3,1) = 36/114 = 0.32
    assert nms(boxes, scores, 0.4).tolist() == [3, 1, 2]


@pytest.mark.parametrize("seed", range(5))
def test_nms_matches_brute_force(seed):
    from torchvision.ops import nms

    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(60, 2, generator=g) * 50
    wh = torch.rand(60, 2, generator=g) * 20 + 1
    boxes = torch.cat([xy, xy + wh], 1)
    scores = torch.rand(60, generator=g)
    for thr in (0.3, 0.5, 0.7):
        assert nms(boxes, scores, thr).tolist() == brute_force_nms(boxes.tolist(), scores.tolist(), thr)


def bilinear(img, y, x):
    h, w = len(img), len(img[0])
    if y < -1 or y > h or x < -1 or x > w:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = min(int(y), h - 1), min(int(x), w - 1)
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    if y0 >= h - 1:
        y = float(y0)
    if x0 >= w - 1:
        x = float(x0)
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * img[y0][x0] + (1 - ly) * lx * img[y0][x1]
            + ly * (1 - lx) * img[y1][x0] + ly * lx * img[y1][x1])


def test_roi_align_hand_computed():
    from torchvision.ops import roi_align

    f = torch.arange(16.0).reshape(1, 1, 4, 4)  # value = 4*y + x
    # one bin, one sample at the box centre (1, 1): 4*1 + 1 = 5
    out = roi_align(f, [torch.tensor([[0.0, 0.0, 2.0, 2.0]])], output_size=1, spatial_scale=1.0,
                    sampling_ratio=1, aligned=False)
    assert out.item() == pytest.approx(5.0)
    # aligned=True shifts by half a pixel: centre (0.5, 0.5) -> 4*0.5 + 0.5 = 2.5
    out = roi_align(f, [torch.tensor([[0.0, 0.0, 2.0, 2.0]])], output_size=1, spatial_scale=1.0,
                    sampling_ratio=1, aligned=True)
    assert out.item() == pytest.approx(2.5)
    # the map is linear, so every bin is the value at its centre: 2x2 bins of the box (0,0)-(4,4) at scale 0.5
    out = roi_align(f, [torch.tensor([[0.0, 0.0, 4.0, 4.0]])], output_size=2, spatial_scale=0.5,
                    sampling_ratio=2, aligned=False)
    assert out[0, 0].flatten().tolist() == pytest.approx([2.5, 3.5, 6.5, 7.5])


def test_roi_align_matches_definition_and_has_gradients():
    from torchvision.ops import roi_align

    g = torch.Generator().manual_seed(0)
    f = torch.randn(2, 3, 7, 9, generator=g, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 1.3, 0.2, 6.1, 5.5], [1, -2.0, 3.0, 4.0, 9.0], [1, 0.0, 0.0, 0.5, 0.5]],
                        dtype=torch.float64)
    for aligned, ratio in itertools.product((False, True), (2, 0)):
        out = roi_align(f, rois, output_size=(3, 2), spatial_scale=0.8, sampling_ratio=ratio, aligned=aligned)
        for k, roi in enumerate(rois.tolist()):
            b = int(roi[0])
            off = 0.5 if aligned else 0.0
            x1, y1, x2, y2 = (v * 0.8 - off for v in roi[1:])
            rw, rh = x2 - x1, y2 - y1
            if not aligned:
                rw, rh = max(rw, 1.0), max(rh, 1.0)
            bh, bw = rh / 3, rw / 2
            gh = ratio if ratio > 0 else int(-(-rh // 3))
            gw = ratio if ratio > 0 else int(-(-rw // 2))
            for c in range(3):
                img = f[b, c].tolist()
                for ph in range(3):
                    for pw in range(2):
                        acc = sum(bilinear(img, y1 + ph * bh + (iy + 0.5) * bh / gh, x1 + pw * bw + (ix + 0.5) * bw / gw)
                                  for iy in range(gh) for ix in range(gw))
                        assert out[k, c, ph, pw].item() == pytest.approx(acc / max(gh * gw, 1), abs=1e-12)
    assert torch.autograd.gradcheck(
        lambda x: roi_align(x, rois, output_size=2, spatial_scale=0.8, sampling_ratio=2, aligned=True), (f,))


def test_the_layer_is_active_only_because_compiled_ops_fail_here():
    import torchvision  # noqa: F401

    try:
        torch.ops.load_library(__import__("os").path.join(torchvision.__path__[0], "_C.so"))
        native = True
    except (OSError, RuntimeError):
        native = False
    assert _tv_cpu_shim.ACTIVE is (not native)


def test_does_nothing_when_ops_are_already_defined():
    # a second call (as on a torchvision whose ops loaded) must not define the namespace again
    before = _tv_cpu_shim._LIBRARY
    _tv_cpu_shim.ensure_torchvision_importable()
    assert _tv_cpu_shim._LIBRARY is before


def test_every_process_gets_it_and_the_field_libraries_import():
    code = ("import torchvision, timm, torchmetrics, torch_fidelity, pyiqa; "
            "from torchvision.ops import nms; import torch; "
            "print(nms(torch.tensor([[0.,0,1,1]]), torch.tensor([1.]), 0.5).tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("[0]")
