"""Run specs: a frozen, validated description of one run. Its canonical JSON hash is the run id."""
from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Scale = Literal["smoke", "small", "paper"]
SCALES: tuple[str, ...] = ("smoke", "small", "paper")

# What a rehearsal may cap (RunSpec.rehearsal): training steps, and evaluated or generated items.
REHEARSAL_KEYS: tuple[str, ...] = ("max_steps", "max_samples")

SCALE_DOC = {
    "smoke": "2-core CPU, embedded data, tiny configs of the real architectures, minutes; deterministic",
    "small": "one GPU, <= 20 minutes per paper, smallest paper architectures, real or carried data",
    "paper": "the paper's own configuration and datasets, multi-GPU with torchrun (DDP), resumable",
}


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


class RunSpec(BaseModel):
    """What one run is. Two runs with equal specs are the same run (same id, same directory)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    paper: str
    entry: str = Field(description="the card entry this run stands for")
    impl: str = Field(description="registered method/baseline that implements it")
    args: dict[str, Any] = Field(default_factory=dict, description="architecture/config arguments")
    dataset: str
    split: str = "test"
    stands_for: dict[str, Any] = Field(
        default_factory=dict,
        description="at smoke/small scale: the paper dataset and metric each proxy stands in for, "
                    "e.g. {'dataset': 'imagenet-256', 'metrics': {'fd_digits': 'fid@adm'}}")
    metrics: list[str]
    scale: Scale = "smoke"
    seeds: list[int] = Field(default_factory=lambda: [0])
    train: dict[str, Any] = Field(default_factory=dict, description="training schedule (steps, batch, lr, ...)")
    sampler: dict[str, Any] = Field(default_factory=dict, description="solver, steps/NFE, cfg")
    setting: dict[str, Any] = Field(default_factory=dict, description="what else fixes the numbers (sr_scale...)")
    precision: str = "fp32"
    world_size: int = 1
    recipe_version: int = 1
    rehearsal: dict[str, int] = Field(
        default_factory=dict,
        description="a CPU rehearsal of a small/paper code path: {'max_steps': N, 'max_samples': M} caps training "
                    "steps and evaluated or generated items; empty for a real run. Part of the run id, so a "
                    "rehearsal never mixes with a real run; its numbers mean nothing")

    @field_validator("rehearsal")
    @classmethod
    def _known_caps(cls, caps: dict[str, int]) -> dict[str, int]:
        for key, cap in caps.items():
            if key not in REHEARSAL_KEYS:
                raise ValueError(f"unknown rehearsal cap {key!r} (known: {', '.join(REHEARSAL_KEYS)})")
            if cap < 1:
                raise ValueError(f"rehearsal cap {key} must be at least 1, got {cap}")
        return caps

    @property
    def is_rehearsal(self) -> bool:
        return bool(self.rehearsal)

    def capped(self, key: str, value: int) -> int:
        """`value` (a step or item count of the recipe), capped by the rehearsal's `key` if there is one."""
        cap = self.rehearsal.get(key)
        return min(int(value), int(cap)) if cap else int(value)

    def run_id(self) -> str:
        data = self.model_dump(mode="json")
        if not data["rehearsal"]:  # a real run hashes as before the field existed: its id does not change
            del data["rehearsal"]
        return hashlib.sha256(canonical_json(data).encode()).hexdigest()[:16]

    def with_overrides(self, **changes: Any) -> "RunSpec":
        data = self.model_dump()
        data.update({k: v for k, v in changes.items() if v is not None})
        return RunSpec.model_validate(data)
