"""Device selection (`--device auto|cpu|cuda[:N]`, bench.runner.resolve_device) and collectives on the process's
own device. There is no GPU here: CUDA is mocked (torch.cuda.is_available / device_count), and NCCL by a fake
process group that, like NCCL, only accepts tensors on the process's GPU."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from bench import distributed as D
from bench import runner
from bench.cli import app
from bench.registry import BenchError

HERE = Path(__file__).parent
cli = CliRunner()


@pytest.fixture()
def gpus(monkeypatch):
    """Pretend torch sees two GPUs (nothing is ever allocated on them in these tests)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Mock GPU")  # provenance asks for it
    return 2


@pytest.fixture()
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture()
def not_torchrun(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


# ------------------------------------------------------------------------------------------------ the rule
@pytest.mark.parametrize(("requested", "scale", "expected"), [
    ("auto", "smoke", "cpu"),  # smoke references are CPU numbers, even on a GPU machine
    ("auto", "small", "cuda"), ("auto", "paper", "cuda"), (None, "small", "cuda"),
    ("cpu", "paper", "cpu"), ("cuda", "smoke", "cuda"), ("CUDA:1", "small", "cuda:1"), (" cuda:0 ", "paper", "cuda:0"),
])
def test_auto_picks_cuda_for_small_and_paper_when_torch_sees_a_gpu(gpus, not_torchrun, requested, scale, expected):
    assert runner.resolve_device(requested, scale) == expected


@pytest.mark.parametrize("scale", ["smoke", "small", "paper"])
def test_auto_without_cuda_is_the_cpu(no_gpu, not_torchrun, scale):
    assert runner.resolve_device("auto", scale) == "cpu"


@pytest.mark.parametrize(("requested", "message"), [
    ("gpu", "--device takes auto, cpu, cuda or cuda:N, not 'gpu'"),
    ("cuda:x", "--device takes auto, cpu, cuda or cuda:N, not 'cuda:x'"),
    ("cuda:2", "--device cuda:2: only 2 CUDA device(s) here"),
])
def test_bad_device_names_are_one_line(gpus, not_torchrun, requested, message):
    with pytest.raises(BenchError) as err:
        runner.resolve_device(requested, "small")
    assert str(err.value) == message


@pytest.mark.parametrize("requested", ["cuda", "cuda:0"])
def test_cuda_without_cuda_is_one_line_exit_2(no_gpu, not_torchrun, toy_paper, store_root, requested):
    result = cli.invoke(app, ["reproduce", toy_paper, "--scale", "small", "--device", requested])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "CUDA is not available here" in lines[0] and "--device cpu" in lines[0]
    assert not list(store_root.glob("toy/*/result.json"))  # refused before anything ran


def test_under_torchrun_each_process_takes_its_own_gpu(gpus, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert runner.resolve_device("auto", "small") == "cuda:1"
    assert runner.resolve_device("cuda", "paper") == "cuda:1"
    assert runner.resolve_device("auto", "smoke") == "cpu"
    with pytest.raises(BenchError, match="names one GPU, but each of the 2 processes needs its own"):
        runner.resolve_device("cuda:0", "paper")


# ----------------------------------------------------------------------------- the device reaches the recipe
class _Captured(BenchError):
    """Raised by the patched recipe once it has built its training config: nothing trains."""


def test_small_scale_with_auto_reaches_a_recipes_training_config_as_cuda(gpus, not_torchrun, store_root,
                                                                         monkeypatch):
    """`bench reproduce lipt --scale small --device auto` on a (mocked) CUDA machine: the RunContext the runner
    hands the recipe says cuda, and so does the TrainConfig that LIPT's own train_config builds from it."""
    from methods.lipt import recipe as lipt

    seen = {}

    def run_seed(spec, seed, ctx):
        seen["ctx"] = ctx.device
        seen["config"] = lipt.train_config(spec, seed, ctx).device
        raise _Captured("captured the training config")

    monkeypatch.setattr(lipt, "run_seed", run_seed)
    result = cli.invoke(app, ["reproduce", "lipt", "--scale", "small", "--device", "auto", "--entry", "lipt-tiny"])
    assert seen == {"ctx": "cuda", "config": "cuda"}, result.output
    assert result.exit_code == 2 and "captured the training config" in result.output
    failed = [json.loads(p.read_text()) for p in store_root.glob("lipt/*/result.json")]
    assert failed and all(r["status"] == "failed" and r["cost"]["device"] == "cuda" for r in failed)


@pytest.mark.parametrize(("scale", "device"), [("smoke", "cpu"), ("small", "cuda")])
def test_the_device_is_recorded_in_the_run_record(gpus, not_torchrun, toy_paper, store_root, scale, device):
    result = cli.invoke(app, ["reproduce", toy_paper, "--scale", scale, "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert len(records) == 2 and {r["cost"]["device"] for r in records} == {device}
    on_disk = [json.loads(p.read_text()) for p in store_root.glob("toy/*/result.json")]
    assert {r["cost"]["device"] for r in on_disk} == {device}


def test_nproc_path_passes_the_device_to_every_worker(gpus, not_torchrun, toy_paper, store_root, monkeypatch):
    """`--nproc 2`: the parent launches torchrun on CUDA (not hidden) and each worker runs on cuda:LOCAL_RANK."""
    launched = {}

    def fake_launch(nproc, target, args, device):
        launched.update(nproc=nproc, target=target, opts=json.loads(args[0]), device=device)

    monkeypatch.setattr(D, "launch", fake_launch)
    result = cli.invoke(app, ["reproduce", toy_paper, "--scale", "small", "--nproc", "2", "--max-steps", "3"])
    assert result.exit_code == 0, result.output
    assert launched["device"] == "cuda" and launched["target"] == "bench.runner:distributed_worker"
    assert launched["opts"]["device"] == "cuda" and launched["opts"]["rehearsal"] == {"max_steps": 3}

    # inside worker 1 of 2: its own GPU
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(D, "init_distributed", lambda *a, **k: None)
    ran = []
    monkeypatch.setattr(runner, "execute", lambda spec, store, **kw: ran.append((spec, kw["device"])) or
                        runner.RunOutcome(spec, spec.run_id(), {}, cached=True))
    runner.distributed_worker([json.dumps(launched["opts"])])
    assert [d for _, d in ran] == ["cuda:1", "cuda:1"]
    assert all(s.world_size == 2 and s.rehearsal == {"max_steps": 3} for s, _ in ran)


def test_nproc_refuses_one_named_gpu_for_several_processes(gpus, not_torchrun, toy_paper, store_root):
    result = cli.invoke(app, ["reproduce", toy_paper, "--scale", "small", "--nproc", "2", "--device", "cuda:0"])
    assert result.exit_code == 2 and "each of the 2 processes needs its own" in result.output


def test_nproc_on_cpu_hides_cuda_from_the_workers(gpus, not_torchrun, toy_paper, store_root, monkeypatch):
    launched = {}
    monkeypatch.setattr(D, "launch", lambda nproc, target, args, device: launched.update(device=device))
    assert cli.invoke(app, ["reproduce", toy_paper, "--nproc", "2"]).exit_code == 0  # smoke: auto is the CPU
    assert launched["device"] == "cpu"  # bench.distributed.launch sets CUDA_VISIBLE_DEVICES="" for "cpu"


def test_profile_auto_times_on_cuda_at_paper_scale(gpus, not_torchrun, monkeypatch):
    from bench import profile as profile_mod

    seen = []

    def latency_plan(scale, device, repeats, measure):
        seen.append((scale, device))
        raise _Captured("stop before building models")

    monkeypatch.setattr(profile_mod, "latency_plan", latency_plan)
    for scale in ("smoke", "paper"):
        cli.invoke(app, ["profile", "u-dit", "--scale", scale])
    assert seen == [("smoke", "cpu"), ("paper", "cuda")]


# ------------------------------------------------------------------------------------ collectives and NCCL
def test_collective_device_follows_the_process_group(monkeypatch):
    import torch.distributed as dist

    assert D.collective_device() == torch.device("cpu")  # no process group
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.setattr(dist, "get_backend", lambda *a: "gloo")
    assert D.collective_device() == torch.device("cpu")
    monkeypatch.setattr(dist, "get_backend", lambda *a: "nccl")
    assert D.collective_device() == torch.device("cuda", 1)


@pytest.fixture()
def fake_nccl(monkeypatch):
    """A 2-process NCCL group seen from rank 0 on GPU 1. Moving a tensor to CUDA gives a CPU copy marked as on
    the GPU; the fake collectives refuse unmarked tensors (as NCCL refuses CPU tensors). The other rank holds
    the same tensor plus one."""
    import torch.distributed as dist

    real_to = torch.Tensor.to

    def to(self, *args, **kwargs):
        target = args[0] if args else kwargs.get("device")
        if isinstance(target, (str, torch.device)):
            dev = torch.device(target)
            if dev.type == "cuda":
                out = real_to(self, "cpu").clone()
                out.fake_gpu = dev
                return out
            if getattr(self, "fake_gpu", None) is not None:
                return real_to(self, "cpu").clone()  # a plain CPU tensor again
        return real_to(self, *args, **kwargs)

    def check(tensor):
        if getattr(tensor, "fake_gpu", None) != torch.device("cuda", 1):
            raise RuntimeError("NCCL: tensors must be CUDA and dense (got one on the CPU)")

    def all_reduce(tensor, op=None):
        check(tensor)
        tensor.mul_(2).add_(1)  # + the other rank's (tensor + 1)

    def all_gather(out, tensor):
        check(tensor)
        out[0].copy_(tensor)
        out[1].copy_(tensor + 1)

    monkeypatch.setattr(torch.Tensor, "to", to)
    monkeypatch.setattr(torch.Tensor, "cpu", lambda self: to(self, torch.device("cpu")))
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_backend", lambda *a: "nccl")
    monkeypatch.setattr(dist, "get_world_size", lambda *a: 2)
    monkeypatch.setattr(dist, "get_rank", lambda *a: 0)
    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    monkeypatch.setattr(dist, "all_gather", all_gather)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)


def test_feature_stats_all_reduce_runs_on_the_process_gpu_under_nccl(fake_nccl):
    from bench.metrics.generative import FeatureStats

    x = np.arange(12, dtype=np.float64).reshape(4, 3) / 7
    stats = FeatureStats(3).update(x)
    stats.all_reduce()
    # rank 1 held every sum + 1: n = 4 + 5, sums doubled + 1, all back in float64 numpy on the CPU
    assert stats.n == 9
    np.testing.assert_array_equal(stats.sum, 2 * x.sum(axis=0) + 1)
    np.testing.assert_array_equal(stats.sum_outer, 2 * (x.T @ x) + 1)
    assert stats.sum.dtype == np.float64 and stats.sum_outer.shape == (3, 3)


def test_all_reduce_sum_and_gather_by_index_run_on_the_process_gpu_under_nccl(fake_nccl):
    total = D.all_reduce_sum(torch.tensor([1.5, 2.0]))
    assert total.dtype == torch.float64 and total.tolist() == [4.0, 5.0]
    assert getattr(total, "fake_gpu", None) is None  # handed back on the caller's device (the CPU)
    # rank 0 holds items 0 and 2; the fake rank 1 holds 1 and 3 with values + 1
    out = D.gather_by_index(torch.tensor([0, 2]), torch.tensor([[10.0], [30.0]]), total=4)
    assert out.tolist() == [[10.0], [11.0], [30.0], [31.0]] and getattr(out, "fake_gpu", None) is None


@pytest.mark.slow
def test_two_gloo_processes_reduce_feature_stats_to_those_of_the_union(tmp_path):
    """Real collectives over gloo: FeatureStats.all_reduce, all_reduce_sum and gather_by_index across 2 ranks
    equal what one process computes on the union (`_collective_job.py` writes what rank 0 got)."""
    from bench.metrics.generative import FeatureStats

    D.launch(2, str(HERE / "_collective_job.py"), [str(tmp_path)], device="cpu", timeout=300)
    got = json.loads((tmp_path / "rank0.json").read_text())
    sys.path.insert(0, str(HERE))
    try:
        from _collective_job import features
    finally:
        sys.path.remove(str(HERE))
    union = FeatureStats(4).update(np.concatenate([features(0), features(1)]))
    assert got["n"] == union.n == 11
    np.testing.assert_allclose(got["sum"], union.sum, rtol=1e-12)
    np.testing.assert_allclose(got["sum_outer"], union.sum_outer, rtol=1e-12)
    assert got["loss_sum"] == [3.0, 30.0]  # (1 + 2), (10 + 20)
    assert got["gathered"] == [[0.0], [1.0], [2.0], [3.0], [4.0]]


def test_a_cluster_launch_resolves_the_device_on_the_compute_node(no_gpu, not_torchrun, toy_paper, store_root,
                                                                  monkeypatch):
    """--launcher slurm from a login node without a GPU: --device cuda goes to the jobs, checked only by name."""
    from bench import launch

    sent = {}
    monkeypatch.setattr(launch, "reproduce_on_cluster", lambda launcher, specs, store, **kw: sent.update(kw))
    result = cli.invoke(app, ["reproduce", toy_paper, "--scale", "small", "--device", "cuda", "--launcher", "slurm"])
    assert result.exit_code == 0, result.output
    assert sent["device"] == "cuda"
    bad = cli.invoke(app, ["reproduce", toy_paper, "--scale", "small", "--device", "gpu", "--launcher", "slurm"])
    assert bad.exit_code == 2 and "--device takes auto, cpu, cuda or cuda:N, not 'gpu'" in bad.output
