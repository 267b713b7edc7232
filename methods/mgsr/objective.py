"""MGSR's training objective: L = L_SFT + L_DAC-KL + L_span (unit weights, papers-other 3.2), with the
distillation terms computed on SCRG-revised student sequences or on ground truth.

Per step:
1. L_SFT: LM loss on the ground-truth responses.
2. Distillation data: with `generation`
   * "mixed" (default [I]): with probability `student_ratio` the batch's prompts get student samples revised by
     SCRG, otherwise the ground-truth responses are used (GKD-style mixing; the paper combines SCRG with
     on-policy or with DistiLLM's off-policy generation and does not give a ratio);
   * "on-policy": SCRG-revised student samples at every step;
   * "adaptive": DistiLLM's adaptive off-policy schedule (replay buffer of SCRG-revised samples), the
     combination the ICLR version calls the better cost/quality point; with DistiLLM's init_threshold 0 it
     only starts generating once the validation loss worsens.
3. L_DAC-KL (dac_kl.py) and L_span (span.py) between teacher and student on that data.
`scrg_corrections=0`, `dac_weight=0`, `span_weight=0` or `token_loss="fkl"` switch components off (for
ablations: the composition of the paper's Table 2 rows is not known).
"""
from __future__ import annotations

from typing import Any

import torch

from baselines.llm_kd import divergences
from baselines.llm_kd.data import forward_logits, response_mask, sequences_batch, split_batch
from baselines.llm_kd.distillm import AdaptiveOffPolicy, choose_source
from baselines.llm_kd.module import DistillModule, Objective
from baselines.llm_kd.objectives import check_ratio, lm_loss, student_batch, teacher_logits
from bench.registry import BenchError
from methods.mgsr.dac_kl import DACKL
from methods.mgsr.scrg import revise
from methods.mgsr.span import parse_chunker, span_loss, span_pairs

GENERATION_MODES = ("mixed", "on-policy", "adaptive")
TOKEN_LOSSES = ("dac-kl", "fkl")


class MGSR(Objective):
    """Defaults: unit weights (paper), one SCRG correction per sequence (paper), mixed generation with
    student_ratio 0.5 [I], SFT-initialised student [I: MGSR's pairs and protocol are DistiLLM's, whose
    on-policy students start from an SFT init]. `boundary` is span.boundary_table(tokenizer, chunker)."""

    default_student_init = "sft-init"

    def __init__(self, boundary: torch.Tensor, generation: str = "mixed", student_ratio: float = 0.5,
                 scrg_corrections: int = 1, scrg_divergence: str = "fkl", teacher_token: str = "sample",
                 token_loss: str = "dac-kl", dac: dict[str, Any] | None = None, chunker: str = "phrase",
                 span_distance: str = "l2sq", sft_weight: float = 1.0, dac_weight: float = 1.0,
                 span_weight: float = 1.0, capacity: int = 1000, width: int = 512, pad_id: int = 0,
                 init_threshold: float = 0.0, loss_eps: float = 0.1):
        super().__init__()
        if generation not in GENERATION_MODES:
            raise BenchError(f"MGSR generation must be one of {', '.join(GENERATION_MODES)}, got {generation!r}")
        if token_loss not in TOKEN_LOSSES:
            raise BenchError(f"MGSR token_loss must be one of {', '.join(TOKEN_LOSSES)}, got {token_loss!r}")
        parse_chunker(chunker)
        self.generation, self.student_ratio = generation, check_ratio("student_ratio", student_ratio)
        self.scrg = dict(corrections=int(scrg_corrections), divergence=scrg_divergence, teacher_token=teacher_token)
        self.token_loss, self.chunker, self.span_distance = token_loss, chunker, span_distance
        self.weights = (float(sft_weight), float(dac_weight), float(span_weight))
        self.dac = DACKL(**(dac or {})) if token_loss == "dac-kl" else None
        self.register_buffer("boundary", boundary.bool().clone())
        self.schedule = (AdaptiveOffPolicy(capacity, width, pad_id, init_threshold, loss_eps)
                         if generation == "adaptive" else None)

    def validation_hooks(self):
        if self.schedule is None:
            return []
        return [("adaptive-threshold", lambda module, loss: self.schedule.on_validation(loss))]

    def revised_batch(self, module: DistillModule, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Student samples for the batch's prompts, revised by SCRG."""
        fresh = student_batch(module, batch)
        if self.scrg["corrections"] == 0:
            return fresh
        prompts, responses = split_batch(fresh)
        gen = module.generation
        budgets = [min(gen.max_new_tokens, gen.max_total_tokens - len(p)) for p in prompts]
        out = revise(module.student, module.teacher, prompts, responses, budgets, module.tokens.eos_id,
                     module.tokens.pad_id, temperature=gen.temperature, top_k=gen.top_k, top_p=gen.top_p,
                     **self.scrg)
        return sequences_batch(prompts, out.responses, module.tokens.pad_id, device=batch["input_ids"].device)

    def distillation_batch(self, module: DistillModule,
                           batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
        if self.generation == "on-policy":
            return self.revised_batch(module, batch), "student"
        if self.generation == "mixed":
            if float(torch.rand(())) < self.student_ratio:
                return self.revised_batch(module, batch), "student"
            return batch, "ground-truth"
        schedule = self.schedule
        source = choose_source(float(torch.rand(())), float(schedule.threshold), module.progress,
                               len(schedule.buffer), schedule.buffer.capacity, schedule.replay_ratio)
        if source == "fresh":
            revised = self.revised_batch(module, batch)
            schedule.buffer.push(*split_batch(revised))
            return revised, "student"
        if source == "replay":
            prompts, responses = schedule.buffer.sample(batch["input_ids"].shape[0])
            replayed = sequences_batch(prompts, responses, module.tokens.pad_id, device=batch["input_ids"].device)
            return replayed, "student"
        return batch, "ground-truth"

    def compute(self, module, batch):
        w_sft, w_dac, w_span = self.weights
        logits = forward_logits(module.student, batch)
        sft = lm_loss(logits, batch)
        dbatch, source = self.distillation_batch(module, batch)
        s_logits = logits if dbatch is batch else forward_logits(module.student, dbatch)
        t_logits = teacher_logits(module, dbatch)
        mask = response_mask(dbatch)
        if self.dac is not None:
            token, stats = self.dac(t_logits, s_logits, mask)
        else:
            token, stats = divergences.forward_kl(t_logits, s_logits, mask, exact=True), {}
        pairs = span_pairs(dbatch["labels"], mask, self.boundary, self.chunker)
        span = span_loss(t_logits, s_logits, pairs, self.span_distance)
        loss = w_sft * sft + w_dac * token + w_span * span
        extras = {"sft": sft.detach(), "token": token.detach(), "span": span.detach(),
                  "student_data": float(source == "student"), **stats}
        return loss, extras
