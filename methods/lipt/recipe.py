"""`bench reproduce lipt` and `bench profile lipt`: LIPT-Tiny/Small against four lightweight SR baselines.

Every entry is trained on the same data with the L1 loss and Adam (baselines/sr/train_eval.py, through the
shared loop bench.train), LIPT is re-parameterised (``deploy()``) before evaluation, and every model is
evaluated on whole images with ``psnr_y@matlab`` / ``ssim_y@matlab`` (crop = scale, output rounded to uint8
like BasicSR's tensor2img; LIPT's own train.py only clamps: see the card's limits), one row per image.

Scales
* smoke: the embedded ``photos`` set (bench.data.smoke): 400 Adam steps (lr 1e-2 with warm-up + cosine, grad clip
  1, one intra-op thread) of batch 4 random 12x12 LR patches of the 12 train photos at 128x128 HR (like the
  test split) with their MATLAB-bicubic LR; tested on the 8 held-out photos at 128x128 HR (full size would
  cost minutes on CPU). Tiny configs of the real architectures, x2 and x4 (x3 is left out for the budget).
  CARN is not in the smoke plan: it does not learn SR at a fair tiny size within that budget (NOT_AT_SMOKE).
  Stands for Set5/Set14/B100/Urban100/Manga109 and for the claims' x2 and x4 settings.
* every scale records the sanity metric ``psnr_gain_y@bicubic`` (the model's psnr_y@matlab minus MATLAB
  bicubic's on the same LR inputs and crop) with its floor, 0 dB (bench/sanity.py).
* small: the paper's architectures, x2 and x4, on the first 100 DIV2K train images with a 2,000-step
  schedule (the paper's milestones scaled), tested on the five benchmark sets (needs --data-root).
* paper: each model's official DIV2K schedule (named configs below, with their sources), x2/x3/x4, tested
  on the five benchmark sets in the EDSR layout with the LR files (MATLAB bicubic). One training per
  (entry, scale, seed) is shared by the five test-set runs through ``<store>/lipt/_shared/``.
"""
from __future__ import annotations

import importlib
import math
import time
from functools import cache
from pathlib import Path
from typing import Any

from bench.data.base import FirstN
from bench.recipe import RunContext, SeedResult, metric_record, torch_threads
from bench.registry import BenchError, load_target
from bench.spec import RunSpec, canonical_json

VERSION = 2
PAPER = "lipt"
METRICS = ["psnr_y@matlab", "ssim_y@matlab"]
BENCHMARKS = ["set5", "set14", "b100", "urban100", "manga109"]

# Registered implementation name -> builder (the same targets go into methods/ and baselines/manifest.py).
# Every builder takes (scale=..., variant=..., **config overrides).
IMPLS: dict[str, str] = {
    "lipt": "methods.lipt.model:build_lipt",
    "swinir-light": "baselines.sr.swinir_light:build",
    "elan-light": "baselines.sr.elan_light:build",
    "edsr-baseline": "baselines.sr.edsr_baseline:build",
    "imdn": "baselines.sr.imdn:build",
    "carn": "baselines.sr.carn:build",
}

# The paper's Tiny config is unknown: the released config/tinyx2.yml ("tiny", 0.265 M deployed) does not give
# the paper's 0.36 M. We use the released file because it is the only sourced one; "tiny-c28" (C=28, which
# matches 0.36 M at x2 only) is the alternative, a guess.
PAPER_TINY_VARIANT = "tiny"

# card entry -> (impl, args at small/paper scale, args at smoke scale)
ENTRIES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    # smoke: 4x4 windows; Small keeps two LIPT blocks (plain + shifted, each of two sub-blocks sharing one
    # attention map), Tiny is narrower and has one block (in the paper it is narrower and shallower too).
    "lipt-tiny": ("lipt", {"variant": PAPER_TINY_VARIANT}, {"variant": "smoke", "channels": 8, "sub_blocks": 2}),
    "lipt-small": ("lipt", {"variant": "small"}, {"variant": "smoke"}),
    # SwinIR at width 18, not its "tiny" 12: at 12 it did not clear bicubic at x4 within the smoke budget
    # (+0.00/+0.09/+0.13 dB over three init seeds), at 18 it does (+0.25/+0.30; x2 +0.34). 18 also brings the
    # LIPT-Small/SwinIR parameter ratio (66k/29k = 2.3 at x4) near the paper's (2.33M/0.88M = 2.65 at x2).
    "swinir-light": ("swinir-light", {"variant": "light"}, {"variant": "tiny", "embed_dim": 18}),
    "elan-light": ("elan-light", {"variant": "light"}, {"variant": "tiny"}),
    "edsr-baseline": ("edsr-baseline", {"variant": "baseline"}, {"variant": "tiny"}),
    "imdn": ("imdn", {"variant": "imdn"}, {"variant": "tiny"}),
    # CARN: one network per SR factor ("carn-single", the official multi_scale=False option), since bench trains
    # each (entry, scale) on its own; the published 1.59M counts the multi-scale model's three upsamplers, which
    # the run records as params_m_paper_convention (baselines/sr/carn.py paper_param_count).
    "carn": ("carn", {"variant": "carn-single"}, {"variant": "tiny"}),
}

# Entries left out of the smoke plan (they run at small and paper scale; tests/recipes/test_rehearsal_lipt_carn.py
# rehearses that path on the CPU), with the measurement that put them out. Their smoke args above stay the
# profile's tiny config.
NOT_AT_SMOKE: dict[str, str] = {
    "carn": "under the smoke budget (400 steps, lr 1e-2, one thread) a tiny CARN stays below bicubic: "
            "psnr_gain_y@bicubic -1.63/-1.57 dB (x2/x4) at 16 channels, 2 blocks of 2 residual blocks, and -1.4 "
            "to -2.8 dB at 16-32 channels with 1-3 blocks of 1-3; with inputs in [0, 255] still -0.6 to -0.1 dB at "
            "x2 (16-32 channels). Only at 48 channels ([0, 255]) does it clear the floor (+0.18/+0.12 dB), with "
            "287k/370k parameters: 4-5x LIPT-Small's smoke config, the reverse of the paper's ratio (1.59M vs "
            "2.33M), so not a fair smoke baseline",
}


# Keys of a spec's ``train`` that are not bench.train.TrainConfig fields.
DATA_KEYS = ("config", "source", "train_set", "train_subset", "train_hr_size", "hr_patch", "lr_patch", "repeat",
             "loss", "augment", "preload", "share_training", "threads", "notes")

SMOKE: dict[str, Any] = {
    "sr_scales": (2, 4),
    "seeds": [0],
    "test_hr_size": 128,
    # Version 2 (issue 23): at version 1 (100 steps of 16x16 LR patches of the full-size photos, lr 4e-3) every
    # model stayed 0.5-3.7 dB BELOW bicubic, so the smoke comparison compared models that had not learned SR.
    # What made them learn within the budget (measured one model at a time, one thread, x2 and x4):
    # * train on the train photos at the test photos' resolution (centre square, MATLAB-bicubic to 128x128
    #   HR, like the test split): the full-size photos are mostly smooth at pixel level, the 128-px test photos
    #   are dense in detail, and a model fit to the former loses to bicubic on the latter (IMDN x2, 300 steps:
    #   -1.00 dB on full-size patches, -0.31 at 128 px, +0.28 with the lr below);
    # * lr 1e-2 (30 warm-up steps, cosine to 1e-5) for every entry: at lower rates the steps are too few (IMDN
    #   x2 at 300 steps: -2.0 dB at 2e-3, +0.28 at 1e-2); at 2e-2 (batch 4) LIPT-Small x2 fell to 27.3 dB and
    #   SwinIR x2 to 30.7, and EDSR x4 swung between +0.23 and -0.19 dB over two init seeds;
    # * grad-norm clipping at 1.0, which keeps lr 1e-2 stable at x4 (EDSR x4: -0.58 dB without, +0.39 with);
    # * many cheap steps: 400 steps of batch 4 on 12x12 LR patches beat 300 steps of batch 8 at the same CPU
    #   time (worst entry +0.06 -> +0.14 dB at x4, +0.08 -> +0.28 at x2; SwinIR and LIPT-Tiny are the slow
    #   learners). A LIPT step is dominated by its many small ops, so halving the batch costs ~25% less, not 50%.
    # Measured: the whole `bench reproduce lipt` (12 runs, evaluation included) takes 119 s of one thread's CPU
    # time (192 s wall on a shared 2-core box at load average 5); every entry clears bicubic at x2 and x4.
    # The budget is the same for every entry (steps, batch, patch, schedule); only the tiny widths/depths differ.
    "train": {"config": "smoke", "train_set": "photos/train at 128x128 HR (as the test split), MATLAB-bicubic LR",
              "train_hr_size": 128, "lr_patch": 12, "repeat": 100, "batch_size": 4, "steps": 400,
              "optimizer": "adam", "lr": 1e-2, "warmup_steps": 30, "schedule": "cosine", "min_lr": 1e-5,
              "grad_clip": 1.0, "loss": "l1", "augment": "hflip+vflip+transpose",
              "preload": True, "num_workers": 0, "ckpt_every": 100, "log_every": 10, "share_training": False,
              # One intra-op thread: the tensors are tiny, so a second thread gains little on an idle 2-core
              # machine and costs 10-30x when the cores are shared (measured: 0.7 s vs 11.5 s per LIPT step
              # on a loaded 2-core box); it also keeps smoke numbers independent of the core count.
              "threads": 1},
}

# The sanity floor (bench/sanity.py, issue 23): a model must beat MATLAB-bicubic upscaling of its own LR inputs
# on the same images and crop. Bicubic is what every SR paper's tables start from; a learned SR model that
# does not beat it has not learned SR, whatever it scores against another model.
SANITY_METRIC = "psnr_gain_y@bicubic"
SANITY_FLOOR_DB = 0.0
SANITY_NOTE = ("strictly above MATLAB bicubic: an SR network that does not beat the interpolation it is trained "
               "to improve on has not learned SR; no margin, since the tiny smoke models' gains are a few "
               "tenths of a dB")


def _epoch_schedule(iters_per_epoch: int, epochs: int, decay_epochs: list[int]) -> dict[str, Any]:
    return {"steps": iters_per_epoch * epochs, "schedule": "step",
            "milestones": [e * iters_per_epoch for e in decay_epochs]}


# preload False at paper scale: each of N DDP ranks would otherwise hold DIV2K (~9 GB) in memory; the PNGs are
# decoded in 8 DataLoader workers instead (crops are then deterministic for a fresh run, not across a resume).
_COMMON = {"train_set": "div2k/train (800 images, LR files)", "optimizer": "adam", "loss": "l1",
           "augment": "hflip+vflip+transpose", "repeat": 1, "preload": False, "num_workers": 8,
           "ckpt_every": 5000, "log_every": 100, "share_training": True}
# DIV2K-trained schedules, one per entry. Iterations per epoch = 800 * data_repeat / batch.
PAPER_TRAIN: dict[str, dict[str, Any]] = {
    "lipt-small": {**_COMMON, "config": "lipt-small", "source": "Lucien66/LIPT config/lightx2.yml [R]",
                   "hr_patch": 512, "batch_size": 32, "repeat": 80, "lr": 2e-4, "gamma": 0.5,
                   **_epoch_schedule(2000, 1000, [250, 400, 450, 475, 500]),
                   # only x2 is released: the same HR patch at x3/x4 is our choice [I]
                   "notes": "x3/x4 configs not released: same schedule and HR patch (LR 512 // s) [I]"},
    "lipt-tiny": {**_COMMON, "config": "lipt-tiny", "source": "Lucien66/LIPT config/tinyx2.yml [R]",
                  "hr_patch": 512, "batch_size": 64, "repeat": 80, "lr": 2e-4, "gamma": 0.5,
                  **_epoch_schedule(1000, 1000, [250, 400, 450, 475, 500]),
                  "notes": "x3/x4 configs not released: same schedule and HR patch (LR 512 // s) [I]"},
    "elan-light": {**_COMMON, "config": "elan-light", "source": "xindongzhang/ELAN configs/elan_light_x4.yml [R]",
                   "hr_patch": 256, "batch_size": 64, "repeat": 80, "lr": 2e-4, "gamma": 0.5,
                   **_epoch_schedule(1000, 1000, [250, 400, 450, 475, 500])},
    "swinir-light": {**_COMMON, "config": "swinir-light",
                     "source": "cszn/KAIR options/swinir/train_swinir_sr_lightweight.json [R]",
                     "lr_patch": 64, "batch_size": 64, "lr": 2e-4, "gamma": 0.5, "ema_decay": 0.999,
                     "steps": 500_000, "schedule": "step", "milestones": [250_000, 400_000, 450_000, 475_000],
                     "notes": "official x3/x4 are fine-tuned from x2 with halved lr/milestones; here each scale "
                              "trains from scratch"},
    "edsr-baseline": {**_COMMON, "config": "edsr-baseline",
                      "source": "sanghyun-son/EDSR-PyTorch option.py + demo.sh [R]",
                      "lr_patch": 48, "batch_size": 16, "repeat": 20, "lr": 1e-4, "gamma": 0.5,
                      **_epoch_schedule(1000, 300, [200]),
                      "notes": "official x3/x4 start from the x2 model; here each scale trains from scratch"},
    "imdn": {**_COMMON, "config": "imdn", "source": "Zheng222/IMDN train_IMDN.py + data/DIV2K.py [R]",
             "hr_patch": 192, "batch_size": 16, "repeat": 20, "lr": 2e-4, "gamma": 0.5,
             **_epoch_schedule(1000, 1000, [200, 400, 600, 800])},
    "carn": {**_COMMON, "config": "carn", "source": "nmhkahn/CARN-pytorch README (train.py flags) + solver.py [R]",
             "lr_patch": 64, "batch_size": 64, "lr": 1e-4, "gamma": 0.5, "grad_clip": 10.0,
             "steps": 600_000, "schedule": "step", "milestones": [400_000],
             "notes": "official: one multi-scale network, a random x2/x3/x4 per batch (--scale 0); here each "
                      "scale trains its own single-scale network from scratch"},
}
PAPER_SCALES = (2, 3, 4)

SMALL: dict[str, Any] = {
    "sr_scales": (2, 4),
    "steps": 2000,
    # first N DIV2K train images, in memory; LR patch 48 and batch 16 for every model (the paper patches of
    # 256/512 HR would not fit 12 trainings in 20 GPU minutes)
    "train_subset": 100,
    "lr_patch": 48,
    "batch_size": 16,
}


def _small_train(entry: str) -> dict[str, Any]:
    paper = PAPER_TRAIN[entry]
    ratio = SMALL["steps"] / paper["steps"]
    train = {k: v for k, v in paper.items() if k not in ("hr_patch", "notes")}
    train.update(config=f"{paper['config']}-short", steps=SMALL["steps"], train_subset=SMALL["train_subset"],
                 lr_patch=SMALL["lr_patch"], batch_size=SMALL["batch_size"], ckpt_every=500, log_every=50,
                 preload=True,
                 milestones=[max(1, round(m * ratio)) for m in paper["milestones"]],
                 notes="the paper schedule's lr and milestone fractions, 2,000 steps, DIV2K subset")
    return train


# ---------------------------------------------------------------------------------------------------- plan
def _stands_for() -> dict[str, Any]:
    return {"dataset": list(BENCHMARKS), "metrics": {m: m for m in METRICS}}


def _smoke_stands_for() -> dict[str, Any]:
    # Why this is honest: the claims' setting is only the SR factor, and a smoke run at x2 (x4) is an x2 (x4)
    # SR run under the paper's own protocol: MATLAB-bicubic LR, psnr_y@matlab with crop = scale, single pass.
    # What differs (tiny widths, 400 steps, embedded photos) is what the smoke badge already declares, and it
    # is the same for every entry. x3 is not run at smoke, so nothing stands for the x3 claim.
    return {**_stands_for(),
            "settings": [{"paper": {"sr_scale": s}, "ours": {"sr_scale": s}} for s in SMOKE["sr_scales"]]}


def plan(card: Any, scale: str, data_root: Path | None) -> list[RunSpec]:
    if scale == "smoke":
        return [RunSpec(paper=PAPER, entry=entry, impl=impl, args=dict(smoke_args), dataset="photos", split="test",
                        stands_for=_smoke_stands_for(), metrics=list(METRICS), scale="smoke",
                        seeds=list(SMOKE["seeds"]),
                        train=dict(SMOKE["train"]), sampler=_sampler(SMOKE["test_hr_size"]),
                        setting={"sr_scale": s}, recipe_version=VERSION)
                for entry, (impl, _, smoke_args) in ENTRIES.items() if entry not in NOT_AT_SMOKE
                for s in SMOKE["sr_scales"]]
    if scale in ("small", "paper"):
        sr_scales = SMALL["sr_scales"] if scale == "small" else PAPER_SCALES
        specs = []
        for entry, (impl, args, _) in ENTRIES.items():
            train = _small_train(entry) if scale == "small" else dict(PAPER_TRAIN[entry])
            for s in sr_scales:
                for dataset in BENCHMARKS:
                    specs.append(RunSpec(paper=PAPER, entry=entry, impl=impl, args=dict(args), dataset=dataset,
                                         split="test", metrics=list(METRICS), scale=scale, seeds=[0], train=train,
                                         sampler=_sampler(None), setting={"sr_scale": s},
                                         recipe_version=VERSION))
        return specs
    raise BenchError(f"unknown scale {scale!r} for lipt; use smoke, small or paper")


def _sampler(test_hr_size: int | None) -> dict[str, Any]:
    # self_ensemble False: LIPT and the baselines' table numbers are single-pass
    return {"self_ensemble": False, "forward": "whole image, the model's own reflect padding",
            "test_hr_size": test_hr_size, "eval_chunk": 8}


# ----------------------------------------------------------------------------------------------- models
def build_model(impl: str, args: dict[str, Any], sr_scale: int):
    """The trainable network of ``impl`` for x``sr_scale`` (LIPT in its training form)."""
    if impl not in IMPLS:
        raise BenchError(f"unknown lipt implementation {impl!r}; known: {', '.join(IMPLS)}")
    return load_target(IMPLS[impl])(scale=sr_scale, **args)


def paper_param_count(impl: str, model: Any) -> float | None:
    """Parameters as the model's own paper counts them, where that convention differs (SwinIR)."""
    module = importlib.import_module(IMPLS[impl].split(":")[0])
    fn = getattr(module, "paper_param_count", None)
    return fn(model) / 1e6 if fn else None


# ------------------------------------------------------------------------------------------------- data
def _open(name: str, split: str, ctx: RunContext, **kwargs: Any):
    from bench.data.formats import open_dataset

    return open_dataset(name, split, ctx.data_root, **kwargs)


@cache
def _smoke_train_source(s: int, hr_size: int | None):
    """The train photos (``hr_size`` x ``hr_size`` like the test split, or full size when None) with their
    MATLAB-bicubic LR (about a second per scale: built once)."""
    from bench.data.formats import open_dataset

    return open_dataset("photos", "train", None, scale=s, size=hr_size)


def _lr_patch(train: dict[str, Any], s: int) -> int:
    if ("lr_patch" in train) == ("hr_patch" in train):
        raise BenchError("a lipt training config needs exactly one of lr_patch and hr_patch")
    return int(train["lr_patch"]) if "lr_patch" in train else int(train["hr_patch"]) // s


def training_set(spec: RunSpec, ctx: RunContext, s: int):
    """(SRPatchDataset, fingerprint of the images it reads)."""
    from baselines.sr.train_eval import SRPatchDataset

    train = spec.train
    source = (_smoke_train_source(s, train.get("train_hr_size")) if spec.scale == "smoke"
              else _open("div2k", "train", ctx, scale=s))
    fingerprint = source.fingerprint()
    if train.get("train_subset"):
        source = FirstN(source, train["train_subset"])
        fingerprint += f"[:{source.n}]"
    data = SRPatchDataset(source, s, _lr_patch(train, s), repeat=int(train.get("repeat", 1)),
                          augment=bool(train.get("augment")), preload=bool(train.get("preload", True)))
    return data, fingerprint


def evaluation_set(spec: RunSpec, ctx: RunContext, s: int):
    if spec.scale == "smoke":
        test = _open("photos", spec.split, ctx, size=spec.sampler.get("test_hr_size"), scale=s)
    else:
        test = _open(spec.dataset, spec.split, ctx, scale=s)
    n = spec.capped("max_samples", len(test))  # a rehearsal evaluates only its first few images
    return test if n == len(test) else FirstN(test, n)


# --------------------------------------------------------------------------------------------- training
def train_config(spec: RunSpec, seed: int, ctx: RunContext):
    from bench.train import TrainConfig

    fields = {k: v for k, v in spec.train.items() if k not in DATA_KEYS}
    fields.setdefault("precision", spec.precision)  # the official codes train in fp32
    fields["steps"] = spec.capped("max_steps", fields["steps"])  # a rehearsal trains a few steps only
    if spec.is_rehearsal:  # on a CPU rehearsal 8 DataLoader workers only fight for the cores; 2 keep the path
        fields["num_workers"] = min(int(fields.get("num_workers", 0)), 2)
    return TrainConfig.from_dict({**fields, "seed": seed, "device": ctx.device,
                                  "progress": None if ctx.show_progress else False})


def train_dir(spec: RunSpec, seed: int, ctx: RunContext) -> Path:
    """Checkpoints: the run's own work dir, or (several test sets, one training) a shared dir keyed by what
    fixes the training: implementation, args, scale, schedule, recipe version and seed."""
    if not spec.train.get("share_training"):
        return ctx.work_dir(seed) / "train"
    import hashlib

    key = canonical_json({"impl": spec.impl, "args": spec.args, "sr_scale": spec.setting["sr_scale"],
                          "train": spec.train, "scale": spec.scale, "precision": spec.precision,
                          "version": VERSION, "world_size": spec.world_size,
                          # a rehearsal's few steps must never be resumed by a real run (real keys unchanged)
                          **({"rehearsal": spec.rehearsal} if spec.is_rehearsal else {})})
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return ctx.handle.dir.parent / "_shared" / f"train-{spec.entry}-x{spec.setting['sr_scale']}-{digest}" / \
        f"seed{seed}"


def trained_model(spec: RunSpec, seed: int, ctx: RunContext):
    """Train (or resume, or load the finished) model; returns (model, facts for the record)."""
    import torch

    from baselines.sr.train_eval import train_sr
    from bench.distributed import derive_seed
    from bench.train import load_for_eval
    from bench.train.checkpoint import step_path

    s = int(spec.setting["sr_scale"])
    torch.manual_seed(derive_seed(seed, spec.entry, "init", s))
    model = build_model(spec.impl, spec.args, s)
    cfg = train_config(spec, seed, ctx)
    out = train_dir(spec, seed, ctx)
    final = step_path(out / "checkpoints", cfg.steps)
    if spec.scale != "smoke":  # fail in one line before hours of training, not after
        from bench.data.cards import load_dataset_card, require_layout

        if not final.exists():
            require_layout(load_dataset_card("div2k"), ctx.data_root, "train")
        require_layout(load_dataset_card(spec.dataset), ctx.data_root, spec.split)
    t0, c0 = time.perf_counter(), time.process_time()
    facts: dict[str, Any] = {"train_dir": str(out), "train_steps": cfg.steps}
    if final.exists():  # finished earlier (another test set of the same training, or a resumed run)
        load_for_eval(model, final)
        ctx.log(f"  {spec.entry} x{s}: reusing the finished training {final}")
    else:
        data, fingerprint = training_set(spec, ctx, s)
        facts["train_dataset_fingerprint"] = fingerprint
        ctx.log(f"  {spec.entry} x{s}: training {cfg.steps} steps on {len(data.source)} images")
        result = train_sr(model, data, cfg, out, resume=True)
        model = result.ema_model
        if result.last_log:
            facts["train_last_loss"] = result.last_log.get("loss")
    facts["train_wall_s"] = time.perf_counter() - t0
    # CPU time of this process (all its threads): what the smoke budget is stated in, unlike wall time on a
    # shared machine
    facts["train_cpu_s"] = time.process_time() - c0
    facts["checkpoint"] = str(final)
    return model, facts


# ------------------------------------------------------------------------------------------------- seeds
def run_seed(spec: RunSpec, seed: int, ctx: RunContext) -> SeedResult:
    from bench.train.progress import reporting  # here: importing bench.train imports torch

    # reporting: training and sampling phases print milestone lines through ctx.log when not on a terminal
    with torch_threads(spec.train.get("threads")), reporting(ctx.log, ctx.show_progress):
        return _run_seed(spec, seed, ctx)


def _run_seed(spec: RunSpec, seed: int, ctx: RunContext) -> SeedResult:
    from baselines.sr.train_eval import count_macs_meta, evaluate_sr, inference_model
    from bench import distributed as dist
    from bench.data.base import sha256_file
    from bench.profile import count_params

    s = int(spec.setting["sr_scale"])
    model, facts = trained_model(spec, seed, ctx)
    if not dist.is_main_process():  # rank 0 evaluates and writes; the others only trained
        return SeedResult(metrics=[])
    net = inference_model(model.to(ctx.device)).to(ctx.device)
    deployed = net is not model
    test = evaluation_set(spec, ctx, s)
    t0, c0 = time.perf_counter(), time.process_time()
    ev = evaluate_sr(net, test, s, ctx.handle, seed, f"{spec.dataset}-x{s}", device=ctx.device,
                     self_ensemble=bool(spec.sampler.get("self_ensemble", False)),
                     chunk=int(spec.sampler.get("eval_chunk", 8)), log=ctx.log)
    eval_wall, eval_cpu = time.perf_counter() - t0, time.process_time() - c0
    extra = {
        "self_ensemble": bool(spec.sampler.get("self_ensemble", False)),
        "crop_border": s,
        "rounding": "SR output quantised to uint8 (x*255/rgb_range, clip, round half to even; BasicSR "
                    "tensor2img), not LIPT train.py's clamp-only",
        "forward": spec.sampler.get("forward"),
        "lr_source": ("MATLAB-bicubic LR made by bench.data.imresize (photo_pairs)" if spec.scale == "smoke"
                      else "the dataset's LR_bicubic files (MATLAB bicubic)"),
        "model_rgb_range": float(getattr(net, "rgb_range", 1.0)),
        "deployed": deployed,
    }
    setting = {"sr_scale": s}
    metrics = [metric_record(d, ev["metrics"][d], ev["n"], setting, {**ev["protocol"][d], **extra})
               for d in METRICS]
    metrics.append(sanity_metric(ev, test, s, extra))
    cost: dict[str, Any] = {
        "params_m": count_params(net) / 1e6,
        "gmacs": ev["gmacs_mean"],
        "gmacs_at": "mean over the test images at their own LR sizes",
        "nfe": None,
        "train_steps": facts["train_steps"],
        "train_wall_s": facts["train_wall_s"],
        "eval_wall_s": eval_wall,
        "train_cpu_s": facts["train_cpu_s"],
        "eval_cpu_s": eval_cpu,
    }
    if deployed:
        cost["params_m_training"] = count_params(model) / 1e6
    paper_count = paper_param_count(spec.impl, net)
    if paper_count is not None:
        cost["params_m_paper_convention"] = paper_count
    if spec.scale != "smoke":  # the 1280x720-HR convention of the paper's FLOPs column (meta device: cheap)
        lr_hw = (math.ceil(720 / s), math.ceil(1280 / s))
        cost["gmacs_720p"] = count_macs_meta(net, (1, 3, *lr_hw)) / 1e9
        cost["gmacs_720p_lr_hw"] = list(lr_hw)
    checkpoint = Path(facts["checkpoint"])
    provenance: dict[str, Any] = {
        "dataset_fingerprint": test.fingerprint(),
        "checkpoint": facts["checkpoint"],
        "checkpoint_sha256": sha256_file(checkpoint) if checkpoint.exists() else None,
        "train_dir": facts["train_dir"],
        "model": {"impl": spec.impl, "args": spec.args, "sr_scale": s, "deployed": deployed},
    }
    for key in ("train_dataset_fingerprint", "train_last_loss"):
        if key in facts:
            provenance[key] = facts[key]
    return SeedResult(metrics=metrics, cost=cost, provenance=provenance)


def sanity_metric(ev: dict[str, Any], test: Any, s: int, protocol: dict[str, Any]) -> dict[str, Any]:
    """psnr_gain_y@bicubic: the model's psnr_y@matlab minus MATLAB bicubic's on the same LR inputs and crop."""
    from baselines.sr.train_eval import bicubic_reference
    from bench.sanity import sanity_record

    bicubic = bicubic_reference(test, s)
    if bicubic["n"] != ev["n"]:
        raise BenchError(f"sanity floor: bicubic saw {bicubic['n']} images, the model {ev['n']}")
    gain = ev["metrics"]["psnr_y@matlab"] - bicubic["value"]
    return sanity_record(SANITY_METRIC, gain, ev["n"], floor=SANITY_FLOOR_DB,
                         trivial="MATLAB-bicubic upscaling of the same LR inputs (bench.data.imresize), "
                                 "psnr_y@matlab, crop = scale",
                         trivial_value=bicubic["value"], note=SANITY_NOTE, setting={"sr_scale": s},
                         protocol={"model_psnr_y": ev["metrics"]["psnr_y@matlab"],
                                   "bicubic_psnr_y": bicubic["value"], "crop_border": s,
                                   "lr_source": protocol.get("lr_source"),
                                   "self_ensemble": protocol.get("self_ensemble")})


# ----------------------------------------------------------------------------------------------- profile
def profile(scale: str = "smoke", device: str = "cpu", repeats: int = 20, entries: list[str] | None = None,
            sr_scales: tuple[int, ...] = (4,), measure_latency: bool | None = None,
            progress: Any = None) -> list[dict[str, Any]]:
    """Params, MACs, latency (median, IQR) and peak memory of every entry's deployed network.

    paper/small: the paper configs, LR 320x180 at x4 (1280x720 HR), as the latency column's usual input.
    smoke: the tiny configs on a 64x64 LR input. Latency per bench.profile's policy (on CPU only at smoke scale
    unless measure_latency: a SwinIR-light forward at 320x180 takes seconds); on a GPU fp32 and fp16 rows.
    """
    import copy

    import torch

    from baselines.sr.train_eval import count_macs_meta, inference_model
    from bench.profile import ProfileJob, count_params, latency_plan, profiled_entries, run_profile
    from bench.provenance import cpu_model

    default = [e for e in ENTRIES if scale != "smoke" or e not in NOT_AT_SMOKE]  # the entries each scale runs
    names = profiled_entries(PAPER, scale, entries, list(ENTRIES), default)
    plan = latency_plan(scale, device, repeats, measure_latency)
    device = plan.device
    on_gpu = device.startswith("cuda")
    if on_gpu:
        torch.backends.cudnn.benchmark = True
    device_name = torch.cuda.get_device_name(torch.device(device)) if on_gpu else cpu_model()

    def job(entry: str, s: int, precision: str) -> ProfileJob:
        def measure() -> tuple[dict[str, Any], Any]:
            impl, paper_args, smoke_args = ENTRIES[entry]
            args = smoke_args if scale == "smoke" else paper_args
            torch.manual_seed(0)
            model = inference_model(build_model(impl, args, s))
            lr_hw = (64, 64) if scale == "smoke" else (math.ceil(720 / s), math.ceil(1280 / s))
            shape = (1, 3, *lr_hw)
            dtype = torch.float16 if precision == "fp16" else torch.float32
            net = copy.deepcopy(model).to(device=device, dtype=dtype)
            x = torch.rand(shape, device=device, dtype=dtype) * float(getattr(model, "rgb_range", 1.0))
            finite, peak = None, None
            if plan.measure:  # one forward: fp16 can overflow (e.g. unscaled attention logits)
                with torch.inference_mode():
                    finite = bool(torch.isfinite(net(x)).all())
                    if on_gpu:  # after a first call, so that cuDNN autotuning workspaces are not counted
                        torch.cuda.synchronize()
                        torch.cuda.reset_peak_memory_stats(device)
                        net(x)
                        torch.cuda.synchronize()
                        peak = torch.cuda.max_memory_allocated(device) / 2**20

            def forward() -> None:
                with torch.inference_mode():
                    net(x)

            return ({"entry": entry, "impl": impl, "variant": args.get("variant"), "sr_scale": s,
                     "input": f"{lr_hw[1]}x{lr_hw[0]}", "output": f"{lr_hw[1] * s}x{lr_hw[0] * s}",
                     "params_m": count_params(model) / 1e6, "gmacs": count_macs_meta(model, shape) / 1e9,
                     "nfe": None, "precision": precision, "peak_mem_mb": peak, "output_finite": finite,
                     "device_name": device_name}, forward)

        label = entry + (f" x{s}" if len(sr_scales) > 1 else "") + (f" {precision}" if on_gpu else "")
        return ProfileJob(label, measure)

    precisions = ("fp32", "fp16") if on_gpu else ("fp32",)
    return run_profile([job(e, s, p) for e in names for s in sr_scales for p in precisions], plan, progress)
