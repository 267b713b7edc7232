"""`bench runs`, `bench show` and `bench diff` on the toy paper, whose numbers are known in advance."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.store import Store
from tests.core.test_runs import expected_mean

runner = CliRunner()


def run_ids(store: Store) -> dict[str, str]:
    """entry -> run id, read straight from the store's files."""
    return {json.loads(p.read_text())["entry"]: p.parent.name for p in store.root.glob("toy/*/result.json")}


def edit_result(store: Store, run_id: str, **changes) -> None:
    path = store.root / "toy" / run_id / "result.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def invoke_json(args: list[str]):
    result = runner.invoke(app, args + ["--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_runs_lists_every_run_newest_first_with_age(toy_runs):
    ids = run_ids(toy_runs)
    three_hours_ago = (datetime.now(UTC) - timedelta(hours=3, minutes=5)).isoformat(timespec="seconds")
    edit_result(toy_runs, ids["toy-method"], finished_at=three_hours_ago)
    rows = invoke_json(["runs"])
    assert [r["entry"] for r in rows] == ["toy-baseline", "toy-method"]  # newest first
    old = rows[1]
    assert old == {**old, "run_id": ids["toy-method"], "paper": "toy", "dataset": "digits", "scale": "smoke",
                   "seeds": [0, 1], "status": "complete", "finished": three_hours_ago, "age": "3 h ago"}
    assert 3 * 3600 < old["age_s"] < 3.5 * 3600 and isinstance(old["setting"], dict)
    text = runner.invoke(app, ["runs", "toy"]).stdout
    assert ids["toy-method"] in text and "3 h ago" in text and "complete" in text


def test_runs_filters_by_entry_scale_and_status(toy_runs):
    ids = run_ids(toy_runs)
    edit_result(toy_runs, ids["toy-baseline"], status="failed")
    assert [r["run_id"] for r in invoke_json(["runs", "--status", "failed"])] == [ids["toy-baseline"]]
    assert [r["run_id"] for r in invoke_json(["runs", "--status", "complete,failed", "--entry", "toy-method"])] == \
        [ids["toy-method"]]
    assert invoke_json(["runs", "--scale", "paper"]) == []
    empty = runner.invoke(app, ["runs", "u-dit"])
    assert empty.exit_code == 0 and "no runs of u-dit" in empty.stdout


def test_unreadable_and_unfinished_runs_are_listed_not_fatal(toy_runs):
    ids = run_ids(toy_runs)
    (toy_runs.root / "toy" / ids["toy-method"] / "result.json").write_text('{"truncated": ')
    (toy_runs.root / "toy" / ids["toy-baseline"] / "result.json").unlink()
    result = runner.invoke(app, ["runs", "--json"])
    assert result.exit_code == 0, result.output
    status = {r["entry"]: r["status"] for r in json.loads(result.stdout)}
    assert status == {"toy-method": "unreadable", "toy-baseline": "unfinished"}
    assert "warning:" in result.stderr and ids["toy-method"] in result.stderr
    shown = runner.invoke(app, ["show", ids["toy-method"]])
    assert shown.exit_code == 0 and "status: unreadable" in shown.stdout


def test_show_points_to_bench_runs_for_an_unknown_id(toy_runs):
    result = runner.invoke(app, ["show", "nonexist"])
    assert result.exit_code == 2 and "`bench runs`" in result.output and "bench table" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_show_prints_the_metrics_in_every_format(toy_runs):
    run_id = run_ids(toy_runs)["toy-method"]
    mean = (expected_mean(1.0, 0) + expected_mean(1.0, 1)) / 2
    data = invoke_json(["show", run_id[:6]])
    assert data["status"] == "complete" and data["spec"]["entry"] == "toy-method"
    assert data["result"]["metrics"][0]["value"] == pytest.approx(mean, abs=1e-12)
    csv_out = runner.invoke(app, ["show", run_id, "-f", "csv"]).stdout.splitlines()
    assert csv_out[0] == "metric,setting,value,std,n,seeds"
    assert csv_out[1].startswith("psnr_rgb,sr_scale=2,") and float(csv_out[1].split(",")[2]) == pytest.approx(mean)
    rich = runner.invoke(app, ["show", run_id]).stdout
    assert "[smoke]" in rich and f"{mean:.6g}" in rich  # brackets are text, not markup


def test_diff_json_is_structured(toy_runs):
    ids = run_ids(toy_runs)
    a = (expected_mean(1.0, 0) + expected_mean(1.0, 1)) / 2
    b = (expected_mean(0.0, 0) + expected_mean(0.0, 1)) / 2
    report = invoke_json(["diff", ids["toy-method"], ids["toy-baseline"]])
    assert report["a"] == {"run_id": ids["toy-method"], "status": "complete"}
    [m] = report["metrics"]
    assert m["metric"] == "psnr_rgb" and m["setting"] == {"sr_scale": 2}
    assert m["a"] == pytest.approx(a, abs=1e-12) and m["b"] == pytest.approx(b, abs=1e-12)
    assert m["delta"] == pytest.approx(b - a, abs=1e-12)
    assert {"key": "args.offset", "a": 1.0, "b": 0.0} in report["spec"]
    assert {"key": "entry", "a": "toy-method", "b": "toy-baseline"} in report["spec"]
    assert report["seeds"] == [] and report["notes"] == []
    md = runner.invoke(app, ["diff", ids["toy-method"], ids["toy-baseline"], "-f", "md"]).stdout
    assert "| psnr_rgb | sr_scale=2 |" in md and f"{b - a:+.6g}" in md and "| args.offset | 1 | 0 |" in md


def test_diff_says_when_a_run_has_no_metrics(toy_runs):
    ids = run_ids(toy_runs)
    edit_result(toy_runs, ids["toy-baseline"], status="failed", metrics=[], seeds=[])
    report = invoke_json(["diff", ids["toy-method"], ids["toy-baseline"]])
    assert report["notes"] == ["run B has no metrics (status failed)"]
    assert report["metrics"][0]["b"] is None and report["metrics"][0]["delta"] is None
    assert {"key": "seeds", "a": [0, 1], "b": []} in report["seeds"]
    text = runner.invoke(app, ["diff", ids["toy-method"], ids["toy-baseline"]]).stdout
    assert "metrics: run B has no metrics (status failed)" in text and "metrics: (same)" not in text


def test_runs_show_and_diff_do_not_import_torch(toy_runs):
    ids = sorted(run_ids(toy_runs).values())
    code = ("import sys; from typer.testing import CliRunner; from bench.cli import app; r = CliRunner(); "
            f"outs = [r.invoke(app, a) for a in (['runs'], ['show', '{ids[0]}'], ['diff', '{ids[0]}', '{ids[1]}'])]; "
            "assert all(o.exit_code == 0 for o in outs), [o.output for o in outs]; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False"]


def test_a_run_without_result_is_running_while_its_writer_lives(toy_runs):
    import os
    import socket

    ids = run_ids(toy_runs)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for entry, pid in (("toy-method", os.getpid()), ("toy-baseline", dead.pid)):
        run_dir = toy_runs.root / "toy" / ids[entry]
        (run_dir / "result.json").unlink()
        (run_dir / ".lock").write_text(f"{pid} {socket.gethostname()}\n")  # as bench.store.RunLock writes it
    status = {r["entry"]: r["status"] for r in invoke_json(["runs"])}
    assert status == {"toy-method": "running", "toy-baseline": "unfinished"}
    assert [r["entry"] for r in invoke_json(["runs", "--status", "RUNNING"])] == ["toy-method"]
