"""Issue 16, interrupted and resumed training: Ctrl-C is one line and an "interrupted" record; resume says what it
reuses; a corrupt newest checkpoint falls back to the previous one; the training log never repeats a step.

Run as `python -m tests.core.test_reliability_train job` it is the subprocess half of the Ctrl-C test: the toy
paper whose seeds each train a tiny network (slowly: a sleep per step changes no numbers) through `bench reproduce`.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench.train import train
from bench.train.checkpoint import list_checkpoints
from bench.train.loop import TrainingInterrupted
from bench.train.progress import read_log
from tests.train._fixtures import make_loss, resume_config, tiny_net, toy_data

REPO = Path(__file__).resolve().parents[2]
JOB_STEPS = 40


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.state_dict().values()]


def _logged_steps(out_dir: Path) -> list[int]:
    return [r["step"] for r in read_log(out_dir / "train_log.jsonl") if "event" not in r]


def _interrupting_loss(at_step: int, exc: type[BaseException]):
    """make_loss(), but raising `exc` inside the forward of optimizer step `at_step` (a Ctrl-C or a crash)."""
    base, calls = make_loss(), {"n": 0}

    def loss_fn(model, batch):
        calls["n"] += 1
        if calls["n"] == at_step:
            raise exc()
        return base(model, batch)

    return loss_fn


# --- the loop ---------------------------------------------------------------------------------------------------
def test_ctrl_c_in_training_says_the_step_reached(tmp_path):
    x, y = toy_data()
    with pytest.raises(KeyboardInterrupt) as err:  # still an interrupt, for code that expects one
        train(tiny_net(), _interrupting_loss(7, KeyboardInterrupt), (x, y), resume_config(steps=12, ckpt_every=4),
              tmp_path)
    assert isinstance(err.value, TrainingInterrupted)
    assert (err.value.step, err.value.total, err.value.checkpoint_step) == (6, 12, 4)


def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    """A truncated newest checkpoint stopped the run with no hint; the intact earlier one was not used."""
    x, y = toy_data()
    cfg = resume_config(steps=12, ckpt_every=2)
    reference = train(tiny_net(), make_loss(), (x, y), cfg, tmp_path / "straight")
    out = tmp_path / "damaged"
    train(tiny_net(), make_loss(), (x, y), cfg, out, stop_after=8)
    newest = out / "checkpoints" / "step_00000008.pt"
    newest.write_bytes(newest.read_bytes()[:2000])  # a copy cut short
    caplog.set_level(logging.INFO, logger="bench.train")
    resumed = train(tiny_net(), make_loss(), (x, y), cfg, out, resume=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("step_00000008.pt is truncated or corrupt" in w and "falling back" in w for w in warnings), warnings
    assert "resuming from step 6 of 12 (step_00000006.pt)" in [r.getMessage() for r in caplog.records]
    assert all(torch.equal(a, b) for a, b in zip(_weights(resumed.model), _weights(reference.model)))
    assert (out / "checkpoints" / "step_00000008.pt.corrupt").exists()  # kept for inspection, out of the way
    assert _logged_steps(out) == list(range(1, 13))


def test_log_is_not_duplicated_after_a_crash_before_the_first_checkpoint(tmp_path):
    """After a kill before the first checkpoint the log repeated the steps already logged."""
    x, y = toy_data()
    cfg = resume_config(steps=10, ckpt_every=0)  # checkpoint only at the end
    with pytest.raises(RuntimeError):
        train(tiny_net(), _interrupting_loss(5, RuntimeError), (x, y), cfg, tmp_path)
    assert _logged_steps(tmp_path) == [1, 2, 3, 4] and not list_checkpoints(tmp_path / "checkpoints")
    train(tiny_net(), make_loss(), (x, y), cfg, tmp_path, resume=True)
    assert _logged_steps(tmp_path) == list(range(1, 11))


def test_log_is_truncated_to_the_resumed_step(tmp_path):
    x, y = toy_data()
    cfg = resume_config(steps=10, ckpt_every=4)
    with pytest.raises(RuntimeError):
        train(tiny_net(), _interrupting_loss(7, RuntimeError), (x, y), cfg, tmp_path)
    assert _logged_steps(tmp_path) == list(range(1, 7))
    train(tiny_net(), make_loss(), (x, y), cfg, tmp_path, resume=True)
    assert _logged_steps(tmp_path) == list(range(1, 11))


# --- through `bench reproduce`, with a real SIGINT ---------------------------------------------------------------
def _job() -> None:
    """A toy paper whose seeds train for JOB_STEPS steps, reproduced through the real CLI."""
    # A shell that starts a job in the background (`cmd &`, nohup) ignores SIGINT in it, and Python then installs
    # no Ctrl-C handler: restore the interactive default so the test's SIGINT is a Ctrl-C wherever it runs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from bench import papers
    from bench.cli import app
    from bench.recipe import SeedResult, metric_record
    from tests.core import toy_recipe
    from tests.core.conftest import TOY_CARD

    def run_seed(spec, seed, ctx):
        torch.set_num_threads(1)
        x, y = toy_data()
        cfg = resume_config(steps=JOB_STEPS, ckpt_every=5, seed=seed)
        out = train(tiny_net(), make_loss(sleep_s=float(os.environ.get("JOB_SLEEP", "0"))), (x, y), cfg,
                    ctx.work_dir(seed), resume=True)
        checksum = float(sum(p.double().sum() for p in out.model.state_dict().values()))
        return SeedResult(metrics=[metric_record("psnr_rgb", checksum, 1, {"sr_scale": 2})])

    toy_recipe.run_seed = run_seed
    papers.registries()["papers"].register("toy", "tests.core.toy_recipe", package="toy", card=str(TOY_CARD))
    app(["reproduce", "toy", "--entry", "toy-method"])


def _uninterrupted_checksum(seed: int, out_dir: Path) -> float:
    from bench.recipe import torch_threads

    x, y = toy_data()
    with torch_threads(1):  # as the job: another thread count may sum in another order
            out = train(tiny_net(), make_loss(), (x, y), resume_config(steps=JOB_STEPS, ckpt_every=5, seed=seed),
                    out_dir)
    return float(sum(p.double().sum() for p in out.model.state_dict().values()))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_is_one_line_an_interrupted_record_and_resume_says_what_it_reuses(signum, toy_paper, store_root,
                                                                                 tmp_path):
    """Ctrl-C printed nothing and recorded "failed"; `bench show` did not say why; resume printed nothing.
    SIGTERM (Slurm preemption, `kill`) killed the process and left a "running" record: it is an interrupt too."""
    from typer.testing import CliRunner

    from bench import runner
    from bench.cli import app
    from bench.store import Store

    spec = runner.plan(toy_paper, "smoke")[0]
    run_dir = Store(store_root).run_dir(spec)
    env = {**os.environ, "BENCH_RESULTS": str(store_root), "JOB_SLEEP": "0.05"}
    cmd = [sys.executable, "-m", "tests.core.test_reliability_train", "job"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:  # interrupt seed 1 once it has checkpointed step 10
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            if any(step >= 10 for step, _ in list_checkpoints(run_dir / "work" / "1" / "checkpoints")):
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"job ended before the interrupt: {proc.stderr.read()[-2000:]}"
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    record = json.loads((run_dir / "result.json").read_text())
    where = record["interrupted"]
    assert record["status"] == "interrupted" and where["seed"] == 1 and where["seeds_done"] == [0]
    assert where["steps"] == JOB_STEPS and 10 <= where["step"] < JOB_STEPS
    assert lines[0].endswith(f"interrupted at step {where['step']} of {JOB_STEPS}; rerun to resume")
    saved = where["checkpoint_step"]
    assert saved is not None and saved % 5 == 0 and saved <= where["step"]

    shown = CliRunner().invoke(app, ["show", spec.run_id()])
    assert shown.exit_code == 0 and "interrupted" in shown.stdout
    assert f"interrupted at step {where['step']} of {JOB_STEPS}" in shown.stdout

    again = subprocess.run(cmd, check=False, cwd=REPO, env={**env, "JOB_SLEEP": "0"}, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert "seed 0 already finished, reusing it" in again.stdout
    assert f"resuming from step {saved} of {JOB_STEPS}" in again.stdout
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "complete" and "interrupted" not in record
    assert _logged_steps(run_dir / "work" / "1") == list(range(1, JOB_STEPS + 1))
    per_seed = record["metrics"][0]["per_seed"]
    assert per_seed["1"] == _uninterrupted_checksum(1, tmp_path / "straight")  # bit-identical resume


if __name__ == "__main__" and sys.argv[1:] == ["job"]:
    _job()
