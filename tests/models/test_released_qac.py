"""`bench evaluate qac`: an official EDM network pickle (NVlabs/edm's torch_utils.persistence layout, written here
with random weights by tests/models/test_edm.py's writer) loads into bench's EDM network with equal outputs, and the
CLI scores it with EDM's protocol (Heun 35 NFE, three seed ranges, minimum FID) beside the card's fid@edm cell.

The Inception FID is swapped for bench's offline digits features (samples turned grey and 16x16 first), so nothing
downloads; the record keeps the protocol's dialect name, as in test_released_udit.py.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from baselines.edm.networks import arch_kwargs
from baselines.edm.precond import VPPrecond
from bench.cli import app
from bench.evaluate import CheckpointError, build_spec
from methods.qac import released
from tests.models.test_edm import _write_official_layout

runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """One torch and one BLAS thread for every test here (tests/conftest.py)."""


def write_edm_pickle(path: Path, label_dim: int = 0, resolution: int = 32, seed: int = 0) -> VPPrecond:
    """A tiny DDPM++ VPPrecond pickled as EDM's training_loop.py does ({'ema', 'loss_fn', 'augment_pipe',
    'dataset_kwargs'}), random non-zero weights."""
    init_kwargs = dict(img_resolution=resolution, img_channels=3, label_dim=label_dim,
                       **arch_kwargs("ddpmpp", model_channels=8, channel_mult=[1, 2], num_blocks=1,
                                     attn_resolutions=[resolution // 2], dropout=0.0, augment_dim=9))
    torch.manual_seed(seed)
    net = VPPrecond(**init_kwargs).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    with open(path, "wb") as handle:
        _write_official_layout(net, init_kwargs, handle)
    return net


def test_official_pickle_loads_with_equal_outputs_and_its_kind_is_checked(tmp_path):
    path = tmp_path / "edm-cifar10-32x32-uncond-vp.pkl"
    net = write_edm_pickle(path)
    spec = build_spec("qac", "edm-official", path, sha="0" * 64)
    assert spec.dataset == "cifar10" and spec.sampler["nfe"] == 35 and spec.sampler["seed_ranges"] == 3
    loaded = released.load_released(spec, path)
    x, sigma = torch.randn(2, 3, 32, 32), torch.tensor([0.5, 20.0])
    assert torch.equal(loaded(x, sigma), net(x, sigma))
    cond = tmp_path / "edm-cifar10-32x32-cond-vp.pkl"
    write_edm_pickle(cond, label_dim=10)
    with pytest.raises(CheckpointError, match=r"class-conditional network \(label_dim 10\); evaluate it as "
                                              r"--entry edm-cond"):
        released.load_released(spec, cond)
    ffhq = tmp_path / "edm-ffhq-64x64-uncond-vp.pkl"
    ffhq.write_bytes(path.read_bytes())  # a 32x32 network under a 64x64 name
    spec64 = build_spec("qac", "edm-official", ffhq, sha="0" * 64)
    assert (spec64.dataset, spec64.sampler["nfe"]) == ("ffhq-64", 79)
    with pytest.raises(CheckpointError, match="holds a 32x32 network, but its name says 64x64"):
        released.load_released(spec64, ffhq)
    garbage = tmp_path / "edm-cifar10-32x32-uncond-vp-broken.pkl"
    torch.save({"ema": {"w": torch.zeros(1)}}, garbage)  # a torch zip, not an EDM pickle
    with pytest.raises(CheckpointError, match="not in the official EDM layout"):
        released.load_released(spec, garbage)


def to_digits_format(samples: torch.Tensor) -> torch.Tensor:
    grey = samples.float().mean(dim=1, keepdim=True)
    return F.interpolate(grey, size=(16, 16), mode="area").round().clamp(0, 255).to(torch.uint8)


@pytest.fixture()
def offline_fid(tmp_path, monkeypatch, store_root):
    from bench.data.smoke import digits
    from bench.metrics import generative, offline_fd

    def digits_fid(samples, reference):
        result = generative.fid_ref_npz(to_digits_format(samples), reference,
                                        feature_extractor=offline_fd.EXTRACTOR_NAME)
        return dataclasses.replace(result, name="fid@ref-npz")

    monkeypatch.setattr(released, "fid_against_reference", digits_fid)
    images, _ = digits("test")
    mu, sigma, _ = generative.reference_statistics(torch.from_numpy(images[:200]), offline_fd.EXTRACTOR_NAME,
                                                   use_cache=False)
    data_root = tmp_path / "data"
    (data_root / "edm" / "fid-refs").mkdir(parents=True)
    np.savez(data_root / "edm" / "fid-refs" / "cifar10-32x32.npz", mu=mu, sigma=sigma)
    return data_root


def test_cli_scores_the_pickle_with_edms_protocol_beside_the_card(tmp_path, offline_fid, store_root, monkeypatch):
    from bench.metrics import generative, offline_fd

    path = tmp_path / "edm-cifar10-32x32-uncond-vp.pkl"
    write_edm_pickle(path)
    monkeypatch.setitem(released.NUM_SAMPLES, "paper", 3)  # a real run of the protocol with 3 samples per range
    result = runner.invoke(app, ["evaluate", "qac", "-e", "edm-official", "-c", str(path), "--data-root", str(offline_fid),
                                 "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    (fid,) = out["run"]["metrics"]
    assert fid["metric"] == "fid@ref-npz" and fid["setting"] == {"nfe": 35, "sampler": "edm-heun"}
    per_range = fid["protocol"]["per_range"]
    assert len(per_range) == 3 and fid["value"] == min(per_range)
    assert fid["protocol"]["seed_ranges"] == [[0, 3], [3, 6], [6, 9]]
    # each range's FID recomputed from the stored samples (uint8, EDM's quantisation)
    work = store_root / "qac" / out["run"]["run_id"] / "work" / "0" / "samples" / "heun-nfe035"
    for k, value in enumerate(per_range):
        samples = np.concatenate([np.load(p)["samples"] for p in sorted((work / f"range{k}").glob("shard_*"))])
        assert samples.shape == (3, 3, 32, 32) and samples.dtype == np.uint8
        want = generative.fid_ref_npz(to_digits_format(torch.from_numpy(samples)),
                                      offline_fid / "edm" / "fid-refs" / "cifar10-32x32.npz",
                                      feature_extractor=offline_fd.EXTRACTOR_NAME)
        assert value == pytest.approx(want.value, rel=1e-6)
    (row,) = out["beside_paper"]
    assert row["paper"] == 1.97 and row["paper_metric"] == "fid@edm"
    assert row["delta"] == pytest.approx(fid["value"] - 1.97)


def test_missing_pickle_and_missing_reference_are_one_line(tmp_path, store_root):
    result = runner.invoke(app, ["evaluate", "qac", "-e", "edm-cond", "-c",
                                 str(tmp_path / "edm-cifar10-32x32-cond-vp.pkl"), "--device", "cpu"])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and "edm-cifar10-32x32-cond-vp.pkl" in line
    assert "nvlabs-fi-cdn.nvidia.com/edm/pretrained/" in line
    path = tmp_path / "edm-cifar10-32x32-uncond-vp.pkl"
    write_edm_pickle(path)
    result = runner.invoke(app, ["evaluate", "qac", "-e", "edm-official", "-c", str(path), "--data-root", str(tmp_path),
                                 "--max-samples", "2", "--device", "cpu"])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and "cifar10-32x32.npz" in line and "edm/fid-refs/cifar10-32x32.npz" in line
