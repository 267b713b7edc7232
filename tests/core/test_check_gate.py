"""The regression gate as CI meets it (issue 13, "Gate").

For every implemented paper the committed reference (results/reference/<paper>.json) is copied into a temp dir
and a run store is synthesised from it: run records whose run ids, environment key and metric values equal the
reference, so an untouched store must pass. Then one regression of each kind is injected into the store (or the
reference) and `bench check` is run through the CLI. Everything is derived from the reference files' contents,
so the tests keep working when the references are regenerated.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bench import check
from bench.cli import app
from bench.metrics.manifest import DIALECTS
from bench.store import SCHEMA_VERSION, parse_setting_key, setting_key

COMMITTED = check.REFERENCE_DIR
IMPLEMENTED = check.implemented_papers()
cli = CliRunner()


# --- fixture helpers: a store that reproduces a reference exactly -----------------------------------------------

def parse_setting(key: str) -> dict[str, str]:
    """Invert store.setting_key ("k=v,k=v"); a value may itself hold a comma ("digits train (1,497)"), so a
    piece without "k=" belongs to the previous value. The round trip is asserted, never assumed."""
    setting: dict[str, str] = {}
    last = None
    for piece in key.split(",") if key else []:
        match = re.match(r"^([A-Za-z_][\w.\-]*)=(.*)$", piece)
        if match and match.group(1) not in setting:
            last = match.group(1)
            setting[last] = match.group(2)
        else:
            assert last is not None, f"cannot parse setting {key!r}"
            setting[last] += "," + piece
    assert setting_key(setting) == key, f"setting {key!r} does not round-trip"
    return setting


def run_record(ref: dict[str, Any], run_ref: dict[str, Any]) -> dict[str, Any]:
    """The result.json a run reproducing `run_ref` exactly would have written."""
    metrics = []
    for key, m in run_ref["metrics"].items():
        name, _, skey = key.partition("|")
        record = {"metric": name, "setting": parse_setting(skey), "value": m["value"],
                  "per_seed": dict(m.get("per_seed", {})), "n": 1, "protocol": {}}
        if "floor" in m:
            record["floor"] = m["floor"]
        metrics.append(record)
    env = run_ref.get("environment_key", ref.get("environment_key"))
    return {"schema_version": SCHEMA_VERSION, "run_id": run_ref["run_id"], "paper": ref["paper"],
            "entry": run_ref["entry"], "impl": run_ref["entry"], "dataset": run_ref["dataset"], "split": "test",
            "scale": ref["scale"], "stands_for": {}, "setting": parse_setting(run_ref["setting"]),
            "status": "complete", "error": None, "seeds": sorted(int(s) for s in _seeds_of(run_ref)),
            "metrics": metrics, "cost": {}, "provenance": {"environment_key": env},
            "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:01:00+00:00"}


def _seeds_of(run_ref: dict[str, Any]) -> set[str]:
    return {s for m in run_ref["metrics"].values() for s in m.get("per_seed", {})}


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


class Gate:
    """A copy of committed references plus a synthesised store that reproduces them; `run` calls the CLI."""

    def __init__(self, tmp_path: Path, paper_list: list[str]):
        self.ref_dir = tmp_path / "reference"
        self.store = tmp_path / "runs"
        self.ref_dir.mkdir()
        for paper in paper_list:
            source = COMMITTED / f"{paper}.json"
            if not source.exists():
                pytest.fail(f"implemented paper {paper} has no committed reference {source}")
            shutil.copy(source, self.ref_dir / source.name)
            self.synthesise(paper)

    def reference(self, paper: str) -> dict[str, Any]:
        return json.loads((self.ref_dir / f"{paper}.json").read_text())

    def set_reference(self, paper: str, ref: dict[str, Any]) -> None:
        write_json(self.ref_dir / f"{paper}.json", ref)

    def synthesise(self, paper: str) -> None:
        shutil.rmtree(self.store / paper, ignore_errors=True)
        ref = self.reference(paper)
        for run_ref in ref["runs"]:
            write_json(self.result_path(paper, run_ref["run_id"]), run_record(ref, run_ref))

    def result_path(self, paper: str, run_id: str) -> Path:
        return self.store / paper / run_id / "result.json"

    def edit_run(self, paper: str, run_id: str, mutate: Callable[[dict[str, Any]], None]) -> None:
        path = self.result_path(paper, run_id)
        data = json.loads(path.read_text())
        mutate(data)
        write_json(path, data)

    def run(self, *args: str, fmt: str = "json", paper: str | None = None):
        argv = ["check", "--reference-dir", str(self.ref_dir), "--format", fmt, *args]
        if paper:
            argv += ["-p", paper]
        return cli.invoke(app, argv, env={"BENCH_RESULTS": str(self.store)})

    def findings(self, *args: str, paper: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        result = self.run(*args, paper=paper)
        assert result.exit_code in (0, 1), result.output
        return result.exit_code, json.loads(result.stdout)


def gated_metrics(run_ref: dict[str, Any]) -> list[str]:
    return [k for k in run_ref["metrics"] if DIALECTS.get(k.partition("|")[0], {}).get("family") != "cost"]


def first_metric(ref: dict[str, Any], wanted: Callable[[str], bool]) -> tuple[int, str] | None:
    for i, run_ref in enumerate(ref["runs"]):
        for key in gated_metrics(run_ref):
            if wanted(key.partition("|")[0]):
                return i, key
    return None


def finding_for(findings: list[dict[str, Any]], run_ref: dict[str, Any], key: str) -> dict[str, Any]:
    metric = key.partition("|")[0]
    (match,) = [f for f in findings if f["entry"] == run_ref["entry"] and f["dataset"] == run_ref["dataset"]
                and f["metric"] == metric and f["reference"] == run_ref["metrics"][key]["value"]
                and _same_setting(f["setting"], run_ref["setting"], key.partition("|")[2])]
    return match


def _same_setting(shown: dict[str, Any], run_setting: str, metric_setting: str) -> bool:
    """check --format json gives the setting as a dict; the reference keys hold it as a setting key."""
    return setting_key(shown) == setting_key(parse_setting_key(check._shown_setting(run_setting, metric_setting)))


def committed(paper: str) -> dict[str, Any] | None:
    path = COMMITTED / f"{paper}.json"
    return json.loads(path.read_text()) if path.exists() else None


def scale_metric(factor: float = 1.0, shift: float = 0.0, to: float | None = None):
    """A mutation of one metric record (mean and every seed) of a run record."""
    def apply(v: float) -> float:
        return to if to is not None else v * factor + shift

    def for_key(key: str) -> Callable[[dict[str, Any]], None]:
        name, _, skey = key.partition("|")

        def mutate(run: dict[str, Any]) -> None:
            (m,) = [m for m in run["metrics"] if m["metric"] == name and setting_key(m["setting"]) == skey]
            m["value"] = apply(m["value"])
            m["per_seed"] = {s: apply(v) for s, v in m["per_seed"].items()}
        return mutate
    return for_key


# --- one regression of each kind, for every implemented paper ----------------------------------------------------

METRIC_KINDS: dict[str, tuple[Callable[[str], bool], Any]] = {
    # kind: (which dialects it applies to, the mutation)
    "psnr-1%": (lambda m: m.startswith("psnr") and DIALECTS.get(m, {}).get("family") != "sanity",
                scale_metric(factor=0.99)),
    "fd/fid+2%": (lambda m: m.startswith(("fd", "fid")), scale_metric(factor=1.02)),
    "map-0.5": (lambda m: m.startswith("coco_bbox_map"), scale_metric(shift=-0.5)),
}


def _metric_cases() -> list[tuple[str, str]]:
    cases = []
    for paper in IMPLEMENTED:
        ref = committed(paper)
        for kind, (wanted, _) in METRIC_KINDS.items():
            if ref is not None and first_metric(ref, wanted):
                cases.append((paper, kind))
    return cases


def _rouge_papers() -> list[str]:
    return [p for p in IMPLEMENTED if (ref := committed(p)) and first_metric(ref, lambda m: m.startswith("rouge_l"))]


def test_every_kind_of_injection_meets_a_paper():
    """The matrix below is derived from the references; make sure no kind silently lost its paper."""
    kinds = {kind for _, kind in _metric_cases()}
    assert kinds == set(METRIC_KINDS), f"no implemented paper has a metric for {set(METRIC_KINDS) - kinds}"
    assert _rouge_papers(), "no implemented paper records ROUGE-L"


@pytest.mark.parametrize("paper,kind", _metric_cases())
def test_injected_metric_regression_is_caught(tmp_path, paper, kind):
    gate = Gate(tmp_path, [paper])
    ref = gate.reference(paper)
    wanted, mutation = METRIC_KINDS[kind]
    i, key = first_metric(ref, wanted)
    gate.edit_run(paper, ref["runs"][i]["run_id"], mutation(key))
    code, findings = gate.findings(paper=paper)
    target = finding_for(findings, ref["runs"][i], key)
    assert target["outcome"] == "regressed", target
    assert code == 1
    assert [f for f in findings if f is not target and f["outcome"] != "pass"] == []


def two_seed_entry(gate: Gate, paper: str) -> tuple[dict[str, Any], str]:
    """A ROUGE-L entry with exactly two seeds; a one-seed reference gets a second seed in the copy."""
    ref = gate.reference(paper)
    i, key = first_metric(ref, lambda m: m.startswith("rouge_l"))
    m = ref["runs"][i]["metrics"][key]
    seeds = dict(m.get("per_seed") or {"0": m["value"]})
    if len(seeds) != 2:
        first = min(seeds)
        seeds = {first: seeds[first], str(int(first) + 1): seeds[first] * 1.05}
        m["per_seed"] = seeds
        m["value"] = sum(seeds.values()) / 2
        gate.set_reference(paper, ref)
        gate.synthesise(paper)
    return ref["runs"][i], key


@pytest.mark.parametrize("paper", _rouge_papers())
@pytest.mark.parametrize("change", ["minus-2", "fall-to-a-sixth", "zero", "nan"])
def test_two_seed_rouge_fall_fails(tmp_path, paper, change):
    """MGSR distillm ROUGE-L 4.69 -> 0.79 on both seeds, to 0 or to NaN all passed: two seeds gave a
    non-significant Welch test (or NaN), which excused the change even in the reference's own environment."""
    gate = Gate(tmp_path, [paper])
    run_ref, key = two_seed_entry(gate, paper)
    value = run_ref["metrics"][key]["value"]
    mutation = {"minus-2": scale_metric(shift=-2.0), "fall-to-a-sixth": scale_metric(factor=0.79 / 4.69),
                "zero": scale_metric(to=0.0), "nan": scale_metric(to=math.nan)}[change]
    gate.edit_run(paper, run_ref["run_id"], mutation(key))
    code, findings = gate.findings(paper=paper)
    target = finding_for(findings, run_ref, key)
    assert code == 1 and target["outcome"] == "regressed", target
    assert target["reference"] == pytest.approx(value)
    if change == "nan":
        assert target["current"] is None and "NaN" in target["detail"]


@pytest.mark.parametrize("paper", IMPLEMENTED)
def test_injected_nan_is_a_regression(tmp_path, paper):
    gate = Gate(tmp_path, [paper])
    run_ref = gate.reference(paper)["runs"][0]
    key = gated_metrics(run_ref)[0]
    gate.edit_run(paper, run_ref["run_id"], scale_metric(to=math.nan)(key))
    result = gate.run(paper=paper)
    assert result.exit_code == 1
    findings = json.loads(result.stdout)  # strict JSON: the NaN is reported as null, never as a bare NaN
    assert finding_for(findings, run_ref, key)["outcome"] == "regressed"


@pytest.mark.parametrize("paper", IMPLEMENTED)
def test_injected_missing_metric_fails(tmp_path, paper):
    gate = Gate(tmp_path, [paper])
    run_ref = gate.reference(paper)["runs"][0]
    key = gated_metrics(run_ref)[0]
    name, _, skey = key.partition("|")

    def drop(run):
        run["metrics"] = [m for m in run["metrics"] if not (m["metric"] == name and setting_key(m["setting"]) == skey)]
    gate.edit_run(paper, run_ref["run_id"], drop)
    code, findings = gate.findings(paper=paper)
    assert code == 1
    assert finding_for(findings, run_ref, key)["outcome"] == "missing"


@pytest.mark.parametrize("paper", IMPLEMENTED)
def test_injected_missing_entry_fails(tmp_path, paper):
    gate = Gate(tmp_path, [paper])
    run_ref = gate.reference(paper)["runs"][-1]
    shutil.rmtree(gate.result_path(paper, run_ref["run_id"]).parent)
    code, findings = gate.findings(paper=paper)
    assert code == 1
    assert {finding_for(findings, run_ref, k)["outcome"] for k in gated_metrics(run_ref)} == {"missing"}


@pytest.mark.parametrize("paper", IMPLEMENTED)
def test_deleted_reference_fails(tmp_path, paper):
    """After deleting results/reference/u-dit.json the table was empty and the exit code 0."""
    gate = Gate(tmp_path, [paper])
    (gate.ref_dir / f"{paper}.json").unlink()
    code, findings = gate.findings(paper=paper)
    assert code == 1
    assert [(f["paper"], f["outcome"]) for f in findings] == [(paper, "missing")]
    assert "no reference file" in findings[0]["detail"]


def test_untouched_store_passes_five_times(tmp_path):
    gate = Gate(tmp_path, IMPLEMENTED)
    expected = sum(len(gated_metrics(r)) for p in IMPLEMENTED for r in gate.reference(p)["runs"])
    outputs = []
    for _ in range(5):
        result = gate.run()
        assert result.exit_code == 0, result.output
        findings = json.loads(result.stdout)
        assert len(findings) == expected and {f["outcome"] for f in findings} == {"pass"}
        outputs.append(result.stdout)
    assert len(set(outputs)) == 1


# --- the policy's other rules -----------------------------------------------------------------------------------

def test_empty_store_fails_with_every_result_missing(tmp_path):
    """An empty store gave 73 "missing" and exit 0."""
    gate = Gate(tmp_path, IMPLEMENTED)
    shutil.rmtree(gate.store)
    code, findings = gate.findings()
    assert code == 1
    expected = sum(len(gated_metrics(r)) for p in IMPLEMENTED for r in gate.reference(p)["runs"])
    assert len(findings) == expected and {f["outcome"] for f in findings} == {"missing"}


def _paper_with(wanted: Callable[[str], bool]) -> str:
    for paper in IMPLEMENTED:
        if (ref := committed(paper)) and first_metric(ref, wanted):
            return paper
    pytest.skip("no implemented paper has such a metric")


def test_stale_results_fail_unless_allowed(tmp_path):
    """Every LIPT PSNR at 0 under new run ids gave 24 "stale" and exit 0."""
    paper = _paper_with(lambda m: m.startswith("psnr"))
    gate = Gate(tmp_path, [paper])
    ref = gate.reference(paper)
    for i, run_ref in enumerate(ref["runs"]):
        old = gate.result_path(paper, run_ref["run_id"])
        data = json.loads(old.read_text())
        data["run_id"] = next(rid for rid in (f"{i:016x}", f"{i + 1:016x}") if rid != run_ref["run_id"])
        for m in data["metrics"]:
            m["value"], m["per_seed"] = 0.0, {s: 0.0 for s in m["per_seed"]}
        shutil.rmtree(old.parent)
        write_json(gate.result_path(paper, data["run_id"]), data)
    code, findings = gate.findings(paper=paper)
    expected = sum(len(gated_metrics(r)) for r in ref["runs"])
    assert code == 1 and [f["outcome"] for f in findings] == ["stale"] * expected
    assert "spec changed" in findings[0]["detail"] and "--update" in findings[0]["detail"]
    allowed, _ = gate.findings("--allow-stale", paper=paper)
    assert allowed == 0


def test_reference_with_no_runs_fails(tmp_path):
    paper = IMPLEMENTED[0]
    gate = Gate(tmp_path, [paper])
    ref = gate.reference(paper)
    ref["runs"] = []
    gate.set_reference(paper, ref)
    code, findings = gate.findings(paper=paper)
    assert code == 1 and "missing" in {f["outcome"] for f in findings}
    assert any("lists no runs" in f["detail"] for f in findings)


@pytest.mark.parametrize("damage", ["truncated", "wrong-schema", "runs-not-a-list", "value-not-a-number"])
def test_unreadable_reference_is_exit_2_in_one_line(tmp_path, damage):
    """A truncated reference gave a traceback and exit 1, the code of a regression."""
    paper = IMPLEMENTED[0]
    gate = Gate(tmp_path, [paper])
    path = gate.ref_dir / f"{paper}.json"
    ref = gate.reference(paper)
    if damage == "truncated":
        path.write_text(path.read_text()[: len(path.read_text()) // 2])
    else:
        if damage == "wrong-schema":
            ref["schema_version"] = 99
        elif damage == "runs-not-a-list":
            ref["runs"] = {"oops": 1}
        else:
            key = next(iter(ref["runs"][0]["metrics"]))
            ref["runs"][0]["metrics"][key]["value"] = "high"
        gate.set_reference(paper, ref)
    result = gate.run(paper=paper)
    assert result.exit_code == 2
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and str(path) in result.stderr


@pytest.mark.parametrize("damage", ["truncated", "no-metrics"])
def test_unreadable_run_record_is_exit_2_in_one_line(tmp_path, damage):
    paper = IMPLEMENTED[0]
    gate = Gate(tmp_path, [paper])
    path = gate.result_path(paper, gate.reference(paper)["runs"][0]["run_id"])
    if damage == "truncated":
        path.write_text(path.read_text()[:40])
    else:
        gate.edit_run(paper, path.parent.name, lambda run: run.pop("metrics"))
    result = gate.run(paper=paper)
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert str(path) in result.stderr


def test_improvement_passes_and_asks_to_rebaseline(tmp_path):
    paper = _paper_with(lambda m: DIALECTS.get(m, {}).get("direction") == "higher")
    gate = Gate(tmp_path, [paper])
    ref = gate.reference(paper)
    i, key = first_metric(ref, lambda m: DIALECTS.get(m, {}).get("direction") == "higher")
    gate.edit_run(paper, ref["runs"][i]["run_id"], scale_metric(factor=1.1)(key))
    code, findings = gate.findings(paper=paper)
    target = finding_for(findings, ref["runs"][i], key)
    assert code == 0 and target["outcome"] == "improved"
    assert "re-baseline to keep it" in target["detail"]
    rich = gate.run(fmt="rich", paper=paper)
    assert rich.exit_code == 0 and "re-baseline to keep" in rich.stdout


def test_cost_metrics_are_never_gated(tmp_path):
    paper = IMPLEMENTED[0]
    gate = Gate(tmp_path, [paper])
    ref = gate.reference(paper)
    ref["runs"][0]["metrics"]["latency_ms|"] = {"value": 1.0, "per_seed": {"0": 1.0}}
    gate.set_reference(paper, ref)
    gate.synthesise(paper)
    gate.edit_run(paper, ref["runs"][0]["run_id"], scale_metric(factor=100.0)("latency_ms|"))
    code, findings = gate.findings(paper=paper)
    assert code == 0 and "latency_ms" not in {f["metric"] for f in findings}


def test_same_environment_is_exact_and_seeds_excuse_nothing():
    ref = {"value": 4.0, "per_seed": {"0": 3.0, "1": 5.0, "2": 4.0}}
    noisy_drop = {"value": 3.9, "per_seed": {"0": 2.9, "1": 4.9, "2": 3.9}}  # Welch p ~ 0.9
    assert check.compare_metric("rouge_l@rouge-score", ref, noisy_drop, True)[0] == "regressed"
    # the mean agrees but one seed moved: the deterministic run no longer reproduces
    swapped = {"value": 4.0, "per_seed": {"0": 5.0, "1": 3.0, "2": 4.0}}
    assert check.compare_metric("rouge_l@rouge-score", ref, swapped, True)[0] == "regressed"
    assert check.compare_metric("rouge_l@rouge-score", ref, dict(ref), True)[0] == "pass"


def test_other_environment_welch_needs_three_seeds_a_side():
    # rouge_l@rouge-score declares an absolute tolerance of 0.01
    two = {"value": 4.0, "per_seed": {"0": 3.0, "1": 5.0}}
    two_drop = {"value": 3.5, "per_seed": {"0": 2.5, "1": 4.5}}
    assert check.compare_metric("rouge_l@rouge-score", two, two_drop, False)[0] == "regressed"
    three = {"value": 4.0, "per_seed": {"0": 3.0, "1": 5.0, "2": 4.0}}
    three_drop = {"value": 3.9, "per_seed": {"0": 2.9, "1": 4.9, "2": 3.9}}
    from scipy.stats import ttest_ind

    assert ttest_ind([3.0, 5.0, 4.0], [2.9, 4.9, 3.9], equal_var=False).pvalue > 0.05
    outcome, detail = check.compare_metric("rouge_l@rouge-score", three, three_drop, False)
    assert outcome == "pass" and "Welch" in detail
    # zero spread on both sides: Welch is undefined (NaN) and excuses nothing
    flat = {"value": 4.0, "per_seed": {"0": 4.0, "1": 4.0, "2": 4.0}}
    flat_drop = {"value": 3.0, "per_seed": {"0": 3.0, "1": 3.0, "2": 3.0}}
    assert check.compare_metric("rouge_l@rouge-score", flat, flat_drop, False)[0] == "regressed"
    # within the declared tolerance is a pass whatever the seeds
    assert check.compare_metric("rouge_l@rouge-score", two, {"value": 4.005, "per_seed": {}}, False)[0] == "pass"


# --- --update merges ---------------------------------------------------------------------------------------------

def _paper_with_two_entries() -> str:
    for paper in IMPLEMENTED:
        if (ref := committed(paper)) and len(ref["runs"]) >= 2:
            return paper
    pytest.skip("no implemented paper has two referenced entries")


def test_update_merges_and_prints_the_diff(tmp_path):
    """`bench check --update -p u-dit` after reproducing u-dit-s alone deleted the DiT baseline's reference."""
    paper = _paper_with_two_entries()
    gate = Gate(tmp_path, [paper])
    before = gate.reference(paper)
    kept, redone = before["runs"][0], before["runs"][1]
    shutil.rmtree(gate.result_path(paper, kept["run_id"]).parent)
    key = gated_metrics(redone)[0]
    gate.edit_run(paper, redone["run_id"], scale_metric(factor=1.5)(key))
    result = gate.run("--update", paper=paper)
    assert result.exit_code == 0, result.output
    after = gate.reference(paper)
    entries = {(r["entry"], r["dataset"], r["setting"]): r for r in after["runs"]}
    assert entries[(kept["entry"], kept["dataset"], kept["setting"])]["metrics"] == kept["metrics"]
    new_value = entries[(redone["entry"], redone["dataset"], redone["setting"])]["metrics"][key]["value"]
    assert new_value == pytest.approx(redone["metrics"][key]["value"] * 1.5)
    old = redone["metrics"][key]["value"]
    assert f"{key}: {old:.6g} -> {old * 1.5:.6g}" in result.stdout
    assert "kept (no new run; --prune removes it)" in result.stdout
    # the merged reference is a valid reference and the store now passes except the entry without a run
    code, findings = gate.findings(paper=paper)
    assert {f["outcome"] for f in findings if f["entry"] == redone["entry"]} == {"pass"}
    assert {f["outcome"] for f in findings if f["entry"] == kept["entry"]} == {"missing"} and code == 1


def test_update_removes_only_with_prune(tmp_path):
    paper = _paper_with_two_entries()
    gate = Gate(tmp_path, [paper])
    gone = gate.reference(paper)["runs"][0]
    shutil.rmtree(gate.result_path(paper, gone["run_id"]).parent)
    assert gate.run("--update", paper=paper).exit_code == 0
    assert gone["entry"] in {r["entry"] for r in gate.reference(paper)["runs"]
                             if (r["dataset"], r["setting"]) == (gone["dataset"], gone["setting"])}
    result = gate.run("--update", "--prune", paper=paper)
    assert result.exit_code == 0 and "removed" in result.stdout
    remaining = {(r["entry"], r["dataset"], r["setting"]) for r in gate.reference(paper)["runs"]}
    assert (gone["entry"], gone["dataset"], gone["setting"]) not in remaining
    code, findings = gate.findings(paper=paper)
    assert code == 0 and {f["outcome"] for f in findings} == {"pass"}


def test_update_keeps_sanity_floor(tmp_path):
    paper = IMPLEMENTED[0]
    gate = Gate(tmp_path, [paper])
    run_ref = gate.reference(paper)["runs"][0]
    sanity = next(name for name, d in DIALECTS.items() if d.get("family") == "sanity")
    floor = {"value": 0.1, "trivial": "chance", "trivial_value": 0.1, "note": "test floor"}

    def add(run):
        run["metrics"].append({"metric": sanity, "setting": {}, "value": 0.5, "per_seed": {"0": 0.5},
                               "n": 10, "floor": floor})
    gate.edit_run(paper, run_ref["run_id"], add)
    assert gate.run("--update", paper=paper).exit_code == 0
    merged = next(r for r in gate.reference(paper)["runs"] if r["run_id"] == run_ref["run_id"])
    assert merged["metrics"][f"{sanity}|"]["floor"] == floor


def test_update_refuses_a_nan_baseline(tmp_path):
    paper = IMPLEMENTED[0]
    gate = Gate(tmp_path, [paper])
    before = (gate.ref_dir / f"{paper}.json").read_text()
    run_ref = gate.reference(paper)["runs"][0]
    gate.edit_run(paper, run_ref["run_id"], scale_metric(to=math.nan)(gated_metrics(run_ref)[0]))
    result = gate.run("--update", paper=paper)
    assert result.exit_code == 2 and "non-finite" in result.stderr
    assert (gate.ref_dir / f"{paper}.json").read_text() == before


# --- output formats ----------------------------------------------------------------------------------------------

def test_csv_format_is_csv(tmp_path):
    paper = IMPLEMENTED[0]
    gate = Gate(tmp_path, [paper])
    result = gate.run(fmt="csv", paper=paper)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    expected = sum(len(gated_metrics(r)) for r in gate.reference(paper)["runs"])
    assert len(rows) == expected and {r["outcome"] for r in rows} == {"pass"}
    assert {r["paper"] for r in rows} == {paper}


def test_md_format_counts_outcomes(tmp_path):
    paper = IMPLEMENTED[0]
    gate = Gate(tmp_path, [paper])
    result = gate.run(fmt="md", paper=paper)
    expected = sum(len(gated_metrics(r)) for r in gate.reference(paper)["runs"])
    assert result.exit_code == 0 and result.stdout.startswith("## bench check")
    assert f"ok ({expected} pass)" in result.stdout


def test_rich_output_escapes_markup_and_does_not_wrap_when_piped(tmp_path):
    paper = IMPLEMENTED[0]
    gate = Gate(tmp_path, [paper])
    ref = gate.reference(paper)
    ref["runs"][0]["entry"] = "odd[/]name[bold]"
    gate.set_reference(paper, ref)
    gate.synthesise(paper)
    result = gate.run(fmt="rich", paper=paper)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "odd[/]name[bold]" in line]
    assert len(lines) == len(gated_metrics(ref["runs"][0]))
    # a whole finding, detail included, sits on one line however long
    assert all("same environment: exact, seeds excuse nothing" in line for line in lines)


def test_check_does_not_import_torch(tmp_path):
    code = ("import sys; from typer.testing import CliRunner; from bench.cli import app; "
            f"r = CliRunner().invoke(app, ['check', '--format', 'json', '--reference-dir', {str(COMMITTED)!r}]); "
            "print(r.exit_code); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "BENCH_RESULTS": str(tmp_path / "runs")})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "False"]


def test_reference_round_trips_through_the_fixture():
    """The fixture helper itself: a synthesised record keys back to exactly the reference's entry and metrics."""
    from bench.store import run_key

    for paper in IMPLEMENTED:
        ref = committed(paper)
        if ref is None:
            continue
        for run_ref in ref["runs"]:
            record = run_record(ref, run_ref)
            assert run_key(record)[1:] == (run_ref["entry"], run_ref["dataset"], run_ref["setting"])
            assert set(check._metrics_by_key(record)) == set(run_ref["metrics"])
