"""MiPKD's two prior mixers (Li et al., ICLR 2025) on top of the shared SR distiller (baselines/sr_kd).

There is no official code and the paper body could not be read; what follows is the dossier's account [S]
(papers-restoration.md section 3, papers-extra-sources.md section 2.2/2.4) with every unknown a knob of
`MiPKDConfig` (set from the card's mipkd entry args, methods/mipkd/paper.yaml).

Feature prior mixer (at the output of every stage k, see baselines/sr_kd/stages.py):
    z_T = E_T(F_T),  z_S = E_S(F_S)                 separate encoders into one latent width d  [S]
    M ~ Bernoulli(mask_prob) over (d, H, W)          a random 3-D mask per sample  [S]; mask_prob [I]
    F_hat = D_T(M * z_T + (1 - M) * z_S)             decoded to the teacher's space  [S: "tied to the teacher feature"]
    L_feat = L1(F_hat, F_T)
    L_ae   = L1(D_T(E_T(F_T)), F_T) + L1(D_S(E_S(F_S)), F_S)   the auto-encoder loss  [S]; both spaces [I]
Block prior mixer: a random switch R_k per stage sends the forward through the teacher's stage k
(probability block_prob [I]) or the student's; between stages of different networks the feature crosses
spaces through the coders (E of its space, D of the next: the "reconstructed feature" [I]). The first
stage starts from its own network's head, the last network's closing conv, global residual and tail finish.
    L_block = L1(hybrid(x), T(x))                    "compares the mixed network's output with the teacher's" [S]
Total (the shared distiller adds pixel and logits-KD):  + feature_weight * (L_feat + ae_weight * L_ae)
                                                         + block_weight * L_block      (1 and 0.1 [S])
Only the student is deployed: the coders and the teacher are training-only, so params/MACs equal the
plain student's.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from baselines.sr_kd.distill import Distiller
from baselines.sr_kd.stages import StagedOutput
from bench.registry import BenchError


@dataclass(frozen=True)
class MiPKDConfig:
    feature_mixer: bool = True
    block_mixer: bool = True
    n_stages: int = 4           # mixer positions: the ends of n equal-depth stages [I]
    latent_dim: int = 64        # encoder output width d [I]; the reviewers asked for it, the paper omits it
    coder_kernel: int = 3       # one conv per encoder/decoder ("CNN coders beat MLPs", Table 7 [S]) [I]
    mask_prob: float = 0.5      # P(a latent element comes from the teacher) [I]
    block_prob: float = 0.5     # P(stage k runs the teacher's blocks) [I]
    feature_weight: float = 1.0  # lambda_1 = lambda_feat [S: generated summary of Table 10]
    block_weight: float = 0.1    # lambda_2 = lambda_block [S]
    ae_weight: float = 1.0       # the auto-encoder loss inside the feature term [I]
    logits_weight: float = 1.0   # logits-KD, as every KD entry [S]
    pixel_weight: float = 1.0

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> MiPKDConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(args) - known)
        if unknown:
            raise BenchError(f"unknown MiPKD setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
        cfg = cls(**args)
        for name in ("mask_prob", "block_prob"):
            if not 0.0 <= getattr(cfg, name) <= 1.0:
                raise BenchError(f"MiPKD {name} must be in [0, 1], got {getattr(cfg, name)}")
        return cfg


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class FeaturePriorMixer(nn.Module):
    """Encoders E_T, E_S into a shared latent of width d, decoders D_T, D_S back to each network's width."""

    def __init__(self, teacher_width: int, student_width: int, latent_dim: int, kernel: int = 3):
        super().__init__()
        self.enc_t, self.enc_s = _conv(teacher_width, latent_dim, kernel), _conv(student_width, latent_dim, kernel)
        self.dec_t, self.dec_s = _conv(latent_dim, teacher_width, kernel), _conv(latent_dim, student_width, kernel)

    @staticmethod
    def mask(z: torch.Tensor, prob: float) -> torch.Tensor:
        """1 where the latent element is the teacher's: Bernoulli(prob) over (d, H, W) of each sample."""
        if prob <= 0.0:
            return torch.zeros_like(z)
        if prob >= 1.0:
            return torch.ones_like(z)
        return (torch.rand_like(z) < prob).to(z.dtype)

    def mix(self, f_t: torch.Tensor, f_s: torch.Tensor, prob: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(mixed latent, its decoding in the teacher's space)."""
        z_t, z_s = self.enc_t(f_t), self.enc_s(f_s)
        m = self.mask(z_t, prob)
        z = m * z_t + (1.0 - m) * z_s
        return z, self.dec_t(z)

    def ae_loss(self, f_t: torch.Tensor, f_s: torch.Tensor) -> torch.Tensor:
        f_s = f_s.detach()  # the AE term trains the coders only
        return F.l1_loss(self.dec_t(self.enc_t(f_t)), f_t) + F.l1_loss(self.dec_s(self.enc_s(f_s)), f_s)

    def to_space(self, h: torch.Tensor, src: str, dst: str) -> torch.Tensor:
        """Carry a feature from one network's space ("T" or "S") to the other's through the shared latent."""
        if src == dst:
            return h
        z = self.enc_t(h) if src == "T" else self.enc_s(h)
        return self.dec_t(z) if dst == "T" else self.dec_s(z)


class MiPKD(Distiller):
    def __init__(self, student: nn.Module, teacher: nn.Module, config: MiPKDConfig):
        super().__init__(student, teacher, kd="logits", n_stages=config.n_stages, pixel_weight=config.pixel_weight,
                         logits_weight=config.logits_weight)
        self.config = config
        tw, sw = self.teacher_stages().width, self.student_stages().width
        self.mixers = nn.ModuleList(FeaturePriorMixer(tw, sw, config.latent_dim, config.coder_kernel)
                                    for _ in range(config.n_stages))

    # ----------------------------------------------------------------------------------- the two mixers
    def feature_terms(self, s: StagedOutput, t: StagedOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """(L_feat, L_ae), each the mean over the stage outputs."""
        feat, ae = [], []
        for mixer, f_s, f_t in zip(self.mixers, s.stages, t.stages):
            _, decoded = mixer.mix(f_t, f_s, self.config.mask_prob)
            feat.append(F.l1_loss(decoded, f_t))
            ae.append(mixer.ae_loss(f_t, f_s))
        return torch.stack(feat).mean(), torch.stack(ae).mean()

    def routes(self, prob: float | None = None) -> list[str]:
        """One random switch per stage: "T" (teacher's blocks, probability block_prob) or "S"."""
        p = self.config.block_prob if prob is None else prob
        return ["T" if float(torch.rand(())) < p else "S" for _ in range(self.n_stages)]

    def hybrid_forward(self, x: torch.Tensor, routes: list[str]) -> torch.Tensor:
        """The SR output of the network whose stage k is the teacher's or the student's as ``routes`` says."""
        if len(routes) != self.n_stages or set(routes) - {"T", "S"}:
            raise BenchError(f"routes must be {self.n_stages} of 'T'/'S', got {routes}")
        if "T" in routes and next(self.teacher.parameters()).device != x.device:
            self.teacher.to(x.device)
        nets = {"T": self.teacher_stages(), "S": self.student_stages()}
        heads: dict[str, torch.Tensor] = {}

        def head(space: str) -> torch.Tensor:
            if space not in heads:
                heads[space] = nets[space].embed(x)
            return heads[space]

        h, space = head(routes[0]), routes[0]
        for k, dst in enumerate(routes):
            if k > 0:  # cross spaces at the boundary after stage k-1 through that boundary's coders
                h = self.mixers[k - 1].to_space(h, space, dst)
                space = dst
            h = nets[space].stage(k, h)
        out, _ = nets[space].finish(h, head(space))
        return out

    def extra_loss(self, x: torch.Tensor, s: StagedOutput, t: StagedOutput) -> tuple[torch.Tensor, dict[str, Any]]:
        loss, extras = x.new_zeros(()), {}
        if self.config.feature_mixer:
            feat, ae = self.feature_terms(s, t)
            loss = loss + self.config.feature_weight * (feat + self.config.ae_weight * ae)
            extras.update(feature_mixer=feat.detach(), autoencoder=ae.detach())
        if self.config.block_mixer:
            block = F.l1_loss(self.hybrid_forward(x, self.routes()), t.out)
            loss = loss + self.config.block_weight * block
            extras["block_mixer"] = block.detach()
        return loss, extras
