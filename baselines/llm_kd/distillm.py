"""DistiLLM (Ko et al., ICML 2024): skew KL with adaptive off-policy student generation.

Read in jongwooko/distillm finetune.py / distillm/buffer.py (our own code):
* each step draws r ~ U(0, 1). With the adaptive threshold p and the sampling threshold
  s = p (1 - step / total) ("decreasing", the default replay ratio; "constant": p / 2; "increasing":
  p step / total): if r < s, or r < p while the replay buffer is not full, the batch's responses are freshly
  sampled from the student and pushed into the buffer; else if r < p a batch is drawn from the buffer
  (uniformly, without replacement); otherwise the ground-truth batch is used;
* p starts at init_threshold (0.0 in every released script) and, at each validation, rises by 0.1 (capped at
  1) when the validation LM loss is worse than the reference by at least loss_eps (0.1); the reference is the
  loss before training and moves only when p rises;
* the loss is (1 - kd_ratio) LM + kd_ratio * SKL with skew alpha 0.1: "sfkl" in the GPT-2/OPT scripts
  (`adaptive-sfkl`), "srkl" in the OpenLLaMA ones.
The buffer and the thresholds are tensors registered as buffers so training checkpoints carry them.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from baselines.llm_kd import divergences
from baselines.llm_kd.data import forward_logits, response_mask, sequences_batch, split_batch
from baselines.llm_kd.module import DistillModule, Objective
from baselines.llm_kd.objectives import check_ratio, lm_loss, student_batch, teacher_logits
from bench.registry import BenchError

REPLAY_RATIOS = ("decreasing", "constant", "increasing")


class ReplayBuffer(nn.Module):
    """FIFO buffer of (prompt, response) token rows with a fixed capacity, stored in tensors."""

    def __init__(self, capacity: int, width: int, pad_id: int):
        super().__init__()
        if capacity < 1:
            raise BenchError(f"replay buffer capacity must be >= 1, got {capacity}")
        self.capacity, self.width, self.pad_id = int(capacity), int(width), int(pad_id)
        self.register_buffer("tokens", torch.full((capacity, width), pad_id, dtype=torch.long))
        self.register_buffer("prompt_lens", torch.zeros(capacity, dtype=torch.long))
        self.register_buffer("lengths", torch.zeros(capacity, dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))   # rows held
        self.register_buffer("head", torch.zeros((), dtype=torch.long))    # next row to overwrite

    def __len__(self) -> int:
        return int(self.count)

    def push(self, prompts: list[list[int]], responses: list[list[int]]) -> None:
        for p, r in zip(prompts, responses):
            seq = (list(p) + list(r))[: self.width]
            row = int(self.head)
            self.tokens[row].fill_(self.pad_id)
            self.tokens[row, : len(seq)] = torch.tensor(seq, dtype=torch.long, device=self.tokens.device)
            self.prompt_lens[row], self.lengths[row] = len(p), len(seq)
            self.head.fill_((row + 1) % self.capacity)
            self.count.fill_(min(int(self.count) + 1, self.capacity))

    def sample(self, n: int) -> tuple[list[list[int]], list[list[int]]]:
        held = int(self.count)
        if held == 0:
            raise BenchError("cannot sample from an empty replay buffer")
        rows = torch.randperm(held)[: min(n, held)].tolist()
        prompts, responses = [], []
        for row in rows:
            p, n_tok = int(self.prompt_lens[row]), int(self.lengths[row])
            seq = self.tokens[row, :n_tok].tolist()
            prompts.append(seq[:p])
            responses.append(seq[p:])
        return prompts, responses


def choose_source(r: float, threshold: float, progress: float, buffered: int, capacity: int,
                  replay_ratio: str = "decreasing") -> str:
    """'fresh' (sample the student and store it), 'replay' (draw from the buffer) or 'ground-truth'."""
    if replay_ratio == "decreasing":
        samp = threshold * (1.0 - progress)
    elif replay_ratio == "constant":
        samp = threshold * 0.5
    elif replay_ratio == "increasing":
        samp = threshold * progress
    else:
        raise BenchError(f"replay_ratio must be one of {', '.join(REPLAY_RATIOS)}, got {replay_ratio!r}")
    if r < samp or (r < threshold and buffered < capacity):
        return "fresh"
    if r < threshold:
        return "replay"
    return "ground-truth"


class AdaptiveOffPolicy(nn.Module):
    """DistiLLM's data-source scheduler: threshold, its validation rule and the replay buffer."""

    def __init__(self, capacity: int = 1000, width: int = 512, pad_id: int = 0, init_threshold: float = 0.0,
                 loss_eps: float = 0.1, threshold_step: float = 0.1, replay_ratio: str = "decreasing"):
        super().__init__()
        if replay_ratio not in REPLAY_RATIOS:
            raise BenchError(f"replay_ratio must be one of {', '.join(REPLAY_RATIOS)}, got {replay_ratio!r}")
        self.buffer = ReplayBuffer(capacity, width, pad_id)
        self.loss_eps, self.threshold_step, self.replay_ratio = float(loss_eps), float(threshold_step), replay_ratio
        self.register_buffer("threshold", torch.tensor(check_ratio("init_threshold", init_threshold),
                                                       dtype=torch.float64))
        self.register_buffer("reference_loss", torch.tensor(math.nan, dtype=torch.float64))

    def on_validation(self, valid_loss: float) -> None:
        if math.isnan(float(self.reference_loss)):
            self.reference_loss.fill_(valid_loss)   # the loss before training (DistiLLM evaluates at step 0)
            return
        if valid_loss >= float(self.reference_loss) + self.loss_eps:
            self.threshold.fill_(min(float(self.threshold) + self.threshold_step, 1.0))
            self.reference_loss.fill_(valid_loss)

    def batch(self, module: DistillModule, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
        r = float(torch.rand(()))
        source = choose_source(r, float(self.threshold), module.progress, len(self.buffer), self.buffer.capacity,
                               self.replay_ratio)
        if source == "fresh":
            fresh = student_batch(module, batch)
            self.buffer.push(*split_batch(fresh))
            return fresh, source
        if source == "replay":
            prompts, responses = self.buffer.sample(batch["input_ids"].shape[0])
            return sequences_batch(prompts, responses, module.tokens.pad_id, device=batch["input_ids"].device), source
        return batch, source


class DistiLLM(Objective):
    """(1 - kd_ratio) LM + kd_ratio * skew KL, on batches chosen by AdaptiveOffPolicy.

    Defaults: skew "sfkl" with alpha 0.1 and kd_ratio 1.0 (GPT-2 scripts); capacity 1000, init_threshold 0,
    loss_eps 0.1 (every released script). Starts from an SFT-initialised student (DistiLLM README).
    """

    default_student_init = "sft-init"

    def __init__(self, skew: str = "sfkl", alpha: float = 0.1, kd_ratio: float = 1.0, capacity: int = 1000,
                 width: int = 512, pad_id: int = 0, init_threshold: float = 0.0, loss_eps: float = 0.1,
                 replay_ratio: str = "decreasing"):
        super().__init__()
        if skew not in ("sfkl", "srkl"):
            raise BenchError(f"DistiLLM skew must be 'sfkl' or 'srkl', got {skew!r}")
        self.skew, self.alpha = skew, check_ratio("alpha", alpha)
        self.kd_ratio = check_ratio("kd_ratio", kd_ratio)
        self.schedule = AdaptiveOffPolicy(capacity, width, pad_id, init_threshold, loss_eps,
                                          replay_ratio=replay_ratio)

    def validation_hooks(self):
        return [("adaptive-threshold", lambda module, loss: self.schedule.on_validation(loss))]

    def compute(self, module, batch):
        batch, source = self.schedule.batch(module, batch)
        logits = forward_logits(module.student, batch)
        fn = divergences.skew_forward_kl if self.skew == "sfkl" else divergences.skew_reverse_kl
        distil = fn(teacher_logits(module, batch), logits, response_mask(batch), alpha=self.alpha)
        lm = lm_loss(logits, batch) if self.kd_ratio < 1.0 else torch.zeros((), device=logits.device)
        loss = (1 - self.kd_ratio) * lm + self.kd_ratio * distil
        return loss, {"distil": distil.detach(), "threshold": float(self.schedule.threshold),
                      "student_data": float(source != "ground-truth")}
