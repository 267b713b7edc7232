"""NFE accounting and the resumable shard store."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.distributed import PerSampleRNG
from bench.registry import BenchError
from bench.train import NFECounter, ShardStore, generate_shards

from ._fixtures import analytic_sampler, gaussian_denoiser

SEED = 11


def _sample(indices, rng):
    return analytic_sampler(indices, rng)


def test_nfe_counts_every_call_and_is_per_sample_whatever_the_batching():
    counter = NFECounter(gaussian_denoiser())
    analytic_sampler(torch.arange(4), PerSampleRNG(range(4), SEED), steps=6, denoiser=counter)
    assert counter.nfe == 6 and counter.rows == 24
    counter.reset()
    for lo in range(0, 10, 3):  # 10 samples in batches of 3, 3, 3, 1
        idx = torch.arange(lo, min(10, lo + 3))
        analytic_sampler(idx, PerSampleRNG(idx, SEED), steps=6, denoiser=counter)
    assert counter.calls == 24 and counter.nfe_per_sample(10) == 6.0


def test_nfe_with_guidance_batch_doubling_and_attribute_pass_through():
    class Net(torch.nn.Module):
        sigma_min = 0.002

        def forward(self, x, sigma):
            return x * 0.5

    counter = NFECounter(Net(), rows_per_sample=2)  # cond + uncond halves in one call count as one NFE
    x = torch.randn(3, 2)
    for _ in range(5):
        counter(torch.cat([x, x]), 1.0)
    assert counter.nfe_per_sample(3) == 5.0 and counter.sigma_min == 0.002


def test_samples_do_not_depend_on_batch_size():
    idx = torch.arange(9)
    one_batch = _sample(idx, PerSampleRNG(idx, SEED))
    singles = torch.cat([_sample(idx[i : i + 1], PerSampleRNG(idx[i : i + 1], SEED)) for i in range(9)])
    assert torch.equal(one_batch, singles)
    other_seed = _sample(idx, PerSampleRNG(idx, SEED + 1))
    assert not torch.equal(one_batch, other_seed)


def test_shard_store_resumes_only_missing_shards_bitwise(tmp_path):
    store = ShardStore(tmp_path / "s", total=13, shard_size=5, meta={"seed": SEED})
    assert store.num_shards == 3 and store.shard_range(2) == (10, 13)
    assert generate_shards(store, _sample, base_seed=SEED, batch_size=2) == [0, 1, 2]
    first = store.load()
    assert first["samples"].shape == (13, 1, 4, 4) and first["index"].tolist() == list(range(13))

    store.shard_path(1).unlink()  # as if the job had been killed before writing shard 1
    seen: list[int] = []

    def tracking(indices, rng):
        seen.extend(indices.tolist())
        return _sample(indices, rng)

    reopened = ShardStore(tmp_path / "s", total=13, shard_size=5, meta={"seed": SEED})
    assert reopened.missing() == [1]
    assert generate_shards(reopened, tracking, base_seed=SEED, batch_size=4) == [1]
    assert seen == [5, 6, 7, 8, 9]
    again = reopened.load()
    assert np.array_equal(first["samples"], again["samples"])  # batch 2 vs 4: same bits
    assert not list(tmp_path.glob("s/.*"))  # no temporaries left


@pytest.mark.parametrize("fmt", ["npz", "pt"])
def test_store_content_is_independent_of_the_process_count(tmp_path, fmt):
    """Ranks 0 and 1 of 2, emulated in this process: each works on its own copy of the empty store (as
    concurrent ranks both see every shard missing), then rank 1's shards join rank 0's directory.
    tests/train/test_distributed.py does the same with real torchrun processes."""
    single = ShardStore(tmp_path / "one", 13, 4, fmt=fmt)
    generate_shards(single, _sample, base_seed=SEED, batch_size=3, rank=0, world_size=1)
    rank0, rank1 = (ShardStore(tmp_path / f"rank{r}", 13, 4, fmt=fmt) for r in (0, 1))
    done = [generate_shards(store, _sample, base_seed=SEED, batch_size=5, rank=r, world_size=2)
            for r, store in enumerate((rank0, rank1))]
    assert done == [[0, 2], [1, 3]]
    for shard in done[1]:
        rank1.shard_path(shard).rename(rank0.shard_path(shard))
    a, b = single.load(), rank0.load()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_store_errors_are_clear(tmp_path):
    store = ShardStore(tmp_path / "s", total=10, shard_size=4, meta={"seed": 1})
    with pytest.raises(BenchError, match="incomplete: 3 of 3 shards missing"):
        store.load()
    with pytest.raises(BenchError, match="meta is"):
        ShardStore(tmp_path / "s", total=10, shard_size=4, meta={"seed": 2})
    with pytest.raises(BenchError, match="shard_size is 4 there, 5 now"):
        ShardStore(tmp_path / "s", total=10, shard_size=5, meta={"seed": 1})
    with pytest.raises(BenchError, match="has 3 rows, expected 4"):
        store.write_shard(0, {"samples": np.zeros((3, 2))})
    store.shard_path(0).write_bytes(b"garbage")
    with pytest.raises(BenchError, match="corrupt"):
        store.read_shard(0)
