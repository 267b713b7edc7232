"""Shared pieces of the bench.train tests and their subprocess jobs (imported as a top-level module by the
job scripts, whose directory is on sys.path, and relatively by the test modules)."""
from __future__ import annotations

import time

import torch
from torch import nn

from bench.train import TrainConfig


def toy_data(n: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded synthetic classification set: n inputs in [0, 1]^256 labelled by a fixed
    random linear map (learnable, and free of the multi-second scikit-learn import that the embedded digits
    set costs every subprocess)."""
    g = torch.Generator().manual_seed(1234)
    x = torch.rand(n, 256, generator=g)
    w = torch.randn(256, 10, generator=g)
    return x, (x @ w).argmax(1)


def tiny_net(seed: int = 0, dropout: float = 0.1) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(256, 32), nn.SiLU(), nn.Dropout(dropout), nn.Linear(32, 10))


def make_loss(noise: float = 0.05, sleep_s: float = 0.0):
    """Cross-entropy on inputs with Gaussian noise: draws from the global torch RNG every step (as a
    diffusion loss does), so a resume is only exact if the RNG state is restored."""

    def loss_fn(model, batch):
        if sleep_s:
            time.sleep(sleep_s)
        x, y = batch
        if noise:
            x = x + noise * torch.randn_like(x)
        return nn.functional.cross_entropy(model(x), y)

    return loss_fn


def resume_config(steps: int = 24, ckpt_every: int = 4, **overrides) -> TrainConfig:
    base = dict(steps=steps, batch_size=16, lr=3e-3, optimizer="adamw", weight_decay=0.01, schedule="cosine",
                warmup_steps=3, grad_clip=1.0, ema_decay=0.9, ckpt_every=ckpt_every, seed=7, progress=False)
    base.update(overrides)
    return TrainConfig(**base)


def analytic_sampler(indices: torch.Tensor, rng, steps: int = 6, sigma_data: float = 0.5,
                     shape: tuple[int, ...] = (1, 4, 4), churn: float = 0.3, denoiser=None):
    """Stochastic Euler sampler (EDM-style churn) with the exact denoiser of N(0, sigma_data^2) data,
    D(x, sigma) = x * sigma_data^2 / (sigma_data^2 + sigma^2). Everything is element-wise, so each row
    depends only on its own random draws: a batch-independent generator by construction."""
    denoise = denoiser if denoiser is not None else gaussian_denoiser(sigma_data)
    sigmas = torch.linspace(2.0, 0.0, steps + 1)
    x = rng.randn(*shape) * sigmas[0]
    for i in range(steps):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        s_hat = s * (1 + churn)
        x = x + (s_hat**2 - s**2) ** 0.5 * rng.randn(*shape)
        d = (x - denoise(x, s_hat)) / s_hat
        x = x + (s_next - s_hat) * d
    return x


def gaussian_denoiser(sigma_data: float = 0.5):
    return lambda x, s: x * sigma_data**2 / (sigma_data**2 + s**2)
