"""Slurm launch through submitit: the job function and its parameters are built without Slurm."""
from __future__ import annotations

import importlib.util
import pickle

import pytest

from bench.registry import BenchError
from bench.train.slurm import SlurmJob, build_slurm_job, dist_env, strip_nproc, submit_slurm

HAS_SUBMITIT = importlib.util.find_spec("submitit") is not None


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


@pytest.mark.skipif(HAS_SUBMITIT, reason="submitit is installed")
def test_submitting_without_submitit_says_how_to_get_it():
    with pytest.raises(BenchError, match=r"pip install 'bench\[slurm\]'"):
        submit_slurm(build_slurm_job(["bench", "list"]))


@pytest.mark.skipif(not HAS_SUBMITIT, reason="submitit is not installed (optional extra bench[slurm])")
def test_submitit_executor_accepts_the_parameters(tmp_path):
    import submitit

    job = build_slurm_job(["bench", "list"], nodes=1, gpus_per_node=2, folder=tmp_path)
    executor = submitit.AutoExecutor(folder=job.folder, cluster="slurm")
    executor.update_parameters(**job.executor_params)  # raises on an unknown parameter name
