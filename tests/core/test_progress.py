"""Progress of long phases: milestone lines (about every 25%, one closing line, never one per step) in a log,
a rich [k/N] bar with an ETA on a terminal, nothing when off; the JSONL training log is the same either way."""
from __future__ import annotations

import io
import json
import re

import pytest
import torch
from rich.console import Console
from torch import nn

import bench.train.progress as progress
from bench.train import TrainConfig, train
from bench.train.progress import Milestones, Phase, ProgressBar, duration, reporting


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_milestones_every_quarter_with_elapsed_and_eta():
    clock, lines = FakeClock(), []
    m = Milestones(200, lines.append, clock=clock)
    for step in range(1, 201):
        clock.now = 0.24 * step  # 0.24 s per step: at step 50, 12 s elapsed and 150 steps x 0.24 s = 36 s left
        m.update(step, 0.1234)
    m.close()
    assert lines == ["  train: step 50/200 (25%), loss 0.1234, 12 s elapsed, ETA 36 s",
                     "  train: step 100/200 (50%), loss 0.1234, 24 s elapsed, ETA 24 s",
                     "  train: step 150/200 (75%), loss 0.1234, 36 s elapsed, ETA 12 s",
                     "  train: done, 200 steps in 48 s, loss 0.1234"]


def test_a_resumed_phase_reports_only_the_milestones_ahead_and_its_own_rate():
    clock, lines = FakeClock(), []
    m = Milestones(200, lines.append, start=100, clock=clock)
    for step in range(101, 201):
        clock.now = 0.5 * (step - 100)
        m.update(step)
    m.close()
    # 50 steps in 25 s since the resume: 0.5 s per step, 50 steps left
    assert lines == ["  train: step 150/200 (75%), 25 s elapsed, ETA 25 s", "  train: done, 200 steps in 50 s"]


@pytest.mark.parametrize("total", [1, 3, 7, 1000])
def test_never_more_than_three_milestones_and_a_closing_line(total):
    lines: list[str] = []
    m = Milestones(total, lines.append, label="sample", unit="images", clock=FakeClock(), quiet_s=0)
    for _ in range(total):
        m.advance()
    m.close()
    percents = [int(p) for p in re.findall(r"\((\d+)%\)", " ".join(lines[:-1]))]
    assert len(lines) == len(percents) + 1 <= 4 and lines[-1].startswith(f"  sample: done, {total} images in")
    assert all(25 <= p < 100 for p in percents) and percents == sorted(percents)


def test_a_phase_stopped_early_says_where():
    lines: list[str] = []
    clock = FakeClock()
    m = Milestones(40, lines.append, clock=clock)
    clock.now = 6.0
    m.update(12, 0.5)
    m.close()
    m.close()  # closing twice says it once
    assert lines == ["  train: step 12/40 (30%), loss 0.5000, 6 s elapsed, ETA 14 s",
                     "  train: stopped at step 12/40 after 6 s, loss 0.5000"]


def test_a_short_phase_prints_only_its_closing_line():
    lines: list[str] = []
    clock = FakeClock()
    m = Milestones(100, lines.append, clock=clock)
    for step in range(1, 101):
        clock.now = 0.04 * step  # 4 s in all: below QUIET_S
        m.update(step)
    m.close()
    assert lines == ["  train: done, 100 steps in 4 s"]


def test_duration_reads_like_a_person_writes_it():
    assert [duration(s) for s in (0.4, 59, 200, 3600 + 5 * 60 + 7)] == ["0 s", "59 s", "3 min 20 s", "1 h 05 min"]


def _tiny_training(tmp_path, name: str):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 8, generator=g)
    y = (x.sum(1) > 4).long()
    torch.manual_seed(0)
    model = nn.Linear(8, 2)
    cfg = TrainConfig(steps=20, batch_size=8, lr=1e-2, optimizer="sgd", momentum=0.0, log_every=1, seed=3,
                      progress=None)
    train(model, lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1]), torch.utils.data.TensorDataset(x, y),
          cfg, tmp_path / name)
    return [{k: v for k, v in json.loads(line).items() if k != "step_time_s"}
            for line in (tmp_path / name / "train_log.jsonl").read_text().splitlines()]


def test_training_loop_in_a_log_prints_milestones_not_steps_and_keeps_its_jsonl(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.stdout", io.StringIO())  # a log, not a terminal (also under pytest -s)
    monkeypatch.setattr(progress, "QUIET_S", 0.0)  # a 20-step training takes well under QUIET_S
    lines: list[str] = []
    with reporting(lines.append):
        logged = _tiny_training(tmp_path, "reported")
    assert [line.split(",")[0] for line in lines] == ["  train: step 5/20 (25%)", "  train: step 10/20 (50%)",
                                                      "  train: step 15/20 (75%)", "  train: done"]
    assert all("loss" in line for line in lines) and "ETA" in lines[0]
    assert logged == _tiny_training(tmp_path, "quiet")  # same JSONL records with and without progress
    assert len(logged) == 20


def test_nothing_is_reported_outside_a_reporting_block_or_when_it_is_off(monkeypatch):
    monkeypatch.setattr("sys.stdout", io.StringIO())
    lines: list[str] = []
    with reporting(lines.append, enabled=False):
        bar = ProgressBar(8, enabled=False)
        bar.update(8, 0.1)
        bar.close()
        with Phase(8, "sample") as phase:
            phase.advance(8)
    with Phase(8, "sample") as phase:
        phase.advance(8)
    assert lines == []


def test_sampling_phase_in_a_log_and_on_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stdout", io.StringIO())
    monkeypatch.setattr(progress, "QUIET_S", 0.0)
    lines: list[str] = []
    with reporting(lines.append), Phase(64, "sample ddim10", unit="samples") as phase:
        for _ in range(8):
            phase.advance(8)
    assert [line.split(",")[0] for line in lines] == [
        "  sample ddim10: 16/64 samples (25%)", "  sample ddim10: 32/64 samples (50%)",
        "  sample ddim10: 48/64 samples (75%)", "  sample ddim10: done"]
    out = io.StringIO()
    terminal = Console(file=out, force_terminal=True, width=120)
    with reporting(lines.append), Phase(64, "sample ddim10", unit="samples", console=terminal) as phase:
        phase.advance(24)
    assert "24/64" in out.getvalue() and "ETA" in out.getvalue() and len(lines) == 4  # a bar, no new lines


