"""Samplers for EDM-style denoisers D(x; sigma), with NFE counted exactly as EDM counts it (every call).

Time steps (EDM eq. 5): sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,
i = 0..N-1, then sigma_N = 0; defaults sigma_min 0.002, sigma_max 80, rho 7, clamped to the network's
supported range and passed through its round_sigma, as `generate.py` does [R]. The state is float64.

Solvers on the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma:

========  =================================================================  =============
solver    update                                                             NFE (N steps)
========  =================================================================  =============
heun      EDM Algorithm 2: Euler step + trapezoidal correction, except the   2N - 1
          last step to sigma = 0; optional churn (S_churn, S_min, S_max,
          S_noise) makes it EDM's stochastic sampler
euler     x += (sigma_next - sigma) (x - D) / sigma (= DDIM)                  N
dpmpp2m   DPM-Solver++(2M) (Lu et al. 2022) in EDM's parameterisation        N
          (alpha = 1, lambda = -ln sigma); first and last (to 0) steps are
          first order, as in k-diffusion
ipndm     improved PNDM (Zhang & Chen 2023, DEIS): Adams-Bashforth on         N
          d = (x - D)/sigma with orders 1, 2, 3, 4 (max_order) as the history
          fills, as in the AMED / DPM-Solver-v3 code bases
========  =================================================================  =============

So 35 NFE = Heun with 18 steps (EDM's CIFAR-10 setting); an even NFE needs a single-call-per-step solver.
Randomness (stochastic Heun) comes from a `PerSampleRNG` when one is given, so that sample i does not
depend on its batch.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from bench.registry import BenchError

SOLVERS = ("heun", "euler", "dpmpp2m", "ipndm")
IPNDM_COEFFICIENTS = {  # Adams-Bashforth weights on (d_i, d_{i-1}, d_{i-2}, d_{i-3})
    1: (1.0,),
    2: (3 / 2, -1 / 2),
    3: (23 / 12, -16 / 12, 5 / 12),
    4: (55 / 24, -59 / 24, 37 / 24, -9 / 24),
}


def _check_solver(solver: str) -> None:
    if solver not in SOLVERS:
        raise BenchError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")


def nfe_for_steps(solver: str, num_steps: int) -> int:
    _check_solver(solver)
    if num_steps < 1:
        raise BenchError(f"num_steps must be >= 1, got {num_steps}")
    return 2 * num_steps - 1 if solver == "heun" else num_steps


def steps_for_nfe(solver: str, nfe: int) -> int:
    """Inverse of `nfe_for_steps`; Heun reaches odd NFE only (35 = 18 steps)."""
    _check_solver(solver)
    if nfe < 1:
        raise BenchError(f"nfe must be >= 1, got {nfe}")
    if solver == "heun":
        if nfe % 2 == 0:
            raise BenchError(f"heun makes 2N-1 network calls, so NFE {nfe} (even) is impossible; use an odd NFE "
                             f"(e.g. 35 = 18 steps) or a one-call solver: euler, dpmpp2m, ipndm")
        return (nfe + 1) // 2
    return nfe


def karras_sigmas(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                  round_sigma: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  device: Any = "cpu") -> torch.Tensor:
    """float64 [num_steps + 1]: the rho-schedule from sigma_max down to sigma_min, then 0."""
    if num_steps < 1:
        raise BenchError(f"num_steps must be >= 1, got {num_steps}")
    if not 0 < sigma_min < sigma_max:
        raise BenchError(f"need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}")
    i = torch.arange(num_steps, dtype=torch.float64, device=device)
    hi, lo = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    # one step: sigma_max only (the i/(N-1) term is undefined; EDM never uses N=1)
    frac = i / (num_steps - 1) if num_steps > 1 else torch.zeros_like(i)
    sigmas = (hi + frac * (lo - hi)) ** rho
    if round_sigma is not None:
        sigmas = torch.as_tensor(round_sigma(sigmas), dtype=torch.float64)
    return torch.cat([sigmas, torch.zeros_like(sigmas[:1])])


@dataclass
class SampleResult:
    images: torch.Tensor  # float64 [N, C, H, W], the sampler's final state (EDM's x_N)
    solver: str
    num_steps: int
    nfe: int  # denoiser calls made (each on the whole batch)
    sigmas: list[float] = field(default_factory=list)

    def setting(self) -> dict[str, Any]:
        return {"nfe": self.nfe, "solver": self.solver}


class _Counted:
    def __init__(self, net: Callable[..., torch.Tensor], class_labels: torch.Tensor | None,
                 net_kwargs: dict[str, Any]):
        self.net, self.class_labels, self.net_kwargs = net, class_labels, net_kwargs
        self.calls = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.net(x, sigma, self.class_labels, **self.net_kwargs).to(torch.float64)


def supported_range(net: Any, sigma_min: float, sigma_max: float) -> tuple[float, float]:
    """Clamp the schedule to what the network supports (VP: [sigma(1e-5), sigma(1)], VE: [0.02, 100])."""
    lo = max(sigma_min, float(getattr(net, "sigma_min", 0.0)))
    hi = min(sigma_max, float(getattr(net, "sigma_max", math.inf)))
    return lo, hi


@torch.no_grad()
def sample(net: Callable[..., torch.Tensor], latents: torch.Tensor, solver: str = "heun", *, nfe: int | None = None,
           num_steps: int | None = None, class_labels: torch.Tensor | None = None,
           net_kwargs: dict[str, Any] | None = None, sigma_min: float = 0.002, sigma_max: float = 80.0,
           rho: float = 7.0, S_churn: float = 0.0, S_min: float = 0.0, S_max: float = math.inf, S_noise: float = 1.0,
           max_order: int = 4, rng: Any = None) -> SampleResult:
    """Solve from ``latents`` (standard normal) to images; give exactly one of ``nfe`` and ``num_steps``.

    net(x, sigma, class_labels, **net_kwargs) is an EDM-style denoiser (a `Precond`). Churn (S_churn > 0) is
    only defined for heun. ``rng``: a `PerSampleRNG` for the churn noise (torch.randn_like otherwise).
    """
    _check_solver(solver)
    if (nfe is None) == (num_steps is None):
        raise BenchError("give exactly one of nfe and num_steps")
    steps = steps_for_nfe(solver, nfe) if nfe is not None else num_steps
    if S_churn and solver != "heun":
        raise BenchError(f"stochastic churn (S_churn={S_churn}) is defined for the heun sampler only, not {solver}")
    if solver == "ipndm" and max_order not in IPNDM_COEFFICIENTS:
        raise BenchError(f"ipndm max_order must be 1..4, got {max_order}")
    lo, hi = supported_range(net, sigma_min, sigma_max)
    round_sigma = getattr(net, "round_sigma", None)
    sigmas = karras_sigmas(steps, lo, hi, rho, round_sigma, device=latents.device)
    denoise = _Counted(net, class_labels, dict(net_kwargs or {}))
    x = latents.to(torch.float64) * sigmas[0]
    if solver == "heun":
        x = _heun(denoise, x, sigmas, steps, S_churn, S_min, S_max, S_noise, round_sigma, rng)
    elif solver == "euler":
        for s, s_next in zip(sigmas[:-1], sigmas[1:], strict=True):
            x = x + (s_next - s) * (x - denoise(x, s)) / s
    elif solver == "dpmpp2m":
        x = _dpmpp_2m(denoise, x, sigmas)
    else:
        x = _ipndm(denoise, x, sigmas, max_order)
    expected = nfe_for_steps(solver, steps)
    if denoise.calls != expected:  # a broken solver must not report a wrong NFE
        raise BenchError(f"{solver} made {denoise.calls} network calls, expected {expected}")
    return SampleResult(x, solver, steps, denoise.calls, [float(s) for s in sigmas])


def _churn_noise(x: torch.Tensor, rng: Any) -> torch.Tensor:
    if rng is None:
        return torch.randn_like(x)
    return rng.randn(*x.shape[1:]).to(device=x.device, dtype=x.dtype)


def _heun(denoise: _Counted, x: torch.Tensor, sigmas: torch.Tensor, steps: int, S_churn: float, S_min: float,
          S_max: float, S_noise: float, round_sigma: Any, rng: Any) -> torch.Tensor:
    for i, (s, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:], strict=True)):
        gamma = min(S_churn / steps, math.sqrt(2) - 1) if S_min <= float(s) <= S_max else 0.0
        s_hat = s + gamma * s
        if round_sigma is not None:
            s_hat = torch.as_tensor(round_sigma(s_hat), dtype=torch.float64)
        if S_churn > 0:  # EDM draws eps at every step of a stochastic run (a zero-sized push when gamma = 0)
            x = x + (s_hat ** 2 - s ** 2).sqrt() * S_noise * _churn_noise(x, rng)
        d = (x - denoise(x, s_hat)) / s_hat
        x_next = x + (s_next - s_hat) * d
        if i < steps - 1:
            d_next = (x_next - denoise(x_next, s_next)) / s_next
            x_next = x + (s_next - s_hat) * (0.5 * d + 0.5 * d_next)
        x = x_next
    return x


def _dpmpp_2m(denoise: _Counted, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    previous: torch.Tensor | None = None
    h_previous = None
    for s, s_next in zip(sigmas[:-1], sigmas[1:], strict=True):
        current = denoise(x, s)
        if s_next == 0:
            x = current  # lambda -> infinity: the data prediction itself
        else:
            h = torch.log(s / s_next)
            if previous is None:
                data = current
            else:
                r = h_previous / h
                data = (1 + 1 / (2 * r)) * current - (1 / (2 * r)) * previous
            x = (s_next / s) * x - torch.expm1(-h) * data
            h_previous = h
        previous = current
    return x


def _ipndm(denoise: _Counted, x: torch.Tensor, sigmas: torch.Tensor, max_order: int) -> torch.Tensor:
    history: list[torch.Tensor] = []  # newest first
    for s, s_next in zip(sigmas[:-1], sigmas[1:], strict=True):
        d = (x - denoise(x, s)) / s
        history.insert(0, d)
        del history[max_order:]
        weights = IPNDM_COEFFICIENTS[len(history)]
        slope = sum(w * h for w, h in zip(weights, history, strict=True))
        x = x + (s_next - s) * slope
    return x


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """EDM generate.py's quantisation of [-1, 1] images: (x * 127.5 + 128).clip(0, 255) -> uint8."""
    return (images * 127.5 + 128).clip(0, 255).to(torch.uint8)
