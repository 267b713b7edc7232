"""TrainConfig: every knob of the shared training loop, validated up front with one-line errors."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from bench.registry import BenchError

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("constant", "cosine", "linear", "step")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# Fields that may change between a run and its resumption: bookkeeping, plus device and compile so that a
# run can continue on another machine (its last bits may then differ from an uninterrupted run).
RESUME_MAY_CHANGE = frozenset({"log_every", "ckpt_every", "keep_checkpoints", "progress", "num_workers",
                               "device", "compile"})


@dataclass(frozen=True)
class TrainConfig:
    steps: int                      # optimizer steps in the whole run
    batch_size: int                 # GLOBAL batch per optimizer step: all ranks x all accumulation micro-steps
    lr: float                       # peak learning rate (after warm-up)

    optimizer: str = "adamw"        # adamw | adam | sgd
    betas: tuple[float, float] = (0.9, 0.999)   # torch defaults; DiT/U-DiT use them with AdamW
    eps: float = 1e-8
    weight_decay: float = 0.0       # DiT trains with 0; set per paper
    momentum: float = 0.9           # sgd only (detectors such as LabelMatch train with SGD momentum 0.9)
    nesterov: bool = False          # sgd only

    schedule: str = "constant"      # constant | cosine | linear (decay to min_lr) | step (x gamma at milestones)
    warmup_steps: int = 0           # linear warm-up, then the schedule over the remaining steps
    # Warm-up factor at 0-based step t is (t + warmup_offset) / warmup_steps. 1 (default) means the first
    # step already moves the weights; Hugging Face's get_*_schedule_with_warmup use 0 (first step at lr 0).
    warmup_offset: int = 1
    min_lr: float = 0.0             # end value of cosine / linear decay
    milestones: tuple[int, ...] = ()  # step schedule: optimizer steps at which lr is multiplied by gamma
    gamma: float = 0.1

    grad_clip: float | None = None  # max global L2 norm; None: no clipping (the norm is still logged)
    grad_accum: int = 1             # micro-steps per optimizer step

    # EMA of the weights, updated after every optimizer step; None disables it.
    ema_decay: float | None = None
    # During the first ema_warmup_steps optimizer steps the EMA copies the weights (decay 0), as BasicSR-style
    # "start EMA at step N" recipes do. 0 with rampup None is DiT's plain EMA (initialised to the model).
    ema_warmup_steps: int = 0
    # EDM's ramp-up: the EMA half-life (in steps) is min(half-life of ema_decay, ema_rampup_ratio * step).
    # EDM uses 0.05; None disables it.
    ema_rampup_ratio: float | None = None

    precision: str = "auto"         # auto: bf16 autocast on a CUDA GPU that supports it, fp32 on CPU
    tf32: bool = True               # allow TF32 matmuls/convs on GPU (no effect on CPU)
    deterministic: bool | None = None  # None: torch.use_deterministic_algorithms on CPU only
    compile: bool = False           # torch.compile the (DDP-wrapped) model; off by default: compile time
    device: str = "auto"            # auto: this rank's GPU if there is one, else cpu
    find_unused_parameters: bool = False  # DDP option for models with conditional branches

    seed: int = 0                   # derives the data order and every rank's torch/numpy/python RNG
    shuffle: bool = True
    num_workers: int = 0            # DataLoader workers for map-style datasets (tensor data never needs them)

    log_every: int = 1              # JSONL log line every N optimizer steps
    ckpt_every: int = 0             # checkpoint every N steps; 0: only at the end
    keep_checkpoints: int = 2       # step checkpoints kept on disk (the newest ones)
    progress: bool | None = None    # None: a progress bar only when stdout is a terminal (and on rank 0)

    extra: dict[str, Any] = field(default_factory=dict)  # free-form, saved with checkpoints (recipe notes)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise BenchError(f"TrainConfig: {message}")

        need(isinstance(self.steps, int) and self.steps >= 1, f"steps must be a positive int, got {self.steps!r}")
        need(isinstance(self.batch_size, int) and self.batch_size >= 1, f"batch_size must be a positive int, got {self.batch_size!r}")
        need(self.lr > 0, f"lr must be > 0, got {self.lr!r}")
        need(self.optimizer in OPTIMIZERS, f"optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        need(self.schedule in SCHEDULES, f"schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        need(self.precision in PRECISIONS, f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        need(0 <= self.warmup_steps < self.steps or self.warmup_steps == 0,
             f"warmup_steps ({self.warmup_steps}) must be smaller than steps ({self.steps})")
        need(0 <= self.min_lr <= self.lr, f"min_lr ({self.min_lr}) must lie in [0, lr={self.lr}]")
        need(self.schedule != "step" or len(self.milestones) > 0, "schedule 'step' needs milestones")
        need(list(self.milestones) == sorted(self.milestones), f"milestones must be increasing, got {self.milestones}")
        need(self.grad_clip is None or self.grad_clip > 0, f"grad_clip must be > 0 or None, got {self.grad_clip!r}")
        need(isinstance(self.grad_accum, int) and self.grad_accum >= 1, f"grad_accum must be a positive int, got {self.grad_accum!r}")
        need(self.ema_decay is None or 0.0 <= self.ema_decay < 1.0, f"ema_decay must lie in [0, 1), got {self.ema_decay!r}")
        need(self.ema_rampup_ratio is None or self.ema_rampup_ratio > 0, "ema_rampup_ratio must be > 0 or None")
        need(self.log_every >= 1, "log_every must be >= 1")
        need(self.ckpt_every >= 0, "ckpt_every must be >= 0")
        need(self.keep_checkpoints >= 1, "keep_checkpoints must be >= 1")

    def micro_batch(self, world_size: int) -> int:
        """Per-rank batch of one micro-step; the global batch must split evenly."""
        parts = world_size * self.grad_accum
        if self.batch_size % parts:
            raise BenchError(f"batch_size {self.batch_size} does not split over {world_size} process(es) x "
                             f"{self.grad_accum} accumulation step(s)")
        return self.batch_size // parts

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        out["milestones"] = list(self.milestones)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BenchError(f"TrainConfig: unknown field {unknown[0]!r}")
        data = dict(data)
        for key in ("betas", "milestones"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    def first_difference(self, other: dict[str, Any]) -> str | None:
        """Name of the first field (other than RESUME_MAY_CHANGE) whose value differs from ``other``."""
        mine = self.to_dict()
        for key, value in mine.items():
            if key not in RESUME_MAY_CHANGE and other.get(key, value) != value:
                return key
        return None
