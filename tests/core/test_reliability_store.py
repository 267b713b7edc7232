"""Issue 16, the store: a damaged record is reported (path + what is wrong), skipped by readers and recomputed by
`bench reproduce`; one writer per run (a lock with the writer's pid, taken over when that process is dead);
files readable by the group (the process umask, not mkstemp's 0600).

Each test drives the real runner or the real CLI on the toy paper (tests/core/toy_recipe.py)."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench import atomic, runner
from bench.cli import app
from bench.registry import BenchError
from bench.store import RunBusy, RunLock, Store

REPO = Path(__file__).resolve().parents[2]
cli = CliRunner()


def _one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture()
def toy_runs(toy_paper, store_root):
    """Both toy entries reproduced once: (store, specs, results)."""
    store = Store(store_root)
    specs = runner.plan(toy_paper, "smoke")
    outs = [runner.execute(spec, store, log=lambda m: None) for spec in specs]
    return store, specs, [o.result for o in outs]


def _count(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# --- damaged records ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "missing-keys"])
def test_damaged_result_is_recomputed_from_its_seeds_not_cached(toy_runs, tmp_path, monkeypatch, damage):
    """A truncated result.json made `reproduce` traceback and stay stuck until --force."""
    store, specs, results = toy_runs
    path = store.run_dir(specs[0]) / "result.json"
    text = path.read_text()
    if damage == "truncated":
        path.write_text(text[: len(text) // 2])
    else:
        path.write_text(json.dumps({k: v for k, v in json.loads(text).items() if k != "metrics"}))
    counter = tmp_path / "count.txt"
    monkeypatch.setenv("TOY_COUNTER", str(counter))
    logs: list[str] = []
    out = runner.execute(specs[0], store, log=logs.append)
    assert not out.cached
    assert any("damaged" in line and str(path.parent) in line for line in logs), logs
    assert any("seed 0 already finished, reusing it" in line for line in logs)
    assert _count(counter) == []  # recomputed from the finished seeds: no shard computed again
    assert json.loads(path.read_text())["metrics"] == results[0]["metrics"]
    assert runner.execute(specs[0], store, log=lambda m: None).cached  # healed: the next run is cached


def test_damaged_record_is_skipped_by_table_and_claims_with_a_warning(toy_runs):
    """A record missing keys crashed `table` (and `check`) for the whole paper."""
    store, specs, _ = toy_runs
    bad = store.run_dir(specs[1]) / "result.json"
    record = json.loads(bad.read_text())
    del record["scale"]
    bad.write_text(json.dumps(record))
    for args in (["table", "--paper", "toy", "--format", "json"], ["claims", "toy", "--json"]):
        result = cli.invoke(app, args)
        assert result.exit_code == 0, result.stderr
        warnings = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(warnings) == 1 and str(bad) in warnings[0] and "field scale" in warnings[0], warnings
    problems: list[str] = []
    assert [r["entry"] for r in store.latest("toy", problems)] == ["toy-method"]
    assert len(problems) == 1


def test_corrupt_spec_is_reported_by_show_then_repaired_and_recomputed(toy_runs):
    """A corrupt spec.json was never repaired (reproduce said "cached") and `show` tracebacked on it."""
    store, specs, results = toy_runs
    run_dir = store.run_dir(specs[0])
    (run_dir / "spec.json").write_text('{"paper": "toy", "entr')
    shown = cli.invoke(app, ["show", specs[0].run_id()])
    assert shown.exit_code == 0 and "Traceback" not in shown.stderr + shown.stdout
    assert "spec.json" in shown.stdout
    problems: list[str] = []
    assert [r["entry"] for r in store.latest("toy", problems)] == ["toy-baseline"]
    assert "spec.json" in problems[0] and str(run_dir) in problems[0]
    logs: list[str] = []
    out = runner.execute(specs[0], store, log=logs.append)
    assert not out.cached and any("spec.json" in line for line in logs)
    assert json.loads((run_dir / "spec.json").read_text()) == specs[0].model_dump(mode="json")
    assert out.result["metrics"] == results[0]["metrics"]
    assert store.damage(run_dir) is None


def test_damaged_seed_record_is_recomputed(toy_runs, tmp_path, monkeypatch):
    store, specs, results = toy_runs
    run_dir = store.run_dir(specs[0])
    (run_dir / "result.json").unlink()
    (run_dir / "seeds" / "1.json").write_text('{"seed": 1, "metrics": [{"metric": "psnr_rgb"}]}')
    logs: list[str] = []
    out = runner.execute(specs[0], store, log=logs.append)
    assert any("seeds/1.json is damaged" in line for line in logs), logs
    assert out.result["metrics"] == results[0]["metrics"]


def test_resume_says_what_it_reuses(toy_runs, tmp_path, monkeypatch):
    """Resume printed nothing; now it names the finished seeds and the item shards already on disk."""
    store, specs, results = toy_runs
    run_dir = store.run_dir(specs[0])
    for path in (run_dir / "result.json", run_dir / "seeds" / "1.json", run_dir / "items" / "1" / "shard3.jsonl"):
        path.unlink()  # killed while seed 1 computed its last shard
    counter = tmp_path / "count.txt"
    monkeypatch.setenv("TOY_COUNTER", str(counter))
    logs: list[str] = []
    out = runner.execute(specs[0], store, log=logs.append)
    assert [line.strip() for line in logs] == ["seed 0 already finished, reusing it",
                                               "seed 1: resuming, 3 item shards already done"]
    assert _count(counter) == ["toy-method,1,3"]
    assert out.result["metrics"] == results[0]["metrics"]


def test_damaged_item_shard_is_set_aside_and_recomputed(toy_runs, tmp_path, monkeypatch):
    store, specs, results = toy_runs
    run_dir = store.run_dir(specs[0])
    (run_dir / "result.json").unlink()
    (run_dir / "seeds" / "0.json").unlink()
    shard = run_dir / "items" / "0" / "shard2.jsonl"
    shard.write_text(shard.read_text()[:30])  # cut short by hand (shards are written atomically)
    counter = tmp_path / "count.txt"
    monkeypatch.setenv("TOY_COUNTER", str(counter))
    out = runner.execute(specs[0], store, log=lambda m: None)
    assert _count(counter) == ["toy-method,0,2"]
    assert shard.with_name("shard2.jsonl.corrupt").exists()
    assert out.result["metrics"] == results[0]["metrics"]


def test_find_never_matches_the_stores_own_folders(toy_runs):
    """`show _sh` matched the store's `_shared` folder and tracebacked."""
    store, specs, _ = toy_runs
    shared = store.root / "toy" / "_shared"
    (shared / "digits").mkdir(parents=True)
    with pytest.raises(BenchError, match="no run '_sh'"):
        store.find("_sh")
    line = _one_line_error(cli.invoke(app, ["show", "_sh"]))
    assert "_sh" in line
    assert store.find(specs[0].run_id()[:6]) == store.run_dir(specs[0])


# --- one writer per run -------------------------------------------------------------------------------------
HOLDER = """
import sys, time
from pathlib import Path
from bench.store import RunLock
lock = RunLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""


def _hold_lock(run_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked", proc.stderr.read()
    return proc


def test_second_writer_of_a_run_exits_2_naming_the_pid(toy_paper, store_root, tmp_path, monkeypatch):
    """Two `bench reproduce` of one run did all the work twice and logged every step twice."""
    spec = runner.plan(toy_paper, "smoke")[0]
    store = Store(store_root)
    counter = tmp_path / "count.txt"
    monkeypatch.setenv("TOY_COUNTER", str(counter))
    holder = _hold_lock(store.run_dir(spec))
    try:
        with pytest.raises(RunBusy) as err:
            runner.execute(spec, store, log=lambda m: None)
        assert str(err.value).startswith(f"run {spec.run_id()} is being written by pid {holder.pid}")
        line = _one_line_error(cli.invoke(app, ["reproduce", "toy", "--entry", "toy-method"]))
        assert f"run {spec.run_id()} is being written by pid {holder.pid}" in line
        assert _count(counter) == [] and not (store.run_dir(spec) / "result.json").exists()
    finally:
        holder.kill()
        holder.wait()


def test_waiting_writer_runs_once_the_holder_is_gone(toy_paper, store_root):
    spec = runner.plan(toy_paper, "smoke")[0]
    store = Store(store_root)
    holder = _hold_lock(store.run_dir(spec))
    logs: list[str] = []
    killer = subprocess.Popen([sys.executable, "-c", f"import os, time; time.sleep(1.0); os.kill({holder.pid}, 9)"])
    try:
        out = runner.execute(spec, store, log=logs.append, wait=True)
    finally:
        holder.kill()
        holder.wait()
        killer.wait()
    assert out.result["status"] == "complete"
    assert any(f"being written by pid {holder.pid}; waiting" in line for line in logs), logs


def test_stale_lock_of_a_killed_writer_is_taken_over(toy_paper, store_root):
    spec = runner.plan(toy_paper, "smoke")[0]
    store = Store(store_root)
    holder = _hold_lock(store.run_dir(spec))
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    logs: list[str] = []
    out = runner.execute(spec, store, log=logs.append)
    assert out.result["status"] == "complete"
    assert any(f"taking over the lock of pid {holder.pid}" in line for line in logs), logs
    lock = RunLock(store.run_dir(spec))
    assert lock.holder() == (None, "")  # released cleanly: nobody to take over from


def test_two_concurrent_reproduces_compute_each_shard_once(toy_paper, store_root, tmp_path):
    """Two real processes on the same runs: one writes, the other exits 2; no shard is computed twice."""
    env = {**os.environ, "BENCH_RESULTS": str(store_root), "TOY_COUNTER": str(tmp_path / "count.txt"),
           "TOY_SLEEP": "0"}
    script = ("import sys, time\n"
              "from tests.core import toy_recipe\n"
              "slow = toy_recipe.run_seed\n"
              "def run_seed(spec, seed, ctx):\n"
              "    time.sleep(1.5)\n"
              "    return slow(spec, seed, ctx)\n"
              "toy_recipe.run_seed = run_seed\n"
              "from bench import papers\n"
              "from bench.cli import app\n"
              "from tests.core.conftest import TOY_CARD\n"
              "papers.registries()['papers'].register('toy', 'tests.core.toy_recipe', package='toy', card=str(TOY_CARD))\n"
              "app(['reproduce', 'toy', '--entry', 'toy-method'])\n")
    procs = [subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)]
    time.sleep(1.0)
    procs.append(subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=240) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = outs[[p.returncode for p in procs].index(2)][1]
    assert "is being written by pid" in loser and len(loser.strip().splitlines()) == 1, loser
    computed = (tmp_path / "count.txt").read_text().splitlines()
    assert len(computed) == len(set(computed)) == 2 * 4


# --- permissions ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_atomic_files_follow_the_umask(tmp_path, umask, mode):
    """Records and references were written 0600 (mkstemp), unreadable by the rest of a group."""
    old = os.umask(umask)
    try:
        path = atomic.write_json(tmp_path / "x" / "result.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_reproduced_run_files_are_group_readable(toy_paper, store_root):
    old = os.umask(0o022)
    try:
        spec = runner.plan(toy_paper, "smoke")[0]
        runner.execute(spec, Store(store_root), log=lambda m: None)
    finally:
        os.umask(old)
    run_dir = Store(store_root).run_dir(spec)
    files = [p for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"]
    assert files and {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(0o644)}
