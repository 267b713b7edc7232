"""EDM's training schedule and sample generation on top of the shared runtime (bench.train, bench.distributed).

* `edm_train_config`: EDM's schedule (counted in images, as its train.py does) as a `bench.train.TrainConfig`:
  Adam (0.9, 0.999, 1e-8), lr ramped up linearly over ``lr_rampup_kimg`` from 0 at the first step, then
  constant; EMA with a half-life of ``ema_halflife_kimg`` and EDM's ramp-up ratio 0.05 (half-life <= 5% of the
  images seen). Differences from NVlabs/edm, stated: a non-finite gradient stops training with an error
  instead of being zeroed (`nan_to_num`), and the EMA ramp uses the images seen *after* the step (EDM: before),
  which only changes the very first updates.
* `generate_batch`: one batch of samples for global sample indices, every random draw (latent, class label,
  extra condition) from generators seeded by (base_seed, index), so a sample does not depend on its batch,
  the batch size or the process count.
* `EDM_FID_SEED_RANGES`: EDM reports the minimum FID over three 50k-sample draws with seeds 0-49,999,
  50,000-99,999 and 100,000-149,999 [R README]; `seed_ranges(k, n)` gives the first k such ranges.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from baselines.edm import samplers
from bench.distributed import PerSampleRNG, derive_seed
from bench.train import TrainConfig

EDM_FID_SEED_RANGES = ((0, 50_000), (50_000, 100_000), (100_000, 150_000))


def edm_train_config(*, batch_size: int, total_kimg: float, lr: float, lr_rampup_kimg: float = 10_000,
                     ema_halflife_kimg: float = 500, ema_rampup_ratio: float | None = 0.05, seed: int = 0,
                     ckpt_every: int = 0, **overrides: Any) -> TrainConfig:
    """EDM's schedule in optimizer steps (steps = total images / batch)."""
    steps = max(1, round(total_kimg * 1000 / batch_size))
    warmup = min(steps - 1, round(lr_rampup_kimg * 1000 / batch_size)) if lr_rampup_kimg else 0
    decay = 0.5 ** (batch_size / (ema_halflife_kimg * 1000)) if ema_halflife_kimg else None
    options: dict[str, Any] = {
        "steps": steps, "batch_size": batch_size, "lr": lr, "optimizer": "adam", "betas": (0.9, 0.999), "eps": 1e-8,
        "schedule": "constant", "warmup_steps": max(0, warmup), "warmup_offset": 0, "ema_decay": decay,
        "ema_rampup_ratio": ema_rampup_ratio, "seed": seed, "ckpt_every": ckpt_every, "grad_clip": None}
    options.update(overrides)
    return TrainConfig(**options)


def seed_ranges(count: int, size: int) -> list[tuple[int, int]]:
    """``count`` consecutive index ranges of ``size`` samples: EDM's protocol with size 50,000."""
    return [(k * size, (k + 1) * size) for k in range(count)]


def generate_batch(net: Any, indices: torch.Tensor, base_seed: int, *, solver: str, nfe: int,
                   device: Any = "cpu", label_dim: int = 0,
                   condition: Callable[[PerSampleRNG], dict[str, torch.Tensor]] | None = None,
                   sampler_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """uint8 images [N, C, H, W] (EDM's quantisation) for the global sample ``indices``.

    condition(rng) -> extra keyword arguments of the network (e.g. QAC's sampled codes), drawn from their own
    per-sample stream. Stochastic samplers take their churn noise from a third stream.
    """
    shape = (net.img_channels, net.img_resolution, net.img_resolution)
    latents = PerSampleRNG(indices, derive_seed(base_seed, "latent"), device).randn(*shape)
    class_labels, labels = None, None
    if label_dim:
        labels = PerSampleRNG(indices, derive_seed(base_seed, "label"), device).randint(0, label_dim, 1)[:, 0]
        class_labels = torch.eye(label_dim, device=device)[labels]
    net_kwargs = condition(PerSampleRNG(indices, derive_seed(base_seed, "condition"), device)) if condition else {}
    churn_rng = PerSampleRNG(indices, derive_seed(base_seed, "churn"), device)
    result = samplers.sample(net, latents, solver, nfe=nfe, class_labels=class_labels, net_kwargs=net_kwargs,
                             rng=churn_rng, **(sampler_kwargs or {}))
    out = {"images": samplers.to_uint8(result.images).cpu(), "nfe": result.nfe, "num_steps": result.num_steps}
    if labels is not None:
        out["labels"] = labels.cpu()
    return out
