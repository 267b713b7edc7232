"""Lightweight SR baselines: published parameter counts, output shapes, padding, fixed operators."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.sr import edsr_baseline, elan_light, imdn, swinir_light
from bench.profile import count_params
from bench.registry import BenchError

MODULES = {"swinir_light": swinir_light, "elan_light": elan_light, "edsr_baseline": edsr_baseline, "imdn": imdn}


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """One torch and one BLAS thread for every test here (tests/conftest.py)."""


def published_count(module, model) -> int:
    return swinir_light.paper_param_count(model) if module is swinir_light else count_params(model)


@pytest.mark.parametrize("name", list(MODULES))
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_params_match_published(name, scale):
    module = MODULES[name]
    n = published_count(module, module.build(scale))
    paper = module.PUBLISHED_PARAMS[scale]
    assert abs(n - paper) / paper < 0.01, (n, paper)


def test_swinir_code_count_matches_issue_45():
    # SwinIR issue #45: the released code holds 910.2K parameters at x2 (paper: 878K without the
    # relative position bias tables, 24 tables of (2*8-1)^2 x 6 = 32,400 values).
    model = swinir_light.build(2)
    assert round(count_params(model) / 1e3, 1) == 910.2
    assert count_params(model) - swinir_light.paper_param_count(model) == 24 * 15 * 15 * 6


@pytest.mark.parametrize("name", list(MODULES))
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_is_scale_times_input(name, scale):
    model = MODULES[name].build(scale, "tiny").eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 13, 21) * model.rgb_range)
    assert out.shape == (2, 3, 13 * scale, 21 * scale)
    assert torch.isfinite(out).all()


def test_full_size_configs_run_at_x4():
    for name, module in MODULES.items():
        model = module.build(4).eval()
        with torch.no_grad():
            out = model(torch.rand(1, 3, 17, 18) * model.rgb_range)
        assert out.shape == (1, 3, 68, 72), name


def test_swinir_pads_non_multiple_sizes_by_reflection():
    torch.manual_seed(0)
    model = swinir_light.build(2, "tiny").eval()  # window 4
    x = torch.rand(1, 3, 13, 18)
    padded = torch.from_numpy(np.pad(x.numpy(), ((0, 0), (0, 0), (0, 3), (0, 2)), mode="reflect"))
    with torch.no_grad():
        out, ref = model(x), model(padded)
    assert out.shape == (1, 3, 26, 36) and ref.shape == (1, 3, 32, 40)
    torch.testing.assert_close(out, ref[:, :, :26, :36])
    with pytest.raises(BenchError, match="too small"):
        model(torch.rand(1, 3, 1, 1))


def test_swinir_shifted_window_mask_by_hand():
    # 16x16 map, window 8, shift 4: the top-left window lies in one region (no masking); the bottom-right
    # window straddles four regions of 4x4 tokens, so each token may attend to 16 of the 64.
    mask = swinir_light.shifted_window_mask(16, 16, 8, 4)
    assert mask.shape == (4, 64, 64)
    assert mask[0].abs().sum() == 0
    assert ((mask[3] == 0).sum(-1) == 16).all() and ((mask[3] == -100).sum(-1) == 48).all()
    assert ((mask[1] == 0).sum(-1) == 32).all()  # top-right window: two regions


def test_swinir_relative_position_index_by_hand():
    idx = swinir_light.relative_position_index(2)
    # tokens (0,0),(0,1),(1,0),(1,1); index = (dy + 1) * 3 + (dx + 1) with d = position_i - position_j
    expected = torch.tensor([[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]])
    assert torch.equal(idx, expected)


def test_swinir_official_checkpoint_keys_load():
    model = swinir_light.build(2, "tiny")
    sd = dict(model.state_dict())
    sd["layers.0.residual_group.blocks.1.attn_mask"] = torch.zeros(1)
    sd["layers.0.residual_group.blocks.0.attn.relative_position_index"] = torch.zeros(1)
    fresh = swinir_light.build(2, "tiny")
    fresh.load_state_dict(swinir_light.from_official_state_dict({"params": sd}), strict=True)


def test_elan_shift_equals_fixed_depthwise_conv():
    """ELAN's shift as its official fixed 3x3 depthwise kernel: groups of C//5 channels with a single 1 at
    (1,2), (1,0), (2,1), (0,1), the rest at the centre (1,1)."""
    c = 11
    x = torch.randn(2, c, 6, 7)
    kernel = torch.zeros(c, 1, 3, 3)
    g = c // 5
    for i, (r, s) in enumerate([(1, 2), (1, 0), (2, 1), (0, 1)]):
        kernel[i * g:(i + 1) * g, 0, r, s] = 1.0
    kernel[4 * g:, 0, 1, 1] = 1.0
    ref = F.conv2d(x, kernel, padding=1, groups=c)
    torch.testing.assert_close(elan_light.shift_features(x), ref, rtol=0, atol=0)


def test_elan_reusing_gmsa_applies_given_attention():
    torch.manual_seed(0)
    gmsa = elan_light.GMSA(12, (2, 4, 8), shifts=1, calc_attn=False).eval()
    x = torch.randn(1, 12, 8, 16)
    eyes = [torch.eye(p * p).expand(128 // (p * p), p * p, p * p) for p in (2, 4, 8)]
    with torch.no_grad():
        y, _ = gmsa(x, eyes)
        ref = gmsa.project_out(gmsa.project_inp(x))
    torch.testing.assert_close(y, ref)


def test_imdn_contrast_attention_uses_population_std_plus_mean():
    layer = imdn.CCALayer(16)
    x = torch.randn(1, 16, 5, 6, dtype=torch.float64)
    layer.double()
    pooled = x.numpy().std(axis=(2, 3)) + x.numpy().mean(axis=(2, 3))  # numpy std is the population std
    with torch.no_grad():
        weights = layer.conv_du(torch.from_numpy(pooled)[:, :, None, None])
        torch.testing.assert_close(layer(x), x * weights)


def test_edsr_x3_uses_one_nine_fold_conv():
    tail = edsr_baseline.build(3).tail[0]
    assert [type(m).__name__ for m in tail] == ["Conv2d", "PixelShuffle"]
    assert tail[0].out_channels == 9 * 64
    assert len(edsr_baseline.build(4).tail[0]) == 4  # two (conv, shuffle x2) steps


def test_bad_inputs():
    with pytest.raises(BenchError, match="scale"):
        imdn.build(5)
    with pytest.raises(BenchError, match="Did you mean 'light'"):
        swinir_light.build(2, "lite")
    with pytest.raises(BenchError, match="expects"):
        edsr_baseline.build(2, "tiny")(torch.rand(1, 1, 8, 8))
