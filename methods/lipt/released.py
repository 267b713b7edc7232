"""`bench evaluate lipt --entry E --checkpoint FILE`: released checkpoints of LIPT and its SR baselines, scored
with the paper's protocol (the hook contract is in bench/evaluate.py).

Layouts (each file read as published; sources in ``LAYOUTS`` and baselines/sr/convert_official.py):
* SwinIR-light, EDSR-baseline, IMDN: the authors' released files, loaded strictly (convert_official.py);
* ELAN-light: the official checkpoint (``model_state_dict`` of an ``nn.DataParallel``) with its frozen one-hot
  shift kernels checked and converted (baselines/sr/convert_elan.py);
* LIPT: no weights are released (the authors, Junboooo/LIPT issue #2, June 2025: "undergoing an internal
  review"). What loads is what the official code writes: a ``train.py`` checkpoint (training form, wrapped in
  ``model_state_dict``, ``module.`` prefixes; re-parameterised here before evaluation) or the output of its
  ``convert.py`` (fused convs under ``.dbb_reparam.``, attention projections still conv + BN).

Protocol (the paper's light-SR table, card metrics): the benchmark set's own MATLAB-bicubic LR files, whole
images, single pass (no self-ensemble), ``psnr_y@matlab`` and ``ssim_y@matlab`` with crop = scale on the
uint8-rounded output, one row per image; SwinIR is run through its test script's mirror padding. The SR factor
is read from the checkpoint (its upsampler's shape), and every metric record carries ``{sr_scale: s}``: the
setting of the paper's cell it stands beside. The dataset is one of Set5/Set14/B100/Urban100/Manga109 (default
Urban100, the dataset of every LIPT claim). Scale ``small`` scores the first ``SMALL_IMAGES`` images only and
says so in its setting (no Δ beside the paper). A rehearsal (``--max-samples M``) caps the images at M.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from bench.evaluate import CheckpointError, Layout, load_strict, read_checkpoint
from bench.recipe import RunContext, SeedResult, metric_record
from bench.registry import BenchError
from bench.spec import RunSpec

METRICS = ["psnr_y@matlab", "ssim_y@matlab"]
BENCHMARKS = ("set5", "set14", "b100", "urban100", "manga109")
DEFAULT_DATASET = "urban100"
SMALL_IMAGES = 10
LIPT_VARIANTS = {"lipt-tiny": "tiny", "lipt-small": "small", "lipt-base": "base"}

_SR_PROTOCOL = ("psnr_y@matlab / ssim_y@matlab, crop = scale, the set's MATLAB-bicubic LR files, whole image, "
                "single pass")
LAYOUTS: dict[str, Layout] = {
    "swinir-light": Layout(
        files=tuple(f"002_lightweightSR_DIV2K_s64w8_SwinIR-S_x{s}.pth" for s in (2, 3, 4)),
        source="https://github.com/JingyunLiang/SwinIR/releases/tag/v0.0",
        format="torch.save({'params': state_dict}) of models/network_swinir.py (pixelshuffledirect, embed 60)",
        weights="['params']", note="the derived buffers attn_mask / relative_position_index are recomputed",
        extra={"variant": "light"}),
    "edsr-baseline": Layout(
        files=("edsr_baseline_x2-1bc95232.pt", "edsr_baseline_x3-abf2a44e.pt", "edsr_baseline_x4-6b446fab.pt"),
        source="https://cv.snu.ac.kr/research/EDSR/models/ (url table of sanghyun-son/EDSR-PyTorch "
               "src/model/edsr.py)",
        format="torch.save(model.state_dict()), plain, incl. the frozen sub_mean/add_mean mean shifts",
        note="rgb_range is read from sub_mean (255 for the released files)", extra={"variant": "baseline"}),
    "imdn": Layout(
        files=tuple(f"IMDN_x{s}.pth" for s in (2, 3, 4)),
        source="https://github.com/Zheng222/IMDN/tree/master/checkpoints",
        format="torch.save(model.state_dict()), keys possibly prefixed 'module.'", extra={"variant": "imdn"}),
    "elan-light": Layout(
        files=("model_x2_<epoch>.pt", "model_x3_<epoch>.pt", "model_x4_<epoch>.pt"),
        source="the pretrained ELAN-light models linked from https://github.com/xindongzhang/ELAN, or a "
               "checkpoint its train.py wrote (experiments/<name>/models/)",
        format="torch.save({'epoch', 'model_state_dict', 'optimizer_state_dict', ...}); model_state_dict of an "
               "nn.DataParallel ('module.'), shift-convs with frozen one-hot kernels",
        weights="['model_state_dict']",
        note="converted by baselines/sr/convert_elan.py, which refuses kernels that are not bench's shift",
        extra={"variant": "light"}),
    **{entry: Layout(
        files=("model_x2_<epoch>.pt", "<convert.py output>.pt"),
        source="not released (Junboooo/LIPT issue #2: weights under internal review); train with "
               "https://github.com/Lucien66/LIPT (train.py, then optionally convert.py)",
        format="train.py: {'model_state_dict': DataParallel state (training form)}; convert.py: fused convs "
               "under '.dbb_reparam.', attention projections as conv + BN",
        weights="['model_state_dict'] when present",
        note=f"architecture: bench's LIPT-{variant} config (window sizes are not stored in the file)",
        extra={"variant": variant}) for entry, variant in LIPT_VARIANTS.items()},
}


def released_spec(card: Any, entry: str, scale: str, dataset: str | None = None) -> dict[str, Any]:
    """RunSpec fields of one evaluation: one benchmark set (``dataset``, default Urban100), both SR metrics."""
    dataset = dataset or DEFAULT_DATASET
    if dataset not in BENCHMARKS:
        raise BenchError(f"lipt released checkpoints are scored on {', '.join(BENCHMARKS)}, not {dataset!r}")
    layout = LAYOUTS[entry]
    sampler = {"self_ensemble": False, "forward": _forward_of(entry), "eval_chunk": 8,
               "max_images": SMALL_IMAGES if scale == "small" else None}
    return {"dataset": dataset, "split": "test", "metrics": list(METRICS), "sampler": sampler, "precision": "fp32",
            "args": {"variant": layout.extra["variant"], "layout": layout.format}, "setting": {}}


def _forward_of(entry: str) -> str:
    """How the official test script feeds the image (what ``load_released`` reproduces)."""
    if entry == "swinir-light":
        return "main_test_swinir.py: mirror-pad to the next multiple of 8 above the size, whole image"
    if entry in ("edsr-baseline", "imdn"):
        return "whole image (fully convolutional)"
    return "whole image, the model's own reflect padding to a multiple of the windows"


# ------------------------------------------------------------------------------------------------ loading
def _lipt_scale(state: dict[str, Any], path: Path) -> int:
    if "tail.0.weight" not in state:
        raise CheckpointError(f"checkpoint {path} is not a LIPT checkpoint of the official code: no tail.0.weight")
    out = int(state["tail.0.weight"].shape[0])
    for s in (2, 3, 4):
        if out == 3 * s * s:
            return s
    raise CheckpointError(f"checkpoint {path}: tail.0.weight has {out} outputs, not 3 x s^2 for s in 2, 3, 4")


def load_lipt(path: Path, variant: str) -> tuple[Any, int, str]:
    """(deployed LIPT in eval mode, SR factor, which official form the file was) from a train.py or convert.py
    checkpoint; the training form is re-parameterised exactly (LIPT.deploy, float64 fusion)."""
    from baselines.sr.convert_official import mean_shift_rgb_range
    from methods.lipt.model import (
        build_lipt,
        official_deployed_state_dict,
        strip_official_prefixes,
    )

    obj = read_checkpoint(path, "LIPT checkpoint")
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} is not a LIPT checkpoint: a {type(obj).__name__}, not a dict")
    state = strip_official_prefixes(obj)
    scale = _lipt_scale(state, path)
    rgb_range = mean_shift_rgb_range(state, path, "LIPT")  # the range it was trained on (255 officially)
    if any(".dbb_reparam." in k for k in state):
        model = build_lipt(variant, scale, deploy=True, rgb_range=rgb_range)
        load_strict(model, official_deployed_state_dict(obj), path, "LIPT convert.py (deployed)")
        return model.eval(), scale, "convert.py (deployed)"
    if any(".dbb_origin." in k for k in state):
        model = build_lipt(variant, scale, rgb_range=rgb_range)
        load_strict(model, state, path, "LIPT train.py (training form)")
        return model.eval().deploy(), scale, "train.py (training form, re-parameterised here)"
    model = build_lipt(variant, scale, deploy=True, rgb_range=rgb_range)
    load_strict(model, state, path, "LIPT deployed (fused convs, folded projections)")
    return model.eval(), scale, "deployed state dict"


def load_released(entry: str, path: Path, variant: str | None = None) -> tuple[Any, int, str]:
    """(network to evaluate, SR factor, form) for a card entry's official checkpoint."""
    from baselines.sr.convert_official import FORMATS, inference_network

    variant = variant or LAYOUTS[entry].extra["variant"]
    if entry in LIPT_VARIANTS:
        return load_lipt(path, variant)
    if entry not in FORMATS:
        raise BenchError(f"lipt entry {entry!r} has no released-checkpoint loader; known: {', '.join(LAYOUTS)}")
    model, scale = FORMATS[entry].load(path, variant)
    return inference_network(entry, model, scale), scale, LAYOUTS[entry].format


# ---------------------------------------------------------------------------------------------- evaluating
class FirstN:
    """The first ``n`` items of an indexed dataset (a rehearsal or the small scale)."""

    def __init__(self, source: Any, n: int):
        self.source, self.n = source, min(int(n), len(source))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < self.n:
            raise IndexError(index)
        return self.source[index]

    def fingerprint(self) -> str:
        return f"{self.source.fingerprint()}[:{self.n}]"


def evaluate_released(spec: RunSpec, checkpoint: Path, ctx: RunContext) -> SeedResult:
    from baselines.sr.train_eval import count_macs_meta, evaluate_sr
    from bench.data.formats import open_dataset
    from bench.profile import count_params
    from methods.lipt.recipe import paper_param_count, sanity_metric

    seed = int(ctx.extra.get("seed", 0))
    net, s, form = load_released(spec.entry, Path(checkpoint), spec.args.get("variant"))
    net = net.to(ctx.device)
    full = open_dataset(spec.dataset, spec.split, ctx.data_root, scale=s)
    n = len(full)
    if spec.sampler.get("max_images"):
        n = min(n, int(spec.sampler["max_images"]))
    n = spec.capped("max_samples", n)
    test = FirstN(full, n) if n < len(full) else full
    ctx.log(f"  {spec.entry} x{s} ({form}) on {spec.dataset}: {n} of {len(full)} images")
    t0, c0 = time.perf_counter(), time.process_time()
    ev = evaluate_sr(net, test, s, ctx.handle, seed, f"{spec.dataset}-x{s}", device=ctx.device,
                     self_ensemble=False, chunk=int(spec.sampler.get("eval_chunk", 8)), log=ctx.log)
    eval_wall, eval_cpu = time.perf_counter() - t0, time.process_time() - c0
    setting: dict[str, Any] = {"sr_scale": s}
    if spec.sampler.get("max_images") and n < len(full):
        setting["images"] = n  # the small scale: another protocol, so it gets no delta beside the paper
    protocol = {"crop_border": s, "self_ensemble": False, "forward": spec.sampler.get("forward"),
                "lr_source": "the dataset's LR_bicubic files (MATLAB bicubic)", "checkpoint_form": form,
                "rounding": "SR output quantised to uint8 (BasicSR tensor2img), as the official test scripts of "
                            "SwinIR/EDSR/IMDN do; ELAN's and LIPT's train.py only clamp",
                "model_rgb_range": float(getattr(net, "rgb_range", 1.0)), "images": n, "images_in_set": len(full)}
    metrics = [metric_record(d, ev["metrics"][d], ev["n"], setting, {**ev["protocol"][d], **protocol})
               for d in METRICS]
    metrics.append(sanity_metric(ev, test, s, protocol))
    lr_hw = (math.ceil(720 / s), math.ceil(1280 / s))
    inner = getattr(net, "model", net)  # SwinIR's test padding wraps the network
    cost = {"params_m": count_params(inner) / 1e6, "gmacs": ev["gmacs_mean"],
            "gmacs_at": "mean over the test images at their own LR sizes",
            "gmacs_720p": count_macs_meta(inner, (1, 3, *lr_hw)) / 1e9, "gmacs_720p_lr_hw": list(lr_hw),
            "eval_wall_s": eval_wall, "eval_cpu_s": eval_cpu, "nfe": None}
    paper_count = paper_param_count(spec.impl, inner)
    if paper_count is not None:  # SwinIR's paper leaves out its relative-position tables
        cost["params_m_paper_convention"] = paper_count
    provenance = {"dataset_fingerprint": test.fingerprint(), "checkpoint_form": form,
                  "model": {"impl": spec.impl, "variant": spec.args.get("variant"), "sr_scale": s}}
    return SeedResult(metrics=metrics, cost=cost, provenance=provenance)
