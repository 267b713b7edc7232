"""Cost accounting conventions (MACs of linear, conv and attention by hand; parameters; latency record) and
`bench profile`: the latency policy, the noise warning, progress on stderr, one-line errors."""
from __future__ import annotations

import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from bench import papers
from bench import profile as profile_mod
from bench.cli import app
from bench.profile import count_macs, count_params, latency
from bench.registry import BenchError

runner = CliRunner()


def test_attention_macs_on_cpu_match_the_hand_count():
    q = k = v = torch.randn(2, 3, 16, 8)  # batch 2, 3 heads, 16 tokens, 8 dims
    # q k^T and attn v: two matmuls of 16x16x8 multiply-adds per head and batch
    assert count_macs(lambda a, b, c: F.scaled_dot_product_attention(a, b, c), q, k, v) == 2 * 2 * 3 * 16 * 16 * 8


def test_linear_and_conv_macs_and_params():
    lin = torch.nn.Linear(10, 5)
    assert count_macs(lin, torch.randn(4, 10)) == 4 * 10 * 5
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert count_macs(conv, torch.randn(1, 3, 16, 16)) == 16 * 16 * 8 * 3 * 9
    assert count_params(conv) == 8 * 3 * 9
    conv.weight.requires_grad_(False)
    assert count_params(conv) == 0 and count_params(conv, trainable_only=False) == 216


def test_latency_record_shape():
    calls = []
    rec = latency(lambda: calls.append(1), warmup=2, repeats=5)
    assert len(calls) == 7 and rec["repeats"] == 5 and rec["median_ms"] >= 0 and rec["iqr_ms"] >= 0


# ------------------------------------------------------------------------------------------ `bench profile`


def test_latency_quartiles_are_the_inclusive_ones(monkeypatch):
    """Scripted clock: call k takes durations[k] ms; median and IQR must equal numpy's linear percentiles."""
    durations = [4.0, 1.0, 9.0, 2.0, 7.0]
    ticks = iter([t for d in durations for t in (0.0, d / 1e3)])
    monkeypatch.setattr(profile_mod.time, "perf_counter", lambda: next(ticks))
    rec = latency(lambda: None, warmup=0, repeats=len(durations))
    q1, med, q3 = np.percentile(durations, [25, 50, 75])
    assert rec["median_ms"] == pytest.approx(med) and rec["iqr_ms"] == pytest.approx(q3 - q1)  # 4 and 5


def test_noise_warning_fires_on_a_noisy_timing_only():
    noisy = {"median_ms": 10.0, "iqr_ms": 4.0}
    assert profile_mod.noise_warning("u-dit-s", noisy) == (
        "latency of u-dit-s is noisy: IQR 40% of median; use a quiet machine or more --repeats")
    assert profile_mod.noise_warning("u-dit-s", {"median_ms": 10.0, "iqr_ms": 1.0}) is None
    assert profile_mod.noise_warning("x", {"median_ms": 10.0, "iqr_ms": 2.5}) is None  # the limit itself is fine
    assert profile_mod.noise_warning("x", {"median_ms": 0.0, "iqr_ms": 0.0}) is None


def test_latency_policy():
    assert profile_mod.latency_plan("smoke", "cpu").measure is True
    paper = profile_mod.latency_plan("paper", "cpu")
    assert paper.measure is False and paper.why_not == "not measured (pass --latency)"
    assert profile_mod.latency_plan("paper", "cpu", measure=True).measure is True
    assert profile_mod.latency_plan("smoke", "cpu", measure=False).measure is False
    for bad in (0, -3):
        with pytest.raises(BenchError, match="--repeats must be at least 1"):
            profile_mod.latency_plan("smoke", "cpu", repeats=bad)
    with pytest.raises(BenchError, match="cpu, cuda or cuda:N"):
        profile_mod.latency_plan("smoke", "tpu")


def _tiny_jobs(calls: list[str]) -> list[profile_mod.ProfileJob]:
    def job(name: str, width: int) -> profile_mod.ProfileJob:
        def measure():
            lin = torch.nn.Linear(width, width)
            x = torch.randn(1, width)
            return ({"entry": name, "params_m": count_params(lin) / 1e6, "gmacs": count_macs(lin, x) / 1e9},
                    lambda: calls.append(name))

        return profile_mod.ProfileJob(name, measure)

    return [job("small", 4), job("large", 8)]


def test_run_profile_times_per_plan_and_records_how():
    calls: list[str] = []
    out = io.StringIO()
    plan = profile_mod.latency_plan("smoke", "cpu", repeats=4, warmup=2)
    rows = profile_mod.run_profile(_tiny_jobs(calls), plan, profile_mod.ProfileProgress(out))
    assert calls == ["small"] * 6 + ["large"] * 6  # 2 warm-up + 4 timed each
    assert [r["entry"] for r in rows] == ["small", "large"]
    assert rows[1]["gmacs"] * 1e9 == 8 * 8 and rows[1]["params_m"] * 1e6 == 8 * 8 + 8
    for r in rows:
        assert (r["warmup"], r["repeats"], r["device"], r["threads"]) == (2, 4, "cpu", torch.get_num_threads())
        assert r["latency_ms"] >= 0 and r["latency_note"] is None
    lines = [line for line in out.getvalue().splitlines() if not line.startswith("warning:")]
    assert [line.split(" done in ")[0] for line in lines] == ["[1/2] small ...", "[2/2] large ..."]


def test_run_profile_at_paper_scale_on_cpu_does_not_time():
    calls: list[str] = []
    rows = profile_mod.run_profile(_tiny_jobs(calls), profile_mod.latency_plan("paper", "cpu"))
    assert calls == []
    assert all(r["latency_ms"] is None and r["latency_note"] == "not measured (pass --latency)"
               and r["repeats"] == 0 and r["gmacs"] > 0 for r in rows)


def test_lipt_paper_config_profile_counts_but_does_not_time_on_cpu():
    from methods.lipt import recipe

    (row,) = recipe.profile(scale="paper", entries=["edsr-baseline"])
    assert row["input"] == "320x180" and row["params_m"] > 1 and row["gmacs"] > 10
    assert row["latency_ms"] is None and row["latency_note"] == profile_mod.NOT_MEASURED


@pytest.fixture()
def tiny_recipe(monkeypatch):
    """`bench profile u-dit` backed by two Linear layers (no model of the paper is built)."""
    calls: list[str] = []

    def profile(scale, device, repeats, measure_latency=None, progress=None):
        plan = profile_mod.latency_plan(scale, device, repeats, measure_latency)
        return profile_mod.run_profile(_tiny_jobs(calls), plan, progress)

    monkeypatch.setattr(papers, "recipe", lambda slug: SimpleNamespace(profile=profile))
    return calls


def test_cli_profile_paper_scale_on_cpu_says_not_measured(tiny_recipe):
    result = runner.invoke(app, ["profile", "u-dit", "--scale", "paper", "--format", "md"])
    assert result.exit_code == 0, result.output
    assert tiny_recipe == [] and result.stdout.count("not measured (pass --latency)") == 2
    assert "[1/2] small ... done in" in result.stderr and "[2/2] large ... done in" in result.stderr
    timed = runner.invoke(app, ["profile", "u-dit", "--scale", "paper", "--latency", "--repeats", "3", "--json"])
    assert timed.exit_code == 0, timed.output
    rows = json.loads(timed.stdout)  # progress went to stderr: stdout is pure JSON
    assert all(isinstance(r["latency_ms"], float) and r["repeats"] == 3 and r["warmup"] == 3 for r in rows)
    assert len(tiny_recipe) == 2 * (3 + 3)


def test_cli_profile_csv_keeps_numbers_plain(tiny_recipe):
    result = runner.invoke(app, ["profile", "u-dit", "--scale", "paper", "-f", "csv"])
    header, first = result.stdout.splitlines()[:2]
    cols = header.split(",")
    values = dict(zip(cols, first.split(",")))
    assert float(values["gmacs"]) * 1e9 == 16 and values["latency_ms"] == ""
    assert values["latency_note"] == "not measured (pass --latency)"


@pytest.mark.parametrize("args, message", [
    (["--repeats", "0"], "--repeats must be at least 1"),
    (["--repeats", "-2"], "--repeats must be at least 1"),
    (["--device", "cuda"], "CUDA is not available"),
])
def test_cli_profile_bad_input_is_one_line_exit_2(tiny_recipe, monkeypatch, args, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = runner.invoke(app, ["profile", "u-dit", *args])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert tiny_recipe == []


def test_progress_lines_stay_whole_around_notes_failures_and_warnings():
    out = io.StringIO()
    progress = profile_mod.ProfileProgress(out)
    progress.start(1, 2, "dit-xl-2")
    progress.note("timing dit-xl-2: 20 repeats of about 6.0 s each")
    progress.done(121.0)
    progress.warn("latency of dit-xl-2 is noisy: IQR 40% of median; use a quiet machine or more --repeats")

    def broken():
        raise BenchError("no such config")

    with pytest.raises(BenchError):
        profile_mod.run_profile([profile_mod.ProfileJob("u-dit-l", broken)], profile_mod.latency_plan("paper"),
                                progress)
    assert out.getvalue().splitlines() == [
        "[1/2] dit-xl-2 ... ", "    timing dit-xl-2: 20 repeats of about 6.0 s each",
        "[1/2] dit-xl-2 ... done in 121.0 s",
        "warning: latency of dit-xl-2 is noisy: IQR 40% of median; use a quiet machine or more --repeats",
        "[1/1] u-dit-l ... failed"]


def test_cli_profile_entry_option_profiles_only_those_entries():
    """`-e` as in reproduce: a recipe that takes `entries` builds only those (lipt); an entry the card has but the
    scale does not profile (qac's released pickle at smoke) and an unknown one are one line, exit 2."""
    result = runner.invoke(app, ["profile", "lipt", "-e", "imdn,EDSR-baseline", "--no-latency", "--json"])
    assert result.exit_code == 0, result.output
    assert [r["entry"] for r in json.loads(result.stdout)] == ["imdn", "edsr-baseline"]
    assert result.stderr.count("done in") == 2  # the other four smoke entries were never built
    for args, message in ((["qac", "-e", "edm-official"], "qac profiles no entry among edm-official at smoke scale"),
                          (["lipt", "-e", "nope"], "unknown entry of lipt 'nope'")):
        bad = runner.invoke(app, ["profile", *args, "--no-latency"])
        errors = [line for line in bad.stderr.splitlines() if not line.startswith("[")]  # progress lines aside
        assert bad.exit_code == 2 and len(errors) == 1 and errors[0].startswith(f"error: {message}"), bad.output
