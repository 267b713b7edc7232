"""SAM-prior distillation (Zhang et al., CVPR 2024) around a plain restoration model: SPF, SPD and SGR.

The paper's code was never released; this follows the dossier's sketch (papers-restoration.md 5.3) and makes every
unknown a knob (``KNOBS``, with our defaults and why):

1. y1 = IR(x)                                    the plain, deployed model
2. m = label map of the training image           SAM (or the smoke stand-in), precomputed (segmenter.py)
3. y2 = y1' + SPF(concat(y1', prior(m, y1')))    semantic priors fusion; y1' = y1 (or detached: knob)
4. L = |y1 - y| + w_fuse |y2 - y|                reconstruction of both paths
     + lambda_spd ||y1 - sg(y2)||^2              semantic priors distillation (output level; mse or l1)
     + lambda_sgr |R(phi(y1), m) - sg(R(phi(y2), m))|   semantic-guided relation
   R = cosine similarities between mask-pooled features of a frozen analyzer phi (VGG16 up to relu2_2 at
   small/paper scale, a fixed random conv stack at smoke).
At inference only ``ir`` runs: ``deployed()`` returns it, unchanged (same parameters, same MACs).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from baselines.ir.nafnet import NAFBlock

KNOBS: dict[str, tuple[Any, str]] = {
    "lambda_spd": (1.0, "weight of the SPD (output distillation) term; the paper's lambda_1 is unknown"),
    "spd_loss": ("mse", "distance of SPD: 'mse' (gradient proportional to the student-teacher gap) or 'l1'. With l1 "
                        "the gradient has full size even when y1 and y2 differ by rounding noise, and at smoke it "
                        "wrecked training (NAFNet denoise 26.3 -> 16.6 dB)"),
    "lambda_sgr": (0.1, "weight of the SGR term; the paper's lambda_2 is unknown"),
    "fuse_weight": (1.0, "weight of the fused path's own reconstruction loss (trains SPF)"),
    "detach_fusion_input": (False, "False: the fused path's reconstruction loss also reaches the IR model through "
                                   "SPF (the cascade trains end to end); True: SPF sees y1 detached and the IR model "
                                   "learns only from its own L1, SPD and SGR. At smoke (NAFNet denoise, 3 seeds) "
                                   "True lost 0.5-2.4 dB to the plain model, False gained 0.25-0.7 dB"),
    "prior_encoding": ("boundary+region-mean", "how the label map enters SPF: a 1-channel region-boundary map plus "
                                               "the per-region mean colour of y1 (3 channels)"),
    "spf_width": (8, "SPF network width (NAFBlocks); the paper's second IR network is unknown"),
    "spf_blocks": (2, "SPF depth in NAFBlocks"),
    "max_regions": (8, "regions per training crop for SGR (the largest ones; the rest are merged into one)"),
    "analyzer": ("random-conv", "SGR's frozen semantic analyzer: 'vgg16' (relu2_2, ImageNet weights asset) or "
                                "'random-conv' (fixed seeded 2-layer conv, no weights: smoke)"),
}


def knob(cfg: dict[str, Any], name: str) -> Any:
    return cfg.get(name, KNOBS[name][0])


# ----------------------------------------------------------------------------------------------- regions
def region_onehot(labels: torch.Tensor, max_regions: int) -> torch.Tensor:
    """[B, H, W] integer labels -> [B, R, H, W] float one-hot of the R largest regions of each map (the smaller
    ones are merged into the last slot, so every pixel belongs to exactly one slot)."""
    b = labels.shape[0]
    out = torch.zeros(b, max_regions, *labels.shape[1:], dtype=torch.float32, device=labels.device)
    for i in range(b):
        ids, counts = labels[i].unique(return_counts=True)
        order = ids[counts.argsort(descending=True, stable=True)]
        for slot, label in enumerate(order.tolist()):
            out[i, min(slot, max_regions - 1)] += (labels[i] == label).float()
    return out


def boundary_map(labels: torch.Tensor) -> torch.Tensor:
    """[B, H, W] labels -> [B, 1, H, W]: 1 where a pixel's right or lower neighbour has another label."""
    edge = torch.zeros_like(labels, dtype=torch.float32)
    edge[:, :, :-1] += (labels[:, :, 1:] != labels[:, :, :-1]).float()
    edge[:, :-1, :] += (labels[:, 1:, :] != labels[:, :-1, :]).float()
    return edge.clamp_(max=1.0)[:, None]


def region_mean(image: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    """Each pixel replaced by the mean of ``image`` over its region: [B, C, H, W]."""
    area = onehot.sum((2, 3)).clamp_min(1.0)  # [B, R]
    means = torch.einsum("bchw,brhw->brc", image, onehot) / area[..., None]
    return torch.einsum("brc,brhw->bchw", means, onehot)


def region_relation(features: torch.Tensor, onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask-pooled region features -> their cosine-similarity matrix [B, R, R] and a validity mask [B, R, R]
    (regions absent from the crop, or absent at the feature resolution, are left out)."""
    masks = F.adaptive_avg_pool2d(onehot, features.shape[-2:])  # area fractions at the feature resolution
    area = masks.sum((2, 3))  # [B, R]
    pooled = torch.einsum("bchw,brhw->brc", features, masks) / area.clamp_min(1e-6)[..., None]
    pooled = F.normalize(pooled, dim=-1)
    valid = (area > 1e-6).float()
    return pooled @ pooled.transpose(1, 2), valid[:, :, None] * valid[:, None, :]


# ---------------------------------------------------------------------------------------------- analyzer
class RandomConvAnalyzer(nn.Module):
    """A fixed (seeded, frozen) two-layer conv stack: a weight-free stand-in for VGG features at smoke scale."""

    def __init__(self, channels: int = 16, seed: int = 1234):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w1 = nn.Parameter(torch.randn(channels, 3, 3, 3, generator=g) / 27 ** 0.5, requires_grad=False)
        self.w2 = nn.Parameter(torch.randn(channels, channels, 3, 3, generator=g) / (9 * channels) ** 0.5,
                               requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(F.conv2d(F.relu(F.conv2d(x, self.w1, padding=1)), self.w2, padding=1, stride=2))


class VGGAnalyzer(nn.Module):
    """torchvision VGG16 (ImageNet weights from the lpips-vgg16-backbone asset) up to relu2_2, frozen."""

    def __init__(self):
        super().__init__()
        from torchvision.models import vgg16

        from bench.assets import require

        net = vgg16()
        net.load_state_dict(torch.load(require("lpips-vgg16-backbone"), map_location="cpu", weights_only=True))
        self.features = net.features[:9].eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)


def build_analyzer(name: str) -> nn.Module:
    if name == "random-conv":
        return RandomConvAnalyzer()
    if name == "vgg16":
        return VGGAnalyzer()
    raise ValueError(f"unknown SGR analyzer {name!r}; known: random-conv, vgg16")


# ---------------------------------------------------------------------------------------------------- SPF
class SemanticPriorFusion(nn.Module):
    """Second restoration network: (y1, prior channels) -> residual refinement of y1."""

    def __init__(self, prior_channels: int = 4, width: int = 8, blocks: int = 2):
        super().__init__()
        self.intro = nn.Conv2d(3 + prior_channels, width, 3, padding=1)
        self.body = nn.Sequential(*[NAFBlock(width) for _ in range(blocks)])
        self.ending = nn.Conv2d(width, 3, 3, padding=1)
        # zero-initialised output: the fused path starts as y1 itself, so SPD starts at zero instead of pulling
        # the IR model towards a random residual (measured: with a random init, +SAM lost 0.3-1.7 dB at smoke)
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)

    def forward(self, y1: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        return y1 + self.ending(self.body(self.intro(torch.cat([y1, prior], 1))))


class SAMPriorDistill(nn.Module):
    """Training wrapper: the plain IR model plus the training-only SPF network and analyzer."""

    def __init__(self, ir: nn.Module, cfg: dict[str, Any] | None = None):
        super().__init__()
        self.cfg = dict(cfg or {})
        unknown = set(self.cfg) - set(KNOBS)
        if unknown:
            raise ValueError(f"unknown sam-prior knob(s) {sorted(unknown)}; known: {', '.join(KNOBS)}")
        self.ir = ir
        self.spf = SemanticPriorFusion(4, int(knob(self.cfg, "spf_width")), int(knob(self.cfg, "spf_blocks")))
        self.analyzer = build_analyzer(knob(self.cfg, "analyzer")).requires_grad_(False)

    def deployed(self) -> nn.Module:
        """What runs at inference: the IR model alone, unchanged."""
        return self.ir

    def _spd(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        kind = knob(self.cfg, "spd_loss")
        if kind == "mse":
            return F.mse_loss(student, teacher)
        if kind == "l1":
            return F.l1_loss(student, teacher)
        raise ValueError(f"unknown spd_loss {kind!r}; known: mse, l1")

    def prior(self, y1: torch.Tensor, onehot: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.cat([boundary_map(labels), region_mean(y1, onehot)], 1)

    def losses(self, x: torch.Tensor, y: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        onehot = region_onehot(labels, int(knob(self.cfg, "max_regions")))
        y1 = self.ir(x)
        y1_in = y1.detach() if knob(self.cfg, "detach_fusion_input") else y1
        y2 = self.spf(y1_in, self.prior(y1_in, onehot, labels))
        out = {"recon": F.l1_loss(y1, y), "fuse": F.l1_loss(y2, y), "spd": self._spd(y1, y2.detach())}
        r1, valid = region_relation(self.analyzer(y1), onehot)
        with torch.no_grad():
            r2, _ = region_relation(self.analyzer(y2), onehot)
        out["sgr"] = ((r1 - r2).abs() * valid).sum() / valid.sum().clamp_min(1.0)
        out["total"] = (out["recon"] + float(knob(self.cfg, "fuse_weight")) * out["fuse"]
                        + float(knob(self.cfg, "lambda_spd")) * out["spd"]
                        + float(knob(self.cfg, "lambda_sgr")) * out["sgr"])
        return out
