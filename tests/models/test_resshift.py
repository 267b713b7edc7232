"""ResShift (the TAD-SR teacher): the residual-shifting schedule against hand calculations, the samplers against
an oracle denoiser, and the Swin-UNet against the official state-dict layout and published size."""
from __future__ import annotations

import math

import pytest
import torch

from baselines.resshift.schedule import REALSR_X4, ResShiftSchedule, sqrt_eta_schedule
from baselines.resshift.unet import PUBLISHED_PARAMS_M, UNetModelSwin, build
from baselines.resshift.unet import REALSR_X4 as UNET_X4
from tests.fixtures_official.resshift import random_state_dict, unet_swin_layout

# sqrt(eta_t), t = 1..15, for kappa 2, min_noise_level 0.04, etas_end 0.99, p 0.3 (dossier section 6.2, computed
# from the config formula to 3 decimals)
DOSSIER_SQRT_ETAS = [0.020, 0.117, 0.176, 0.234, 0.292, 0.351, 0.412, 0.476, 0.542, 0.610, 0.681, 0.754, 0.830,
                     0.909, 0.990]


def test_eta_schedule_matches_the_hand_computed_realsr_x4_values():
    s = ResShiftSchedule(**{k: REALSR_X4[k] for k in ("steps", "kappa", "min_noise_level", "etas_end", "power")})
    assert s.sqrt_etas.round(3).tolist() == DOSSIER_SQRT_ETAS
    # one interior value by hand: sqrt(eta_2) = 0.02 * b ** ((1/14) ** 0.3 * 14), b = (0.99 / 0.02) ** (1/14)
    b = (0.99 / 0.02) ** (1 / 14)
    assert s.sqrt_etas[1] == pytest.approx(0.02 * b ** ((1 / 14) ** 0.3 * 14), rel=1e-12)
    assert s.etas[0] == pytest.approx(4e-4) and s.sqrt_etas[-1] == pytest.approx(0.99)
    # posterior variance kappa^2 eta_{t-1} / eta_t (eta_t - eta_{t-1}); zero at the first step
    t = 7
    want = 4.0 * s.etas[t - 1] / s.etas[t] * (s.etas[t] - s.etas[t - 1])
    assert s.posterior_variance[t] == pytest.approx(want, rel=1e-12) and s.posterior_variance[0] == 0.0


def test_eta_start_is_the_smaller_of_level_over_kappa_and_level():
    assert sqrt_eta_schedule(4, 0.04, 0.99, 0.5, 0.3)[0] == pytest.approx(0.04)  # kappa < 1: the level itself
    assert sqrt_eta_schedule(4, 0.2, 0.99, 2.0, 0.3)[0] == pytest.approx(0.1)  # face config: 0.2 / 2


def test_forward_process_moments_and_implied_noise_inverse():
    s = ResShiftSchedule()
    gen = torch.Generator().manual_seed(0)
    x0, y, eps = (torch.randn(2, 3, 4, 4, generator=gen) for _ in range(3))
    t = torch.tensor([0, 9])
    x_t = s.q_sample(x0, y, t, eps)
    for i, ti in enumerate(t.tolist()):
        eta = s.etas[ti]
        want = x0[i] + eta * (y[i] - x0[i]) + 2.0 * math.sqrt(eta) * eps[i]
        assert torch.allclose(x_t[i], want, atol=1e-6)
    assert torch.allclose(s.implied_noise(x_t, y, t, x0), eps, atol=1e-4)
    prior = s.prior_sample(y, eps)
    assert torch.allclose(prior, y + 2.0 * 0.99 * eps, atol=1e-6)
    # the network input of the latent branch: x_t / sqrt(kappa^2 eta_t + 1)
    assert torch.allclose(s.scale_input(x_t, t)[1], x_t[1] / math.sqrt(4 * s.etas[9] + 1), atol=1e-6)


@pytest.mark.parametrize("deterministic", [True, False])
def test_samplers_recover_x0_with_an_oracle_denoiser(deterministic):
    """A denoiser that always answers the true x0 makes both samplers land exactly on x0 after T calls."""
    s = ResShiftSchedule(clip_denoised=False)
    gen = torch.Generator().manual_seed(1)
    x0, y, eps = (torch.randn(1, 3, 4, 4, generator=gen) for _ in range(3))
    calls = []

    def oracle(x, t, lq):
        calls.append(int(t[0]))
        return x0

    out = s.sample(oracle, y, y, eps, deterministic=deterministic, generator=gen)
    assert torch.allclose(out, x0, atol=1e-6)
    assert calls == list(range(14, -1, -1))


def test_deterministic_step_keeps_the_implied_noise():
    """DDIM (eta 0): x_{t-1} carries the same implied noise as x_t, at the lower level."""
    s = ResShiftSchedule()
    gen = torch.Generator().manual_seed(2)
    x0, y, eps = (torch.randn(1, 3, 4, 4, generator=gen) for _ in range(3))
    t = torch.tensor([6])
    x_prev = s.ddim_step(x0, s.q_sample(x0, y, t, eps), y, t)
    assert torch.allclose(x_prev, s.q_sample(x0, y, t - 1, eps), atol=1e-5)


def test_official_realsr_x4_layout_loads_strictly_and_counts_the_published_size():
    model = build()
    layout = unet_swin_layout(**UNET_X4)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == layout
    missing, unexpected = model.load_state_dict(random_state_dict(layout), strict=True)
    assert not missing and not unexpected
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    assert params_m == pytest.approx(118.593583, abs=1e-6)
    assert abs(params_m - PUBLISHED_PARAMS_M) / PUBLISHED_PARAMS_M < 0.01  # 119 M published [S]


def test_feature_extractor_layout_when_the_lr_is_larger_than_the_latent():
    cfg = dict(UNET_X4, model_channels=32, swin_embed_dim=32, channel_mult=(1, 2), num_res_blocks=(1, 1),
               attention_resolutions=(8,), image_size=16, lq_size=64)
    model = UNetModelSwin(**cfg)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == unet_swin_layout(**cfg)
    out = model(torch.randn(1, 3, 16, 16), torch.tensor([3]), torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 3, 16, 16)


def test_swin_block_equals_a_direct_recomputation():
    """One shifted Swin block on a 4x4 map with window 2, recomputed with plain tensor algebra: every token's
    attention is restricted to the tokens of its cyclically shifted window and region."""
    from baselines.resshift.unet import SwinBlock

    torch.manual_seed(0)
    blk = SwinBlock(dim=4, resolution=4, num_heads=1, window_size=2, shift=1, mlp_ratio=2.0, groups=2).eval()
    x = torch.randn(1, 4, 4, 4)
    with torch.no_grad():
        got = blk(x)
        h = torch.nn.functional.group_norm(x, 2, blk.norm1.weight, blk.norm1.bias, 1e-5)
        h = torch.roll(h, (-1, -1), (2, 3))[0].permute(1, 2, 0)  # (4, 4, C), shifted
        region = torch.zeros(4, 4, dtype=torch.long)  # labels of the 9 shift regions (rows/cols 0-1, 2, 3)
        bands = [0, 0, 1, 2]
        for r in range(4):
            for c in range(4):
                region[r, c] = 3 * bands[r] + bands[c]
        out = torch.zeros_like(h)
        table = blk.attn.relative_position_bias_table[:, 0]
        for r in range(4):
            for c in range(4):
                wr, wc = r // 2, c // 2
                q = blk.attn.qkv(h[r, c])[:4] * 0.5
                logits, values = [], []
                for rr in range(2 * wr, 2 * wr + 2):
                    for cc in range(2 * wc, 2 * wc + 2):
                        kv = blk.attn.qkv(h[rr, cc])
                        rel = (r - rr + 1) * 3 + (c - cc + 1)
                        mask = 0.0 if region[r, c] == region[rr, cc] else -100.0
                        logits.append(q @ kv[4:8] + table[rel] + mask)
                        values.append(kv[8:])
                out[r, c] = blk.attn.proj(torch.softmax(torch.stack(logits), 0) @ torch.stack(values))
        attn = torch.roll(out.permute(2, 0, 1)[None], (1, 1), (2, 3))
        y = x + attn
        want = y + blk.mlp(torch.nn.functional.group_norm(y, 2, blk.norm2.weight, blk.norm2.bias, 1e-5))
    assert torch.allclose(got, want, atol=1e-5)
