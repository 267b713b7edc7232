"""`bench check`: the CI gate. The newest runs against the committed references in results/reference/.

Every referenced metric gets one outcome: pass / regressed / improved / stale / missing (and "new" for a run
or metric the reference does not know yet). The policy (README, "Regression gate"):
- same environment (CPU kind, GPU, threads and library versions: `environment_key`): the smoke runs are
  deterministic, so the check is exact (1e-6 relative, on the mean and on every seed); seeds excuse nothing.
- another environment: the metric dialect's declared tolerance first; a move beyond it is excused only by a
  Welch t-test over seeds that finds nothing (alpha 0.05), and only with >= 3 seeds on both sides.
- a NaN is a regression. Cost metrics (params, MACs, NFE, latency, wall time) are never gated.
- failing (exit 1): regressed; missing (an implemented paper without a reference file, a reference entry
  without a run, a run without one of its reference's metrics, a reference listing no runs); stale (the run's
  spec hash differs from the reference's) unless allowed. "improved" and "new" never fail.
- an unreadable reference or run record is bad input (exit 2, one line), never a finding.

`update` re-baselines by merging: entries with a new run are replaced, the rest are kept; nothing is removed
without `prune`.

Rehearsals (`bench reproduce --max-steps/--max-samples`) are invisible here: the gate never compares one and
`update` never writes one into a reference (the store's `latest` leaves them out).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import atomic
from bench.metrics.manifest import DIALECTS
from bench.papers import REPO_ROOT, implemented_papers
from bench.registry import BenchError
from bench.store import Store, run_key, setting_key

REFERENCE_DIR = REPO_ROOT / "results" / "reference"
REFERENCE_SCHEMA = 1
EXACT_RTOL = 1e-6
MIN_SEEDS_FOR_WELCH = 3
ALPHA = 0.05
DEFAULT_TOLERANCE = {"rel": 1e-3}
OUTCOMES = ("regressed", "missing", "stale", "improved", "new", "pass")


class UnreadableInput(BenchError):
    """A reference file or run record that cannot be read: bad input (exit 2), not a regression."""

    exit_code = 2


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
        """JSON-safe: a NaN becomes null (the detail says NaN), so strict JSON readers accept the output."""
        out = self.__dict__.copy()
        for key in ("reference", "current"):
            if out[key] is not None and not math.isfinite(out[key]):
                out[key] = None
        return out


def fails(finding: Finding, allow_stale: bool = False) -> bool:
    return finding.outcome in ("regressed", "missing") or (finding.outcome == "stale" and not allow_stale)


def _gated(metric: str) -> bool:
    return DIALECTS.get(metric, {}).get("family") != "cost"


# --- comparing one metric -----------------------------------------------------------------------------------

def _tolerance(metric: str, reference: float, same_environment: bool, override: dict[str, float] | None) -> float:
    if same_environment:
        return EXACT_RTOL * max(abs(reference), 1e-12)
    tol = override or DIALECTS.get(metric, {}).get("tolerance", DEFAULT_TOLERANCE)
    return max(tol.get("abs", 0.0), tol.get("rel", 0.0) * abs(reference))


def _seeds(record: dict[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in (record.get("per_seed") or {}).items()}


def welch_p(a: list[float], b: list[float]) -> float:
    """Two-sided Welch p; NaN when both sides have zero spread (no seed noise to excuse anything with)."""
    import warnings

    from scipy.stats import ttest_ind

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero spread: scipy warns and returns NaN
        return float(ttest_ind(a, b, equal_var=False).pvalue)


def _direction_outcome(metric: str, diff: float) -> tuple[str, str]:
    direction = DIALECTS.get(metric, {}).get("direction", "none")
    if direction not in ("higher", "lower"):
        return "regressed", "; the dialect has no direction, so any change counts"
    better = diff < 0 if direction == "lower" else diff > 0
    return ("improved" if better else "regressed"), ""


def compare_metric(metric: str, ref: dict[str, Any], cur: dict[str, Any], same_environment: bool) -> tuple[str, str]:
    """(outcome, detail) for one metric record against its reference record."""
    r, c = float(ref["value"]), float(cur["value"])
    ref_seeds, cur_seeds = _seeds(ref), _seeds(cur)
    nan_seeds = sorted(s for s, v in cur_seeds.items() if math.isnan(v))
    if math.isnan(c) or nan_seeds:
        where = f" (seed {','.join(nan_seeds)})" if nan_seeds else ""
        return "regressed", f"{r:.6g} -> {c:.6g}: the run produced NaN{where}"
    if math.isnan(r):
        return "improved", f"the reference is NaN, the run {c:.6g}"
    tol = _tolerance(metric, r, same_environment, ref.get("tolerance"))
    diff = c - r
    basis = "same environment: exact, seeds excuse nothing" if same_environment else "declared tolerance"
    detail = f"{r:.6g} -> {c:.6g} (Δ {diff:+.3g}, tol {tol:.3g}, {basis})"
    if same_environment:
        moved = sorted(s for s in ref_seeds.keys() & cur_seeds.keys()
                       if abs(cur_seeds[s] - ref_seeds[s]) > EXACT_RTOL * max(abs(ref_seeds[s]), 1e-12))
        if abs(diff) <= tol:
            if not moved:
                return "pass", detail
            s = moved[0]
            return "regressed", (detail + f"; seed {s} moved {ref_seeds[s]:.6g} -> {cur_seeds[s]:.6g}: the "
                                          f"deterministic run no longer reproduces")
        outcome, note = _direction_outcome(metric, diff)
        return outcome, detail + note
    if abs(diff) <= tol:
        return "pass", detail
    n_ref, n_cur = len(ref_seeds), len(cur_seeds)
    if n_ref >= MIN_SEEDS_FOR_WELCH and n_cur >= MIN_SEEDS_FOR_WELCH:
        p = welch_p(list(ref_seeds.values()), list(cur_seeds.values()))
        if p >= ALPHA:  # NaN (zero spread on both sides) compares False: it excuses nothing
            return "pass", detail + f"; within seed noise (Welch p={p:.3g}, n={n_ref}/{n_cur})"
        detail += f"; Welch p={p:.3g} (n={n_ref}/{n_cur})"
    else:
        detail += f"; {n_ref}/{n_cur} seeds: a seed test needs >= {MIN_SEEDS_FOR_WELCH} a side"
    outcome, note = _direction_outcome(metric, diff)
    return outcome, detail + note


# --- reading references and run records ------------------------------------------------------------------

def _require(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise UnreadableInput(f"unreadable {where}: {what}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate_reference(data: Any, where: str, paper: str | None = None) -> dict[str, Any]:
    _require(isinstance(data, dict), where, "not a JSON object")
    _require(data.get("schema_version") == REFERENCE_SCHEMA, where,
             f"schema_version {data.get('schema_version')!r}, expected {REFERENCE_SCHEMA}")
    for key in ("paper", "scale"):
        _require(isinstance(data.get(key), str), where, f"field {key} must be a string")
    _require(paper is None or data["paper"] == paper, where, f"field paper is {data['paper']!r}, the file name "
                                                             f"says {paper!r}")
    _require(data.get("environment_key") is None or isinstance(data["environment_key"], str), where,
             "field environment_key must be a string or null")
    _require(isinstance(data.get("runs"), list), where, "field runs must be a list")
    for i, run in enumerate(data["runs"]):
        at = f"runs[{i}]"
        _require(isinstance(run, dict), where, f"{at} must be an object")
        for key in ("entry", "dataset", "setting", "run_id"):
            _require(isinstance(run.get(key), str), where, f"{at}.{key} must be a string")
        _require(run.get("environment_key") is None or isinstance(run["environment_key"], str), where,
                 f"{at}.environment_key must be a string")
        _require(isinstance(run.get("metrics"), dict), where, f"{at}.metrics must be an object")
        for key, m in run["metrics"].items():
            _require(isinstance(m, dict) and _is_number(m.get("value")), where,
                     f"{at}.metrics[{key!r}].value must be a number")
            seeds = m.get("per_seed", {})
            _require(isinstance(seeds, dict) and all(_is_number(v) for v in seeds.values()), where,
                     f"{at}.metrics[{key!r}].per_seed must map seeds to numbers")
    return data


def load_reference(path: Path) -> dict[str, Any]:
    import json

    where = f"reference {path}"
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableInput(f"unreadable {where}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UnreadableInput(f"unreadable {where}: invalid JSON ({exc})") from None
    return validate_reference(data, where, paper=path.stem)


def load_references(reference_dir: Path = REFERENCE_DIR) -> dict[str, dict[str, Any]]:
    return {path.stem: load_reference(path) for path in sorted(Path(reference_dir).glob("*.json"))}


def newest_runs(store: Store, paper: str, scale: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The newest complete run per (entry, dataset, run setting) at a scale. Any unreadable record is exit 2:
    a gate that skipped it would pass on less evidence than it claims."""
    problems: list[str] = []
    for _ in store.iter_results(paper, problems):  # store.result_problem validates every record
        pass
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UnreadableInput(problems[0].replace("skipped damaged", "unreadable") + more)
    return {run_key(r)[1:]: r for r in store.latest(paper, rehearsals=False) if r["scale"] == scale}


def _metrics_by_key(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{m['metric']}|{setting_key(m.get('setting') or {})}": m for m in run["metrics"]}


def _environment(ref: dict[str, Any], run_ref: dict[str, Any]) -> str | None:
    return run_ref.get("environment_key", ref.get("environment_key"))


# --- the gate ----------------------------------------------------------------------------------------------

def check(store: Store | None = None, reference_dir: Path = REFERENCE_DIR, papers: list[str] | None = None,
          allow_stale: bool = False) -> list[Finding]:
    """Findings for the given papers (default: every implemented paper and every reference file)."""
    store = store or Store()
    refs = load_references(reference_dir)
    scope = sorted(set(papers) if papers else set(implemented_papers()) | set(refs))
    implemented = set(implemented_papers())
    findings: list[Finding] = []
    for paper in scope:
        ref = refs.get(paper)
        if ref is None:
            if paper in implemented:
                findings.append(Finding(paper, "", "", "", "", "missing", None, None,
                                        f"no reference file {Path(reference_dir) / (paper + '.json')}: run "
                                        f"bench reproduce {paper}, then bench check --update -p {paper}"))
            continue
        findings.extend(_check_paper(ref, newest_runs(store, paper, ref["scale"]), allow_stale))
    return findings


def _check_paper(ref: dict[str, Any], runs: dict[tuple[str, str, str], dict[str, Any]],
                 allow_stale: bool) -> list[Finding]:
    paper, scale = ref["paper"], ref["scale"]
    rebaseline = f"bench check --update -p {paper}"
    findings: list[Finding] = []
    if not ref["runs"]:
        findings.append(Finding(paper, "", "", "", "", "missing", None, None,
                                f"the reference lists no runs: run bench reproduce {paper}, then {rebaseline}"))
    for run_ref in ref["runs"]:
        cur = runs.get((run_ref["entry"], run_ref["dataset"], run_ref["setting"]))
        cur_metrics = _metrics_by_key(cur) if cur else {}
        same_env = bool(cur) and cur.get("provenance", {}).get("environment_key") == _environment(ref, run_ref)
        for key, mref in run_ref["metrics"].items():
            metric, _, skey = key.partition("|")
            if not _gated(metric):
                continue
            base = {"paper": paper, "entry": run_ref["entry"], "dataset": run_ref["dataset"], "metric": metric,
                    "setting": _shown_setting(run_ref["setting"], skey), "reference": float(mref["value"])}
            if cur is None:
                findings.append(Finding(**base, outcome="missing", current=None,
                                        detail=f"no {scale} run: bench reproduce {paper} --entry {run_ref['entry']}"))
                continue
            mcur = cur_metrics.get(key)
            if cur["run_id"] != run_ref["run_id"]:
                moved = (f"; values {compare_metric(metric, mref, mcur, same_env)[1]}" if mcur
                         else "; the run no longer reports this metric")
                findings.append(Finding(**base, outcome="stale", current=mcur["value"] if mcur else None,
                                        detail=f"spec changed ({run_ref['run_id']} -> {cur['run_id']}){moved}; "
                                               f"check the change was meant, then {rebaseline}"
                                               + (" (allowed by --allow-stale)" if allow_stale else "")))
                continue
            if mcur is None:
                findings.append(Finding(**base, outcome="missing", current=None,
                                        detail="the run no longer reports this metric"))
                continue
            outcome, detail = compare_metric(metric, mref, mcur, same_env)
            if outcome == "improved":
                detail += f"; re-baseline to keep it: {rebaseline}"
            findings.append(Finding(**base, outcome=outcome, current=float(mcur["value"]), detail=detail))
        unreferenced = [k for k in cur_metrics if k not in run_ref["metrics"]]
        for key in unreferenced if cur and cur["run_id"] == run_ref["run_id"] else []:
            metric, _, skey = key.partition("|")
            mcur = cur_metrics[key]
            if _gated(metric):
                findings.append(Finding(paper, run_ref["entry"], run_ref["dataset"], metric,
                                        _shown_setting(run_ref["setting"], skey), "new", None, float(mcur["value"]),
                                        f"not in the reference (not gated): {rebaseline} adds it"))
    referenced = {(r["entry"], r["dataset"], r["setting"]) for r in ref["runs"]}
    for (entry, dataset, setting), run in sorted(runs.items()):
        if (entry, dataset, setting) not in referenced:
            findings.append(Finding(paper, entry, dataset, "", setting, "new", None, None,
                                    f"run {run['run_id']} is not in the reference (not gated): {rebaseline} adds it"))
    return findings


def _shown_setting(run_setting: str, metric_setting: str) -> str:
    """Run setting and metric setting, once when they are the same (as in the LLM and detection recipes)."""
    if metric_setting == run_setting:
        return run_setting
    return ",".join(p for p in (run_setting, metric_setting) if p)


# --- re-baselining --------------------------------------------------------------------------------------------

@dataclass
class ReferenceUpdate:
    paper: str
    path: Path
    written: bool
    changes: list[str] = field(default_factory=list)


def _reference_metrics(run: dict[str, Any], old: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    metrics = {}
    for key, m in sorted(_metrics_by_key(run).items()):
        if not _gated(m["metric"]):
            continue
        if not math.isfinite(float(m["value"])):
            raise BenchError(f"refusing to re-baseline {run['paper']} {run['entry']} on a non-finite "
                             f"{key} ({m['value']}): fix the run first")
        record: dict[str, Any] = {"value": m["value"], "per_seed": m.get("per_seed", {})}
        if "floor" in m:  # a sanity metric keeps its floor (bench/sanity.py)
            record["floor"] = m["floor"]
        if old and "tolerance" in old.get(key, {}):  # a hand-set tolerance survives re-baselining
            record["tolerance"] = old[key]["tolerance"]
        metrics[key] = record
    return metrics


def _merge(paper: str, old: dict[str, Any] | None, runs: dict[tuple[str, str, str], dict[str, Any]],
           scale: str, prune: bool) -> tuple[dict[str, Any], list[str]]:
    """The merged reference and its diff lines (old -> new per metric)."""
    changes: list[str] = []
    old_runs = {(r["entry"], r["dataset"], r["setting"]): r for r in (old or {}).get("runs", [])}
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    envs: dict[tuple[str, str, str], str | None] = {}
    for key in sorted(old_runs.keys() | runs.keys()):
        label = f"{key[0]} on {key[1]}" + (f" [{key[2]}]" if key[2] else "")
        before, run = old_runs.get(key), runs.get(key)
        if run is None:
            if prune:
                changes.append(f"  {label}: removed (no {scale} run; --prune)")
                continue
            changes.append(f"  {label}: kept (no new run; --prune removes it)")
            merged[key], envs[key] = before, _environment(old, before)
            continue
        metrics = _reference_metrics(run, before["metrics"] if before else None)
        if before is None:
            head = f"added (run {run['run_id']})"
        elif before["run_id"] != run["run_id"]:
            head = f"replaced (run {before['run_id']} -> {run['run_id']})"
        else:
            head = "unchanged" if before["metrics"] == metrics else f"re-recorded (run {run['run_id']})"
        lines = []
        for mkey in sorted((before or {}).get("metrics", {}).keys() | metrics.keys()):
            was, now = (before or {}).get("metrics", {}).get(mkey), metrics.get(mkey)
            if now is None:
                if prune:
                    lines.append(f"    {mkey}: {was['value']:.6g} -> removed (--prune)")
                    continue
                metrics[mkey] = was  # kept: the gate reports it missing until --prune drops it
                lines.append(f"    {mkey}: {was['value']:.6g} kept (the run no longer reports it; --prune removes it)")
            elif was is None:
                lines.append(f"    {mkey}: new {now['value']:.6g}")
            elif was["value"] == now["value"] and was.get("per_seed") == now.get("per_seed"):
                lines.append(f"    {mkey}: {was['value']:.6g} (unchanged)")
            else:
                lines.append(f"    {mkey}: {was['value']:.6g} -> {now['value']:.6g}")
        changes += [f"  {label}: {head}"] + lines
        merged[key] = {"entry": key[0], "dataset": key[1], "setting": key[2], "run_id": run["run_id"],
                       "metrics": metrics}
        envs[key] = run.get("provenance", {}).get("environment_key")
    new_provenance = [r.get("provenance", {}) for r in runs.values()]
    # One environment at the top (the most common); an entry made elsewhere carries its own.
    top_env = Counter(envs.values()).most_common(1)[0][0] if envs else None
    ref = {"schema_version": REFERENCE_SCHEMA, "paper": paper, "scale": scale, "environment_key": top_env,
           "hardware": new_provenance[0].get("hardware") if new_provenance else (old or {}).get("hardware"),
           "libraries": new_provenance[0].get("libraries") if new_provenance else (old or {}).get("libraries"),
           "runs": []}
    for key in sorted(merged):
        entry = {k: v for k, v in merged[key].items() if k != "environment_key"}
        if envs[key] != top_env:
            entry["environment_key"] = envs[key]
        ref["runs"].append(entry)
    return ref, changes


def update(store: Store | None = None, reference_dir: Path = REFERENCE_DIR, papers: list[str] | None = None,
           scale: str = "smoke", prune: bool = False) -> list[ReferenceUpdate]:
    """Merge the newest runs into the references (a deliberate act: review the printed diff). Everything is
    validated before anything is written, so a refusal leaves every reference as it was."""
    store = store or Store()
    reference_dir = Path(reference_dir)
    if papers:
        scope = sorted(set(papers))
    else:
        scope = sorted({r["paper"] for r in store.latest(rehearsals=False) if r["scale"] == scale})
    planned: list[tuple[ReferenceUpdate, dict[str, Any] | None]] = []
    for paper in scope:
        path = reference_dir / f"{paper}.json"
        old = load_reference(path) if path.exists() else None
        runs = newest_runs(store, paper, scale)
        if not runs:
            planned.append((ReferenceUpdate(paper, path, False, [f"  no {scale} runs: reference left as is"]), None))
            continue
        if old is not None and old["scale"] != scale:
            raise BenchError(f"{path} is a {old['scale']} reference; refusing to merge {scale} runs into it")
        ref, changes = _merge(paper, old, runs, scale, prune)
        unchanged = old is not None and {k: v for k, v in old.items() if k not in ("hardware", "libraries")} == \
            {k: v for k, v in ref.items() if k not in ("hardware", "libraries")}
        planned.append((ReferenceUpdate(paper, path, not unchanged, changes), None if unchanged else ref))
    for upd, ref in planned:
        if ref is not None:
            atomic.write_json(upd.path, ref)
    return [upd for upd, _ in planned]


# --- reports ---------------------------------------------------------------------------------------------------

COLUMNS = ("paper", "entry", "dataset", "metric", "setting", "outcome", "reference", "current", "detail")


def summary_line(findings: list[Finding], allow_stale: bool = False) -> str:
    counts = Counter(f.outcome for f in findings)
    parts = [f"{counts[o]} {o}" for o in OUTCOMES if counts[o]]
    failing = sum(fails(f, allow_stale) for f in findings)
    verdict = f"FAIL: {failing} failing" if failing else "ok"
    text = f"{verdict} ({', '.join(parts) or 'nothing to check'})"
    if counts["improved"]:
        text += "; improved results: re-baseline to keep them (bench check --update)"
    return text


def markdown(findings: list[Finding], allow_stale: bool = False) -> str:
    lines = ["## bench check", "", summary_line(findings, allow_stale), "",
             "| paper | entry | dataset | metric | setting | outcome | detail |", "|---|---|---|---|---|---|---|"]
    for f in findings:
        cells = [f.paper, f.entry, f.dataset, f.metric, f.setting, f"**{f.outcome}**", f.detail]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(path: Path, findings: list[Finding], allow_stale: bool = False) -> Path:
    """Write the Markdown summary (`bench check --summary PATH`); an unwritable place is one BenchError line."""
    path = Path(path)
    try:
        atomic.write_text(path, markdown(findings, allow_stale))
    except OSError as exc:
        raise BenchError(f"cannot write the summary to {path}: {exc.strerror or exc}") from None
    return path


def csv_text(findings: list[Finding]) -> str:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for f in findings:
        writer.writerow(["" if getattr(f, c) is None else getattr(f, c) for c in COLUMNS])
    return buf.getvalue()


# `bench.check(...)` calls bench.api.check (see bench/__init__.py)
import bench as _bench  # noqa: E402

_bench.make_callable(__name__)
