"""MiniLLM (Gu et al., ICLR 2024): sequence-level reverse KL, KL(q_theta || p), minimised by policy gradient.

For a response y sampled from the student q, with per-token reward r_t = log p(y_t | y_<t) - log q(y_t | y_<t),
the gradient of the sequence-level reverse KL is  -E_q[ sum_t (sum_{t' >= t} r_t') grad log q(y_t | y_<t) ].
MiniLLM splits it (our restatement of the paper's section 2.2):
* single-step part: the t' = t term, replaced by its exact expectation over the vocabulary, i.e. the gradient
  of  sum_t KL(q(. | y_<t) || p(. | y_<t))  (lower variance);
* long-term part:  -sum_t R_{t+1} grad log q(y_t | y_<t)  with R_{t+1} = sum_{t' > t} r_t', optionally
  length-normalised (divided by the number of future tokens) and scaled (reward scaling);
* teacher-mixed sampling: rollouts are drawn from (1 - alpha) q + alpha p (alpha = 0.2) and every token's
  term is weighted by the (detached) single-token importance ratio q(y_t) / mix(y_t);
* an optional LM loss (MiniLLM's L_PT uses a plain-text corpus that is not part of this harness's data:
  `lm_coef` > 0 puts an LM loss on the instruction data instead).
`surrogate` is the differentiable loss whose gradient is that estimator; with alpha = 0, no length
normalisation and scale 1 its expected gradient equals the exact gradient of the sequence reverse KL (a test
checks this by enumerating every sequence of a 3-token vocabulary).

Deviation from the released trainer (documented, configurable where it matters): one optimizer step per
rollout batch (PPO with 1 inner epoch, so the clipped ratio is 1 and clipping has no effect; MiniLLM uses
4 inner epochs over 256 rollouts) and no value network (MiniLLM has none either).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from baselines.llm_kd.data import forward_logits, response_mask, sequences_batch, split_batch
from baselines.llm_kd.module import DistillModule, Objective
from baselines.llm_kd.objectives import check_ratio, lm_loss
from baselines.llm_kd.sampling import sample

REDUCTIONS = ("token_mean", "sequence_sum")


def future_reward(rewards: torch.Tensor, mask: torch.Tensor, length_norm: bool) -> torch.Tensor:
    """R_{t+1} = sum_{t' > t} r_t' over the masked positions of each row (divided by their count if
    length_norm; 0 where no future token exists)."""
    rewards = rewards * mask
    suffix = rewards.flip(-1).cumsum(-1).flip(-1)          # sum_{t' >= t}
    future = suffix - rewards                               # sum_{t' > t}
    if length_norm:
        count = mask.flip(-1).cumsum(-1).flip(-1) - mask    # number of masked t' > t
        future = torch.where(count > 0, future / count.clamp_min(1), torch.zeros_like(future))
    return future * mask


def surrogate(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor,
              sampler_logprobs: torch.Tensor | None = None, length_norm: bool = True, reward_scale: float = 1.0,
              reduction: str = "token_mean") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """MiniLLM's policy-gradient loss for sampled responses.

    student_logits/teacher_logits: [B, T, V] at the positions that predict `tokens` [B, T]; mask [B, T] marks
    generated tokens; sampler_logprobs [B, T]: log of the sampling distribution at each drawn token (None:
    sampled from the student itself, weight 1).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    mask = mask.float()
    logq = F.log_softmax(student_logits.float(), -1)
    logp = F.log_softmax(teacher_logits.float(), -1)
    logq_tok = logq.gather(-1, tokens[..., None]).squeeze(-1)
    logp_tok = logp.gather(-1, tokens[..., None]).squeeze(-1)
    if sampler_logprobs is None:
        weight = torch.ones_like(logq_tok)
    else:
        weight = (logq_tok.detach() - sampler_logprobs).exp()
    rewards = reward_scale * (logp_tok - logq_tok).detach()
    future = future_reward(rewards, mask, length_norm)
    single = (logq.exp() * (logq - logp)).sum(-1)                 # KL(q || p) at each position
    per_token = weight * (single - future * logq_tok)             # the long-term term uses R as a constant
    total = (per_token * mask).sum()
    loss = total / mask.sum().clamp_min(1.0) if reduction == "token_mean" else total / mask.shape[0]
    stats = {"reward": (rewards * mask).sum() / mask.sum().clamp_min(1.0),
             "single_kl": (single.detach() * mask).sum() / mask.sum().clamp_min(1.0)}
    return loss, stats


class MiniLLM(Objective):
    """Defaults from MiniLLM's GPT-2 scripts: teacher-mix alpha 0.2, length normalisation on, reward scaling
    0.5 (our reading of `--reward-scaling 0.5`), LM coefficient 0 (see the module docstring), SFT-init student."""

    default_student_init = "sft-init"

    def __init__(self, mix_alpha: float = 0.2, length_norm: bool = True, reward_scale: float = 0.5,
                 lm_coef: float = 0.0):
        super().__init__()
        self.mix_alpha = check_ratio("mix_alpha", mix_alpha)
        self.length_norm, self.reward_scale, self.lm_coef = bool(length_norm), float(reward_scale), float(lm_coef)

    def rollout(self, module: DistillModule,
                batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        prompts, _ = split_batch(batch)
        gen = module.generation
        budgets = [min(gen.max_new_tokens, gen.max_total_tokens - len(p)) for p in prompts]
        out = sample(module.student, prompts, budgets, module.tokens.eos_id, module.tokens.pad_id,
                     temperature=gen.temperature, top_k=gen.top_k, top_p=gen.top_p,
                     mix_model=module.teacher if self.mix_alpha > 0 else None, mix_alpha=self.mix_alpha,
                     return_logprobs=True)
        responses = [r if r else [module.tokens.eos_id] for r in out.responses]
        logps = [lp if lp else [0.0] for lp in out.sampler_logprobs]
        rollouts = sequences_batch(prompts, responses, module.tokens.pad_id, device=batch["input_ids"].device)
        sampler = torch.zeros(rollouts["labels"].shape, dtype=torch.float32, device=batch["input_ids"].device)
        for row, (p, lp) in enumerate(zip(prompts, logps)):
            sampler[row, len(p) - 1: len(p) - 1 + len(lp)] = torch.tensor(lp)
        return rollouts, sampler

    def compute(self, module: DistillModule, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any]]:
        rollouts, sampler = self.rollout(module, batch)
        logits = forward_logits(module.student, rollouts)
        with torch.no_grad():
            t_logits = forward_logits(module.teacher, rollouts)
        mask = response_mask(rollouts)
        tokens = rollouts["labels"].clamp_min(0)
        loss, stats = surrogate(logits, t_logits, tokens, mask, sampler if self.mix_alpha > 0 else None,
                                self.length_norm, self.reward_scale)
        extras = {k: v.detach() for k, v in stats.items()}
        if self.lm_coef > 0:
            lm = lm_loss(forward_logits(module.student, batch), batch)
            loss = loss + self.lm_coef * lm
            extras["lm"] = lm.detach()
        return loss, extras
