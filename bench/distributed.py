"""torchrun / DDP helpers: process groups, sharding by rank, per-sample seeds, gathering to rank 0, launch.

Design rules (DESIGN.md section 9):

* One engine: ``torch.distributed`` started by torchrun (``python -m torch.distributed.run``). `launch` spawns
  it; inside each worker `init_distributed` joins the group (NCCL on GPU, gloo on CPU). Without torchrun
  environment variables everything here degrades to a single process (rank 0 of 1) and no collective runs.
* Work is split by *global index*, never by "what this rank happens to see": item ``i`` of ``n`` goes to rank
  ``i % world`` (`shard_indices`) and every random draw for a generated sample comes from a generator seeded
  by ``(base_seed, i)`` (`sample_generator`, `PerSampleRNG`). Outputs therefore do not depend on the number
  of processes, and with a row-independent generator not on the batch size either.
* Results travel back to rank 0 keyed by that index (`gather_rows`, `gather_by_index`); the padding a rank
  adds to keep collective shapes equal is dropped there.

This module imports torch lazily so that `launch` and its argument checks stay cheap.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.registry import BenchError, load_target

if TYPE_CHECKING:  # pragma: no cover
    import torch

# torchrun sets these in every worker; Slurm jobs built by bench.train.slurm export the same names.
_LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


# --------------------------------------------------------------------------------------------- process group
@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    backend: str | None  # None: single process, no process group
    device: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True inside a worker started by torchrun (or an equivalent launcher such as the Slurm job)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(backend: str | None = None, device: str | None = None) -> DistInfo:
    """Join the torchrun process group if there is one; return who we are.

    backend: None picks NCCL when CUDA is available and gloo otherwise. Idempotent: a second call returns the
    same information without re-initialising.
    """
    import torch
    import torch.distributed as dist

    if not launched_by_torchrun():
        dev = device or ("cuda:0" if torch.cuda.is_available() else "cpu")
        return DistInfo(0, 1, 0, None, dev)
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
    if use_cuda:
        torch.cuda.set_device(local)
    dev = f"cuda:{local}" if use_cuda and device in (None, "cuda") else (device or "cpu")  # one GPU per rank
    chosen = backend or ("nccl" if use_cuda else "gloo")
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {}
        if chosen == "nccl":
            kwargs["device_id"] = torch.device(dev)  # lets NCCL bind eagerly and avoids a barrier warning
        dist.init_process_group(backend=chosen, init_method="env://", rank=rank, world_size=world, **kwargs)
    return DistInfo(rank, world, local, dist.get_backend(), dev)


def is_initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    if is_initialized():
        import torch.distributed as dist

        return dist.get_rank()
    return int(os.environ.get("RANK", "0")) if launched_by_torchrun() else 0


def get_world_size() -> int:
    if is_initialized():
        import torch.distributed as dist

        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1")) if launched_by_torchrun() else 1


def get_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_initialized():
        import torch.distributed as dist

        dist.barrier()


def collective_device() -> torch.device:
    """Where a tensor must sit for a collective of this process group: NCCL only takes CUDA tensors, on the
    process's own GPU (the current device, set by `init_distributed`); gloo and no group take CPU tensors.
    Collectives here move their tensors there and hand results back on the caller's device."""
    import torch

    if is_initialized():
        import torch.distributed as dist

        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def destroy() -> None:
    if is_initialized():
        import torch.distributed as dist

        dist.destroy_process_group()


# --------------------------------------------------------------------------------------------------- sharding
def shard_indices(n: int, rank: int | None = None, world_size: int | None = None, pad: bool = False) -> list[int]:
    """Global indices of ``n`` items that belong to ``rank``: ``rank, rank + world, ...``.

    pad=True makes every rank hold ``ceil(n / world)`` indices (equal shapes for collectives) by wrapping
    around to the start, as torch's DistributedSampler does; `gather_rows` / `gather_by_index` drop the
    duplicates again.
    """
    rank = get_rank() if rank is None else rank
    world = get_world_size() if world_size is None else world_size
    if n < 0 or world < 1 or not 0 <= rank < world:
        raise BenchError(f"cannot shard {n} items for rank {rank} of {world}")
    if not pad:
        return list(range(rank, n, world))
    per_rank = -(-n // world) if n else 0
    return [(rank + k * world) % n for k in range(per_rank)] if n else []


# ------------------------------------------------------------------------------------------ per-sample seeds
def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from any tuple of ints/strings (stable across Python runs, platforms and processes)."""
    digest = hashlib.blake2b(json.dumps(list(parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def sample_generator(base_seed: int, index: int) -> torch.Generator:
    """The CPU generator that owns every random draw of global sample ``index``.

    It is a CPU generator on purpose: CUDA and CPU generators give different streams, so drawing on CPU and
    moving the result makes samples identical across devices (at the cost of one host-to-device copy).
    """
    import torch

    return torch.Generator(device="cpu").manual_seed(derive_seed(int(base_seed), int(index)))


class PerSampleRNG:
    """Random draws for a batch where row ``k`` comes only from the generator of sample ``indices[k]``.

    A sampler that takes all its randomness from here (initial noise, stochastic churn, random labels)
    produces the same sample ``i`` whatever the batch it sits in, the batch size or the process count.
    """

    def __init__(self, indices: Sequence[int] | torch.Tensor, base_seed: int, device: Any = "cpu"):
        self.indices = [int(i) for i in indices]
        self.base_seed = int(base_seed)
        self.device = device
        self.generators = [sample_generator(base_seed, i) for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def _stack(self, draw: Callable[[torch.Generator], torch.Tensor]) -> torch.Tensor:
        import torch

        if not self.generators:
            raise BenchError("PerSampleRNG has no samples to draw for")
        return torch.stack([draw(g) for g in self.generators]).to(self.device)

    def randn(self, *shape: int, dtype: Any = None) -> torch.Tensor:
        import torch

        return self._stack(lambda g: torch.randn(shape, generator=g, dtype=dtype or torch.float32))

    def rand(self, *shape: int, dtype: Any = None) -> torch.Tensor:
        import torch

        return self._stack(lambda g: torch.rand(shape, generator=g, dtype=dtype or torch.float32))

    def randint(self, low: int, high: int, *shape: int) -> torch.Tensor:
        import torch

        return self._stack(lambda g: torch.randint(low, high, shape, generator=g))


# ---------------------------------------------------------------------------------------- gathering to rank 0
def gather_rows(rows: Iterable[dict[str, Any]], total: int | None = None, index_key: str = "index") -> list[dict[str, Any]] | None:
    """Collect per-item rows (plain, picklable dicts) from all ranks on rank 0, ordered by ``index_key``.

    Rows repeated by sampler padding (same index on two ranks) are kept once; with ``total`` rows whose
    index is ``>= total`` are dropped too and a missing index is an error. Other ranks get None.
    """
    local = list(rows)
    for row in local:
        if index_key not in row:
            raise BenchError(f"gather_rows: a row has no {index_key!r} key: {sorted(row)}")
    if is_initialized() and get_world_size() > 1:
        import torch.distributed as dist

        bucket: list[Any] | None = [None] * get_world_size() if get_rank() == 0 else None
        dist.gather_object(local, bucket, dst=0)
        if get_rank() != 0:
            return None
        local = [row for part in bucket or [] for row in part]
    unique: dict[int, dict[str, Any]] = {}
    for row in local:
        idx = int(row[index_key])
        if total is None or idx < total:
            unique.setdefault(idx, row)
    if total is not None and len(unique) != total:
        missing = sorted(set(range(total)) - set(unique))[:5]
        raise BenchError(f"gather_rows: {total - len(unique)} of {total} items missing (first: {missing})")
    return [unique[i] for i in sorted(unique)]


def gather_by_index(indices: torch.Tensor, values: torch.Tensor, total: int) -> torch.Tensor | None:
    """Assemble ``values[k]`` (one row per global index ``indices[k]``) from all ranks into a ``[total, ...]``
    tensor on rank 0 (None on the others). Every rank must pass the same number of rows: use
    ``shard_indices(total, pad=True)``; padded duplicates are dropped."""
    import torch

    indices = torch.as_tensor(indices, dtype=torch.long, device=values.device)
    if indices.shape[0] != values.shape[0]:
        raise BenchError(f"gather_by_index: {indices.shape[0]} indices for {values.shape[0]} rows")
    if is_initialized() and get_world_size() > 1:
        import torch.distributed as dist

        world, home, comm = get_world_size(), values.device, collective_device()
        indices, values = indices.to(comm), values.to(comm)
        all_idx = [torch.empty_like(indices) for _ in range(world)]
        all_val = [torch.empty_like(values) for _ in range(world)]
        dist.all_gather(all_idx, indices)
        dist.all_gather(all_val, values)
        if get_rank() != 0:
            return None
        indices, values = torch.cat(all_idx).to(home), torch.cat(all_val).to(home)
    out = values.new_zeros((total, *values.shape[1:]))
    seen = torch.zeros(total, dtype=torch.bool, device=values.device)
    keep = indices < total
    out[indices[keep]] = values[keep]  # duplicates carry the same value, so write order does not matter
    seen[indices[keep]] = True
    if not bool(seen.all()):
        raise BenchError(f"gather_by_index: {int((~seen).sum())} of {total} indices missing")
    return out


def all_reduce_sum(tensor: torch.Tensor, dtype: Any = None) -> torch.Tensor:
    """Sum a metric state over ranks, by default in float64 (FID moments lose digits in float32)."""
    import torch

    dtype = dtype or torch.float64
    out = tensor.detach().to(dtype).clone()
    if is_initialized() and get_world_size() > 1:
        import torch.distributed as dist

        shared = out.to(collective_device())  # NCCL rejects a CPU tensor; the result returns to the caller's device
        dist.all_reduce(shared, op=dist.ReduceOp.SUM)
        out = shared.to(tensor.device)
    return out


# --------------------------------------------------------------------------------------------------- launch
def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return torch.cuda.is_available()


def max_processes(device: str = "auto") -> tuple[int, str]:
    """How many workers this machine supports and what limits it: one per GPU, or one per CPU core on CPU."""
    if device != "cpu" and _has_cuda():
        import torch

        return torch.cuda.device_count(), "GPU(s)"
    if device.startswith("cuda"):
        raise BenchError("device 'cuda' requested but torch sees no GPU; use --device cpu")
    return os.cpu_count() or 1, "CPU core(s) (os.cpu_count())"


def check_nproc(nproc: int, device: str = "auto") -> None:
    """BenchError unless ``nproc`` is a positive int the machine supports (oversubscribing 2 cores with
    8 gloo workers would crawl rather than fail, so it is refused up front)."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise BenchError(f"--nproc must be a positive integer, got {nproc!r}")
    limit, what = max_processes(device)
    if nproc > limit:
        raise BenchError(f"--nproc {nproc} is more than this machine supports ({limit} {what}); use --nproc {limit} or fewer")


def torchrun_command(nproc: int, target: str | Callable[..., Any], args: Sequence[str] = ()) -> list[str]:
    """The command line that `launch` runs (single node, rendezvous on a free local port).

    target: a script path ending in ``.py``, a ``"module:function"`` string or an importable function (both
    called as ``function(argv)`` in every worker after `init_distributed`), or a module name run with ``-m``.
    """
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    if callable(target):
        name = getattr(target, "__qualname__", "")
        if "<" in name or not getattr(target, "__module__", None):
            raise BenchError(f"launch: {target!r} is not importable by name; pass a top-level function")
        target = f"{target.__module__}:{name}"
    if target.endswith(".py"):
        if not Path(target).is_file():
            raise BenchError(f"launch: script {target} not found")
        return [*cmd, target, *args]
    if ":" in target:
        return [*cmd, "-m", "bench.distributed", target, *args]
    return [*cmd, "-m", target, *args]


def launch(nproc: int, target: str | Callable[..., Any], args: Sequence[str] = (), *, device: str = "auto",
           env: dict[str, str] | None = None, cwd: str | os.PathLike | None = None, timeout: float | None = None,
           capture: bool = False) -> subprocess.CompletedProcess:
    """Run ``target`` in ``nproc`` torchrun worker processes and wait; a failing worker raises BenchError."""
    check_nproc(nproc, device)
    cmd = torchrun_command(nproc, target, args)
    full_env = {**os.environ, **(env or {})}
    if device == "cpu":
        full_env["CUDA_VISIBLE_DEVICES"] = ""
    try:
        proc = subprocess.run(cmd, env=full_env, cwd=cwd, timeout=timeout, text=True,
                              stdout=subprocess.PIPE if capture else None, stderr=subprocess.STDOUT if capture else None)
    except subprocess.TimeoutExpired:
        raise BenchError(f"torchrun with {nproc} process(es) did not finish in {timeout} s") from None
    if proc.returncode != 0:
        cause = _worker_error(proc.stdout) if capture else None
        tail = f": {cause}" if cause else ""
        raise BenchError(f"torchrun with {nproc} process(es) failed with exit code {proc.returncode}{tail}")
    return proc


_EXCEPTION_LINE = re.compile(r"^\s*[\w.]*(Error|Exception|Interrupt)\b.*")


def _worker_error(output: str | None) -> str | None:
    """The last exception line a worker printed (torchrun's own ChildFailedError report is skipped)."""
    lines = [m.group(0).strip() for line in (output or "").splitlines()
             if "torch.distributed.elastic" not in line and (m := _EXCEPTION_LINE.match(line))]
    return lines[-1][:300] if lines else None


def _run_target(argv: Sequence[str]) -> None:
    """Worker entry for ``python -m bench.distributed module:function args...``."""
    if not argv:
        raise SystemExit("usage: python -m bench.distributed module:function [args...]")
    fn = load_target(argv[0])
    init_distributed()
    try:
        fn(list(argv[1:]))
    finally:
        destroy()


if __name__ == "__main__":
    # Re-enter through the imported module so workers share one copy of this module's state.
    from bench.distributed import _run_target as run

    run(sys.argv[1:])
