"""Run store, runner and resume: records are complete, atomic, and a killed run resumes without loss."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import runner
from bench.registry import BenchError
from bench.store import Store, aggregate
from tests.core import toy_recipe

REPO = Path(__file__).resolve().parents[2]


def expected_mean(offset: float, seed: int) -> float:
    n = toy_recipe.N_SHARDS * toy_recipe.ITEMS_PER_SHARD
    return sum(toy_recipe.item_value(offset, seed, i) for i in range(n)) / n


def test_reproduce_records_complete_runs(toy_paper, store_root):
    specs = runner.plan(toy_paper, "smoke")
    assert [s.entry for s in specs] == ["toy-method", "toy-baseline"]
    out = runner.execute(specs[0], Store(store_root), log=lambda m: None)
    result = out.result
    assert result["status"] == "complete" and result["schema_version"] == 1
    (metric,) = result["metrics"]
    per_seed = [expected_mean(1.0, 0), expected_mean(1.0, 1)]
    assert metric["per_seed"] == {"0": pytest.approx(per_seed[0]), "1": pytest.approx(per_seed[1])}
    assert metric["value"] == pytest.approx(sum(per_seed) / 2)
    # 95% Student-t interval with one degree of freedom: t = 12.706
    half = 12.7062047 * abs(per_seed[0] - per_seed[1]) / 2 ** 0.5 / 2 ** 0.5
    assert metric["ci95"] == pytest.approx([metric["value"] - half, metric["value"] + half], rel=1e-6)
    prov = result["provenance"]
    assert prov["libraries"]["torch"] and prov["hardware"]["cpu_count"] and prov["seeds"] == [0, 1]
    assert prov["dataset_fingerprint"] == "toy"
    run_dir = store_root / "toy" / specs[0].run_id()
    assert json.loads((run_dir / "spec.json").read_text())["entry"] == "toy-method"
    assert len(Store(store_root).run_dir(specs[0]).joinpath("items", "0").glob("*.jsonl").__iter__().__next__()
               .read_text().splitlines()) == toy_recipe.ITEMS_PER_SHARD
    assert not list(run_dir.rglob(".*.tmp-*")), "no temp files left behind"


def test_run_id_is_the_spec_hash(toy_paper):
    a, b = runner.plan(toy_paper, "smoke")
    assert a.run_id() != b.run_id()
    assert a.run_id() == runner.plan(toy_paper, "smoke")[0].run_id()
    assert a.with_overrides(seeds=[3]).run_id() != a.run_id()


def test_aggregate_matches_hand_computation():
    agg = aggregate([1.0, 2.0, 3.0])
    assert agg["value"] == 2.0 and agg["std"] == pytest.approx(1.0)
    assert agg["ci95"] == pytest.approx([2.0 - 4.302653 / 3 ** 0.5, 2.0 + 4.302653 / 3 ** 0.5], rel=1e-6)
    assert aggregate([5.0]) == {"value": 5.0, "std": None, "ci95": None}


def _run_cli(args, env, check=True):
    proc = subprocess.run([sys.executable, "-m", "tests.core.toy_cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr)
    return proc


def test_killed_run_resumes_without_loss_or_duplicates(store_root, tmp_path):
    env = {**os.environ, "BENCH_RESULTS": str(store_root), "TOY_COUNTER": str(tmp_path / "count.txt")}
    # die with SIGKILL after seed 1's second shard of the method: seed 0 is finished, seed 1 half done
    killed = _run_cli([], {**env, "TOY_DIE_AFTER": "toy-method,1,1"}, check=False)
    assert killed.returncode == -9
    done_before = (tmp_path / "count.txt").read_text().splitlines()
    assert done_before[-1] == "toy-method,1,1"
    _run_cli([], env)
    computed = (tmp_path / "count.txt").read_text().splitlines()
    resumed = computed[len(done_before):]
    # the resume computes only what was missing: seed 1 shards 2..3 of the method, then the baseline
    assert resumed[:2] == ["toy-method,1,2", "toy-method,1,3"]
    assert len(computed) == len(set(computed)) == 2 * 2 * toy_recipe.N_SHARDS
    results = {r["entry"]: r for _, r in Store(store_root).iter_results("toy")}
    assert results["toy-method"]["metrics"][0]["per_seed"]["1"] == pytest.approx(expected_mean(1.0, 1))
    run_dir = store_root / "toy" / results["toy-method"]["run_id"]
    rows = [json.loads(line) for p in sorted((run_dir / "items" / "1").glob("*.jsonl"))
            for line in p.read_text().splitlines()]
    assert sorted(r["index"] for r in rows) == list(range(toy_recipe.N_SHARDS * toy_recipe.ITEMS_PER_SHARD))


def test_unwritable_results_dir_is_one_line_error(toy_paper, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    store = Store(blocker / "runs")  # cannot be created, even as root
    with pytest.raises(BenchError, match="not writable") as err:
        runner.execute(runner.plan(toy_paper, "smoke")[0], store, log=lambda m: None)
    assert "\n" not in str(err.value)
    assert blocker.read_text() == "not a directory"


def test_corrupt_result_is_reported_and_skipped(toy_paper, store_root):
    store = Store(store_root)
    runner.execute(runner.plan(toy_paper, "smoke")[0], store, log=lambda m: None)
    bad = store_root / "toy" / "deadbeef" / "result.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{ not json")
    problems: list[str] = []
    assert len(store.latest("toy", problems)) == 1
    assert len(problems) == 1 and "deadbeef" in problems[0]


def test_runs_differing_only_in_setting_are_both_latest(store_root):
    """x2 and x4 runs of one SR entry are two runs, not one replacing the other."""
    from bench.spec import RunSpec

    store = Store(store_root)
    for scale in (2, 4):
        spec = RunSpec(paper="toy", entry="toy-method", impl="toy", dataset="digits", metrics=["psnr_rgb"],
                       setting={"sr_scale": scale})
        handle = store.open(spec)
        store.finish(handle, {0: {"metrics": [{"metric": "psnr_rgb", "value": 30.0 + scale, "n": 1}]}}, {},
                     "complete", "2026-01-01T00:00:00+00:00")
    latest = store.latest("toy")
    assert sorted(r["setting"]["sr_scale"] for r in latest) == [2, 4]
