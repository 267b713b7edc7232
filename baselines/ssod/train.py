"""The two SSOD training stages through the shared loop (bench.train.train): SGD, step LR, checkpoints, resume.

1. Burn-in: the detector on the labelled split only (LabelMatch's baseline_ssod, UT's BURN_UP_STEP iterations).
   Its final weights initialise both the student and the teacher of stage 2; alone it is the supervised baseline.
2. Semi-supervised: a module holding student(s) and teacher(s) (methods.MeanTeacher, or CTF's pairs) trained on
   SemiPairs batches. Two hooks run after every optimizer step: the EMA teacher update (every step) and, for
   LabelMatch-based modules, the ACT threshold refresh every `act_interval` steps on a random subset of the
   unlabelled images (drawn from a generator seeded by (seed, step), so it does not disturb the training stream).
   The thresholds are computed once before the first step too, unless a checkpoint is being resumed.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from baselines.ssod.augment import ResizeSpec, resize
from baselines.ssod.configs import Schedule
from baselines.ssod.data import CategoryMap, LabelledSet, _Items, collate
from baselines.ssod.detector import Detector, DetectorConfig, build_detector
from baselines.ssod.methods import SupervisedOnly


def _loss_fn(model: nn.Module, batch: dict[str, Any]):
    return model(batch)


def new_detector(cfg: DetectorConfig, seed: int) -> Detector:
    """A freshly initialised detector; the weights depend only on `seed`."""
    from bench.distributed import derive_seed

    state = torch.random.get_rng_state()
    torch.manual_seed(derive_seed(seed, "detector-init"))
    try:
        return build_detector(cfg)
    finally:
        torch.random.set_rng_state(state)


def burn_in(detector: Detector, labelled: Any, cats: CategoryMap, schedule: Schedule, view: ResizeSpec,
            out_dir: Path, seed: int, cls_loss: str = "ce", device: str = "cpu", log_every: int = 20,
            ckpt_every: int = 0, num_workers: int = 0) -> Detector:
    """Stage 1; returns the trained detector (resumes from `out_dir` if it holds checkpoints)."""
    from baselines.ssod.augment import AugmentConfig
    from bench.train import train

    data = LabelledSet(labelled, cats, AugmentConfig(labelled_resize=view), colour=False)
    module = SupervisedOnly(detector, cls_loss)
    cfg = schedule.train_config(seed, device=device, log_every=log_every, ckpt_every=ckpt_every,
                                num_workers=num_workers, extra={"stage": "burn-in"})
    train(module, _loss_fn, data, cfg, out_dir, resume=True, collate_fn=collate)
    return module.student


def act_images(unlabelled: Any, cats: CategoryMap, count: int, seed: int, step: int, view: ResizeSpec) -> list:
    """The unlabelled images of one ACT update: all of them if count >= the set, else a seeded random subset."""
    from bench.distributed import derive_seed

    items = _Items(unlabelled, cats, cache=False)
    n = len(items)
    if count >= n:
        idx = list(range(n))
    else:
        g = torch.Generator().manual_seed(derive_seed(seed, "act", step))
        idx = sorted(torch.randperm(n, generator=g)[:count].tolist())
    out = []
    for i in idx:
        image = items.get(i)[0]
        out.append(resize(image, image.new_zeros((0, 4)), view)[0])
    return out


def semi_stage(module: nn.Module, pairs: Any, schedule: Schedule, out_dir: Path, seed: int,
               refresh: Callable[[int], dict[str, float]] | None = None, act_interval: int = 0,
               device: str = "cpu", log_every: int = 20, ckpt_every: int = 0, num_workers: int = 0,
               stop_after: int | None = None) -> nn.Module:
    """Stage 2. `module(batch)` -> (loss, extras); `module.after_step()` updates the teacher(s); `refresh(step)`
    recomputes pseudo-label thresholds (run at step 0 on a fresh start and every `act_interval` steps)."""
    from bench.train import Hook, latest_checkpoint, train

    hooks = [Hook(every=1, fn=lambda state: state.model.after_step(), name="ema", at_end=False)]
    if refresh is not None and act_interval > 0:
        hooks.append(Hook(every=act_interval, fn=lambda state: refresh(state.step), name="act", at_end=False))
        if latest_checkpoint(Path(out_dir) / "checkpoints") is None:
            module.to(device)
            refresh(0)
    cfg = schedule.train_config(seed, device=device, log_every=log_every, ckpt_every=ckpt_every,
                                num_workers=num_workers, extra={"stage": "semi-supervised"})
    train(module, _loss_fn, pairs, cfg, out_dir, resume=True, hooks=hooks, collate_fn=collate, stop_after=stop_after)
    return module


def read_history(out_dir: Path) -> list[dict[str, Any]]:
    from bench.train import read_log

    path = Path(out_dir) / "train_log.jsonl"
    return read_log(path) if path.exists() else []


def steps_done(out_dir: Path) -> int:
    from bench.train import latest_checkpoint

    ckpt = latest_checkpoint(Path(out_dir) / "checkpoints")
    if ckpt is None:
        return 0
    return int(ckpt.stem.split("_")[-1])
