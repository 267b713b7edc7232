"""Checkpoints: atomic writes, safe loads with one-line errors, strict architecture checks, RNG state.

A training checkpoint is one ``torch.save`` dict (loaded with ``weights_only=True``, so no pickled code):

    format      "bench.train/1"
    step        optimizer steps done
    config      TrainConfig.to_dict()
    world_size  processes that wrote it
    model, ema  state dicts (ema None without EMA)
    optimizer, scheduler, scaler   state dicts (scaler None unless fp16)
    data        the batch iterator position {"epoch", "position"}
    rng         one entry per rank: python, numpy, torch and (if any) cuda generator states
"""
from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench import atomic
from bench.registry import BenchError

FORMAT = "bench.train/1"
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


# ------------------------------------------------------------------------------------------------ files
def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through bench.atomic: a reader (or a run resumed after SIGKILL) sees the old file or the
    complete new one, never a partial one."""
    return atomic.write_with(path, lambda handle: torch.save(obj, handle))


def load_file(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by `atomic_save` or ``torch.save``; unreadable files raise one BenchError."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError... for damaged files
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BenchError(f"checkpoint {path} is truncated or corrupt ({type(err).__name__}: {reason[:160]})") from None
    if not isinstance(obj, dict):
        raise BenchError(f"checkpoint {path} holds a {type(obj).__name__}, not a state dict")
    return obj


def step_path(directory: Path, step: int) -> Path:
    return directory / f"step_{step:08d}.pt"


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, path) of the step checkpoints in ``directory``, oldest first (temporary files ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _STEP_FILE.match(p.name))]
    return sorted(found)


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """The step in a ``step_XXXXXXXX.pt`` name (None for another name)."""
    match = _STEP_FILE.match(Path(path).name)
    return int(match.group(1)) if match else None


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


def prune_checkpoints(directory: str | os.PathLike, keep: int) -> None:
    for _, path in list_checkpoints(directory)[:-keep]:
        path.unlink(missing_ok=True)


def remove_stale_temporaries(directory: str | os.PathLike) -> None:
    """Drop the temporary files of a process killed while writing a checkpoint."""
    atomic.remove_temporaries(directory)


# ------------------------------------------------------------------------------------------ state dicts
def check_state_dict(expected: dict[str, Any], found: dict[str, Any], source: str) -> None:
    """BenchError naming the first key (in the model's order) that is missing, extra or of another shape."""
    for key, value in expected.items():
        if key not in found:
            raise BenchError(f"{source} does not match this architecture: key {key!r} (model shape "
                             f"{list(getattr(value, 'shape', []))}) is missing from the checkpoint")
        got = found[key]
        want_shape, got_shape = list(getattr(value, "shape", [])), list(getattr(got, "shape", []))
        if want_shape != got_shape:
            raise BenchError(f"{source} does not match this architecture: key {key!r} has shape {got_shape} "
                             f"in the checkpoint but {want_shape} in the model")
    for key, value in found.items():
        if key not in expected:
            raise BenchError(f"{source} does not match this architecture: checkpoint key {key!r} (shape "
                             f"{list(getattr(value, 'shape', []))}) does not exist in the model")


def load_model_state(model: nn.Module, state: dict[str, Any], source: str = "checkpoint") -> None:
    check_state_dict(model.state_dict(), state, source)
    model.load_state_dict(state)


def load_for_eval(model: nn.Module, checkpoint: str | os.PathLike, use_ema: bool = True) -> nn.Module:
    """Put a training checkpoint's EMA (or raw) weights into ``model`` and switch it to eval mode.

    A plain state dict (``torch.save(model.state_dict())``) is accepted too.
    """
    data = load_file(checkpoint)
    if data.get("format") == FORMAT:
        state = data["ema"] if use_ema and data.get("ema") is not None else data["model"]
    else:
        state = data
    load_model_state(model, state, f"checkpoint {checkpoint}")
    return model.eval()


# ------------------------------------------------------------------------------------------------- RNG
def capture_rng() -> dict[str, Any]:
    """Every global generator a training step can draw from, in a weights_only-loadable form."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state((np_state["kind"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (an evaluation hook) without disturbing the training random streams."""
    state = capture_rng()
    try:
        yield
    finally:
        restore_rng(state)
