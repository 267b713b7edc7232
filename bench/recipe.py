"""The contract between the runner and a paper's recipe (methods/<paper>/recipe.py).

A recipe module defines:
    VERSION: int                                   bump when results would change (invalidates references)
    plan(card, scale, data_root) -> list[RunSpec]  what `bench reproduce` runs at this scale
    run_seed(spec, seed, ctx) -> SeedResult        train/evaluate one entry for one seed
and may define:
    after_reproduce(outcomes, store) -> list[str]  called by `bench reproduce` once all runs are done (e.g. a
                                                   sample grid across entries); each line is printed
A seed's metrics include its sanity records (bench/sanity.py): no claim is decided on a run below its floor.

Everything a recipe writes goes through `ctx` (the run's directory in the store), so that a killed run
resumes where it stopped: finished seeds are skipped by the runner, finished item shards and training
checkpoints by the recipe (ctx.handle.shard_done, ctx.work_dir).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench.store import RunHandle


@dataclass
class RunContext:
    handle: RunHandle
    data_root: Path | None = None
    device: str = "cpu"
    resume: bool = True
    log: Callable[[str], None] = print
    show_progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def work_dir(self, seed: int) -> Path:
        return self.handle.work_dir(seed)


def metric_record(metric: str, value: float, n: int, setting: dict[str, Any] | None = None,
                  protocol: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metric": metric, "value": float(value), "n": int(n), "setting": dict(setting or {}),
            "protocol": dict(protocol or {})}


@dataclass
class SeedResult:
    metrics: list[dict[str, Any]]
    cost: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_record(self, seed: int, wall_s: float) -> dict[str, Any]:
        return {"seed": seed, "metrics": self.metrics, "cost": self.cost, "provenance": self.provenance,
                "wall_s": wall_s}


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run with ``count`` intra-op CPU threads (None or 0: leave torch's setting), restoring it afterwards.

    Smoke recipes pin one thread: results then do not depend on the machine's core count, and on shared 2-core
    runners two contending threads made small models an order of magnitude slower."""
    if not count:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(count))
    try:
        yield
    finally:
        torch.set_num_threads(before)
