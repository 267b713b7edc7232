"""Weight-gated IQA dialects: a missing or wrong weight file is one clear line; a present one is really used."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from bench.metrics import restoration as R
from bench.registry import BenchError

IMAGE = np.repeat(skimage.data.camera()[100:292, 150:342, None], 3, axis=2)  # 192x192 real photo, RGB

MISSING = [
    (lambda: R.lpips_alex(IMAGE, IMAGE), "alexnet-owt-7be5be79.pth", "download.pytorch.org/models"),
    (lambda: R.lpips_vgg(IMAGE, IMAGE), "vgg16-397923af.pth", "download.pytorch.org/models"),
    (lambda: R.niqe(IMAGE), "niqe_modelparameters.mat", "IQA-PyTorch-Weights"),
    (lambda: R.musiq(IMAGE), "musiq_koniq_ckpt-e95806b9.pth", "IQA-PyTorch-Weights"),
    (lambda: R.clipiqa(IMAGE), "RN50.pt", "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762"),
    (lambda: R.maniqa(IMAGE), "ckpt_koniq10k.pt", "IQA-PyTorch-Weights"),
]


@pytest.mark.parametrize("call, filename, source", MISSING, ids=[m[1] for m in MISSING])
def test_missing_weights_are_one_line_naming_file_sha_and_source(call, filename, source, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_ASSETS", str(tmp_path))
    with pytest.raises(BenchError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    assert filename in message and source in message and "sha256" in message


def test_lpips_head_is_required_too(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_ASSETS", str(tmp_path))
    from bench.metrics import _assets

    # a backbone with the right name but other bytes fails the torch.hub name-prefix check
    (tmp_path / "alexnet-owt-7be5be79.pth").write_bytes(b"not the published file")
    with pytest.raises(BenchError, match="starting with 7be5be79"):
        R.lpips_alex(IMAGE, IMAGE)
    assert _assets.asset_path("lpips-alex-head").name == "LPIPS_v0.1_alex-df73285e.pth"


def test_wrong_inception_bytes_are_rejected_by_sha256(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_ASSETS", str(tmp_path))
    from bench.metrics import generative

    (tmp_path / "weights-inception-2015-12-05-6726825d.pth").write_bytes(b"truncated download")
    with pytest.raises(BenchError, match="wrong sha256"):
        generative.extractor_weights(generative.INCEPTION)


def _fake_niqe_params(path, seed):
    import scipy.io

    rng = np.random.default_rng(seed)
    a = rng.normal(size=(36, 36))
    scipy.io.savemat(path, {"mu_prisparam": rng.normal(size=(1, 36)), "cov_prisparam": a @ a.T / 36 + np.eye(36)})


def test_niqe_runs_pyiqa_with_the_asset_file(tmp_path, monkeypatch):
    """Plumbing with stand-in parameters (the real file cannot be downloaded here): the adapter's value equals
    pyiqa's NIQE called directly with the same file and options, and changes when the file changes."""
    import pyiqa
    import torch

    monkeypatch.setenv("BENCH_ASSETS", str(tmp_path))
    params = tmp_path / "niqe_modelparameters.mat"
    _fake_niqe_params(params, seed=0)
    ours = R.niqe([IMAGE], crop_border=4)
    direct = pyiqa.create_metric("niqe", device=torch.device("cpu"), pretrained_model_path=str(params),
                                 test_y_channel=True, color_space="yiq", crop_border=4)
    expected = float(direct(torch.from_numpy(np.ascontiguousarray(IMAGE.transpose(2, 0, 1))).float()[None] / 255))
    assert ours.value == pytest.approx(expected, rel=1e-6)
    assert ours.protocol["options"]["crop_border"] == 4 and ours.protocol["assets"]["niqe-params"] == str(params)
    _fake_niqe_params(params, seed=1)
    assert R.niqe([IMAGE], crop_border=4).value != pytest.approx(ours.value, rel=1e-3)


def test_lpips_head_file_without_heads_is_refused(tmp_path):
    """pyiqa loads LPIPS heads with strict=False; a file lacking them must not silently leave random heads."""
    import torch
    from torch import nn

    net = nn.Module()
    net.lin0 = nn.Conv2d(64, 1, 1, bias=False)
    net.backbone = nn.Conv2d(3, 64, 3)
    good, bad = tmp_path / "good.pth", tmp_path / "bad.pth"
    torch.save({"lin0.weight": torch.zeros(1, 64, 1, 1)}, good)
    torch.save({"params": {"lin0.weight": torch.zeros(1, 64, 1, 1)}}, bad)  # wrapped: pyiqa would skip it
    R._check_lpips_heads_loaded(net, good)
    with pytest.raises(BenchError, match="lin0.weight"):
        R._check_lpips_heads_loaded(net, bad)
