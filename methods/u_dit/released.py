"""Released checkpoints of the U-DiT card, evaluated with the paper's protocol (`bench evaluate u-dit ...`).

Official layouts (read from the official code):
* DiT-XL/2: facebookresearch/DiT `download.py` fetches `DiT-XL-2-256x256.pt` from dl.fbaipublicfiles.com; the file
  is a plain EMA state dict (292 tensors, timm names); `find_model` also accepts a `train.py` checkpoint
  `{"model", "ema", "opt", "args"}` and then takes `ema`. The release was trained for 7M steps (DiT paper).
* U-DiT-S/B/L: YuchuanTian/U-DiT `train.py` saves `{"model": ..., "ema": ..., "opt": ..., "args": argparse
  Namespace}` every `ckpt_every` steps as `{step:07d}.pt`; `sample_ddp.py` loads it through the same
  `find_model` (takes `ema`). The released files (huggingface.co/yuchuantian/U-DiT) are named by training length,
  e.g. `U-DiT-B-400k.pt`, `U-DiT-L-1000k.pt`: the number (k steps) is the `train_iters` of the records.

Protocol (paper Table 2, DiT's `sample_ddp.py`): class labels uniform over the 1000 classes, 250 DDPM steps
(respaced from 1000), no guidance (cfg 1.0), `clip_denoised=False`, latents decoded by the SD ft-EMA VAE
(z / 0.18215), 50K samples, FID against ADM's `VIRTUAL_imagenet256_labeled.npz` (mu/sigma) with torch-fidelity's
Inception (fid@ref-npz, the dialect declared comparable with the paper's fid@adm). `--scale small` draws 10K
samples and records `num_samples: 10000` in its setting, so it never sits beside the paper's 50K number.
Assets: the VAE folder (asset sd-vae-ft-ema) and the reference batch (<data-root>/imagenet/ or the asset
adm-imagenet256-reference); a missing one stops the run before any sampling, in one line.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.evaluate import CheckpointError, Layout, load_strict, read_checkpoint
from bench.recipe import RunContext, SeedResult, metric_record
from bench.spec import RunSpec

HF_RELEASE = "https://huggingface.co/yuchuantian/U-DiT (or modelscope.cn/models/YuchuanTian/U-DiT)"
UDIT_FORMAT = "YuchuanTian/U-DiT train.py checkpoint {'model', 'ema', 'opt', 'args'} (torch.save)"

LAYOUTS: dict[str, Layout] = {
    "dit-xl-2": Layout(
        files=("DiT-XL-2-256x256.pt",),
        source="https://dl.fbaipublicfiles.com/DiT/models/DiT-XL-2-256x256.pt (facebookresearch/DiT download.py)",
        format="facebookresearch/DiT plain EMA state dict (torch.save; 292 tensors)",
        weights="the whole file (a train.py dict: its 'ema', as find_model)",
        note="trained 7M steps: no U-DiT cell (those are 400K) sits beside it",
        extra={"config": "DiT-XL/2", "train_iters": 7_000_000, "arch": "dit"}),
    **{f"u-dit-{size.lower()}": Layout(
        files=(f"U-DiT-{size}-400k.pt",) + ((f"U-DiT-{size}-1000k.pt",) if size != "S" else ()),
        source=HF_RELEASE, format=UDIT_FORMAT, weights="['ema'] (as sample_ddp.py's find_model)",
        note="the file name's '<N>k' is the training length; the paper's Table 2 numbers are at 400k",
        extra={"config": f"U-DiT-{size}", "train_iters": 400_000, "arch": "u-dit"})
       for size in ("S", "B", "L")},
}

NUM_SAMPLES = {"paper": 50_000, "small": 10_000}
SAMPLER = {"sampler": "ddpm", "nfe": 250, "cfg": 1.0, "labels": "uniform", "batch_size": 125, "shard_size": 1000,
           "eta": 0.0, "clip_denoised": False, "guided_channels": 3}
PAPER_SETTING = {"cfg": 1.0, "sampler": "ddpm-250"}  # + train_iters: the cells' setting (paper.yaml, Table 2)


def released_spec(card: Any, entry: str, scale: str) -> dict[str, Any]:
    layout = LAYOUTS[entry]
    sampler = {**SAMPLER, "num_samples": NUM_SAMPLES[scale]}
    setting = {"latent": "sd-vae-ft-ema", "image_size": 256, "reference": "VIRTUAL_imagenet256_labeled.npz"}
    return {"dataset": "imagenet-256", "split": "test", "metrics": ["fid@ref-npz"], "sampler": sampler,
            "setting": setting, "args": {"config": layout.extra["config"], "overrides": dict(layout.extra.get("overrides", {}))}}


def train_iters(checkpoint: Path, layout: Layout) -> int:
    """The release's training length: '<N>k' in the official file name, else the layout's (DiT: 7M)."""
    found = re.search(r"-(\d+)k\.pt$", checkpoint.name)
    return int(found.group(1)) * 1000 if found else int(layout.extra["train_iters"])


def official_state(obj: Any, checkpoint: Path) -> Any:
    """What `find_model` loads: the 'ema' of a train.py dict, else the file itself (a plain state dict)."""
    if isinstance(obj, dict) and "ema" in obj:
        return obj["ema"]
    if isinstance(obj, dict) and obj and all(hasattr(v, "shape") for v in obj.values()):
        return obj
    have = sorted(map(str, obj))[:6] if isinstance(obj, dict) else type(obj).__name__
    raise CheckpointError(f"checkpoint {checkpoint} is neither a state dict nor a train.py dict with 'ema' "
                          f"(it has {have})")


def build_network(spec: RunSpec) -> Any:
    """bench's own network for the entry (U-DiT: methods.u_dit.model; DiT: baselines.dit)."""
    if spec.impl == "u-dit":
        from methods.u_dit.model import udit

        return udit(spec.args["config"], **spec.args.get("overrides", {}))
    from baselines.dit.model import dit

    return dit(spec.args["config"], **spec.args.get("overrides", {}))


def load_released(spec: RunSpec, checkpoint: Path) -> Any:
    """bench's model holding the released weights, strictly (one line naming keys that do not fit)."""
    model = build_network(spec)
    state = official_state(read_checkpoint(checkpoint), checkpoint)
    layout = LAYOUTS[spec.entry]
    return load_strict(model, state, checkpoint, layout.format.split(" (")[0])


def latent_decoder(ctx: RunContext) -> tuple[Callable[[Any], Any], dict[str, Any]]:
    """(latents -> uint8 images, codec facts): the SD ft-EMA VAE decoder, as sample_ddp.py (z / 0.18215)."""
    from bench.diffusion.latents import unit_to_uint8
    from methods.u_dit import recipe

    codec = recipe._vae_codec(ctx.device)
    return (lambda z: unit_to_uint8(codec.decode(z))), codec.info()


def reference_file(ctx: RunContext) -> Path:
    from methods.u_dit import recipe

    return recipe.reference_npz(ctx)


def fid_against_reference(store: Any, reference: Path) -> Any:
    """fid@ref-npz of the sample shards: torch-fidelity's Inception features against the reference mu/sigma."""
    from methods.u_dit import generate

    return generate.sharded_fid(store, reference)


def evaluate_released(spec: RunSpec, checkpoint: Path, ctx: RunContext) -> SeedResult:
    import torch

    from bench.diffusion.gaussian import GaussianDiffusion
    from bench.distributed import derive_seed
    from bench.train import ShardStore
    from methods.u_dit import generate

    seed = int(ctx.extra.get("seed", 0))
    layout = LAYOUTS[spec.entry]
    reference = reference_file(ctx)  # assets first: a missing one stops before the model is even built
    decode, codec_info = latent_decoder(ctx)
    model = load_released(spec, checkpoint).to(ctx.device).eval()  # eval: U-DiT runs its fused FFN
    sm = spec.sampler
    total = spec.capped("max_samples", int(sm["num_samples"]))
    setting = {"sampler": sm["sampler"], "nfe": int(sm["nfe"]), "cfg": float(sm["cfg"])}
    key = generate.setting_key(setting)
    sample_seed = derive_seed(seed, "released-samples")
    store = ShardStore(ctx.work_dir(seed) / "samples" / key, total=total,
                       shard_size=min(int(sm["shard_size"]), total),
                       meta={"entry": spec.entry, "checkpoint_sha256": ctx.extra.get("checkpoint_sha256"),
                             "seed": seed, "setting": setting, "labels": sm["labels"]})
    shape = (model.in_channels, model.input_size, model.input_size)  # the latent both DiT and U-DiT denoise
    sampling = generate.sample_setting(
        model, GaussianDiffusion.dit_default(), store, setting, shape=shape, num_classes=model.num_classes,
        label_rule=sm["labels"], seed=sample_seed, batch_size=min(int(sm["batch_size"]), total), decode=decode,
        device=ctx.device, eta=float(sm["eta"]), clip_denoised=bool(sm["clip_denoised"]),
        guided_channels=sm["guided_channels"])
    t0 = time.perf_counter()
    fid = fid_against_reference(store, reference)
    record_setting = {**PAPER_SETTING, "train_iters": train_iters(checkpoint, layout)}
    if spec.scale != "paper":
        record_setting["num_samples"] = int(sm["num_samples"])
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    params = sum(p.numel() for p in model.parameters())
    cost = {"params_m": params / 1e6, "nfe": int(sm["nfe"]), "sampling": sampling,
            "sample_s_per_item": sampling.get("s_per_sample"), "fid_wall_s": time.perf_counter() - t0}
    provenance = {"latent": codec_info, "sample_seed": sample_seed, "layout": layout.format,
                  "train_iters_from": "file name" if re.search(r"-(\d+)k\.pt$", checkpoint.name) else "layout"}
    return SeedResult(metrics=[metric_record(fid.name, fid.value, fid.n, record_setting, fid.protocol)],
                      cost=cost, provenance=provenance)
