"""Cluster fan-out: `bench reproduce PAPER --launcher slurm` submits entries x seeds as one submitit job array.

Each array task computes one seed of one run (`SeedTask`). Slurm gives the task ``nodes x gpus_per_node``
processes, one per GPU, with the torchrun variables exported by `bench.train.slurm.SlurmJob`; each process runs
``python -m bench.launch TASK_JSON`` (`main`), which joins the DDP group like a torchrun worker.

How the seeds of one run meet again (the store merges them):

* A task carries the run's *whole* spec (every seed of it) and computes only its own seed, in the run's own
  directory. So the recipe sees exactly what the local runner would give it (ctf's five-fold mean reads
  ``spec.seeds``, qac's sample store is keyed by ``spec.run_id()``), the seed's record is the one a local run
  would write, and the merged result.json has the run id `bench reproduce` prints. Running each seed as a run of
  its own (``--seeds S``) would not: another run id per seed, and a one-fold run in place of the five-fold mean.
* The run lock (bench.store.RunLock) admits one writer per run for the whole run. An array task holding it for
  hours would make its sibling seeds fail (RunBusy), or, with ``wait``, run one after another while their GPUs
  idle. A task therefore holds only its seed's lock (``<run>/.lock-seed<S>``) while it computes, writing nothing
  but ``seeds/<S>.json``, ``items/<S>/`` and ``work/<S>/``, which no sibling touches; then it takes the run lock,
  waiting, for the moment of the merge (`merge_seeds`): every finished seed on disk goes into result.json,
  "complete" once all of the spec's seeds are there and "partial" before. Whichever task finishes last writes
  the complete record; a task whose run is already complete does nothing.
* Caveat: a plain `bench reproduce` of the same run started while array tasks compute takes the run lock but not
  the seed locks, so it may compute a seed a task is computing. Both write the same files atomically; nothing is
  corrupted, the work is done twice.
"""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.registry import BenchError
from bench.spec import RunSpec
from bench.store import DamagedRecord, RunLock, Store, now

# The command each process of an array task runs, and the submitit cluster of `--launcher slurm`. Tests replace
# them with a module that registers the toy paper and submitit's LocalExecutor ("local"), so the fan-out runs.
WORKER: tuple[str, ...] = (sys.executable, "-m", "bench.launch")
CLUSTER: str | None = "slurm"


@dataclass(frozen=True)
class SeedTask:
    """One array task: seed `seed` of the run `spec` (a RunSpec as JSON, every seed of the run in it)."""

    spec: dict[str, Any]
    seed: int
    results_root: str
    data_root: str | None = None
    device: str = "auto"

    def run_spec(self) -> RunSpec:
        return RunSpec.model_validate(self.spec)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SeedTask:
        return cls(**json.loads(text))


def plan_tasks(specs: Sequence[RunSpec], results_root: Path, data_root: Path | None = None,
               device: str = "auto") -> list[SeedTask]:
    """Entries x seeds: one task per seed of every run, in plan order (absolute paths: a task may start in
    another directory)."""
    root, data = str(Path(results_root).resolve()), str(Path(data_root).resolve()) if data_root else None
    return [SeedTask(spec.model_dump(mode="json"), seed, root, data, device) for spec in specs for seed in spec.seeds]


def task_command(task: SeedTask, worker: Sequence[str] | None = None) -> list[str]:
    return [*(worker or WORKER), task.to_json()]


@dataclass
class Submitted:
    """A submitted task and its submitit job (``.job_id``, ``.paths.stdout``, ``.result()``)."""

    task: SeedTask
    job: Any

    @property
    def line(self) -> str:
        spec = self.task.run_spec()
        return (f"job {self.job.job_id}: {spec.entry} seed {self.task.seed} (run {spec.run_id()}), "
                f"log {self.job.paths.stdout}")


def submit(specs: Sequence[RunSpec], *, results_root: Path, data_root: Path | None = None, device: str = "auto",
           nodes: int = 1, gpus_per_node: int = 1, cpus_per_task: int = 8, timeout_min: int = 24 * 60,
           partition: str | None = None, folder: Path, cluster: str | None = "slurm",
           worker: Sequence[str] | None = None) -> list[Submitted]:
    """Submit entries x seeds of `specs` as one job array of ``nodes x gpus_per_node`` processes per task.

    cluster: "slurm" (the default), "local" (submitit's LocalExecutor: every task a process here; tests) or None
    (submitit picks Slurm when sbatch is there)."""
    from bench.train.slurm import build_slurm_job, submit_slurm_array

    ranks = nodes * gpus_per_node
    wrong = [s.run_id() for s in specs if s.world_size != ranks]
    if wrong:
        raise BenchError(f"runs {', '.join(wrong)} were planned for another process count than --nodes x "
                         f"--gpus-per-node = {ranks}")
    tasks = plan_tasks(specs, results_root, data_root, device)
    if not tasks:
        raise BenchError("nothing to submit: no run planned")
    paper = specs[0].paper
    jobs = [build_slurm_job(task_command(task, worker or WORKER), nodes=nodes, gpus_per_node=gpus_per_node,
                            cpus_per_task=cpus_per_task, timeout_min=timeout_min, partition=partition,
                            name=f"bench-{paper}", folder=folder)
            for task in tasks]
    return [Submitted(task, job) for task, job in zip(tasks, submit_slurm_array(jobs, cluster=cluster))]


LAUNCHERS = ("local", "slurm")


def reproduce_on_cluster(launcher: str, specs: Sequence[RunSpec], store: Store, *, data_root: Path | None = None,
                         device: str = "auto", nproc: int = 1, resume: bool = True, force: bool = False,
                         nodes: int | None = None, gpus_per_node: int | None = None, partition: str | None = None,
                         timeout_min: int | None = None, folder: Path | None = None,
                         log: Callable[[str], None] = print) -> list[Submitted]:
    """`bench reproduce PAPER --launcher slurm`: submit, print the job ids and where their logs go, return.

    The process count of a task is --nodes x --gpus-per-node (each run is planned for it: world_size is part of
    the run id); --nproc, --no-resume and --force are refused rather than half-honoured by independent tasks."""
    if launcher not in LAUNCHERS:
        raise BenchError(f"--launcher takes {' or '.join(LAUNCHERS)}, not {launcher!r}")
    if nproc > 1:
        raise BenchError("--nproc is for --launcher local; under Slurm each task has --nodes x --gpus-per-node "
                         "processes")
    if force or not resume:
        raise BenchError("--force and --no-resume are for --launcher local (array tasks only add seeds to a run); "
                         "delete the run folder (`bench runs` lists it) to recompute it on the cluster")
    nodes, gpus_per_node = 1 if nodes is None else nodes, 1 if gpus_per_node is None else gpus_per_node
    if nodes < 1 or gpus_per_node < 1:
        raise BenchError("--nodes and --gpus-per-node must be >= 1")
    ranks = nodes * gpus_per_node
    specs = [s.with_overrides(world_size=ranks) if ranks > 1 else s for s in specs]
    store.check_writable()
    folder = (Path(folder) if folder else store.root.parent / "slurm").resolve()
    submitted = submit(specs, results_root=store.root, data_root=data_root, device=device, nodes=nodes,
                       gpus_per_node=gpus_per_node, partition=partition, timeout_min=timeout_min or 24 * 60,
                       folder=folder, cluster=CLUSTER, worker=WORKER)
    for item in submitted:
        log(item.line)
    paper = specs[0].paper
    log(f"submitted {len(submitted)} array tasks ({len(specs)} runs x their seeds, {ranks} process"
        f"{'es' if ranks > 1 else ''} each); logs under {folder}; runs recorded under {store.root / paper} as the "
        f"tasks finish: `bench runs {paper}` shows them, `bench table {paper}` once complete")
    return submitted


# ------------------------------------------------------------------------------------------- the array task
class SeedLock(RunLock):
    """The lock of one seed of a run: held by the array task computing it (see the module docstring)."""

    def __init__(self, run_dir: Path, seed: int):
        super().__init__(run_dir)
        self.path = run_dir / f".lock-seed{seed}"


def _complete(store: Store, run_dir: Path) -> dict[str, Any] | None:
    try:
        result = store.read_result(run_dir)
    except DamagedRecord:
        return None  # the merge rewrites it from the seeds on disk
    return result if result and result.get("status") == "complete" else None


def merge_seeds(store: Store, spec: RunSpec, provenance: dict[str, Any], started_at: str,
                error: str | None = None, device: str | None = None,
                log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Under the run lock (waiting for it), write result.json from every finished seed of `spec` on disk."""
    lock = RunLock(store.run_dir(spec))
    lock.acquire(wait=True, log=log)
    try:
        handle = store.handle(spec)
        finished = {seed: record for seed in spec.seeds if (record := handle.seed_record(seed, log=log)) is not None}
        missing = [seed for seed in spec.seeds if seed not in finished]
        status = "complete" if not missing else ("partial" if finished else "failed")
        if missing and error is None:
            error = f"seeds {','.join(map(str, missing))} not finished yet (their array tasks run or failed)"
        try:  # the run started when its first task did
            previous = store.read_result(handle.dir)
        except DamagedRecord:
            previous = None
        if previous and isinstance(previous.get("started_at"), str):
            started_at = min(started_at, previous["started_at"])
        return store.finish(handle, finished, provenance, status, started_at, error=error, device=device)
    finally:
        lock.release()


def run_task(task: SeedTask, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Compute the task's seed (every process of the task), then merge (rank 0); returns the run's record as
    rank 0 last wrote or found it ({} on the other ranks)."""
    from bench import distributed as dist
    from bench import papers, provenance
    from bench.runner import resolve_device

    spec = task.run_spec()
    seed = task.seed
    if seed not in spec.seeds:
        raise BenchError(f"seed {seed} is not a seed of run {spec.run_id()} (seeds {spec.seeds})")
    if dist.get_world_size() != spec.world_size:
        raise BenchError(f"run {spec.run_id()} was planned for {spec.world_size} processes, this task has "
                         f"{dist.get_world_size()}")
    device = resolve_device(task.device, spec.scale)  # under Slurm: this process's own GPU, or the CPU at smoke
    if spec.world_size > 1:
        dist.init_distributed(device=device)  # NCCL on GPUs, gloo on the CPU
    store = Store(Path(task.results_root))
    data_root = Path(task.data_root) if task.data_root else None
    main = dist.is_main_process()
    say = log if main else (lambda m: None)
    run_dir = store.run_dir(spec)
    seed_lock = None
    if main:
        store.check_writable()
        seed_lock = SeedLock(run_dir, seed)
        seed_lock.acquire(wait=True, log=say)
    started, prov, error = now(), provenance.collect(), None
    done: dict[str, Any] | None = None
    try:
        handle = store.open(spec) if main else store.handle(spec)
        dist.barrier()
        done = _complete(store, handle.dir)
        dist.barrier()  # every rank has looked before any rank can finish the run
        if done is not None:
            say(f"run {spec.run_id()} is already complete; nothing to do for seed {seed}")
        elif handle.seed_record(seed, log=say) is not None:
            say(f"seed {seed} of run {spec.run_id()} already finished, merging it")
        else:
            from bench.recipe import RunContext

            ctx = RunContext(handle=handle, data_root=data_root, device=device, resume=True, log=say,
                             show_progress=False)
            say(f"{spec.entry} seed {seed} of run {spec.run_id()} on {device}")
            t0 = time.perf_counter()
            record = papers.recipe(spec.paper).run_seed(spec, seed, ctx).to_record(seed, time.perf_counter() - t0)
            if main:
                handle.save_seed(seed, record)
            dist.barrier()
    except BaseException as exc:  # the other seeds' records still merge; then the error goes through
        error = f"seed {seed}: {type(exc).__name__}: {exc}"
        raise
    finally:
        if seed_lock is not None:
            seed_lock.release()
        if main and done is None:
            done = merge_seeds(store, spec, prov, started, error=error, device=device, log=say)
    if not main:
        return {}
    say(f"run {spec.run_id()}: {done['status']} (seeds {','.join(map(str, done['seeds']))} of "
        f"{','.join(map(str, spec.seeds))})")
    return done


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.launch TASK_JSON``: one process of one array task."""
    from bench import distributed as dist

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.launch TASK_JSON (written by `bench reproduce --launcher slurm`)",
              file=sys.stderr)
        return 2
    try:
        run_task(SeedTask.from_json(args[0]), log=lambda m: print(m, flush=True))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    finally:
        dist.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
