"""bench's DDIM sampler, pinned independently of any training (issue 23).

The ideal denoiser of a finite training set is known in closed form: under x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) e,
the posterior over the class-y training images is softmax_i(-|x_t - sqrt(abar_t) x0_i|^2 / (2 (1 - abar_t))), and
the best eps prediction is (x_t - sqrt(abar_t) E[x0 | x_t, y]) / sqrt(1 - abar_t). Run through the sampler that the
u-dit recipe uses, it must draw digits that bench's digits classifier (an independent net, trained on the same
split) recognises as the requested class; a sampler with a wrong schedule, timestep map, sign or update rule
draws blurs or noise instead (the issue measured 97.6% correct for the ideal denoiser, chance is 10%).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.data.smoke import digits
from bench.diffusion.gaussian import GaussianDiffusion
from bench.diffusion.latents import uint8_to_unit, unit_to_uint8
from bench.diffusion.sampling import sample
from bench.metrics.offline_fd import digits_probabilities
from bench.recipe import torch_threads

SAMPLES = 100  # 10 per class


class IdealDenoiser:
    """The class-conditional posterior mean of the training digits, as a DiT-style network: output channels
    [eps, v] (v = 0: the learned-range variance is unused by deterministic DDIM)."""

    def __init__(self, diffusion: GaussianDiffusion, images: torch.Tensor, labels: torch.Tensor):
        self.abar = diffusion.array("alphas_cumprod")  # indexed by the ORIGINAL timestep the network receives
        self.by_class = {int(c): images[labels == c].double().flatten(1) for c in labels.unique()}
        self.calls = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        abar = self.abar[t.cpu()][:, None]  # [B, 1]
        xt = x.double().flatten(1)
        x0 = torch.empty_like(xt)
        for c, train in self.by_class.items():  # one matrix product per class present in the batch
            rows = y == c
            if rows.any():
                # squared distances |x_t - sqrt(abar) x0_i|^2 of each row to every class-c training digit
                d2 = ((xt[rows, None, :] - abar[rows, :, None].sqrt() * train[None]) ** 2).sum(-1)
                x0[rows] = torch.softmax(-d2 / (2 * (1 - abar[rows])), dim=1) @ train
        eps = ((xt - abar.sqrt() * x0) / (1 - abar).sqrt()).reshape(x.shape)
        return torch.cat([eps, torch.zeros_like(eps)], dim=1).to(x.dtype)


@pytest.fixture(scope="module")
def ideal():
    images, labels = digits("train")
    diffusion = GaussianDiffusion.dit_default()
    # one thread: these small ops run ~10x slower with two threads contending on a shared CPU
    with torch_threads(1):
        yield diffusion, IdealDenoiser(diffusion, uint8_to_unit(images), torch.from_numpy(labels))


@pytest.mark.parametrize("nfe", [10, 25])
def test_ddim_with_the_ideal_denoiser_draws_the_requested_digits(ideal, nfe):
    diffusion, denoiser = ideal
    labels = torch.arange(SAMPLES) % 10
    x, stats = sample(denoiser, diffusion, (1, 16, 16), labels, list(range(SAMPLES)), seed=0, sampler="ddim",
                      steps=nfe, clip_denoised=True)
    assert stats.nfe == nfe
    predicted = digits_probabilities(unit_to_uint8(x).numpy()).argmax(1)
    accuracy = float((predicted == labels.numpy()).mean())
    assert accuracy >= 0.9, f"DDIM-{nfe} with the ideal denoiser: the classifier agrees on {accuracy:.0%} only"


def test_the_label_matters_control(ideal):
    """Control: the same draws with every label shifted by one are recognised as the requested class at about
    chance, so the accuracy above comes from the conditioning passing through the sampler, not from the noise."""
    diffusion, denoiser = ideal
    labels = torch.arange(SAMPLES) % 10
    x, _ = sample(denoiser, diffusion, (1, 16, 16), (labels + 1) % 10, list(range(SAMPLES)), seed=0,
                  sampler="ddim", steps=10, clip_denoised=True)
    predicted = digits_probabilities(unit_to_uint8(x).numpy()).argmax(1)
    assert float((predicted == labels.numpy()).mean()) < 0.2
    assert np.isfinite(x.numpy()).all()
