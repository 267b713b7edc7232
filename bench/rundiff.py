"""`bench diff`: why two runs' numbers differ: spec, code, libraries, hardware, seeds, data."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def _changes(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    fa, fb = _flatten(a), _flatten(b)
    return [f"{k}: {fa.get(k)!r} -> {fb.get(k)!r}" for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def explain(dir_a: Path, dir_b: Path) -> dict[str, list[str]]:
    spec_a, spec_b = (json.loads((d / "spec.json").read_text()) for d in (dir_a, dir_b))
    res_a, res_b = ({} if not (d / "result.json").exists() else json.loads((d / "result.json").read_text())
                    for d in (dir_a, dir_b))
    prov_a, prov_b = res_a.get("provenance", {}), res_b.get("provenance", {})
    metrics_a = {(m["metric"], json.dumps(m.get("setting", {}), sort_keys=True)): m for m in res_a.get("metrics", [])}
    metrics_b = {(m["metric"], json.dumps(m.get("setting", {}), sort_keys=True)): m for m in res_b.get("metrics", [])}
    deltas = []
    for key in sorted(set(metrics_a) & set(metrics_b)):
        va, vb = metrics_a[key]["value"], metrics_b[key]["value"]
        deltas.append(f"{key[0]} {key[1]}: {va:.6g} -> {vb:.6g} (Δ {vb - va:+.4g})")
    data_keys = ("dataset_fingerprint", "checkpoint_sha256", "feature_extractor")
    return {
        "metrics": deltas,
        "spec": _changes(spec_a, spec_b),
        "code": _changes({"bench": prov_a.get("bench_version"), "git": prov_a.get("git")},
                         {"bench": prov_b.get("bench_version"), "git": prov_b.get("git")}),
        "libraries": _changes(prov_a.get("libraries", {}), prov_b.get("libraries", {})),
        "hardware": _changes(prov_a.get("hardware", {}), prov_b.get("hardware", {})),
        "seeds": _changes({"seeds": res_a.get("seeds")}, {"seeds": res_b.get("seeds")}),
        "data": _changes({k: prov_a.get(k) for k in data_keys}, {k: prov_b.get(k) for k in data_keys}),
    }
