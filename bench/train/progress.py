"""Training telemetry: the JSONL log and the rich progress bar."""
from __future__ import annotations

import json
import math
import os
import sys
import time
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
                 description: str = "train"):
        self.enabled = enabled
        self.total, self.start_step = total, start
        self._t0 = time.perf_counter()
        self._progress = None
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]} steps/s"),
            TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False)
        self._task = self._progress.add_task(description, total=total, completed=start, loss="-", rate="-")
        self._progress.start()

    def update(self, step: int, loss: float) -> None:
        if self._progress is None:
            return
        elapsed = time.perf_counter() - self._t0
        rate = (step - self.start_step) / elapsed if elapsed > 0 else 0.0
        self._progress.update(self._task, completed=step, loss=f"{loss:.4f}", rate=f"{rate:.2f}")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
