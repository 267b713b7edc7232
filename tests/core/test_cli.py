"""The command line as users meet it: listing without torch, one-line errors with exit 2, tables."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from bench.cli import app

runner = CliRunner()


def test_list_shows_ten_papers_without_importing_torch():
    code = ("import sys; from typer.testing import CliRunner; from bench.cli import app; "
            "r = CliRunner().invoke(app, ['list', '--json']); assert r.exit_code == 0, r.output; "
            "import json; print(len(json.loads(r.output))); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["10", "False"]


def test_unknown_paper_suggests_close_matches():
    result = runner.invoke(app, ["table", "--paper", "lpit"])
    assert result.exit_code == 2
    assert "unknown paper 'lpit'" in result.output and "'lipt'" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.fixture()
def gim_card_only():
    """All ten papers have recipes now: gim is registered card-only (no recipe) for the test, then restored."""
    from bench import papers

    reg = papers.registries()["papers"]
    old = reg.get("gim")
    reg.unregister("gim")
    reg.register("gim", None, **old.meta)
    yield "gim"
    reg.unregister("gim")
    reg.register("gim", old.target, **old.meta)


def test_unimplemented_paper_refuses_to_reproduce(store_root, gim_card_only):
    result = runner.invoke(app, ["reproduce", gim_card_only])
    assert result.exit_code == 2 and "not implemented yet" in result.output
    assert not store_root.exists() or not any(store_root.rglob("*.json"))


def test_bad_scale_and_seeds_are_one_line_errors():
    for args in (["reproduce", "u-dit", "--scale", "huge"], ["reproduce", "u-dit", "--seeds", "a,b"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert len(result.output.strip().splitlines()) == 1


def test_claims_and_check_run_without_any_runs(store_root, tmp_path):
    assert runner.invoke(app, ["claims", "lipt", "--json"]).exit_code == 0
    result = runner.invoke(app, ["check", "--format", "json"])
    # a gate CI relies on: with no runs every referenced result is missing, and missing fails (exit 1)
    assert result.exit_code == 1 and {f["outcome"] for f in json.loads(result.stdout)} == {"missing"}


def test_score_folders_against_scikit_image(tmp_path):
    import numpy as np
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio

    rng = np.random.default_rng(0)
    (tmp_path / "ref").mkdir()
    (tmp_path / "pred").mkdir()
    expected = []
    for name in ("a", "b"):
        ref = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
        pred = np.clip(ref.astype(int) + rng.integers(-6, 7, ref.shape), 0, 255).astype(np.uint8)
        Image.fromarray(ref).save(tmp_path / "ref" / f"{name}.png")
        Image.fromarray(pred).save(tmp_path / "pred" / f"{name}.png")
        expected.append(peak_signal_noise_ratio(ref[2:-2, 2:-2], pred[2:-2, 2:-2], data_range=255))
    result = runner.invoke(app, ["score", "psnr_rgb", "--pred", str(tmp_path / "pred"), "--ref",
                                 str(tmp_path / "ref"), "--crop", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["value"] == __import__("pytest").approx(sum(expected) / 2, abs=1e-9)
    missing = runner.invoke(app, ["score", "psnr_rgb", "--pred", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_piped_output_is_not_wrapped():
    """`bench list | grep sam-prior` must find the paper: a pipe gets one unwrapped line per row."""
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "bench.cli", "list"], capture_output=True, text=True, check=True,
                         env={**os.environ, "COLUMNS": "80"}).stdout
    rows = [line for line in out.splitlines() if "sam-prior" in line]
    assert rows and "implemented" in rows[0]
    assert all(len(line) > 80 for line in rows)  # the table kept its natural width instead of folding at 80
