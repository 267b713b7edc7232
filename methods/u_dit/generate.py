"""Sampling and evaluation pieces of the U-DiT recipe (the same for its DiT entries).

* `sample_setting`: class-conditional samples of one sampler setting into a resumable `ShardStore`
  (per-sample noise, so shard contents do not depend on the process count), decoded to uint8 images.
* `write_item_rows`: one per-sample row per finished sample shard into the run store (index, label, shard, ...).
* `digits_metrics`: fd_digits / kd_digits of 16x16 grey samples against the digits test split.
* `sharded_fid`: fid@ref-npz over a 50K-sample store, with the metric module's float64 `FeatureStats` computed
  per shard (ranks share the shards, a rerun computes only missing ones) and merged in shard order; equal to
  `bench.metrics.generative.fid_ref_npz` on the union of the shards.
"""
from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.distributed import derive_seed
from bench.registry import BenchError


def setting_key(setting: dict[str, Any]) -> str:
    """A file-name-safe key of a sampler setting, e.g. 'ddim-nfe10-cfg1.0'."""
    return f"{setting['sampler']}-nfe{int(setting['nfe'])}-cfg{float(setting['cfg'])}"


def labels_for(indices: torch.Tensor, num_classes: int, rule: str, seed: int) -> torch.Tensor:
    """Class label of each global sample index.

    balanced: index % num_classes (equal class counts when N is a multiple of the class count).
    uniform:  uniform over classes from a generator seeded by (seed, "label", index), as DiT's sample_ddp.py
              draws random labels, but independent of batch size and process count.
    """
    if rule == "balanced":
        return indices.to(torch.long) % num_classes
    if rule == "uniform":
        out = [torch.randint(num_classes, (1,), generator=torch.Generator().manual_seed(
            derive_seed(seed, "label", int(i)))) for i in indices]
        return torch.cat(out).to(torch.long)
    raise BenchError(f"unknown label rule {rule!r}; choose 'balanced' or 'uniform'")


def to_digits(images_unit: torch.Tensor, size: int = 16) -> torch.Tensor:
    """Decoded images in [-1, 1] (any channels/size) -> uint8 [N, 1, size, size]: channel mean, then area
    downsampling (the inverse of the bilinear upsampling used to build the latent data, up to blur)."""
    x = images_unit.float().mean(dim=1, keepdim=True)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="area")
    from bench.diffusion.latents import unit_to_uint8

    return unit_to_uint8(x)


def sample_setting(model: torch.nn.Module, diffusion: Any, store: Any, setting: dict[str, Any], *, shape: tuple[int, ...],
                   num_classes: int, label_rule: str, seed: int, batch_size: int, decode: Callable[[torch.Tensor], torch.Tensor],
                   device: str, eta: float = 0.0, clip_denoised: bool = False, guided_channels: int | None = 3,
                   nfe: int | None = None) -> dict[str, Any]:
    """Fill the missing shards of ``store`` with samples of one setting; returns timing and NFE facts.

    ``nfe``: sampling steps to run instead of the setting's (a rehearsal's capped count; None = the setting's).

    Each shard file holds ``samples`` (uint8 images, as ``decode`` returns them), ``label`` and ``index``.
    The model must already be in eval mode (U-DiT: fused FFN).
    """
    from bench.diffusion.sampling import sample
    from bench.train import generate_shards
    from bench.train.progress import sampling_phase

    steps = int(setting["nfe"]) if nfe is None else int(nfe)
    stats_seen: dict[str, Any] = {}
    phase = sampling_phase(store, f"sample {setting_key(setting)}")

    def sample_fn(indices: torch.Tensor, rng: Any) -> dict[str, torch.Tensor]:
        labels = labels_for(indices, num_classes, label_rule, seed)
        x, stats = sample(model, diffusion, shape, labels, indices.tolist(), seed, sampler=setting["sampler"],
                          steps=steps, eta=eta, cfg_scale=float(setting["cfg"]),
                          null_class=num_classes, guided_channels=guided_channels, clip_denoised=clip_denoised,
                          device=device)
        stats_seen.update(stats.as_dict())
        phase.advance(len(indices))
        return {"samples": decode(x).cpu(), "label": labels}

    before = len(store.missing())
    t0 = time.perf_counter()
    with torch.no_grad(), phase:
        written = generate_shards(store, sample_fn, base_seed=seed, batch_size=batch_size, device=device)
    wall = time.perf_counter() - t0
    if stats_seen and int(stats_seen["nfe"]) != steps:
        raise BenchError(f"sampler made {stats_seen['nfe']} network calls per sample, the setting asks for {steps}")
    generated = sum(store.shard_range(s)[1] - store.shard_range(s)[0] for s in written)
    return {"wall_s": wall, "shards_generated": len(written), "shards_missing_before": before,
            "samples_generated": generated, "s_per_sample": wall / generated if generated else None,
            "sampling_stats": stats_seen or None}


def write_item_rows(handle: Any, seed: int, store: Any, key: str, setting: dict[str, Any],
                    classify: Callable[[np.ndarray], np.ndarray] | None = None) -> int:
    """Per-sample rows of every finished sample shard not yet in the run store; returns rows written."""
    written = 0
    for shard in range(store.num_shards):
        name = f"{key}-{shard:06d}"
        if handle.shard_done(seed, name) or not store.shard_path(shard).exists():
            continue
        data = store.read_shard(shard)
        predicted = classify(data["samples"]) if classify is not None else None
        rows = []
        for k, (index, label) in enumerate(zip(data["index"].tolist(), data["label"].tolist(), strict=True)):
            row = {"index": index, "label": label, "shard": store.shard_path(shard).name, "setting": key,
                   "sampler": setting["sampler"], "nfe": int(setting["nfe"]), "cfg": float(setting["cfg"])}
            if predicted is not None:
                row["classifier_label"] = int(predicted[k])
            rows.append(row)
        handle.write_shard(seed, name, rows)
        written += len(rows)
    return written


def digits_classifier() -> Callable[[np.ndarray], np.ndarray]:
    """Predicted class of uint8 [N,1,16,16] digits by the fd_digits feature network (a per-sample signal of
    whether a sample shows the class it was conditioned on)."""
    from bench.metrics.offline_fd import load_classifier

    net = load_classifier()

    def classify(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(np.ascontiguousarray(images))).argmax(1).numpy()

    return classify


def _json_safe(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def digits_metrics(samples: np.ndarray, metrics: list[str]) -> list[Any]:
    """fd_digits / kd_digits (bench.metrics.offline_fd) of uint8 [N,1,16,16] samples vs the digits test split."""
    from bench.data.smoke import digits
    from bench.metrics import offline_fd

    real, _ = digits("test")
    out = []
    for name in metrics:
        if name == "fd_digits":
            out.append(offline_fd.fd_digits(samples, real))
        elif name == "kd_digits":
            out.append(offline_fd.kd_digits(samples, real))
        else:
            raise BenchError(f"the digits evaluation computes fd_digits and kd_digits, not {name!r}")
    for result in out:
        result.protocol = _json_safe(result.protocol)
    return out


# ------------------------------------------------------------------------------------------ sharded FID
class _ShardImages(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.images[i]))


def _stats_path(store: Any, shard: int, extractor: str) -> Path:
    return store.root / "feature_stats" / extractor / f"shard_{shard:06d}.npz"


def shard_feature_stats(store: Any, extractor: str, batch_size: int = 50, rank: int | None = None,
                        world_size: int | None = None) -> list[int]:
    """Float64 feature sums of each sample shard (missing ones, dealt to ranks by shard index)."""
    from bench import atomic
    from bench import distributed as dist
    from bench.metrics.generative import feature_statistics

    rank = dist.get_rank() if rank is None else rank
    world = dist.get_world_size() if world_size is None else world_size
    missing = [s for s in range(store.num_shards) if not _stats_path(store, s, extractor).exists()]
    dist.barrier()
    mine = missing[rank::world]
    for shard in mine:
        stats, info = feature_statistics(_ShardImages(store.read_shard(shard)["samples"]), extractor,
                                         batch_size=batch_size)
        buffer = io.BytesIO()
        np.savez(buffer, n=stats.n, sum=stats.sum, sum_outer=stats.sum_outer,
                 info=np.array(json.dumps(_json_safe(info))))
        atomic.write_bytes(_stats_path(store, shard, extractor), buffer.getvalue())
    dist.barrier()
    return mine


def sharded_fid(store: Any, reference: Any, extractor: str | None = None, batch_size: int = 50,
                merge: bool = True) -> Any:
    """Fréchet distance of all shards' features (merged in shard order) to the reference's mu/sigma.

    ``extractor`` None = torch-fidelity's inception-v3-compat (then the dialect is fid@ref-npz). Every rank
    must call it (the per-shard statistics are shared out); with ``merge`` the returned MetricResult is valid
    on this rank; ``merge=False`` (ranks that record nothing) returns None after the shared part, sparing
    the 2048 x 2048 matrix square root (10-20 CPU seconds).
    """
    from bench.metrics.base import MetricResult, library_version
    from bench.metrics.generative import (
        INCEPTION,
        FeatureStats,
        frechet_distance,
        reference_statistics,
    )

    extractor = extractor or INCEPTION
    shard_feature_stats(store, extractor, batch_size)
    if not merge:
        return None
    total: FeatureStats | None = None
    info: dict[str, Any] = {}
    for shard in range(store.num_shards):
        with np.load(_stats_path(store, shard, extractor)) as data:
            part = FeatureStats(int(data["sum"].shape[0]))
            part.n, part.sum, part.sum_outer = int(data["n"]), data["sum"].copy(), data["sum_outer"].copy()
            info = json.loads(str(data["info"]))
        total = part if total is None else total.merge(part)
    assert total is not None
    mu_ref, sigma_ref, ref_info = reference_statistics(reference, extractor, info.get("feature_layer"), batch_size)
    value = frechet_distance(total.mu, total.sigma, mu_ref, sigma_ref)
    name = "fid@ref-npz" if extractor == INCEPTION else f"fd@ref:{extractor}"
    protocol = {**info, **{k: v for k, v in ref_info.items() if k != "cache"},
                "statistics": "float64 sums per sample shard, merged in shard order; unbiased covariance",
                "torch_fidelity": library_version("torch-fidelity"), "scipy": library_version("scipy")}
    return MetricResult(name=name, value=value, n=total.n, protocol=_json_safe(protocol))
