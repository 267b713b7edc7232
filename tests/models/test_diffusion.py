"""The DiT/ADM Gaussian diffusion and its samplers, checked against closed forms and hand computations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from bench.diffusion.gaussian import GaussianDiffusion, linear_betas, space_timesteps
from bench.diffusion.sampling import GuidedDenoiser, ddim_loop, ddpm_loop, sample
from bench.distributed import PerSampleRNG
from bench.registry import BenchError


def ddpm_alphas_cumprod() -> np.ndarray:
    """Ho et al.'s linear schedule written out independently: beta_i = 1e-4 + i (0.02 - 1e-4) / 999."""
    i = np.arange(1000, dtype=np.float64)
    betas = 1e-4 + i * (0.02 - 1e-4) / 999
    return np.exp(np.cumsum(np.log1p(-betas)))


def test_linear_schedule_alphas_cumprod():
    diffusion = GaussianDiffusion.dit_default()
    abar = diffusion.array("alphas_cumprod").numpy()
    np.testing.assert_allclose(abar, ddpm_alphas_cumprod(), rtol=1e-12)
    assert abar[0] == pytest.approx(0.9999, abs=1e-15)
    assert abar[-1] == pytest.approx(4.0358e-05, rel=1e-4)  # the well-known end of the DDPM schedule
    # ADM scales the ends by 1000/T for other step counts.
    np.testing.assert_allclose(linear_betas(500)[[0, -1]], [2e-4, 0.04])


def test_posterior_matches_bayes_rule():
    """q(x_{t-1}|x_t,x_0) from N(sqrt(abar_{t-1}) x0, 1-abar_{t-1}) times N(x_t; sqrt(a_t) x_{t-1}, b_t)."""
    diffusion = GaussianDiffusion.dit_default()
    abar = ddpm_alphas_cumprod()
    t = torch.tensor([1, 17, 250, 999])
    x0 = torch.tensor([0.3, -1.2, 0.8, 2.0], dtype=torch.float64)[:, None]
    xt = torch.tensor([-0.5, 0.4, 1.1, -0.7], dtype=torch.float64)[:, None]
    mean, var, _ = diffusion.q_posterior(x0, xt, t)
    for row, step in enumerate(t.tolist()):
        prev, beta = abar[step - 1], 1 - abar[step] / abar[step - 1]
        precision = 1 / (1 - prev) + (1 - beta) / beta
        want_var = 1 / precision
        want_mean = want_var * (math.sqrt(prev) * x0[row, 0].item() / (1 - prev)
                                + math.sqrt(1 - beta) * xt[row, 0].item() / beta)
        assert var[row, 0].item() == pytest.approx(want_var, rel=1e-9)
        assert mean[row, 0].item() == pytest.approx(want_mean, rel=1e-9, abs=1e-12)
    # At t = 0 the posterior collapses onto x0.
    mean0, var0, _ = diffusion.q_posterior(x0[:1], xt[:1], torch.tensor([0]))
    assert var0.item() == 0.0 and mean0.item() == pytest.approx(0.3, abs=1e-12)


def test_q_sample_statistics():
    diffusion = GaussianDiffusion.dit_default()
    n, step, value = 200_000, 300, 0.7
    x0 = torch.full((n, 1), value, dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(n, 1, generator=generator, dtype=torch.float64)
    xt = diffusion.q_sample(x0, torch.full((n,), step), noise)
    abar = ddpm_alphas_cumprod()[step]
    sd = math.sqrt(1 - abar)
    assert abs(xt.mean().item() - math.sqrt(abar) * value) < 5 * sd / math.sqrt(n)
    assert abs(xt.var().item() - (1 - abar)) < 5 * (1 - abar) * math.sqrt(2 / n)


def oracle(diffusion: GaussianDiffusion, x0: torch.Tensor):
    """A model that returns the exact noise of x_t given the true x0 (eps channels), zeros for variance."""
    def model(x, t_model, **kwargs):
        index = torch.searchsorted(diffusion.timestep_map, t_model)  # original timestep -> step index
        eps = diffusion.predict_eps_from_x0(x, index, x0)
        return torch.cat([eps, torch.zeros_like(eps)], dim=1)
    return model


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_ddim_eta0_with_true_noise_recovers_x0(dtype, tol):
    full = GaussianDiffusion.dit_default()
    spaced = full.respaced("ddim50")
    x0 = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1), dtype=dtype).clamp(-1, 1)
    assert spaced.timestep_map[-1].item() == 980  # DDIM's integer stride 20 starts at 980
    x_T = full.q_sample(x0, torch.full((3,), 980), torch.randn(x0.shape, dtype=dtype))
    rng = PerSampleRNG([0, 1, 2], base_seed=0)
    out = ddim_loop(spaced, oracle(spaced, x0), x_T, rng, eta=0.0)
    assert (out - x0).abs().max().item() < tol


def test_ddpm_with_true_noise_lands_on_x0():
    """Ancestral sampling with the oracle: the last step has no noise and q(x_{-1}|x_0) is a point mass."""
    spaced = GaussianDiffusion.dit_default().respaced(25)
    x0 = torch.rand(2, 4, 4, 4, dtype=torch.float64) * 2 - 1
    x_T = torch.randn(2, 4, 4, 4, dtype=torch.float64)
    out = ddpm_loop(spaced, oracle(spaced, x0), x_T, PerSampleRNG([5, 6], base_seed=3))
    assert (out - x0).abs().max().item() < 1e-10


def test_respacing_keeps_alphas_cumprod_and_maps_timesteps():
    full = GaussianDiffusion.dit_default()
    kept = space_timesteps(1000, "250")
    assert len(kept) == 250 and kept[0] == 0 and kept[-1] == 999
    spaced = full.respaced(250)
    np.testing.assert_allclose(spaced.array("alphas_cumprod").numpy(),
                               full.array("alphas_cumprod").numpy()[kept], rtol=1e-12)
    assert spaced.timestep_map.tolist() == kept
    assert spaced.model_timesteps(torch.tensor([249, 0])).tolist() == [999, 0]
    assert space_timesteps(1000, "ddim25") == list(range(0, 1000, 40))
    # ADM's docstring example: 300 steps, sections of 10/15/20.
    sections = space_timesteps(300, "10,15,20")
    assert len(sections) == 45 and sections[:2] == [0, 11] and sections[-1] == 299
    # Respacing a respaced diffusion composes the maps.
    assert full.respaced(250).respaced(10).timestep_map.tolist()[-1] == 999
    with pytest.raises(BenchError, match="integer stride"):
        space_timesteps(1000, "ddim999")
    with pytest.raises(BenchError):
        space_timesteps(10, 11)


def test_vlb_term_equals_hand_gaussian_kl():
    diffusion = GaussianDiffusion.dit_default()
    abar = ddpm_alphas_cumprod()
    step, x0, xt, eps, v = 400, 0.3, 0.5, 0.2, 0.4
    output = torch.tensor([eps, v], dtype=torch.float64).reshape(1, 2, 1, 1)
    got = diffusion.vb_terms_bpd(output, torch.tensor(x0, dtype=torch.float64).reshape(1, 1, 1, 1),
                                 torch.tensor(xt, dtype=torch.float64).reshape(1, 1, 1, 1), torch.tensor([step]))
    a, a_prev = abar[step], abar[step - 1]
    beta = 1 - a / a_prev
    post_var = beta * (1 - a_prev) / (1 - a)
    coef1, coef2 = beta * math.sqrt(a_prev) / (1 - a), (1 - a_prev) * math.sqrt(1 - beta) / (1 - a)
    true_mean = coef1 * x0 + coef2 * xt
    x0_hat = (xt - math.sqrt(1 - a) * eps) / math.sqrt(a)
    model_mean = coef1 * x0_hat + coef2 * xt
    frac = (v + 1) / 2
    model_var = math.exp(frac * math.log(beta) + (1 - frac) * math.log(post_var))
    # KL(N(m1, s1^2) || N(m2, s2^2)) = ln(s2/s1) + (s1^2 + (m1-m2)^2) / (2 s2^2) - 1/2, in bits.
    kl = 0.5 * math.log(model_var / post_var) + (post_var + (true_mean - model_mean) ** 2) / (2 * model_var) - 0.5
    assert got.item() == pytest.approx(kl / math.log(2), rel=1e-10)


def test_vlb_at_t0_is_discretised_decoder_nll():
    diffusion = GaussianDiffusion.dit_default()
    x0, xt, eps, v = 0.3, 0.31, 0.5, -1.0  # v = -1: the clipped posterior variance of t = 1
    output = torch.tensor([eps, v], dtype=torch.float64).reshape(1, 2, 1, 1)
    as4d = lambda value: torch.tensor(value, dtype=torch.float64).reshape(1, 1, 1, 1)
    got = diffusion.vb_terms_bpd(output, as4d(x0), as4d(xt), torch.tensor([0])).item()
    abar = ddpm_alphas_cumprod()
    mean = (xt - math.sqrt(1 - abar[0]) * eps) / math.sqrt(abar[0])  # at t=0 the posterior mean is x0_hat
    sd = math.sqrt((1 - abar[1] / abar[0]) * (1 - abar[0]) / (1 - abar[1]))
    p = norm.cdf((x0 + 1 / 255 - mean) / sd) - norm.cdf((x0 - 1 / 255 - mean) / sd)
    # ADM's tanh approximation of the normal CDF is accurate to ~1e-3 here.
    assert got == pytest.approx(-math.log2(p), rel=2e-3)


def test_hybrid_loss_mse_and_stop_gradient():
    diffusion = GaussianDiffusion.dit_default()
    x0 = torch.randn(2, 4, 4, 4)
    noise = torch.randn(2, 4, 4, 4)
    t = torch.tensor([10, 700])
    prediction = torch.randn(2, 8, 4, 4, requires_grad=True)
    terms = diffusion.training_losses(lambda x, tt, **_: prediction * 1.0, x0, t, noise=noise)
    assert torch.allclose(terms["mse"], ((noise - prediction[:, :4]) ** 2).mean(dim=(1, 2, 3)))
    assert torch.allclose(terms["loss"], terms["mse"] + terms["vb"])
    (grad_vb,) = torch.autograd.grad(terms["vb"].sum(), prediction, retain_graph=True)
    assert grad_vb[:, :4].abs().max() == 0  # the VLB never trains the mean (eps) channels
    assert grad_vb[:, 4:].abs().max() > 0
    (grad_mse,) = torch.autograd.grad(terms["mse"].sum(), prediction)
    assert grad_mse[:, 4:].abs().max() == 0


class LabelModel(torch.nn.Module):
    """A deterministic toy denoiser whose output depends on x, t and the label."""

    def __init__(self, channels: int = 4, classes: int = 10):
        super().__init__()
        gen = torch.Generator().manual_seed(7)
        self.table = torch.randn(classes + 1, 2 * channels, generator=gen) * 0.3
        self.channels = channels

    def forward(self, x, t, y):
        scale = (t.float() / 1000.0)[:, None, None, None]
        return torch.cat([x * 0.1, torch.tanh(x)], dim=1) * scale + self.table[y][:, :, None, None]


def test_cfg_guides_first_three_channels_like_dit():
    model = LabelModel()
    x, t, y = torch.randn(2, 4, 3, 3), torch.tensor([5, 900]), torch.tensor([1, 4])
    guided = GuidedDenoiser(model, scale=1.5, null_class=10)(x, t, y)
    cond, uncond = model(x, t, y), model(x, t, torch.tensor([10, 10]))
    assert torch.allclose(guided[:, :3], uncond[:, :3] + 1.5 * (cond[:, :3] - uncond[:, :3]))
    assert torch.equal(guided[:, 3:], cond[:, 3:])  # eps channel 3 and the variance: conditional pass
    everything = GuidedDenoiser(model, scale=1.5, null_class=10, guided_channels=None, eps_channels=4)(x, t, y)
    assert torch.allclose(everything[:, :4], uncond[:, :4] + 1.5 * (cond[:, :4] - uncond[:, :4]))
    # One-channel data: "first 3 channels" must stop at the eps block (never guide the variance channel).
    mono = LabelModel(channels=1)
    x1 = torch.randn(2, 1, 3, 3)
    out = GuidedDenoiser(mono, scale=2.0, null_class=10, eps_channels=1)(x1, t, y)
    cond1, uncond1 = mono(x1, t, y), mono(x1, t, torch.tensor([10, 10]))
    assert torch.allclose(out[:, :1], uncond1[:, :1] + 2.0 * (cond1[:, :1] - uncond1[:, :1]))
    assert torch.equal(out[:, 1:], cond1[:, 1:])


@pytest.mark.parametrize("sampler,cfg", [("ddpm", 1.0), ("ddim", 1.5)])
def test_samples_do_not_depend_on_batch_size(sampler, cfg):
    model, diffusion = LabelModel(), GaussianDiffusion.dit_default()
    labels = torch.tensor([3, 1, 4, 1])
    kwargs = {"sampler": sampler, "steps": 10, "eta": 0.5, "cfg_scale": cfg, "null_class": 10}
    whole, stats = sample(model, diffusion, (4, 4, 4), labels, [0, 1, 2, 3], seed=11, **kwargs)
    halves = torch.cat([sample(model, diffusion, (4, 4, 4), labels[i:i + 2], [i, i + 1], seed=11, **kwargs)[0]
                        for i in (0, 2)])
    alone, _ = sample(model, diffusion, (4, 4, 4), labels[3:], [3], seed=11, **kwargs)
    assert torch.allclose(whole, halves, atol=1e-6)
    assert torch.allclose(whole[3:], alone, atol=1e-6)
    other_seed, _ = sample(model, diffusion, (4, 4, 4), labels, [0, 1, 2, 3], seed=12, **kwargs)
    assert not torch.allclose(whole, other_seed)
    assert stats.steps == 10 and stats.nfe == 10
    assert stats.nfe_forward_passes == (20 if cfg != 1.0 else 10)
    assert stats.guided_channels == (3 if cfg != 1.0 else None)


def test_bad_inputs_raise_one_line_errors():
    diffusion = GaussianDiffusion.dit_default()
    with pytest.raises(BenchError, match="8 output channels"):
        diffusion.p_mean_variance(torch.zeros(1, 4, 2, 2), torch.zeros(1, 4, 2, 2), torch.tensor([3]))
    with pytest.raises(BenchError, match="unknown sampler"):
        sample(LabelModel(), diffusion, (4, 2, 2), torch.tensor([0]), [0], seed=0, sampler="heun")
    with pytest.raises(BenchError, match="null class"):
        sample(LabelModel(), diffusion, (4, 2, 2), torch.tensor([0]), [0], seed=0, steps=2, cfg_scale=2.0)
    with pytest.raises(BenchError, match="variance type"):
        GaussianDiffusion(linear_betas(100), variance="learned")
