"""SCRG, MGSR's sequence-level revision: the teacher corrects the student's most divergent token and the student
re-generates the rest (papers-other 3.3 (a) [S]).

For a student-sampled response y^s: one teacher and one student forward pass give p_t(. | x, y^s_<i) and
p_s(. | x, y^s_<i) at every response position i, and a teacher token y^t_i (sampled from p_t, or its argmax
with `teacher_token="argmax"`). Positions with y^s_i != y^t_i are candidates; the candidate with the largest
divergence D(p_t, p_s) is the error position j. The response becomes y^s_<j + y^t_j + (a fresh student
continuation of it). Open details, ours [I], configurable:

* D: forward KL(p_t || p_s) by default ("fkl"; the reviews say "KL" without a direction), or "rkl", "tvd", "jsd";
* `corrections` rounds (the paper's SCRG frequency, 1 by default); each later round only looks after the
  previous correction, so earlier revisions are kept;
* a row without any candidate keeps its response; a correction to EOS ends the response there;
* the continuation is sampled with the training-time generation settings (T = 1) within the row's budget.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from baselines.llm_kd.data import forward_logits, sequences_batch
from baselines.llm_kd.sampling import sample
from bench.registry import BenchError

DIVERGENCES = ("fkl", "rkl", "tvd", "jsd")


def position_divergence(teacher_logits: torch.Tensor, student_logits: torch.Tensor, kind: str = "fkl") -> torch.Tensor:
    """[..., V] x 2 -> [...]: the divergence between the two next-token distributions at each position."""
    logp, logq = F.log_softmax(teacher_logits.float(), -1), F.log_softmax(student_logits.float(), -1)
    p, q = logp.exp(), logq.exp()
    if kind == "fkl":
        return (p * (logp - logq)).sum(-1)
    if kind == "rkl":
        return (q * (logq - logp)).sum(-1)
    if kind == "tvd":
        return 0.5 * (p - q).abs().sum(-1)
    if kind == "jsd":
        logm = torch.log((p + q) / 2)
        return 0.5 * (p * (logp - logm)).sum(-1) + 0.5 * (q * (logq - logm)).sum(-1)
    raise BenchError(f"SCRG divergence must be one of {', '.join(DIVERGENCES)}, got {kind!r}")


def select_error_positions(divergence: torch.Tensor, student_tokens: torch.Tensor, teacher_tokens: torch.Tensor,
                           allowed: torch.Tensor) -> torch.Tensor:
    """Per row, the allowed position where the tokens differ and the divergence is largest; -1 if none.

    All inputs are [B, T]; `allowed` marks the positions that may be corrected.
    """
    candidates = allowed.bool() & (student_tokens != teacher_tokens)
    scored = torch.where(candidates, divergence, torch.full_like(divergence, float("-inf")))
    best = scored.argmax(-1)
    return torch.where(candidates.any(-1), best, torch.full_like(best, -1))


@dataclass
class Revision:
    responses: list[list[int]]
    corrected: list[list[int]]    # per row, the response indices that were corrected


@torch.no_grad()
def revise(student: Any, teacher: Any, prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]],
           budgets: Sequence[int], eos_id: int, pad_id: int, corrections: int = 1, divergence: str = "fkl",
           teacher_token: str = "sample", temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           generator: torch.Generator | None = None) -> Revision:
    """Apply `corrections` rounds of SCRG to student responses (token lists, EOS included when generated)."""
    if teacher_token not in ("sample", "argmax"):
        raise BenchError(f"SCRG teacher_token must be 'sample' or 'argmax', got {teacher_token!r}")
    if corrections < 0:
        raise BenchError(f"SCRG corrections must be >= 0, got {corrections}")
    responses = [list(r) for r in responses]
    corrected: list[list[int]] = [[] for _ in responses]
    start = [0] * len(responses)            # first response index a round may correct
    device = next(student.parameters()).device
    for _ in range(corrections):
        batch = sequences_batch(prompts, responses, pad_id, device=device)
        was = (student.training, teacher.training)
        student.eval(), teacher.eval()
        t_logits, s_logits = forward_logits(teacher, batch), forward_logits(student, batch)
        student.train(was[0]), teacher.train(was[1])
        labels = batch["labels"]
        allowed = labels != -100
        for row, p in enumerate(prompts):   # only positions at or after this row's start index
            allowed[row, : len(p) - 1 + start[row]] = False
        if teacher_token == "argmax":
            t_tokens = t_logits.argmax(-1)
        else:
            probs = F.softmax(t_logits.float() / max(temperature, 1e-6), -1)
            flat = probs.reshape(-1, probs.shape[-1])
            t_tokens = torch.multinomial(flat, 1, generator=generator).reshape(labels.shape)
        div = position_divergence(t_logits, s_logits, divergence)
        positions = select_error_positions(div, labels, t_tokens, allowed)
        regen_rows, regen_prompts, regen_budgets = [], [], []
        for row, pos in enumerate(positions.tolist()):
            if pos < 0:
                continue
            k = pos - (len(prompts[row]) - 1)          # index in the response
            token = int(t_tokens[row, pos])
            responses[row] = responses[row][:k] + [token]
            corrected[row].append(k)
            start[row] = k + 1
            left = budgets[row] - (k + 1)
            if token != eos_id and left > 0:
                regen_rows.append(row)
                regen_prompts.append(list(prompts[row]) + responses[row])
                regen_budgets.append(left)
        if regen_rows:
            out = sample(student, regen_prompts, regen_budgets, eos_id, pad_id, temperature=temperature,
                         top_k=top_k, top_p=top_p, generator=generator)
            for row, cont in zip(regen_rows, out.responses):
                responses[row] = responses[row] + cont
    return Revision(responses, corrected)
