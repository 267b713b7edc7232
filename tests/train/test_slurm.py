"""Slurm launch through submitit: the job function and its parameters are built without Slurm, and the fan-out of
`bench reproduce --launcher slurm` (entries x seeds as one job array, bench/launch.py) really runs, through
submitit's LocalExecutor on the CPU, on the toy paper (tests/core/toy_recipe.py)."""
from __future__ import annotations

import importlib.util
import json
import os
import pickle
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench import launch, runner
from bench.cli import app
from bench.registry import BenchError
from bench.store import RunLock, Store
from bench.train.slurm import SlurmJob, build_slurm_job, dist_env, strip_nproc, submit_slurm
from tests.core import conftest as core_conftest

toy_paper = core_conftest.toy_paper  # the fixture that registers the toy paper for one test
HAS_SUBMITIT = importlib.util.find_spec("submitit") is not None
REPO = Path(__file__).resolve().parents[2]
cli = CliRunner()


def test_job_carries_the_reproduce_command_and_executor_parameters(tmp_path):
    job = build_slurm_job(["bench", "reproduce", "u-dit", "--scale", "paper", "--nproc", "8"], nodes=2,
                          gpus_per_node=4, cpus_per_task=6, timeout_min=90, partition="gpu", folder=tmp_path)
    assert job.command == ("bench", "reproduce", "u-dit", "--scale", "paper")  # Slurm sets the process count
    assert job.executor_params == {"name": "bench", "nodes": 2, "tasks_per_node": 4, "gpus_per_node": 4,
                                   "cpus_per_task": 6, "timeout_min": 90, "slurm_partition": "gpu"}
    assert job.folder == str(tmp_path / "%j")
    clone = pickle.loads(pickle.dumps(job))  # submitit pickles the job function
    assert isinstance(clone, SlurmJob) and clone == job and callable(clone)


def test_strip_nproc_and_task_environment():
    assert strip_nproc(["bench", "reproduce", "x", "--nproc=4", "--seed", "1"]) == ["bench", "reproduce", "x", "--seed", "1"]
    env = dist_env(rank=5, world_size=8, local_rank=1, local_world_size=4, master_addr="node01", job_id="4242_3")
    assert env == {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4",
                   "MASTER_ADDR": "node01", "MASTER_PORT": str(20000 + 42423 % 20000)}


def test_bad_geometry_is_rejected():
    with pytest.raises(BenchError, match="empty command"):
        build_slurm_job([])
    with pytest.raises(BenchError, match="must be >= 1"):
        build_slurm_job(["bench"], gpus_per_node=0)


def test_submitting_without_submitit_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # `import submitit` fails as where it is not installed
    with pytest.raises(BenchError, match=r"pip install 'bench\[slurm\]'"):
        submit_slurm(build_slurm_job(["bench", "list"]))


@pytest.fixture()
def fake_slurm(tmp_path, monkeypatch):
    """`srun` and `sbatch` stand-ins on PATH: sbatch keeps the script it is given and answers like Slurm."""
    bin_dir, scripts = tmp_path / "fake-slurm-bin", tmp_path / "sbatch-scripts"
    bin_dir.mkdir()
    scripts.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {scripts}/\necho "Submitted batch job 4242"\n')
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return scripts


@pytest.mark.skipif(not HAS_SUBMITIT, reason="submitit is not installed (dev extra)")
def test_entries_x_seeds_go_to_slurm_as_one_array_of_ddp_tasks(toy_paper, store_root, tmp_path, fake_slurm):
    """The Slurm side of the fan-out, down to the sbatch script: one array of 4 tasks (2 runs x 2 seeds), each
    with one process per GPU; every task's command is `python -m bench.launch` with its own seed."""
    specs = [s.with_overrides(world_size=2) for s in runner.plan("toy", "smoke")]
    submitted = launch.submit(specs, results_root=store_root, gpus_per_node=2, cpus_per_task=3, timeout_min=90,
                              partition="gpu", folder=tmp_path / "logs", cluster="slurm")
    assert [s.job.job_id for s in submitted] == ["4242_0", "4242_1", "4242_2", "4242_3"]
    assert [str(s.job.paths.stdout) for s in submitted] == [
        str(tmp_path / "logs" / f"4242_{k}" / f"4242_{k}_0_log.out") for k in range(4)]
    (script,) = list(fake_slurm.iterdir())
    text = script.read_text()
    for line in ("#SBATCH --array=0-3", "#SBATCH --gpus-per-node=2", "#SBATCH --ntasks-per-node=2",
                 "#SBATCH --nodes=1", "#SBATCH --cpus-per-task=3", "#SBATCH --partition=gpu", "#SBATCH --time=90",
                 "#SBATCH --job-name=bench-toy"):
        assert line in text, (line, text)
    tasks = [s.task for s in submitted]
    assert [(t.run_spec().entry, t.seed) for t in tasks] == [
        ("toy-method", 0), ("toy-method", 1), ("toy-baseline", 0), ("toy-baseline", 1)]
    assert all(t.run_spec() == spec for t, spec in zip(tasks, [specs[0]] * 2 + [specs[1]] * 2))
    job = pickle.loads(pickle.dumps(build_slurm_job(launch.task_command(tasks[1]), gpus_per_node=2)))
    assert job.command[:3] == (sys.executable, "-m", "bench.launch")
    assert launch.SeedTask.from_json(job.command[3]) == tasks[1]


# --- the fan-out: entries x seeds as one job array ------------------------------------------------------------
def _submit_locally(monkeypatch, args: list[str], folder: Path) -> tuple[list[launch.Submitted], str]:
    """`bench reproduce toy --launcher slurm ARGS`, with submitit's LocalExecutor standing in for Slurm (every
    task's processes start here, at once); waits for every task and returns them with what reproduce printed."""
    submitted: list[launch.Submitted] = []
    real_submit = launch.submit

    def spy(*a, **kw):
        submitted.extend(real_submit(*a, **kw))
        return submitted

    monkeypatch.setattr(launch, "submit", spy)
    monkeypatch.setattr(launch, "CLUSTER", "local")
    monkeypatch.setattr(launch, "WORKER", (sys.executable, "-m", "tests.train._slurm_toy_task"))
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the task processes import tests.train._slurm_toy_task
    out = cli.invoke(app, ["reproduce", "toy", "--launcher", "slurm", "--timeout-min", "10",
                           "--slurm-folder", str(folder), *args])
    assert out.exit_code == 0, (out.stdout, out.stderr)
    for item in submitted:
        assert item.job.results() == [0] * len(item.job.results()), item.job.stderr()  # each process exited 0
    return submitted, out.stdout


def _per_seed(result: dict) -> list[tuple]:
    return [(m["metric"], m["per_seed"], m["value"], m["std"]) for m in result["metrics"]]


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SUBMITIT, reason="submitit is not installed (dev extra)")
def test_reproduce_launcher_slurm_fans_entries_and_seeds_out_and_the_store_merges_them(toy_paper, store_root,
                                                                                        tmp_path, monkeypatch):
    """`bench reproduce toy --launcher slurm`: 2 entries x 2 seeds become 4 array tasks running at once; each
    computes one seed into the run's own directory, and the two seeds of each run merge into the record a local
    run writes (same run id, same per-seed values); `bench table` shows them."""
    folder = tmp_path / "slurm"
    submitted, printed = _submit_locally(monkeypatch, ["--gpus-per-node", "1"], folder)
    assert sorted((s.task.run_spec().entry, s.task.seed) for s in submitted) == [
        ("toy-baseline", 0), ("toy-baseline", 1), ("toy-method", 0), ("toy-method", 1)]
    for item in submitted:  # the job ids and where their logs are
        assert f"job {item.job.job_id}: " in printed and str(item.job.paths.stdout) in printed
    assert f"logs under {folder}" in printed

    store = Store(store_root)
    fanned = {r["run_id"]: r for r in store.latest("toy")}
    reference = {spec.run_id(): runner.execute(spec, Store(tmp_path / "local"), log=lambda m: None).result
                 for spec in runner.plan("toy", "smoke")}  # what a plain local `bench reproduce toy` records
    assert sorted(fanned) == sorted(reference)
    for run_id, ref in reference.items():
        got = fanned[run_id]
        assert (got["status"], got["seeds"], got["error"]) == ("complete", [0, 1], None)
        assert _per_seed(got) == _per_seed(ref)
        assert all(p.read_text() == "" for p in (store.root / "toy" / run_id).glob(".lock*"))  # all released

    table = cli.invoke(app, ["table", "toy", "--format", "json"])
    assert table.exit_code == 0, table.stderr
    (row,) = json.loads(table.stdout)["headline"]
    for side in ("method", "baseline"):
        ref = reference[row[side]["run_id"]]["metrics"][0]
        assert (row[side]["mean"], row[side]["n"]) == (ref["value"], 2)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SUBMITIT, reason="submitit is not installed (dev extra)")
def test_each_array_task_runs_ddp_across_its_processes(toy_paper, store_root, tmp_path, monkeypatch):
    """--gpus-per-node 2: every task has two processes joined over gloo here (NCCL on GPUs), with the torchrun
    variables SlurmJob exports; the run is planned for world size 2 and its seeds equal a one-process run's."""
    submitted, _ = _submit_locally(monkeypatch, ["--entry", "toy-method", "--gpus-per-node", "2"], tmp_path / "slurm")
    assert len(submitted) == 2 and all(s.task.run_spec().world_size == 2 for s in submitted)
    for item in submitted:
        assert len(item.job.results()) == 2
        logs = item.job.task(0).stdout()  # rank 0 reports; rank 1 computed silently beside it
        assert f"seed {item.task.seed} of run" in logs
    (result,) = Store(store_root).latest("toy")
    assert result["provenance"]["world_size"] == 2 and result["seeds"] == [0, 1]
    reference = runner.execute(runner.plan("toy", "smoke", entries=["toy-method"])[0], Store(tmp_path / "one"),
                               log=lambda m: None).result
    assert _per_seed(result) == _per_seed(reference)


def test_a_seed_task_computes_while_the_run_is_locked_and_merges_when_it_is_free(toy_paper, store_root):
    """The run lock admits one writer per run: a task holding it while computing would make its sibling seed fail
    (RunBusy). A seed task computes under its seed's lock and waits for the run lock only to merge; the record is
    "partial" until the last seed merges, then equal to a local run's."""
    spec = runner.plan("toy", "smoke", entries=["toy-method"])[0]
    task0, task1 = launch.plan_tasks([spec], store_root)
    assert (task0.seed, task1.seed) == (0, 1) and task0.spec == task1.spec == spec.model_dump(mode="json")
    store = Store(store_root)
    holder = RunLock(store.run_dir(spec))
    holder.acquire()  # e.g. the sibling seed's task merging
    logs: list[str] = []
    done = threading.Event()
    worker = threading.Thread(target=lambda: (launch.run_task(_through_argv(task0), log=logs.append), done.set()))
    worker.start()
    deadline = time.monotonic() + 60
    while not (store.run_dir(spec) / "seeds" / "0.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (store.run_dir(spec) / "seeds" / "0.json").exists()  # computed although the run lock is held
    assert not done.wait(0.5)  # ... and waiting to merge
    assert any("waiting" in line for line in logs), logs
    holder.release()
    worker.join(60)
    assert done.is_set()
    partial = store.read_result(store.run_dir(spec))
    assert partial["status"] == "partial" and partial["seeds"] == [0] and "seeds 1 not finished" in partial["error"]
    assert store.latest("toy") == []  # a partial run is not in the tables yet

    final = launch.run_task(task1, log=lambda m: None)
    reference = runner.execute(spec, Store(store_root.parent / "local"), log=lambda m: None).result
    assert final["status"] == "complete" and final["seeds"] == [0, 1]
    assert final["started_at"] == partial["started_at"]  # the run started with its first task
    assert [m["per_seed"] for m in final["metrics"]] == [m["per_seed"] for m in reference["metrics"]]
    again: list[str] = []
    assert launch.run_task(task0, log=again.append)["finished_at"] == final["finished_at"]  # complete: untouched
    assert any("already complete" in line for line in again)


def _through_argv(task: launch.SeedTask) -> launch.SeedTask:
    """A task as the array task receives it: through its JSON command-line argument."""
    command = launch.task_command(task)
    assert command[:3] == list(launch.WORKER)
    return launch.SeedTask.from_json(command[-1])


@pytest.mark.skipif(not HAS_SUBMITIT, reason="submitit is not installed (dev extra)")
def test_launcher_slurm_refuses_what_independent_tasks_cannot_honour(toy_paper, store_root, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # wherever the tests run, no sbatch
    for extra, message in ((["--nproc", "2"], "--nproc is for --launcher local"),
                           (["--force"], "--force and --no-resume"),
                           (["--no-resume"], "--force and --no-resume"),
                           (["--gpus-per-node", "0"], "must be >= 1")):
        out = cli.invoke(app, ["reproduce", "toy", "--launcher", "slurm", *extra])
        assert out.exit_code == 2 and message in out.stderr, (extra, out.stderr)
    out = cli.invoke(app, ["reproduce", "toy", "--launcher", "slurm"])  # no Slurm on this machine
    assert out.exit_code == 2 and "Slurm is not reachable here (no sbatch/srun on PATH)" in out.stderr, out.stderr
    out = cli.invoke(app, ["reproduce", "toy", "--launcher", "pbs"])
    assert out.exit_code == 2 and "--launcher takes local or slurm" in out.stderr
    spec = runner.plan("toy", "smoke")[0]
    with pytest.raises(BenchError, match="another process count"):
        launch.submit([spec], results_root=store_root, nodes=2, gpus_per_node=4, folder=store_root, cluster="local")
    with pytest.raises(BenchError, match="not a seed of run"):
        launch.run_task(launch.SeedTask(spec.model_dump(mode="json"), 7, str(store_root)))
