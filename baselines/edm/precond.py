"""EDM's preconditioning wrappers: D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma)).

Coefficients (EDM paper Table 1; NVlabs/edm `training/networks.py` [R]):

=========  ==========================  ===================  =======================  ==============================
precond    c_skip                      c_out                c_in                     c_noise
=========  ==========================  ===================  =======================  ==============================
VP         1                           -sigma               1/sqrt(sigma^2+1)        (M-1) * t(sigma)
VE         1                           sigma                1                        ln(sigma/2)
iDDPM      1                           -sigma               1/sqrt(sigma^2+1)        M-1-argmin_j |u_j - sigma|
EDM        sd^2/(sigma^2+sd^2)          sigma*sd/sqrt(..)    1/sqrt(sigma^2+sd^2)     ln(sigma)/4
=========  ==========================  ===================  =======================  ==============================

with sd = sigma_data (0.5) and, for VP, sigma(t) = sqrt(exp(beta_d t^2/2 + beta_min t) - 1) and t(sigma) its
inverse. Every wrapper exposes sigma_min / sigma_max (the range the sampler clamps its schedule to) and
round_sigma (identity except iDDPM's discrete levels), as the official samplers expect. The wrapped U-Net is
``self.model`` so that state-dict keys ("model.enc....") match the official pickles. Inputs are computed in
float32 (fp16 only for the U-Net on CUDA when use_fp16), as in EDM.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from baselines.edm.networks import MODEL_TYPES
from bench.registry import BenchError


def _build_model(model_type: str, **kwargs: Any) -> nn.Module:
    if model_type not in MODEL_TYPES:
        raise BenchError(f"unknown EDM model_type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}")
    return MODEL_TYPES[model_type](**kwargs)


class Precond(nn.Module):
    """Shared body: subclasses define `coefficients(sigma)` -> (c_skip, c_out, c_in, c_noise)."""

    sigma_min: float
    sigma_max: float
    out_channel_factor = 1  # iDDPM's U-Net also predicts variances (2x channels); only the first half is used

    def __init__(self, img_resolution: int, img_channels: int, label_dim: int = 0, use_fp16: bool = False,
                 model_type: str = "SongUNet", **model_kwargs: Any):
        super().__init__()
        self.img_resolution, self.img_channels, self.label_dim = img_resolution, img_channels, label_dim
        self.use_fp16 = use_fp16
        self.model_type = model_type
        self.model = _build_model(model_type, img_resolution=img_resolution, in_channels=img_channels,
                                  out_channels=img_channels * self.out_channel_factor, label_dim=label_dim,
                                  **model_kwargs)

    def coefficients(self, sigma: torch.Tensor) -> tuple[Any, Any, Any, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def round_sigma(self, sigma: Any) -> torch.Tensor:
        return torch.as_tensor(sigma)

    def forward(self, x: torch.Tensor, sigma: Any, class_labels: torch.Tensor | None = None, force_fp32: bool = False,
                **model_kwargs: Any) -> torch.Tensor:
        x = x.to(torch.float32)
        sigma = torch.as_tensor(sigma, device=x.device).to(torch.float32).reshape(-1, 1, 1, 1)
        if self.label_dim == 0:
            class_labels = None
        elif class_labels is None:
            class_labels = torch.zeros([1, self.label_dim], device=x.device)
        else:
            class_labels = class_labels.to(torch.float32).reshape(-1, self.label_dim)
        dtype = torch.float16 if (self.use_fp16 and not force_fp32 and x.device.type == "cuda") else torch.float32
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        # A shared scalar sigma gives ONE noise label whose embedding broadcasts over the batch, as in EDM
        # (expanding it to N rows changes the matmul shapes and hence the last float bits).
        F_x = self.model((c_in * x).to(dtype), c_noise.flatten(), class_labels=class_labels, **model_kwargs)
        return c_skip * x + c_out * F_x[:, : self.img_channels].to(torch.float32)


class VPPrecond(Precond):
    def __init__(self, img_resolution: int, img_channels: int, label_dim: int = 0, use_fp16: bool = False,
                 beta_d: float = 19.9, beta_min: float = 0.1, M: int = 1000, epsilon_t: float = 1e-5,
                 model_type: str = "SongUNet", **model_kwargs: Any):
        self.beta_d, self.beta_min, self.M, self.epsilon_t = beta_d, beta_min, M, epsilon_t
        super().__init__(img_resolution, img_channels, label_dim, use_fp16, model_type, **model_kwargs)
        self.sigma_min = float(self.sigma(epsilon_t))
        self.sigma_max = float(self.sigma(1))

    def sigma(self, t: Any) -> torch.Tensor:
        t = torch.as_tensor(t)
        return ((0.5 * self.beta_d * t ** 2 + self.beta_min * t).exp() - 1).sqrt()

    def sigma_inv(self, sigma: Any) -> torch.Tensor:
        sigma = torch.as_tensor(sigma)
        return ((self.beta_min ** 2 + 2 * self.beta_d * (1 + sigma ** 2).log()).sqrt() - self.beta_min) / self.beta_d

    def coefficients(self, sigma: torch.Tensor):
        return 1.0, -sigma, 1 / (sigma ** 2 + 1).sqrt(), (self.M - 1) * self.sigma_inv(sigma)


class VEPrecond(Precond):
    def __init__(self, img_resolution: int, img_channels: int, label_dim: int = 0, use_fp16: bool = False,
                 sigma_min: float = 0.02, sigma_max: float = 100.0, model_type: str = "SongUNet",
                 **model_kwargs: Any):
        super().__init__(img_resolution, img_channels, label_dim, use_fp16, model_type, **model_kwargs)
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def coefficients(self, sigma: torch.Tensor):
        return 1.0, sigma, 1.0, (0.5 * sigma).log()


class iDDPMPrecond(Precond):
    """Improved DDPM: a discrete ladder of M+1 noise levels u_j derived from the cosine schedule."""

    out_channel_factor = 2

    def __init__(self, img_resolution: int, img_channels: int, label_dim: int = 0, use_fp16: bool = False,
                 C_1: float = 0.001, C_2: float = 0.008, M: int = 1000, model_type: str = "DhariwalUNet",
                 **model_kwargs: Any):
        self.C_1, self.C_2, self.M = C_1, C_2, M
        super().__init__(img_resolution, img_channels, label_dim, use_fp16, model_type, **model_kwargs)
        u = torch.zeros(M + 1)
        for j in range(M, 0, -1):  # u_M = 0, then upwards through the clipped alpha-bar ratios
            ratio = (self.alpha_bar(j - 1) / self.alpha_bar(j)).clip(min=C_1)
            u[j - 1] = ((u[j] ** 2 + 1) / ratio - 1).sqrt()
        self.register_buffer("u", u)
        self.sigma_min = float(u[M - 1])
        self.sigma_max = float(u[0])

    def alpha_bar(self, j: Any) -> torch.Tensor:
        j = torch.as_tensor(j)
        return (0.5 * math.pi * j / self.M / (self.C_2 + 1)).sin() ** 2

    def round_sigma(self, sigma: Any, return_index: bool = False) -> torch.Tensor:
        sigma = torch.as_tensor(sigma)
        distance = (sigma.to(self.u.device, torch.float32).reshape(-1, 1) - self.u.reshape(1, -1)).abs()
        index = distance.argmin(dim=1)
        result = index if return_index else self.u[index].to(sigma.dtype)
        return result.reshape(sigma.shape).to(sigma.device)

    def coefficients(self, sigma: torch.Tensor):
        c_noise = self.M - 1 - self.round_sigma(sigma, return_index=True).to(torch.float32)
        return 1.0, -sigma, 1 / (sigma ** 2 + 1).sqrt(), c_noise


class EDMPrecond(Precond):
    def __init__(self, img_resolution: int, img_channels: int, label_dim: int = 0, use_fp16: bool = False,
                 sigma_min: float = 0.0, sigma_max: float = float("inf"), sigma_data: float = 0.5,
                 model_type: str = "DhariwalUNet", **model_kwargs: Any):
        super().__init__(img_resolution, img_channels, label_dim, use_fp16, model_type, **model_kwargs)
        self.sigma_min, self.sigma_max, self.sigma_data = sigma_min, sigma_max, sigma_data

    def coefficients(self, sigma: torch.Tensor):
        sd = self.sigma_data
        c_skip = sd ** 2 / (sigma ** 2 + sd ** 2)
        c_out = sigma * sd / (sigma ** 2 + sd ** 2).sqrt()
        c_in = 1 / (sd ** 2 + sigma ** 2).sqrt()
        return c_skip, c_out, c_in, sigma.log() / 4


PRECONDS: dict[str, type[Precond]] = {"vp": VPPrecond, "ve": VEPrecond, "iddpm": iDDPMPrecond, "edm": EDMPrecond}
CLASS_NAMES: dict[str, type[Precond]] = {cls.__name__: cls for cls in PRECONDS.values()}


def build_precond(precond: str, img_resolution: int, img_channels: int, label_dim: int = 0,
                  **kwargs: Any) -> Precond:
    """`precond` is vp / ve / iddpm / edm; kwargs go to the wrapper and the U-Net (model_type, ...)."""
    if precond not in PRECONDS:
        raise BenchError(f"unknown preconditioning {precond!r}; choose one of {', '.join(PRECONDS)}")
    return PRECONDS[precond](img_resolution=img_resolution, img_channels=img_channels, label_dim=label_dim, **kwargs)
