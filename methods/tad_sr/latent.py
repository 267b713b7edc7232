"""The small/paper path of `bench reproduce tad-sr`: the released ResShift teacher, SinSR and TAD-SR in the latent
space of ResShift's VQGAN f4 autoencoder (baselines/resshift/vqgan.py).

Facts read from zsyOAOA/ResShift [R] (``models/gaussian_diffusion.py``, ``sampler.py``, ``trainer.py``,
``inference_resshift.py``, ``utils/util_image.py``, configs/realsr_swinunet_realesrgan256.yaml):
* z_y = encode(bicubic x4 of the LR) * scale_factor (``encode_first_stage(up_sample=True)``: F.interpolate
  bicubic, align_corners False), z_0 = encode(HR) * scale_factor, scale_factor 1.0 for realsr x4; encode does not
  quantise; decode(z / scale_factor) quantises to the nearest code, then the sampler clamps to [-1, 1];
* the denoiser's ``lq`` input is the LR image itself in pixels ([-1, 1], mean 0.5 std 0.5), 64x64 beside a 64x64
  latent, so no feature extractor; ``clip_denoised`` is False in latent space (True only without an autoencoder);
* large LR images are processed in chop_size tiles with stride chop_stride (512/448 at x4), the tile outputs
  averaged where they overlap (``ImageSpliterTh``); every LR (tile) is reflect-padded to a multiple of lq_size
  (``padding_offset``), the output cropped back.
The VQGAN runs in fp16 officially (``use_fp16: True``); here it runs in the model's dtype (fp32 on a CPU).
Training pairs: TAD-SR's on-the-fly recipe (configs/TAD-SR.yaml): each step, random GT crops of ImageNet train
images with h-flips, their LR by the Real-ESRGAN second-order degradation, the teacher's deterministic T-step
sample from a fresh x_T as the regression target (no pool, unlike smoke), the student's EMA evaluated.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.resshift.schedule import ResShiftSchedule
from baselines.resshift.sinsr import sinsr_loss, student_forward, teacher_sample
from baselines.resshift.unet import UNetModelSwin
from baselines.resshift.vqgan import VQModelTorch, official_state_dict
from bench.registry import BenchError
from methods.tad_sr import distill as D
from methods.tad_sr import pipeline as P

TRAIN_FOLDER = "imagenet/train"  # under the data root: configs/TAD-SR.yaml's imagenet_small/train, any depth


class LqBound(nn.Module):
    """The denoiser with its LR input bound per batch. bench's shared loss and sampler helpers pass one tensor y
    as both the diffusion's y and the network's lq, which is right in pixel space (smoke); in latent space y is
    z_y and lq stays the LR image, so the wrapper ignores the passed lq and uses the bound one."""

    def __init__(self, net: UNetModelSwin):
        super().__init__()
        self.net = net
        self.lq: torch.Tensor | None = None

    def bind(self, lq: torch.Tensor) -> LqBound:
        self.lq = lq
        return self

    def _lq(self, x: torch.Tensor) -> torch.Tensor:
        if self.lq is None or self.lq.shape[0] != x.shape[0]:
            raise RuntimeError("LqBound: bind the batch's LR images before calling the denoiser")
        return self.lq

    def forward(self, x: torch.Tensor, t: torch.Tensor, _y: torch.Tensor) -> torch.Tensor:
        return self.net(x, t, self._lq(x))

    def encoder_features(self, x: torch.Tensor, t: torch.Tensor, _y: torch.Tensor,
                         taps: Sequence[int]) -> list[torch.Tensor]:
        return self.net.encoder_features(x, t, self._lq(x), taps)


@dataclass
class LatentSpace:
    vq: VQModelTorch
    sf: int
    scale_factor: float = 1.0

    @torch.no_grad()
    def encode_lr(self, lq: torch.Tensor) -> torch.Tensor:
        return self.encode(F.interpolate(lq, scale_factor=self.sf, mode="bicubic"))

    @property
    def device(self) -> torch.device:
        return next(self.vq.parameters()).device

    @torch.no_grad()
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return self.vq.encode(image.to(self.device)) * self.scale_factor

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vq.decode(z / self.scale_factor).clamp(-1, 1)


def load_teacher(path: Path, model_cfg: dict[str, Any]) -> UNetModelSwin:
    """The released ResShift checkpoint (``state_dict`` wrapper and DDP/compile prefixes accepted), strictly."""
    net = UNetModelSwin(**model_cfg)
    try:
        net.load_state_dict(official_state_dict(torch.load(path, map_location="cpu", weights_only=True)), strict=True)
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise BenchError(f"{path}: not a ResShift UNetModelSwin checkpoint at the planned config ({first})") from None
    return net.eval()


def load_autoencoder(path: Path, cfg: dict[str, Any]) -> VQModelTorch:
    from baselines.resshift import vqgan

    try:
        return vqgan.load(path, cfg)
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise BenchError(f"{path}: not a VQModelTorch checkpoint at the planned config ({first})") from None


# ---------------------------------------------------------------------------------------------- training data
class TrainCrops:
    """Random ``gt_size`` crops (h-flip 0.5) of the training images and their Real-ESRGAN-degraded LR, seeded.
    An image whose short side is below gt_size is first resized up to it (bicubic) [I]."""

    def __init__(self, data_root: Path, gt_size: int, sf: int, seed: int):
        from bench.data.images import list_images

        folder = Path(data_root) / TRAIN_FOLDER
        files = list_images(folder, recursive=True) if folder.is_dir() else []
        if not files:
            raise BenchError(f"tad-sr training images: no images under {folder}; put ImageNet train images there "
                             f"(configs/TAD-SR.yaml reads imagenet_small/train; any sub-folders)")
        self.files, self.gt_size, self.sf = files, int(gt_size), int(sf)
        self.rng = np.random.default_rng([seed, 31])

    def _crop(self, path: Path) -> np.ndarray:
        from PIL import Image

        from bench.data.images import read_image

        img = read_image(path)
        h, w = img.shape[:2]
        if min(h, w) < self.gt_size:
            k = self.gt_size / min(h, w)
            size = (max(self.gt_size, round(w * k)), max(self.gt_size, round(h * k)))
            img = np.asarray(Image.fromarray(img).resize(size, Image.BICUBIC))
            h, w = img.shape[:2]
        top = int(self.rng.integers(0, h - self.gt_size + 1))
        left = int(self.rng.integers(0, w - self.gt_size + 1))
        crop = img[top: top + self.gt_size, left: left + self.gt_size]
        return np.array(crop[:, ::-1] if self.rng.uniform() < 0.5 else crop)  # a writable copy

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        from bench.data.realesrgan_degrade import DegradationConfig, degrade

        crops = [self._crop(self.files[int(self.rng.integers(len(self.files)))]) for _ in range(size)]
        lrs = [degrade(c, np.random.default_rng(self.rng.integers(2**32)), DegradationConfig(sf=self.sf))
               for c in crops]
        return P.to_tensor(crops), P.to_tensor(lrs)


# ---------------------------------------------------------------------------------------------- distillation
def distill(kind: str, teacher_net: UNetModelSwin, space: LatentSpace, schedule: ResShiftSchedule,
            crops: TrainCrops, cfg: dict[str, Any], steps: int, opts: D.TadOptions, d_cfg: dict[str, Any],
            seed: int, log: Callable[[str], None] = print) -> tuple[UNetModelSwin, dict[str, float]]:
    """A one-step student (a copy of the teacher) trained ``steps`` steps on fresh batches; returns its EMA.
    kind "tad-sr": latent MSE to the teacher's sample + lambda_hsd HSD + lambda_gan time-aware hinge GAN;
    kind "sinsr": SinSR's loss. Same batch, lr, warm-up and EMA for both (configs/TAD-SR.yaml)."""
    device = space.device
    gen = torch.Generator().manual_seed(seed)  # CPU draws, moved to the device: the same stream anywhere
    torch.manual_seed(seed)
    # distill.py's HSD/GAN noise takes a CPU generator; on a GPU it draws from the (seeded) global stream
    d_gen = gen if device.type == "cpu" else None
    teacher = LqBound(teacher_net.eval().requires_grad_(False))
    student_net = copy.deepcopy(teacher_net).requires_grad_(True).train()
    student = LqBound(student_net)
    opt = torch.optim.AdamW(student_net.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]))
    sched = P._lr_schedule(opt, {"steps": steps, "warmup_steps": min(int(cfg["warmup_steps"]), steps)})
    ema = P._Ema(student_net, float(cfg["ema_rate"]))
    taps = D.discriminator_taps(teacher_net)
    disc = d_opt = None
    logs: dict[str, float] = {}
    for step in range(steps):
        hr, lq = (x.to(device) for x in crops.batch(int(cfg["batch_size"])))
        z_y, z_0 = space.encode_lr(lq), space.encode(hr)
        teacher.bind(lq), student.bind(lq)
        noise = torch.randn(z_y.shape, generator=gen).to(device)
        target = teacher_sample(schedule, teacher, z_y, noise)
        if kind == "sinsr":
            loss, _ = sinsr_loss(schedule, student, z_y, noise, target, z_0)
            logs = {"loss": float(loss.detach())}
        elif kind == "tad-sr":
            out = student_forward(schedule, student, z_y, noise)
            loss = (out - target).pow(2).flatten(1).mean(1).mean()
            logs = {"mse": float(loss.detach())}
            if opts.distill != "none" and opts.lambda_hsd:
                hsd = D.score_distillation(schedule, teacher, z_y, out, target, opts, d_gen)
                loss = loss + opts.lambda_hsd * hsd
                logs["hsd"] = float(hsd.detach())
            if opts.discriminator:
                t_d = torch.randint(0, schedule.steps - 1, (z_y.shape[0],), generator=gen).to(device)
                xi = D._noise(out, opts.uniform_noise, d_gen)
                with torch.no_grad():
                    real = D.gan_features(schedule, teacher, z_0, z_y, t_d, xi, taps)
                if disc is None:  # widths of the teacher's feature taps
                    disc = D.TimeAwareDiscriminator(c_dim=int(d_cfg["c_dim"]), embed_dim=int(d_cfg["embed_dim"]),
                                                    widths=[f.shape[1] for f in real],
                                                    norm_groups=int(d_cfg.get("norm_groups", 32)),
                                                    head_groups=int(d_cfg.get("head_groups", 4))).to(device)
                    d_opt = torch.optim.AdamW(disc.parameters(), lr=float(cfg["lr"]), weight_decay=0.0)
                fake = D.gan_features(schedule, teacher, out, z_y, t_d, xi, taps)
                d_loss = D.hinge_d_loss(disc(real, t_d), disc(fake, t_d, detach=True))
                d_opt.zero_grad(set_to_none=True)
                d_loss.backward()
                d_opt.step()
                g_adv = -disc(fake, t_d).mean(dim=-1).mean()
                loss = loss + opts.lambda_gan * g_adv
                logs.update(d=float(d_loss.detach()), adv=float(g_adv.detach()))
        else:
            raise ValueError(f"unknown student kind {kind!r}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema.update(student_net)
        if (step + 1) % max(1, steps // 4) == 0:
            log(f"    {kind} step {step + 1}/{steps}: " + ", ".join(f"{k} {v:.4f}" for k, v in logs.items()))
    ema.copy_to(student_net)
    return student_net.eval().requires_grad_(False), logs


# ---------------------------------------------------------------------------------------------- inference
def _padded(lq: torch.Tensor, offset: int) -> torch.Tensor:
    h, w = lq.shape[-2:]
    pad_h, pad_w = -h % offset, -w % offset
    return F.pad(lq, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else lq


def _sample(net: UNetModelSwin, space: LatentSpace, schedule: ResShiftSchedule, lq: torch.Tensor, nfe: int,
            gen: torch.Generator, offset: int) -> torch.Tensor:
    h, w = lq.shape[-2:]
    lq_p = _padded(lq.to(space.device), offset)
    model = LqBound(net).bind(lq_p)
    z_y = space.encode_lr(lq_p)
    noise = torch.randn(z_y.shape, generator=gen).to(z_y.device)
    with torch.no_grad():
        if nfe == 1:
            z = student_forward(schedule, model, z_y, noise)
        elif nfe == schedule.steps:
            z = schedule.sample(model, z_y, lq_p, noise, deterministic=True)
        else:
            raise ValueError(f"the teacher samples with its {schedule.steps} steps, not {nfe}")
    return space.decode(z)[..., : h * space.sf, : w * space.sf]


def _starts(length: int, size: int, stride: int) -> list[int]:
    if length <= size:
        return [0]
    return sorted({min(s, length - size) for s in range(0, length, stride)})


def super_resolve(net: UNetModelSwin, space: LatentSpace, schedule: ResShiftSchedule, lq: torch.Tensor, nfe: int,
                  seed: int, chop_size: int, chop_stride: int, offset: int) -> torch.Tensor:
    """One LR image [1, 3, h, w] in [-1, 1] -> its SR image, tiled like the official sampler when larger than
    chop_size (each tile its own noise draw; overlaps averaged)."""
    gen = torch.Generator().manual_seed(seed)
    h, w = lq.shape[-2:]
    if h <= chop_size and w <= chop_size:
        return _sample(net, space, schedule, lq, nfe, gen, offset)
    sf = space.sf
    out = torch.zeros(1, 3, h * sf, w * sf, device=space.device)
    count = torch.zeros_like(out)
    for top in _starts(h, chop_size, chop_stride):
        for left in _starts(w, chop_size, chop_stride):
            tile = lq[..., top: top + chop_size, left: left + chop_size]
            region = (..., slice(top * sf, (top + tile.shape[-2]) * sf), slice(left * sf, (left + tile.shape[-1]) * sf))
            out[region] += _sample(net, space, schedule, tile, nfe, gen, offset)
            count[region] += 1
    return out / count


# ---------------------------------------------------------------------------------------------- the run
def _model_config(spec: Any) -> dict[str, Any]:
    from baselines.resshift.unet import REALSR_X4

    cfg = spec.train["model"]
    return dict(REALSR_X4) if cfg == "realsr-x4" else dict(cfg)


def _autoencoder_config(spec: Any) -> dict[str, Any]:
    from baselines.resshift.vqgan import F4_CONFIG

    cfg = spec.train["autoencoder_config"]
    return dict(F4_CONFIG) if cfg == "vq-f4" else dict(cfg)


def _student_dir(spec: Any, seed: int, ctx: Any) -> Path:
    """A student is trained once per (entry, config, seed, caps) and evaluated on every test set."""
    import hashlib

    from bench.spec import canonical_json

    key = canonical_json({"entry": spec.entry, "train": spec.train, "rehearsal": spec.rehearsal or {},
                          "schedule": {k: spec.sampler[k] for k in ("steps", "kappa", "min_noise_level", "etas_end",
                                                                    "power", "scale_factor", "clip_denoised")},
                          "seed": seed, "version": spec.recipe_version})
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return ctx.handle.dir.parent / "_shared" / f"student-{spec.entry}-{digest}" / f"seed{seed}"


def _student(spec: Any, seed: int, ctx: Any, teacher: UNetModelSwin, space: LatentSpace,
             schedule: ResShiftSchedule, root: Path) -> tuple[UNetModelSwin, dict[str, Any]]:
    import time

    from bench.atomic import write_json, write_with
    from bench.distributed import derive_seed

    out = _student_dir(spec, seed, ctx)
    iterations = int(spec.train["iterations"])
    steps = min(iterations, int((spec.rehearsal or {}).get("max_steps", iterations)))
    if (out / "student.pt").exists():
        student = copy.deepcopy(teacher)
        student.load_state_dict(torch.load(out / "student.pt", map_location=space.device))
        ctx.log(f"  {spec.entry}: reusing the finished training in {out}")
        return student.eval(), {**__import__("json").loads((out / "student.json").read_text()), "reused": True}
    ctx.log(f"  {spec.entry}: distilling {steps} steps from the released teacher in the VQGAN f4 latent")
    # one stream of training crops for both students (equal data, like smoke's shared pool)
    crops = TrainCrops(root, int(spec.train["gt_size"]), space.sf, derive_seed(seed, "train-crops"))
    c0 = time.process_time()
    student, last = distill(spec.impl, teacher, space, schedule, crops, spec.train, steps,
                            D.TadOptions(**spec.train["tad"]), spec.train["discriminator"],
                            derive_seed(seed, spec.entry, "distill"), log=ctx.log)
    facts = {"train_cpu_s": time.process_time() - c0, "train_steps": steps, "last_losses": last,
             "student_dir": str(out)}
    write_with(out / "student.pt", lambda f: torch.save(student.state_dict(), f))
    write_json(out / "student.json", facts)
    return student, {**facts, "reused": False}


def _test_items(spec: Any, root: Path) -> list[dict[str, Any]]:
    from bench.data.formats import open_dataset

    ds = open_dataset(spec.dataset, spec.split, root)
    n = min(len(ds), int((spec.rehearsal or {}).get("max_samples", len(ds))))
    items = []
    for i in range(n):
        item = ds[i]
        items.append({"lr": item["input"] if "input" in item else item["image"], "hr": item.get("target"),
                      "name": item.get("name", str(i))})
    return items


def run_seed(spec: Any, seed: int, ctx: Any, root: Path) -> Any:
    """One (entry, test set) run at small/paper scale: load the VQGAN and the released teacher, distil the
    student (or reuse it), super-resolve the test set, record the paper's metrics, the sanity floor and cost."""
    import time

    from bench import assets
    from bench.distributed import derive_seed
    from bench.profile import count_params
    from bench.recipe import SeedResult

    vq = load_autoencoder(assets.require("resshift-vqgan-f4"), _autoencoder_config(spec)).to(ctx.device)
    space = LatentSpace(vq, int(spec.setting["sr_scale"]), float(spec.sampler["scale_factor"]))
    teacher = load_teacher(assets.require("resshift-realsr-x4-s15"), _model_config(spec)).to(ctx.device)
    schedule = P.make_schedule(spec.sampler)
    nfe = int(spec.sampler["nfe"])
    model, facts = teacher, {}
    cost: dict[str, Any] = {}
    if spec.entry != "resshift":
        model, facts = _student(spec, seed, ctx, teacher, space, schedule, root)
        cost.update(train_cpu_s=facts["train_cpu_s"], train_steps=facts["train_steps"])
    items = _test_items(spec, root)
    kwargs = dict(chop_size=int(spec.sampler["chop_size"]), chop_stride=int(spec.sampler["chop_stride"]),
                  offset=int(spec.sampler["padding_offset"]))
    c0, t0 = time.process_time(), time.perf_counter()
    preds = [P.to_uint8(super_resolve(model, space, schedule, P.to_tensor([it["lr"]]), nfe,
                                      derive_seed(seed, "eval-noise", i), **kwargs))[0]
             for i, it in enumerate(items)]
    eval_cpu, eval_wall = time.process_time() - c0, time.perf_counter() - t0
    metrics = _metrics(spec, items, preds)
    if items[0]["hr"] is not None:
        metrics.append(_sanity(spec, seed, items, preds, space, schedule, nfe, kwargs))
    cost.update({"nfe": nfe, "params_m": count_params(model, trainable_only=False) / 1e6,
                 "autoencoder_params_m": count_params(vq, trainable_only=False) / 1e6,
                 "latency_ms": 1000 * eval_wall / len(items), "latency_input": "each test LR image (VQGAN encode + "
                 f"{nfe} network call(s) + decode)", "eval_cpu_s": eval_cpu, "eval_wall_s": eval_wall})
    provenance = {"model": {"impl": spec.impl, "config": spec.train["model"]},
                  "autoencoder": spec.train["autoencoder_config"], "student": {k: v for k, v in facts.items()
                                                                              if k != "train_cpu_s"},
                  "test_items": len(items)}
    return SeedResult(metrics=metrics, cost=cost, provenance=provenance)


FULL_REFERENCE = ("psnr_y@matlab", "ssim_y@matlab", "lpips_alex")


def _metrics(spec: Any, items: list[dict[str, Any]], preds: list[np.ndarray]) -> list[dict[str, Any]]:
    from bench.metrics import compute
    from bench.recipe import metric_record

    targets = [it["hr"] for it in items]
    protocol = {"test": f"{spec.dataset}/{spec.split}", "nfe": int(spec.sampler["nfe"]),
                "sampler": spec.sampler["sampler"], "space": "VQGAN f4 latent",
                "noise_seed": "derive_seed(seed, 'eval-noise', image index)"}
    out = []
    for dialect in spec.metrics:
        if dialect in FULL_REFERENCE:
            if targets[0] is None:
                raise BenchError(f"{spec.dataset} has no ground truth for {dialect}")
            extra = {"self_ensemble": False} if dialect != "lpips_alex" else {}
            # TAD-SR evaluate.py: no border crop
            r = compute(dialect, preds=preds, targets=targets, crop_border=0, float_range=255.0, **extra)
        else:  # clipiqa, musiq: no reference
            r = compute(dialect, preds=preds, float_range=255.0)
        out.append(metric_record(dialect, r.value, r.n, dict(spec.setting), {**r.protocol, **protocol}))
    return out


SANITY_NOTE = ("strictly above the same architecture at a random initialisation (same sampler, noise, VQGAN and "
               "inputs): the loaded or distilled weights must move the outputs toward the ground truth. A weak "
               "floor, stated as such; PSNR over bicubic is in the protocol (a diffusion sample is one plausible "
               "image, not the posterior mean)")


def _sanity(spec: Any, seed: int, items: list[dict[str, Any]], preds: list[np.ndarray], space: LatentSpace,
            schedule: ResShiftSchedule, nfe: int, kwargs: dict[str, Any]) -> dict[str, Any]:
    from baselines.sr.train_eval import bicubic_reference
    from bench.distributed import derive_seed
    from bench.metrics import compute
    from bench.sanity import sanity_record

    torch.manual_seed(derive_seed(seed, "untrained-denoiser"))
    untrained = UNetModelSwin(**_model_config(spec)).eval().to(space.device)
    out = [P.to_uint8(super_resolve(untrained, space, schedule, P.to_tensor([it["lr"]]), nfe,
                                    derive_seed(seed, "eval-noise", i), **kwargs))[0] for i, it in enumerate(items)]
    targets = [it["hr"] for it in items]

    def psnr(images: list[np.ndarray]) -> float:
        return compute("psnr_y@matlab", preds=images, targets=targets, crop_border=0, float_range=255.0,
                       self_ensemble=False).value

    model_psnr, untrained_psnr = psnr(preds), psnr(out)
    bicubic = bicubic_reference(items, space.sf)["value"]
    return sanity_record("psnr_gain_y@untrained", model_psnr - untrained_psnr, len(items), floor=0.0,
                         trivial="the same UNetModelSwin at a random initialisation, same sampler, noise and VQGAN, "
                                 "psnr_y@matlab crop 0", trivial_value=untrained_psnr, note=SANITY_NOTE,
                         setting=dict(spec.setting),
                         protocol={"model_psnr_y": model_psnr, "untrained_psnr_y": untrained_psnr,
                                   "bicubic_psnr_y_crop_sf": bicubic})
