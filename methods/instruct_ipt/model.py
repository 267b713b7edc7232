"""Instruct-IPT: IPT with low-rank, task-specific biases on its task-sensitive weights, and an instruction path.

For every selected weight W (found by :mod:`methods.instruct_ipt.selection`) and task t, a bias
dW_t = B_t A_t with B_t [out, r] zero-initialised and A_t [r, in] random (so training starts at the plain
backbone), scaled by ``alpha / r``. A forward for task weights p (one-hot for a known task, the text head's
softmax for an instruction) uses W + sum_t p_t dW_t, through ``torch.func.functional_call``, so the IPT backbone
module is unchanged and a state dict of its own keeps the official layout. The biases can be merged into W for
deployment: each task then costs exactly one dense IPT.

The instruction path maps text to task weights: a text encoder (hashed n-grams at smoke, CLIP at paper scale)
and a linear head trained with cross-entropy on training phrasings. The head/tail/query of IPT are picked by the
most likely task; the weight biases are mixed by the probabilities (a confident instruction is the one-hot case).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call


class LowRankTaskBiases(nn.Module):
    """Per task and per selected weight: factors ``B`` [out, r] (zeros) and ``A`` [r, in] (Kaiming-uniform)."""

    def __init__(self, shapes: dict[str, tuple[int, int]], n_tasks: int, rank: int, alpha: float | None = None):
        super().__init__()
        self.names, self.rank, self.n_tasks = list(shapes), int(rank), int(n_tasks)
        self.scale = (float(alpha) if alpha is not None else float(rank)) / float(rank)
        self.A = nn.ParameterList()
        self.B = nn.ParameterList()
        for name in self.names:
            out_f, in_f = shapes[name]
            a = torch.empty(n_tasks, rank, in_f)
            for t in range(n_tasks):
                nn.init.kaiming_uniform_(a[t], a=5 ** 0.5)
            self.A.append(nn.Parameter(a))
            self.B.append(nn.Parameter(torch.zeros(n_tasks, out_f, rank)))

    def deltas(self, task_weights: torch.Tensor) -> dict[str, torch.Tensor]:
        """{weight name: sum_t p_t B_t A_t * scale} for task weights p [n_tasks]."""
        out = {}
        for name, a, b in zip(self.names, self.A, self.B, strict=True):
            out[name] = torch.einsum("t,tor,tri->oi", task_weights, b, a) * self.scale
        return out

    def task_delta(self, name: str, task: int) -> torch.Tensor:
        i = self.names.index(name)
        return (self.B[i][task] @ self.A[i][task]) * self.scale


class InstructIPT(nn.Module):
    def __init__(self, backbone: nn.Module, selected: dict[str, tuple[int, int]], n_tasks: int, rank: int,
                 alpha: float | None = None, text_dim: int = 256):
        super().__init__()
        self.backbone = backbone
        self.biases = LowRankTaskBiases(selected, n_tasks, rank, alpha)
        self.text_head = nn.Linear(text_dim, n_tasks)  # instruction embedding -> task logits
        self.n_tasks = n_tasks

    def modulated(self, task_weights: torch.Tensor) -> dict[str, torch.Tensor]:
        params = dict(self.backbone.named_parameters())
        return {name: params[name] + delta for name, delta in self.biases.deltas(task_weights).items()}

    def forward(self, x: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        """``task``: an index (known task) or a probability vector over tasks (from an instruction)."""
        if isinstance(task, int):
            weights = torch.nn.functional.one_hot(torch.tensor(task, device=x.device), self.n_tasks).float()
            index = task
        else:
            weights, index = task, int(task.argmax())
        return functional_call(self.backbone, self.modulated(weights), (x, index))

    def task_probs(self, text_embedding: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.text_head(text_embedding), dim=-1)

    def forward_tiles(self, x: torch.Tensor, task: int | torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self.backbone.forward_tiles(x, forward=lambda t: self(t, task), **kwargs)

    def overhead_params(self) -> int:
        """Parameters the task biases add to the backbone (the text head is counted separately)."""
        return sum(p.numel() for p in self.biases.parameters())

    @torch.no_grad()
    def merged_backbone(self, task: int) -> nn.Module:
        """A plain IPT with task ``task``'s biases merged into its weights (deployment form)."""
        import copy

        merged = copy.deepcopy(self.backbone)
        params = dict(merged.named_parameters())
        for name in self.biases.names:
            params[name].add_(self.biases.task_delta(name, task))
        return merged
