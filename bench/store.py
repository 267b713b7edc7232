"""The run store: one directory per run, every file written atomically.

results/runs/<paper>/<run-id>/
    spec.json            the RunSpec (the id is its hash)
    seeds/<seed>.json    one finished seed: its metric records, cost and provenance extras
    items/<seed>/<shard>.jsonl   per-item rows (per image, detection, prompt), one file per finished shard
    result.json          aggregate over seeds: schema_version, metrics, cost, provenance, status

A killed run resumes: finished seeds and shards are on disk and are not recomputed; a shard file exists
only once complete, so rows are never duplicated. BENCH_RESULTS moves the store.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

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

    def seed_record(self, seed: int) -> dict[str, Any] | None:
        path = self.dir / "seeds" / f"{seed}.json"
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return None  # a corrupt seed file is recomputed, never trusted

    def save_seed(self, seed: int, record: dict[str, Any]) -> None:
        atomic.write_json(self.dir / "seeds" / f"{seed}.json", record)

    def shard_path(self, seed: int, shard: str) -> Path:
        return self.dir / "items" / str(seed) / f"{shard}.jsonl"

    def shard_done(self, seed: int, shard: str) -> bool:
        return self.shard_path(seed, shard).exists()

    def write_shard(self, seed: int, shard: str, rows: Iterable[dict[str, Any]]) -> None:
        text = "".join(json.dumps(row, sort_keys=True, default=str) + "\n" for row in rows)
        atomic.write_text(self.shard_path(seed, shard), text)

    def read_items(self, seed: int | None = None) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        seed_dirs = [self.dir / "items" / str(seed)] if seed is not None else sorted((self.dir / "items").glob("*"))
        for seed_dir in seed_dirs:
            for path in sorted(seed_dir.glob("*.jsonl")):
                rows.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
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
        self.check_writable()
        run_dir = self.run_dir(spec)
        spec_path = run_dir / "spec.json"
        if not spec_path.exists():
            atomic.write_json(spec_path, spec.model_dump(mode="json"))
        return RunHandle(spec, run_dir)

    def read_result(self, run_dir: Path) -> dict[str, Any] | None:
        path = run_dir / "result.json"
        if not path.exists():
            return None
        return json.loads(path.read_text())

    def finish(self, handle: RunHandle, seeds: dict[int, dict[str, Any]], provenance: dict[str, Any],
               status: str, started_at: str, error: str | None = None) -> dict[str, Any]:
        """Aggregate the finished seeds into result.json."""
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
            "status": status,
            "error": error,
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
        """Every readable result.json; a corrupt one is reported in `problems` and skipped."""
        base = self.root / paper if paper else self.root
        if not base.exists():
            return
        for path in sorted(base.glob("*/result.json") if paper else base.glob("*/*/result.json")):
            try:
                data = json.loads(path.read_text())
                if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
                    raise ValueError(f"unknown schema_version {data.get('schema_version')!r}"
                                     if isinstance(data, dict) else "not an object")
            except (json.JSONDecodeError, ValueError, OSError) as exc:
                if problems is not None:
                    problems.append(f"skipped corrupt run record {path}: {exc}")
                continue
            yield path, data

    def latest(self, paper: str | None = None, problems: list[str] | None = None,
               statuses: tuple[str, ...] = ("complete",)) -> list[dict[str, Any]]:
        """The newest record per (paper, entry, dataset, scale, run setting such as the SR scale)."""
        newest: dict[tuple[str, ...], dict[str, Any]] = {}
        for _, data in self.iter_results(paper, problems):
            if data.get("status") not in statuses:
                continue
            key = run_key(data) + (data["scale"],)
            if key not in newest or data["finished_at"] >= newest[key]["finished_at"]:
                newest[key] = data
        return list(newest.values())

    def find(self, run_id: str) -> Path:
        """A run directory by id or unique id prefix."""
        matches = [p for p in self.root.glob("*/*") if p.is_dir() and p.name.startswith(run_id)] \
            if self.root.exists() else []
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise BenchError(f"no run {run_id!r} in {self.root} (bench show lists runs with --json from "
                             f"bench table)")
        raise BenchError(f"run id prefix {run_id!r} is ambiguous: {', '.join(p.name for p in matches[:5])}")
