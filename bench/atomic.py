"""Atomic file writes: a reader never sees a half-written file, a killed writer leaves the old one.

Every write goes to a temporary file beside the target (``.<name>.tmp-<pid>-<random>``), is fsynced, then
renamed over the target with os.replace. `remove_temporaries` sweeps what a killed writer left behind.
The file gets the permissions an ordinary ``open()`` would give it (0666 less the process umask, so 0644 by
default): tempfile.mkstemp creates 0600 files, which would make a shared store unreadable by the group.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

TEMP_GLOB = ".*.tmp-*"


def current_umask() -> int:
    """The process umask, read without changing it where Linux exposes it (os.umask can only set it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_with(path: Path | str, writer: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``writer(handle)`` on a temporary binary file, then move it over ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            writer(handle)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~current_umask())
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes(path: Path | str, data: bytes) -> Path:
    return write_with(path, lambda handle: handle.write(data))


def write_text(path: Path | str, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path | str, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def remove_temporaries(directory: Path | str) -> None:
    """Drop temporary files left in ``directory`` by a writer that was killed mid-write."""
    directory = Path(directory)
    if directory.is_dir():
        for p in directory.glob(TEMP_GLOB):
            p.unlink(missing_ok=True)
