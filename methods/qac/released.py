"""Released EDM networks (the QAC card's baselines), evaluated with EDM's protocol (`bench evaluate qac ...`).

Official layout (NVlabs/edm `training/training_loop.py`, `torch_utils/persistence.py`): a pickle of
{'ema': network, 'loss_fn': loss, 'augment_pipe': pipe or None, 'dataset_kwargs': dict}, every network class stored
as `torch_utils.persistence._reconstruct_persistent_obj(meta)` with its source code and __dict__. The published
files sit at https://nvlabs-fi-cdn.nvidia.com/edm/pretrained/ as edm-{cifar10-32x32-{cond,uncond},ffhq-64x64-uncond,
afhqv2-64x64-uncond}-vp.pkl (and -ve). bench reads them with baselines.edm.pickles (a restricted unpickler: the
embedded code never runs) and rebuilds its own network from the recorded init kwargs, strictly.

Protocol (EDM README / generate.py / fid.py; the card's cells): the deterministic Heun sampler at 18 steps
(35 NFE) on CIFAR-10 and 40 steps (79 NFE) at 64x64, sigma in [0.002, 80], rho 7; 50K samples per seed range,
three ranges (seeds 0-49999, 50000-99999, 100000-149999), the minimum FID reported; FID against EDM's fid-refs
.npz (mu/sigma) with torch-fidelity's Inception = fid@ref-npz, the comparable dialect of the card's fid@edm.
The class-conditional network draws uniform random labels. `--scale small`: 10K samples, one range, recorded
with num_samples in its setting (so it never sits beside the paper's 50K numbers).
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from bench.evaluate import CheckpointError, Layout, missing_file
from bench.recipe import RunContext, SeedResult, metric_record
from bench.registry import BenchError
from bench.spec import RunSpec

VERSION = 1
CDN = "https://nvlabs-fi-cdn.nvidia.com/edm"
PICKLE_FORMAT = "NVlabs/edm training_loop.py pickle {'ema', 'loss_fn', 'augment_pipe', 'dataset_kwargs'}"

# the official file name stem -> (card dataset, heun NFE, reference file under <data-root>/edm/fid-refs/)
DATASETS = {"cifar10-32x32": ("cifar10", 35, "cifar10-32x32.npz"),
            "ffhq-64x64": ("ffhq-64", 79, "ffhq-64x64.npz"),
            "afhqv2-64x64": ("afhqv2-64", 79, "afhqv2-64x64.npz")}

LAYOUTS: dict[str, Layout] = {
    # the card's reported-checkpoint entry; `edm` is the network retrained under QAC's protocol (recipe.py)
    "edm-official": Layout(files=("edm-cifar10-32x32-uncond-vp.pkl", "edm-ffhq-64x64-uncond-vp.pkl",
                                  "edm-afhqv2-64x64-uncond-vp.pkl"),
                           source=f"{CDN}/pretrained/ (NVlabs/edm README)", format=PICKLE_FORMAT, weights="['ema']",
                           note="the dataset is read from the official file name (else the pickle's dataset_kwargs)",
                           extra={"label_dim": 0}),
    "edm-cond": Layout(files=("edm-cifar10-32x32-cond-vp.pkl",), source=f"{CDN}/pretrained/ (NVlabs/edm README)",
                       format=PICKLE_FORMAT, weights="['ema']", extra={"label_dim": 10}),
}
NUM_SAMPLES = {"paper": 50_000, "small": 10_000}
SEED_RANGES = {"paper": 3, "small": 1}
SAMPLER = {"solver": "heun", "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0, "batch_size": 500,
           "shard_size": 1000}


def dataset_of(checkpoint: Path) -> str:
    """The official file name's dataset stem (edm-<stem>-{cond,uncond}-{vp,ve}.pkl), else the pickle's own
    dataset_kwargs path (training snapshots record the zip they trained on)."""
    for stem in DATASETS:
        if stem in checkpoint.name:
            return stem
    from baselines.edm.pickles import read_pickle

    try:
        data = read_pickle(checkpoint)
    except BenchError as exc:
        raise CheckpointError(f"checkpoint {checkpoint} is not an official EDM pickle: {exc}") from None
    path = str(((data.get("dataset_kwargs") or {}) if isinstance(data, dict) else {}).get("path", ""))
    for stem in DATASETS:
        if stem in path:
            return stem
    raise CheckpointError(f"cannot tell which dataset {checkpoint.name} was trained on: keep its official name "
                          f"(edm-<{'|'.join(DATASETS)}>-...-vp.pkl)")


def released_spec(card: Any, entry: str, scale: str, checkpoint: Path) -> dict[str, Any]:
    stem = dataset_of(checkpoint)
    dataset, nfe, reference = DATASETS[stem]
    sampler = {**SAMPLER, "nfe": nfe, "num_samples": NUM_SAMPLES[scale], "seed_ranges": SEED_RANGES[scale]}
    return {"dataset": dataset, "split": "test", "metrics": ["fid@ref-npz"], "sampler": sampler,
            "setting": {"resolution": int(stem.split("x")[-1]), "reference": f"edm/fid-refs/{reference}"},
            "args": {"network": "from the pickle's init kwargs", "label_dim": LAYOUTS[entry].extra["label_dim"]}}


def load_released(spec: RunSpec, checkpoint: Path) -> Any:
    """Our EDM network holding the pickle's EMA weights (strict), checked to be the entry's kind."""
    from baselines.edm.pickles import load_network

    try:
        net = load_network(checkpoint)
    except BenchError as exc:
        raise CheckpointError(f"checkpoint {checkpoint} is not in the official EDM layout: {exc}") from None
    resolution = int(spec.setting["resolution"])
    if net.img_resolution != resolution:
        raise CheckpointError(f"checkpoint {checkpoint} holds a {net.img_resolution}x{net.img_resolution} network, "
                              f"but its name says {resolution}x{resolution} ({spec.dataset})")
    want = int(spec.args["label_dim"])
    if (net.label_dim > 0) != (want > 0):
        other = "edm-cond" if net.label_dim else "edm-official"
        raise CheckpointError(f"checkpoint {checkpoint} holds a {'class-conditional' if net.label_dim else 'unconditional'} "
                              f"network (label_dim {net.label_dim}); evaluate it as --entry {other}")
    return net


def fid_against_reference(samples: Any, reference: Path) -> Any:
    """fid@ref-npz of uint8 samples against EDM's reference mu/sigma (torch-fidelity's Inception)."""
    from bench.metrics.api import compute

    return compute("fid@ref-npz", samples=samples, reference=str(reference))


def reference_file(spec: RunSpec, ctx: RunContext) -> Path:
    name = Path(spec.setting["reference"]).name
    if ctx.data_root is None:
        raise BenchError(f"fid@ref-npz needs EDM's reference statistics: pass --data-root DIR holding "
                         f"{spec.setting['reference']} (from {CDN}/fid-refs/{name})")
    path = Path(ctx.data_root) / spec.setting["reference"]
    if not path.is_file():
        raise missing_file(path, "EDM reference statistics", f"{CDN}/fid-refs/{name}")
    return path


def evaluate_released(spec: RunSpec, checkpoint: Path, ctx: RunContext) -> SeedResult:
    import torch

    from baselines.edm.pipeline import generate_batch, seed_ranges
    from bench.distributed import derive_seed
    from bench.train import ShardStore, generate_shards

    seed = int(ctx.extra.get("seed", 0))
    reference = reference_file(spec, ctx)  # before any sampling
    net = load_released(spec, checkpoint).to(ctx.device)
    sm = spec.sampler
    n = spec.capped("max_samples", int(sm["num_samples"]))
    ranges = seed_ranges(int(sm["seed_ranges"]), n)
    base_seed = derive_seed(seed, "edm-released")
    kwargs = {k: sm[k] for k in ("sigma_min", "sigma_max", "rho")}
    values, sampling_s = [], 0.0
    for k, (start, _) in enumerate(ranges):
        store = ShardStore(ctx.work_dir(seed) / "samples" / f"heun-nfe{sm['nfe']:03d}" / f"range{k}", total=n,
                           shard_size=min(int(sm["shard_size"]), n),
                           meta={"checkpoint_sha256": ctx.extra.get("checkpoint_sha256"), "first_index": start,
                                 "nfe": sm["nfe"]})

        def sample_fn(indices: Any, rng: Any, start: int = start) -> Any:
            out = generate_batch(net, indices + start, base_seed, solver=sm["solver"], nfe=int(sm["nfe"]),
                                 device=ctx.device, label_dim=net.label_dim, sampler_kwargs=kwargs)
            return {"samples": out["images"]}

        t0 = time.perf_counter()
        with torch.no_grad():
            generate_shards(store, sample_fn, base_seed=base_seed, batch_size=min(int(sm["batch_size"]), n),
                            device=ctx.device)
        sampling_s += time.perf_counter() - t0
        samples = torch.from_numpy(store.load(["samples"])["samples"])
        values.append(fid_against_reference(samples, reference))
    best = min(values, key=lambda r: r.value)
    setting = {"nfe": int(sm["nfe"]), "sampler": "edm-heun"}
    if spec.scale != "paper":
        setting["num_samples"] = int(sm["num_samples"])
    protocol = {**best.protocol, "per_range": [r.value for r in values], "seed_ranges": [list(r) for r in ranges],
                "reduction": "min over seed ranges (EDM's protocol: 3 draws of 50k)", "base_seed": base_seed}
    cost = {"params_m": sum(p.numel() for p in net.parameters()) / 1e6, "nfe": int(sm["nfe"]),
            "sample_s_per_item": sampling_s / (n * len(ranges))}  # this run's samples (resumed shards: 0 s)
    found = re.search(r"-(vp|ve)\.pkl$", checkpoint.name)
    provenance = {"layout": PICKLE_FORMAT, "network": type(net).__name__, "label_dim": net.label_dim,
                  "precond": found.group(1) if found else None}
    return SeedResult(metrics=[metric_record("fid@ref-npz", best.value, best.n, setting, protocol)],
                      cost=cost, provenance=provenance)
