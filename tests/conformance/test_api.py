"""compute(dialect, **inputs): name resolution, errors, cost dialects (hand-counted MACs), torch-free imports."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bench.metrics import MetricResult, compute
from bench.metrics.manifest import DIALECTS
from bench.registry import BenchError, UnknownName, load_target


def test_package_and_manifest_import_without_torch():
    code = ("import sys, bench.metrics, bench.metrics.manifest, bench.metrics.api, bench.metrics.base, "
            "bench.metrics._assets; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_computable_dialect_resolves_to_a_callable():
    for name, spec in DIALECTS.items():
        assert spec["direction"] in ("lower", "higher", "none"), name
        if spec.get("target"):
            assert callable(load_target(spec["target"])), name


def test_compute_routes_to_the_dialect():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, size=(24, 24, 3), dtype=np.uint8)
    pred = np.clip(ref.astype(int) + rng.integers(-3, 4, ref.shape), 0, 255).astype(np.uint8)
    result = compute("psnr_y@matlab", preds=pred, targets=ref, crop_border=2)
    assert isinstance(result, MetricResult) and result.name == "psnr_y@matlab"
    from bench.metrics.restoration import psnr_y_matlab

    assert result.value == psnr_y_matlab(pred, ref, crop_border=2).value
    assert result.protocol["dialect"] == DIALECTS["psnr_y@matlab"]["protocol"]
    assert MetricResult.from_dict(result.to_dict()) == result


def test_compute_errors_are_one_line():
    with pytest.raises(UnknownName, match="Did you mean 'psnr_y@matlab'"):
        compute("psnr_y@matlb")
    with pytest.raises(BenchError, match="only reported by papers"):
        compute("fid@adm")
    with pytest.raises(BenchError, match="missing a required argument: 'targets'"):
        compute("psnr_rgb", preds=np.zeros((8, 8, 3), np.uint8))


def test_cost_dialects_count_macs_and_params_by_hand():
    import torch
    from torch import nn

    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
    # MACs of a conv: H_out * W_out * C_out * C_in * k * k = 16 * 16 * 8 * 3 * 9
    macs = compute("gmacs", model=conv, inputs=(torch.zeros(1, 3, 16, 16),))
    assert macs.value == pytest.approx(16 * 16 * 8 * 3 * 9 / 1e9)
    linear = nn.Linear(10, 5)
    # a linear layer on a batch of 4: 4 * 10 * 5 multiply-accumulates; 10*5 + 5 parameters
    assert compute("gmacs", model=linear, inputs=(torch.zeros(4, 10),)).value == pytest.approx(200 / 1e9)
    assert compute("params_m", model=linear).value == pytest.approx(55 / 1e6)
    timing = compute("latency_ms", fn=lambda: linear(torch.zeros(4, 10)), warmup=1, repeats=3)
    assert timing.value > 0 and timing.extra["repeats"] == 3
    with pytest.raises(BenchError, match="inputs="):
        compute("gmacs", model=linear)


def test_score_files_matches_folders_by_stem(tmp_path):
    from PIL import Image

    from bench.metrics.restoration import psnr_y_matlab
    from bench.metrics.score import score_files

    rng = np.random.default_rng(1)
    hr = [rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8) for _ in range(2)]
    sr = [np.clip(h.astype(int) + rng.integers(-4, 5, h.shape), 0, 255).astype(np.uint8) for h in hr]
    (tmp_path / "sr").mkdir()
    (tmp_path / "hr").mkdir()
    for name, s, h in zip(("zebra", "baby"), sr, hr):
        Image.fromarray(s).save(tmp_path / "sr" / f"{name}.png")
        Image.fromarray(h).save(tmp_path / "hr" / f"{name}.bmp")
    result = score_files("psnr_y@matlab", tmp_path / "sr", tmp_path / "hr", crop_border=2)
    assert result.extra["items"] == ["baby", "zebra"]
    assert result.per_item == pytest.approx(psnr_y_matlab(sr[::-1], hr[::-1], crop_border=2).per_item)
    single = score_files("psnr_rgb", tmp_path / "sr" / "baby.png", tmp_path / "hr" / "baby.bmp")
    assert single.n == 1
    Image.fromarray(hr[0]).save(tmp_path / "hr" / "extra.png")
    with pytest.raises(BenchError, match="no partner"):
        score_files("psnr_rgb", tmp_path / "sr", tmp_path / "hr")
    with pytest.raises(BenchError, match="image and detection"):
        score_files("rouge_l@rouge-score", tmp_path / "sr", tmp_path / "hr")
