"""`bench assets`: filter by paper, only what is missing, embedded sets say so, `--count` says why a set is bad."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bench.cli import app

runner = CliRunner()


@pytest.fixture()
def no_assets(tmp_path, monkeypatch):
    """An empty assets folder and no data root: every external file and real dataset is missing."""
    monkeypatch.setenv("BENCH_ASSETS", str(tmp_path / "assets"))
    monkeypatch.delenv("BENCH_DATA_ROOT", raising=False)
    return tmp_path


def assets_json(args: list[str]) -> list[dict]:
    result = runner.invoke(app, ["assets", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_paper_filter_keeps_what_the_paper_uses(no_assets):
    rows = assets_json(["u-dit"])
    # methods/u_dit/assets.yaml (used_by u-dit), the Inception weights of fid@ref-npz and the digits classifier
    # of fd_digits (both dialects on the u-dit card); the card's three datasets
    assert {(r["kind"], r["name"]) for r in rows} == {
        ("file", "sd-vae-ft-ema"), ("file", "adm-imagenet256-reference"), ("file", "inception-v3-compat"),
        ("file", "digits-cnn"), ("dataset", "digits"), ("dataset", "imagenet-256"), ("dataset", "imagenet-512")}
    everything = assets_json([])
    assert len(everything) > len(rows) and {r["name"] for r in rows} <= {r["name"] for r in everything}


def test_embedded_sets_say_embedded_and_missing_hides_them(no_assets):
    digits = next(r for r in assets_json(["u-dit"]) if r["name"] == "digits")
    assert digits["state"] == "embedded" and digits["file"] == "embedded" and digits["found"] is True
    text = runner.invoke(app, ["assets", "u-dit"]).stdout
    line = next(ln for ln in text.splitlines() if "│ digits " in ln)
    assert "embedded" in line and "pass --data-root" not in text
    missing = assets_json(["u-dit", "--missing"])
    assert {r["name"] for r in missing} == {"sd-vae-ft-ema", "adm-imagenet256-reference", "inception-v3-compat",
                                            "digits-cnn", "imagenet-256", "imagenet-512"}
    assert {r["state"] for r in missing} == {"missing"}


def test_count_says_why_a_dataset_is_bad(no_assets):
    """Set5 with four of its five images: the layout is there, the count is not."""
    root = no_assets / "data"
    set5 = root / "benchmark" / "Set5"
    for name in "abcd":
        (set5 / "HR").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(set5 / "HR" / f"{name}.png")
        for s in (2, 3, 4):
            (set5 / "LR_bicubic" / f"X{s}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((12 // s, 12 // s, 3), np.uint8)).save(
                set5 / "LR_bicubic" / f"X{s}" / f"{name}x{s}.png")
    plain = next(r for r in assets_json(["lipt", "--data-root", str(root)]) if r["name"] == "set5")
    assert plain["state"] == "found" and plain["file"] == str(root)
    counted = next(r for r in assets_json(["lipt", "--data-root", str(root), "--count"]) if r["name"] == "set5")
    assert counted["state"] == "bad" and "split 'test' has 4 items, expected 5" in counted["detail"]
    text = runner.invoke(app, ["assets", "lipt", "--data-root", str(root), "--count", "--missing"]).stdout
    line = next(ln for ln in text.splitlines() if "│ set5 " in ln)
    assert "bad" in line and "has 4 items, expected 5" in line
