"""Optional Slurm launch through submitit (``pip install bench[slurm]``).

`build_slurm_job` turns a reproduce command (e.g. ``["bench", "reproduce", "u-dit", "--scale", "paper"]``)
into a picklable `SlurmJob` plus the submitit executor parameters; `submit_slurm` hands it to submitit.
Slurm starts ``nodes x gpus_per_node`` tasks, one per GPU; each task exports the torchrun variables
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and runs the command once, so the command sees
the same environment as a torchrun worker (`bench.distributed.launched_by_torchrun` is true) and must not
spawn torchrun itself. On preemption or timeout submitit requeues the same job; the training loop and the
shard store resume from what is on disk.

`submit_slurm_array` submits many such jobs (same geometry, different commands) as one Slurm job array: `bench
reproduce --launcher slurm` fans entries x seeds out that way (bench/launch.py), one array task per seed of a run.

submitit is imported only when a job is submitted or runs, so building and testing jobs needs no Slurm.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.registry import BenchError

# MASTER_PORT is derived from the job id (20000 + id % 20000) so that two jobs sharing a node differ.
_PORT_BASE, _PORT_SPAN = 20000, 20000


def _require_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise BenchError("Slurm launch needs submitit: pip install 'bench[slurm]'") from None
    return submitit


def strip_nproc(command: Sequence[str]) -> list[str]:
    """Drop ``--nproc N`` / ``--nproc=N``: under Slurm the task geometry decides the process count."""
    out: list[str] = []
    skip = False
    for arg in command:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def dist_env(rank: int, world_size: int, local_rank: int, local_world_size: int, master_addr: str,
             job_id: str | int) -> dict[str, str]:
    """The torchrun-style variables for one Slurm task (job ids like "123_4" of array jobs are fine)."""
    digits = "".join(ch for ch in str(job_id) if ch.isdigit()) or "0"
    return {"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(local_rank),
            "LOCAL_WORLD_SIZE": str(local_world_size), "MASTER_ADDR": master_addr,
            "MASTER_PORT": str(_PORT_BASE + int(digits) % _PORT_SPAN)}


@dataclass(frozen=True)
class SlurmJob:
    """The function submitit runs in every task: export the distributed env, run the command."""

    command: tuple[str, ...]
    executor_params: dict[str, Any] = field(hash=False)
    folder: str

    def environment(self) -> dict[str, str]:
        submitit = _require_submitit()
        job = submitit.JobEnvironment()
        return dist_env(job.global_rank, job.num_tasks, job.local_rank, job.num_tasks // job.num_nodes,
                        job.hostnames[0], job.job_id)

    def __call__(self) -> int:
        env = {**os.environ, **self.environment()}
        return subprocess.run(list(self.command), env=env, check=True).returncode

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's preemption hook: requeue the same command (it resumes from disk)."""
        submitit = _require_submitit()
        return submitit.helpers.DelayedSubmission(self)


def build_slurm_job(command: Sequence[str], *, nodes: int = 1, gpus_per_node: int = 8, cpus_per_task: int = 8,
                    timeout_min: int = 24 * 60, partition: str | None = None, mem_gb: int | None = None,
                    name: str = "bench", folder: str | os.PathLike = "results/slurm",
                    extra_params: dict[str, Any] | None = None) -> SlurmJob:
    if not command:
        raise BenchError("build_slurm_job: empty command")
    if nodes < 1 or gpus_per_node < 1 or cpus_per_task < 1 or timeout_min < 1:
        raise BenchError("build_slurm_job: nodes, gpus_per_node, cpus_per_task and timeout_min must be >= 1")
    params: dict[str, Any] = {
        "name": name, "nodes": nodes, "tasks_per_node": gpus_per_node, "gpus_per_node": gpus_per_node,
        "cpus_per_task": cpus_per_task, "timeout_min": timeout_min,
    }
    if partition:
        params["slurm_partition"] = partition
    if mem_gb:
        params["mem_gb"] = mem_gb
    params.update(extra_params or {})
    return SlurmJob(tuple(strip_nproc(command)), params, str(Path(folder) / "%j"))


def _executor(job: SlurmJob, cluster: str | None) -> Any:
    submitit = _require_submitit()
    if cluster == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
        raise BenchError("Slurm is not reachable here (no sbatch/srun on PATH): submit from a login node of the "
                         "cluster")
    executor = submitit.AutoExecutor(folder=job.folder, cluster=cluster)
    executor.update_parameters(**job.executor_params)
    return executor


def submit_slurm(job: SlurmJob, cluster: str | None = None) -> Any:
    """Submit through submitit; returns its Job (``.job_id``, ``.result()``). cluster: None lets submitit pick
    (Slurm where sbatch exists), "local" runs the job's tasks as processes here."""
    return _executor(job, cluster).submit(job)


def submit_slurm_array(jobs: Sequence[SlurmJob], cluster: str | None = None) -> list[Any]:
    """Submit jobs of one geometry (executor parameters and log folder) as one job array, one array task per job
    (the fan-out of `bench reproduce --launcher slurm`, see bench.launch); returns their submitit Jobs in order."""
    if not jobs:
        raise BenchError("submit_slurm_array: no jobs")
    first = jobs[0]
    if any(j.executor_params != first.executor_params or j.folder != first.folder for j in jobs):
        raise BenchError("submit_slurm_array: the jobs of one array share their executor parameters and folder")
    return list(_executor(first, cluster).submit_array(list(jobs)))
