"""`bench reproduce mipkd` and `bench profile mipkd`: MiPKD against the SR distillation baselines.

Every student entry (the student alone, Logits-KD, FitNet, AT, FAKD, MiPKD) trains the same student
architecture from the same initialisation with the same data, steps, batch, optimiser and schedule, through
one loop (baselines/sr_kd/distill.py over bench.train); only the loss differs. The teacher is frozen and
shared; only the student is evaluated (``psnr_y@matlab`` / ``ssim_y@matlab``, crop = scale, output rounded to
uint8, single pass: ``self_ensemble`` is recorded as a setting of the protocol).

Scales
* smoke: one tiny teacher/student pair of the EDSR family at x4 (teacher EDSR c32b4, student c16b2: width and
  depth halved, like c256b32 -> c64b16), on the embedded ``photos`` (12 train photos at 128x128 HR with
  MATLAB-bicubic LR, 8 test photos). The teacher is trained once per store (``<store>/mipkd/_shared/``) and
  evaluated as its own entry; each student entry then trains 400 steps. Records ``psnr_gain_y@bicubic`` with
  its floor 0 dB per seed.
* small: the paper pairs (EDSR c256b32 -> c64b16, RCAN 10x20 -> 10x6, SwinIR-M -> c60s24) at x4, teachers
  loaded from the official EDSR-PyTorch/RCAN/SwinIR checkpoints (assets, methods/mipkd/assets.yaml), students trained 1,000 steps on the first 100 DIV2K images, tested
  on the five benchmark sets.
* paper: the DUKD protocol (papers-restoration.md 3.4): x2/x3/x4, 250k iterations, Adam 1e-4 (0.9, 0.99),
  milestones 100k/200k (gamma 0.1), batch 16, LR patch 48, EMA 0.999, DIV2K 800, the five benchmark sets.
  One student training per (pair, entry, scale, seed) serves the five test sets (``_shared``).
"""
from __future__ import annotations

import hashlib
import time
from functools import cache
from pathlib import Path
from typing import Any

from bench.data.base import FirstN
from bench.recipe import RunContext, SeedResult, metric_record, torch_threads
from bench.registry import BenchError
from bench.spec import RunSpec, canonical_json

VERSION = 1
PAPER = "mipkd"
METRICS = ["psnr_y@matlab", "ssim_y@matlab"]
BENCHMARKS = ["set5", "set14", "b100", "urban100", "manga109"]

# Networks by name: (builder target, its args). The names are the claims' teacher/student settings.
NETWORKS: dict[str, tuple[str, dict[str, Any]]] = {
    "edsr-c256b32": ("baselines.sr.edsr_baseline:build",
                     {"variant": "baseline", "n_feats": 256, "n_resblocks": 32, "res_scale": 0.1}),
    "edsr-c64b16": ("baselines.sr.edsr_baseline:build", {"variant": "baseline"}),
    "rcan-c64g10b20": ("baselines.sr.rcan:build", {"variant": "rcan"}),
    "rcan-c64g10b6": ("baselines.sr.rcan:build", {"variant": "rcan-student"}),
    "swinir-c180s36": ("baselines.sr.swinir_light:build", {"variant": "classical-m"}),
    "swinir-c60s24": ("baselines.sr.swinir_light:build", {"variant": "kd-student"}),
    # smoke stand-ins
    "edsr-c32b4": ("baselines.sr.edsr_baseline:build", {"variant": "tiny", "n_feats": 32, "n_resblocks": 4}),
    "edsr-c16b2": ("baselines.sr.edsr_baseline:build", {"variant": "tiny"}),
}

# Teacher-student pairs (the issue's; the DUKD configs use an EDSR c64b32 student, CSD one of width 0.25).
PAIRS: dict[str, tuple[str, str]] = {"edsr": ("edsr-c256b32", "edsr-c64b16"),
                                     "rcan": ("rcan-c64g10b20", "rcan-c64g10b6"),
                                     "swinir": ("swinir-c180s36", "swinir-c60s24")}
SMOKE_PAIR = ("edsr-c32b4", "edsr-c16b2")

# The official teacher checkpoints (methods/mipkd/assets.yaml, resolved in $BENCH_ASSETS), by network and scale.
TEACHER_ASSETS: dict[str, str] = {"edsr-c256b32": "mipkd-teacher-edsr-x{s}", "rcan-c64g10b20": "mipkd-teacher-rcan-x{s}",
                                  "swinir-c180s36": "mipkd-teacher-swinir-x{s}"}

STUDENT_ENTRIES = ("student", "logits-kd", "fitnet", "at", "fakd", "mipkd")
KD_OF = {"student": "none", "logits-kd": "logits", "fitnet": "fitnet", "at": "at", "fakd": "fakd"}
# SR-KD weights of the baselines (DUKD's configs [R]: pixel 1, logits 1, FAKD feature 10; FitNet and AT use the
# same feature weight, our choice [I]).
KD_WEIGHTS = {"pixel_weight": 1.0, "logits_weight": 1.0, "feature_weight": 10.0}

SMOKE_TRAIN: dict[str, Any] = {
    "config": "smoke", "train_set": "photos/train at 128x128 HR (as the test split), MATLAB-bicubic LR",
    "train_hr_size": 128, "lr_patch": 12, "repeat": 100, "batch_size": 4, "steps": 400, "optimizer": "adam",
    "lr": 1e-2, "warmup_steps": 30, "schedule": "cosine", "min_lr": 1e-5, "grad_clip": 1.0,
    "augment": "hflip+vflip+transpose", "preload": True, "num_workers": 0, "ckpt_every": 200, "log_every": 20,
    "threads": 1, "notes": "lipt's smoke schedule (measured there to make tiny SR nets beat bicubic)"}
# The teacher must be the stronger network or distillation means nothing. Measured (one thread, x4, test photos,
# psnr_gain_y@bicubic): c32b4 at the students' schedule (lr 1e-2) for 800 steps +0.31 dB, BELOW the c16b2
# student's +0.37; lr 5e-3 +0.31, 1e-3 +0.31, 2e-3 +0.67 (800 steps) and +0.96 (1600 steps, 23 s of CPU).
SMOKE_TEACHER = {"steps": 1600, "lr": 2e-3}
SMOKE_SEEDS = [0, 1, 2]
# smoke: n_stages 2 (the student has 2 blocks), latent width 16 (the student's); the rest the card's knobs
SMOKE_MIPKD = {"n_stages": 2, "latent_dim": 16}
SMOKE_KD = {"n_stages": 2}

PAPER_TRAIN: dict[str, Any] = {
    "config": "dukd", "source": "yun224/DUKD options (EDSR/RCAN x2-x4) [R]; MiPKD's own schedule unknown",
    "train_set": "div2k/train (800 images, LR files)", "lr_patch": 48, "batch_size": 16, "repeat": 100,
    "steps": 250_000, "optimizer": "adam", "lr": 1e-4, "betas": [0.9, 0.99], "schedule": "step",
    "milestones": [100_000, 200_000], "gamma": 0.1, "ema_decay": 0.999, "augment": "hflip+vflip+transpose",
    "preload": False, "num_workers": 8, "ckpt_every": 5000, "log_every": 100, "share_training": True}
PAPER_SCALES = (2, 3, 4)
# 1,000 steps: 18 student trainings (3 pairs x 6 entries) with a teacher forward per step, sized by MACs to fit
# the 20-minute single-GPU budget (an EDSR-pair MiPKD step is ~10 TFLOP at batch 16 of 48x48); not yet timed on
# a GPU.
SMALL = {"steps": 1000, "train_subset": 100, "sr_scales": (4,)}

SANITY_METRIC = "psnr_gain_y@bicubic"
SANITY_NOTE = ("strictly above MATLAB bicubic: an SR student (or teacher) that does not beat the interpolation "
               "it is trained to improve on has not learned SR, whatever it scores against the other students")

# Keys of a spec's ``train`` that are not bench.train.TrainConfig fields.
DATA_KEYS = ("config", "source", "train_set", "train_subset", "train_hr_size", "lr_patch", "repeat", "augment",
             "preload", "share_training", "threads", "notes", "teacher")


# --------------------------------------------------------------------------------------------------- plan
def _card_args(card: Any, entry: str) -> dict[str, Any]:
    for e in card.entries:
        if e.id == entry:
            return dict(e.args)
    raise BenchError(f"mipkd card has no entry {entry!r}")


def _entry_args(card: Any, entry: str, smoke: bool) -> dict[str, Any]:
    if entry == "mipkd":  # the card's knobs (feature_mixer, block_mixer, weights, probabilities, widths)
        return {**_card_args(card, "mipkd"), **(SMOKE_MIPKD if smoke else {})}
    if entry == "teacher":
        return {}
    return {"kd": KD_OF[entry], **KD_WEIGHTS, **(SMOKE_KD if smoke else {"n_stages": 3})}


def _setting(s: int, teacher: str, student: str) -> dict[str, Any]:
    return {"sr_scale": s, "teacher": teacher, "student": student}


def _sampler(test_hr_size: int | None) -> dict[str, Any]:
    # single pass: DUKD's EDSR configs use the x8 self-ensemble, its RCAN/SwinIR ones do not; recorded
    return {"self_ensemble": False, "forward": "whole image", "test_hr_size": test_hr_size, "eval_chunk": 8}


def plan(card: Any, scale: str, data_root: Path | None) -> list[RunSpec]:
    entries = ("teacher", *STUDENT_ENTRIES)
    if scale == "smoke":
        teacher, student = SMOKE_PAIR
        # Honest stand-in: the smoke pair halves width and depth like the EDSR pair (c256b32 -> c64b16) and runs
        # the same x4 protocol; tiny nets, 400 steps and the photos are what the smoke badge declares.
        stands = {"dataset": list(BENCHMARKS), "metrics": {m: m for m in METRICS},
                  "settings": [{"paper": _setting(4, *PAIRS["edsr"]), "ours": _setting(4, teacher, student)}]}
        train = {**SMOKE_TRAIN, "teacher": dict(SMOKE_TEACHER)}
        return [RunSpec(paper=PAPER, entry=e, impl=_impl(e), args=_entry_args(card, e, True), dataset="photos",
                        split="test", stands_for=stands, metrics=list(METRICS), scale="smoke",
                        seeds=[0] if e == "teacher" else list(SMOKE_SEEDS), train=dict(train),
                        sampler=_sampler(128), setting=_setting(4, teacher, student), recipe_version=VERSION)
                for e in entries]
    if scale in ("small", "paper"):
        scales = SMALL["sr_scales"] if scale == "small" else PAPER_SCALES
        train = dict(PAPER_TRAIN)
        if scale == "small":
            train.update(config="dukd-short", steps=SMALL["steps"], train_subset=SMALL["train_subset"],
                         milestones=[400, 800], preload=True, ckpt_every=500, log_every=50,
                         notes="DUKD's lr and milestone fractions, 1,000 steps, the first 100 DIV2K images")
        return [RunSpec(paper=PAPER, entry=e, impl=_impl(e), args=_entry_args(card, e, False), dataset=d,
                        split="test", metrics=list(METRICS), scale=scale, seeds=[0], train=dict(train),
                        sampler=_sampler(None), setting=_setting(s, *pair), recipe_version=VERSION)
                for pair in PAIRS.values() for e in entries for s in scales for d in BENCHMARKS]
    raise BenchError(f"unknown scale {scale!r} for mipkd; use smoke, small or paper")


def _impl(entry: str) -> str:
    return {"teacher": "sr-teacher", "mipkd": "mipkd"}.get(entry, "sr-kd")


# ------------------------------------------------------------------------------------------------- models
def build_network(name: str, sr_scale: int):
    from bench.registry import load_target

    if name not in NETWORKS:
        raise BenchError(f"unknown mipkd network {name!r}; known: {', '.join(NETWORKS)}")
    target, args = NETWORKS[name]
    return load_target(target)(scale=sr_scale, **args)


def build_distiller(entry: str, args: dict[str, Any], student, teacher):
    if entry == "mipkd":
        from methods.mipkd.mixers import MiPKD, MiPKDConfig

        return MiPKD(student, teacher, MiPKDConfig.from_args(args))
    from baselines.sr_kd.distill import Distiller

    return Distiller(student, teacher if args["kd"] != "none" else None, **args)


# --------------------------------------------------------------------------------------------------- data
@cache
def _smoke_train_source(s: int, hr_size: int):
    from bench.data.formats import open_dataset

    return open_dataset("photos", "train", None, scale=s, size=hr_size)


def training_set(spec: RunSpec, ctx: RunContext, s: int):
    from baselines.sr.train_eval import SRPatchDataset
    from bench.data.formats import open_dataset

    train = spec.train
    source = (_smoke_train_source(s, train["train_hr_size"]) if spec.scale == "smoke"
              else open_dataset("div2k", "train", ctx.data_root, scale=s))
    if train.get("train_subset"):
        source = FirstN(source, train["train_subset"])
    data = SRPatchDataset(source, s, int(train["lr_patch"]), repeat=int(train.get("repeat", 1)),
                          augment=bool(train.get("augment")), preload=bool(train.get("preload", True)))
    return data, source.fingerprint()


def evaluation_set(spec: RunSpec, ctx: RunContext, s: int):
    from bench.data.formats import open_dataset

    if spec.scale == "smoke":
        test = open_dataset("photos", spec.split, None, size=spec.sampler.get("test_hr_size"), scale=s)
    else:
        test = open_dataset(spec.dataset, spec.split, ctx.data_root, scale=s)
    n = spec.capped("max_samples", len(test))
    return test if n == len(test) else FirstN(test, n)


# ----------------------------------------------------------------------------------------------- training
def train_config(spec: RunSpec, seed: int, ctx: RunContext, overrides: dict[str, Any] | None = None):
    from bench.train import TrainConfig

    fields = {k: v for k, v in spec.train.items() if k not in DATA_KEYS}
    fields.update(overrides or {})
    fields["steps"] = spec.capped("max_steps", int(fields["steps"]))
    if spec.is_rehearsal:
        fields["num_workers"] = min(int(fields.get("num_workers", 0)), 2)
    fields.setdefault("precision", spec.precision)
    return TrainConfig.from_dict({**fields, "seed": seed, "device": ctx.device,
                                  "progress": None if ctx.show_progress else False})


def _shared_dir(spec: RunSpec, ctx: RunContext, kind: str, key: dict[str, Any]) -> Path:
    full = {**key, "scale": spec.scale, "version": VERSION, "precision": spec.precision,
            **({"rehearsal": spec.rehearsal} if spec.is_rehearsal else {})}
    digest = hashlib.sha256(canonical_json(full).encode()).hexdigest()[:12]
    return ctx.handle.dir.parent / "_shared" / f"{kind}-{digest}"


def _check_data(spec: RunSpec, ctx: RunContext, need_train: bool) -> None:
    if spec.scale == "smoke":
        return
    from bench.data.cards import load_dataset_card, require_layout

    if need_train:
        require_layout(load_dataset_card("div2k"), ctx.data_root, "train")
    require_layout(load_dataset_card(spec.dataset), ctx.data_root, spec.split)


def teacher_model(spec: RunSpec, ctx: RunContext):
    """The frozen teacher: at smoke trained once per store (seed 0, its own steps and lr: SMOKE_TEACHER) and cached under
    ``_shared``; at small/paper the official checkpoint (an asset, strict load)."""
    import torch

    from baselines.sr.train_eval import train_sr
    from bench.distributed import derive_seed
    from bench.train import load_for_eval
    from bench.train.checkpoint import step_path

    s, name = int(spec.setting["sr_scale"]), spec.setting["teacher"]
    torch.manual_seed(derive_seed(0, "teacher", name, s))
    teacher = build_network(name, s)
    if spec.scale != "smoke":
        return _load_official_teacher(teacher, name, s, ctx), {"teacher": f"official {name} x{s}"}
    out = _shared_dir(spec, ctx, f"teacher-{name}-x{s}", {"teacher": name, "sr_scale": s, "train": spec.train})
    cfg = train_config(spec, 0, ctx, overrides=spec.train["teacher"])
    final = step_path(out / "checkpoints", cfg.steps)
    facts: dict[str, Any] = {"teacher_dir": str(out), "teacher_checkpoint": str(final)}
    if final.exists():
        load_for_eval(teacher, final)
        facts["teacher_train_cpu_s"] = 0.0
    else:
        data, _ = training_set(spec, ctx, s)
        ctx.log(f"  teacher {name} x{s}: training {cfg.steps} steps once (cached in {out})")
        c0 = time.process_time()
        teacher = train_sr(teacher, data, cfg, out, resume=True).ema_model
        facts["teacher_train_cpu_s"] = time.process_time() - c0
    return teacher.eval(), facts


def _load_official_teacher(teacher, name: str, s: int, ctx: RunContext):
    import torch

    from bench.assets import require

    if name not in TEACHER_ASSETS:
        raise BenchError(f"no official checkpoint is declared for the mipkd teacher {name}")
    path = require(TEACHER_ASSETS[name].format(s=s))  # missing: one line naming the file and where to get it
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if name.startswith("swinir"):  # the params/params_ema wrapper and the derived buffers
        from baselines.sr.swinir_light import from_official_state_dict

        state = from_official_state_dict(state)
    try:
        teacher.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise BenchError(f"mipkd teacher {path}: not the official layout of {name} x{s}: "
                         f"{str(err).splitlines()[0]}") from None
    return teacher


def trained_student(spec: RunSpec, seed: int, ctx: RunContext, teacher):
    """Train (or resume, or reuse) the entry's distiller; returns (student, facts)."""
    import torch

    from baselines.sr_kd.distill import train_distiller
    from bench.distributed import derive_seed
    from bench.train import load_for_eval
    from bench.train.checkpoint import step_path

    s = int(spec.setting["sr_scale"])
    # the same initial student for every entry of a seed: only the loss differs
    torch.manual_seed(derive_seed(seed, "student", spec.setting["student"], s))
    student = build_network(spec.setting["student"], s)
    torch.manual_seed(derive_seed(seed, spec.entry, "aux", s))  # the method's own modules (MiPKD coders)
    distiller = build_distiller(spec.entry, spec.args, student, teacher)
    cfg = train_config(spec, seed, ctx)
    if spec.train.get("share_training"):
        out = _shared_dir(spec, ctx, f"train-{spec.entry}-x{s}",
                          {"entry": spec.entry, "args": spec.args, "setting": spec.setting, "train": spec.train})
        out = out / f"seed{seed}"
    else:
        out = ctx.work_dir(seed) / "train"
    final = step_path(out / "checkpoints", cfg.steps)
    _check_data(spec, ctx, need_train=not final.exists())
    facts: dict[str, Any] = {"train_dir": str(out), "train_steps": cfg.steps, "checkpoint": str(final)}
    c0 = time.process_time()
    if final.exists():
        load_for_eval(distiller, final)
        ctx.log(f"  {spec.entry} x{s}: reusing the finished training {final}")
    else:
        data, fingerprint = training_set(spec, ctx, s)
        facts["train_dataset_fingerprint"] = fingerprint
        ctx.log(f"  {spec.entry} x{s}: training {cfg.steps} steps")
        result = train_distiller(distiller, data, cfg, out, resume=True)
        distiller = result.ema_model
        if result.last_log:
            facts["train_last_loss"] = result.last_log.get("loss")
    facts["train_cpu_s"] = time.process_time() - c0
    facts["params_m_training"] = sum(p.numel() for p in distiller.parameters()) / 1e6
    return distiller.student, facts


# --------------------------------------------------------------------------------------------------- seeds
def run_seed(spec: RunSpec, seed: int, ctx: RunContext) -> SeedResult:
    from bench.assets import rehearsal_assets
    from bench.train.progress import reporting

    # rehearsal_assets: only a rehearsal accepts stand-in teacher files (random weights in the official layout)
    with torch_threads(spec.train.get("threads")), reporting(ctx.log, ctx.show_progress), \
            rehearsal_assets(spec.is_rehearsal):
        return _run_seed(spec, seed, ctx)


def _run_seed(spec: RunSpec, seed: int, ctx: RunContext) -> SeedResult:
    from baselines.sr.train_eval import evaluate_sr
    from bench import distributed as dist
    from bench.profile import count_params

    s = int(spec.setting["sr_scale"])
    if spec.scale != "smoke":  # one line before any training when a file is missing
        _check_data(spec, ctx, need_train=False)
    teacher, tfacts = teacher_model(spec, ctx)
    if spec.entry == "teacher":
        net, facts = teacher, {"train_steps": (spec.train.get("teacher") or {}).get("steps"), "train_cpu_s":
                               tfacts.get("teacher_train_cpu_s", 0.0)}
    else:
        net, facts = trained_student(spec, seed, ctx, teacher)
        facts["teacher_train_cpu_s"] = tfacts.get("teacher_train_cpu_s", 0.0)
    if not dist.is_main_process():
        return SeedResult(metrics=[])
    net = net.to(ctx.device).eval()
    test = evaluation_set(spec, ctx, s)
    c0 = time.process_time()
    ev = evaluate_sr(net, test, s, ctx.handle, seed, f"{spec.dataset}-x{s}", device=ctx.device,
                     self_ensemble=bool(spec.sampler.get("self_ensemble", False)),
                     chunk=int(spec.sampler.get("eval_chunk", 8)), log=ctx.log)
    extra = {"self_ensemble": bool(spec.sampler.get("self_ensemble", False)), "crop_border": s,
             "rounding": "SR output quantised to uint8 (BasicSR tensor2img)",
             "lr_source": ("MATLAB-bicubic LR made by bench.data.imresize" if spec.scale == "smoke"
                           else "the dataset's LR_bicubic files (MATLAB bicubic)"),
             "evaluated": "the teacher" if spec.entry == "teacher" else "the student alone (training-only "
                                                                         "modules and the teacher dropped)"}
    metrics = [metric_record(d, ev["metrics"][d], ev["n"], spec.setting, {**ev["protocol"][d], **extra})
               for d in METRICS]
    metrics.append(sanity_metric(ev, test, s, spec.setting))
    # counted on a fresh build of the deployed architecture: an EMA copy or a frozen teacher has no trainable
    # parameters left for count_params to see
    arch = spec.setting["teacher" if spec.entry == "teacher" else "student"]
    cost = {"params_m": count_params(build_network(arch, s)) / 1e6, "gmacs": ev["gmacs_mean"],
            "gmacs_at": "mean over the test images at their own LR sizes", "nfe": None,
            "train_steps": facts.get("train_steps"), "train_cpu_s": facts.get("train_cpu_s"),
            "teacher_train_cpu_s": facts.get("teacher_train_cpu_s"), "eval_cpu_s": time.process_time() - c0}
    if "params_m_training" in facts:
        cost["params_m_training"] = facts["params_m_training"]
    provenance = {"dataset_fingerprint": test.fingerprint(), "model": {"entry": spec.entry, "args": spec.args,
                                                                       **spec.setting},
                  **{k: v for k, v in {**tfacts, **facts}.items() if k in ("train_dir", "checkpoint",
                                                                           "teacher_dir", "teacher_checkpoint",
                                                                           "train_dataset_fingerprint",
                                                                           "train_last_loss", "teacher")}}
    return SeedResult(metrics=metrics, cost=cost, provenance=provenance)


def sanity_metric(ev: dict[str, Any], test: Any, s: int, setting: dict[str, Any]) -> dict[str, Any]:
    from baselines.sr.train_eval import bicubic_reference
    from bench.sanity import sanity_record

    bicubic = bicubic_reference(test, s)
    gain = ev["metrics"]["psnr_y@matlab"] - bicubic["value"]
    return sanity_record(SANITY_METRIC, gain, ev["n"], floor=0.0,
                         trivial="MATLAB-bicubic upscaling of the same LR inputs, psnr_y@matlab, crop = scale",
                         trivial_value=bicubic["value"], note=SANITY_NOTE, setting=dict(setting),
                         protocol={"model_psnr_y": ev["metrics"]["psnr_y@matlab"],
                                   "bicubic_psnr_y": bicubic["value"], "crop_border": s})


# --------------------------------------------------------------------------------------------------- profile
def profile(scale: str = "smoke", device: str = "cpu", repeats: int = 20, entries: list[str] | None = None,
            measure_latency: bool | None = None, progress: Any = None, **_: Any) -> list[dict[str, Any]]:
    """Params and MACs (and latency per bench.profile's policy) of every deployed network: the teachers and
    the student, which every student entry (the student alone, each KD baseline, MiPKD) deploys unchanged."""
    import math

    import torch

    from baselines.sr.train_eval import count_macs_meta
    from bench.profile import ProfileJob, count_params, latency_plan, profiled_entries, run_profile
    from bench.provenance import cpu_model

    names = profiled_entries("mipkd", scale, entries, ["teacher", *STUDENT_ENTRIES])
    pairs = {"smoke": SMOKE_PAIR} if scale == "smoke" else PAIRS
    lat = latency_plan(scale, device, repeats, measure_latency)
    device_name = torch.cuda.get_device_name(torch.device(lat.device)) if lat.device.startswith("cuda") \
        else cpu_model()
    s = 4

    def job(pair: str, entry: str) -> ProfileJob:
        teacher, student = pairs[pair]
        name = teacher if entry == "teacher" else student

        def measure():
            torch.manual_seed(0)
            net = build_network(name, s).eval()
            lr_hw = (32, 32) if scale == "smoke" else (math.ceil(720 / s), math.ceil(1280 / s))
            gmacs = count_macs_meta(net, (1, 3, *lr_hw)) / 1e9
            net = net.to(lat.device)
            x = torch.rand(1, 3, *lr_hw, device=lat.device) * float(getattr(net, "rgb_range", 1.0))

            def forward() -> None:
                with torch.inference_mode():
                    net(x)

            return ({"entry": entry, "pair": pair, "network": name, "sr_scale": s,
                     "input": f"{lr_hw[1]}x{lr_hw[0]}", "params_m": count_params(net) / 1e6,
                     "gmacs": gmacs, "nfe": None,
                     "precision": "fp32", "device_name": device_name}, forward)

        return ProfileJob(f"{entry} ({name})", measure)

    return run_profile([job(p, e) for p in pairs for e in names], lat, progress)
