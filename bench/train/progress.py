"""Training telemetry: the JSONL log, and progress for every long phase (training, sampling, evaluation).

Progress has three forms. On an interactive terminal a rich bar: [k/N], rate and ETA. In a log (CI, a pipe,
a file) milestone lines instead: about every 25% of the phase ("  train: step 50/200 (25%), loss 0.1234,
12 s elapsed, ETA 36 s") and one line when it ends; never one line per step. Off: nothing (tests, --json).

Recipes open a `reporting(ctx.log, ctx.show_progress)` block around a seed's work; every ProgressBar (the
training loop's) and Phase inside it that is not drawn as a bar then reports milestones through that log.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TextIO

from bench import atomic


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep the line valid
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class JsonlLog:
    """Append-only JSON-lines log; each record carries ``step``. Disabled (a no-op) off rank 0."""

    def __init__(self, path: str | os.PathLike, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(_jsonable(record)) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop records after ``step`` (written by a killed run past its last checkpoint) and any partial
        last line, so a resumed run's log reads as one uninterrupted run."""
        if not self.enabled or not self.path.exists():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if int(record.get("step", 0)) <= step:
                kept.append(line)
        atomic.write_text(self.path, "".join(line + "\n" for line in kept))


def read_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------------ milestones
Log = Callable[[str], None]
_MILESTONE_LOG: ContextVar[Log | None] = ContextVar("bench_milestone_log", default=None)


@contextmanager
def reporting(log: Log | None, enabled: bool = True) -> Iterator[None]:
    """Inside this block, phases not drawn as a rich bar report milestone lines through ``log``."""
    token = _MILESTONE_LOG.set(log if enabled else None)
    try:
        yield
    finally:
        _MILESTONE_LOG.reset(token)


def milestone_log() -> Log | None:
    """The log of the innermost reporting() block, or None outside one (or when it is off)."""
    return _MILESTONE_LOG.get()


def duration(seconds: float) -> str:
    """12 s, 3 min 20 s, 1 h 05 min."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


QUIET_S = 5.0  # no milestone lines in a phase's first seconds: a phase that short gets its closing line only


class Milestones:
    """Progress as log lines: one each time another ``every`` share of the phase is done (25%, 50%, 75%) and
    one when it closes (done, or stopped early). A resumed phase counts its rate from where it started.
    Milestones passed in the first ``quiet_s`` seconds (default QUIET_S) are not printed."""

    def __init__(self, total: int, log: Log, label: str = "train", unit: str = "step", start: int = 0,
                 every: float = 0.25, clock: Callable[[], float] = time.perf_counter, quiet_s: float | None = None):
        self.total, self.log, self.label, self.unit = max(int(total), 0), log, label, unit
        self.start = self.done = int(start)
        self.every, self.clock = every, clock
        self.quiet_s = QUIET_S if quiet_s is None else quiet_s
        self.loss: float | None = None
        self._t0 = clock()
        self._mark = self._marks(self.done)
        self._closed = False

    def _marks(self, done: int) -> int:
        """How many milestones ``done`` has passed (1e-9: 50/200 is exactly the first)."""
        return int(done / self.total / self.every + 1e-9) if self.total else 0

    def _count(self, done: int) -> str:
        return f"{self.unit} {done}/{self.total}" if self.unit == "step" else f"{done}/{self.total} {self.unit}"

    def _loss(self) -> str:
        return f", loss {self.loss:.4f}" if self.loss is not None and math.isfinite(self.loss) else ""

    def update(self, done: int, loss: float | None = None) -> None:
        self.done = int(done)
        if loss is not None:
            self.loss = float(loss)
        if self.done >= self.total or self._marks(self.done) <= self._mark:
            return  # the end is close()'s line; between milestones nothing
        self._mark = self._marks(self.done)
        elapsed = self.clock() - self._t0
        if elapsed < self.quiet_s:
            return
        rate = (self.done - self.start) / elapsed if elapsed > 0 else 0.0
        eta = f", ETA {duration((self.total - self.done) / rate)}" if rate > 0 else ""
        self.log(f"  {self.label}: {self._count(self.done)} ({100 * self.done / self.total:.0f}%)"
                 f"{self._loss()}, {duration(elapsed)} elapsed{eta}")

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        elapsed = duration(self.clock() - self._t0)
        if self.done >= self.total:
            what = f"{self.total} {self.unit}s" if self.unit == "step" else f"{self.total} {self.unit}"
            self.log(f"  {self.label}: done, {what} in {elapsed}{self._loss()}")
        else:
            self.log(f"  {self.label}: stopped at {self._count(self.done)} after {elapsed}{self._loss()}")


def progress_enabled(setting: bool | None, stream: TextIO | None = None, rank: int = 0) -> bool:
    """True/False force it (on rank 0); None shows it only when the stream is an interactive terminal."""
    if rank != 0 or setting is False:
        return False
    if setting is True:
        return True
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


class ProgressBar:
    """A rich bar with step count, loss, step rate and ETA; every method is a no-op when disabled."""

    def __init__(self, total: int, start: int = 0, enabled: bool = True, console: Any = None,
                 description: str = "train", milestones: Log | None = None):
        """Not drawn (``enabled`` False: no terminal, or off), it reports milestone lines through
        ``milestones``, or the log of the enclosing reporting() block, if either is given."""
        self.enabled = enabled
        self.total, self.start_step = total, start
        self._t0 = time.perf_counter()
        self._progress = None
        self._milestones: Milestones | None = None
        if not enabled:
            log = milestones or milestone_log()
            if log is not None:
                self._milestones = Milestones(total, log, label=description, start=start)
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]} steps/s"),
            TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False)
        self._task = self._progress.add_task(description, total=total, completed=start, loss="-", rate="-")
        self._progress.start()

    def update(self, step: int, loss: float) -> None:
        if self._milestones is not None:
            self._milestones.update(step, loss)
        if self._progress is None:
            return
        elapsed = time.perf_counter() - self._t0
        rate = (step - self.start_step) / elapsed if elapsed > 0 else 0.0
        self._progress.update(self._task, completed=step, loss=f"{loss:.4f}", rate=f"{rate:.2f}")

    def close(self) -> None:
        if self._milestones is not None:
            self._milestones.close()
            self._milestones = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class Phase:
    """[k/N] of one phase over N items (samples, images, prompts): a rich bar with an ETA when stdout is a
    terminal, milestone lines through ``log`` (default: the enclosing reporting() block's) otherwise, nothing
    when off or outside a reporting block. Use as a context manager; advance(n) after each batch."""

    def __init__(self, total: int, label: str, unit: str = "items", log: Log | None = None, start: int = 0,
                 enabled: bool | None = None, console: Any = None):
        self.total, self.label = int(total), label
        self.done = int(start)
        self._bar: Any = None
        self._milestones: Milestones | None = None
        log = log or milestone_log()
        if enabled is False or log is None or self.total <= 0:
            return
        on_terminal = console.is_terminal if console is not None else progress_enabled(None)
        if enabled or on_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn(f"  {label}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn(unit), TextColumn("ETA"), TimeRemainingColumn(), console=console)
            self._task = self._bar.add_task(label, total=self.total, completed=self.done)
            self._bar.start()
        else:
            self._milestones = Milestones(self.total, log, label=label, unit=unit, start=start)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
        if self._milestones is not None:
            self._milestones.update(self.done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self._milestones is not None:
            self._milestones.close()
            self._milestones = None

    def __enter__(self) -> Phase:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def sampling_phase(store: Any, label: str) -> Phase:
    """A Phase over the samples this rank will write into a ShardStore: its share of the missing shards,
    taken as generate_shards takes them (every world_size-th). Advance it by the batch size in sample_fn."""
    from bench import distributed as dist_utils

    mine = store.missing()[dist_utils.get_rank()::dist_utils.get_world_size()]
    return Phase(sum(stop - start for start, stop in map(store.shard_range, mine)), label, unit="samples")
