"""`bench reproduce`: plan the runs of a paper at a scale, execute them through its recipe, record them."""
from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bench import papers, provenance
from bench.recipe import RunContext, SeedResult
from bench.registry import BenchError, UnknownName, unknown_name_message
from bench.spec import RunSpec
from bench.store import Store, now


class RunInterrupted(BenchError):
    """Ctrl-C or SIGTERM (sigterm_as_interrupt) during a run: recorded as "interrupted", exit 130."""

    exit_code = 130


def _where_interrupted(exc: BaseException, seed: int | None, seeds: list[int],
                       finished: dict[int, Any]) -> tuple[str, dict[str, Any]]:
    """The one line a Ctrl-C prints, and what the record keeps about where the run stopped.

    bench.train raises TrainingInterrupted (a KeyboardInterrupt carrying the step); other interrupts only know
    the seed."""
    where: dict[str, Any] = {"seed": seed, "seeds_done": sorted(finished)}
    step, total = getattr(exc, "step", None), getattr(exc, "total", None)
    if step is not None:
        where.update(step=step, steps=total, checkpoint_step=getattr(exc, "checkpoint_step", None))
        text = f"interrupted at step {step} of {total}"
    else:
        text = f"interrupted in seed {seed} ({len(finished)} of {len(seeds)} seeds done)"
    return f"{text}; rerun to resume", where


@dataclass
class RunOutcome:
    spec: RunSpec
    run_id: str
    result: dict[str, Any]
    cached: bool


DEVICES = "auto, cpu, cuda or cuda:N"


def device_name(requested: str | None) -> str:
    """`--device` checked and normalised ("auto", "cpu", "cuda", "cuda:N") without asking torch: the cluster
    and torchrun paths resolve it where the job runs."""
    import re

    text = str(requested or "auto").strip().lower()
    if text not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", text):
        raise BenchError(f"--device takes {DEVICES}, not {requested!r}")
    return text


def resolve_device(requested: str | None, scale: str) -> str:
    """The torch device one process of a run computes on, from `--device auto|cpu|cuda|cuda:N`.

    auto: the CPU at smoke scale (its references are CPU numbers, and a smoke run must reproduce them bit for
    bit), CUDA at small and paper scale when torch sees a GPU, else the CPU. Under torchrun "cuda" means the
    process's own GPU, cuda:LOCAL_RANK; naming one GPU (cuda:N) for several processes is refused. CUDA asked
    for where there is none is one line (BenchError, exit 2)."""
    from bench import distributed as dist

    text = device_name(requested)
    if text == "cpu" or (text == "auto" and scale == "smoke"):
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        if text == "auto":
            return "cpu"
        raise BenchError(f"--device {text}: CUDA is not available here (torch {torch.__version__}, "
                         f"torch.cuda.is_available() is false); use --device cpu or auto")
    count = torch.cuda.device_count()
    if dist.launched_by_torchrun():
        if text in ("auto", "cuda"):
            text = f"cuda:{dist.get_local_rank()}"  # one GPU per process
        elif dist.get_world_size() > 1:
            raise BenchError(f"--device {text} names one GPU, but each of the {dist.get_world_size()} processes "
                             f"needs its own: use --device cuda (or auto)")
    elif text == "auto":
        text = "cuda"
    if text != "cuda" and int(text.split(":")[1]) >= count:
        raise BenchError(f"--device {text}: only {count} CUDA device(s) here")
    return text


def rehearsal_caps(scale: str, max_steps: int | None, max_samples: int | None) -> dict[str, int] | None:
    """RunSpec.rehearsal from `--max-steps N --max-samples M` (None: a real run).

    Refused at smoke scale: smoke is already the CPU-sized scale, its recipes do not read the caps, and a
    "capped" smoke run would silently be the full one under another id."""
    caps = {key: value for key, value in (("max_steps", max_steps), ("max_samples", max_samples))
            if value is not None}
    for key, value in caps.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BenchError(f"--{key.replace('_', '-')} must be a positive integer, got {value!r}")
    if caps and scale == "smoke":
        raise BenchError("--max-steps/--max-samples rehearse the small and paper code paths; smoke already runs "
                         "on a CPU in minutes: drop them, or use --scale small or --scale paper")
    return caps or None


def plan(slug: str, scale: str, entries: list[str] | None = None, seeds: list[int] | None = None,
         data_root: Path | None = None, world_size: int = 1,
         rehearsal: dict[str, int] | None = None) -> list[RunSpec]:
    """The run specs of `bench reproduce`. `rehearsal` ({"max_steps": N, "max_samples": M}) turns each into a
    capped rehearsal of the same code path: another run id, never mixed with the real runs."""
    recipe = papers.recipe(slug)
    card = papers.card(slug)
    specs: list[RunSpec] = recipe.plan(card, scale, data_root)
    if entries:
        known = sorted({s.entry for s in specs})
        for name in entries:
            if name not in known:
                raise UnknownName(unknown_name_message(f"entry of {slug} at scale {scale}", name, known))
        specs = [s for s in specs if s.entry in entries]
    overrides: dict[str, Any] = {"world_size": world_size if world_size > 1 else None,
                                 "rehearsal": dict(rehearsal) if rehearsal else None}
    if seeds:
        overrides["seeds"] = list(seeds)
    return [s.with_overrides(**overrides) for s in specs]


def check_data(specs: list[RunSpec], data_root: Path | None) -> None:
    """At paper scale every dataset must be on disk; name what is missing and how to get it."""
    needs = sorted({s.dataset for s in specs if s.scale == "paper"})
    if not needs:
        return
    if data_root is None:
        raise BenchError(f"--scale paper needs the real datasets ({', '.join(needs)}): pass --data-root DIR "
                         f"(`bench assets` lists the expected files and where to get them)")
    from bench.data.cards import check_layout, load_dataset_card

    for name in needs:
        missing = check_layout(load_dataset_card(name), data_root)
        if missing:
            raise BenchError(f"dataset {name!r} is incomplete under {data_root}: missing {missing[0]}"
                             f"{f' (+{len(missing) - 1} more)' if len(missing) > 1 else ''}; "
                             f"see `bench assets` for where to get it")


def execute(spec: RunSpec, store: Store, data_root: Path | None = None, resume: bool = True,
            force: bool = False, log: Callable[[str], None] = print, show_progress: bool = True,
            device: str = "cpu", wait: bool = False) -> RunOutcome:
    """Run (or resume) one spec. Under torchrun every rank computes, rank 0 alone writes the record.

    Rank 0 holds the run's lock while it works: a second process on the same run exits 2 ("run X is being
    written by pid N"), or with wait=True waits for it. A Ctrl-C is recorded as "interrupted" and leaves as
    RunInterrupted (exit 130) with one line saying where the run stopped."""
    from bench import distributed as dist

    main = dist.is_main_process()
    lock = None
    if main:
        store.check_writable()
        lock = store.lock(spec)
        lock.acquire(wait=wait, log=log)
    try:
        with _train_messages_to(log if main else None), sigterm_as_interrupt():
            return _execute_locked(spec, store, data_root, resume, force, log, show_progress, device, main)
    finally:
        if lock is not None:
            lock.release()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM behaves as Ctrl-C while a run works: Slurm's preemption and time limit, torchrun's shutdown and
    `kill` send it, and the run must still leave an "interrupted" record and its last checkpoint to resume from,
    not vanish with a "running" one. Only the main thread may set signal handlers; elsewhere this does nothing."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _train_messages_to(log: Callable[[str], None] | None) -> Iterator[None]:
    """Route bench.train's resume and checkpoint messages ("resuming from step 100 of 200", "checkpoint X is
    corrupt, falling back to Y") to the run's log while it runs."""
    if log is None:
        yield
        return

    class ToLog(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            prefix = "warning: " if record.levelno >= logging.WARNING else ""
            log(f"  {prefix}{record.getMessage()}")

    logger = logging.getLogger("bench.train")
    handler, old_level, old_propagate = ToLog(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # shown once, through `log`, not again by Python's last-resort stderr handler
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


def _execute_locked(spec: RunSpec, store: Store, data_root: Path | None, resume: bool, force: bool,
                    log: Callable[[str], None], show_progress: bool, device: str, main: bool) -> RunOutcome:
    from bench import distributed as dist

    recipe = papers.recipe(spec.paper)
    run_dir = store.run_dir(spec)
    # Every rank looks before rank 0's open() repairs spec.json, so all of them take the same branch below: a
    # damaged record is recomputed, never reported "cached".
    damage = store.damage(run_dir) if run_dir.exists() else None
    dist.barrier()
    if damage and main:
        log(f"  warning: damaged run record {damage}; recomputing it")
    handle = store.open(spec) if main else store.handle(spec)
    dist.barrier()
    existing = store.read_result(handle.dir) if not force and not damage else None
    if existing and existing.get("status") == "complete" and resume:
        return RunOutcome(spec, handle.run_id, existing, cached=True)
    if not resume and main and handle.dir.exists():
        for sub in ("seeds", "items", "work"):
            shutil.rmtree(handle.dir / sub, ignore_errors=True)
    dist.barrier()
    ctx = RunContext(handle=handle, data_root=data_root, device=device, resume=resume,
                     log=log if main else (lambda m: None), show_progress=show_progress and main)
    started = now()
    prov = provenance.collect()
    finished: dict[int, dict[str, Any]] = {}
    seed: int | None = None
    try:
        for seed in spec.seeds:
            record = handle.seed_record(seed, log=ctx.log) if resume else None
            if record is None:
                shards = handle.shards_done(seed) if resume else 0
                if shards:
                    ctx.log(f"  seed {seed}: resuming, {shards} item shard{'s' if shards > 1 else ''} already "
                            f"done")
                t0 = time.perf_counter()
                outcome: SeedResult = recipe.run_seed(spec, seed, ctx)
                record = outcome.to_record(seed, time.perf_counter() - t0)
                if main:
                    handle.save_seed(seed, record)
                dist.barrier()
            else:
                ctx.log(f"  seed {seed} already finished, reusing it")
            finished[seed] = record
    except KeyboardInterrupt as exc:
        line, where = _where_interrupted(exc, seed, spec.seeds, finished)
        if main:
            store.finish(handle, finished, prov, "interrupted", started, error=line, interrupted=where,
                         device=device)
        raise RunInterrupted(line) from None
    except BaseException as exc:  # record what finished, then let the error through
        if main:
            status = "partial" if finished else "failed"
            store.finish(handle, finished, prov, status, started, error=f"{type(exc).__name__}: {exc}",
                         device=device)
        raise
    result = store.finish(handle, finished, prov, "complete", started, device=device) if main else {}
    dist.barrier()
    return RunOutcome(spec, handle.run_id, result, cached=False)


def distributed_worker(argv: list[str]) -> None:
    """Entry of every torchrun worker started by `bench reproduce --nproc N` (see bench.distributed.launch)."""
    from bench import distributed as dist

    opts = json.loads(argv[0])
    data_root = Path(opts["data_root"]) if opts.get("data_root") else None
    specs = plan(opts["paper"], opts["scale"], opts.get("entries"), opts.get("seeds"), data_root,
                 world_size=dist.get_world_size(), rehearsal=opts.get("rehearsal"))
    dist.init_distributed()
    device = resolve_device(opts.get("device"), opts["scale"])  # this rank's own GPU (cuda:LOCAL_RANK) or the CPU
    store = Store()
    for spec in specs:
        out = execute(spec, store, data_root=data_root, resume=opts.get("resume", True),
                      force=opts.get("force", False), device=device)
        if dist.is_main_process():
            print(f"{spec.entry} on {spec.dataset}: run {out.run_id} "
                  f"{'cached' if out.cached else 'done'}", flush=True)


def launch(paper: str, scale: str, nproc: int, entries: list[str] | None, seeds: list[int] | None,
           data_root: Path | None, resume: bool, force: bool, device: str = "auto",
           rehearsal: dict[str, int] | None = None) -> None:
    """`bench reproduce --nproc N`: N torchrun workers (bench.runner.distributed_worker) on `device` as
    resolve_device reads it: on CUDA one GPU per worker over NCCL, on the CPU gloo with CUDA hidden."""
    from bench.distributed import launch as torchrun

    where = resolve_device(device, scale)
    if where.startswith("cuda:"):
        raise BenchError(f"--device {where} names one GPU, but each of the {nproc} processes needs its own: "
                         f"use --device cuda (or auto)")
    opts = {"paper": paper, "scale": scale, "entries": entries, "seeds": seeds,
            "data_root": str(data_root) if data_root else None, "resume": resume, "force": force,
            "device": where, "rehearsal": rehearsal or None}
    torchrun(nproc, "bench.runner:distributed_worker", [json.dumps(opts)], device=where)
