"""How the diffusion recipes (u-dit, qac) shrink a small/paper run into a CPU rehearsal of the same code path.

A rehearsal spec (RunSpec.rehearsal = {"max_steps": N, "max_samples": M}) keeps every model, dataset, metric,
sampler and seed range of the real spec; only counts shrink, each through ``spec.capped``:

* training: optimizer steps <= N; the global batch <= M items (rounded down to a multiple of the process
  count, which must divide it; at least one item per process); what is pre-processed before training (VAE
  latents of the training images, QAC's code prior) covers at most M evenly spaced training items;
* sampling: samples per setting (and per EDM seed range) <= M, in at least two shards when M >= 2, so the
  sharded path (ranks dealing shards, per-shard feature statistics merged in order, resume per shard) runs;
  solver steps per sample <= N (Heun keeps an odd NFE, 2k - 1). The records keep the real setting (e.g.
  nfe 250), so tables and claims see the real run's shape; the NFE actually run is in the record's protocol
  (``rehearsal_nfe_run``). An EDM solver grid ({solver: [nfe, ...]}) runs each solver at its first NFE only:
  every fid@ref-npz costs a 2048 x 2048 matrix square root (10-20 CPU seconds) whatever M is.

A real spec (no rehearsal) passes through every function here unchanged. Stand-in assets (random weights
in the official layout) are accepted only while a rehearsal runs: bench.assets.rehearsal_assets.
"""
from __future__ import annotations

from typing import Any

from bench.spec import RunSpec


def train_batch(spec: RunSpec, batch_size: int) -> int:
    """The global training batch: the real one, or capped by max_samples to a multiple of the world size."""
    if not spec.is_rehearsal:
        return int(batch_size)
    world = max(1, int(spec.world_size))
    capped = spec.capped("max_samples", batch_size)
    return max(world, capped - capped % world)


def sample_counts(spec: RunSpec, num_samples: int, shard_size: int, batch_size: int) -> tuple[int, int, int]:
    """(samples, shard size, sampling batch) of one sampler setting."""
    if not spec.is_rehearsal:
        return int(num_samples), int(shard_size), int(batch_size)
    n = spec.capped("max_samples", num_samples)
    shard = min(int(shard_size), max(1, -(-n // 2)))  # two shards at least when n >= 2
    return n, shard, min(int(batch_size), shard)


def solver_nfe(spec: RunSpec, nfe: int, solver: str = "") -> int:
    """Network calls per sample to run for a setting of ``nfe``: the real value, or capped by max_steps
    (Heun, 2k - 1 calls for k steps, keeps an odd count)."""
    if not spec.is_rehearsal:
        return int(nfe)
    capped = spec.capped("max_steps", nfe)
    if solver == "heun" and capped % 2 == 0:
        capped -= 1
    return max(1, capped)


def protocol_note(spec: RunSpec, nfe_run: int, nfe: int) -> dict[str, Any]:
    """What a rehearsal record says about its sampling (empty for a real run)."""
    if not spec.is_rehearsal:
        return {}
    return {"rehearsal": dict(spec.rehearsal), "rehearsal_nfe_run": int(nfe_run), "setting_nfe": int(nfe)}


class SpacedSubset:
    """``count`` items of a dataset at evenly spaced indices (class-sorted folders keep their spread of
    classes): what a rehearsal pre-processes (e.g. VAE-encodes) instead of the whole training set."""

    def __init__(self, dataset: Any, count: int):
        self.dataset = dataset
        total = len(dataset)
        count = max(1, min(int(count), total))
        self.indices = [i * total // count for i in range(count)]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.indices[i]]


def training_items(spec: RunSpec, dataset: Any) -> Any:
    """The dataset a recipe prepares and trains on: the whole one, or in a rehearsal at most max_samples
    evenly spaced items of it."""
    if not spec.is_rehearsal or "max_samples" not in spec.rehearsal:
        return dataset
    return SpacedSubset(dataset, spec.capped("max_samples", len(dataset)))


def solver_grid(spec: RunSpec, grid: dict[str, list[int]]) -> dict[str, list[int]]:
    """EDM-style solver grids ({solver: [nfe, ...]}): a rehearsal runs every solver at its first NFE only (the
    other NFE values repeat the same code path with another count); a real run keeps the grid."""
    if not spec.is_rehearsal:
        return grid
    return {solver: list(nfes[:1]) for solver, nfes in grid.items() if nfes}
