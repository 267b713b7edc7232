"""SAM-prior distillation (methods/sam_prior): the deployed model is the plain IR model (equal params and MACs),
the region operators equal a direct NumPy computation, the knobs do what they say, and the segmenter's cache and
its missing-SAM error behave."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.ir import nafnet, restormer
from bench.profile import count_macs, count_params
from bench.registry import BenchError
from methods.sam_prior import model as sp
from methods.sam_prior import segmenter



@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """One torch thread: these models are tiny, and contending threads on a shared runner only slow them."""

@pytest.mark.parametrize("build", [lambda: nafnet.build("tiny"), lambda: restormer.build("tiny")])
def test_deployed_network_has_the_plain_models_params_and_macs(build):
    torch.manual_seed(0)
    plain = build()
    torch.manual_seed(0)
    wrapper = sp.SAMPriorDistill(build())
    deployed = wrapper.deployed()
    x = torch.rand(1, 3, 32, 32)
    assert count_params(deployed) == count_params(plain)
    assert count_macs(deployed, x) == count_macs(plain, x)
    assert count_params(wrapper) > count_params(plain)  # SPF exists at training time only
    with torch.no_grad():  # same init -> the same function: nothing of SPF/SGR runs at inference
        torch.testing.assert_close(deployed(x), plain(x))


def test_profile_rows_show_equal_deployed_cost():
    from methods.sam_prior.recipe import profile

    rows = {r["entry"]: r for r in profile("smoke", "cpu", measure_latency=False)}
    for base, method in (("nafnet-w32", "sam-prior-nafnet-w32"), ("restormer", "sam-prior-restormer")):
        assert rows[method]["params_m"] == rows[base]["params_m"]
        assert rows[method]["gmacs"] == rows[base]["gmacs"]
        assert rows[method]["params_m_training"] > rows[base]["params_m_training"]


def _labels():
    return torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 1], [2, 3, 3, 3]]])


def test_region_onehot_keeps_largest_regions_and_merges_the_rest():
    onehot = sp.region_onehot(_labels(), max_regions=3)
    # areas: label 0 -> 4, 1 -> 5, 2 -> 4, 3 -> 3; order by area (stable on ties): 1, 0, 2, then 3 merged into slot 2
    assert onehot.shape == (1, 3, 4, 4)
    assert onehot.sum(1).eq(1).all()
    np.testing.assert_array_equal(onehot[0, 0].numpy(), (_labels()[0] == 1).numpy())
    np.testing.assert_array_equal(onehot[0, 2].numpy(), ((_labels()[0] == 2) | (_labels()[0] == 3)).numpy())


def test_boundary_map_by_hand():
    edge = sp.boundary_map(_labels())[0, 0].numpy()
    # (row, col) is an edge when its right or lower neighbour differs, e.g. (2, 3) = 1 has 3 below it
    expected = np.array([[0, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [1, 0, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(edge, expected)


def test_region_mean_and_relation_match_numpy():
    g = torch.Generator().manual_seed(0)
    labels = _labels()
    image = torch.rand(1, 3, 4, 4, generator=g)
    onehot = sp.region_onehot(labels, 4)
    means = sp.region_mean(image, onehot)[0].numpy()
    lab = labels[0].numpy()
    for k in np.unique(lab):
        region = image[0].numpy()[:, lab == k].mean(1)
        np.testing.assert_allclose(means[:, lab == k], np.repeat(region[:, None], (lab == k).sum(), 1), rtol=1e-6)
    feats = torch.rand(1, 5, 4, 4, generator=g)
    rel, valid = sp.region_relation(feats, onehot)
    pooled = np.stack([feats[0].numpy()[:, lab == k].mean(1) for k in (1, 0, 2, 3)])  # slot order: by area
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    np.testing.assert_allclose(rel[0].numpy(), pooled @ pooled.T, rtol=1e-5, atol=1e-6)
    assert valid.all()


def test_with_every_prior_term_off_the_ir_gradient_is_plain_l1():
    torch.manual_seed(0)
    ir = nafnet.build("tiny")
    wrapper = sp.SAMPriorDistill(ir, {"lambda_spd": 0.0, "lambda_sgr": 0.0, "detach_fusion_input": True})
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    labels = torch.randint(0, 3, (2, 16, 16))
    wrapper.losses(x, y, labels)["total"].backward()
    got = [p.grad.clone() for p in ir.parameters()]
    ir.zero_grad()
    F.l1_loss(ir(x), y).backward()
    for a, p in zip(got, ir.parameters()):
        torch.testing.assert_close(a, p.grad)


def test_unknown_knob_is_refused():
    with pytest.raises(ValueError, match="unknown sam-prior knob"):
        sp.SAMPriorDistill(nafnet.build("tiny"), {"lambda_kd": 1.0})


def test_sam_masks_become_one_label_map_finer_masks_on_top():
    big = np.zeros((4, 4), bool)
    big[:, :3] = True
    small = np.zeros((4, 4), bool)
    small[0, 0] = True
    labels = segmenter.masks_to_labels([{"segmentation": small, "area": 1}, {"segmentation": big, "area": 12}],
                                       (4, 4))
    expected = np.array([[2, 1, 1, 0]] + [[1, 1, 1, 0]] * 3)
    np.testing.assert_array_equal(labels, expected)


def test_masks_are_computed_once_and_cached(tmp_path, monkeypatch):
    images = [np.full((8, 8, 3), v, np.uint8) for v in (10, 200)]
    calls = []

    def fake_labeler(prior, device):
        return lambda im: (calls.append(1), np.full(im.shape[:2], int(im[0, 0, 0]), np.int32))[1]

    monkeypatch.setattr(segmenter, "make_labeler", fake_labeler)
    prior = {"source": "slic", "n_segments": 4}
    first = segmenter.cached_labels(images, prior, tmp_path, "fp")
    second = segmenter.cached_labels(images, prior, tmp_path, "fp")
    assert len(calls) == 2 and [m[0, 0] for m in second] == [10, 200]
    assert all((a == b).all() for a, b in zip(first, second))
    segmenter.cached_labels(images, {**prior, "n_segments": 8}, tmp_path, "fp")  # other knobs: other cache
    assert len(calls) == 4


def test_slic_stand_in_segments_a_photo():
    from bench.data.smoke import photos

    labels = segmenter.slic_labels(photos("train", 64)[0], n_segments=16)
    assert labels.shape == (64, 64) and 4 <= len(np.unique(labels)) <= 32


def test_missing_sam_checkpoint_is_one_clear_line(tmp_path, monkeypatch):
    pytest.importorskip("segment_anything")
    monkeypatch.setenv("BENCH_ASSETS", str(tmp_path))
    with pytest.raises(BenchError) as err:
        segmenter.SamLabeler("vit_b")
    message = str(err.value)
    assert "\n" not in message and "sam_vit_b_01ec64.pth" in message and "dl.fbaipublicfiles.com" in message
