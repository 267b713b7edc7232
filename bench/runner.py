"""`bench reproduce`: plan the runs of a paper at a scale, execute them through its recipe, record them."""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bench import papers, provenance
from bench.recipe import RunContext, SeedResult
from bench.registry import BenchError, UnknownName, unknown_name_message
from bench.spec import RunSpec
from bench.store import Store, now


@dataclass
class RunOutcome:
    spec: RunSpec
    run_id: str
    result: dict[str, Any]
    cached: bool


def plan(slug: str, scale: str, entries: list[str] | None = None, seeds: list[int] | None = None,
         data_root: Path | None = None, world_size: int = 1) -> list[RunSpec]:
    recipe = papers.recipe(slug)
    card = papers.card(slug)
    specs: list[RunSpec] = recipe.plan(card, scale, data_root)
    if entries:
        known = sorted({s.entry for s in specs})
        for name in entries:
            if name not in known:
                raise UnknownName(unknown_name_message(f"entry of {slug} at scale {scale}", name, known))
        specs = [s for s in specs if s.entry in entries]
    overrides: dict[str, Any] = {"world_size": world_size if world_size > 1 else None}
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
            device: str = "cpu") -> RunOutcome:
    """Run (or resume) one spec. Under torchrun every rank computes, rank 0 alone writes the record."""
    from bench import distributed as dist

    main = dist.is_main_process()
    recipe = papers.recipe(spec.paper)
    handle = store.open(spec) if main else store.handle(spec)
    dist.barrier()
    existing = store.read_result(handle.dir) if not force else None
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
    try:
        for seed in spec.seeds:
            record = handle.seed_record(seed) if resume else None
            if record is None:
                t0 = time.perf_counter()
                outcome: SeedResult = recipe.run_seed(spec, seed, ctx)
                record = outcome.to_record(seed, time.perf_counter() - t0)
                if main:
                    handle.save_seed(seed, record)
                dist.barrier()
            else:
                ctx.log(f"  seed {seed}: already finished, reusing it")
            finished[seed] = record
    except BaseException as exc:  # record what finished, then let the error (or Ctrl-C) through
        if main:
            status = "partial" if finished else "failed"
            store.finish(handle, finished, prov, status, started, error=f"{type(exc).__name__}: {exc}")
        raise
    result = store.finish(handle, finished, prov, "complete", started) if main else {}
    dist.barrier()
    return RunOutcome(spec, handle.run_id, result, cached=False)


def distributed_worker(argv: list[str]) -> None:
    """Entry of every torchrun worker started by `bench reproduce --nproc N` (see bench.distributed.launch)."""
    from bench import distributed as dist

    opts = json.loads(argv[0])
    data_root = Path(opts["data_root"]) if opts.get("data_root") else None
    specs = plan(opts["paper"], opts["scale"], opts.get("entries"), opts.get("seeds"), data_root,
                 world_size=dist.get_world_size())
    info = dist.init_distributed()
    store = Store()
    for spec in specs:
        out = execute(spec, store, data_root=data_root, resume=opts.get("resume", True),
                      force=opts.get("force", False), device=info.device)
        if dist.is_main_process():
            print(f"{spec.entry} on {spec.dataset}: run {out.run_id} "
                  f"{'cached' if out.cached else 'done'}", flush=True)


def launch(paper: str, scale: str, nproc: int, entries: list[str] | None, seeds: list[int] | None,
           data_root: Path | None, resume: bool, force: bool) -> None:
    from bench.distributed import launch as torchrun

    opts = {"paper": paper, "scale": scale, "entries": entries, "seeds": seeds,
            "data_root": str(data_root) if data_root else None, "resume": resume, "force": force}
    torchrun(nproc, "bench.runner:distributed_worker", [json.dumps(opts)], device="cpu" if scale == "smoke" else "auto")
