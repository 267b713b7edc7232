"""`bench evaluate PAPER --entry E --checkpoint PATH`: score an official released checkpoint with the paper's protocol.

What most users do first: "does the released model give the paper's number on my machine?" The checkpoint is read
in its official layout (the file the authors publish, untouched), evaluated with the paper's protocol, and recorded
as a run in the store, so `bench table PAPER --all` shows our number beside the paper's, in the same dialect, with Δ.

The hook contract (what a paper provides)
------------------------------------------
methods/<paper>/released.py defines the three hooks below. The core finds them there (the recipe's sibling module
`released`); a recipe may also re-export them with one line
(`from methods.<paper>.released import LAYOUTS, evaluate_released, released_spec  # noqa: F401`), which wins:

    LAYOUTS: dict[str, Layout]
        card entry id -> how its official release is stored (file names, format, where to get it, which part of
        the file holds the weights). An entry absent from LAYOUTS cannot be evaluated ("no released checkpoint").

    released_spec(card, entry: str, scale: str, checkpoint: Path, dataset: str | None) -> dict
        (`checkpoint` and `dataset` are passed only to hooks whose signature names them. `checkpoint`: for a
        release whose file decides the dataset, e.g. edm-ffhq-64x64-uncond-vp.pkl; the file is known to exist.
        `dataset`: `bench evaluate --dataset NAME`, for protocols scored on one of several sets (SR benchmarks);
        None when not given, the hook then picks its default. A hook without the parameter refuses --dataset.)
        the RunSpec fields of this evaluation, other than paper/entry/impl/scale/seeds/rehearsal, which the core
        fills: dataset, split, metrics (dialects), sampler, precision, args (architecture) and `setting`.
        The metric records evaluate_released returns must carry, as their own `setting`, exactly the setting of
        the paper's reported cell they stand beside (e.g. {cfg: 1.0, sampler: ddpm-250, train_iters: 400000}),
        and the run's dataset/split/metric must be the cell's: that is what puts Δ in the table. A release that
        does not match any cell (another training length) records its honest setting and simply gets no Δ.
        The core adds the checkpoint to args ({"checkpoint": {"file": name, "sha256": hex}}) and to setting
        ({"checkpoint": "<file>@<sha256[:12]>"}), so two checkpoints are two runs that both stay in the store.

    evaluate_released(spec: RunSpec, checkpoint: Path, ctx: RunContext) -> SeedResult
        load the file (use `read_checkpoint` and `load_strict` below: a file in another layout fails with one line
        naming the missing/unexpected keys), build bench's own model, evaluate it with the paper's protocol on
        ctx.device, with data under ctx.data_root, and return the metric records (bench.recipe.metric_record).
        Honour a rehearsal: every evaluated/generated item count goes through spec.capped("max_samples", n)
        (`bench evaluate --max-samples M`); seed sampling from the seed the core passes in ctx.extra["seed"]
        (ctx.extra["checkpoint_sha256"] holds the file's hash). `checkpoint` may be a folder (HF model folders).
        A missing asset (VAE, reference batch, dataset file) raises `missing_file(...)`: one line naming the file
        and where to get it.

The core (this module) resolves the paper and entry, checks the checkpoint file exists (else one line naming it
and the card's code URL / the layout's source), hashes it, builds the RunSpec, runs the hook once per seed under
the run's lock and writes the record like `bench reproduce` does (seeds/, result.json with status).
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.registry import BenchError

SCALES = ("paper", "small")


@dataclass(frozen=True)
class Layout:
    """How one entry's official release is stored."""

    files: tuple[str, ...]          # the official file name(s), e.g. ("DiT-XL-2-256x256.pt",)
    source: str                     # where to get it: release page or download URL
    format: str                     # e.g. "torch.save of a plain state dict", "EDM pickle {'ema': Module}"
    weights: str = ""               # which part holds the evaluated weights, e.g. "['ema']" ("" = the whole file)
    note: str = ""                  # anything else a user must know (training length, EMA or not, ...)
    extra: dict[str, Any] = field(default_factory=dict)  # paper-specific facts (architecture args, ...)


class CheckpointError(BenchError):
    """A checkpoint that is missing or not in the official layout: one line, exit 2."""


def missing_file(path: Path | str, what: str, where: str) -> CheckpointError:
    """The one-line error for a file that is not there: what it is and where to get it (raise it)."""
    return CheckpointError(f"{what} not found: {path}; get it from {where}")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file; of a folder (an HF model folder), over its files' relative paths and contents in
    sorted order, so the same release hashes the same wherever it is unpacked."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(f"{file.relative_to(path).as_posix()}\n".encode())
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(chunk), b""):
                digest.update(block)
    return digest.hexdigest()


def read_checkpoint(path: Path, what: str = "checkpoint") -> Any:
    """torch.load on the CPU with weights_only=True: tensors and plain containers only, so a downloaded file can
    run no code. argparse.Namespace is allowed too (DiT/U-DiT train.py store their args in it). Anything else in
    the file is refused in one line naming what the file holds."""
    import argparse
    import pickle
    import zipfile

    import torch

    with open(path, "rb") as fh:
        legacy_pickle = fh.read(1) == b"\x80"  # torch < 1.6 files are a pickle stream (protocol >= 2)
    if not (zipfile.is_zipfile(path) or legacy_pickle):
        raise CheckpointError(f"{what} {path} is not a readable torch file (neither torch's zip format nor a pickle)")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if "Unsupported" in ln or "invalid load key" in ln]
        detail = lines[0] if lines else str(exc).splitlines()[0]
        raise CheckpointError(f"{what} {path} cannot be read as tensors only ({detail}); bench never unpickles "
                              f"code from a downloaded file") from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{what} {path} is not a readable torch file ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def pick(obj: Any, key: str, path: Path, expected: str) -> Any:
    """obj[key] of a checkpoint dict; absent -> one line naming the keys the file does have."""
    if not isinstance(obj, Mapping) or key not in obj:
        have = sorted(obj)[:6] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f"checkpoint {path} is not in the official layout ({expected}): no {key!r} entry "
                              f"(it has {have})")
    return obj[key]


def _first(names: list[str], count: int = 4) -> str:
    shown = ", ".join(names[:count])
    return shown + (f" (+{len(names) - count} more)" if len(names) > count else "")


def layout_problem(model: Any, state: Mapping[str, Any]) -> str | None:
    """What keeps `state` from loading strictly into `model`: missing/unexpected keys (first few) or the first
    shape mismatch; None when it loads."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    parts = []
    if missing:
        parts.append(f"missing keys {_first(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {_first(unexpected)}")
    if not parts:
        for k, v in own.items():
            shape = tuple(getattr(state[k], "shape", ()))
            if shape != tuple(v.shape):
                parts.append(f"{k} has shape {list(shape)}, the model expects {list(v.shape)}")
                break
    return "; ".join(parts) or None


def load_strict(model: Any, state: Mapping[str, Any], path: Path, layout: str) -> Any:
    """model.load_state_dict(state, strict=True), or one line saying which keys do not fit `layout`."""
    problem = layout_problem(model, state)
    if problem:
        raise CheckpointError(f"checkpoint {path} is not in the official {layout} layout: {problem}")
    model.load_state_dict(dict(state), strict=True)
    return model


# ---------------------------------------------------------------------------------------------- the command
HOOKS = ("LAYOUTS", "released_spec", "evaluate_released")


def _hooks(paper: str) -> Any:
    """The module holding the paper's hooks: its recipe if the recipe re-exports them, else the recipe's sibling
    module `released` (methods/<paper>/released.py)."""
    from bench import papers

    recipe = papers.recipe(paper)
    if all(hasattr(recipe, name) for name in HOOKS):
        return recipe
    try:
        module = importlib.import_module(recipe.__name__.rsplit(".", 1)[0] + ".released")
    except ModuleNotFoundError as exc:
        if not exc.name or not exc.name.endswith(".released"):
            raise
        module = None
    if module is None or not all(hasattr(module, name) for name in HOOKS):
        raise BenchError(f"{paper} cannot evaluate released checkpoints yet (no released-checkpoint hook: "
                         f"methods/<paper>/released.py, see bench/evaluate.py)")
    return module


def layout_for(paper: str, entry: str) -> Layout:
    from bench import papers

    recipe = _hooks(paper)
    layouts: dict[str, Layout] = recipe.LAYOUTS
    if entry not in layouts:
        has = ", ".join(sorted(layouts)) or "none"
        card = papers.card(paper)
        raise BenchError(f"{paper} entry {entry!r} has no released checkpoint that bench reads (released: {has}; "
                         f"code: {card.code or 'none'})")
    return layouts[entry]


def checkpoint_tag(path: Path, sha: str) -> str:
    """The checkpoint as a run setting: '<file>@<sha256[:12]>' (',' and '=' replaced: setting keys use them)."""
    name = path.name.replace(",", "_").replace("=", "_")
    return f"{name}@{sha[:12]}"


def build_spec(paper: str, entry: str, checkpoint: Path, scale: str = "paper", seeds: list[int] | None = None,
               max_samples: int | None = None, sha: str | None = None, dataset: str | None = None) -> Any:
    """The RunSpec of one evaluation (the checkpoint must exist; see `check_checkpoint`)."""
    from bench import papers
    from bench.spec import RunSpec

    if scale not in SCALES:
        raise BenchError(f"bench evaluate runs at scale paper or small (not {scale})")
    recipe = _hooks(paper)
    card = papers.card(paper)
    impl = next(e.impl for e in card.entries if e.id == entry)
    takes = inspect.signature(recipe.released_spec).parameters
    extra: dict[str, Any] = {"checkpoint": checkpoint} if "checkpoint" in takes else {}
    if "dataset" in takes:
        extra["dataset"] = dataset
    elif dataset is not None:
        raise BenchError(f"{paper} evaluates {entry} on one dataset only: drop --dataset")
    fields = dict(recipe.released_spec(card, entry, scale, **extra))
    sha = sha or sha256_file(checkpoint)
    args = {**fields.pop("args", {}), "checkpoint": {"file": checkpoint.name, "sha256": sha}}
    setting = {**fields.pop("setting", {}), "checkpoint": checkpoint_tag(checkpoint, sha)}
    rehearsal = {"max_samples": int(max_samples)} if max_samples else {}
    fields.setdefault("recipe_version", int(getattr(recipe, "VERSION", 1)))  # a hook module may version itself
    return RunSpec(paper=paper, entry=entry, impl=impl or "released", args=args, setting=setting, scale=scale,
                   seeds=list(seeds or [0]), rehearsal=rehearsal, **fields)


def check_checkpoint(paper: str, entry: str, checkpoint: Path) -> Layout:
    """The entry's layout; a missing file -> one line naming it and where to get it."""
    layout = layout_for(paper, entry)
    if not checkpoint.exists():
        raise missing_file(checkpoint, f"released checkpoint of {entry} ({' or '.join(layout.files)})",
                           layout.source)
    return layout


def run(paper: str, entry: str, checkpoint: Path, scale: str = "paper", data_root: Path | None = None,
        seeds: list[int] | None = None, max_samples: int | None = None, device: str = "cpu",
        store: Any = None, force: bool = False, log: Callable[[str], None] = print,
        dataset: str | None = None) -> dict[str, Any]:
    """Evaluate one released checkpoint and record it; returns the run's result.json (cached if complete)."""
    from bench import provenance
    from bench.recipe import RunContext
    from bench.store import Store, now

    check_checkpoint(paper, entry, checkpoint)
    recipe = _hooks(paper)
    sha = sha256_file(checkpoint)
    spec = build_spec(paper, entry, checkpoint, scale, seeds, max_samples, sha, dataset)
    store = store or Store()
    store.check_writable()
    lock = store.lock(spec)
    lock.acquire(log=log)
    try:
        handle = store.open(spec)
        damaged = store.damage(handle.dir)  # a damaged record is recomputed, never reported as cached
        if damaged:
            log(f"  warning: damaged run record {damaged}; recomputing it")
        existing = None if force or damaged else store.read_result(handle.dir)
        if existing and existing.get("status") == "complete":
            log(f"  run {handle.run_id} already complete (cached); --force recomputes it")
            return existing
        ctx = RunContext(handle=handle, data_root=data_root, device=device, log=log,
                         extra={"checkpoint_sha256": sha})
        started, prov = now(), provenance.collect()
        finished: dict[int, dict[str, Any]] = {}
        from bench.runner import sigterm_as_interrupt

        try:
            with sigterm_as_interrupt():
                for seed in spec.seeds:
                    record = None if force else handle.seed_record(seed, log=log)
                    if record is None:
                        ctx.extra["seed"] = seed
                        t0 = time.perf_counter()
                        outcome = _evaluate_seed(recipe, spec, checkpoint, ctx)
                        outcome.provenance = {**outcome.provenance, "checkpoint": str(checkpoint),
                                              "checkpoint_sha256": sha, "device": device}
                        record = outcome.to_record(seed, time.perf_counter() - t0)
                        handle.save_seed(seed, record)
                    finished[seed] = record
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM, as `bench reproduce`: an interrupted record, exit 130
            from bench.runner import RunInterrupted

            line = f"interrupted in seed {ctx.extra.get('seed')} ({len(finished)} of {len(spec.seeds)} seeds done)"
            store.finish(handle, finished, prov, "interrupted", started, error=line,
                         interrupted={"seed": ctx.extra.get("seed"), "seeds_done": sorted(finished)})
            raise RunInterrupted(f"{line}; rerun to resume") from None
        except BaseException as exc:
            status = "partial" if finished else "failed"
            store.finish(handle, finished, prov, status, started, error=f"{type(exc).__name__}: {exc}")
            raise
        return store.finish(handle, finished, prov, "complete", started)
    finally:
        lock.release()


def _evaluate_seed(hooks: Any, spec: Any, checkpoint: Path, ctx: Any) -> Any:
    """One seed through the paper's hook; a rehearsal may use stand-in assets (bench.assets.rehearsal_assets)."""
    from bench import assets

    rehearsal = getattr(assets, "rehearsal_assets", None)
    if rehearsal is None or not spec.is_rehearsal:
        return hooks.evaluate_released(spec, checkpoint, ctx)
    with rehearsal(True):
        return hooks.evaluate_released(spec, checkpoint, ctx)


def resolve_device(value: str, scale: str) -> str:
    """--device auto|cpu|cuda[:N], by the one rule every command uses (bench.runner.resolve_device): evaluate runs
    the paper/small protocols, so auto is CUDA when torch sees a GPU, else the CPU."""
    from bench.runner import resolve_device as shared

    return shared(value, scale)


def beside_paper(paper: str, result: dict[str, Any], store: Any = None) -> list[dict[str, Any]]:
    """Each quality metric of an evaluation run, with the paper's cell it sits beside in `bench table --all`
    (same entry, dataset, split, setting and a comparable dialect) and Δ = ours - paper; None where none does."""
    import math

    from bench import table as table_mod

    frame = table_mod.build(paper, store)
    mine = frame[frame["run_id"] == result["run_id"]]
    rows = []
    for _, r in mine.iterrows():
        paper_value = r["paper"] if r["paper"] is not None and not (isinstance(r["paper"], float)
                                                                   and math.isnan(r["paper"])) else None
        delta = r["delta"] if paper_value is not None else None
        ours_metric = next((m["metric"] for m in result["metrics"]
                            if table_mod.setting_key(m.get("setting", {})) == r["setting"]
                            and table_mod.comparable(m["metric"], r["metric"])), r["metric"])
        rows.append({"metric": ours_metric, "setting": r["setting"], "ours": float(r["ours"]),
                     "paper_metric": r["metric"] if paper_value is not None else None,
                     "paper": paper_value, "delta": float(delta) if delta is not None else None,
                     "source": r["source"] or None})
    return rows


def released_module(paper: str) -> Any:
    """The module holding the paper's hooks (for tests and tools)."""
    return _hooks(paper)
