"""Sampling utilities shared by the generative papers: NFE accounting and a resumable on-disk shard store.

NFE
    `NFECounter` wraps a denoiser; every call counts. ``calls`` is the NFE of one sampled batch (each call
    evaluates every sample in it once), ``rows`` the number of sample-evaluations, and
    ``nfe_per_sample(n)`` = rows / (n x rows_per_sample) is the NFE per sample over any number of batches
    of any size. Classifier-free guidance that stacks the conditional and unconditional halves in one call
    counts one NFE per call with ``rows_per_sample=2`` (DiT's convention); calling the network twice counts
    two.

Shard store
    ``root/manifest.json`` fixes the plan: ``total`` samples split into shards of ``shard_size`` (shard ``s``
    holds global indices ``[s*shard_size, min(total, (s+1)*shard_size))``), the file format and free-form
    ``meta`` (spec hash, base seed, sampler settings). A shard is complete iff its file exists; each file is
    written atomically (temp file + ``os.replace``), so a killed job leaves only whole shards and a rerun
    generates just the missing ones, with any number of processes. Inside a shard, samples are generated in
    batches of ``batch_size`` aligned to the shard start, and every random draw of sample ``i`` comes from
    the generator seeded by ``(base_seed, i)``: the stored samples do not depend on the process count (the
    batches are the same) and, for a sampler whose rows do not interact, not on the batch size either.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import atomic
from bench import distributed as dist_utils
from bench.distributed import PerSampleRNG
from bench.registry import BenchError

MANIFEST = "manifest.json"
FORMATS = ("npz", "pt")


class NFECounter:
    """Counts the calls (and sample rows) a sampler makes to a denoiser; attributes pass through."""

    def __init__(self, denoiser: Callable[..., Any], rows_per_sample: int = 1):
        self.denoiser = denoiser
        self.rows_per_sample = rows_per_sample
        self.calls = 0
        self.rows = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        first = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor) and a.ndim > 0), None)
        self.rows += int(first.shape[0]) if first is not None else 1
        return self.denoiser(*args, **kwargs)

    @property
    def nfe(self) -> int:
        """Calls since the last reset: the NFE of one batch."""
        return self.calls

    def nfe_per_sample(self, num_samples: int) -> float:
        if num_samples <= 0:
            raise BenchError("nfe_per_sample needs a positive number of samples")
        return self.rows / (num_samples * self.rows_per_sample)

    def reset(self) -> None:
        self.calls = 0
        self.rows = 0

    def __getattr__(self, name: str) -> Any:
        if name == "denoiser":  # not set yet (e.g. during unpickling): avoid infinite recursion
            raise AttributeError(name)
        return getattr(self.denoiser, name)


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    atomic.write_with(path, write)


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:  # numpy has no bfloat16; float32 holds it exactly
            value = value.float()
        return value.numpy()
    return np.asarray(value)


class ShardStore:
    """Open (or create) the shard store at ``root``; an existing manifest must describe the same plan."""

    def __init__(self, root: str | os.PathLike, total: int, shard_size: int, fmt: str = "npz",
                 meta: dict[str, Any] | None = None):
        if total < 1 or shard_size < 1:
            raise BenchError(f"shard store needs total >= 1 and shard_size >= 1, got {total} and {shard_size}")
        if fmt not in FORMATS:
            raise BenchError(f"shard format {fmt!r} is not one of {', '.join(FORMATS)}")
        self.root = Path(root)
        self.total, self.shard_size, self.fmt = total, shard_size, fmt
        self.num_shards = -(-total // shard_size)
        self.manifest = {"version": 1, "total": total, "shard_size": shard_size, "num_shards": self.num_shards,
                         "format": fmt, "meta": json.loads(json.dumps(meta or {}))}
        path = self.root / MANIFEST
        if path.exists():
            try:
                found = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise BenchError(f"shard manifest {path} is corrupt ({err})") from None
            for key, value in self.manifest.items():
                if found.get(key) != value:
                    raise BenchError(f"shard store {self.root} was made for another plan: {key} is "
                                     f"{found.get(key)!r} there, {value!r} now; use another directory or delete it")
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, lambda h: h.write(json.dumps(self.manifest, indent=1).encode()))

    def shard_range(self, shard: int) -> tuple[int, int]:
        if not 0 <= shard < self.num_shards:
            raise BenchError(f"shard {shard} out of range 0..{self.num_shards - 1}")
        start = shard * self.shard_size
        return start, min(self.total, start + self.shard_size)

    def shard_path(self, shard: int) -> Path:
        return self.root / f"shard_{shard:06d}.{self.fmt}"

    def missing(self) -> list[int]:
        return [s for s in range(self.num_shards) if not self.shard_path(s).exists()]

    @property
    def complete(self) -> bool:
        return not self.missing()

    def write_shard(self, shard: int, arrays: dict[str, Any]) -> Path:
        """Store one shard; ``arrays`` has one row per sample of the shard (``index`` is added)."""
        start, stop = self.shard_range(shard)
        data = {k: _to_numpy(v) for k, v in arrays.items()}
        data["index"] = np.arange(start, stop, dtype=np.int64)
        for key, value in data.items():
            if value.ndim == 0 or value.shape[0] != stop - start:
                raise BenchError(f"shard {shard}: array {key!r} has {value.shape[0] if value.ndim else 0} rows, "
                                 f"expected {stop - start}")
        path = self.shard_path(shard)
        if self.fmt == "npz":
            _atomic_write(path, lambda h: np.savez(h, **data))
        else:
            _atomic_write(path, lambda h: torch.save({k: torch.from_numpy(v) for k, v in data.items()}, h))
        return path

    def read_shard(self, shard: int) -> dict[str, np.ndarray]:
        path = self.shard_path(shard)
        try:
            if self.fmt == "npz":
                with np.load(path) as handle:
                    return {k: handle[k] for k in handle.files}
            return {k: v.numpy() for k, v in torch.load(path, weights_only=True).items()}
        except FileNotFoundError:
            raise BenchError(f"shard {shard} ({path}) has not been generated") from None
        except Exception as err:
            raise BenchError(f"shard file {path} is corrupt ({type(err).__name__}); delete it to regenerate") from None

    def load(self, keys: list[str] | None = None) -> dict[str, np.ndarray]:
        """All samples in index order; BenchError naming the missing shards if the store is incomplete."""
        missing = self.missing()
        if missing:
            raise BenchError(f"shard store {self.root} is incomplete: {len(missing)} of {self.num_shards} shards "
                             f"missing (first: {missing[:5]}); rerun generation to fill them")
        parts = [self.read_shard(s) for s in range(self.num_shards)]
        keys = keys or list(parts[0])
        return {k: np.concatenate([p[k] for p in parts]) for k in keys}


SampleFn = Callable[[torch.Tensor, PerSampleRNG], Any]


def generate_shards(store: ShardStore, sample_fn: SampleFn, *, base_seed: int, batch_size: int,
                    device: Any = "cpu", rank: int | None = None, world_size: int | None = None) -> list[int]:
    """Generate this rank's share of the missing shards; returns the shard ids it wrote.

    ``sample_fn(indices, rng)`` gets the global indices of a batch (int64 tensor) and a `PerSampleRNG` and
    returns a tensor/array (stored as ``samples``) or a dict of them (e.g. ``{"samples": x, "label": y}``),
    one row per index. All ranks list the missing shards before any of them writes (a barrier separates the
    two), then take every world_size-th one.
    """
    if batch_size < 1:
        raise BenchError(f"batch_size must be >= 1, got {batch_size}")
    rank = dist_utils.get_rank() if rank is None else rank
    world = dist_utils.get_world_size() if world_size is None else world_size
    missing = store.missing()
    dist_utils.barrier()
    mine = missing[rank::world]
    for shard in mine:
        start, stop = store.shard_range(shard)
        pieces: list[dict[str, np.ndarray]] = []
        for lo in range(start, stop, batch_size):
            indices = torch.arange(lo, min(stop, lo + batch_size), dtype=torch.long)
            out = sample_fn(indices, PerSampleRNG(indices, base_seed, device))
            out = out if isinstance(out, dict) else {"samples": out}
            pieces.append({k: _to_numpy(v) for k, v in out.items()})
        store.write_shard(shard, {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]})
    dist_utils.barrier()
    return mine
