"""Feature statistics summed over 2 gloo processes equal the single-process statistics (float64 all-reduce)."""
from __future__ import annotations

import numpy as np
import torch.multiprocessing as mp

from bench.metrics.generative import FeatureStats


def _features() -> np.ndarray:
    return np.random.default_rng(0).normal(loc=1.0, size=(101, 16))


def _worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        stats = FeatureStats(16).update(_features()[rank::world_size])  # sample i on rank i % world_size
        stats.all_reduce()
        np.savez(f"{out_dir}/rank{rank}.npz", n=stats.n, mu=stats.mu, sigma=stats.sigma)
    finally:
        dist.destroy_process_group()


def test_two_processes_give_the_single_process_statistics(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    single = FeatureStats(16).update(_features())
    for rank in (0, 1):
        got = np.load(tmp_path / f"rank{rank}.npz")
        assert int(got["n"]) == 101
        np.testing.assert_allclose(got["mu"], single.mu, rtol=1e-12)
        np.testing.assert_allclose(got["sigma"], single.sigma, rtol=1e-12, atol=1e-14)
