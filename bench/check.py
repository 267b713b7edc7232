"""`bench check`: the CI gate. The newest runs against the committed references in results/reference/.

For every referenced metric: pass / regressed / improved / stale / missing.
- stale: the run's spec hash (run id) or recipe version differs from the reference's: re-baseline with
  `bench check --update` after checking the change was meant.
- a deterministic smoke run made on the same CPU kind with the same library versions (environment key)
  must match to 1e-6 relative; elsewhere the metric dialect's declared tolerance applies (threads and BLAS
  builds change the last bits).
- with >= 2 seeds on both sides a move counts only if a Welch t-test also finds it (alpha 0.05).
- cost metrics (params, MACs, NFE, latency, wall time) are never gated on shared CPU runners.
Exit 1 only when something regressed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import atomic
from bench.metrics.manifest import DIALECTS
from bench.papers import REPO_ROOT
from bench.store import Store, run_key, setting_key

REFERENCE_DIR = REPO_ROOT / "results" / "reference"
EXACT_RTOL = 1e-6
REFERENCE_SCHEMA = 1


@dataclass
class Finding:
    paper: str
    entry: str
    dataset: str
    metric: str
    setting: str
    outcome: str
    reference: float | None
    current: float | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _tolerance(metric: str, reference: float, same_environment: bool, override: dict[str, float] | None) -> float:
    if same_environment:
        return EXACT_RTOL * max(abs(reference), 1e-12)
    tol = override or DIALECTS.get(metric, {}).get("tolerance", {"rel": 1e-3})
    return max(tol.get("abs", 0.0), tol.get("rel", 0.0) * abs(reference))


def _significant(ref_seeds: dict[str, float], cur_seeds: dict[str, float]) -> bool | None:
    a, b = list(ref_seeds.values()), list(cur_seeds.values())
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy.stats import ttest_ind

    return float(ttest_ind(a, b, equal_var=False).pvalue) < 0.05


def compare_metric(metric: str, ref: dict[str, Any], cur: dict[str, Any], same_environment: bool) -> tuple[str, str]:
    direction = DIALECTS.get(metric, {}).get("direction", "none")
    r, c = float(ref["value"]), float(cur["value"])
    tol = _tolerance(metric, r, same_environment, ref.get("tolerance"))
    diff = c - r
    basis = "same environment, exact" if same_environment else "declared tolerance"
    detail = f"{r:.6g} -> {c:.6g} (Δ {diff:+.3g}, tol {tol:.3g}, {basis})"
    if abs(diff) <= tol:
        return "pass", detail
    significant = _significant(ref.get("per_seed", {}), cur.get("per_seed", {}))
    if significant is False:
        return "pass", detail + "; not significant over seeds"
    better = diff < 0 if direction == "lower" else diff > 0
    return ("improved" if better else "regressed"), detail


def load_references(reference_dir: Path = REFERENCE_DIR) -> list[dict[str, Any]]:
    refs = []
    for path in sorted(reference_dir.glob("*.json")):
        data = json.loads(path.read_text())
        data["_path"] = str(path)
        refs.append(data)
    return refs


def _metrics_by_key(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{m['metric']}|{setting_key(m.get('setting', {}))}": m for m in run["metrics"]}


def check(store: Store | None = None, reference_dir: Path = REFERENCE_DIR, papers: list[str] | None = None,
          problems: list[str] | None = None) -> list[Finding]:
    store = store or Store()
    findings: list[Finding] = []
    for ref in load_references(reference_dir):
        if papers and ref["paper"] not in papers:
            continue
        runs = {run_key(r): r for r in store.latest(ref["paper"], problems) if r["scale"] == ref["scale"]}
        for run_ref in ref["runs"]:
            cur = runs.get((ref["paper"], run_ref["entry"], run_ref["dataset"], run_ref.get("setting", "")))
            for key, mref in run_ref["metrics"].items():
                metric, _, skey = key.partition("|")
                if DIALECTS.get(metric, {}).get("family") == "cost":
                    continue
                run_setting = run_ref.get("setting", "")
                base = dict(paper=ref["paper"], entry=run_ref["entry"], dataset=run_ref["dataset"], metric=metric,
                            setting=",".join(p for p in (run_setting, skey) if p), reference=mref["value"])
                if cur is None:
                    findings.append(_finding(base, "missing", None,
                                            f"no {ref['scale']} run: bench reproduce {ref['paper']}"))
                    continue
                if cur["run_id"] != run_ref["run_id"]:
                    findings.append(_finding(base, "stale", None, f"spec changed ({run_ref['run_id']} -> {cur['run_id']}):"
                                                               f" re-baseline with bench check --update"))
                    continue
                mcur = _metrics_by_key(cur).get(key)
                if mcur is None:
                    findings.append(_finding(base, "missing", None, "the run no longer reports this metric"))
                    continue
                same_env = cur.get("provenance", {}).get("environment_key") == ref.get("environment_key")
                outcome, detail = compare_metric(metric, mref, mcur, same_env)
                findings.append(_finding(base, outcome, mcur["value"], detail))
    return findings


def _finding(base: dict[str, Any], outcome: str, current: float | None, detail: str) -> Finding:
    return Finding(**base, outcome=outcome, current=current, detail=detail)


def update(store: Store | None = None, reference_dir: Path = REFERENCE_DIR, papers: list[str] | None = None,
           scale: str = "smoke") -> list[Path]:
    """Rewrite the references from the newest complete runs (a deliberate act: review the diff)."""
    store = store or Store()
    by_paper: dict[str, list[dict[str, Any]]] = {}
    for run in store.latest():
        if run["scale"] == scale and (not papers or run["paper"] in papers):
            by_paper.setdefault(run["paper"], []).append(run)
    written = []
    for paper, runs in sorted(by_paper.items()):
        env_keys = {r.get("provenance", {}).get("environment_key") for r in runs}
        ref = {
            "schema_version": REFERENCE_SCHEMA,
            "paper": paper,
            "scale": scale,
            "environment_key": env_keys.pop() if len(env_keys) == 1 else None,
            "hardware": runs[0].get("provenance", {}).get("hardware"),
            "libraries": runs[0].get("provenance", {}).get("libraries"),
            "runs": [{"entry": r["entry"], "dataset": r["dataset"], "setting": run_key(r)[3], "run_id": r["run_id"],
                      "metrics": {k: {"value": m["value"], "per_seed": m.get("per_seed", {})}
                                  for k, m in sorted(_metrics_by_key(r).items())}}
                     for r in sorted(runs, key=run_key)],
        }
        path = reference_dir / f"{paper}.json"
        atomic.write_json(path, ref)
        written.append(path)
    return written


def markdown(findings: list[Finding]) -> str:
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.outcome] = counts.get(f.outcome, 0) + 1
    lines = ["## bench check", "", ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no references", "",
             "| paper | entry | dataset | metric | setting | outcome | detail |", "|---|---|---|---|---|---|---|"]
    for f in findings:
        lines.append(f"| {f.paper} | {f.entry} | {f.dataset} | {f.metric} | {f.setting} | **{f.outcome}** | "
                     f"{f.detail} |")
    return "\n".join(lines) + "\n"
