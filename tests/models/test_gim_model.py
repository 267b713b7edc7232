"""GIMFormer's blocks against independent references, and the manipulation pipeline's contracts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.registry import BenchError
from methods.gim import pipeline as P
from methods.gim.model import (FrequencySpatialBlock, GIMFormerConfig, GIMFormer, MultiWindowAnomaly,
                               tracer_training_pair)


def numpy_window(x: np.ndarray, k: int, reduce) -> np.ndarray:
    """Per pixel, `reduce` over the k x k window clipped to the image (no padding values)."""
    c, h, w = x.shape
    out = np.empty_like(x)
    r = k // 2
    for i in range(h):
        for j in range(w):
            out[:, i, j] = reduce(x[:, max(0, i - r): i + r + 1, max(0, j - r): j + r + 1].reshape(c, -1), axis=1)
    return out


def test_mwam_deviations_match_a_numpy_box_filter_reference():
    torch.manual_seed(0)
    block = MultiWindowAnomaly(4, windows=(3, 5), w_sigma_init=0.0).eval()
    x = torch.randn(1, 4, 7, 9, dtype=torch.float64)
    block = block.double()
    with torch.no_grad():
        d_avg, d_max = block.deviations(x)
    xn = x[0].numpy()
    sigma = np.maximum(xn.reshape(4, -1).std(axis=1), 1e-5)[:, None, None]
    for k, da, dm in zip((3, 5), d_avg, d_max):
        np.testing.assert_allclose(da[0].numpy(), (xn - numpy_window(xn, k, np.mean)) / sigma, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dm[0].numpy(), (xn - numpy_window(xn, k, np.max)) / sigma, rtol=1e-10, atol=1e-12)
        assert (dm.numpy() <= 1e-12).all()  # a pixel never exceeds its window's max


def test_mwam_sigma_floor_is_the_learnable_w_sigma():
    block = MultiWindowAnomaly(2, windows=(3,), w_sigma_init=0.5)
    flat = torch.zeros(1, 2, 5, 5)  # std 0: sigma* = 1e-5 + |w_sigma|
    torch.testing.assert_close(block.sigma_star(flat).detach().flatten(), torch.full((2,), 0.5 + 1e-5))
    with torch.no_grad():
        block.w_sigma.fill_(-0.25)  # kept non-negative
    torch.testing.assert_close(block.sigma_star(flat).detach().flatten(), torch.full((2,), 0.25 + 1e-5))


def test_fsb_frequency_branch_is_the_identity_when_the_filter_is_one():
    block = FrequencySpatialBlock(3, size=8)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(block.frequency(x).detach(), x, rtol=1e-5, atol=1e-5)
    x6 = torch.randn(1, 3, 6, 10)  # another size: the all-one filter resized is still all ones
    torch.testing.assert_close(block.frequency(x6).detach(), x6, rtol=1e-5, atol=1e-5)


def test_fsb_frequency_branch_applies_the_global_filter_in_fourier_space():
    block = FrequencySpatialBlock(1, size=4)
    with torch.no_grad():
        block.filter.zero_()
        block.filter[0, 0, 0, 0] = 1.0  # keep only the DC coefficient: the output is the mean of the map
    x = torch.randn(1, 1, 4, 4)
    torch.testing.assert_close(block.frequency(x).detach(), x.mean().expand_as(x), rtol=1e-5, atol=1e-5)


def test_tracer_mixup_pairs():
    real, fake = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    x, t = tracer_training_pair(real, fake, torch.tensor([0.0, 0.25]))
    torch.testing.assert_close(x[0], real[0]) and torch.testing.assert_close(t[0], torch.zeros(3, 4, 4))
    torch.testing.assert_close(x[1], torch.full((3, 4, 4), 0.25))
    torch.testing.assert_close(t[1], torch.full((3, 4, 4), 0.25))


def test_gimformer_shapes_and_frozen_tracer():
    cfg = GIMFormerConfig(backbone="mit-tiny", image_size=32, decoder_embed=16, mwam_windows=(3, 5, 7), tracer_depth=3,
                          tracer_width=8, classifier_width=8)
    model = GIMFormer(cfg)
    model.freeze_tracer()
    model.train()
    assert not model.tracer.training  # a frozen tracer keeps its BN statistics in train mode
    out = model(torch.rand(2, 3, 32, 32))
    assert out["mask_logits"].shape == (2, 1, 32, 32) and out["cls_logits"].shape == (2,)
    loss = model.loss(torch.rand(2, 3, 32, 32), torch.zeros(2, 32, 32), torch.tensor([0, 1]))
    loss.backward()
    assert all(p.grad is None for p in model.tracer.parameters())


# ---------------------------------------------------------------------------------------------------------
# pipeline

@pytest.mark.parametrize("generator", P.GENERATORS)
def test_blend_keeps_every_pixel_outside_the_mask(generator):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    donor = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    mask, region = P.propose_region(image, rng)
    assert 0.05 <= mask.mean() <= P.REGION_FRACTION[1]
    edited, _ = P.edit(generator, image, mask, rng, donor)
    out = P.blend(image, edited, mask)
    assert np.array_equal(out[~mask], image[~mask])  # the mask is exact
    assert np.array_equal(out[mask], edited[mask])
    assert (out[mask] != image[mask]).any()


def test_pairs_are_seeded_and_recorded():
    a1, m1 = P.make_pair("train", "splice", 5, 32, seed=7)
    a2, m2 = P.make_pair("train", "splice", 5, 32, seed=7)
    assert np.array_equal(m1.image, m2.image) and np.array_equal(m1.mask, m2.mask) and m1.record == m2.record
    _, other = P.make_pair("train", "splice", 5, 32, seed=8)
    assert not np.array_equal(other.image, m1.image)
    assert a1.label == 0 and not a1.mask.any() and m1.label == 1 and m1.mask.any()
    assert m1.record["donor"] != m1.record["photo"]  # a splice comes from another photo
    assert {"region", "editor", "degradations", "camera_noise", "crop"} <= set(m1.record)


def test_splice_donors_come_from_a_camera_with_another_noise_level():
    lo, hi = P.SPLICE_NOISE_RATIO
    for i in range(8):
        _, m = P.make_pair("train", "splice", i, 32, seed=0)
        ratio = m.record["donor_camera_noise"] / m.record["camera_noise"]
        assert lo - 1e-3 <= max(ratio, 1 / ratio) <= hi + 1e-3  # recorded values are rounded to 3 decimals
    _, cm = P.make_pair("train", "copy-move", 0, 32, seed=0)
    assert cm.record["donor_camera_noise"] == cm.record["camera_noise"]  # copy-move: the same camera


def test_paper_scale_assets_fail_with_one_line(tmp_path, monkeypatch):
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(BenchError, match="SAM checkpoint not found"):
        P.sam_regions(image, tmp_path / "sam_vit_h_4b8939.pth")
    monkeypatch.setenv("BENCH_ASSETS", str(tmp_path / "assets"))
    with pytest.raises(BenchError, match="missing asset sam-vit-h"):
        P.sam_regions(image)
    with pytest.raises(BenchError, match="inpainting model not found"):
        P.diffusion_inpaint(image, np.ones((8, 8), bool), "a cat", tmp_path / "sd-inpainting", seed=0)
