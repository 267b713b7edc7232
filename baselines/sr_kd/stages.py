"""Staged forwards of SR networks for distillation:
* EDSR-PyTorch layout (EDSR, RCAN): ``sub_mean -> head -> body -> tail -> add_mean`` with
  ``body = [block_0 .. block_{n-1}, closing conv]`` and a global residual around the body;
* SwinIR (baselines/sr/swinir_light.py): ``conv_first -> patch_embed -> RSTB layers -> norm -> conv_after_body``
  (+ residual) ``-> upsampling tail``; the blocks are the RSTBs, features travel between stages as images.

Distillation taps features between body blocks and, for MiPKD's block mixer, runs a network one stage at a time.
A network's n blocks are cut into ``n_stages`` contiguous stages (stage k = blocks round(k n/K) .. round((k+1) n/K));
a teacher of 32 blocks and a student of 16 cut into 4 stages then meet at the same relative depths.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.registry import BenchError


def body_blocks(model: nn.Module) -> list[nn.Module]:
    body = getattr(model, "body", None)
    if not isinstance(body, nn.Sequential) or len(body) < 2 or not hasattr(model, "head") or not hasattr(model, "tail"):
        raise BenchError(f"{type(model).__name__}: staged distillation needs the EDSR-PyTorch layout "
                         "(head, body = blocks + closing conv, tail)")
    return list(body)[:-1]


def stage_bounds(n_blocks: int, n_stages: int) -> list[int]:
    if not 1 <= n_stages <= n_blocks:
        raise BenchError(f"cannot cut {n_blocks} body blocks into {n_stages} stages (need 1 <= stages <= blocks)")
    return [round(k * n_blocks / n_stages) for k in range(n_stages + 1)]


@dataclass
class StagedOutput:
    out: torch.Tensor            # the SR image in [0, rgb_range]
    head: torch.Tensor           # head output (input of the body, and the global residual)
    stages: list[torch.Tensor]   # output of each stage
    body: torch.Tensor           # output of the body's closing conv (before the global residual)

    def taps(self) -> list[torch.Tensor]:
        """DUKD's FAKD positions: conv_first, the inner stage boundaries, conv_after_body."""
        return [self.head, *self.stages[:-1], self.body]


def Staged(model: nn.Module, n_stages: int) -> StagedEDSR:
    """The staged view of ``model`` (SwinIR or the EDSR-PyTorch layout)."""
    if hasattr(model, "layers") and hasattr(model, "conv_first"):
        return StagedSwinIR(model, n_stages)
    return StagedEDSR(model, n_stages)


class StagedEDSR:
    """One network seen as head / stages / finish (no parameters of its own)."""

    def __init__(self, model: nn.Module, n_stages: int):
        self.model, self.n_stages = model, n_stages
        blocks = self._blocks(model)
        bounds = stage_bounds(len(blocks), n_stages)
        self._stages = [blocks[bounds[k]:bounds[k + 1]] for k in range(n_stages)]

    @staticmethod
    def _blocks(model: nn.Module) -> list[nn.Module]:
        return body_blocks(model)

    @property
    def width(self) -> int:
        return int(self.model.head[0].out_channels)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.head(self.model.sub_mean(x))

    def stage(self, k: int, h: torch.Tensor) -> torch.Tensor:
        for block in self._stages[k]:
            h = block(h)
        return h

    def finish(self, h_last: torch.Tensor, head: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(SR image, body output) from the last stage's output and the head output (global residual)."""
        body = self.model.body[-1](h_last)
        return self.model.add_mean(self.model.tail(body + head)), body

    def forward(self, x: torch.Tensor) -> StagedOutput:
        head = self.embed(x)
        h, stages = head, []
        for k in range(self.n_stages):
            h = self.stage(k, h)
            stages.append(h)
        out, body = self.finish(h, head)
        return StagedOutput(out=out, head=head, stages=stages, body=body)


class StagedSwinIR(StagedEDSR):
    """SwinIR cut between RSTBs. ``embed`` pads the input to the window (as SwinIR.forward does) and remembers
    the size, which ``finish`` crops back to; the patch-embedding LayerNorm opens stage 0."""

    @staticmethod
    def _blocks(model: nn.Module) -> list[nn.Module]:
        return list(model.layers)

    @property
    def width(self) -> int:
        return int(self.model.conv_first.out_channels)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        from baselines.sr.common import reflect_pad_to_multiple

        m = self.model
        self._size = x.shape[-2:]
        x = reflect_pad_to_multiple("SwinIR", x, m.window_size)
        return m.conv_first(x / m.rgb_range - m.mean.to(x.dtype))

    def stage(self, k: int, h: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = h.shape
        tokens = self.model.patch_embed(h) if k == 0 else h.flatten(2).transpose(1, 2)
        for layer in self._stages[k]:
            tokens = layer(tokens, (hh, ww))
        return tokens.transpose(1, 2).reshape(b, c, hh, ww)

    def finish(self, h_last: torch.Tensor, head: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        b, c, hh, ww = h_last.shape
        feats = m.norm(h_last.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, c, hh, ww)
        body = m.conv_after_body(feats)
        out = (m.reconstruct(body + head) + m.mean.to(body.dtype)) * m.rgb_range
        h, w = self._size
        return out[:, :, : h * m.scale, : w * m.scale], body
