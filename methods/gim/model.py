"""GIMFormer (GIM, AAAI 2025) as described in papers-other 4.3, every unknown a documented knob.

Structure: ShadowTracer g_phi maps the RGB image to a trace map t; a CMX dual MiT encoder (baselines.imdl.mit) runs an
RGB branch (per stage: FSB -> MiT blocks -> MWAM) and a trace branch (MiT blocks -> MWAM), fused after every stage by
FRM + FFM; the all-MLP decoder predicts the mask from the fused pyramid F1..F4 and a light classifier on F4 predicts the
image label. Loss: BCE(label) + BCE(mask), unit weights. ShadowTracer is trained first, separately, on
(G(x), t = G(x) - x) pairs with mixup and degradations on random patches, then frozen.

Knobs (``GIMFormerConfig``), with what is known and what is our choice [I]:
- ``backbone``: the MiT variant is not stated; TruFor uses MiT-B2, our default (``mit-tiny`` for smoke).
- ``mwam_windows``: N = 3 windows is stated, the sizes are not: ManTra-Net's (7, 15, 31) by default; smoke (3, 5, 7).
- ``mwam_sigma_floor``: sigma* = max(sigma(F), 1e-5 + w_sigma), w_sigma learnable, kept non-negative by abs(); its
  initial value is ours (``mwam_w_sigma_init``).
- ``mwam_avg_padding``: the local average ignores out-of-image pixels (count_include_pad=False) [I]; the local max pads
  with -inf (the pixel itself always counts).
- ``fsb_filter_size``: the learnable global filter G is stored at a fixed size per stage (input_size / stride) and
  bilinearly resized to another feature size (GFNet's resolution transfer) [I]; G starts at 1 (identity branch).
- FSB placement: after each RGB stage's patch embedding, before its blocks, on the LayerNorm-ed map [I, per the figure].
- ``tracer_depth`` / ``tracer_width``: g_phi's architecture is not stated; a DnCNN-like conv stack [I] (17 x 64 at paper
  scale, as Noiseprint++), residual-free, linear last layer with 3 output channels (the RGB trace).
- ``classifier``: "a lightweight backbone (Wang et al. 2020)" on F4 is not specified; ours: conv3x3-BN-ReLU then
  global average+max pooling and a linear layer [I].
- ``decoder_embed``: 512 as TruFor's MLP decoder at paper scale [I].
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from baselines.imdl.mit import DecoderHead, DualMixTransformer, mit_config
from baselines.imdl.trufor import imagenet_normalise

STRIDES = (4, 8, 16, 32)


@dataclass(frozen=True)
class GIMFormerConfig:
    backbone: str = "mit-b2"
    image_size: int = 512
    decoder_embed: int = 512
    mwam_windows: tuple[int, ...] = (7, 15, 31)
    mwam_w_sigma_init: float = 1e-3
    fsb: bool = True
    mwam: bool = True
    tracer_depth: int = 17
    tracer_width: int = 64
    classifier_width: int = 256
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------------------
# ShadowTracer

class ShadowTracer(nn.Module):
    """g_phi: image in [0, 1] -> trace map (3 channels, same size), the pixel perturbation a generator introduced."""

    def __init__(self, depth: int = 17, width: int = 64):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            cin = 3 if i == 0 else width
            cout = 3 if i == depth - 1 else width
            layers.append(nn.Conv2d(cin, cout, 3, padding=1, bias=not (0 < i < depth - 1)))
            if 0 < i < depth - 1:
                layers.append(nn.BatchNorm2d(cout))
            if i < depth - 1:
                layers.append(nn.ReLU(inplace=True))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def tracer_training_pair(real: torch.Tensor, fake: torch.Tensor, lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup of a (real, G(real)) pair: input real + lam (fake - real), target lam (fake - real)."""
    trace = fake - real
    lam = lam.view(-1, 1, 1, 1)
    return real + lam * trace, lam * trace


# ---------------------------------------------------------------------------------------------------------
# Frequency-Spatial Block

class FrequencySpatialBlock(nn.Module):
    """X_out = ConvLReLU([IFFT2(FFT2(LN(X)) * G), ConvLReLU(Conv(LN(X)))]) + X."""

    def __init__(self, dim: int, size: int):
        super().__init__()
        self.norm = nn.GroupNorm(1, dim)  # LayerNorm over (C, H, W) of a map; channel-wise affine [I]
        self.size = size
        self.filter = nn.Parameter(torch.ones(dim, size, size // 2 + 1, 2) * torch.tensor([1.0, 0.0]))  # G = 1 + 0i
        self.spatial = nn.Sequential(nn.Conv2d(dim, dim, 1), nn.Conv2d(dim, dim, 3, padding=1), nn.LeakyReLU(0.2))
        self.fuse = nn.Sequential(nn.Conv2d(2 * dim, dim, 1), nn.LeakyReLU(0.2))

    def global_filter(self, h: int, w: int) -> torch.Tensor:
        g = self.filter
        if g.shape[1] != h or g.shape[2] != w // 2 + 1:
            g = F.interpolate(g.permute(0, 3, 1, 2), size=(h, w // 2 + 1), mode="bilinear",
                              align_corners=True).permute(0, 2, 3, 1)
        return torch.view_as_complex(g.contiguous())

    def frequency(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        spec = torch.fft.rfft2(x, norm="ortho") * self.global_filter(h, w)
        return torch.fft.irfft2(spec, s=(h, w), norm="ortho")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xn = self.norm(x)
        return self.fuse(torch.cat((self.frequency(xn), self.spatial(xn)), dim=1)) + x


# ---------------------------------------------------------------------------------------------------------
# Multi-window Anomalous Modelling

def local_average(x: torch.Tensor, k: int) -> torch.Tensor:
    return F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False)


def local_max(x: torch.Tensor, k: int) -> torch.Tensor:
    return F.max_pool2d(x, k, stride=1, padding=k // 2)


class MultiWindowAnomaly(nn.Module):
    """X_hat = X + S_a * M_a + S_m * M_m with D_u^k = (F - F_u^k) / sigma*, u in {average, max}."""

    def __init__(self, dim: int, windows: tuple[int, ...] = (7, 15, 31), w_sigma_init: float = 1e-3):
        super().__init__()
        if any(k % 2 == 0 for k in windows):
            raise ValueError(f"MWAM windows must be odd, got {windows}")
        self.windows = tuple(windows)
        self.w_sigma = nn.Parameter(torch.full((dim,), float(w_sigma_init)))
        n = len(windows)
        self.merge_avg = nn.Conv2d(n * dim, dim, 1)
        self.merge_max = nn.Conv2d(n * dim, dim, 1)
        self.score_avg = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, groups=dim), nn.Conv2d(dim, 1, 1))
        self.score_max = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, groups=dim), nn.Conv2d(dim, 1, 1))

    def sigma_star(self, x: torch.Tensor) -> torch.Tensor:
        sigma = x.flatten(2).std(dim=2, unbiased=False)  # per sample and channel
        return torch.maximum(sigma, 1e-5 + self.w_sigma.abs()[None])[:, :, None, None]

    def deviations(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        s = self.sigma_star(x)
        return ([(x - local_average(x, k)) / s for k in self.windows],
                [(x - local_max(x, k)) / s for k in self.windows])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d_avg, d_max = self.deviations(x)
        m_a = self.merge_avg(torch.cat(d_avg, dim=1))
        m_m = self.merge_max(torch.cat(d_max, dim=1))
        return x + torch.sigmoid(self.score_avg(x)) * m_a + torch.sigmoid(self.score_max(x)) * m_m


# ---------------------------------------------------------------------------------------------------------
# GIMFormer

class GIMFormer(nn.Module):
    """forward(x in [0, 1]) -> dict(mask_logits [B, 1, H, W], cls_logits [B], trace [B, 3, H, W])."""

    def __init__(self, cfg: GIMFormerConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or GIMFormerConfig()
        mit = mit_config(cfg.backbone)
        dims = mit.embed_dims
        self.tracer = ShadowTracer(cfg.tracer_depth, cfg.tracer_width)
        self.encoder = DualMixTransformer(mit)
        if cfg.fsb:
            self.fsb = nn.ModuleList(FrequencySpatialBlock(dims[s], max(1, cfg.image_size // STRIDES[s]))
                                     for s in range(4))
            self.encoder.rgb_pre = list(self.fsb)
        if cfg.mwam:
            self.mwam_rgb = nn.ModuleList(MultiWindowAnomaly(d, cfg.mwam_windows, cfg.mwam_w_sigma_init) for d in dims)
            self.mwam_trace = nn.ModuleList(MultiWindowAnomaly(d, cfg.mwam_windows, cfg.mwam_w_sigma_init) for d in dims)
            self.encoder.rgb_post, self.encoder.extra_post = list(self.mwam_rgb), list(self.mwam_trace)
        self.decode_head = DecoderHead(dims, 1, cfg.decoder_embed)
        w = cfg.classifier_width
        self.classifier = nn.Sequential(nn.Conv2d(dims[3], w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                                        nn.ReLU(inplace=True))
        self.classifier_fc = nn.Linear(2 * w, 1)

    def freeze_tracer(self) -> None:
        self.tracer.eval()
        for p in self.tracer.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.set_grad_enabled(torch.is_grad_enabled() and any(p.requires_grad for p in self.tracer.parameters())):
            trace = self.tracer(x)
        feats = self.encoder(imagenet_normalise(x), trace)
        mask = F.interpolate(self.decode_head(feats), size=x.shape[2:], mode="bilinear", align_corners=False)
        c = self.classifier(feats[3])
        cls = self.classifier_fc(torch.cat((c.mean(dim=(2, 3)), c.amax(dim=(2, 3))), dim=1))[:, 0]
        return {"mask_logits": mask, "cls_logits": cls, "trace": trace}

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.forward(x)
        return torch.sigmoid(out["mask_logits"])[:, 0], torch.sigmoid(out["cls_logits"])

    def loss(self, x: torch.Tensor, mask: torch.Tensor, label: torch.Tensor, pos_weight: float = 1.0) -> torch.Tensor:
        """BCE(label) + BCE(mask), unit weights; ``pos_weight`` > 1 weighs manipulated pixels (a smoke knob)."""
        out = self.forward(x)
        pw = torch.tensor(float(pos_weight), device=x.device)
        return (F.binary_cross_entropy_with_logits(out["cls_logits"], label.float())
                + F.binary_cross_entropy_with_logits(out["mask_logits"][:, 0], mask.float(), pos_weight=pw))

    def train(self, mode: bool = True) -> "GIMFormer":
        super().train(mode)
        if not any(p.requires_grad for p in self.tracer.parameters()):
            self.tracer.eval()  # a frozen tracer keeps its BN statistics
        return self


def build_gimformer(**kwargs) -> GIMFormer:
    windows = kwargs.pop("mwam_windows", None)
    if windows is not None:
        kwargs["mwam_windows"] = tuple(windows)
    return GIMFormer(GIMFormerConfig(**kwargs))
