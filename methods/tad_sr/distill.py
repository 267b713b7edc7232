"""TAD-SR's one-step distillation of ResShift, and the SinSR-style baseline objective it is compared with.

TAD-SR (LearningHx/TAD-SR at 8b0373fd, ``TAD-SR/models/gaussian_diffusion.py`` ``training_losses_distill`` /
``training_losses_D``, ``models/unet.py`` ``ProjectedDiscriminator`` [R]); restated, not copied:
* the student (a copy of the teacher) runs once at t = T-1 on x_T = y + kappa sqrt(eta_T) eps;
* regression: per-sample mean squared error to the teacher's deterministic T-step sample from the same x_T;
* high-frequency score distillation (HSD): a small timestep k (``hsd_timesteps``: {0, 1, 2} = "smallest-3",
  the paper's choice; "uniform" = {0..T-2}, the code's other branch); the student output and the teacher output
  are diffused to k with the same noise; the frozen teacher predicts x0 from each; the implied noises' difference
  g (stop-gradient) gives the loss mean(g * student_output) (gradient g / (C H W));
* a time-aware discriminator on the frozen teacher's encoder features of GT and student output diffused to a
  random t_d in {0..T-2} (same noise), FiLM-conditioned on t_d; hinge loss for D, -mean D(fake) for the student.
Official quirks, each a documented option (``TadOptions``) with the official behaviour as default:
* ``uniform_noise``: the HSD and discriminator perturbation noise is ``torch.rand_like`` (uniform [0, 1)), not
  Gaussian (the TAD-SeeSR variant uses Gaussian);
* ``double_scale``: the HSD teacher calls normalise an already normalised input (the code scales x_k before
  ``ddim_sample``, which scales again), while the implied noise uses the unscaled x_k.

The SinSR baseline it is compared with lives in baselines/resshift/sinsr.py.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from baselines.resshift.schedule import ResShiftSchedule
from baselines.resshift.sinsr import student_forward, teacher_sample  # noqa: F401 (re-exported)
from baselines.resshift.unet import GroupNorm32, UNetModelSwin, timestep_embedding

# Official discriminator: ProjectedDiscriminator(c_dim=64, embed_dim=160) on 5 teacher features of widths
# 160 x (1, 2, 2, 4, 4) [R configs/TAD-SR.yaml, models/unet.py].
OFFICIAL_D = dict(c_dim=64, embed_dim=160, widths=(160, 320, 320, 640, 640))


@dataclass(frozen=True)
class TadOptions:
    lambda_hsd: float = 1.0
    lambda_gan: float = 0.02
    hsd_timesteps: str = "smallest-3"  # or "uniform"
    uniform_noise: bool = True  # official quirk: torch.rand_like
    double_scale: bool = True  # official quirk: HSD teacher input normalised twice
    distill: str = "hsd"  # "hsd" | "sds" | "none"
    discriminator: bool = True


# ------------------------------------------------------------------------------------- the discriminator

def _sn_conv1d(cin: int, cout: int, k: int, circular: bool) -> nn.Conv1d:
    conv = nn.Conv1d(cin, cout, k, padding=k // 2, padding_mode="circular" if circular else "zeros")
    return spectral_norm(conv, n_power_iterations=1, eps=1e-12, dim=0)


def _block(ch: int, k: int, groups: int) -> nn.Sequential:
    return nn.Sequential(_sn_conv1d(ch, ch, k, circular=True), nn.GroupNorm(groups, ch), nn.LeakyReLU(0.2, True))


class _Residual(nn.Module):
    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.fn(x) + x) / math.sqrt(2)


class DiscHead(nn.Module):
    def __init__(self, channels: int, c_dim: int, groups: int = 4):
        super().__init__()
        self.main = nn.Sequential(_block(channels, 1, groups), _Residual(_block(channels, 9, groups)))
        self.cls = _sn_conv1d(channels, c_dim if c_dim > 0 else 1, 1, circular=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cls(self.main(x))


class TimeAwareDiscriminator(nn.Module):
    """Official ``ProjectedDiscriminator`` layout: ``heads.{k}``, ``emb_layers.{k}``, ``out_layers.{k}``."""

    def __init__(self, c_dim: int = 64, embed_dim: int = 160, widths: Sequence[int] = OFFICIAL_D["widths"],
                 norm_groups: int = 32, head_groups: int = 4):
        super().__init__()
        self.embed_dim = embed_dim
        self.heads = nn.ModuleDict({str(k): DiscHead(w, c_dim, head_groups) for k, w in enumerate(widths)})
        self.emb_layers = nn.ModuleList([nn.Sequential(nn.SiLU(), nn.Linear(embed_dim, 2 * w)) for w in widths])
        out = []
        for w in widths:
            conv = nn.Conv2d(w, w, 3, padding=1)
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
            out.append(nn.Sequential(GroupNorm32(norm_groups, w), nn.SiLU(), nn.Dropout(0.0), conv))
        self.out_layers = nn.ModuleList(out)

    def forward(self, feats: Sequence[torch.Tensor], t: torch.Tensor, detach: bool = False) -> torch.Tensor:
        emb = timestep_embedding(t, self.embed_dim)
        logits = []
        for k, head in self.heads.items():
            x = feats[int(k)].detach() if detach else feats[int(k)]
            scale, shift = self.emb_layers[int(k)](emb)[..., None, None].chunk(2, dim=1)
            layers = self.out_layers[int(k)]
            h = layers[1:](layers[0](x) * (1 + scale) + shift)
            logits.append(head(h.flatten(2)).reshape(x.shape[0], -1))
        return torch.cat(logits, dim=1)


def discriminator_taps(model: UNetModelSwin) -> tuple[int, ...]:
    """Input blocks whose outputs feed the discriminator: each downsampling block and the last input block
    (official realsr x4 teacher: 3, 6, 9, 11), then the middle block."""
    from baselines.resshift.unet import Downsample

    taps = [i for i, blk in enumerate(model.input_blocks) if any(isinstance(m, Downsample) for m in blk)]
    return tuple(taps + [len(model.input_blocks) - 1])


# ------------------------------------------------------------------------------------------------ losses
def _noise(like: torch.Tensor, uniform: bool, generator: torch.Generator | None) -> torch.Tensor:
    if uniform:
        return torch.rand(like.shape, generator=generator, dtype=like.dtype, device=like.device)
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


def score_distillation(schedule: ResShiftSchedule, teacher: nn.Module, y: torch.Tensor, student_out: torch.Tensor,
                       teacher_out: torch.Tensor, opts: TadOptions, generator: torch.Generator | None) -> torch.Tensor:
    """HSD (or plain SDS) surrogate loss whose gradient w.r.t. the student output is g / (C H W) per sample."""
    b = y.shape[0]
    high = 3 if opts.hsd_timesteps == "smallest-3" else schedule.steps - 1
    with torch.no_grad():
        t = torch.randint(0, high, (b,), generator=generator).to(y.device)
        xi = _noise(student_out, opts.uniform_noise, generator)
        s = student_out.detach()

        def teacher_noise(x_k: torch.Tensor) -> torch.Tensor:
            x_in = schedule.scale_input(x_k, t) if opts.double_scale else x_k
            x0 = schedule.predict_x0(teacher, x_in, t, y)
            return schedule.implied_noise(x_k, y, t, x0)

        eps_s = teacher_noise(schedule.q_sample(s, y, t, xi))
        target = teacher_noise(schedule.q_sample(teacher_out, y, t, xi)) if opts.distill == "hsd" else xi
        g = torch.nan_to_num(eps_s - target)
    return (g * student_out).flatten(1).mean(1).mean()


def gan_features(schedule: ResShiftSchedule, teacher: UNetModelSwin, x0: torch.Tensor, y: torch.Tensor,
                 t: torch.Tensor, noise: torch.Tensor, taps: Sequence[int]) -> list[torch.Tensor]:
    x_t = schedule.q_sample(x0, y, t, noise)
    return teacher.encoder_features(schedule.scale_input(x_t, t), t, y, taps)


def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return (F.relu(1.0 - real).mean(dim=-1) + F.relu(1.0 + fake).mean(dim=-1)).mean()
