"""The data, training and sampling steps of `bench reproduce tad-sr`, shared by every scale.

Images travel as float tensors in [-1, 1] (ResShift's normalisation, mean 0.5 std 0.5). The diffusion state
lives in the autoencoder's space: at paper scale the VQGAN f4 latent (an asset), at smoke the pixels
themselves (``space: pixel``, the official code's ``first_stage_model=None`` path with ``latent_flag: False``
input scaling), where y is the bicubic-upsampled LR image (official ``encode_first_stage(up_sample=True)``).
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from baselines.resshift.schedule import ResShiftSchedule
from baselines.resshift.sinsr import sinsr_loss
from baselines.resshift.unet import UNetModelSwin
from methods.tad_sr import distill as D


# ---------------------------------------------------------------------------------------------------- data
def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    x = torch.as_tensor(np.stack(images), dtype=torch.float32).permute(0, 3, 1, 2) / 255.0
    return (x * 2 - 1).contiguous()  # NCHW-contiguous: a channels-last input crashed (segfault) a GroupNorm/conv backward on CPU


def to_uint8(x: torch.Tensor) -> list[np.ndarray]:
    """[-1, 1] NCHW -> uint8 HWC, rounded half to even (BasicSR tensor2img)."""
    arr = ((x.clamp(-1, 1) + 1) / 2 * 255).permute(0, 2, 3, 1).detach().cpu().double().numpy()
    return [np.round(a).astype(np.uint8) for a in arr]


def upsample(lr: torch.Tensor, sf: int) -> torch.Tensor:
    return F.interpolate(lr, scale_factor=sf, mode="bicubic", align_corners=False)


@dataclass
class Pairs:
    hr: torch.Tensor  # [N, 3, H, W] in [-1, 1]
    lr: torch.Tensor  # [N, 3, H/sf, W/sf]
    sf: int

    @property
    def y(self) -> torch.Tensor:
        return upsample(self.lr, self.sf)

    def __len__(self) -> int:
        return self.hr.shape[0]


def smoke_whole_photo_pairs(draws: int, crops_per_draw: int, hr_patch: int, photo_size: int, sf: int,
                            seed: int) -> Pairs:
    """``draws`` Real-ESRGAN draws, each on a whole (randomly flipped) train photo, then ``crops_per_draw``
    aligned crops (HR at multiples of sf, LR at /sf) of each: the degradation acts on the same 128x128 images as
    at test (official: on 256x256 crops). Degrading 32x32 crops alone (the first smoke) put 8x8 LR through
    JPEG and a 0.15x resize (4x4 pixels), unlike any test input: measured on the smoke teacher at 500 steps,
    the one-call x0 went from -2.1 to -1.7 dB against bicubic with this change alone."""
    from bench.data.realesrgan_degrade import DegradationConfig, degrade
    from bench.data.smoke import photos

    images = photos("train", photo_size)
    rng = np.random.default_rng([seed, 19])
    cfg = DegradationConfig(sf=sf)
    hrs, lrs, lr_patch = [], [], hr_patch // sf
    for d in range(draws):
        img = images[d % len(images)]
        if rng.uniform() < 0.5:
            img = np.ascontiguousarray(img[:, ::-1])
        lr = degrade(img, np.random.default_rng([seed, 20, d]), cfg)
        for _ in range(crops_per_draw):
            top, left = (int(v) for v in rng.integers(0, (photo_size - hr_patch) // sf + 1, size=2))
            hrs.append(np.ascontiguousarray(img[top * sf: top * sf + hr_patch, left * sf: left * sf + hr_patch]))
            lrs.append(np.ascontiguousarray(lr[top: top + lr_patch, left: left + lr_patch]))
    return Pairs(to_tensor(hrs), to_tensor(lrs), sf)


def degraded_pairs(images: list[np.ndarray], sf: int, seed: int) -> Pairs:
    from bench.data.realesrgan_degrade import DegradationConfig, degrade_batch

    return Pairs(to_tensor(images), to_tensor(degrade_batch(images, seed, DegradationConfig(sf=sf))), sf)


# ---------------------------------------------------------------------------------------------- schedule
def make_schedule(cfg: dict[str, Any]) -> ResShiftSchedule:
    s = ResShiftSchedule(steps=int(cfg["steps"]), kappa=float(cfg["kappa"]),
                         min_noise_level=float(cfg["min_noise_level"]), etas_end=float(cfg["etas_end"]),
                         power=float(cfg["power"]), clip_denoised=bool(cfg.get("clip_denoised", True)))
    s.latent_flag = cfg.get("space", "latent") != "pixel"  # type: ignore[attr-defined]
    if not s.latent_flag:  # official _scale_input for latent_flag False: x / (3 kappa sqrt(eta_t) + 1)
        def scale_input(x_t: torch.Tensor, t: torch.Tensor, _s: ResShiftSchedule = s) -> torch.Tensor:
            return x_t / (_s._at(_s.sqrt_etas, t, x_t) * _s.kappa * 3 + 1)
        s.scale_input = scale_input  # type: ignore[method-assign]
    return s


# ---------------------------------------------------------------------------------------------- training
def _batches(n: int, batch: int, steps: int, gen: torch.Generator):
    for _ in range(steps):
        yield torch.randint(0, n, (batch,), generator=gen)


def train_teacher(model: torch.nn.Module, schedule: ResShiftSchedule, data: Pairs, cfg: dict[str, Any], seed: int,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """ResShift's objective: t uniform in {0..T-1}, x_t = q_sample(x0, y, t, eps), MSE on the predicted x0.
    Returns facts; with ``cfg['ema']`` the model's weights are replaced by their EMA at the end (the official
    trainer validates with EMA weights, rate 0.999 over 500k iterations)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=float(cfg["lr"]), weight_decay=0.0)
    sched = _lr_schedule(opt, cfg)
    ema = _Ema(model, float(cfg["ema"])) if cfg.get("ema") else None
    y_all, hr_all = data.y, data.hr
    model.train()
    last = float("nan")
    for step, idx in enumerate(_batches(len(data), int(cfg["batch_size"]), int(cfg["steps"]), gen)):
        x0, y = hr_all[idx], y_all[idx]
        t = torch.randint(0, schedule.steps, (len(idx),), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        x_t = schedule.q_sample(x0, y, t, noise)
        loss = (model(schedule.scale_input(x_t, t), t, y) - x0).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg.get("grad_clip", 1.0)))
        opt.step()
        sched.step()
        if ema is not None:
            ema.update(model)
        last = float(loss.detach())
        if (step + 1) % max(1, int(cfg["steps"]) // 4) == 0:
            log(f"    teacher step {step + 1}/{cfg['steps']}: loss {last:.4f}")
    if ema is not None:
        ema.copy_to(model)
    model.eval()
    return {"last_loss": last}


class _Ema:
    def __init__(self, model: torch.nn.Module, rate: float):
        self.rate = rate
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(self.rate).add_(v.detach(), alpha=1 - self.rate)
            else:
                self.shadow[k].copy_(v)

    def copy_to(self, model: torch.nn.Module) -> None:
        model.load_state_dict(self.shadow)


def _lr_schedule(opt: torch.optim.Optimizer, cfg: dict[str, Any]):
    """Linear warm-up, then constant (the official schedule) or cosine to zero (``schedule: cosine``)."""
    import math

    warmup, steps = int(cfg.get("warmup_steps", 0)), int(cfg["steps"])
    cosine = cfg.get("schedule") == "cosine"

    def factor(s: int) -> float:
        if warmup and s < warmup:
            return (s + 1) / warmup
        if cosine:
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warmup) / max(1, steps - warmup))))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def teacher_pool(teacher: UNetModelSwin, schedule: ResShiftSchedule, data: Pairs, seed: int,
                 chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(prior noise, the teacher's deterministic T-step sample) for every training pair, one draw each.

    The official trainer samples the teacher on the fly with fresh noise every step; at smoke a fixed pool,
    computed once and shared by both students (TAD-SeeSR pre-generates its teacher outputs the same way),
    keeps the T-fold teacher cost out of the distillation budget."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(data.hr.shape, generator=gen)
    y = data.y
    outs = []
    for i in range(0, len(data), chunk):
        outs.append(D.teacher_sample(schedule, teacher, y[i: i + chunk], noise[i: i + chunk]))
    return noise, torch.cat(outs)


def distill_student(kind: str, teacher: UNetModelSwin, schedule: ResShiftSchedule, data: Pairs,
                    pool: tuple[torch.Tensor, torch.Tensor], cfg: dict[str, Any], opts: D.TadOptions, seed: int,
                    d_cfg: dict[str, Any] | None = None, log: Callable[[str], None] = print) -> tuple[UNetModelSwin, dict[str, Any]]:
    """A one-step student initialised from the teacher, trained ``cfg['steps']`` steps (same batch, lr and
    pool for every kind). kind: "tad-sr" (regression + HSD + time-aware D) or "sinsr"."""
    gen = torch.Generator().manual_seed(seed)
    student = copy.deepcopy(teacher).train()
    for p in teacher.parameters():
        p.requires_grad_(False)
    teacher.eval()
    opt = torch.optim.AdamW(student.parameters(), lr=float(cfg["lr"]), weight_decay=0.0)
    sched = _lr_schedule(opt, cfg)
    disc = d_opt = None
    taps = D.discriminator_taps(teacher)
    if kind == "tad-sr" and opts.discriminator:
        with torch.no_grad():
            widths = [f.shape[1] for f in teacher.encoder_features(data.y[:1], torch.zeros(1, dtype=torch.long),
                                                                   data.y[:1], taps)]
        d_cfg = d_cfg or {}
        disc = D.TimeAwareDiscriminator(c_dim=int(d_cfg.get("c_dim", 64)), embed_dim=int(d_cfg.get("embed_dim", 160)),
                                        widths=widths, norm_groups=int(d_cfg.get("norm_groups", 32)),
                                        head_groups=int(d_cfg.get("head_groups", 4)))
        d_opt = torch.optim.AdamW(disc.parameters(), lr=float(cfg["lr"]), weight_decay=0.0)
    noise_all, target_all = pool
    y_all, hr_all = data.y, data.hr
    logs: dict[str, float] = {}
    for step, idx in enumerate(_batches(len(data), int(cfg["batch_size"]), int(cfg["steps"]), gen)):
        y, noise, target, gt = y_all[idx], noise_all[idx], target_all[idx], hr_all[idx]
        if kind == "sinsr":
            loss, _ = sinsr_loss(schedule, student, y, noise, target, gt)
            logs = {"loss": float(loss.detach())}
        elif kind == "tad-sr":
            out = D.student_forward(schedule, student, y, noise)
            loss = (out - target).pow(2).flatten(1).mean(1).mean()
            logs = {"mse": float(loss.detach())}
            if opts.distill != "none" and opts.lambda_hsd:
                hsd = D.score_distillation(schedule, teacher, y, out, target, opts, gen)
                loss = loss + opts.lambda_hsd * hsd
                logs["hsd"] = float(hsd.detach())
            if disc is not None:
                t_d = torch.randint(0, schedule.steps - 1, (len(idx),), generator=gen)
                xi = D._noise(out, opts.uniform_noise, gen)
                with torch.no_grad():
                    real = D.gan_features(schedule, teacher, gt, y, t_d, xi, taps)
                fake = D.gan_features(schedule, teacher, out, y, t_d, xi, taps)  # graph into the student
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
        torch.nn.utils.clip_grad_norm_(student.parameters(), float(cfg.get("grad_clip", 1.0)))
        opt.step()
        sched.step()
        if (step + 1) % max(1, int(cfg["steps"]) // 4) == 0:
            log(f"    {kind} step {step + 1}/{cfg['steps']}: " + ", ".join(f"{k} {v:.4f}" for k, v in logs.items()))
    student.eval()
    return student, {"last": logs}


# ---------------------------------------------------------------------------------------------- sampling
def super_resolve(model: UNetModelSwin, schedule: ResShiftSchedule, lr: torch.Tensor, sf: int, nfe: int,
                  seed: int) -> torch.Tensor:
    """SR images in [-1, 1]: the teacher's T-step deterministic sampler (nfe = T) or one student step (nfe 1)."""
    y = upsample(lr, sf)
    noise = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        if nfe == 1:
            return D.student_forward(schedule, model, y, noise).clamp(-1, 1)
        if nfe != schedule.steps:
            raise ValueError(f"the teacher samples with its {schedule.steps} steps, not {nfe}")
        return schedule.sample(model, y, y, noise, deterministic=True)
