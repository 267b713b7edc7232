"""Cost accounting: parameters, MACs, latency.

MACs follow the convention of DiT/U-DiT (torchprofile): multiply-accumulates of linear, conv and matmul
(attention included), nothing for norms, activations or element-wise ops. They are counted with torch's
FlopCounterMode, whose matmul/conv/attention FLOPs are 2 x MACs.
"""
from __future__ import annotations

import math
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, TextIO

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bench.registry import BenchError


def _extra_flop_formulas() -> dict[Any, Any]:
    """On CPU, SDPA dispatches to a flash kernel that FlopCounterMode does not count; count it like SDPA."""
    from torch.utils.flop_counter import sdpa_flop_count

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None:
        return {}

    def flash_cpu_flops(query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query, key, value)  # FlopCounterMode passes shapes here

    return {op: flash_cpu_flops}


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_macs(model: nn.Module | Callable[..., Any], *inputs: Any, **kwargs: Any) -> int:
    """MACs of one call ``model(*inputs, **kwargs)``."""
    counter = FlopCounterMode(display=False, custom_mapping=_extra_flop_formulas())
    with counter:
        model(*inputs, **kwargs)
    return counter.get_total_flops() // 2


def latency(fn: Callable[[], Any], warmup: int = 3, repeats: int = 20, device: str = "cpu") -> dict[str, float]:
    """Median and inter-quartile range of ``fn()`` wall time in ms (CUDA events on GPU, after warm-up)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    if device.startswith("cuda"):
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    # inclusive quartiles stay inside the observed range, also for a handful of repeats
    q = statistics.quantiles(times, n=4, method="inclusive") if len(times) >= 2 else [times[0]] * 3
    return {"median_ms": statistics.median(times), "iqr_ms": q[2] - q[0], "repeats": len(times), "device": device}


# ------------------------------------------------------------------------------------------ `bench profile`
# The shared half of every recipe's profile(): which latencies to measure, how (warm-up, repeats, device,
# threads, recorded in each row), progress per entry, and the noise warning. A recipe supplies one
# ProfileJob per row: build the model, count what it costs, hand back the call to time.

NOT_MEASURED = "not measured (pass --latency)"
NOISE_LIMIT = 0.25  # IQR above this share of the median: the timing says more about the machine than the model
SLOW_TIMING_S = 10.0  # announce timings expected to take longer than this, so a slow entry is not silence


def check_device(device: str) -> str:
    """'cpu', 'cuda' or 'cuda:N'; CUDA only where torch can see it (one-line error otherwise)."""
    device = str(device).strip().lower()
    if device != "cpu" and device != "cuda" and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise BenchError(f"--device takes cpu, cuda or cuda:N, not {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError(f"--device {device}: CUDA is not available here (torch {torch.__version__}, "
                         f"torch.cuda.is_available() is false); use --device cpu")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise BenchError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


@dataclass(frozen=True)
class LatencyPlan:
    """Whether and how latency is timed. ``why_not`` stands in the latency column when it is not."""

    measure: bool
    device: str
    warmup: int
    repeats: int
    threads: int
    why_not: str | None = None


def profiled_entries(paper: str, scale: str, requested: list[str] | None, known: list[str],
                     default: list[str] | None = None) -> list[str]:
    """The entries `bench profile PAPER` measures: the requested ones (each checked against ``known``), else
    ``default`` (the entries that scale runs), else every known one. A bad scale or entry is one line."""
    if scale not in ("smoke", "small", "paper"):
        raise BenchError(f"unknown scale {scale!r} for {paper} profile; use smoke, small or paper")
    names = list(known if default is None else default) if requested is None else list(requested)
    unknown = [e for e in names if e not in known]
    if unknown:
        raise BenchError(f"unknown {paper} entry {unknown[0]!r}; known: {', '.join(known)}")
    return names


def latency_plan(scale: str, device: str = "cpu", repeats: int = 20, measure: bool | None = None,
                 warmup: int | None = None) -> LatencyPlan:
    """The latency policy. measure None: time on CUDA always, on CPU only at smoke scale, where a forward takes
    milliseconds (a paper-scale model on a shared CPU took minutes per entry and gave a 9x spread between
    runs); True/False force it (`--latency` / `--no-latency`)."""
    if repeats < 1:
        raise BenchError(f"--repeats must be at least 1 (got {repeats}); pass --no-latency to skip timing")
    if warmup is not None and warmup < 0:
        raise BenchError(f"warm-up must be >= 0 (got {warmup})")
    device = check_device(device)
    on_gpu = device.startswith("cuda")
    if measure is None:
        measure = on_gpu or scale == "smoke"
    return LatencyPlan(measure=measure, device=device, warmup=(10 if on_gpu else 3) if warmup is None else warmup,
                       repeats=repeats, threads=torch.get_num_threads(), why_not=None if measure else NOT_MEASURED)


def noise_ratio(timing: dict[str, Any]) -> float:
    """IQR over median of a latency() record (0 for a perfectly steady timing)."""
    median, iqr = float(timing["median_ms"]), float(timing["iqr_ms"])
    if median <= 0:
        return 0.0 if iqr <= 0 else math.inf
    return iqr / median


def noise_warning(label: str, timing: dict[str, Any], limit: float = NOISE_LIMIT) -> str | None:
    """The warning line for a timing whose IQR is above ``limit`` of its median, else None."""
    ratio = noise_ratio(timing)
    if ratio <= limit:
        return None
    return (f"latency of {label} is noisy: IQR {ratio:.0%} of median; use a quiet machine or more --repeats")


class ProfileProgress:
    """`[k/N] entry ... done in 1.2 s` per entry, warnings as `warning: ...` lines, on stderr (stdout stays
    clean for --format json/csv). Works the same on a terminal and in a log: one line per entry."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream
        self._head = ""  # "[k/N] entry ..." of the entry in progress
        self._head_open = False  # the head is on screen, waiting for its "done in" on the same line

    def _write(self, text: str) -> None:
        out = self.stream or sys.stderr
        out.write(text)
        out.flush()

    def _close_line(self) -> None:
        if self._head_open:
            self._write("\n")
            self._head_open = False

    def start(self, k: int, n: int, label: str) -> None:
        self._head = f"[{k}/{n}] {label} ..."
        self._write(self._head + " ")
        self._head_open = True

    def note(self, message: str) -> None:
        self._close_line()
        self._write(f"    {message}\n")

    def done(self, seconds: float) -> None:
        self._write(("" if self._head_open else self._head + " ") + f"done in {seconds:.1f} s\n")
        self._head_open = False

    def failed(self) -> None:
        if self._head_open:
            self._write("failed\n")
            self._head_open = False

    def warn(self, message: str) -> None:
        self._close_line()
        self._write(f"warning: {message}\n")


class _Silent(ProfileProgress):
    def _write(self, text: str) -> None:
        pass


@dataclass
class ProfileJob:
    """One row of a profile. ``measure()`` builds the model and returns the row's cost fields (params, MACs,
    NFE, input, ...) and the zero-argument call whose latency is the row's, or None where it cannot be timed
    here (then a ``latency_note`` among the fields says why)."""

    label: str
    measure: Callable[[], tuple[dict[str, Any], Callable[[], Any] | None]]


def _time(fn: Callable[[], Any], plan: LatencyPlan, label: str, progress: ProfileProgress) -> dict[str, float]:
    on_gpu = plan.device.startswith("cuda")
    t0 = time.perf_counter()
    for _ in range(plan.warmup):
        fn()
    if on_gpu:
        torch.cuda.synchronize()
    if plan.warmup:
        per_call = (time.perf_counter() - t0) / plan.warmup
        if per_call * plan.repeats > SLOW_TIMING_S:
            progress.note(f"timing {label}: {plan.repeats} repeats of about {per_call:.1f} s each")
    return latency(fn, warmup=0, repeats=plan.repeats, device=plan.device)


def _profile_one(job: ProfileJob, plan: LatencyPlan, progress: ProfileProgress) -> tuple[dict[str, Any], str | None]:
    fields, timed = job.measure()
    row: dict[str, Any] = {**fields}
    note = row.pop("latency_note", None)
    warning = None
    if plan.measure and timed is not None:
        timing = _time(timed, plan, job.label, progress)
        row.update(latency_ms=timing["median_ms"], latency_iqr_ms=timing["iqr_ms"], latency_note=None,
                   warmup=plan.warmup, repeats=timing["repeats"])
        warning = noise_warning(job.label, timing)
    else:
        row.update(latency_ms=None, latency_iqr_ms=None, latency_note=note or plan.why_not or "not measured",
                   warmup=0, repeats=0)
    row.update(device=plan.device, threads=plan.threads)
    return row, warning


def run_profile(jobs: list[ProfileJob], plan: LatencyPlan,
                progress: ProfileProgress | None = None) -> list[dict[str, Any]]:
    """Profile every job in order: its cost fields, then latency (median and IQR in ms) per ``plan``, and
    the timing conditions (warmup, repeats, device, threads) in every row."""
    progress = progress or _Silent()
    rows = []
    for k, job in enumerate(jobs, 1):
        progress.start(k, len(jobs), job.label)
        t0 = time.perf_counter()
        try:
            row, warning = _profile_one(job, plan, progress)
        except BaseException:  # the error (or Ctrl-C) gets a line of its own
            progress.failed()
            raise
        rows.append(row)
        progress.done(time.perf_counter() - t0)
        if warning:
            progress.warn(warning)
    return rows


# ------------------------------------------------------------------------------------------------ display
def columns(rows: list[dict[str, Any]], readable: bool = True) -> list[str]:
    """Every key of every row, in first-seen order. Readable tables fold latency_note into latency_ms."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return [c for c in seen if not (readable and c == "latency_note")]


def readable_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for a table a person reads: a latency that was not measured says why, in the latency column."""
    out = []
    for row in rows:
        row = dict(row)
        note = row.pop("latency_note", None)
        if row.get("latency_ms") is None and note:
            row["latency_ms"] = note
        out.append(row)
    return out
