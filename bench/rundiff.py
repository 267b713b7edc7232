"""`bench diff`: why two runs' numbers differ: metrics, spec, code, libraries, hardware, seeds, data.

explain() returns plain data (numbers stay numbers, settings stay dicts) so the CLI prints the same thing as
rich, Markdown, CSV or JSON:
    {"a": {"run_id", "status"}, "b": {...},
     "metrics": [{"metric", "setting", "a", "b", "delta"}],   a or b is null where only one run has the metric
     "notes": [str],                                           e.g. "run B has no metrics (status failed)"
     "spec" | "code" | "libraries" | "hardware" | "seeds" | "data": [{"key", "a", "b"}]}
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.registry import BenchError

SECTIONS = ("spec", "code", "libraries", "hardware", "seeds", "data")


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj} if prefix else {}


def _changes(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    fa, fb = _flatten(a), _flatten(b)
    return [{"key": k, "a": fa.get(k), "b": fb.get(k)} for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def _read(path: Path, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise BenchError(f"run record {path} is missing")
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BenchError(f"unreadable run record {path}: {exc}") from None
    if not isinstance(data, dict):
        raise BenchError(f"unreadable run record {path}: not a JSON object")
    return data


def _metrics(result: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["metric"], json.dumps(m.get("setting") or {}, sort_keys=True)): m for m in result.get("metrics") or []}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def explain(dir_a: Path, dir_b: Path) -> dict[str, Any]:
    spec_a, spec_b = (_read(d / "spec.json", required=True) for d in (dir_a, dir_b))
    res_a, res_b = (_read(d / "result.json", required=False) for d in (dir_a, dir_b))
    prov_a, prov_b = res_a.get("provenance") or {}, res_b.get("provenance") or {}
    metrics_a, metrics_b = _metrics(res_a), _metrics(res_b)
    rows = []
    for key in sorted(set(metrics_a) | set(metrics_b)):
        ma, mb = metrics_a.get(key), metrics_b.get(key)
        va = _number(ma["value"]) if ma else None
        vb = _number(mb["value"]) if mb else None
        rows.append({"metric": key[0], "setting": json.loads(key[1]), "a": va, "b": vb,
                     "delta": vb - va if va is not None and vb is not None else None})
    notes = []
    for side, res, mine, other in (("A", res_a, metrics_a, metrics_b), ("B", res_b, metrics_b, metrics_a)):
        if not mine and other:
            status = res.get("status") or "not finished"
            notes.append(f"run {side} has no metrics (status {status})")
    if not metrics_a and not metrics_b:
        notes.append("neither run has metrics")
    data_keys = ("dataset_fingerprint", "checkpoint_sha256", "feature_extractor")
    return {
        "a": {"run_id": dir_a.name, "status": res_a.get("status") or "not finished"},
        "b": {"run_id": dir_b.name, "status": res_b.get("status") or "not finished"},
        "metrics": rows,
        "notes": notes,
        "spec": _changes(spec_a, spec_b),
        "code": _changes({"bench": prov_a.get("bench_version"), "git": prov_a.get("git")},
                         {"bench": prov_b.get("bench_version"), "git": prov_b.get("git")}),
        "libraries": _changes(prov_a.get("libraries") or {}, prov_b.get("libraries") or {}),
        "hardware": _changes(prov_a.get("hardware") or {}, prov_b.get("hardware") or {}),
        "seeds": _changes({"seeds": res_a.get("seeds")}, {"seeds": res_b.get("seeds")}),
        "data": _changes({k: prov_a.get(k) for k in data_keys}, {k: prov_b.get(k) for k in data_keys}),
    }
