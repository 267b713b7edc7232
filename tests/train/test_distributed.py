"""bench.distributed: sharding, per-sample seeds, gathering, launch checks; real 2-process gloo runs (slow)."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DistributedSampler

from bench import distributed as D
from bench.registry import BenchError
from bench.train.data import BatchStream
from bench.train.sampling import ShardStore, generate_shards

from ._fixtures import analytic_sampler, make_loss, resume_config, tiny_net, toy_data

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("n, world", [(7, 2), (10, 3), (4, 4), (3, 2)])
def test_shards_follow_torch_distributed_sampler(n, world):
    for rank in range(world):
        ref = list(DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=False))
        assert D.shard_indices(n, rank, world, pad=True) == ref
        real = -(-(n - rank) // world)  # the items before the wrap-around padding
        assert D.shard_indices(n, rank, world) == ref[:real]
    assert sorted(i for r in range(world) for i in D.shard_indices(n, r, world)) == list(range(n))


def test_batch_stream_matches_distributed_sampler_order():
    data = torch.arange(22)
    for rank in (0, 1):
        stream = BatchStream(data, 4, rank=rank, world_size=2, shuffle=False)
        ref = list(DistributedSampler(range(22), num_replicas=2, rank=rank, shuffle=False))
        assert torch.cat([next(stream) for _ in range(2)]).tolist() == ref[:8]  # 11 per rank: 2 whole batches
        assert next(stream).tolist() == ref[:4]  # next epoch (same order without shuffle)


def test_per_sample_seeds():
    expected = int.from_bytes(hashlib.blake2b(b"[3, 5]", digest_size=8).digest(), "little") >> 1
    assert D.derive_seed(3, 5) == expected  # stable across processes and Python runs (no hash())
    rng = D.PerSampleRNG([5, 2, 9], base_seed=3)
    batch = rng.randn(2, 3)
    for row, index in zip(batch, [5, 2, 9]):
        assert torch.equal(row, torch.randn(2, 3, generator=D.sample_generator(3, index)))
    assert not torch.equal(batch[0], batch[1])


def test_gathering_in_one_process_drops_padding_and_orders_by_index():
    rows = [{"index": i, "v": i * 10} for i in D.shard_indices(5, 0, 1, pad=True)] + [{"index": 0, "v": 0}]
    assert D.gather_rows(rows[::-1], total=5) == [{"index": i, "v": i * 10} for i in range(5)]
    with pytest.raises(BenchError, match="1 of 5 items missing"):
        D.gather_rows(rows[:4], total=5)
    values = torch.tensor([[3.0], [1.0], [2.0], [3.0]])
    assert D.gather_by_index(torch.tensor([2, 0, 1, 2]), values, 3).flatten().tolist() == [1.0, 2.0, 3.0]
    assert D.all_reduce_sum(torch.tensor([1.5], dtype=torch.float32)).dtype == torch.float64


def test_too_many_processes_on_cpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(D.os, "cpu_count", lambda: 2)
    with pytest.raises(BenchError) as err:
        D.launch(3, str(HERE / "_sample_job.py"), device="cpu")
    assert str(err.value) == ("--nproc 3 is more than this machine supports (2 CPU core(s) (os.cpu_count())); "
                              "use --nproc 2 or fewer")
    with pytest.raises(BenchError, match="positive integer"):
        D.check_nproc(0, device="cpu")
    D.check_nproc(2, device="cpu")


def test_torchrun_command_forms(tmp_path):
    script = tmp_path / "job.py"
    script.write_text("")
    base = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    assert D.torchrun_command(2, str(script), ["a"]) == [*base, str(script), "a"]
    assert D.torchrun_command(2, "pkg.mod:main", ["a"]) == [*base, "-m", "bench.distributed", "pkg.mod:main", "a"]
    assert D.torchrun_command(2, D.check_nproc)[-1] == "bench.distributed:check_nproc"
    with pytest.raises(BenchError, match="not importable"):
        D.torchrun_command(2, lambda argv: None)
    with pytest.raises(BenchError, match="not found"):
        D.torchrun_command(2, str(tmp_path / "missing.py"))


def test_outside_torchrun_everything_is_rank_0_of_1(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = D.init_distributed()
    assert (info.rank, info.world_size, info.backend, info.device) == (0, 1, None, "cpu")


@pytest.mark.slow
def test_one_and_two_gloo_processes_generate_identical_samples(tmp_path):
    D.launch(2, str(HERE / "_sample_job.py"), [str(tmp_path / "two")], device="cpu", timeout=300)
    result = torch.load(tmp_path / "two" / "result.pt", weights_only=False)
    assert result["world"] == 2 and result["backend"] == "gloo"
    assert sorted({row["rank"] for row in result["shards"]}) == [0, 1]  # both ranks wrote shards

    one = ShardStore(tmp_path / "one", total=13, shard_size=5, meta={"seed": 11})
    generate_shards(one, lambda idx, rng: analytic_sampler(idx, rng), base_seed=11, batch_size=4)
    two = ShardStore(tmp_path / "two" / "store", total=13, shard_size=5, meta={"seed": 11})
    a, b = one.load(), two.load()
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)  # bitwise

    reference = torch.from_numpy(a["samples"])
    assert torch.equal(result["full"], reference)  # gathered tensor, padding dropped
    assert [r["index"] for r in result["rows"]] == list(range(13))
    assert [r["mean"] for r in result["rows"]] == [float(s.mean()) for s in reference]
    assert result["count"] == 13.0


@pytest.mark.slow
def test_two_process_ddp_training_completes_and_resumes(tmp_path):
    D.launch(2, str(HERE / "_ddp_job.py"), [str(tmp_path)], device="cpu", timeout=300)
    result = torch.load(tmp_path / "result.pt", weights_only=True)
    assert result["world"] == 2 and result["ranks_agree"]
    for key in result["b"]:  # stopped at step 4 and resumed in fresh processes' models == uninterrupted
        assert torch.equal(result["a"][key], result["b"][key]), key
        assert torch.equal(result["ema_a"][key], result["ema_b"][key]), key
    checkpoint = torch.load(tmp_path / "a" / "checkpoints" / "step_00000008.pt", weights_only=True)
    assert checkpoint["world_size"] == 2 and len(checkpoint["rng"]) == 2
    log = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 9))

    # Two ranks with half the global batch each = one process with the whole batch, up to rounding.
    from bench.train import train

    x, y = toy_data(96)
    single = tiny_net(dropout=0.0)
    train(single, make_loss(noise=0.0), (x, y), resume_config(steps=8, ckpt_every=0), tmp_path / "single")
    for key, value in single.state_dict().items():
        torch.testing.assert_close(result["c"][key], value, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_failing_worker_is_a_bench_error(tmp_path):
    script = tmp_path / "fails.py"
    script.write_text("import sys\nprint('ValueError: bad shard', flush=True)\nsys.exit(3)\n")
    with pytest.raises(BenchError, match="failed with exit code 1: ValueError: bad shard"):
        D.launch(1, str(script), device="cpu", capture=True, timeout=120)
