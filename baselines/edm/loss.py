"""EDM's training losses: how sigma is drawn and how each sigma is weighted [R NVlabs/edm training/loss.py].

* VPLoss: t ~ U(epsilon_t, 1), sigma = sigma_VP(t), weight 1/sigma^2.
* VELoss: sigma = sigma_min (sigma_max/sigma_min)^u, u ~ U(0, 1), weight 1/sigma^2.
* EDMLoss: ln sigma ~ N(P_mean, P_std^2) (-1.2, 1.2), weight (sigma^2 + sd^2) / (sigma sd)^2 = 1/c_out^2.

Each returns the element-wise weighted squared error of D(y + n; sigma) against the clean y, like the official
classes; `edm_reduce` turns it into EDM's scalar (sum over pixels, mean over the batch, which is what the
training loop's `loss.sum() * loss_scaling / batch_gpu_total` gives with loss_scaling 1).

Extra network inputs: ``condition_fn(y) -> dict`` is called on the (augmented) clean batch and its result is
passed to the network as keyword arguments. EDM itself never uses it; a method that conditions the denoiser
on the clean image (QAC's encoder) plugs in here without changing the loss.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

AugmentPipe = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]
ConditionFn = Callable[[torch.Tensor], dict[str, Any]]


class DiffusionLoss:
    """Subclasses define `draw_sigma(n, device)` and `weight(sigma)`."""

    def draw_sigma(self, n: int, device: torch.device) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, net: Callable[..., torch.Tensor], images: torch.Tensor, labels: torch.Tensor | None = None,
                 augment_pipe: AugmentPipe | None = None, condition_fn: ConditionFn | None = None) -> torch.Tensor:
        sigma = self.draw_sigma(images.shape[0], images.device)
        y, augment_labels = augment_pipe(images) if augment_pipe is not None else (images, None)
        extra = condition_fn(y) if condition_fn is not None else {}
        noise = torch.randn_like(y) * sigma
        denoised = net(y + noise, sigma, labels, augment_labels=augment_labels, **extra)
        return self.weight(sigma) * (denoised - y) ** 2


class VPLoss(DiffusionLoss):
    def __init__(self, beta_d: float = 19.9, beta_min: float = 0.1, epsilon_t: float = 1e-5):
        self.beta_d, self.beta_min, self.epsilon_t = beta_d, beta_min, epsilon_t

    def sigma(self, t: Any) -> torch.Tensor:
        t = torch.as_tensor(t)
        return ((0.5 * self.beta_d * t ** 2 + self.beta_min * t).exp() - 1).sqrt()

    def draw_sigma(self, n: int, device: torch.device) -> torch.Tensor:
        u = torch.rand([n, 1, 1, 1], device=device)
        return self.sigma(1 + u * (self.epsilon_t - 1))

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        return 1 / sigma ** 2


class VELoss(DiffusionLoss):
    def __init__(self, sigma_min: float = 0.02, sigma_max: float = 100.0):
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def draw_sigma(self, n: int, device: torch.device) -> torch.Tensor:
        u = torch.rand([n, 1, 1, 1], device=device)
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** u

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        return 1 / sigma ** 2


class EDMLoss(DiffusionLoss):
    def __init__(self, P_mean: float = -1.2, P_std: float = 1.2, sigma_data: float = 0.5):
        self.P_mean, self.P_std, self.sigma_data = P_mean, P_std, sigma_data

    def draw_sigma(self, n: int, device: torch.device) -> torch.Tensor:
        return (torch.randn([n, 1, 1, 1], device=device) * self.P_std + self.P_mean).exp()

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        return (sigma ** 2 + self.sigma_data ** 2) / (sigma * self.sigma_data) ** 2


LOSSES: dict[str, type[DiffusionLoss]] = {"vp": VPLoss, "ve": VELoss, "edm": EDMLoss}


def build_loss(precond: str, **kwargs: Any) -> DiffusionLoss:
    """The loss EDM's train.py pairs with a preconditioning (vp -> VPLoss, ve -> VELoss, edm -> EDMLoss)."""
    from bench.registry import BenchError

    if precond not in LOSSES:
        raise BenchError(f"no EDM loss for preconditioning {precond!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[precond](**kwargs)


def edm_reduce(elementwise: torch.Tensor) -> torch.Tensor:
    """EDM's scalar: sum over every pixel and channel, mean over the batch."""
    return elementwise.sum() / elementwise.shape[0]
