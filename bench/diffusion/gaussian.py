"""The Gaussian diffusion of DiT (and U-DiT), which is ADM's (improved DDPM) with DiT's defaults.

Facts taken from the official code (facebookresearch/DiT ``diffusion/``; U-DiT ships the same copy):

* 1000 steps, "linear" betas from 1e-4 to 0.02 (ADM scales both ends by 1000/T for other step counts).
* The network predicts epsilon and, with learned sigma, a second block of C channels v in [-1, 1] that
  interpolates the log variance between the clipped posterior variance (v = -1) and beta_t (v = +1)
  ("learned range").
* Training loss = MSE(eps) + VLB term in bits/dim, where the VLB term sees the mean prediction detached so
  that it trains only the variance (DiT's default loss type is plain MSE: no 1/1000 rescale of the VLB).
* Respacing keeps a subset S of the 1000 steps and rebuilds betas so that alphas_cumprod at the kept steps
  are unchanged: beta'_i = 1 - abar[s_i] / abar[s_{i-1}]. The network is still called with the original
  timestep s_i.

Schedule arrays are float64 (as in the official numpy code); coefficients are gathered per timestep and cast
to float32 (to float64 when the data is float64, which lets tests check identities to machine precision).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from bench.registry import BenchError

VARIANCE_TYPES = ("learned_range", "fixed_large", "fixed_small")


# ----------------------------------------------------------------------------------------------- schedules
def linear_betas(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """ADM's "linear" schedule: evenly spaced betas, both ends scaled by 1000/num_steps."""
    if num_steps < 1:
        raise BenchError(f"diffusion needs at least one step, got {num_steps}")
    scale = 1000.0 / num_steps
    return np.linspace(scale * beta_start, scale * beta_end, num_steps, dtype=np.float64)


def space_timesteps(num_steps: int, spec: int | str | Sequence[int]) -> list[int]:
    """Which of the ``num_steps`` original steps a respaced sampler keeps (sorted).

    ``spec`` as in ADM/DiT: an int or "250" (evenly spread, rounding fractional strides, always keeping 0 and
    T-1 when the count is > 1), "10,15,20" (per equal section of the schedule), or "ddimN" (the integer
    stride of the DDIM paper: 0, k, 2k, ... with exactly N steps).
    """
    if isinstance(spec, str) and spec.startswith("ddim"):
        count = int(spec[len("ddim"):])
        for stride in range(1, num_steps):
            if len(range(0, num_steps, stride)) == count:
                return list(range(0, num_steps, stride))
        raise BenchError(f"cannot take exactly {count} of {num_steps} steps with an integer stride")
    if isinstance(spec, int):
        counts = [spec]
    elif isinstance(spec, str):
        try:
            counts = [int(part) for part in spec.split(",")]
        except ValueError:
            raise BenchError(f"bad timestep respacing {spec!r}: use '250', '10,15,20' or 'ddim50'") from None
    else:
        counts = [int(c) for c in spec]
    base, extra = divmod(num_steps, len(counts))
    kept: list[int] = []
    start = 0
    for i, count in enumerate(counts):
        size = base + (1 if i < extra else 0)
        if not 1 <= count <= size:
            raise BenchError(f"cannot take {count} steps from a section of {size} (of {num_steps} steps)")
        stride = 1.0 if count == 1 else (size - 1) / (count - 1)
        kept += [start + round(j * stride) for j in range(count)]
        start += size
    return sorted(set(kept))


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    """The tanh approximation of Phi(x) that ADM uses for the decoder likelihood (kept for comparability)."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log P(x) of a Gaussian discretised to 256 bins on [-1, 1] (edge bins open-ended), in nats."""
    centered = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = approx_standard_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=tuple(range(1, x.ndim)))


# ------------------------------------------------------------------------------------------------ process
class GaussianDiffusion:
    """A discrete-time Gaussian diffusion with epsilon prediction.

    betas: the (possibly respaced) per-step betas, float64.
    variance: "learned_range" (DiT, U-DiT: the model outputs 2C channels), "fixed_large" (beta_t, with the
        posterior variance at t=0) or "fixed_small" (posterior variance) for models with C output channels.
    timestep_map: the original timestep of each step, passed to the network (identity when not respaced).
    """

    def __init__(self, betas: np.ndarray | Sequence[float], variance: str = "learned_range",
                 timestep_map: Sequence[int] | None = None):
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or not ((betas > 0) & (betas <= 1)).all():
            raise BenchError("betas must be a 1-D array with values in (0, 1]")
        if variance not in VARIANCE_TYPES:
            raise BenchError(f"unknown variance type {variance!r}; choose one of {', '.join(VARIANCE_TYPES)}")
        self.variance = variance
        self.num_timesteps = len(betas)
        self.timestep_map = torch.tensor(list(timestep_map) if timestep_map is not None else range(len(betas)),
                                         dtype=torch.long)
        if len(self.timestep_map) != self.num_timesteps:
            raise BenchError("timestep_map must give one original timestep per step")

        alphas = 1.0 - betas
        abar = np.cumprod(alphas)
        abar_prev = np.append(1.0, abar[:-1])
        posterior_variance = betas * (1.0 - abar_prev) / (1.0 - abar)
        # The posterior variance is 0 at t=0; its log is clipped to the t=1 value (as ADM does).
        clipped = np.append(posterior_variance[1], posterior_variance[1:]) if len(betas) > 1 else posterior_variance
        arrays = {
            "betas": betas,
            "alphas_cumprod": abar,
            "alphas_cumprod_prev": abar_prev,
            "sqrt_alphas_cumprod": np.sqrt(abar),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - abar),
            "log_one_minus_alphas_cumprod": np.log(1.0 - abar),
            "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / abar),
            "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / abar - 1.0),
            "posterior_variance": posterior_variance,
            "posterior_log_variance_clipped": np.log(clipped),
            "posterior_mean_coef1": betas * np.sqrt(abar_prev) / (1.0 - abar),
            "posterior_mean_coef2": (1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar),
            "log_betas": np.log(betas),
            # fixed_large uses beta_t, except at t=0 where it takes the posterior variance of t=1 (ADM).
            "fixed_large_log_variance": np.log(np.append(posterior_variance[1] if len(betas) > 1 else betas[0],
                                                         betas[1:])),
        }
        self._arrays = {name: torch.from_numpy(np.ascontiguousarray(v)) for name, v in arrays.items()}
        self._on_device: dict[tuple[str, str], torch.Tensor] = {}

    # -- construction ------------------------------------------------------------------------------------
    @classmethod
    def dit_default(cls, num_steps: int = 1000, variance: str = "learned_range") -> GaussianDiffusion:
        """DiT's ``create_diffusion("")``: linear schedule, learned-range variance."""
        return cls(linear_betas(num_steps), variance=variance)

    def respaced(self, spec: int | str | Sequence[int]) -> GaussianDiffusion:
        """A diffusion over a subset of this one's steps with the same alphas_cumprod there (SpacedDiffusion)."""
        keep = space_timesteps(self.num_timesteps, spec)
        abar = self._arrays["alphas_cumprod"].numpy()
        new_betas, last = [], 1.0
        for i in keep:
            new_betas.append(1.0 - abar[i] / last)
            last = abar[i]
        original = self.timestep_map.tolist()
        return GaussianDiffusion(np.array(new_betas), variance=self.variance, timestep_map=[original[i] for i in keep])

    # -- coefficient access --------------------------------------------------------------------------------
    def array(self, name: str) -> torch.Tensor:
        """A schedule array (float64, CPU), e.g. ``array("alphas_cumprod")``."""
        return self._arrays[name]

    def coef(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Schedule array ``name`` at step indices ``t``, shaped [B, 1, ...] to broadcast against ``like``."""
        key = (name, str(t.device))
        if key not in self._on_device:
            # Not an inference tensor even when first needed while sampling under inference_mode: the cached
            # copy is later multiplied into training graphs, which cannot save inference tensors.
            with torch.inference_mode(False):
                self._on_device[key] = self._arrays[name].to(t.device)
        dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
        return self._on_device[key][t].to(dtype).reshape(-1, *([1] * (like.ndim - 1)))

    def model_timesteps(self, t: torch.Tensor) -> torch.Tensor:
        """The original timesteps the network is conditioned on for step indices ``t``."""
        return self.timestep_map.to(t.device)[t]

    # -- forward process -----------------------------------------------------------------------------------
    def q_mean_variance(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean = self.coef("sqrt_alphas_cumprod", t, x0) * x0
        var = 1.0 - self.coef("alphas_cumprod", t, x0)
        return mean, var.expand_as(x0), self.coef("log_one_minus_alphas_cumprod", t, x0).expand_as(x0)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise."""
        if noise is None:
            noise = torch.randn_like(x0)
        if noise.shape != x0.shape:
            raise BenchError(f"noise shape {tuple(noise.shape)} differs from data shape {tuple(x0.shape)}")
        return self.coef("sqrt_alphas_cumprod", t, x0) * x0 + self.coef("sqrt_one_minus_alphas_cumprod", t, x0) * noise

    def q_posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0)."""
        mean = self.coef("posterior_mean_coef1", t, xt) * x0 + self.coef("posterior_mean_coef2", t, xt) * xt
        var = self.coef("posterior_variance", t, xt).expand_as(xt)
        log_var = self.coef("posterior_log_variance_clipped", t, xt).expand_as(xt)
        return mean, var, log_var

    def predict_x0_from_eps(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return self.coef("sqrt_recip_alphas_cumprod", t, xt) * xt - self.coef("sqrt_recipm1_alphas_cumprod", t, xt) * eps

    def predict_eps_from_x0(self, xt: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return (self.coef("sqrt_recip_alphas_cumprod", t, xt) * xt - x0) / self.coef("sqrt_recipm1_alphas_cumprod", t, xt)

    # -- reverse process -----------------------------------------------------------------------------------
    def p_mean_variance(self, model_output: torch.Tensor, xt: torch.Tensor, t: torch.Tensor,
                        clip_denoised: bool = False,
                        denoised_fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """p(x_{t-1} | x_t) from a network output already computed at (x_t, t).

        clip_denoised: clamp the x0 prediction to [-1, 1]. DiT samples latents with False (latents are not
        bounded); pixel-space models usually want True.
        """
        channels = xt.shape[1]
        if self.variance == "learned_range":
            if model_output.shape[1] != 2 * channels:
                raise BenchError(f"learned-variance diffusion expects {2 * channels} output channels "
                                 f"(eps + variance), the model gave {model_output.shape[1]}")
            eps, var_values = model_output[:, :channels], model_output[:, channels:]
            min_log = self.coef("posterior_log_variance_clipped", t, xt)
            max_log = self.coef("log_betas", t, xt)
            frac = (var_values + 1.0) / 2.0  # v in [-1, 1] -> [min, max] in log space
            log_var = frac * max_log + (1.0 - frac) * min_log
        else:
            if model_output.shape[1] != channels:
                raise BenchError(f"fixed-variance diffusion expects {channels} output channels, "
                                 f"the model gave {model_output.shape[1]}")
            eps = model_output
            name = "fixed_large_log_variance" if self.variance == "fixed_large" else "posterior_log_variance_clipped"
            log_var = self.coef(name, t, xt).expand_as(xt)
        pred_x0 = self.predict_x0_from_eps(xt, t, eps)
        if denoised_fn is not None:
            pred_x0 = denoised_fn(pred_x0)
        if clip_denoised:
            pred_x0 = pred_x0.clamp(-1.0, 1.0)
        mean, _, _ = self.q_posterior(pred_x0, xt, t)
        return {"mean": mean, "log_variance": log_var, "variance": torch.exp(log_var), "pred_x0": pred_x0, "eps": eps}

    # -- training ------------------------------------------------------------------------------------------
    def vb_terms_bpd(self, model_output: torch.Tensor, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Per-sample VLB term in bits/dim: KL(q(x_{t-1}|x_t,x0) || p(x_{t-1}|x_t)) for t > 0, and the
        discretised-Gaussian decoder NLL at t = 0."""
        true_mean, _, true_log_var = self.q_posterior(x0, xt, t)
        out = self.p_mean_variance(model_output, xt, t, clip_denoised=False)
        kl = mean_flat(normal_kl(true_mean, true_log_var, out["mean"], out["log_variance"])) / math.log(2.0)
        nll = -discretized_gaussian_log_likelihood(x0, out["mean"], 0.5 * out["log_variance"])
        nll = mean_flat(nll) / math.log(2.0)
        return torch.where(t == 0, nll, kl)

    def training_losses(self, model: Callable[..., torch.Tensor], x0: torch.Tensor, t: torch.Tensor,
                        model_kwargs: dict[str, Any] | None = None,
                        noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-sample losses at step indices ``t``: {"loss", "mse"} and, with learned variance, {"vb"}.

        loss = mse(eps) + vb, where vb is computed from [eps.detach(), v]: the VLB trains the variance only
        (improved DDPM's hybrid objective with lambda = 1, DiT's setting).
        """
        if noise is None:
            noise = torch.randn_like(x0)
        xt = self.q_sample(x0, t, noise)
        output = model(xt, self.model_timesteps(t), **(model_kwargs or {}))
        channels = x0.shape[1]
        terms: dict[str, torch.Tensor] = {}
        if self.variance == "learned_range":
            if output.shape[1] != 2 * channels:
                raise BenchError(f"learned-variance diffusion expects {2 * channels} output channels, "
                                 f"the model gave {output.shape[1]}")
            eps, var_values = output[:, :channels], output[:, channels:]
            frozen = torch.cat([eps.detach(), var_values], dim=1)
            terms["vb"] = self.vb_terms_bpd(frozen, x0, xt, t)
        else:
            eps = output
        terms["mse"] = mean_flat((noise - eps) ** 2)
        terms["loss"] = terms["mse"] + terms["vb"] if "vb" in terms else terms["mse"]
        return terms
