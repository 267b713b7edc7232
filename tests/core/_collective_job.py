"""torchrun worker for tests/core/test_device.py: the collectives of bench on a real 2-process gloo group.
argv: out_dir. Rank 0 writes rank0.json with what it got."""
import json
import sys
from pathlib import Path

import numpy as np


def features(rank: int) -> np.ndarray:
    """Rank r's features: 5 + r rows of 4 (so the ranks hold different counts)."""
    return np.random.default_rng(100 + rank).normal(size=(5 + rank, 4))


if __name__ == "__main__":
    import torch

    from bench import distributed as D
    from bench.metrics.generative import FeatureStats

    out = Path(sys.argv[1])
    info = D.init_distributed()
    stats = FeatureStats(4).update(features(info.rank)).all_reduce()
    loss_sum = D.all_reduce_sum(torch.tensor([1.0, 10.0]) * (info.rank + 1), torch.float32)
    mine = D.shard_indices(5, pad=True)
    gathered = D.gather_by_index(torch.tensor(mine), torch.tensor(mine, dtype=torch.float32)[:, None], total=5)
    if info.is_main:
        (out / "rank0.json").write_text(json.dumps({
            "n": stats.n, "sum": stats.sum.tolist(), "sum_outer": stats.sum_outer.tolist(),
            "loss_sum": loss_sum.tolist(), "gathered": gathered.tolist()}))
    D.destroy()
