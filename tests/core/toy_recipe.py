"""A small but real recipe used by the harness tests: it 'evaluates' two entries on seeded data, writes
per-item shards, and can be told to die after a given shard (to test resume)."""
from __future__ import annotations

import os
import random
from pathlib import Path

from bench.recipe import RunContext, SeedResult, metric_record
from bench.spec import RunSpec

VERSION = 1
N_SHARDS = 4
ITEMS_PER_SHARD = 5


def plan(card, scale, data_root):
    return [RunSpec(paper=card.slug, entry=e, impl="toy", dataset="digits", metrics=["psnr_rgb"], scale=scale,
                    seeds=[0, 1], args={"offset": off}, stands_for={"dataset": "set5"})
            for e, off in (("toy-method", 1.0), ("toy-baseline", 0.0))]


def item_value(entry_offset: float, seed: int, index: int) -> float:
    return 30.0 + entry_offset + random.Random(seed * 1000 + index).gauss(0.0, 0.1)


def run_seed(spec: RunSpec, seed: int, ctx: RunContext) -> SeedResult:
    counter = os.environ.get("TOY_COUNTER")
    for shard in range(N_SHARDS):
        name = f"shard{shard}"
        if ctx.handle.shard_done(seed, name):
            continue
        if counter:  # count real computations so the test can see what a resume recomputed
            with open(counter, "a") as handle:
                handle.write(f"{spec.entry},{seed},{shard}\n")
        rows = [{"index": shard * ITEMS_PER_SHARD + i,
                 "value": item_value(spec.args["offset"], seed, shard * ITEMS_PER_SHARD + i)}
                for i in range(ITEMS_PER_SHARD)]
        ctx.handle.write_shard(seed, name, rows)
        if os.environ.get("TOY_DIE_AFTER") == f"{spec.entry},{seed},{shard}":
            os.kill(os.getpid(), 9)
    rows = ctx.handle.read_items(seed)
    value = sum(r["value"] for r in rows) / len(rows)
    return SeedResult(metrics=[metric_record("psnr_rgb", value, len(rows), {"sr_scale": 2})],
                      cost={"params_m": 0.001}, provenance={"dataset_fingerprint": "toy"})
