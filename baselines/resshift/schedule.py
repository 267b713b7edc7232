"""ResShift's residual-shifting diffusion: the eta schedule, the forward process and the samplers.

Restated from zsyOAOA/ResShift ``models/gaussian_diffusion.py`` (``get_named_eta_schedule('exponential')``,
``GaussianDiffusion``) and the realsr x4 config ``configs/realsr_swinunet_realesrgan256.yaml`` [R]:

* sqrt(eta_1) = min(min_noise_level / kappa, min_noise_level), sqrt(eta_T) = etas_end,
  sqrt(eta_t) = sqrt(eta_1) * b ** beta_t with beta_t = ((t-1)/(T-1)) ** p * (T-1) and
  b = exp(ln(sqrt(eta_T) / sqrt(eta_1)) / (T-1));
* q(x_t | x_0, y) = N(x_0 + eta_t (y - x_0), kappa^2 eta_t I); the prior x_T = y + kappa sqrt(eta_T) eps;
* the network sees x_t / sqrt(kappa^2 eta_t + 1) (``normalize_input``, ``latent_flag``) and predicts x_0;
* ancestral step: the posterior q(x_{t-1} | x_t, x_0) with mean (eta_{t-1}/eta_t) x_t + (alpha_t/eta_t) x_0,
  alpha_t = eta_t - eta_{t-1}, variance kappa^2 (eta_{t-1}/eta_t) alpha_t;
* deterministic step (the DDIM form SinSR and TAD-SR distil, eta_ddim = 0):
  x_{t-1} = x0 + eta_{t-1} (y - x0) + sqrt(eta_{t-1}/eta_t) (x_t - x0 - eta_t (y - x0)).

Timestep indices run 0..T-1 as in the official code (index T-1 is the prior's level); the network gets the
integer index as its time input.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

# realsr x4 teacher (configs/realsr_swinunet_realesrgan256.yaml [R])
REALSR_X4 = dict(steps=15, kappa=2.0, min_noise_level=0.04, etas_end=0.99, power=0.3)

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t normalised, t, lq) -> x0


def sqrt_eta_schedule(steps: int, min_noise_level: float, etas_end: float, kappa: float, power: float) -> np.ndarray:
    """sqrt(eta_t) for t = 1..T (float64), the official 'exponential' schedule."""
    if steps < 2:
        raise ValueError("the ResShift schedule needs at least 2 steps")
    start = min(min_noise_level / kappa, min_noise_level)
    growth = math.exp(math.log(etas_end / start) / (steps - 1))
    exponent = np.linspace(0.0, 1.0, steps) ** power * (steps - 1)
    return start * np.power(growth, exponent)


@dataclass
class ResShiftSchedule:
    steps: int = 15
    kappa: float = 2.0
    min_noise_level: float = 0.04
    etas_end: float = 0.99
    power: float = 0.3
    clip_denoised: bool = True  # the official sampler clamps predicted x0 to [-1, 1]

    def __post_init__(self) -> None:
        self.sqrt_etas = sqrt_eta_schedule(self.steps, self.min_noise_level, self.etas_end, self.kappa, self.power)
        self.etas = self.sqrt_etas ** 2
        self.etas_prev = np.append(0.0, self.etas[:-1])
        self.alpha = self.etas - self.etas_prev
        self.posterior_variance = self.kappa ** 2 * self.etas_prev / self.etas * self.alpha

    # -------------------------------------------------------------- helpers
    def _at(self, values: np.ndarray, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        out = torch.as_tensor(values, dtype=torch.float64)[t.cpu().long()].to(like.device, like.dtype)
        return out.view(-1, *([1] * (like.dim() - 1)))

    def timesteps(self, index: int, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.full((batch,), int(index), dtype=torch.long, device=device)

    # -------------------------------------------------------------- forward process
    def q_sample(self, x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x0 + self._at(self.etas, t, x0) * (y - x0) + self._at(self.kappa * self.sqrt_etas, t, x0) * noise

    def prior_sample(self, y: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return y + self.kappa * float(self.sqrt_etas[-1]) * noise

    def scale_input(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x_t / torch.sqrt(self._at(self.etas, t, x_t) * self.kappa ** 2 + 1)

    def implied_noise(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """The noise that makes q_sample(x0, y, t, noise) equal x_t (official ``_predict_eps_from_xstart``)."""
        return (x_t - x0 - self._at(self.etas, t, x_t) * (y - x0)) / self._at(self.kappa * self.sqrt_etas, t, x_t)

    # -------------------------------------------------------------- model calls
    def predict_x0(self, model: Denoiser, x_t: torch.Tensor, t: torch.Tensor, lq: torch.Tensor,
                   clip: bool | None = None) -> torch.Tensor:
        x0 = model(self.scale_input(x_t, t), t, lq)
        return x0.clamp(-1, 1) if (self.clip_denoised if clip is None else clip) else x0

    def posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self._at(self.etas_prev / self.etas, t, x_t) * x_t + self._at(self.alpha / self.etas, t, x_t) * x0
        return mean, self._at(self.posterior_variance, t, x_t)

    def ddim_step(self, x0: torch.Tensor, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ratio = torch.sqrt(self._at(self.etas_prev / self.etas, t, x_t))
        prev = self._at(self.etas_prev, t, x_t)
        return x0 + prev * (y - x0) + ratio * (x_t - x0 - self._at(self.etas, t, x_t) * (y - x0))

    # -------------------------------------------------------------- samplers
    def sample(self, model: Denoiser, y: torch.Tensor, lq: torch.Tensor, noise: torch.Tensor,
               deterministic: bool = True, generator: torch.Generator | None = None,
               first_step: int | None = None) -> torch.Tensor:
        """x_0 from the prior x_T = y + kappa sqrt(eta_T) noise: T network calls (``first_step``: start lower)."""
        x = self.prior_sample(y, noise)
        start = self.steps - 1 if first_step is None else int(first_step)
        x0 = x
        for i in range(start, -1, -1):
            t = self.timesteps(i, y.shape[0], y.device)
            x0 = self.predict_x0(model, x, t, lq)
            if i == 0:
                return x0  # eta_0 prev is 0: the last step's mean is x0 itself
            if deterministic:
                x = self.ddim_step(x0, x, y, t)
            else:
                mean, var = self.posterior(x0, x, t)
                eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                x = mean + var.sqrt() * eps
        return x0
