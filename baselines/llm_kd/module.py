"""The trained module of every LLM-distillation method: the student plus the method's objective.

`DistillModule.forward(batch)` returns the method's loss (and logged extras), so the shared training loop
(bench.train.train) drives every method the same way: ``loss_fn = lambda module, batch: module(batch)``,
and DDP sees one forward per micro-step. The objective is a sub-module, so its trainable parts (MGSR's
DAC-KL sub-network) are optimised with the student and its state (DistiLLM's replay buffer and adaptive
threshold, held in buffers) is saved in the training checkpoints: a resumed run continues exactly.
The teacher is frozen and deliberately not a sub-module (it is neither trained nor checkpointed).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class GenerationSettings:
    """Training-time sampling (student or teacher outputs), DistiLLM's gen-* options: T = 1, top-p 1, no top-k."""

    max_new_tokens: int = 256        # paper: max_length 512 - prompt (<= 256); smoke: small
    max_total_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0


@dataclass(frozen=True)
class TokenInfo:
    eos_id: int
    pad_id: int


class Objective(nn.Module):
    """A method's loss. Subclasses implement `compute(module, batch) -> (loss, extras)`.

    Class attributes: `needs_teacher`; `default_student_init` ("scratch" = the student's starting weights,
    "sft-init" = a student fine-tuned on the data first, as MiniLLM/DistiLLM start from).
    """

    needs_teacher = True
    default_student_init = "scratch"

    def compute(self, module: "DistillModule", batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any]]:
        raise NotImplementedError

    def validation_hooks(self) -> list[tuple[str, Any]]:
        """(name, fn(module, valid_loss)) called at each validation (DistiLLM's adaptive threshold)."""
        return []


class DistillModule(nn.Module):
    def __init__(self, student: nn.Module, objective: Objective, teacher: nn.Module | None, tokens: TokenInfo,
                 generation: GenerationSettings, total_steps: int):
        super().__init__()
        self.student = student
        self.objective = objective
        object.__setattr__(self, "teacher", teacher)  # not registered: frozen, not checkpointed
        if teacher is not None:
            teacher.requires_grad_(False)
            teacher.eval()
        if objective.needs_teacher and teacher is None:
            from bench.registry import BenchError

            raise BenchError(f"{type(objective).__name__} needs a teacher model")
        self.tokens = tokens
        self.generation = generation
        self.total_steps = int(total_steps)
        # forward calls in training mode (= optimizer steps without gradient accumulation); checkpointed
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def to(self, *args: Any, **kwargs: Any) -> "DistillModule":  # the teacher follows the student's device
        super().to(*args, **kwargs)
        if self.teacher is not None:
            self.teacher.to(*args, **kwargs)
        return self

    @property
    def progress(self) -> float:
        """Fraction of training done before this step, in [0, 1)."""
        return float(self.calls) / max(self.total_steps, 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any]]:
        loss, extras = self.objective.compute(self, batch)
        if self.training:
            self.calls += 1
        return loss, extras
