"""GPU validation of the project on one H100 or H200, in under 8 minutes (issue 15).

    tools/gpu_validate.sh [--out DIR] [--budget-s 470] [--batch 32] [--stages a,b] [--peak-tflops P] [--dry-run]

Stages, each a subprocess of this script with its own time limit (a crash or a hang in one is recorded and the
others still run), each writing one JSON record under the output directory (default
results/gpu/<date>-<gpu>/):

  lipt-profile   `bench profile lipt --device cuda --scale paper --repeats 50 --format json`: every LIPT entry
                 and baseline at the paper's 320x180 (x4) input, fp32 and fp16 rows, CUDA-event timing.
  dit-xl-2-train DiT-XL/2 training steps (256x256 ImageNet latents 32x32x4, AdamW, bf16 autocast) timed with CUDA
                 events: eager with fused attention (SDPA's flash / memory-efficient / cuDNN kernels), eager
                 with plain attention (SDPA's math kernel: QK^T, softmax and AV as separate ops), and
                 torch.compile with fused attention. Reports model FLOPs utilisation (see `mfu`).
  u-dit-b-train  U-DiT-B training steps in the same harness (eager, fused), beside DiT-XL/2's.
  u-dit-small    `bench reproduce u-dit --scale small --max-steps 300 --json` into a private run store.

MFU = model FLOPs per second achieved / the GPU's peak dense bf16 FLOPs (PEAK_BF16_TFLOPS by device name).
Model FLOPs per training step = 3 x forward FLOPs (the backward pass costs two forwards), forward FLOPs =
2 x the MACs bench.profile.count_macs counts on the model at the benchmark's batch. The count is the model's,
not the kernel's: the same number for every variant (recomputation or a slower attention kernel lowers MFU).

Every record carries the hardware: GPU name, memory, SMs, compute capability, driver, CUDA, cuDNN and torch
versions, the bench commit. `--dry-run` prints the plan and writes the records' skeletons (status "planned",
model FLOPs counted on the meta device) without touching CUDA; tests/core/test_gpu_validate.py runs it so.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCHEMA = "bench.gpu_validate/1"
BUDGET_S = 470  # the whole run, under the 8 minutes the issue allows

# Peak dense (no sparsity) bf16 tensor-core TFLOPs from the vendor data sheets, by a substring of
# torch.cuda.get_device_name(); the first match wins, so specific names come before the family name.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM5 ("NVIDIA H100 80GB HBM3")
    ("H200 NVL", 835.0),
    ("H200", 989.0),  # SXM ("NVIDIA H200"), GH200 too
    ("A100", 312.0),
    ("L40S", 362.0),
)


def peak_bf16_tflops(device_name: str) -> float | None:
    for pattern, peak in PEAK_BF16_TFLOPS:
        if pattern.lower() in device_name.lower():
            return peak
    return None


def flops_per_train_step(forward_flops: float) -> float:
    """Model FLOPs of one training step: the forward, and a backward that costs two forwards."""
    return 3.0 * forward_flops


def mfu(forward_flops: float, step_s: float, peak_tflops: float) -> float:
    """Model FLOPs utilisation of a training step that took `step_s` seconds."""
    if step_s <= 0 or peak_tflops <= 0:
        raise ValueError("step time and peak must be positive")
    return flops_per_train_step(forward_flops) / step_s / (peak_tflops * 1e12)


# ------------------------------------------------------------------------------------------------ the plan
@dataclass(frozen=True)
class Variant:
    compile: bool
    attention: str  # "fused" | "plain"

    @property
    def name(self) -> str:
        return f"{'compiled' if self.compile else 'eager'}-{self.attention}-attention"


@dataclass(frozen=True)
class Stage:
    name: str
    what: str
    timeout_s: int
    command: tuple[str, ...] = ()  # a bench command run as is; empty: a training-step benchmark in this script
    model: str | None = None
    variants: tuple[Variant, ...] = field(default_factory=tuple)


TRAIN_VARIANTS = (Variant(False, "fused"), Variant(False, "plain"), Variant(True, "fused"))


def plan(batch: int) -> list[Stage]:
    bench = (str(Path(sys.executable).parent / "bench"),) if (Path(sys.executable).parent / "bench").exists() \
        else (sys.executable, "-m", "bench.cli")
    return [
        Stage("lipt-profile", "LIPT and its baselines at 320x180 (x4): params, MACs, latency fp32 and fp16, CUDA "
              "events, 50 repeats", 90, command=(*bench, "profile", "lipt", "--device", "cuda", "--scale", "paper",
                                          "--repeats", "50", "--format", "json")),
        Stage("dit-xl-2-train", f"DiT-XL/2 training step, batch {batch}, bf16 autocast: MFU eager/compiled, "
              "fused/plain attention", 180, model="DiT-XL/2", variants=TRAIN_VARIANTS),
        Stage("u-dit-b-train", f"U-DiT-B training step, batch {batch}, bf16 autocast, beside DiT-XL/2", 60,
              model="U-DiT-B", variants=(Variant(False, "fused"),)),
        Stage("u-dit-small", "bench reproduce u-dit --scale small --max-steps 300 (a CUDA rehearsal of the small "
              "scale)", 135, command=(*bench, "reproduce", "u-dit", "--scale", "small", "--max-steps", "300",
                                      "--json")),
    ]


# ---------------------------------------------------------------------------------------------- hardware
def _nvidia_smi(field_name: str) -> str | None:
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return None
    try:
        out = subprocess.run([tool, f"--query-gpu={field_name}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def hardware(dry_run: bool = False) -> dict[str, Any]:
    """What ran the records: GPU, driver, CUDA, cuDNN, torch, the bench commit (no CUDA call with dry_run)."""
    import torch

    from bench.provenance import git_state

    info: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
                            "host": platform.node(), "bench_git": git_state(), "gpu": None, "driver": None}
    if dry_run or not torch.cuda.is_available():
        return info
    props = torch.cuda.get_device_properties(0)
    info.update(gpu=torch.cuda.get_device_name(0), gpu_count=torch.cuda.device_count(),
                gpu_memory_gb=round(props.total_memory / 2**30, 1), sm_count=props.multi_processor_count,
                compute_capability=f"{props.major}.{props.minor}", cudnn=torch.backends.cudnn.version(),
                driver=_nvidia_smi("driver_version"), peak_bf16_tflops=peak_bf16_tflops(torch.cuda.get_device_name(0)))
    return info


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def default_out(gpu_name: str | None) -> Path:
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    return REPO / "results" / "gpu" / f"{day}-{slug(gpu_name) if gpu_name else 'dry-run'}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record(stage: Stage, status: str, hw: dict[str, Any], settings: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"schema": SCHEMA, "stage": stage.name, "what": stage.what, "status": status, "hardware": hw,
            "command": list(stage.command) or None, "timeout_s": stage.timeout_s, "settings": settings, **extra}


def write(out: Path, data: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{data['stage']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------------- the step benchmark
def build_model(name: str, device: str) -> Any:
    """DiT-XL/2 or U-DiT-B for ImageNet 256 (32x32x4 latents, 1000 classes), initialised with seed 0."""
    import torch

    from baselines.dit.model import DIT_CONFIGS, dit
    from methods.u_dit.model import udit

    torch.manual_seed(0)
    with torch.device(device):
        return dit(name) if name in DIT_CONFIGS else udit(name)


def forward_flops(name: str, batch: int) -> int:
    """2 x the MACs of one training-mode forward at `batch`, counted on the meta device (no memory, no GPU)."""
    import torch

    from bench.profile import count_macs

    with torch.random.fork_rng(devices=[]):
        model = build_model(name, "meta").train()
        inputs = (torch.zeros(batch, 4, 32, 32, device="meta"), torch.zeros(batch, dtype=torch.long, device="meta"),
                  torch.zeros(batch, dtype=torch.long, device="meta"))
        return 2 * count_macs(model, *inputs)


def attention_kernels(kind: str) -> Any:
    """fused: SDPA's flash, memory-efficient and cuDNN kernels; plain: its math kernel (separate matmuls and
    softmax, the attention of a model without fused kernels)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if kind == "plain":
        return sdpa_kernel([SDPBackend.MATH])
    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION])


def train_step_fn(model: Any, batch: int, variant: Variant, device: str) -> Callable[[], None]:
    """One DDPM training step as DiT's train.py takes it (eps-MSE on the noised latent; the variance term is
    left out, it costs no model FLOPs), AdamW, bf16 autocast."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator(device=device).manual_seed(0)
    x0 = torch.randn(batch, 4, 32, 32, device=device, generator=gen)
    noise = torch.randn(x0.shape, device=device, generator=gen)
    t = torch.randint(0, 1000, (batch,), device=device, generator=gen)
    y = torch.randint(0, 1000, (batch,), device=device, generator=gen)
    alpha_bar = torch.linspace(0.9999, 0.005, 1000, device=device)[t].view(-1, 1, 1, 1)
    x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
    model.train()
    forward = torch.compile(model) if variant.compile else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0, fused=True)

    def step() -> None:
        with attention_kernels(variant.attention), torch.autocast("cuda", dtype=torch.bfloat16):
            out = forward(x_t, t, y)
            loss = F.mse_loss(out[:, :4].float(), noise)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def run_train_stage(stage: Stage, batch: int, warmup: int, repeats: int, peak: float | None,
                    on_row: Callable[[list[dict[str, Any]]], None] = lambda rows: None) -> list[dict[str, Any]]:
    """Every variant of the stage; `on_row` sees the rows so far after each (so a stage stopped by its time
    limit still leaves what it measured)."""
    import torch

    from bench.profile import latency

    device = "cuda"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    fwd = forward_flops(stage.model, batch)
    rows = []
    for variant in stage.variants:
        row: dict[str, Any] = {"model": stage.model, "variant": variant.name, "compile": variant.compile,
                               "attention": variant.attention, "batch": batch, "precision": "bf16-autocast",
                               "forward_flops": fwd, "flops_per_step": flops_per_train_step(fwd)}
        try:
            model = build_model(stage.model, device)
            step = train_step_fn(model, batch, variant, device)
            torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            step()  # the first step: torch.compile compiles here
            torch.cuda.synchronize()
            row["first_step_s"] = time.perf_counter() - t0
            timing = latency(step, warmup=warmup, repeats=repeats, device=device)  # CUDA events, median + IQR
            step_s = timing["median_ms"] / 1e3
            row.update(step_ms_median=timing["median_ms"], step_ms_iqr=timing["iqr_ms"], repeats=timing["repeats"],
                       warmup=warmup + 1, images_per_s=batch / step_s,
                       model_tflops_per_s=flops_per_train_step(fwd) / step_s / 1e12,
                       mfu=mfu(fwd, step_s, peak) if peak else None,
                       peak_memory_gb=torch.cuda.max_memory_allocated() / 2**30, status="ok")
        except Exception as exc:  # noqa: BLE001  (a variant failing, by a compile error or OOM, spares the others)
            row.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        finally:
            model = step = None  # free the GPU before the next variant
            torch.cuda.empty_cache()
        rows.append(row)
        print(json.dumps(row, default=str), flush=True)
        on_row(rows)
    return rows


# ------------------------------------------------------------------------------------------ stage drivers
def _tail(text: str, n: int = 4000) -> str:
    return text[-n:] if text else ""


def run_command_stage(stage: Stage, out: Path, timeout_s: float) -> dict[str, Any]:
    """A bench command, its JSON output parsed, with a private run store under the output directory."""
    env = {**os.environ, "BENCH_RESULTS": str(out / "runs"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(list(stage.command), capture_output=True, text=True, timeout=timeout_s, env=env,
                              cwd=REPO, check=False)
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return {"status": "timeout", "wall_s": time.perf_counter() - t0, "stderr_tail": _tail(stderr)}
    result: dict[str, Any] = {"status": "ok" if proc.returncode == 0 else "failed", "returncode": proc.returncode,
                              "wall_s": time.perf_counter() - t0, "stderr_tail": _tail(proc.stderr)}
    try:
        result["output"] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        result["stdout_tail"] = _tail(proc.stdout)
    return result


def run_stage_child(stage: Stage, args: argparse.Namespace, out: Path, hw: dict[str, Any]) -> None:
    """Inside the stage's own process: measure and write the record."""
    settings = {"batch": args.batch, "warmup": args.warmup, "repeats": args.repeats}
    started, t0 = now(), time.perf_counter()
    if stage.command:
        result = run_command_stage(stage, out, args.limit_s or stage.timeout_s)
        write(out, record(stage, result.pop("status"), hw, settings, started_at=started, finished_at=now(), **result))
        return
    peak = args.peak_tflops or hw.get("peak_bf16_tflops")
    settings["peak_bf16_tflops"] = peak
    note = None if peak else f"no peak known for {hw.get('gpu')!r}: pass --peak-tflops"

    def save(rows: list[dict[str, Any]], status: str = "running") -> None:
        write(out, record(stage, status, hw, settings, results=rows, started_at=started, finished_at=now(),
                          wall_s=time.perf_counter() - t0, mfu_note=note))

    rows = run_train_stage(stage, args.batch, args.warmup, args.repeats, peak, on_row=save)
    save(rows, "ok" if all(r["status"] == "ok" for r in rows) else "failed")


def run_all(args: argparse.Namespace, stages: list[Stage], out: Path, hw: dict[str, Any]) -> int:
    """Each stage in a child process with min(its limit, what is left of the budget); a child that dies or
    overruns gets a record saying so."""
    deadline = time.monotonic() + args.budget_s
    failed = 0
    for stage in stages:
        left = deadline - time.monotonic()
        limit = min(stage.timeout_s, left)
        print(f"== {stage.name}: {stage.what} (limit {limit:.0f} s)", flush=True)
        if limit < 10:
            write(out, record(stage, "skipped", hw, {}, error="the time budget was spent before this stage"))
            failed += 1
            continue
        cmd = [sys.executable, __file__, "--stage", stage.name, "--out", str(out), "--batch", str(args.batch),
               "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--limit-s", str(int(limit))]
        if args.peak_tflops:
            cmd += ["--peak-tflops", str(args.peak_tflops)]
        (out / f"{stage.name}.json").unlink(missing_ok=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, timeout=limit + 15, cwd=REPO, check=False)  # its own limit comes first
            code: int | str = proc.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
        path = out / f"{stage.name}.json"
        if not path.exists():
            write(out, record(stage, "timeout" if code == "timeout" else "failed", hw, {},
                              error=f"the stage process ended with {code} before writing its record",
                              wall_s=time.perf_counter() - t0))
        elif json.loads(path.read_text())["status"] == "running":  # stopped between variants: keep what it measured
            partial = json.loads(path.read_text())
            partial.update(status="timeout" if code == "timeout" else "failed",
                           error=f"the stage process ended with {code} after {len(partial['results'])} variant(s)")
            write(out, partial)
        status = json.loads(path.read_text())["status"]
        failed += status != "ok"
        print(f"== {stage.name}: {status} in {time.perf_counter() - t0:.0f} s -> {path}", flush=True)
    summary = {"schema": SCHEMA, "stage": "summary", "status": "ok" if not failed else "failed", "hardware": hw,
               "stages": {s.name: json.loads((out / f"{s.name}.json").read_text())["status"] for s in stages},
               "finished_at": now()}
    write(out, summary)
    return 1 if failed else 0


def dry_run(args: argparse.Namespace, stages: list[Stage], out: Path) -> int:
    """Print the plan; write each stage's record skeleton (status "planned"); no CUDA."""
    hw = hardware(dry_run=True)
    total = 0
    print(f"plan ({len(stages)} stages, budget {args.budget_s} s, records under {out}):")
    for stage in stages:
        total += stage.timeout_s
        settings: dict[str, Any] = {"batch": args.batch, "warmup": args.warmup, "repeats": args.repeats}
        extra: dict[str, Any] = {}
        if stage.command:
            print(f"  {stage.name} (<= {stage.timeout_s} s): {' '.join(stage.command)}")
        else:
            fwd = forward_flops(stage.model, args.batch)
            extra["results"] = [{"model": stage.model, "variant": v.name, "compile": v.compile,
                                 "attention": v.attention, "batch": args.batch, "precision": "bf16-autocast",
                                 "forward_flops": fwd, "flops_per_step": flops_per_train_step(fwd),
                                 "step_ms_median": None, "mfu": None, "status": "planned"}
                                for v in stage.variants]
            print(f"  {stage.name} (<= {stage.timeout_s} s): {stage.what}; {flops_per_train_step(fwd) / 1e12:.2f} "
                  f"model TFLOPs per step; variants {', '.join(v.name for v in stage.variants)}")
        write(out, record(stage, "planned", hw, settings, **extra))
    print(f"stage limits add up to {total} s; the run stops at {args.budget_s} s")
    return 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=None, help="record folder (default results/gpu/<date>-<gpu>/)")
    p.add_argument("--budget-s", type=int, default=BUDGET_S, help="wall-clock budget of the whole run")
    p.add_argument("--batch", type=int, default=32, help="training batch per GPU (DiT's train.py: 256 on 8 GPUs)")
    p.add_argument("--warmup", type=int, default=5, help="steps before timing (after the first, compiling one)")
    p.add_argument("--repeats", type=int, default=20, help="timed training steps per variant")
    p.add_argument("--stages", default=None, help="comma-separated subset of the stages, in plan order")
    p.add_argument("--peak-tflops", type=float, default=None, help="peak dense bf16 TFLOPs, for a GPU not in "
                                                                   "the table")
    p.add_argument("--dry-run", action="store_true", help="print the plan and write record skeletons, no CUDA")
    p.add_argument("--stage", default=None, help=argparse.SUPPRESS)  # internal: run one stage in this process
    p.add_argument("--limit-s", type=float, default=None, help=argparse.SUPPRESS)  # internal: that stage's limit
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sys.path.insert(0, str(REPO))
    for name, value in (("--batch", args.batch), ("--repeats", args.repeats), ("--budget-s", args.budget_s)):
        if value < 1:
            print(f"error: {name} must be >= 1", file=sys.stderr)
            return 2
    stages = plan(args.batch)
    known = [s.name for s in stages]
    if args.stages or args.stage:
        wanted = [args.stage] if args.stage else [s.strip() for s in args.stages.split(",") if s.strip()]
        unknown = [w for w in wanted if w not in known]
        if unknown:
            print(f"error: unknown stage {unknown[0]!r}; stages: {', '.join(known)}", file=sys.stderr)
            return 2
        stages = [s for s in stages if s.name in wanted]
    if args.dry_run:
        return dry_run(args, stages, args.out or default_out(None))
    import torch

    if not torch.cuda.is_available():
        print(f"error: no CUDA device visible to torch {torch.__version__} (CUDA build: {torch.version.cuda}); "
              f"this script needs one GPU and a CUDA build of torch (--dry-run prints the plan)", file=sys.stderr)
        return 2
    hw = hardware()
    out = args.out or default_out(hw["gpu"])
    if args.stage:
        with contextlib.suppress(KeyboardInterrupt):
            run_stage_child(stages[0], args, out, hw)
        return 0
    print(f"GPU validation on {hw['gpu']} (driver {hw['driver']}, CUDA {hw['cuda']}, torch {hw['torch']}); "
          f"records under {out}", flush=True)
    return run_all(args, stages, out, hw)


if __name__ == "__main__":
    sys.exit(main())
