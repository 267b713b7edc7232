"""The one training loop (see the package docstring for the contract)."""
from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench import distributed as dist_utils
from bench.registry import BenchError
from bench.train import checkpoint as ckpt
from bench.train.config import TrainConfig
from bench.train.data import BatchStream
from bench.train.ema import EMA
from bench.train.optim import build_optimizer, build_scheduler
from bench.train.progress import JsonlLog, ProgressBar, progress_enabled

LOG = logging.getLogger("bench.train")  # resume and fallback messages; the runner shows them in the run's log

LossOutput = torch.Tensor | tuple[torch.Tensor, dict[str, Any]]
LossFn = Callable[[nn.Module, Any], LossOutput]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during `train`: still a KeyboardInterrupt, carrying where training stood (for the one-line
    "interrupted at step N of M; rerun to resume" and the run record)."""

    def __init__(self, step: int, total: int, checkpoint_step: int | None):
        super().__init__(f"interrupted at step {step} of {total}")
        self.step, self.total, self.checkpoint_step = step, total, checkpoint_step


@dataclass
class TrainState:
    """What hooks see. ``model`` is the bare module (no DDP/compile wrapper); ``ema_model`` is the EMA copy,
    or the model itself when EMA is off, so evaluation code can always use ``ema_model``."""

    step: int
    cfg: TrainConfig
    model: nn.Module
    ema_model: nn.Module
    optimizer: torch.optim.Optimizer
    out_dir: Path
    device: torch.device
    rank: int
    world_size: int
    last_checkpoint: Path | None


@dataclass(frozen=True)
class Hook:
    """``fn(state) -> dict | None`` every ``every`` optimizer steps (and at the last step if ``at_end``).

    It runs on every rank (so it may gather), with the training RNG saved and restored around it: an
    evaluation never changes the training trajectory. A returned dict is logged as
    ``{"step", "event": name, **dict}`` by rank 0.
    """

    every: int
    fn: Callable[[TrainState], dict[str, Any] | None]
    name: str = "eval"
    at_end: bool = True

    def due(self, step: int, total: int) -> bool:
        return step % self.every == 0 or (self.at_end and step == total)


@dataclass
class TrainResult:
    model: nn.Module
    ema_model: nn.Module
    step: int
    last_checkpoint: Path | None
    log_path: Path
    last_log: dict[str, Any] | None = None  # the last step record this call wrote (None if no step ran)
    events: list[dict[str, Any]] = field(default_factory=list)  # hook results of this call, as logged


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32  # CPU autocast is slow and changes results: keep exact fp32 there


@contextmanager
def numerics(cfg: TrainConfig, device: torch.device) -> Iterator[None]:
    """Deterministic algorithms on CPU, TF32 on GPU; the previous global settings come back afterwards."""
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    old_matmul = torch.get_float32_matmul_precision()
    old_cudnn_tf32 = torch.backends.cudnn.allow_tf32
    if cfg.deterministic is not None:
        torch.use_deterministic_algorithms(cfg.deterministic)
    elif device.type == "cpu":
        torch.use_deterministic_algorithms(True)  # GPU default: leave the caller's setting alone
    if device.type == "cuda" and cfg.tf32:
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
        torch.set_float32_matmul_precision(old_matmul)
        torch.backends.cudnn.allow_tf32 = old_cudnn_tf32


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _split_loss(out: LossOutput, step: int) -> tuple[torch.Tensor, dict[str, Any]]:
    loss, extras = (out[0], dict(out[1])) if isinstance(out, tuple) else (out, {})
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise BenchError(f"loss_fn must return a scalar tensor (or (tensor, dict)); got {type(loss).__name__} at step {step}")
    return loss.reshape(()), extras


def _find_resume(resume: bool | str | os.PathLike, ckpt_dir: Path,
                 rank: int = 0) -> tuple[Path | None, dict[str, Any] | None]:
    """The checkpoint to resume from and its loaded contents.

    With resume=True a truncated or corrupt newest checkpoint (a disk filled up, a copy cut short) is not the
    end of the run: the newest one that loads is used, with a warning, and the damaged files are renamed
    ``*.corrupt`` (kept for inspection, out of the way of `latest_checkpoint` and pruning)."""
    if resume is False:
        existing = ckpt.latest_checkpoint(ckpt_dir)
        if existing is not None:
            raise BenchError(f"{ckpt_dir} already holds checkpoints (latest {existing.name}); pass resume=True "
                             "to continue that run or use a fresh output directory")
        return None, None
    if resume is not True:
        return Path(resume), ckpt.load_file(resume)
    damaged: list[Path] = []
    found: tuple[Path | None, dict[str, Any] | None] = (None, None)
    for _, path in reversed(ckpt.list_checkpoints(ckpt_dir)):
        try:
            found = (path, ckpt.load_file(path))
            break
        except BenchError as err:
            damaged.append(path)
            LOG.warning("%s; falling back to an earlier checkpoint", err)
    if damaged:
        LOG.warning("resuming from %s", found[0].name if found[0] else "scratch (no checkpoint loads)")
        dist_utils.barrier()  # every rank has tried the files before rank 0 moves them
        if rank == 0:
            for path in damaged:
                os.replace(path, path.with_name(path.name + ".corrupt"))
    return found


def train(model: nn.Module, loss_fn: LossFn, data: Any, cfg: TrainConfig, out_dir: str | os.PathLike, *,
          resume: bool | str | os.PathLike = False, hooks: Sequence[Hook] = (),
          collate_fn: Callable[[list[Any]], Any] | None = None, stop_after: int | None = None,
          console: Any = None) -> TrainResult:
    """Train ``model`` for ``cfg.steps`` optimizer steps; see the bench.train docstring.

    stop_after: leave after this many optimizer steps of the whole run (checkpointing first), e.g. to fit a
    time-limited job; a later call with resume=True continues to ``cfg.steps``.
    """
    info = dist_utils.init_distributed(device=None if cfg.device == "auto" else cfg.device)
    rank, world = info.rank, info.world_size
    device = torch.device(info.device)
    amp_dtype = resolve_precision(cfg.precision, device)
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    micro_bs = cfg.micro_batch(world)
    end_step = cfg.steps if stop_after is None else min(cfg.steps, stop_after)

    with numerics(cfg, device):
        model.to(device)
        batches = BatchStream(data, micro_bs, seed=cfg.seed, rank=rank, world_size=world, shuffle=cfg.shuffle,
                              collate_fn=collate_fn, num_workers=cfg.num_workers)
        optimizer = build_optimizer(model.parameters(), cfg)
        scheduler = build_scheduler(optimizer, cfg)
        scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
        log = JsonlLog(out_dir / "train_log.jsonl", enabled=rank == 0)

        step, ema_state = 0, None
        resume_from, saved = _find_resume(resume, ckpt_dir, rank)
        if resume_from is not None:
            step, ema_state = _restore(resume_from, saved, cfg, model, optimizer, scheduler, scaler, batches, rank,
                                       world)
            LOG.info("resuming from step %d of %d (%s)", step, cfg.steps, resume_from.name)
        else:
            ckpt.seed_all(dist_utils.derive_seed(cfg.seed, "train", rank))
        # Records past the step we restart from were written by a run killed after its last checkpoint (or
        # before its first one, when we restart from 0): drop them, so no step is ever logged twice.
        log.truncate_after(step)
        if rank == 0:
            ckpt.remove_stale_temporaries(ckpt_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=1), encoding="utf-8")

        wrapped: nn.Module = model
        if world > 1:
            wrapped = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=cfg.find_unused_parameters)
        ema = EMA(model, cfg.ema_decay, cfg.ema_warmup_steps, cfg.ema_rampup_ratio) if cfg.ema_decay is not None else None
        if ema is not None and ema_state is not None:
            ema.load_state_dict(ema_state)
        if cfg.compile:
            wrapped = torch.compile(wrapped)

        last_ckpt = resume_from
        state = TrainState(step, cfg, model, ema.module if ema else model, optimizer, out_dir, device, rank, world, last_ckpt)
        last_log: dict[str, Any] | None = None
        events: list[dict[str, Any]] = []
        params = [p for p in model.parameters() if p.requires_grad]
        bar = ProgressBar(cfg.steps, step, progress_enabled(cfg.progress, rank=rank), console)
        model.train()
        try:
            while step < end_step:
                t0 = time.perf_counter()
                lr = scheduler.get_last_lr()[0]
                optimizer.zero_grad(set_to_none=True)
                loss_sum = torch.zeros((), device=device, dtype=torch.float32)
                extras: dict[str, Any] = {}
                for micro in range(cfg.grad_accum):
                    batch = to_device(next(batches), device)
                    sync = world == 1 or micro == cfg.grad_accum - 1
                    with (nullcontext() if sync else wrapped.no_sync()):
                        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype != torch.float32):
                            loss, extras = _split_loss(loss_fn(wrapped, batch), step + 1)
                        scaled = loss.float() / cfg.grad_accum
                        (scaler.scale(scaled) if scaler else scaled).backward()
                    loss_sum += loss.detach().float()
                mean_loss = dist_utils.all_reduce_sum(loss_sum / cfg.grad_accum, torch.float32) / world
                loss_value = float(mean_loss)
                if not math.isfinite(loss_value):
                    raise BenchError(f"non-finite loss ({loss_value}) at step {step + 1}; training stopped; last good "
                                     f"checkpoint: {last_ckpt if last_ckpt else 'none'}")
                if scaler:
                    scaler.unscale_(optimizer)
                grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
                if scaler is None and not torch.isfinite(grad_norm):
                    raise BenchError(f"non-finite gradient norm at step {step + 1}; training stopped; last good "
                                     f"checkpoint: {last_ckpt if last_ckpt else 'none'}")
                if cfg.grad_clip is not None:
                    torch.nn.utils.clip_grads_with_norm_(params, cfg.grad_clip, grad_norm)
                if scaler:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                scheduler.step()
                step += 1
                if ema is not None:
                    ema.update(model, step)
                state.step = step

                if step % cfg.log_every == 0 or step == end_step:
                    record = {"step": step, "loss": loss_value, "lr": lr, "grad_norm": float(grad_norm),
                              "step_time_s": time.perf_counter() - t0,
                              **{k: float(v) if isinstance(v, torch.Tensor) else v for k, v in extras.items()}}
                    log.write(record)
                    last_log = record
                bar.update(step, loss_value)

                for hook in hooks:
                    if hook.due(step, cfg.steps):
                        result = _run_hook(hook, state, model)
                        if result is not None:
                            record = {"step": step, "event": hook.name, **result}
                            log.write(record)
                            events.append(record)

                if (cfg.ckpt_every and step % cfg.ckpt_every == 0) or step == end_step:
                    last_ckpt = _save(ckpt_dir, step, cfg, model, ema, optimizer, scheduler, scaler, batches, rank, world)
                    state.last_checkpoint = last_ckpt
        except KeyboardInterrupt as exc:
            if isinstance(exc, TrainingInterrupted):  # from a nested train() (a hook's own training)
                raise
            saved_step = ckpt.checkpoint_step(last_ckpt) if last_ckpt is not None else None
            raise TrainingInterrupted(step, cfg.steps, saved_step) from None
        finally:
            bar.close()
    return TrainResult(model, ema.module if ema else model, step, last_ckpt, log.path, last_log, events)


def _run_hook(hook: Hook, state: TrainState, model: nn.Module) -> dict[str, Any] | None:
    with ckpt.preserved_rng():
        result = hook.fn(state)
    model.train()
    if result is not None and not isinstance(result, dict):
        raise BenchError(f"hook {hook.name!r} returned {type(result).__name__}; expected a dict or None")
    return result


def _gather_rng(world: int) -> list[Any] | None:
    """Every rank's RNG state, collected on rank 0 (one checkpoint resumes every rank exactly)."""
    local = ckpt.capture_rng()
    if world == 1:
        return [local]
    import torch.distributed as dist

    bucket: list[Any] | None = [None] * world if dist.get_rank() == 0 else None
    dist.gather_object(local, bucket, dst=0)
    return bucket


def _save(ckpt_dir: Path, step: int, cfg: TrainConfig, model: nn.Module, ema: EMA | None,
          optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any, batches: BatchStream, rank: int,
          world: int) -> Path:
    rng = _gather_rng(world)
    path = ckpt.step_path(ckpt_dir, step)
    if rank == 0:
        ckpt.atomic_save({
            "format": ckpt.FORMAT, "step": step, "config": cfg.to_dict(), "world_size": world,
            "model": model.state_dict(), "ema": ema.state_dict() if ema else None,
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler else None, "data": batches.state_dict(), "rng": rng,
        }, path)
        ckpt.prune_checkpoints(ckpt_dir, cfg.keep_checkpoints)
    dist_utils.barrier()
    return path


def _restore(path: Path, data: dict[str, Any], cfg: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
             scheduler: Any, scaler: Any, batches: BatchStream, rank: int,
             world: int) -> tuple[int, dict[str, Any] | None]:
    if data.get("format") != ckpt.FORMAT:
        raise BenchError(f"checkpoint {path} is not a bench training checkpoint (format {data.get('format')!r})")
    ckpt.load_model_state(model, data["model"], f"checkpoint {path}")
    changed = cfg.first_difference(data["config"])
    if changed is not None:
        raise BenchError(f"cannot resume from {path}: config field {changed!r} changed "
                         f"({data['config'].get(changed)!r} -> {getattr(cfg, changed)!r})")
    if cfg.ema_decay is not None and data.get("ema") is not None:
        ckpt.check_state_dict(model.state_dict(), data["ema"], f"checkpoint {path} (EMA)")
    optimizer.load_state_dict(data["optimizer"])
    scheduler.load_state_dict(data["scheduler"])
    if scaler is not None and data.get("scaler") is not None:
        scaler.load_state_dict(data["scaler"])
    batches.load_state_dict(data["data"])
    rng = data["rng"]
    if len(rng) == world:
        ckpt.restore_rng(rng[rank])
    else:
        # Another process count: the data stream resumes at the same epoch and batch count (the global batch
        # is unchanged, but which items each rank holds is not), and the ranks' random streams cannot be
        # mapped one-to-one, so they restart from seeds derived from the step. Continuing, not bit-exact.
        ckpt.seed_all(dist_utils.derive_seed(cfg.seed, "resume", data["step"], rank))
    return int(data["step"]), data.get("ema")
