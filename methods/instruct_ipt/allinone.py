"""All-in-one restoration data, training and evaluation shared by Instruct-IPT and its baselines.

Tasks (the paper's five, denoising at three levels): each a degradation of bench.data.smoke (smoke scale) or a
test set in its official layout (small/paper scale). Training is synchronous over tasks: every step draws the
same number of patches from every task. Task-conditioned models (IPT: one head/tail/query per task, Instruct-IPT)
run one forward per task; blind models (AirNet, PromptIR) run all tasks in one batch. Every model sees the same
patches in the same order for a given seed, the same optimiser (Adam), schedule and step count.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Task:
    name: str
    kind: str          # bench.data.smoke degradation kind
    level: float       # its level at smoke scale
    setting: tuple[tuple[str, Any], ...]  # the metric record's setting

    @property
    def setting_dict(self) -> dict[str, Any]:
        return dict(self.setting)


# Smoke levels: noise at the papers' sigmas; the others chosen so the degraded photos are clearly damaged but
# restorable (the papers' rain/haze/snow generators differ: bench/data/smoke.py documents ours).
TASKS: tuple[Task, ...] = (
    Task("denoise-15", "noise", 15, (("task", "denoise"), ("noise_sigma", 15))),
    Task("denoise-25", "noise", 25, (("task", "denoise"), ("noise_sigma", 25))),
    Task("denoise-50", "noise", 50, (("task", "denoise"), ("noise_sigma", 50))),
    Task("deblur", "blur", 1.5, (("task", "deblur"),)),
    Task("derain", "rain", 0.004, (("task", "derain"),)),
    Task("dehaze", "haze", 1.0, (("task", "dehaze"),)),
    Task("desnow", "snow", 0.006, (("task", "desnow"),)),
)
TASK_NAMES = tuple(t.name for t in TASKS)


# ------------------------------------------------------------------------------------------------ smoke data
def smoke_pool(split: str, size: int, variants: int, seed_base: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{task: (clean [N,3,S,S], degraded [N,3,S,S])} in [0,1], ``variants`` seeded degradations per photo."""
    from bench.data.smoke import degrade, image_seed, photos

    clean = photos(split, size)
    pool = {}
    for ti, task in enumerate(TASKS):
        cs, ds = [], []
        for v in range(variants):
            for i, img in enumerate(clean):
                cs.append(img)
                ds.append(degrade(img, task.kind, task.level, image_seed(seed_base + 1000 * ti + v, i)))
        to_t = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() / 255.0
        pool[task.name] = (to_t(cs), to_t(ds))
    return pool


class PatchSampler:
    """Random ``patch`` crops (with flips) of a pool, the same stream for every model at a given seed."""

    def __init__(self, pool: dict[str, tuple[torch.Tensor, torch.Tensor]], patch: int, per_task: int, seed: int):
        self.pool, self.patch, self.per_task = pool, patch, per_task
        self.gen = torch.Generator().manual_seed(seed)

    def _crop(self, clean: torch.Tensor, deg: torch.Tensor, n: int):
        size = clean.shape[-1]
        idx = torch.randint(0, clean.shape[0], (n,), generator=self.gen)
        ys = torch.randint(0, size - self.patch + 1, (n,), generator=self.gen)
        xs = torch.randint(0, size - self.patch + 1, (n,), generator=self.gen)
        ys2 = torch.randint(0, size - self.patch + 1, (n,), generator=self.gen)
        xs2 = torch.randint(0, size - self.patch + 1, (n,), generator=self.gen)
        flips = torch.randint(0, 2, (n, 2), generator=self.gen)
        c, d, k = [], [], []
        for j in range(n):
            sl = (slice(None), slice(int(ys[j]), int(ys[j]) + self.patch), slice(int(xs[j]), int(xs[j]) + self.patch))
            sl2 = (slice(None), slice(int(ys2[j]), int(ys2[j]) + self.patch),
                   slice(int(xs2[j]), int(xs2[j]) + self.patch))
            pair = [clean[idx[j]][sl], deg[idx[j]][sl], deg[idx[j]][sl2]]
            if flips[j, 0]:
                pair = [p.flip(-1) for p in pair]
            if flips[j, 1]:
                pair = [p.flip(-2) for p in pair]
            c.append(pair[0])
            d.append(pair[1])
            k.append(pair[2])  # a second view of the same degraded image (AirNet's contrastive key)
        return torch.stack(c), torch.stack(d), torch.stack(k)

    def batch(self, tasks: tuple[str, ...] = TASK_NAMES) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        return {t: self._crop(*self.pool[t], self.per_task) for t in tasks}


# --------------------------------------------------------------------------------------------------- training
def lr_at(step: int, total: int, lr: float, warmup: int, min_lr: float) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))


def batch_loss(kind: str, model: torch.nn.Module, batch: dict[str, tuple[torch.Tensor, ...]],
               contrastive_weight: float = 0.0) -> torch.Tensor:
    """L1 over all tasks' patches (mean), plus AirNet's InfoNCE term."""
    device = next(model.parameters()).device
    batch = {t: tuple(x.to(device) for x in b) for t, b in batch.items()}
    if kind == "task":  # one forward per task: the model is told the task
        losses = [F.l1_loss(model(d, TASK_NAMES.index(t)), c) for t, (c, d, _) in batch.items()]
        return torch.stack(losses).mean()
    clean = torch.cat([b[0] for b in batch.values()])
    deg = torch.cat([b[1] for b in batch.values()])
    if kind == "airnet":
        key = torch.cat([b[2] for b in batch.values()])
        restored, logits = model(deg, key)
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=device)
        return F.l1_loss(restored, clean) + contrastive_weight * F.cross_entropy(logits, target)
    return F.l1_loss(model(deg), clean)


def train_steps(model: torch.nn.Module, params: list[torch.nn.Parameter], sampler: PatchSampler, kind: str,
                steps: range, total: int, cfg: dict[str, Any], optimizer: torch.optim.Optimizer | None = None,
                tasks: tuple[str, ...] = TASK_NAMES, log: Callable[[str], None] | None = None):
    """Run ``steps`` (indices into a schedule of ``total`` steps); returns (optimizer, last loss)."""
    optimizer = optimizer or torch.optim.Adam(params, lr=cfg["lr"], betas=(0.9, 0.999))
    model.train()
    loss_value = float("nan")
    for step in steps:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, total, cfg["lr"], cfg["warmup_steps"], cfg["min_lr"])
        loss = batch_loss(kind, model, sampler.batch(tasks), cfg.get("contrastive_weight", 0.0))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.get("grad_clip"):
            torch.nn.utils.clip_grad_norm_(params, cfg["grad_clip"])
        optimizer.step()
        loss_value = float(loss.detach())
        if log and (step + 1) % max(1, total // 4) == 0:
            log(f"    step {step + 1}/{total} loss {loss_value:.4f}")
    return optimizer, loss_value


# ------------------------------------------------------------------------------------------------- evaluation
def pad_to_multiple(fn: Callable[[torch.Tensor], torch.Tensor], multiple: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Run ``fn`` on the input reflect-padded to a multiple of ``multiple`` and crop back (PromptIR's three
    downsamplings need sides divisible by 8; its own test code crops the image to a multiple of 16 instead)."""
    def run(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % multiple, (-w) % multiple
        if not ph and not pw:
            return fn(x)
        return fn(F.pad(x, (0, pw, 0, ph), mode="reflect"))[..., :h, :w]
    return run


def to_uint8(x: torch.Tensor) -> list[np.ndarray]:
    return [a for a in (x.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()]


@torch.no_grad()
def evaluate(restore: Callable[[torch.Tensor, int], torch.Tensor], test: dict[str, Any],
             device: str = "cpu") -> dict[str, dict[str, Any]]:
    """{task: {psnr_rgb, ssim_rgb, degraded_psnr_rgb, n, protocol}}: uint8-rounded outputs, no crop. ``test[task]``
    is (clean [N,3,H,W], degraded [N,3,H,W]) or a list of (clean [1,3,H,W], degraded [1,3,H,W]) of any sizes."""
    from bench.metrics.restoration import psnr_rgb, ssim_rgb

    out = {}
    for ti, task in enumerate(TASK_NAMES):
        items = test[task]
        if isinstance(items, tuple):
            items = [(items[0][i:i + 1], items[1][i:i + 1]) for i in range(items[0].shape[0])]
        preds, targets, inputs = [], [], []
        for clean, deg in items:
            preds += to_uint8(restore(deg.to(device), ti).cpu())
            targets += to_uint8(clean)
            inputs += to_uint8(deg)
        p, s, d = psnr_rgb(preds, targets), ssim_rgb(preds, targets), psnr_rgb(inputs, targets)
        out[task] = {"psnr_rgb": p.value, "ssim_rgb": s.value, "degraded_psnr_rgb": d.value, "n": p.n,
                     "protocol": {"psnr_rgb": p.protocol, "ssim_rgb": s.protocol}}
    return out


def cpu_seconds() -> float:
    return time.process_time()
