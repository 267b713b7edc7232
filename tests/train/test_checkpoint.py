"""Checkpoints: atomic writes, damaged files, architecture mismatches, RNG state, and SIGKILL + resume."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bench.registry import BenchError
from bench.train import atomic_save, load_file, load_model_state, read_log, train
from bench.train.checkpoint import capture_rng, list_checkpoints, restore_rng

from ._fixtures import make_loss, resume_config, tiny_net, toy_data

HERE = Path(__file__).resolve().parent


def test_atomic_save_never_leaves_a_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    atomic_save({"v": torch.arange(3)}, path)

    def dies_half_way(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"v": torch.arange(5)}, path)
    monkeypatch.undo()
    assert torch.equal(load_file(path)["v"], torch.arange(3))  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # and no temporary is left


def test_truncated_or_garbage_checkpoint_is_one_clear_error(tmp_path):
    path = tmp_path / "ck.pt"
    atomic_save({"model": tiny_net().state_dict()}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BenchError) as err:
        load_file(path)
    assert "truncated or corrupt" in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(BenchError, match="truncated or corrupt"):
        load_file(path)
    with pytest.raises(BenchError, match="does not exist"):
        load_file(tmp_path / "missing.pt")


def test_architecture_mismatch_names_key_and_both_shapes(tmp_path):
    small = nn.Sequential(nn.Linear(256, 32), nn.SiLU(), nn.Linear(32, 10))
    wide = nn.Sequential(nn.Linear(256, 64), nn.SiLU(), nn.Linear(64, 10))
    deeper = nn.Sequential(nn.Linear(256, 32), nn.SiLU(), nn.Linear(32, 10), nn.Linear(10, 10))
    with pytest.raises(BenchError) as err:
        load_model_state(wide, small.state_dict())
    assert "'0.weight'" in str(err.value) and "[32, 256]" in str(err.value) and "[64, 256]" in str(err.value)
    with pytest.raises(BenchError, match=r"key '3.weight' \(model shape \[10, 10\]\) is missing"):
        load_model_state(deeper, small.state_dict())
    with pytest.raises(BenchError, match=r"checkpoint key '3.weight' \(shape \[10, 10\]\) does not exist"):
        load_model_state(small, deeper.state_dict())


def test_resuming_into_another_architecture_fails_clearly(tmp_path):
    x, y = toy_data(64)
    train(tiny_net(), make_loss(), (x, y), resume_config(steps=4), tmp_path)
    other = nn.Sequential(nn.Linear(256, 48), nn.SiLU(), nn.Dropout(0.1), nn.Linear(48, 10))
    with pytest.raises(BenchError, match=r"'0.weight' has shape \[32, 256\] in the checkpoint but \[48, 256\]"):
        train(other, make_loss(), (x, y), resume_config(steps=4), tmp_path, resume=True)


def test_rng_state_survives_a_weights_only_round_trip(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.standard_normal()  # leaves a cached Gaussian in numpy's legacy state
    atomic_save({"rng": capture_rng()}, tmp_path / "rng.pt")
    first = (random.random(), np.random.standard_normal(3).tolist(), torch.randn(3).tolist())
    restore_rng(load_file(tmp_path / "rng.pt")["rng"])
    again = (random.random(), np.random.standard_normal(3).tolist(), torch.randn(3).tolist())
    assert first == again


def test_sigkilled_run_resumes_to_bitwise_identical_weights(tmp_path):
    """A training process is SIGKILLed part-way (after checkpoints exist); resume=True finishes it; the
    final model and EMA equal an uninterrupted run's bit for bit."""
    steps = 24
    x, y = toy_data()
    reference = tiny_net()
    ref = train(reference, make_loss(), (x, y), resume_config(steps=steps), tmp_path / "uninterrupted")

    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(HERE / "_kill_job.py"), str(killed_dir), str(steps), "0.08"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if any(step >= 8 for step, _ in list_checkpoints(killed_dir / "checkpoints")):
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"job ended before the kill: {proc.stderr.read().decode()[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    saved = [step for step, _ in list_checkpoints(killed_dir / "checkpoints")]
    assert saved and max(saved) < steps  # really interrupted

    resumed = tiny_net(seed=99)  # other initial weights: everything must come from the checkpoint
    out = train(resumed, make_loss(), (x, y), resume_config(steps=steps), killed_dir, resume=True)
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    for key, value in ref.ema_model.state_dict().items():
        assert torch.equal(value, out.ema_model.state_dict()[key]), key
    steps_logged = [r["step"] for r in read_log(out.log_path)]
    assert steps_logged == list(range(1, steps + 1))  # the log reads as one run: no duplicates, no gap
