"""The run store: one directory per run, every file written atomically.

results/runs/<paper>/<run-id>/
    spec.json            the RunSpec (the id is its hash)
    seeds/<seed>.json    one finished seed: its metric records, cost and provenance extras
    items/<seed>/<shard>.jsonl   per-item rows (per image, detection, prompt), one file per finished shard
    result.json          aggregate over seeds: schema_version, metrics, cost, provenance, status

    .lock                held (fcntl.flock) by the one process writing the run; holds its pid

A killed run resumes: finished seeds and shards are on disk and are not recomputed; a shard file exists
only once complete, so rows are never duplicated. BENCH_RESULTS moves the store.

result.json records where the run computed in ``cost["device"]`` ("cpu", "cuda", "cuda:N": the device the
runner gave the recipe, i.e. rank 0's under torchrun; a device the recipe records itself wins). A rehearsal
(RunSpec.rehearsal: training steps and items capped, `bench reproduce --max-steps/--max-samples`) carries
``"rehearsal": {caps}``; a real run has no such key. Rehearsals are never mixed with real runs: `latest` keys
on the flag and leaves them out unless asked (`rehearsals=True`, for the tables that badge them
"[small, rehearsal]"); claims and the `bench check` gate never use them.

A damaged record (truncated result.json, missing keys, unreadable spec.json) is never trusted: readers skip it
with a warning naming the file and what is wrong, and `bench reproduce` recomputes it from the finished seeds.
Folders whose name starts with "_" or "." (the store's `_shared` assets) are not runs.
"""
from __future__ import annotations

import json
import math
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from bench import atomic
from bench.papers import REPO_ROOT
from bench.registry import BenchError
from bench.spec import RunSpec

SCHEMA_VERSION = 1


def default_root() -> Path:
    return Path(os.environ.get("BENCH_RESULTS", REPO_ROOT / "results" / "runs"))


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def setting_key(setting: dict[str, Any]) -> str:
    """A stable, readable key for a metric's setting, e.g. 'nfe=10,sampler=ddim'."""
    return ",".join(f"{k}={setting[k]}" for k in sorted(setting))


def parse_setting_key(key: str) -> dict[str, Any]:
    """The inverse of bench.store.setting_key for the values settings hold (numbers, booleans, names)."""
    setting: dict[str, Any] = {}
    for part in [p for p in key.split(",") if p]:
        name, _, raw = part.partition("=")
        value: Any = raw
        if raw in ("True", "False"):
            value = raw == "True"
        else:
            for cast in (int, float):
                try:
                    value = cast(raw)
                    break
                except ValueError:
                    continue
        setting[name] = value
    return setting


def aggregate(values: list[float]) -> dict[str, Any]:
    """Mean over seeds with the sample std and a 95% Student-t interval (None with one seed)."""
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return {"value": mean, "std": None, "ci95": None}
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    from scipy.stats import t

    half = float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return {"value": mean, "std": std, "ci95": [mean - half, mean + half]}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def result_problem(data: Any) -> str | None:
    """What makes a result.json unusable (None if nothing): the fields every reader relies on."""
    if not isinstance(data, dict):
        return "not a JSON object"
    if data.get("schema_version") != SCHEMA_VERSION:
        return f"unknown schema_version {data.get('schema_version')!r}"
    for key in ("run_id", "paper", "entry", "dataset", "scale", "status", "finished_at"):
        if not isinstance(data.get(key), str):
            return f"field {key} is missing or not a string"
    if data.get("setting") is not None and not isinstance(data["setting"], dict):
        return "field setting must be an object"
    for key in ("provenance", "cost", "rehearsal"):
        if not isinstance(data.get(key, {}), dict):
            return f"field {key} must be an object"
    if not isinstance(data.get("metrics"), list):
        return "field metrics is missing or not a list"
    for i, m in enumerate(data["metrics"]):
        if not (isinstance(m, dict) and isinstance(m.get("metric"), str) and _is_number(m.get("value"))):
            return f"metrics[{i}] needs a metric name and a numeric value"
        if not isinstance(m.get("setting", {}), dict):
            return f"metrics[{i}].setting must be an object"
        seeds = m.get("per_seed", {})
        if not (isinstance(seeds, dict) and all(_is_number(v) for v in seeds.values())):
            return f"metrics[{i}].per_seed must map seeds to numbers"
    return None


def _read_json(path: Path) -> tuple[Any, str | None]:
    """(data, None) or (None, what is wrong) for one JSON file."""
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except json.JSONDecodeError as exc:
        return None, f"truncated or invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"


def spec_problem(run_dir: Path) -> str | None:
    """What is wrong with a run's spec.json (None if fine or absent: records written by hand may lack one)."""
    path = run_dir / "spec.json"
    if not path.exists():
        return None
    data, problem = _read_json(path)
    if problem:
        return problem
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("paper", "entry", "dataset")):
        return "lacks paper, entry or dataset"
    return None


def _parse_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of one item shard; a damaged file is one DamagedRecord line naming it and the bad line."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DamagedRecord(f"item shard {path} is unreadable ({exc}); delete it to recompute it") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict):
            raise DamagedRecord(f"item shard {path} is damaged at line {number}; delete it to recompute it")
        rows.append(row)
    return rows


def seed_problem(data: Any) -> str | None:
    """What makes a seeds/<seed>.json unusable: it must hold its metric records."""
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), list):
        return "no metrics list"
    for i, m in enumerate(data["metrics"]):
        if not (isinstance(m, dict) and isinstance(m.get("metric"), str) and _is_number(m.get("value"))):
            return f"metrics[{i}] needs a metric name and a numeric value"
    return None


@dataclass
class RunRecord:
    """Everything in one run directory, read without trusting it: `problems` says what is damaged."""

    dir: Path
    spec: dict[str, Any] | None
    result: dict[str, Any] | None
    problems: list[str]


def is_rehearsal(record: dict[str, Any]) -> bool:
    """Whether a result.json (or spec.json) is a capped rehearsal, whose numbers mean nothing."""
    return bool(record.get("rehearsal"))


def scale_badge(record: dict[str, Any]) -> str:
    """What a table prints beside our number: the scale, and "rehearsal" for a capped rehearsal ("small, rehearsal")."""
    return f"{record.get('scale')}, rehearsal" if is_rehearsal(record) else str(record.get("scale"))


def run_key(result: dict[str, Any]) -> tuple[str, str, str, str]:
    """What identifies a run across code versions: paper, entry, dataset and the spec-level setting."""
    return (result["paper"], result["entry"], result["dataset"], setting_key(result.get("setting") or {}))


@dataclass
class RunHandle:
    """A run's directory and the writes a recipe may make into it."""

    spec: RunSpec
    dir: Path

    @property
    def run_id(self) -> str:
        return self.dir.name

    def seed_record(self, seed: int, log: Callable[[str], None] | None = None) -> dict[str, Any] | None:
        """A finished seed's record, or None; a damaged one is recomputed, never trusted (`log` says so)."""
        path = self.dir / "seeds" / f"{seed}.json"
        if not path.exists():
            return None
        data, problem = _read_json(path)
        problem = problem or seed_problem(data)
        if problem:
            if log is not None:
                log(f"warning: {path} is damaged ({problem}); recomputing seed {seed}")
            return None
        return data

    def shards_done(self, seed: int) -> int:
        folder = self.dir / "items" / str(seed)
        return len(list(folder.glob("*.jsonl"))) if folder.is_dir() else 0

    def save_seed(self, seed: int, record: dict[str, Any]) -> None:
        atomic.write_json(self.dir / "seeds" / f"{seed}.json", record)

    def shard_path(self, seed: int, shard: str) -> Path:
        return self.dir / "items" / str(seed) / f"{shard}.jsonl"

    def shard_done(self, seed: int, shard: str) -> bool:
        """Whether the shard is on disk and readable; a damaged one (cut short or edited by hand: shards are
        written atomically) is moved aside to ``*.corrupt`` so that it is recomputed."""
        path = self.shard_path(seed, shard)
        if not path.exists():
            return False
        try:
            _parse_rows(path)
        except DamagedRecord:
            os.replace(path, path.with_name(path.name + ".corrupt"))
            return False
        return True

    def write_shard(self, seed: int, shard: str, rows: Iterable[dict[str, Any]]) -> None:
        text = "".join(json.dumps(row, sort_keys=True, default=str) + "\n" for row in rows)
        atomic.write_text(self.shard_path(seed, shard), text)

    def read_items(self, seed: int | None = None) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        seed_dirs = [self.dir / "items" / str(seed)] if seed is not None else sorted((self.dir / "items").glob("*"))
        for seed_dir in seed_dirs:
            for path in sorted(seed_dir.glob("*.jsonl")):
                rows.extend(_parse_rows(path))
        return rows

    def work_dir(self, seed: int) -> Path:
        """Scratch space for checkpoints and samples of one seed (kept for resume)."""
        path = self.dir / "work" / str(seed)
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class Store:
    root: Path = field(default_factory=default_root)

    def run_dir(self, spec: RunSpec) -> Path:
        return self.root / spec.paper / spec.run_id()

    def check_writable(self) -> None:
        """Fail early, in one line, if runs cannot be recorded (before any work is done)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-"):
                pass
        except OSError as exc:
            raise BenchError(f"results directory is not writable: {self.root} ({exc.strerror or exc}); set "
                             f"BENCH_RESULTS to a writable folder") from None

    def handle(self, spec: RunSpec) -> RunHandle:
        """The run's handle without writing anything (non-zero ranks, read-only use)."""
        return RunHandle(spec, self.run_dir(spec))

    def open(self, spec: RunSpec) -> RunHandle:
        """The run's handle; spec.json is (re)written unless it already holds exactly this spec, so a damaged
        one is repaired (the run id is the spec's hash: the spec is known exactly)."""
        self.check_writable()
        run_dir = self.run_dir(spec)
        spec_path = run_dir / "spec.json"
        wanted = json.loads(json.dumps(spec.model_dump(mode="json"), default=str))
        current, _ = _read_json(spec_path) if spec_path.exists() else (None, None)
        if current != wanted:
            atomic.write_json(spec_path, wanted)
        return RunHandle(spec, run_dir)

    def lock(self, spec: RunSpec) -> RunLock:
        return RunLock(self.run_dir(spec))

    def inspect(self, run_dir: Path) -> RunRecord:
        """Read a run directory, collecting what is damaged instead of raising."""
        problems = []
        spec = None
        problem = spec_problem(run_dir)
        if problem:
            problems.append(f"{run_dir / 'spec.json'}: {problem}")
        elif (run_dir / "spec.json").exists():
            spec, _ = _read_json(run_dir / "spec.json")
        result = None
        path = run_dir / "result.json"
        if path.exists():
            result, problem = _read_json(path)
            problem = problem or result_problem(result)
            if problem:
                problems.append(f"{path}: {problem}")
                result = None
        return RunRecord(run_dir, spec if isinstance(spec, dict) else None, result, problems)

    def damage(self, run_dir: Path) -> str | None:
        """What is wrong with a run's record ("<path>: what", "; "-joined), None if it is sound."""
        problems = self.inspect(run_dir).problems
        return "; ".join(problems) if problems else None

    def read_result(self, run_dir: Path) -> dict[str, Any] | None:
        """The run's result.json (None when absent); a damaged one raises DamagedRecord naming what is wrong."""
        path = run_dir / "result.json"
        if not path.exists():
            return None
        data, problem = _read_json(path)
        problem = problem or result_problem(data)
        if problem:
            raise DamagedRecord(f"run record {path} is damaged: {problem}; `bench reproduce` recomputes it")
        return data

    def finish(self, handle: RunHandle, seeds: dict[int, dict[str, Any]], provenance: dict[str, Any],
               status: str, started_at: str, error: str | None = None,
               interrupted: dict[str, Any] | None = None, device: str | None = None) -> dict[str, Any]:
        """Aggregate the finished seeds into result.json (`interrupted`: where an interrupted run stopped;
        `device`: where it computed, kept in cost["device"] unless a seed recorded its own)."""
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for seed, record in sorted(seeds.items()):
            for m in record.get("metrics", []):
                key = (m["metric"], setting_key(m.get("setting", {})))
                group = groups.setdefault(key, {"metric": m["metric"], "setting": m.get("setting", {}),
                                                "n": m.get("n"), "protocol": m.get("protocol", {}),
                                                "per_seed": {}})
                if "floor" in m:  # a sanity metric keeps its floor (bench/sanity.py)
                    group["floor"] = m["floor"]
                group["per_seed"][str(seed)] = m["value"]
        metrics = []
        for group in groups.values():
            values = [float(v) for v in group["per_seed"].values()]
            metrics.append({**group, **aggregate(values)})
        cost: dict[str, Any] = {}
        extras: dict[str, Any] = {}
        wall = 0.0
        for record in seeds.values():
            cost.update(record.get("cost", {}))
            extras.update(record.get("provenance", {}))
            wall += float(record.get("wall_s", 0.0))
        cost["wall_s"] = wall
        if device is not None:
            cost.setdefault("device", device)
        spec = handle.spec
        result = {
            "schema_version": SCHEMA_VERSION,
            "run_id": handle.run_id,
            "paper": spec.paper,
            "entry": spec.entry,
            "impl": spec.impl,
            "dataset": spec.dataset,
            "split": spec.split,
            "scale": spec.scale,
            "stands_for": spec.stands_for,
            "setting": spec.setting,
            **({"rehearsal": dict(spec.rehearsal)} if spec.rehearsal else {}),  # a real run's record is unchanged
            "status": status,
            "error": error,
            **({"interrupted": interrupted} if interrupted else {}),
            "seeds": sorted(seeds),
            "metrics": metrics,
            "cost": cost,
            "provenance": {**provenance, **extras, "world_size": spec.world_size, "precision": spec.precision,
                           "seeds": spec.seeds},
            "started_at": started_at,
            "finished_at": now(),
        }
        atomic.write_json(handle.dir / "result.json", result)
        return result

    def iter_results(self, paper: str | None = None,
                     problems: list[str] | None = None) -> Iterator[tuple[Path, dict[str, Any]]]:
        """Every sound run record; a damaged one is reported in `problems` (path and what is wrong) and
        skipped, so one bad file never takes a whole table, gate or claim down."""
        base = self.root / paper if paper else self.root
        if not base.exists():
            return
        paths = base.glob("*/result.json") if paper else base.glob("*/*/result.json")
        for path in sorted(p for p in paths if not _hidden(p.parent) and not _hidden(p.parent.parent)):
            record = self.inspect(path.parent)
            if record.problems:
                if problems is not None:
                    problems.append(f"skipped damaged run record {'; '.join(record.problems)} "
                                    f"(`bench reproduce {path.parent.parent.name}` recomputes it)")
                continue
            yield path, record.result

    def latest(self, paper: str | None = None, problems: list[str] | None = None,
               statuses: tuple[str, ...] = ("complete",), rehearsals: bool = False) -> list[dict[str, Any]]:
        """The newest record per (paper, entry, dataset, scale, run setting such as the SR scale, rehearsal or
        not). Rehearsals are left out unless `rehearsals`; even then a newer rehearsal never stands in for a
        real run: each is the newest of its own kind."""
        newest: dict[tuple[Any, ...], dict[str, Any]] = {}
        for _, data in self.iter_results(paper, problems):
            if data.get("status") not in statuses or (is_rehearsal(data) and not rehearsals):
                continue
            key = run_key(data) + (data["scale"], is_rehearsal(data))
            if key not in newest or data["finished_at"] >= newest[key]["finished_at"]:
                newest[key] = data
        return list(newest.values())

    def find(self, run_id: str) -> Path:
        """A run directory by id or unique id prefix."""
        matches = [p for p in self.root.glob("*/*") if p.is_dir() and p.name.startswith(run_id)
                   and not _hidden(p) and not _hidden(p.parent)] if self.root.exists() and run_id else []
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise BenchError(f"no run {run_id!r} in {self.root}; `bench runs` lists the recorded runs")
        raise BenchError(f"run id prefix {run_id!r} is ambiguous: {', '.join(p.name for p in matches[:5])}")


def _hidden(path: Path) -> bool:
    """The store's own folders (`_shared` assets, `.probe-*`) are not papers or runs."""
    return path.name.startswith(("_", "."))


class DamagedRecord(BenchError):
    """A run record that cannot be trusted (exit 2); readers that list runs skip it with a warning instead."""


class RunBusy(BenchError):
    """Another live process is writing this run (exit 2)."""


class RunLock:
    """One writer per run directory: an fcntl.flock on ``<run>/.lock``, which holds the writer's pid and host.

    The kernel drops a flock when its process dies (even by SIGKILL), so a dead writer's lock is simply taken
    over; its pid is still in the file, which is how we can say whose lock it was. A clean release empties it.
    """

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.path = run_dir / ".lock"
        self._fd: int | None = None
        self.previous_owner: str | None = None  # "pid N on host" of a writer that died holding the lock

    def holder(self) -> tuple[int | None, str]:
        try:
            fields = self.path.read_text().split()
        except OSError:
            return None, ""
        pid = int(fields[0]) if fields and fields[0].isdigit() else None
        return pid, fields[1] if len(fields) > 1 else ""

    def _busy_message(self) -> str:
        pid, host = self.holder()
        who = f"pid {pid}" if pid is not None else "another process"
        if host and host != socket.gethostname():
            who += f" on {host}"
        return (f"run {self.run_dir.name} is being written by {who}; wait for it to finish (or rerun once it has "
                f"stopped)")

    def acquire(self, wait: bool = False, poll_s: float = 0.5, log: Callable[[str], None] | None = None) -> None:
        import fcntl

        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    os.close(fd)
                    raise RunBusy(self._busy_message()) from None
                if log is not None and not told:
                    log(self._busy_message().split(";")[0] + "; waiting")
                    told = True
                time.sleep(poll_s)
        self._fd = fd
        pid, host = self.holder()
        if pid is not None and pid != os.getpid():
            self.previous_owner = f"pid {pid}" + (f" on {host}" if host else "")
            if log is not None:
                log(f"  taking over the lock of {self.previous_owner}, which stopped while writing run "
                    f"{self.run_dir.name}")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)

    def release(self) -> None:
        import fcntl

        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # an empty lock file: released cleanly, nobody to take over from
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
