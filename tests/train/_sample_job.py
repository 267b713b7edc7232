"""torchrun worker for the 1-vs-2-process sampling test. argv: out_dir
Fills a shard store, then gathers per-item rows and a tensor (with sampler padding) to rank 0."""
import sys
from pathlib import Path

import torch
from _fixtures import analytic_sampler

from bench import distributed as D
from bench.train.sampling import ShardStore, generate_shards

SEED, TOTAL = 11, 13
out = Path(sys.argv[1])
info = D.init_distributed()
store = ShardStore(out / "store", total=TOTAL, shard_size=5, meta={"seed": SEED})
written = generate_shards(store, lambda idx, rng: analytic_sampler(idx, rng), base_seed=SEED, batch_size=3)

idx = D.shard_indices(TOTAL, pad=True)  # 7 per rank: rank 1 repeats index 0 as padding
samples = analytic_sampler(torch.tensor(idx), D.PerSampleRNG(idx, SEED))
rows = D.gather_rows([{"index": i, "mean": float(s.mean()), "rank": info.rank} for i, s in zip(idx, samples)],
                     total=TOTAL)
full = D.gather_by_index(torch.tensor(idx), samples, TOTAL)
count = D.all_reduce_sum(torch.tensor(float(len(D.shard_indices(TOTAL)))))
shards = D.gather_rows([{"index": s, "rank": info.rank} for s in written])
if info.is_main:
    torch.save({"world": info.world_size, "backend": info.backend, "rows": rows, "full": full,
                "count": float(count), "shards": shards}, out / "result.pt")
D.destroy()
