"""`bench reproduce instruct-ipt`: Instruct-IPT against IPT, AirNet and PromptIR, all-in-one restoration.

Every entry is trained all-in-one on seven tasks (denoise sigma 15/25/50, deblur, derain, dehaze, desnow) with the
same patches, optimiser (Adam), schedule (warm-up + cosine), gradient clipping and step count
(methods/instruct_ipt/allinone.py), and evaluated per task with psnr_rgb / ssim_rgb (uint8-rounded outputs, no
crop, as the AirNet/PromptIR all-in-one tables), plus the unweighted average over tasks as its own record
(setting {task: average}). Sanity floor per seed: ``psnr_gain@degraded`` of the average (restored minus
degraded-input PSNR, floor 0 dB).

Instruct-IPT (methods/instruct_ipt/model.py), within the same budget:
1. joint warm-up of the IPT backbone (``warmup_fraction`` of the steps);
2. the toy procedure (selection.py): one short single-task fine-tune per task from the warmed-up backbone,
   relative weight change per candidate matrix, ranked; the top ``top_k`` are the task-sensitive weights, and
   the effective rank of each task's change is recorded (the rank analysis). The toy steps are charged to the
   budget: each toy step is 1/7 of a joint step, so the synchronous phase is shortened by ``toy_steps``;
3. synchronous training of the backbone and all low-rank task biases (rank ``rank``) for the remaining steps;
4. the instruction path: a hashed character n-gram text encoder (smoke; CLIP at paper scale) and a linear
   text -> task head fitted on training phrasings; at evaluation every image is restored from a held-out
   phrasing (the text path chooses the head/tail/query and mixes the biases).
Every unknown of the paper (which weights, the rank, the share of the warm-up, the toy fine-tune length) is a
knob in INSTRUCT_KNOBS, with why we chose its value.

Scales
* smoke: embedded photos (bench.data.smoke): 12 train photos at 96 px, 2 seeded degradations each per task;
  8 test photos at 64 px; tiny configs of the four architectures; one thread; 3 seeds.
* small / paper: the official architectures, trained on the all-in-one training sets in their official layouts
  (BSD400 + WED with noise, GoPro train, Rain100L train, RESIDE OTS, Snow100K train) and tested on CBSD68
  (sigma 15/25/50), GoPro, Rain100L, SOTS outdoor and Snow100K-L (methods/instruct_ipt/realdata.py); small: the
  first 100 images per task, 2,000 steps, 20 test images per task, hashed n-gram text encoder; paper: PromptIR's
  lr/batch protocol, every test image, the CLIP text encoder (asset clip-vit-b32). A missing folder or asset
  stops the run in one line before training.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from bench.recipe import RunContext, SeedResult, metric_record, torch_threads
from bench.registry import BenchError
from bench.spec import RunSpec

VERSION = 1
PAPER = "instruct-ipt"
METRICS = ["psnr_rgb", "ssim_rgb"]
SANITY_METRIC = "psnr_gain@degraded"
SANITY_FLOOR_DB = 0.0
SANITY_NOTE = ("strictly above the degraded input: an all-in-one restorer whose average output is further from "
               "the clean image than its input has not learned restoration; no margin, since the tiny smoke "
               "models' gains are a few dB at most")

IMPLS = {"instruct-ipt": "methods.instruct_ipt.model:InstructIPT", "ipt": "baselines.allinone.ipt:build",
         "airnet": "baselines.allinone.airnet:build", "promptir": "baselines.allinone.promptir:build"}

# Tiny configs of the official architectures (same structure, smaller widths/depths), chosen so that the four
# entries are within ~2x of each other in parameters and all train within the smoke budget.
TINY_IPT = {"variant": "tiny", "n_feats": 8, "patch_size": 24, "patch_dim": 3, "num_heads": 2, "num_layers": 1,
            "rgb_range": 1.0}
ENTRIES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    # entry: (impl, paper-scale args, smoke args)
    "instruct-ipt": ("instruct-ipt", {"backbone": {"variant": "official", "rgb_range": 1.0}},
                     {"backbone": TINY_IPT}),
    "ipt": ("ipt", {"variant": "official", "rgb_range": 1.0}, dict(TINY_IPT)),
    "airnet": ("airnet", {"variant": "official"}, {"variant": "tiny", "n_feats": 8, "n_groups": 1, "n_blocks": 2,
                                                   "batch_size": 7}),
    "promptir": ("promptir", {"variant": "official"},
                 {"variant": "tiny", "dim": 8, "num_blocks": (1, 1, 1, 1), "num_refinement_blocks": 1,
                  "heads": (1, 1, 1, 1), "prompt_dims": (8, 16, 32), "prompt_sizes": (16, 8, 4), "prompt_len": 5}),
}

# The paper's unknowns, as knobs (value, why).
INSTRUCT_KNOBS: dict[str, Any] = {
    "rank": 2,               # [I] constant rank of every bias; the paper's value is unknown. 2 of 72: the toy
                             # changes' effective ranks (recorded) are small at smoke
    "alpha": 2.0,            # [I] bias scale alpha / rank (LoRA convention); 1.0 scale at rank 2
    "top_k": 4,              # [I] how many candidate weight matrices get biases (paper: "task-sensitive" ones)
    "warmup_fraction": 0.4,  # [I] share of the steps trained jointly before the toy procedure
    "toy_steps": 21,         # [I] single-task fine-tune length per task (7 tasks x 21 = 21 joint-step costs)
    "toy_lr": 2e-3,          # [I] the toy fine-tune's learning rate
    "rank_energy": 0.9,      # share of ||dW||_F^2 the effective rank must hold (rank analysis)
    "text_dim": 256,         # hashed n-gram buckets (smoke text encoder)
    "text_steps": 200,       # Adam steps of the text -> task head on the training phrasings
    "overhead_max": 0.10,    # [I] largest parameter overhead over IPT the claim allows; the paper's stated
                             # fraction could not be read
}
AIRNET_CONTRASTIVE_WEIGHT = 0.1  # AirNet train.py: L1 + 0.1 * InfoNCE once the encoder has warmed up [R-read]

SMOKE: dict[str, Any] = {
    "seeds": [0, 1, 2],
    "train": {"config": "smoke", "train_size": 96, "variants": 2, "patch": 24, "per_task": 2, "steps": 150,
              "lr": 2e-3, "warmup_steps": 10, "min_lr": 1e-5, "grad_clip": 1.0, "loss": "l1", "threads": 1},
    "test_size": 64,
    "test_seed_base": 500,
}
# small/paper: the official architectures; IPT's body takes 48x48 inputs, so every entry trains on 48 px patches
# (equal data; PromptIR's own 128 px patches would favour the models that can use them) [I].
SMALL: dict[str, Any] = {
    "seeds": [0],
    "train": {"config": "small", "crop": 96, "crops": 4, "max_images": 100, "patch": 48, "per_task": 2,
              "steps": 2000, "lr": 2e-4, "warmup_steps": 100, "min_lr": 1e-6, "grad_clip": 1.0, "loss": "l1",
              "text_encoder": "hashed-ngrams"},
    "max_test_images": 20,
}
# PromptIR's protocol [R]: Adam lr 2e-4 (warm-up + cosine), batch 32 (8 x 4 GPUs), 120 epochs; steps here are
# our reading of 120 epochs over its training sets at batch 28 (4 per task) [I].
PAPER_TRAIN: dict[str, Any] = {"config": "paper", "crop": 128, "crops": 8, "max_images": 5000, "patch": 48,
                               "per_task": 4, "steps": 150_000, "lr": 2e-4, "warmup_steps": 1500, "min_lr": 1e-6,
                               "grad_clip": 1.0, "loss": "l1", "text_encoder": "clip-vit-b32",
                               "source": "PromptIR train.py / issue #9 (lr, batch, epochs) [R]; patch 48 (IPT) [I]"}
PAPER_KNOBS = {**INSTRUCT_KNOBS, "rank": 8, "top_k": 24, "toy_steps": 2000, "toy_lr": 2e-4, "text_dim": 512,
               "warmup_fraction": 0.3}  # [I] every value: the paper's could not be read
CLIP_ASSET = "clip-vit-b32"  # methods/instruct_ipt/assets.yaml: an HF folder read with transformers


def _stands_for() -> dict[str, Any]:
    # Honest mapping: each smoke task is the same restoration task under a synthetic degradation (bench.data.
    # smoke), and at small/paper scale the records are those test sets themselves; the records' settings carry
    # the task (and sigma) exactly as the claims name them, so a per-task record only meets its own task's claim.
    return {"dataset": ["allinone-avg", "cbsd68", "gopro", "rain100l", "sots", "snow100k"],
            "metrics": {m: m for m in METRICS}}


def plan(card: Any, scale: str, data_root: Path | None) -> list[RunSpec]:
    if scale == "smoke":
        return [RunSpec(paper=PAPER, entry=entry, impl=impl, args=dict(smoke_args), dataset="photos", split="test",
                        stands_for=_stands_for(), metrics=list(METRICS), scale="smoke", seeds=list(SMOKE["seeds"]),
                        train={**SMOKE["train"],
                               **({"knobs": dict(INSTRUCT_KNOBS)} if entry == "instruct-ipt" else {}),
                               **({"contrastive_weight": AIRNET_CONTRASTIVE_WEIGHT} if entry == "airnet" else {})},
                        sampler={"test_size": SMOKE["test_size"], "test_seed_base": SMOKE["test_seed_base"],
                                 "ipt_tiles": "patch_size tiles, overlap patch_size // 4, averaged"},
                        setting={"tasks": "all-in-one-7"}, recipe_version=VERSION)
                for entry, (impl, _, smoke_args) in ENTRIES.items()]
    if scale in ("small", "paper"):
        base = dict(SMALL["train"]) if scale == "small" else dict(PAPER_TRAIN)
        knobs = ({**INSTRUCT_KNOBS, "rank": 4, "top_k": 12, "toy_steps": 200, "toy_lr": 2e-4} if scale == "small"
                 else dict(PAPER_KNOBS))
        seeds = SMALL["seeds"] if scale == "small" else [0]
        return [RunSpec(paper=PAPER, entry=entry, impl=impl, args=dict(paper_args), dataset="allinone-avg",
                        split="test", stands_for=_stands_for(), metrics=list(METRICS), scale=scale,
                        seeds=list(seeds),
                        train={**base, **({"knobs": knobs} if entry == "instruct-ipt" else {}),
                               **({"contrastive_weight": AIRNET_CONTRASTIVE_WEIGHT} if entry == "airnet" else {})},
                        sampler={"max_test_images": SMALL["max_test_images"] if scale == "small" else None,
                                 "ipt_tiles": "48 px tiles, overlap 12, averaged; PromptIR reflect-padded to 8"},
                        setting={"tasks": "all-in-one-7"}, recipe_version=VERSION)
                for entry, (impl, paper_args, _) in ENTRIES.items()]
    raise BenchError(f"unknown scale {scale!r} for instruct-ipt; use smoke, small or paper")


# ------------------------------------------------------------------------------------------------- models
def build_backbone(args: dict[str, Any]):
    from baselines.allinone.ipt import build

    from .allinone import TASKS

    return build(**{**args, "scales": tuple(1 for _ in TASKS)})


def build_model(impl: str, args: dict[str, Any]):
    from baselines.allinone import airnet, promptir

    if impl in ("ipt", "instruct-ipt"):
        return build_backbone(args["backbone"] if impl == "instruct-ipt" else args)
    if impl == "airnet":
        return airnet.build(**args)
    if impl == "promptir":
        return promptir.build(**args)
    raise BenchError(f"unknown instruct-ipt implementation {impl!r}; known: {', '.join(IMPLS)}")


# --------------------------------------------------------------------------------------------- instruct-ipt
def _train_instruct(backbone, sampler, cfg: dict[str, Any], seed: int, log) -> tuple[Any, dict[str, Any]]:
    import torch

    from .allinone import TASK_NAMES, PatchSampler, train_steps
    from .model import InstructIPT
    from .selection import (
        candidate_weights,
        effective_rank,
        rank_by_mean_change,
        relative_change,
    )
    from .text import phrasings

    k = cfg["knobs"]
    toy_steps = int(k["toy_steps"])
    total = int(cfg["steps"]) - toy_steps  # the toy fine-tunes are charged to the budget (see the docstring)
    warm = round(k["warmup_fraction"] * total)
    params = [p for p in backbone.parameters() if p.requires_grad]
    optimizer, _ = train_steps(backbone, params, sampler, "task", range(warm), total, cfg, log=log)

    # toy procedure: a short fine-tune per task alone, from the warmed-up backbone
    candidates = candidate_weights(backbone)
    before = {n: p.detach().clone() for n, p in backbone.named_parameters()}
    toy_sampler = PatchSampler(sampler.pool, sampler.patch, sampler.per_task * len(TASK_NAMES), seed + 7919)
    changes, deltas = [], []
    for task in TASK_NAMES:
        probe = copy.deepcopy(backbone)
        probe_params = [p for p in probe.parameters() if p.requires_grad]
        toy_cfg = {**cfg, "lr": k["toy_lr"], "warmup_steps": 1, "min_lr": k["toy_lr"]}
        train_steps(probe, probe_params, toy_sampler, "task", range(toy_steps), toy_steps, toy_cfg, tasks=(task,))
        after = {n: p.detach() for n, p in probe.named_parameters()}
        changes.append(relative_change(before, after, list(candidates)))
        deltas.append({n: after[n] - before[n] for n in candidates})
    ranking = rank_by_mean_change(changes)
    selected = [name for name, _ in ranking[: int(k["top_k"])]]
    ranks = {n: [effective_rank(d[n], k["rank_energy"]) for d in deltas] for n in selected}

    model = InstructIPT(backbone, {n: candidates[n] for n in selected}, len(TASK_NAMES), int(k["rank"]),
                        k["alpha"], int(k["text_dim"]))
    # synchronous phase: backbone and every task's biases in one optimiser (the backbone keeps its Adam state,
    # the biases join as a new group), all tasks in every step
    optimizer.add_param_group({"params": list(model.biases.parameters())})
    sync_params = params + list(model.biases.parameters())
    _, last = train_steps(model, sync_params, sampler, "task", range(warm, total), total, cfg, optimizer=optimizer,
                          log=log)

    # instruction path: text -> task head on the training phrasings
    encoder = text_encoder(cfg)
    texts, labels = [], []
    for ti, task in enumerate(TASK_NAMES):
        for phrase in phrasings(task, "train"):
            texts.append(phrase)
            labels.append(ti)
    device = next(model.parameters()).device
    emb, y = encoder(texts).to(device), torch.tensor(labels, device=device)
    opt = torch.optim.Adam(model.text_head.parameters(), lr=0.05)
    for _ in range(int(k["text_steps"])):
        loss = torch.nn.functional.cross_entropy(model.text_head(emb), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    facts = {"selected_weights": selected, "toy_ranking": [[n, round(v, 6)] for n, v in ranking],
             "toy_effective_ranks": ranks, "rank": int(k["rank"]), "warmup_steps": warm,
             "sync_steps": total - warm, "toy_steps_per_task": toy_steps, "train_last_loss": last,
             "text_head_train_loss": float(loss.detach())}
    return model, facts


def text_encoder(cfg: dict[str, Any]):
    """The instruction encoder of a run: hashed n-grams (smoke/small) or the CLIP asset (paper)."""
    from .text import HashedNgramEncoder, clip_text_encoder

    name = cfg.get("text_encoder", "hashed-ngrams")
    if name == "hashed-ngrams":
        return HashedNgramEncoder(int(cfg["knobs"]["text_dim"]))
    if name == CLIP_ASSET:
        from bench.assets import require

        return clip_text_encoder(require(CLIP_ASSET))
    raise BenchError(f"unknown instruct-ipt text encoder {name!r}; known: hashed-ngrams, {CLIP_ASSET}")


def _instruction_restorer(model, encoder, seed: int):
    """restore(x, task index) through a held-out phrasing of that task (cycled per call)."""
    import torch

    from .allinone import TASK_NAMES
    from .text import phrasings

    counters: dict[int, int] = {}
    decisions: list[tuple[int, int]] = []

    def restore(x, ti: int):
        options = phrasings(TASK_NAMES[ti], "test")
        j = counters.get(ti, 0)
        counters[ti] = j + 1
        with torch.no_grad():
            probs = model.task_probs(encoder([options[(j + seed) % len(options)]]).to(x.device))[0]
        decisions.append((ti, int(probs.argmax())))
        return model.forward_tiles(x, probs)

    return restore, decisions


# ------------------------------------------------------------------------------------------------- seeds
def run_seed(spec: RunSpec, seed: int, ctx: RunContext) -> SeedResult:
    with torch_threads(spec.train.get("threads")):
        return _run_seed(spec, seed, ctx)


def _run_seed(spec: RunSpec, seed: int, ctx: RunContext) -> SeedResult:
    import torch

    from bench.assets import rehearsal_assets
    from bench.distributed import derive_seed
    from bench.sanity import sanity_record

    from .allinone import (
        TASKS,
        PatchSampler,
        evaluate,
        pad_to_multiple,
        smoke_pool,
        train_steps,
    )

    cfg = dict(spec.train)
    cfg["steps"] = spec.capped("max_steps", int(cfg["steps"]))
    if spec.is_rehearsal and "knobs" in cfg:  # a few steps: one toy step per task, the rest split as usual
        cfg["knobs"] = {**cfg["knobs"], "toy_steps": 1}
        cfg["steps"] = max(cfg["steps"], 3)
    c0, t0 = time.process_time(), time.perf_counter()
    if spec.scale == "smoke":
        train_pool = smoke_pool("train", cfg["train_size"], cfg["variants"], seed_base=0)
        test_pool: Any = smoke_pool("test", spec.sampler["test_size"], 1, seed_base=spec.sampler["test_seed_base"])
        data_note = "bench.data.smoke degradations of the 64 px test photos (seeded per image)"
    else:
        from . import realdata

        realdata.check_data(ctx.data_root, train=True)  # one line before any training
        if cfg.get("text_encoder") == CLIP_ASSET:
            from bench.assets import require

            with rehearsal_assets(spec.is_rehearsal):
                require(CLIP_ASSET)
        max_train = spec.capped("max_samples", int(cfg["max_images"]))
        train_pool = realdata.train_pool(ctx.data_root, cfg["crop"], cfg["crops"], max_train, derive_seed(seed, "crops"))
        max_test = spec.sampler.get("max_test_images") or 10**9
        test_pool = realdata.eval_pool(ctx.data_root, spec.capped("max_samples", max_test))
        data_note = "the test sets of realdata.TEST_SETS (CBSD68 noise seeded per image)"
    sampler = PatchSampler(train_pool, cfg["patch"], cfg["per_task"], derive_seed(seed, "patches"))
    torch.manual_seed(derive_seed(seed, spec.entry, "init"))
    model = build_model(spec.impl, spec.args).to(ctx.device)
    facts: dict[str, Any] = {}
    ctx.log(f"  {spec.entry}: training {cfg['steps']} all-in-one steps ({len(TASKS)} tasks x {cfg['per_task']})")
    with rehearsal_assets(spec.is_rehearsal):
        if spec.impl == "instruct-ipt":
            model, facts = _train_instruct(model, sampler, cfg, seed, ctx.log)
        else:
            kind = "task" if spec.impl == "ipt" else spec.impl if spec.impl == "airnet" else "blind"
            params = [p for p in model.parameters() if p.requires_grad]
            _, facts["train_last_loss"] = train_steps(model, params, sampler, kind, range(cfg["steps"]),
                                                      cfg["steps"], cfg, log=ctx.log)
        train_cpu = time.process_time() - c0
        model.eval()
        c1 = time.process_time()
        if spec.impl == "instruct-ipt":
            restore, decisions = _instruction_restorer(model, text_encoder(cfg), seed)
        elif spec.impl == "ipt":
            restore, decisions = (lambda x, ti: model.forward_tiles(x, ti)), None
        elif spec.impl == "promptir":
            padded = pad_to_multiple(model, 8)
            restore, decisions = (lambda x, ti: padded(x)), None
        else:
            restore, decisions = (lambda x, ti: model(x)), None
        ev = evaluate(restore, test_pool, device=ctx.device)
    eval_cpu = time.process_time() - c1
    TASK_NAMES = [t.name for t in TASKS]

    metrics = []
    protocol = {"rounding": "outputs clamped to [0,1], x255, rounded to uint8", "crop_border": 0,
                "inputs": data_note}
    for task in TASKS:
        r = ev[task.name]
        for m in METRICS:
            metrics.append(metric_record(m, r[m], r["n"], task.setting_dict,
                                         {**r["protocol"][m], **protocol, "degradation": [task.kind, task.level]}))
    n_all = sum(ev[t]["n"] for t in TASK_NAMES)
    average = {m: sum(ev[t][m] for t in TASK_NAMES) / len(TASK_NAMES) for m in METRICS}
    for m in METRICS:
        metrics.append(metric_record(m, average[m], n_all, {"task": "average"},
                                     {**protocol, "aggregate": f"unweighted mean of the {len(TASKS)} task means"}))
    degraded = sum(ev[t]["degraded_psnr_rgb"] for t in TASK_NAMES) / len(TASK_NAMES)
    metrics.append(sanity_record(SANITY_METRIC, average["psnr_rgb"] - degraded, n_all, floor=SANITY_FLOOR_DB,
                                 trivial="the degraded input itself (identity restorer), psnr_rgb averaged over "
                                         "the tasks", trivial_value=degraded, note=SANITY_NOTE,
                                 setting={"task": "average"},
                                 protocol={"model_psnr_rgb": average["psnr_rgb"], "degraded_psnr_rgb": degraded,
                                           "per_task_gain": {t: ev[t]["psnr_rgb"] - ev[t]["degraded_psnr_rgb"]
                                                             for t in TASK_NAMES}}))
    params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("E.E.encoder_k"))
    cost: dict[str, Any] = {"params_m": params / 1e6, "train_steps": cfg["steps"], "train_cpu_s": train_cpu,
                            "eval_cpu_s": eval_cpu, "train_wall_s": time.perf_counter() - t0, "nfe": None}
    provenance: dict[str, Any] = {"model": {"impl": spec.impl, "args": spec.args},
                                  "per_task_degraded_psnr_rgb": {t: ev[t]["degraded_psnr_rgb"] for t in TASK_NAMES}}
    if spec.impl == "airnet":
        cost["params_note"] = "AirNet's momentum key encoder (E.E.encoder_k) is not counted: it is not trained"
    if spec.impl == "instruct-ipt":
        backbone = sum(p.numel() for p in model.backbone.parameters())
        cost["params_m_backbone"] = backbone / 1e6
        cost["params_overhead_fraction"] = (params - backbone) / backbone
        cost["params_m_task_biases"] = model.overhead_params() / 1e6
        correct = sum(1 for want, got in decisions if want == got)
        provenance.update(facts)
        provenance["instruction_accuracy"] = correct / len(decisions)
        provenance["instruction_decisions"] = len(decisions)
    elif facts:
        provenance.update(facts)
    return SeedResult(metrics=metrics, cost=cost, provenance=provenance)


# ----------------------------------------------------------------------------------------------- profile
def profile(scale: str = "smoke", device: str = "cpu", repeats: int = 20, entries: list[str] | None = None,
            measure_latency: bool | None = None, progress: Any = None) -> list[dict[str, Any]]:
    """Params, MACs and latency of every entry on one 64x64 image (smoke) or 256x256 (small/paper)."""
    import torch

    from bench.profile import ProfileJob, count_macs, latency_plan, profiled_entries, run_profile

    from .allinone import TASK_NAMES
    from .model import InstructIPT
    from .selection import candidate_weights

    names = profiled_entries("instruct-ipt", scale, entries, list(ENTRIES))
    plan_ = latency_plan(scale, device, repeats, measure_latency)
    side = 64 if scale == "smoke" else 256

    def job(entry: str) -> ProfileJob:
        def measure():
            impl, paper_args, smoke_args = ENTRIES[entry]
            args = smoke_args if scale == "smoke" else paper_args
            torch.manual_seed(0)
            net = build_model(impl, args)
            if impl == "instruct-ipt":
                cands = candidate_weights(net)
                chosen = dict(list(cands.items())[: INSTRUCT_KNOBS["top_k"]])  # shapes only: selection is per run
                net = InstructIPT(net, chosen, len(TASK_NAMES), INSTRUCT_KNOBS["rank"], INSTRUCT_KNOBS["alpha"],
                                  INSTRUCT_KNOBS["text_dim"])
            net.eval()
            params = sum(p.numel() for n, p in net.named_parameters() if not n.startswith("E.E.encoder_k"))
            # Instruct-IPT runs in its deployment form: a task's biases merged into the weights, one dense IPT
            run = net.merged_backbone(0) if impl == "instruct-ipt" else net
            x = torch.rand(1, 3, side, side, device=device)
            run = run.to(device)
            if impl in ("ipt", "instruct-ipt"):
                fn = lambda: run.forward_tiles(x, 0)
            else:
                fn = lambda: run(x)
            macs = count_macs(lambda: fn())

            def forward() -> None:
                with torch.inference_mode():
                    fn()

            return ({"entry": entry, "impl": impl, "input": f"{side}x{side}", "params_m": params / 1e6,
                     "gmacs": macs / 1e9, "nfe": None, "precision": "fp32", "peak_mem_mb": None,
                     "note": ("biases merged (deployment form); " if impl == "instruct-ipt" else "")
                     + "overlapping patch tiles" if impl in ("ipt", "instruct-ipt") else None}, forward)

        return ProfileJob(entry, measure)

    return run_profile([job(e) for e in names], plan_, progress)
