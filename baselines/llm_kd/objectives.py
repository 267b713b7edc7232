"""The LLM-distillation baselines of MGSR as objectives on one training loop: SFT, KD, SeqKD, ImitKD, GKD and
DistiLLM (MiniLLM is in minillm.py). Their settings follow the DistiLLM / MiniLLM scripts (papers-other 3.4);
each default says where it comes from.

A batch holds ground-truth prompt + response rows (data.sequences_batch). On-policy methods replace the
responses by samples of the student (`student_batch`) drawn from torch's global generator, which the
training loop seeds per rank and saves in its checkpoints.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from baselines.llm_kd import divergences
from baselines.llm_kd.data import IGNORE, forward_logits, response_mask, sequences_batch, split_batch
from baselines.llm_kd.module import DistillModule, Objective
from baselines.llm_kd.sampling import sample
from bench.registry import BenchError


def lm_loss(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Token-mean cross entropy on the response tokens (MiniLLM/DistiLLM's LM loss)."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1),
                           ignore_index=IGNORE)


def teacher_logits(module: DistillModule, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return forward_logits(module.teacher, batch)


def student_batch(module: DistillModule, batch: dict[str, torch.Tensor], model: Any = None) -> dict[str, torch.Tensor]:
    """The batch's prompts with responses sampled from `model` (default: the student) at T = 1."""
    prompts, _ = split_batch(batch)
    gen = module.generation
    budgets = [min(gen.max_new_tokens, gen.max_total_tokens - len(p)) for p in prompts]
    rollout = sample(model if model is not None else module.student, prompts, budgets, module.tokens.eos_id,
                     module.tokens.pad_id, temperature=gen.temperature, top_k=gen.top_k, top_p=gen.top_p)
    # a row that produced nothing (budget 0) keeps one EOS so every row has a trained token
    responses = [r if r else [module.tokens.eos_id] for r in rollout.responses]
    return sequences_batch(prompts, responses, module.tokens.pad_id, device=batch["input_ids"].device)


def check_ratio(name: str, value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise BenchError(f"{name} must lie in [0, 1], got {value!r}")
    return float(value)


class SFT(Objective):
    """Supervised fine-tuning: LM loss on the ground-truth responses (also how the teacher is trained)."""

    needs_teacher = False

    def compute(self, module, batch):
        loss = lm_loss(forward_logits(module.student, batch), batch)
        return loss, {"lm": loss.detach()}


class KD(Objective):
    """Word-level KD: (1 - kd_ratio) LM + kd_ratio * divergence(teacher || student) on ground-truth data.

    kd_ratio 1.0: DistiLLM's KD scripts (pure distillation; MiniLLM's KD baseline used 0.5). divergence
    "fkl" (forward KL, cross-entropy form as DistiLLM's code).
    """

    def __init__(self, kd_ratio: float = 1.0, divergence: str = "fkl"):
        super().__init__()
        self.kd_ratio = check_ratio("kd_ratio", kd_ratio)
        if divergence not in divergences.DIVERGENCES:
            raise BenchError(f"unknown divergence {divergence!r}; known: {', '.join(divergences.DIVERGENCES)}")
        self.divergence = divergence

    def distil(self, module, batch, student_logits):
        return divergences.DIVERGENCES[self.divergence](teacher_logits(module, batch), student_logits,
                                                        response_mask(batch))

    def compute(self, module, batch):
        logits = forward_logits(module.student, batch)
        distil = self.distil(module, batch, logits)
        lm = lm_loss(logits, batch) if self.kd_ratio < 1.0 else torch.zeros((), device=logits.device)
        loss = (1 - self.kd_ratio) * lm + self.kd_ratio * distil
        return loss, {"distil": distil.detach(), "lm": lm.detach()}


class SeqKD(Objective):
    """Sequence-level KD: the student is fine-tuned on the teacher's sampled responses to the training prompts
    (Kim & Rush). The pipeline swaps the training data for teacher samples (`train_data`); the loss is the LM
    loss ("lm", default) or forward KL on those samples ("fkl", how DistiLLM's seqkd script is typed)."""

    needs_teacher = True
    train_data = "teacher-samples"

    def __init__(self, loss: str = "lm"):
        super().__init__()
        if loss not in ("lm", "fkl"):
            raise BenchError(f"SeqKD loss must be 'lm' or 'fkl', got {loss!r}")
        self.loss = loss

    def compute(self, module, batch):
        logits = forward_logits(module.student, batch)
        if self.loss == "lm":
            loss = lm_loss(logits, batch)
        else:
            loss = divergences.forward_kl(teacher_logits(module, batch), logits, response_mask(batch))
        return loss, {self.loss: loss.detach()}


class MixedPolicyKD(Objective):
    """Divergence on student-generated responses with probability `student_ratio`, else on ground truth.

    ImitKD = fkl with student_ratio 1.0 (DistiLLM's `mixed-fkl`, mixed-alpha 1.0); GKD = jsd(0.9) with
    student_ratio 0.5 (`mixed-jsd`, mixed-alpha 0.5). Samples are fresh, as the ImitKD/GKD papers define
    on-policy data (DistiLLM's re-implementation passes them through its replay buffer first).
    Students start from an SFT-initialised model: sampling from an untrained model gives noise.
    """

    default_student_init = "sft-init"

    def __init__(self, divergence: str = "fkl", student_ratio: float = 1.0, jsd_lam: float = 0.9):
        super().__init__()
        if divergence not in divergences.DIVERGENCES:
            raise BenchError(f"unknown divergence {divergence!r}; known: {', '.join(divergences.DIVERGENCES)}")
        self.divergence, self.jsd_lam = divergence, float(jsd_lam)
        self.student_ratio = check_ratio("student_ratio", student_ratio)

    def loss_on(self, module, batch):
        logits = forward_logits(module.student, batch)
        kwargs = {"lam": self.jsd_lam} if self.divergence in ("jsd", "skl") else {}
        return divergences.DIVERGENCES[self.divergence](teacher_logits(module, batch), logits,
                                                        response_mask(batch), **kwargs)

    def compute(self, module, batch):
        on_policy = bool(torch.rand(()) < self.student_ratio) if self.student_ratio < 1.0 else True
        if on_policy:
            batch = student_batch(module, batch)
        loss = self.loss_on(module, batch)
        return loss, {"distil": loss.detach(), "on_policy": float(on_policy)}


class ImitKD(MixedPolicyKD):
    """ImitKD: forward KL on the student's own samples every step (DistiLLM's `mixed-fkl`, mixed-alpha 1.0)."""

    def __init__(self, divergence: str = "fkl", student_ratio: float = 1.0):
        super().__init__(divergence=divergence, student_ratio=student_ratio)


class GKD(MixedPolicyKD):
    """GKD: generalised JSD(0.9) with half of the batches on-policy (DistiLLM's `mixed-jsd`, mixed-alpha 0.5)."""

    def __init__(self, divergence: str = "jsd", student_ratio: float = 0.5, jsd_lam: float = 0.9):
        super().__init__(divergence=divergence, student_ratio=student_ratio, jsd_lam=jsd_lam)
