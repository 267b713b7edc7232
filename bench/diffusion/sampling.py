"""Samplers for `GaussianDiffusion`: DDPM ancestral and DDIM, classifier-free guidance, NFE counting.

Randomness: every draw (x_T, then the noise of each stochastic step) comes from `PerSampleRNG`, i.e. from a
CPU generator seeded by (seed, global sample index). Sample i is therefore the same whatever batch it is in,
the batch size or the number of processes (up to floating-point differences between batch shapes).

Classifier-free guidance follows DiT's ``forward_with_cfg``: the conditional and unconditional passes run as
one doubled batch, eps_guided = eps_uncond + s * (eps_cond - eps_uncond) on the first ``guided_channels``
channels only (3 by default, DiT's choice "for exact reproducibility"; the remaining eps channel and the
variance channels come from the conditional pass), and guidance is off when s == 1 (``sample_ddp.py`` uses
``cfg_scale > 1``). The official samplers also carry the unconditional half through the whole chain, but
its state is never used (each step duplicates the conditional half), so we keep only the conditional half.

NFE conventions (both are recorded in `SamplingStats`):
* ``nfe``: denoiser calls per sample; one CFG step is ONE call on a doubled batch. This is the number we
  report as "NFE" (it equals the number of sampling steps, as in DiT's "250 steps").
* ``nfe_forward_passes``: network forward passes per sample, counting the conditional and unconditional
  halves of a CFG step separately (2 per CFG step). Use it for compute accounting (MACs x passes).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from bench.diffusion.gaussian import GaussianDiffusion
from bench.distributed import PerSampleRNG
from bench.registry import BenchError

Denoiser = Callable[..., torch.Tensor]  # model(x, t, y) -> output


@dataclass
class SamplingStats:
    sampler: str
    steps: int
    cfg_scale: float
    guided_channels: int | None  # channels that actually received guidance (None: no guidance)
    nfe: int  # reported NFE: denoiser calls per sample (a CFG step = 1 call on a doubled batch)
    nfe_forward_passes: int  # forward passes per sample (a CFG step = 2)
    nfe_convention: str = "nfe = denoiser calls per sample; a CFG step counts 1 (doubled batch)"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class CountingDenoiser:
    """Wraps a denoiser and counts its calls and the rows it processed."""

    def __init__(self, model: Denoiser):
        self.model = model
        self.calls = 0
        self.rows = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        self.calls += 1
        self.rows += x.shape[0]
        return self.model(x, t, **kwargs)


class GuidedDenoiser:
    """Classifier-free guidance around a class-conditional denoiser ``model(x, t, y)``.

    null_class: the label of the "no class" embedding (the number of classes in DiT/U-DiT).
    guided_channels: how many leading output channels receive guidance; 3 = DiT/U-DiT ``forward_with_cfg``
        (kept for comparability with their reported cfg=1.5 numbers), None = all eps channels (the textbook
        rule; ``eps_channels`` must then be given).
    eps_channels: the data channel count C. When given, guidance never reaches past the eps block: data with
        C <= 3 channels (the 1-channel smoke set) gets all its eps channels guided and no variance channel.
    """

    def __init__(self, model: Denoiser, scale: float, null_class: int, guided_channels: int | None = 3,
                 eps_channels: int | None = None):
        if guided_channels is None and eps_channels is None:
            raise BenchError("guidance on all eps channels needs eps_channels (the data channel count)")
        self.model = model
        self.scale = float(scale)
        self.null_class = int(null_class)
        if guided_channels is None:
            self.guided = int(eps_channels)
        else:
            self.guided = min(guided_channels, eps_channels) if eps_channels is not None else guided_channels

    def __call__(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        out = self.model(torch.cat([x, x]), torch.cat([t, t]), y=torch.cat([y, torch.full_like(y, self.null_class)]))
        cond, uncond = out[:n], out[n:]
        g = self.guided
        guided = uncond[:, :g] + self.scale * (cond[:, :g] - uncond[:, :g])
        return torch.cat([guided, cond[:, g:]], dim=1)


def _call(diffusion: GaussianDiffusion, model: Denoiser, x: torch.Tensor, step: int,
          model_kwargs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.full((x.shape[0],), step, dtype=torch.long, device=x.device)
    return t, model(x, diffusion.model_timesteps(t), **model_kwargs)


@torch.no_grad()
def ddpm_loop(diffusion: GaussianDiffusion, model: Denoiser, x_T: torch.Tensor, rng: PerSampleRNG,
              model_kwargs: dict[str, Any] | None = None, clip_denoised: bool = False) -> torch.Tensor:
    """Ancestral sampling: x_{t-1} = mean + exp(log_var / 2) z for every step but the last (no noise at t=0)."""
    x = x_T
    per_sample = tuple(x.shape[1:])
    for step in reversed(range(diffusion.num_timesteps)):
        t, output = _call(diffusion, model, x, step, model_kwargs or {})
        out = diffusion.p_mean_variance(output, x, t, clip_denoised=clip_denoised)
        x = out["mean"]
        if step > 0:
            x = x + torch.exp(0.5 * out["log_variance"]) * rng.randn(*per_sample).to(x)
    return x


@torch.no_grad()
def ddim_loop(diffusion: GaussianDiffusion, model: Denoiser, x_T: torch.Tensor, rng: PerSampleRNG,
              model_kwargs: dict[str, Any] | None = None, eta: float = 0.0, clip_denoised: bool = False) -> torch.Tensor:
    """DDIM (Song et al. eq. 12) over the diffusion's steps; eta = 0 is deterministic, eta = 1 is DDPM-like.

    sigma_t = eta * sqrt((1 - abar_prev) / (1 - abar)) * sqrt(1 - abar / abar_prev)
    x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma_t^2) eps_hat + sigma_t z
    eps_hat is re-derived from the (possibly clipped) x0_hat, as in ADM.
    """
    x = x_T
    per_sample = tuple(x.shape[1:])
    for step in reversed(range(diffusion.num_timesteps)):
        t, output = _call(diffusion, model, x, step, model_kwargs or {})
        out = diffusion.p_mean_variance(output, x, t, clip_denoised=clip_denoised)
        eps = diffusion.predict_eps_from_x0(x, t, out["pred_x0"])
        abar = diffusion.coef("alphas_cumprod", t, x)
        abar_prev = diffusion.coef("alphas_cumprod_prev", t, x)
        sigma = eta * torch.sqrt((1 - abar_prev) / (1 - abar)) * torch.sqrt(1 - abar / abar_prev)
        x = out["pred_x0"] * torch.sqrt(abar_prev) + torch.sqrt(1 - abar_prev - sigma ** 2) * eps
        if step > 0 and eta > 0:
            x = x + sigma * rng.randn(*per_sample).to(x)
    return x


def sample(model: Denoiser, diffusion: GaussianDiffusion, shape: Sequence[int], labels: torch.Tensor,
           indices: Sequence[int], seed: int, *, sampler: str = "ddpm", steps: int | str = 250, eta: float = 0.0,
           cfg_scale: float = 1.0, null_class: int | None = None, guided_channels: int | None = 3,
           clip_denoised: bool = False, device: str | torch.device = "cpu",
           dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, SamplingStats]:
    """Generate one sample per index in ``indices`` with class ``labels``.

    diffusion: the full (training) diffusion; it is respaced to ``steps`` here ("250", 50, "ddim25", ...).
    shape: per-sample shape (C, H, W). The first draw of each sample's generator is its x_T.
    Returns (samples [N, C, H, W], stats). The model should be in eval mode; it runs under no_grad.
    """
    if sampler not in ("ddpm", "ddim"):
        raise BenchError(f"unknown sampler {sampler!r}; choose 'ddpm' or 'ddim'")
    if len(labels) != len(indices):
        raise BenchError(f"{len(labels)} labels for {len(indices)} sample indices")
    spaced = diffusion.respaced(steps) if steps != diffusion.num_timesteps else diffusion
    rng = PerSampleRNG(indices, seed, device=device)
    x_T = rng.randn(*shape).to(dtype)
    counter = CountingDenoiser(model)
    denoiser: Denoiser = counter
    if cfg_scale != 1.0:
        if null_class is None:
            raise BenchError("classifier-free guidance needs the model's null class (its number of classes)")
        denoiser = GuidedDenoiser(counter, cfg_scale, null_class, guided_channels, eps_channels=shape[0])
    kwargs = {"y": labels.to(device)}
    if sampler == "ddpm":
        x = ddpm_loop(spaced, denoiser, x_T, rng, kwargs, clip_denoised=clip_denoised)
    else:
        x = ddim_loop(spaced, denoiser, x_T, rng, kwargs, eta=eta, clip_denoised=clip_denoised)
    stats = SamplingStats(sampler=sampler, steps=spaced.num_timesteps, cfg_scale=float(cfg_scale),
                          guided_channels=getattr(denoiser, "guided", None), nfe=counter.calls,
                          nfe_forward_passes=counter.rows // max(len(indices), 1))
    return x, stats
