"""The core of `bench evaluate` (bench/evaluate.py) on the toy paper: the hook contract, the run it records (the
checkpoint's file name and sha256 in args and setting, the paper cell's dataset/metric/setting so the table puts a
Δ beside the paper's number), caching, rehearsals, the one-line errors and the device choice.

This module is also the toy paper's hook module (registered as its recipe for these tests): LAYOUTS, released_spec
and evaluate_released below follow the contract. The "released model" is a torch Linear layer saved as a plain
state dict; its "PSNR" is a known function of its weights, so every recorded number is checked by hand.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from bench import evaluate, papers
from bench.cli import app
from bench.evaluate import CheckpointError, Layout, load_strict, read_checkpoint
from bench.recipe import SeedResult, metric_record
from bench.registry import BenchError

runner = CliRunner()
TOY_CARD = Path(__file__).with_name("toy_paper.yaml")
CALLS: list[dict] = []

# ------------------------------------------------------------------------------------ the toy paper's hooks
LAYOUTS = {"toy-method": Layout(files=("toy-method.pt",), source="https://example.org/toy/releases",
                                format="torch.save of nn.Linear(2, 1).state_dict()")}
VERSION = 1


def plan(card, scale, data_root):  # the hook module is also registered as the toy recipe
    return []


def released_spec(card, entry, scale):
    return {"dataset": "set5", "split": "test", "metrics": ["psnr_rgb"], "args": {"in_features": 2}}


def evaluate_released(spec, checkpoint, ctx):
    model = load_strict(nn.Linear(spec.args["in_features"], 1), read_checkpoint(checkpoint), checkpoint,
                        "toy Linear")
    n = spec.capped("max_samples", 100)
    CALLS.append({"device": ctx.device, "seed": ctx.extra["seed"], "n": n, "sha": ctx.extra["checkpoint_sha256"]})
    value = 30.0 + float(model.weight.detach().sum() + model.bias.detach().sum())
    return SeedResult(metrics=[metric_record("psnr_rgb", value, n, {"sr_scale": 2})], cost={"params_m": 3e-6})


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture()
def toy(store_root):
    reg = papers.registries()["papers"]
    reg.register("toy", __name__, package="toy", card=str(TOY_CARD))
    papers.card.cache_clear()
    CALLS.clear()
    yield "toy"
    reg.unregister("toy")
    papers.card.cache_clear()


def linear_checkpoint(path: Path, weight: list[float], bias: float) -> Path:
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weight]))
        layer.bias.fill_(bias)
    torch.save(layer.state_dict(), path)
    return path


def cli(*args: str):
    return runner.invoke(app, ["evaluate", "toy", *args])


# ------------------------------------------------------------------------------------------------- tests
def test_a_release_is_recorded_beside_the_paper_cell_with_its_checkpoint(toy, tmp_path, store_root):
    path = linear_checkpoint(tmp_path / "toy-method.pt", [0.5, 0.25], 0.5)  # "PSNR" 30 + 1.25 = 31.25
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    result = cli("-e", "toy-method", "-c", str(path), "--device", "cpu", "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    run = out["run"]
    assert run["status"] == "complete" and run["scale"] == "paper" and run["dataset"] == "set5"
    assert run["setting"] == {"checkpoint": f"toy-method.pt@{sha[:12]}"}
    spec = json.loads((store_root / "toy" / run["run_id"] / "spec.json").read_text())
    assert spec["args"]["checkpoint"] == {"file": "toy-method.pt", "sha256": sha} and spec["rehearsal"] == {}
    assert run["provenance"]["checkpoint_sha256"] == sha
    assert CALLS == [{"device": "cpu", "seed": 0, "n": 100, "sha": sha}]
    assert out["beside_paper"] == [{"metric": "psnr_rgb", "setting": "sr_scale=2", "ours": 31.25,
                                    "paper_metric": "psnr_rgb", "paper": 31.5, "delta": -0.25,
                                    "source": "[P] Table 1"}]
    shown = runner.invoke(app, ["table", "toy", "--all", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    table = json.loads(shown.stdout)["cells"]
    (cell,) = [c for c in table if c["run_id"] == run["run_id"]]
    assert (cell["entry"], cell["dataset"], cell["paper"], cell["ours"]) == ("toy-method", "set5", 31.5, 31.25)
    assert cell["delta"] == pytest.approx(-0.25)
    again = cli("-e", "toy-method", "-c", str(path), "--device", "cpu", "--json")
    assert json.loads(again.stdout)["run"]["run_id"] == run["run_id"] and len(CALLS) == 1  # cached


def test_two_checkpoints_are_two_runs_and_both_stay(toy, tmp_path, store_root):
    from bench.store import Store

    first = linear_checkpoint(tmp_path / "toy-method.pt", [0, 0], 1)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    second = linear_checkpoint(other_dir / "toy-method.pt", [0, 0], 2)  # same name, other bytes
    ids = set()
    for path in (first, second):
        result = cli("-e", "toy-method", "-c", str(path), "--device", "cpu", "--json")
        assert result.exit_code == 0, result.output
        ids.add(json.loads(result.stdout)["run"]["run_id"])
    assert len(ids) == 2
    values = sorted(m["value"] for r in Store().latest("toy") for m in r["metrics"])
    assert values == [31.0, 32.0]


def test_max_samples_is_a_rehearsal_that_never_fills_the_paper_cell(toy, tmp_path, store_root):
    path = linear_checkpoint(tmp_path / "toy-method.pt", [0.5, 0.25], 0.5)
    result = cli("-e", "toy-method", "-c", str(path), "--max-samples", "7", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert CALLS[-1]["n"] == 7 and out["run"]["metrics"][0]["n"] == 7
    spec = json.loads((store_root / "toy" / out["run"]["run_id"] / "spec.json").read_text())
    assert spec["rehearsal"] == {"max_samples": 7}
    assert out["beside_paper"][0]["paper"] is None and out["beside_paper"][0]["delta"] is None
    assert cli("-e", "toy-method", "-c", str(path), "--max-samples", "0").exit_code == 2


def test_missing_file_wrong_layout_and_unknown_entry_are_one_line_each(toy, tmp_path):
    missing = cli("-e", "toy-method", "-c", str(tmp_path / "toy-method.pt"))
    assert missing.exit_code == 2
    line = missing.stderr.strip()
    assert "\n" not in line and str(tmp_path / "toy-method.pt") in line
    assert "https://example.org/toy/releases" in line
    wrong = tmp_path / "wrong.pt"
    torch.save({f"module.{k}": v for k, v in nn.Linear(2, 1).state_dict().items()} |
               {f"extra.{i}": torch.zeros(1) for i in range(5)}, wrong)
    result = cli("-e", "toy-method", "-c", str(wrong), "--device", "cpu")
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and "not in the official toy Linear layout" in line
    assert "missing keys weight, bias" in line and "unexpected keys module.weight, module.bias, extra.0, extra.1 " \
                                                   "(+3 more)" in line
    no_release = cli("-e", "toy-baseline", "-c", str(wrong))
    assert no_release.exit_code == 2 and "has no released checkpoint" in no_release.stderr
    unknown = cli("-e", "toy-methd", "-c", str(wrong))
    assert unknown.exit_code == 2 and "toy-method" in unknown.stderr  # close match offered


def test_a_paper_without_hooks_says_so(store_root, tmp_path):
    reg = papers.registries()["papers"]
    reg.register("toy", "tests.core.toy_recipe", package="toy", card=str(TOY_CARD))
    papers.card.cache_clear()
    try:
        result = runner.invoke(app, ["evaluate", "toy", "-e", "toy-method", "-c", str(tmp_path / "x.pt")])
    finally:
        reg.unregister("toy")
        papers.card.cache_clear()
    assert result.exit_code == 2 and "cannot evaluate released checkpoints yet" in result.stderr


def test_shape_mismatch_and_unreadable_files(tmp_path):
    model = nn.Linear(2, 1)
    with pytest.raises(CheckpointError, match=r"weight has shape \[1, 3\], the model expects \[1, 2\]"):
        load_strict(model, {"weight": torch.zeros(1, 3), "bias": torch.zeros(1)}, tmp_path / "x.pt", "toy")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="not a readable torch file") as err:
        read_checkpoint(junk)
    assert "\n" not in str(err.value)
    import argparse

    official = tmp_path / "train.pt"  # a train.py dict holding argparse args needs the full unpickler
    torch.save({"ema": model.state_dict(), "args": argparse.Namespace(model="x")}, official)
    assert set(read_checkpoint(official)) == {"ema", "args"}


def test_folder_checkpoints_hash_by_relative_path_and_content(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        (root / "sub").mkdir(parents=True)
        (root / "config.json").write_text("{}")
        (root / "sub" / "w.bin").write_bytes(b"\x00\x01")
    assert evaluate.sha256_file(a) == evaluate.sha256_file(b)
    (b / "sub" / "w.bin").write_bytes(b"\x00\x02")
    assert evaluate.sha256_file(a) != evaluate.sha256_file(b)


def test_device_choice(monkeypatch, toy, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert evaluate.resolve_device("auto", "paper") == "cpu"
    with pytest.raises(BenchError, match="CUDA is not available"):
        evaluate.resolve_device("cuda", "paper")
    with pytest.raises(BenchError, match="auto, cpu, cuda or cuda:N"):
        evaluate.resolve_device("gpu", "paper")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Mock GPU")  # for the run's provenance
    assert evaluate.resolve_device("auto", "small") == "cuda"
    assert evaluate.resolve_device("cuda:1", "paper") == "cuda:1"
    # the chosen device reaches the hook (which only records it: nothing here touches CUDA)
    path = linear_checkpoint(tmp_path / "toy-method.pt", [0, 0], 0)
    result = cli("-e", "toy-method", "-c", str(path), "--device", "auto", "--json")
    assert result.exit_code == 0, result.output
    assert CALLS[-1]["device"] == "cuda"
    provenance = json.loads(result.stdout)["run"]["provenance"]
    assert provenance["device"] == "cuda" and provenance["hardware"]["gpu"] == "Mock GPU"
    bad = cli("-e", "toy-method", "-c", str(path), "--device", "cuda:2")
    assert bad.exit_code == 2 and "only 2 CUDA device(s)" in bad.stderr


def test_dataset_reaches_a_hook_that_takes_it_and_is_refused_otherwise(toy, tmp_path, monkeypatch):
    import sys

    path = linear_checkpoint(tmp_path / "toy-method.pt", [0, 0], 0)
    refused = cli("-e", "toy-method", "-c", str(path), "--dataset", "digits", "--device", "cpu")
    assert refused.exit_code == 2 and "drop --dataset" in refused.stderr
    seen, plain = [], released_spec

    def with_dataset(card, entry, scale, dataset=None):
        seen.append(dataset)
        return {**plain(card, entry, scale), "dataset": dataset or "set5"}

    monkeypatch.setattr(sys.modules[__name__], "released_spec", with_dataset)
    result = cli("-e", "toy-method", "-c", str(path), "--dataset", "digits", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    assert seen == ["digits"] and json.loads(result.stdout)["run"]["dataset"] == "digits"


def test_ctrl_c_is_recorded_as_interrupted_and_a_rerun_completes(toy, tmp_path, store_root, monkeypatch):
    import sys

    path = linear_checkpoint(tmp_path / "toy-method.pt", [0, 0], 0)
    module, real = sys.modules[__name__], evaluate_released

    def interrupted(spec, checkpoint, ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "evaluate_released", interrupted)
    result = cli("-e", "toy-method", "-c", str(path), "--device", "cpu")
    assert result.exit_code == 130 and "rerun to resume" in result.stderr
    (record,) = [json.loads(p.read_text()) for p in (store_root / "toy").glob("*/result.json")]
    assert record["status"] == "interrupted"
    monkeypatch.setattr(module, "evaluate_released", real)
    again = cli("-e", "toy-method", "-c", str(path), "--device", "cpu", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["run"]["status"] == "complete"
