"""Batched ancestral sampling from a causal LM with a KV cache, for training-time generation (student outputs
for ImitKD/GKD/DistiLLM/MGSR, teacher outputs for SeqKD, teacher-mixed rollouts for MiniLLM).

Rows may have prompts of different lengths (they are left-padded and positions are counted from each row's
first real token, so a row's samples do not depend on the other rows' lengths) and different token budgets.
A row stops at EOS (kept in its response) or when its budget is used. Randomness comes from `generator`
(or torch's global generator, which the shared training loop seeds and checkpoints).

Evaluation does not use this: it goes through lm-eval's Hugging Face `generate` (evaluation.py).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F


@dataclass
class Rollout:
    responses: list[list[int]]
    # per generated token: log q (student/sampler) and log p (mix model) of the chosen token, when asked for
    sampler_logprobs: list[list[float]] | None = None


def _cache_kw(model: Any) -> str:
    """transformers >= 5 calls the KV cache argument `cache`, older versions `past_key_values`."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _cache_of(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Top-k (0: off) then nucleus (1.0: off) filtering, as Hugging Face's warpers; removed entries -> -inf."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop_sorted = cum - sorted_logits.softmax(-1) >= top_p   # keep the smallest set reaching top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


class _Stepper:
    """One model's incremental forward over left-padded rows."""

    def __init__(self, model: Any, ids: torch.Tensor, mask: torch.Tensor):
        self.model, self.kw = model, _cache_kw(model)
        self.mask = mask
        pos = (mask.cumsum(-1) - 1).clamp_min(0)
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        self.cache, self.logits = _cache_of(out), out.logits[:, -1].float()

    def step(self, tokens: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        """Feed one token per row. Finished rows (alive 0) get a masked pad whose position does not advance, so
        no row's positions run past the model's limit while others are still generating."""
        self.mask = torch.cat([self.mask, alive.long()[:, None]], dim=1)
        pos = (self.mask.sum(-1, keepdim=True) - 1).clamp_min(0)
        out = self.model(input_ids=tokens[:, None], attention_mask=self.mask, position_ids=pos,
                         use_cache=True, **{self.kw: self.cache})
        self.cache, self.logits = _cache_of(out), out.logits[:, -1].float()
        return self.logits


@torch.inference_mode()
def sample(model: Any, prompts: Sequence[Sequence[int]], max_new_tokens: int | Sequence[int], eos_id: int,
           pad_id: int, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, greedy: bool = False,
           mix_model: Any = None, mix_alpha: float = 0.0, generator: torch.Generator | None = None,
           return_logprobs: bool = False) -> Rollout:
    """Sample a response for every prompt.

    mix_model/mix_alpha: draw each token from (1 - alpha) q + alpha p, q = `model`, p = `mix_model` (MiniLLM's
    teacher-mixed sampling); with return_logprobs the log-probability of each drawn token under that
    sampling distribution is returned (for importance weights).
    """
    n = len(prompts)
    budgets = [int(max_new_tokens)] * n if isinstance(max_new_tokens, int) else [int(b) for b in max_new_tokens]
    if n == 0:
        return Rollout([], [] if return_logprobs else None)
    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    ids = torch.full((n, width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((n, width), dtype=torch.long, device=device)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(list(p), dtype=torch.long, device=device)
        mask[row, width - len(p):] = 1
    was_training = [m.training for m in (model, mix_model) if m is not None]
    model.eval()
    if mix_model is not None:
        mix_model.eval()
    try:
        steppers = [_Stepper(model, ids, mask)]
        if mix_model is not None and mix_alpha > 0:
            steppers.append(_Stepper(mix_model, ids, mask))
        responses: list[list[int]] = [[] for _ in range(n)]
        logps: list[list[float]] = [[] for _ in range(n)]
        done = torch.tensor([b <= 0 for b in budgets], device=device)
        budget = torch.tensor(budgets, device=device)
        for t in range(max(budgets)):
            if bool(done.all()):
                break
            probs = _next_distribution(steppers, temperature, top_k, top_p, mix_alpha)
            if greedy:
                tokens = probs.argmax(-1)
            else:
                tokens = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
            tokens = torch.where(done, torch.full_like(tokens, pad_id), tokens)
            chosen = probs.gather(-1, tokens[:, None]).squeeze(-1).clamp_min(1e-30).log()
            for row in torch.nonzero(~done).flatten().tolist():
                responses[row].append(int(tokens[row]))
                logps[row].append(float(chosen[row]))
            done = done | (tokens == eos_id) | (budget <= t + 1)
            if bool(done.all()):
                break
            for s in steppers:
                s.step(tokens, ~done)
    finally:
        for m, flag in zip((model, mix_model), was_training):
            if m is not None:
                m.train(flag)
    return Rollout(responses, logps if return_logprobs else None)


def _next_distribution(steppers: list[_Stepper], temperature: float, top_k: int, top_p: float,
                       mix_alpha: float) -> torch.Tensor:
    logits = steppers[0].logits / max(temperature, 1e-6)
    probs = F.softmax(filter_logits(logits, top_k, top_p), dim=-1)
    if len(steppers) > 1:
        mix = F.softmax(filter_logits(steppers[1].logits / max(temperature, 1e-6), top_k, top_p), dim=-1)
        probs = (1 - mix_alpha) * probs + mix_alpha * mix
    return probs
