"""`bench reproduce sam-prior`: plain NAFNet / Restormer against the same models trained with SAM-prior
distillation (SPF + SPD + SGR, methods/sam_prior/model.py) on deraining, deblurring and denoising.

Every pair (plain, +SAM prior) shares the IR model's initial weights, the training crops (same generator), the
steps, batch, optimiser and schedule; the +SAM run additionally trains the training-only SPF network. At test
time both run the plain IR network alone, so params and MACs are equal (recorded per run, and tested).

Scales
* smoke: the embedded photos (bench.data.smoke) with their seeded rain (density 0.02), Gaussian blur (sigma 1.5)
  and Gaussian noise (sigma 25); train on the 12 train photos at 96x96, test on the 8 held-out photos at 64x64;
  tiny NAFNet / Restormer configs; 160 Adam steps (lr 1e-2, warm-up, cosine, clip 1 per network) of batch 4
  random 32x32 crops; one thread; 3 seeds. The prior
  is scikit-image SLIC superpixels (no weights), computed once per training image and cached.
* small: the official architectures at their smallest (NAFNet-width32 GoPro config, Restormer), 2,000 steps of
  128x128 crops on the first 200 training pairs of each task; SAM ViT-B masks. One GPU.
* paper: the official schedules of the base models' own repos (named below with their sources) and SAM ViT-H.
Every record names its prior source (setting key ``prior``).
"""
from __future__ import annotations

import math
import time
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from bench.recipe import RunContext, SeedResult, metric_record, torch_threads
from bench.registry import BenchError
from bench.spec import RunSpec

VERSION = 1
PAPER = "sam-prior"
METRICS = ["psnr_rgb", "ssim_rgb"]

# card entry -> (base model, with the SAM-prior training?)
ENTRIES: dict[str, tuple[str, bool]] = {
    "nafnet-w32": ("nafnet", False),
    "sam-prior-nafnet-w32": ("nafnet", True),
    "restormer": ("restormer", False),
    "sam-prior-restormer": ("restormer", True),
}
# base model -> (impl, args at small/paper, args at smoke)
BASES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "nafnet": ("nafnet", {"variant": "gopro-w32"}, {"variant": "tiny"}),
    "restormer": ("restormer", {"variant": "restormer"}, {"variant": "tiny"}),
}
BUILDERS = {"nafnet": "baselines.ir.nafnet:build", "restormer": "baselines.ir.restormer:build"}

# smoke task -> (degradation kind, level) of bench.data.smoke.degrade, and the paper datasets it stands for
SMOKE_TASKS: dict[str, tuple[str, float, list[str]]] = {
    "derain": ("rain", 0.02, ["rain100l", "rain100h", "test100"]),
    "deblur": ("blur", 1.5, ["gopro"]),
    "denoise": ("noise", 25.0, ["sidd"]),
}
TRAIN_SEED, TEST_SEED = 0, 1000  # degradation seeds of the train and test photos (fixed data, not run seeds)

SMOKE: dict[str, Any] = {
    "seeds": [0, 1, 2],
    "train_size": 96, "test_size": 64,
    "train": {"steps": 160, "batch_size": 4, "patch": 32, "lr": 1e-2, "warmup_steps": 15, "min_lr": 1e-5,
              "grad_clip": 1.0, "augment": "hflip+vflip", "threads": 1},
    "prior": {"source": "slic", "n_segments": 24, "compactness": 10.0, "sigma": 1.0,
              "on": "degraded training input"},
    "method": {"spf_width": 8, "spf_blocks": 2, "analyzer": "random-conv"},
}

# small/paper: (train dataset card, split) and test sets per task (CBSD68 is not run: no Gaussian-noise training
# set is carded, and SIDD is the denoising set of NAFNet, Restormer and HINet)
REAL_TASKS: dict[str, dict[str, Any]] = {
    "derain": {"train": ("rain13k", "train"), "test": [("rain100l", "test"), ("rain100h", "test"),
                                                       ("test100", "test")]},
    "deblur": {"train": ("gopro", "train"), "test": [("gopro", "test")]},
    "denoise": {"train": ("sidd-medium", "train"), "test": [("sidd", "val")]},
}
PAPER_TRAIN: dict[str, dict[str, Any]] = {
    # NAFNet options/train/GoPro/NAFNet-width32.yml [R]: AdamW lr 1e-3, wd 1e-3, betas (0.9, 0.9), cosine to 1e-7,
    # 200k iterations, 256x256 crops, batch 4 per GPU x 8 GPUs (dossier 5.4)
    "nafnet": {"steps": 200_000, "batch_size": 32, "patch": 256, "lr": 1e-3, "warmup_steps": 0, "min_lr": 1e-7,
               "grad_clip": 0.0, "augment": "hflip+vflip", "threads": 0,
               "source": "megvii-research/NAFNet options/train/GoPro/NAFNet-width32.yml [R]",
               "notes": "bench's loop: Adam (betas 0.9/0.999, no weight decay) in one process, not the official "
                        "AdamW (wd 1e-3, betas 0.9/0.9) over 8 GPUs"},
    # Restormer: 300k iterations, AdamW lr 3e-4 cosine to 1e-6, progressive patches 128..384 (fixed 256 here) [R]
    "restormer": {"steps": 300_000, "batch_size": 8, "patch": 256, "lr": 3e-4, "warmup_steps": 0, "min_lr": 1e-6,
                  "grad_clip": 0.01, "augment": "hflip+vflip", "threads": 0,
                  "source": "swz30/Restormer options (progressive training replaced by fixed 256 crops) [R]",
                  "notes": "bench's loop: Adam without weight decay, one process (official: AdamW, wd 1e-4)"},
}
SMALL_TRAIN = {"steps": 2000, "batch_size": 8, "patch": 128, "lr": 1e-3, "warmup_steps": 100, "min_lr": 1e-6,
               "grad_clip": 1.0, "augment": "hflip+vflip", "threads": 0, "train_subset": 200}
REAL_PRIOR = {"small": {"source": "sam", "sam_model": "vit_b", "points_per_side": 32, "on": "degraded training input"},
              "paper": {"source": "sam", "sam_model": "vit_h", "points_per_side": 32, "on": "degraded training input"}}
REAL_METHOD = {"spf_width": 32, "spf_blocks": 4, "analyzer": "vgg16"}

SANITY_METRIC = "psnr_gain@degraded"
SANITY_NOTE = ("strictly above the degraded input's own psnr_rgb: a restoration model that does not improve on "
               "returning its input has not learned the task")


# --------------------------------------------------------------------------------------------------- plan
def _smoke_stands_for(task: str) -> dict[str, Any]:
    # The claims' setting is the task; a smoke run of one task stands for that task's paper test sets. What
    # differs (synthetic degradations, tiny models, 160 steps) is the smoke badge, the same for every entry.
    return {"dataset": list(SMOKE_TASKS[task][2]), "metrics": {m: m for m in METRICS},
            "settings": [{"paper": {"task": task}, "ours": {"task": task}}]}


def plan(card: Any, scale: str, data_root: Path | None) -> list[RunSpec]:
    specs = []
    if scale == "smoke":
        for entry, (base, with_prior) in ENTRIES.items():
            impl, _, args = BASES[base]
            for task, (kind, level, _) in SMOKE_TASKS.items():
                specs.append(RunSpec(
                    paper=PAPER, entry=entry, impl=impl, args=dict(args), dataset="photos", split="test",
                    stands_for=_smoke_stands_for(task), metrics=list(METRICS), scale="smoke",
                    seeds=list(SMOKE["seeds"]),
                    train={**SMOKE["train"], "sam_prior": with_prior, "prior": dict(SMOKE["prior"]),
                           "method": dict(SMOKE["method"]) if with_prior else {},
                           "degradation": {"kind": kind, "level": level, "train_seed": TRAIN_SEED},
                           "train_size": SMOKE["train_size"]},
                    sampler={"test_size": SMOKE["test_size"], "test_seed": TEST_SEED, "forward": "whole image"},
                    setting={"task": task}, recipe_version=VERSION))
        return specs
    if scale not in ("small", "paper"):
        raise BenchError(f"unknown scale {scale!r} for sam-prior; use smoke, small or paper")
    for entry, (base, with_prior) in ENTRIES.items():
        impl, args, _ = BASES[base]
        train = dict(SMALL_TRAIN) if scale == "small" else dict(PAPER_TRAIN[base])
        for task, sets in REAL_TASKS.items():
            for dataset, split in sets["test"]:
                specs.append(RunSpec(
                    paper=PAPER, entry=entry, impl=impl, args=dict(args), dataset=dataset, split=split,
                    metrics=list(METRICS), scale=scale, seeds=[0],
                    train={**train, "sam_prior": with_prior, "prior": dict(REAL_PRIOR[scale]),
                           "method": dict(REAL_METHOD) if with_prior else {},
                           "train_set": list(sets["train"])},
                    sampler={"forward": "whole image"}, setting={"task": task}, recipe_version=VERSION))
    return specs


# ---------------------------------------------------------------------------------------------------- data
@cache
def smoke_pairs(split: str, kind: str, level: float, seed: int, size: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    from bench.data.smoke import degraded_pairs

    return tuple(degraded_pairs(split, kind, level, seed=seed, size=size))


def _real_pairs(dataset: str, split: str, ctx: RunContext, limit: int | None = None) -> tuple[list, str]:
    from bench.data.formats import open_dataset

    data = open_dataset(dataset, split, ctx.data_root)
    n = len(data) if limit is None else min(limit, len(data))
    pairs = [(data[i]["target"], data[i]["input"]) for i in range(n)]
    return pairs, f"{data.fingerprint()}[:{n}]"


def training_pairs(spec: RunSpec, ctx: RunContext) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """(clean, degraded) uint8 training pairs and their fingerprint."""
    if spec.scale == "smoke":
        d = spec.train["degradation"]
        pairs = list(smoke_pairs("train", d["kind"], float(d["level"]), int(d["train_seed"]),
                                 int(spec.train["train_size"])))
        return pairs, f"photos/train@{spec.train['train_size']}:{d['kind']}={d['level']}:seed{d['train_seed']}"
    dataset, split = spec.train["train_set"]
    limit = spec.train.get("train_subset")
    limit = spec.capped("max_samples", limit) if limit else (spec.rehearsal.get("max_samples") or None)
    return _real_pairs(dataset, split, ctx, limit)


def evaluation_pairs(spec: RunSpec, ctx: RunContext) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[str], str]:
    if spec.scale == "smoke":
        d = spec.train["degradation"]
        pairs = list(smoke_pairs("test", d["kind"], float(d["level"]), int(spec.sampler["test_seed"]),
                                 int(spec.sampler["test_size"])))
        return pairs, [f"photo{i}" for i in range(len(pairs))], \
            f"photos/test@{spec.sampler['test_size']}:{d['kind']}={d['level']}:seed{spec.sampler['test_seed']}"
    pairs, fp = _real_pairs(spec.dataset, spec.split, ctx, spec.rehearsal.get("max_samples") or None)
    return pairs, [str(i) for i in range(len(pairs))], fp


# -------------------------------------------------------------------------------------------------- models
def build_base(impl: str, args: dict[str, Any]):
    from bench.registry import load_target

    if impl not in BUILDERS:
        raise BenchError(f"unknown sam-prior base model {impl!r}; known: {', '.join(BUILDERS)}")
    return load_target(BUILDERS[impl])(**args)


def _to_tensor(images: list[np.ndarray]):
    import torch

    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)


def _lr_at(step: int, train: dict[str, Any]) -> float:
    warm, total = int(train.get("warmup_steps", 0)), int(train["steps"])
    if step < warm:
        return train["lr"] * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return train["min_lr"] + 0.5 * (train["lr"] - train["min_lr"]) * (1 + math.cos(math.pi * t))


def train_model(spec: RunSpec, seed: int, ctx: RunContext):
    """Train the plain model or the SAM-prior wrapper; returns (deployed IR model, training model, facts)."""
    import torch

    from bench.distributed import derive_seed
    from methods.sam_prior.model import SAMPriorDistill
    from methods.sam_prior.segmenter import cached_labels

    train = spec.train
    torch.manual_seed(derive_seed(seed, spec.impl, "init"))  # the same IR init for plain and +SAM runs
    ir = build_base(spec.impl, spec.args)
    device = torch.device(ctx.device)
    out = ctx.work_dir(seed) / "train"
    final = out / "final.pt"
    facts: dict[str, Any] = {"train_dir": str(out), "checkpoint": str(final)}
    steps = spec.capped("max_steps", int(train["steps"]))
    facts["train_steps"] = steps
    maps = None
    if not final.exists():
        # data, then masks (SAM's one-line missing-checkpoint error), before the analyzer's weights are needed
        pairs, fingerprint = training_pairs(spec, ctx)
        facts["train_dataset_fingerprint"] = fingerprint
        if train["sam_prior"]:
            with torch.random.fork_rng():  # building SAM draws random inits: keep SPF's init independent of it
                maps = cached_labels([d for _, d in pairs], train["prior"],
                                     ctx.handle.dir.parent / "_shared" / "masks", fingerprint, device=ctx.device,
                                     log=ctx.log)
    model = SAMPriorDistill(ir, train["method"]) if train["sam_prior"] else ir
    model.to(device)
    if final.exists():
        model.load_state_dict(torch.load(final, map_location=device, weights_only=True))
        ctx.log(f"  {spec.entry} {spec.setting['task']}: reusing {final}")
        return ir, model, facts
    # one uint8 CHW tensor per image (a quarter of float32's memory on the real sets): real training sets mix
    # image sizes, so crops are drawn per image
    clean = [torch.from_numpy(np.ascontiguousarray(c.transpose(2, 0, 1))) for c, _ in pairs]
    degraded = [torch.from_numpy(np.ascontiguousarray(d.transpose(2, 0, 1))) for _, d in pairs]
    labels = None if maps is None else [torch.from_numpy(m).long() for m in maps]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=train["lr"])
    ir_params = [p for p in ir.parameters() if p.requires_grad]
    ir_ids = {id(p) for p in ir_params}
    clip_groups = [ir_params] + ([[p for p in params if id(p) not in ir_ids]] if train["sam_prior"] else [])
    gen = torch.Generator().manual_seed(derive_seed(seed, "crops", spec.setting["task"]))  # same crops both runs
    p, b = int(train["patch"]), int(train["batch_size"])
    small = [i for i, c in enumerate(clean) if min(c.shape[-2:]) < p]
    if small:
        raise BenchError(f"training image {small[0]} is smaller than the {p}x{p} training crop")
    t0, c0 = time.perf_counter(), time.process_time()
    last: dict[str, float] = {}
    model.train()
    for step in range(steps):
        idx = torch.randint(len(clean), (b,), generator=gen).tolist()
        corners = torch.rand(b, 2, generator=gen)
        flips = torch.rand(b, 2, generator=gen) < 0.5

        def crop(images, i):
            t = images[idx[i]]
            h, w = t.shape[-2:]
            y0, x0 = int(corners[i, 0] * (h - p + 1)), int(corners[i, 1] * (w - p + 1))
            c = t[..., y0:y0 + p, x0:x0 + p]
            if flips[i, 0]:
                c = c.flip(-1)
            if flips[i, 1]:
                c = c.flip(-2)
            return c

        x = torch.stack([crop(degraded, i) for i in range(b)]).to(device).float().div_(255.0)
        y = torch.stack([crop(clean, i) for i in range(b)]).to(device).float().div_(255.0)
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, train)
        if labels is None:
            loss = torch.nn.functional.l1_loss(ir(x), y)
            last = {"loss": float(loss.detach())}
        else:
            m = torch.stack([crop(labels, i) for i in range(b)]).to(device)
            parts = model.losses(x, y, m)
            loss = parts["total"]
            last = {k: float(v.detach()) for k, v in parts.items()}
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if train.get("grad_clip"):  # per network: SPF's gradients must not shrink the IR model's clipped step
            for group in clip_groups:
                torch.nn.utils.clip_grad_norm_(group, float(train["grad_clip"]))
        opt.step()
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "final.pt.tmp"
    torch.save(model.state_dict(), tmp)
    tmp.replace(final)
    facts.update(train_wall_s=time.perf_counter() - t0, train_cpu_s=time.process_time() - c0, train_last=last)
    return ir, model, facts


# --------------------------------------------------------------------------------------------------- seeds
def run_seed(spec: RunSpec, seed: int, ctx: RunContext) -> SeedResult:
    with torch_threads(spec.train.get("threads")):
        return _run_seed(spec, seed, ctx)


def _restore(net, degraded: np.ndarray, device) -> np.ndarray:
    import torch

    with torch.no_grad():
        y = net(_to_tensor([degraded]).to(device))
    return y[0].permute(1, 2, 0).double().cpu().numpy()


def _run_seed(spec: RunSpec, seed: int, ctx: RunContext) -> SeedResult:
    from bench.data.base import sha256_file
    from bench.metrics import compute
    from bench.profile import count_macs, count_params

    ir, model, facts = train_model(spec, seed, ctx)
    net = ir.eval()  # the deployed network: the plain IR model in both arms
    pairs, names, fingerprint = evaluation_pairs(spec, ctx)
    t0 = time.process_time()
    preds, macs = [], []
    for _, degraded in pairs:
        preds.append(_restore(net, degraded, ctx.device))
        macs.append(count_macs(net, _to_tensor([degraded]).to(ctx.device)))
    targets = [c for c, _ in pairs]
    results = {d: compute(d, preds=preds, targets=targets, crop_border=0, float_range=1.0, self_ensemble=False)
               for d in METRICS}
    inputs = compute("psnr_rgb", preds=[d for _, d in pairs], targets=targets, crop_border=0, float_range=255.0,
                     self_ensemble=False)
    rows = [{"image": names[k], "gmacs": macs[k] / 1e9, "psnr_rgb_degraded": float(inputs.per_item[k]),
             **{d: float(results[d].per_item[k]) for d in METRICS}} for k in range(len(pairs))]
    ctx.handle.write_shard(seed, f"{spec.dataset}-{spec.setting['task']}", rows)
    prior = spec.train["prior"]
    # the prior source lives in the protocol and provenance, not the setting: a claim pairs the plain and the
    # +SAM record of one task, which must share their setting
    setting = {"task": spec.setting["task"]}
    protocol_extra = {"prior_source": prior["source"] if spec.train["sam_prior"] else "none (plain training)",
                      "prior_on": prior.get("on"), "deployed": "the plain IR network alone"}
    n = len(pairs)
    means = {d: math.fsum(r[d] for r in rows) / n for d in METRICS}
    metrics = [metric_record(d, means[d], n, setting, {**results[d].protocol, **protocol_extra}) for d in METRICS]
    input_psnr = math.fsum(r["psnr_rgb_degraded"] for r in rows) / n
    from bench.sanity import sanity_record

    metrics.append(sanity_record(SANITY_METRIC, means["psnr_rgb"] - input_psnr, n, floor=0.0,
                                 trivial="the degraded input returned unchanged (psnr_rgb, no crop)",
                                 trivial_value=input_psnr, note=SANITY_NOTE, setting=setting,
                                 protocol={"model_psnr_rgb": means["psnr_rgb"], "degraded_psnr_rgb": input_psnr}))
    cost: dict[str, Any] = {"params_m": count_params(net) / 1e6, "gmacs": math.fsum(macs) / n / 1e9,
                            "gmacs_at": "mean over the test images at their own sizes", "nfe": None,
                            "train_steps": facts["train_steps"], "eval_cpu_s": time.process_time() - t0,
                            "params_m_training": count_params(model) / 1e6}
    for key in ("train_wall_s", "train_cpu_s"):
        if key in facts:
            cost[key] = facts[key]
    checkpoint = Path(facts["checkpoint"])
    provenance = {"dataset_fingerprint": fingerprint, "checkpoint": str(checkpoint),
                  "checkpoint_sha256": sha256_file(checkpoint) if checkpoint.exists() else None,
                  "prior": dict(prior) if spec.train["sam_prior"] else None,
                  "prior_source": prior["source"] if spec.train["sam_prior"] else "none",
                  "model": {"impl": spec.impl, "args": spec.args, "sam_prior": spec.train["sam_prior"]}}
    for key in ("train_dataset_fingerprint", "train_last"):
        if key in facts:
            provenance[key] = facts[key]
    return SeedResult(metrics=metrics, cost=cost, provenance=provenance)


# -------------------------------------------------------------------------------------------------- profile
def profile(scale: str = "smoke", device: str = "cpu", repeats: int = 20, entries: list[str] | None = None,
            measure_latency: bool | None = None, progress: Any = None) -> list[dict[str, Any]]:
    """Params, MACs and latency of every entry's deployed network (the plain IR model in both arms), with the
    training-time parameter count beside it. smoke: tiny configs at 64x64; small/paper: official configs at 256x256."""
    import torch

    from bench.profile import ProfileJob, count_macs, count_params, latency_plan, profiled_entries, run_profile
    from methods.sam_prior.model import SAMPriorDistill

    names = profiled_entries("sam-prior", scale, entries, list(ENTRIES))
    plan = latency_plan(scale, device, repeats, measure_latency)
    side = 64 if scale == "smoke" else 256

    def job(entry: str) -> ProfileJob:
        def measure():
            base, with_prior = ENTRIES[entry]
            impl, paper_args, smoke_args = BASES[base]
            torch.manual_seed(0)
            ir = build_base(impl, smoke_args if scale == "smoke" else paper_args)
            training = ir
            if with_prior:  # the analyzer is frozen and, at smoke, weight-free: count the trainable part
                training = SAMPriorDistill(ir, dict(SMOKE["method"] if scale == "smoke" else REAL_METHOD,
                                                       analyzer="random-conv"))
            net = ir.eval().to(plan.device)
            x = torch.rand(1, 3, side, side, device=plan.device)

            def forward() -> None:
                with torch.inference_mode():
                    net(x)

            return ({"entry": entry, "impl": impl, "sam_prior": with_prior, "input": f"{side}x{side}",
                     "params_m": count_params(net) / 1e6, "gmacs": count_macs(net, x) / 1e9, "nfe": None,
                     "params_m_training": count_params(training) / 1e6, "precision": "fp32"}, forward)

        return ProfileJob(entry, measure)

    return run_profile([job(e) for e in names], plan, progress)
