"""QAC (Liang et al. 2024, arXiv 2409.17487): an EDM denoiser conditioned on a quantized code of the clean image.

DESIGN INFERRED FROM THE ABSTRACT [I]. The abstract fixes only: an *extremely light-weight quantized encoder*
gives the denoiser *adaptive conditions*, it adds about *1% training parameters*, training uses *no extra
regularisation term*, and sampling stays an ODE (few NFE) that keeps SDE-style editing. Everything else is a
named knob here (`QACConfig`), each default justified where it is defined; results are "QAC-style".

How the pieces fit (dossier §3.4):

    training:  c = Q(E(y))                       E: `ConditionEncoder` on the clean (augmented) image y
               loss = EDMLoss(D(y + n; sigma, c), y)   unchanged EDM loss, encoder and denoiser trained jointly
    sampling:  c ~ p(c)                           `CodePrior`: the codes of the training set (default)
               x = ODE solve of D(.; sigma, c)    any solver of baselines.edm.samplers

Q is finite scalar quantisation (`FSQuantizer`): each code entry is squashed by tanh and rounded to one of L
evenly spaced levels in [-1, 1], with a straight-through gradient. A bounded, discrete code caps how much of
the image the condition can carry (code_dim * log2(L) bits), which is what lets training go without a KL or
commitment term (a VAE-style encoder, as in MTC, needs one); that is our reading of "no extra regularisation".
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from baselines.edm.precond import Precond
from bench.registry import BenchError

INJECTIONS = ("embedding", "channels")
PRIORS = ("empirical", "uniform")


@dataclass(frozen=True)
class QACConfig:
    # Code size. 8 entries x 3 levels = 6,561 codes (12.7 bits) for the 50k-70k images of CIFAR-10/FFHQ: coarse
    # enough that codes are shared by several images (so sampling from the code prior does not replay single
    # training images), fine enough to pin down global layout/colour, which is what straightens trajectories.
    code_dim: int = 8
    # FSQ levels per entry. 3 (= {-1, 0, 1}) is the smallest symmetric grid with a "neutral" level.
    levels: int = 3
    # Encoder widths, one stride-2 3x3 conv each. (32, 64, 128) costs ~0.1 M parameters on a 3-channel image:
    # ~0.2% of DDPM++ (55.7 M), inside the abstract's "about 1%" with room for a wider variant.
    encoder_widths: tuple[int, ...] = (32, 64, 128)
    # Where the code enters the denoiser: "embedding" adds W c to the noise embedding, exactly where EDM adds
    # class and augmentation labels (cheapest: code_dim x noise_channels weights, every block sees it);
    # "channels" concatenates c as constant planes to the U-Net input.
    inject: str = "embedding"
    # Code distribution at sampling time: "empirical" = the histogram of the training set's codes (the exact
    # marginal of the codes the denoiser was trained on, needs no extra model); "uniform" = every level of
    # every entry equally likely (ignores which codes occur).
    prior: str = "empirical"
    # Normalisation groups in the encoder (GroupNorm(min(groups, width))).
    norm_groups: int = 8

    def __post_init__(self) -> None:
        if self.code_dim < 1:
            raise BenchError(f"QAC code_dim must be >= 1, got {self.code_dim}")
        if self.levels < 2:
            raise BenchError(f"QAC levels must be >= 2, got {self.levels}")
        if not self.encoder_widths or min(self.encoder_widths) < 1:
            raise BenchError(f"QAC encoder_widths must be positive, got {self.encoder_widths}")
        if self.inject not in INJECTIONS:
            raise BenchError(f"QAC inject {self.inject!r} is not one of {', '.join(INJECTIONS)}")
        if self.prior not in PRIORS:
            raise BenchError(f"QAC prior {self.prior!r} is not one of {', '.join(PRIORS)}")

    @property
    def bits(self) -> float:
        return self.code_dim * math.log2(self.levels)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QACConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise BenchError(f"unknown QAC option {unknown[0]!r}; options: {', '.join(sorted(known))}")
        data = dict(data)
        if "encoder_widths" in data:
            data["encoder_widths"] = tuple(data["encoder_widths"])
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["encoder_widths"] = list(self.encoder_widths)
        return out


class FSQuantizer(nn.Module):
    """Finite scalar quantisation with a straight-through estimator.

    forward(z) -> (q, idx): u = tanh(z) in (-1, 1); idx = round((u + 1)/2 (L-1)) in {0..L-1};
    q = 2 idx/(L-1) - 1 on the grid. Backward treats the rounding as identity, so dq/dz = 1 - tanh(z)^2.
    """

    def __init__(self, levels: int):
        super().__init__()
        if levels < 2:
            raise BenchError(f"FSQ needs at least 2 levels, got {levels}")
        self.levels = levels

    def indices_to_values(self, idx: torch.Tensor) -> torch.Tensor:
        return idx.to(torch.float32) * (2.0 / (self.levels - 1)) - 1.0

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = torch.tanh(z)
        idx = torch.round((u + 1) * 0.5 * (self.levels - 1)).clamp(0, self.levels - 1)
        q_hard = self.indices_to_values(idx).to(u.dtype)
        return u + (q_hard - u).detach(), idx.to(torch.int64)


class ConditionEncoder(nn.Module):
    """Stride-2 3x3 convs (GroupNorm + SiLU after each), global average pool, linear to code_dim."""

    def __init__(self, img_channels: int, widths: Sequence[int], code_dim: int, norm_groups: int = 8):
        super().__init__()
        layers: list[nn.Module] = []
        cin = img_channels
        for width in widths:
            layers += [nn.Conv2d(cin, width, 3, stride=2, padding=1),
                       nn.GroupNorm(math.gcd(width, min(norm_groups, width)), width), nn.SiLU()]
            cin = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, code_dim)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(y).mean(dim=(2, 3)))


@dataclass
class CodePrior:
    """A categorical distribution over codes (rows of level indices) for sampling without an image."""

    levels: int
    code_dim: int
    kind: str = "empirical"
    codes: torch.Tensor | None = None   # int64 [U, code_dim], distinct codes seen in the training set
    counts: torch.Tensor | None = None  # int64 [U]
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_indices(cls, idx: torch.Tensor, levels: int, kind: str = "empirical") -> CodePrior:
        codes, counts = torch.unique(idx.to(torch.int64), dim=0, return_counts=True)
        n = int(counts.sum())
        p = counts.double() / n
        entropy = float(-(p * p.log2()).sum())
        return cls(levels, idx.shape[1], kind, codes, counts,
                   {"distinct_codes": int(codes.shape[0]), "images": n, "entropy_bits": entropy,
                    "capacity_bits": idx.shape[1] * math.log2(levels)})

    def sample_indices(self, rng: Any) -> torch.Tensor:
        """One code per sample of a `PerSampleRNG` (row k from the generator of sample k)."""
        if self.kind == "uniform":
            return rng.randint(0, self.levels, self.code_dim).to(torch.int64)
        if self.codes is None or self.counts is None:
            raise BenchError("the empirical code prior is empty: fit it on training images first (QAC.fit_prior)")
        cdf = torch.cumsum(self.counts.double(), 0) / float(self.counts.sum())
        u = rng.rand(1, dtype=torch.float64)[:, 0].cpu()
        pick = torch.searchsorted(cdf, u, right=True).clamp(max=len(cdf) - 1)
        return self.codes[pick]

    def state_dict(self) -> dict[str, Any]:
        return {"levels": self.levels, "code_dim": self.code_dim, "kind": self.kind, "codes": self.codes,
                "counts": self.counts, "info": self.info}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CodePrior:
        return cls(**state)


class QAC(nn.Module):
    """An EDM `Precond` built with a condition input, plus the quantized encoder that feeds it.

    forward(x, sigma, class_labels, code=None, clean=None, **kw): the denoiser conditioned on ``code`` (values on
    the FSQ grid, [N, code_dim]) or, when only ``clean`` is given (training), on Q(E(clean)). It exposes
    sigma_min / sigma_max / round_sigma so that EDM's samplers use it like any preconditioned network.
    """

    def __init__(self, denoiser: Precond, config: QACConfig):
        super().__init__()
        self.config = config
        self.denoiser = denoiser
        self.encoder = ConditionEncoder(denoiser.img_channels, config.encoder_widths, config.code_dim,
                                        config.norm_groups)
        self.quantizer = FSQuantizer(config.levels)
        self.prior: CodePrior | None = None

    # -- the preconditioning interface the samplers use
    @property
    def sigma_min(self) -> float:
        return self.denoiser.sigma_min

    @property
    def sigma_max(self) -> float:
        return self.denoiser.sigma_max

    @property
    def img_channels(self) -> int:
        return self.denoiser.img_channels

    @property
    def img_resolution(self) -> int:
        return self.denoiser.img_resolution

    @property
    def label_dim(self) -> int:
        return self.denoiser.label_dim

    def round_sigma(self, sigma: Any) -> torch.Tensor:
        return self.denoiser.round_sigma(sigma)

    # -- codes
    def encode(self, clean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(code values with straight-through gradients, level indices) of clean images in [-1, 1]."""
        return self.quantizer(self.encoder(clean.to(torch.float32)))

    def condition_kwargs(self, code: torch.Tensor, like: torch.Tensor) -> dict[str, torch.Tensor]:
        if code.ndim != 2 or code.shape[1] != self.config.code_dim:
            raise BenchError(f"QAC code must be [N, {self.config.code_dim}], got {tuple(code.shape)}")
        if self.config.inject == "embedding":
            return {"cond": code}
        return {"cond_map": code[:, :, None, None].expand(-1, -1, like.shape[2], like.shape[3])}

    def forward(self, x: torch.Tensor, sigma: Any, class_labels: torch.Tensor | None = None,
                code: torch.Tensor | None = None, clean: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        if code is None:
            if clean is None:
                raise BenchError("QAC needs a code (sampling) or the clean image (training) to condition on")
            code, _ = self.encode(clean)
        return self.denoiser(x, sigma, class_labels, **kwargs, **self.condition_kwargs(code, x))

    # -- the prior over codes
    @torch.no_grad()
    def fit_prior(self, images: torch.Tensor | Iterable[torch.Tensor], batch_size: int = 500) -> CodePrior:
        """Encode every training image (in [-1, 1]; a tensor or an iterable of batches) and keep the histogram
        of their codes."""
        if isinstance(images, torch.Tensor):
            batches: Iterable[torch.Tensor] = images.split(batch_size)
        else:
            batches = images
        device = next(self.encoder.parameters()).device
        was_training = self.training
        self.eval()
        idx = torch.cat([self.encode(batch.to(device))[1].cpu() for batch in batches])
        self.train(was_training)
        self.prior = CodePrior.from_indices(idx.cpu(), self.config.levels, self.config.prior)
        return self.prior

    def sample_codes(self, rng: Any) -> torch.Tensor:
        if self.prior is None:
            if self.config.prior != "uniform":
                raise BenchError("QAC has no code prior yet: call fit_prior(training images) before sampling")
            self.prior = CodePrior(self.config.levels, self.config.code_dim, "uniform")
        return self.quantizer.indices_to_values(self.prior.sample_indices(rng)).to(getattr(rng, "device", "cpu"))


def build_qac(denoiser_factory: Any, config: QACConfig, **denoiser_kwargs: Any) -> QAC:
    """Build the conditioned denoiser (cond_dim or cond_channels = code_dim) and wrap it.

    denoiser_factory(**kwargs) -> Precond, e.g. ``functools.partial(build_precond, "edm", 32, 3)``.
    """
    extra = {"cond_dim": config.code_dim} if config.inject == "embedding" else {"cond_channels": config.code_dim}
    try:
        denoiser = denoiser_factory(**denoiser_kwargs, **extra)
    except TypeError as exc:  # e.g. inject="channels" with the ADM U-Net, which has no input-plane option
        raise BenchError(f"QAC inject={config.inject!r} is not supported by this denoiser: {exc}") from None
    return QAC(denoiser, config)


def extra_parameter_share(qac: QAC, baseline: nn.Module) -> dict[str, float]:
    """Training parameters QAC adds over the same denoiser without a condition (the abstract's ~1%)."""
    from bench.profile import count_params

    total, base = count_params(qac, trainable_only=False), count_params(baseline, trainable_only=False)
    return {"params": total, "baseline_params": base, "extra_params": total - base,
            "encoder_params": count_params(qac.encoder, trainable_only=False), "extra_share": (total - base) / base}
