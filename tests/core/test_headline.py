"""The headline view (`bench table PAPER`): our method against its baselines, on the toy paper whose numbers are
known in advance (tests/core/toy_recipe.py: item values 30 + offset + N(0, 0.1), seeded)."""
from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench import headline
from bench.cli import app
from tests.core import toy_recipe

SCHEMA = Path(headline.__file__).parent / "schemas" / "table.schema.json"


def per_seed_means(offset: float) -> list[float]:
    """What the toy recipe computes per seed, recomputed here from its item generator."""
    n = toy_recipe.N_SHARDS * toy_recipe.ITEMS_PER_SHARD
    return [statistics.fmean(toy_recipe.item_value(offset, seed, i) for i in range(n)) for seed in (0, 1)]


def test_one_row_per_pair_metric_with_hand_computed_numbers(toy_runs, toy_paper):
    view = headline.build_headline(toy_paper, toy_runs)
    assert len(view.rows) == 1  # both claims compare the same pair on the same metric: one row, first claim
    row = view.rows[0]
    method, baseline = per_seed_means(1.0), per_seed_means(0.0)
    assert (row.method.entry, row.baseline.entry, row.metric, row.setting) == \
        ("toy-method", "toy-baseline", "psnr_rgb", {"sr_scale": 2})
    assert row.method.mean == pytest.approx(statistics.fmean(method))
    assert row.method.std == pytest.approx(statistics.stdev(method))
    assert row.baseline.n == 2
    assert row.delta == pytest.approx(statistics.fmean(method) - statistics.fmean(baseline))
    assert row.better is True and row.direction == "higher"
    assert row.cost["params_m"] == {"method": 0.001, "baseline": 0.001, "ratio": 1.0}
    # the toy recipe records no sanity floor: the claim cannot be decided, and the row says so
    assert (row.claim, row.verdict, row.verdict_reason) == ("better", "inconclusive", "no sanity floor recorded")
    assert row.paper["method"] == 31.5 and row.paper["baseline"] == 30.0 and row.paper["delta"] == 1.5


def test_direction_decides_better_or_worse():
    assert headline._better(-1.0, "lower") is True
    assert headline._better(-1.0, "higher") is False
    assert headline._better(0.0, "higher") is None


def test_no_runs_says_how_to_get_some(toy_paper, store_root):
    result = CliRunner().invoke(app, ["table", toy_paper])
    assert result.exit_code == 0
    assert "bench reproduce toy" in result.output


def test_rich_view_fits_a_screen_and_keeps_bracketed_text(toy_runs, toy_paper):
    result = CliRunner().invoke(app, ["table", toy_paper], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) <= 24
    assert "ours [smoke]" in result.output and "(n=2)" in result.output
    assert "▲ better" in result.output
    assert "inconclusive (no sanity floor recorded)" in result.output


def test_paper_positional_or_option_and_case_insensitive(toy_runs, toy_paper):
    a = CliRunner().invoke(app, ["table", "TOY", "--format", "csv"])
    b = CliRunner().invoke(app, ["table", "--paper", "toy", "--format", "csv"])
    assert a.exit_code == b.exit_code == 0 and a.output == b.output


def test_json_is_numbers_and_dicts_and_matches_the_documented_schema(toy_runs, toy_paper):
    result = CliRunner().invoke(app, ["table", toy_paper, "--format", "json", "--all"])
    data = json.loads(result.output)
    assert json.loads(SCHEMA.read_text()) == headline.table_schema()  # the committed file is the model's schema
    headline.table_model().model_validate(data)
    row = data["headline"][0]
    assert isinstance(row["method"]["mean"], float) and row["setting"] == {"sr_scale": 2}
    assert row["better"] is True and row["direction"] == "higher"
    cell = next(c for c in data["cells"] if c["entry"] == "toy-method" and c["dataset"] == "set5")
    assert cell["paper"] == 31.5 and cell["setting"] == {"sr_scale": 2}


def test_csv_has_separate_numeric_columns(toy_runs, toy_paper):
    rows = list(csv.DictReader(io.StringIO(CliRunner().invoke(app, ["table", toy_paper, "-f", "csv"]).output)))
    assert float(rows[0]["method_mean"]) == pytest.approx(statistics.fmean(per_seed_means(1.0)))
    assert float(rows[0]["method_std"]) == pytest.approx(statistics.stdev(per_seed_means(1.0)))
    assert rows[0]["scale"] == "smoke" and rows[0]["better"] == "True"
    full = list(csv.DictReader(io.StringIO(CliRunner().invoke(app, ["table", toy_paper, "-f", "csv",
                                                                      "--all"]).output)))
    ours = [r for r in full if r["ours"]]
    assert ours and all(29 < float(r["ours"]) < 32 and r["scale"] == "smoke" for r in ours)  # no "[smoke]" inside


def test_unknown_metric_is_one_line_with_a_suggestion(toy_runs, toy_paper):
    result = CliRunner().invoke(app, ["table", toy_paper, "--metric", "psnr_rbg"])
    assert result.exit_code == 2
    assert "psnr_rgb" in result.output and len(result.output.strip().splitlines()) == 1


def test_metric_filter_takes_commas(toy_runs, toy_paper):
    result = CliRunner().invoke(app, ["table", toy_paper, "-f", "json", "--metric", "psnr_rgb,ssim_rgb"])
    assert [r["metric"] for r in json.loads(result.output)["headline"]] == ["psnr_rgb"]


def test_latex_escapes_every_special_character():
    assert headline.latex_escape("fd_digits 2.0 ± 0.1 & 50% [P] Δ") == \
        r"fd\_digits 2.0 $\pm$ 0.1 \& 50\% [P] $\Delta$"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed (Debian: texlive-latex-base)")
@pytest.mark.parametrize("extra", [[], ["--all"]])
def test_latex_compiles_under_pdflatex(toy_runs, toy_paper, tmp_path, extra):
    body = CliRunner().invoke(app, ["table", toy_paper, "-f", "latex", *extra]).output
    doc = tmp_path / "t.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage[T1]{fontenc}\n"
                   "\\begin{document}\n\\tiny\n" + body + "\\end{document}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / "t.pdf").stat().st_size > 0


def test_lipt_full_table_from_the_card_in_markdown(store_root):
    result = CliRunner().invoke(app, ["table", "lipt", "--format", "md", "--all"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("## LIPT")
    assert "psnr_y@matlab" in result.output and "lipt-small" in result.output


def test_udit_table_json_carries_reported_fid(store_root):
    result = CliRunner().invoke(app, ["table", "--paper", "u-dit", "--format", "json", "--all", "--metric",
                                      "fid@adm"])
    assert result.exit_code == 0, result.output
    cells = json.loads(result.output)["cells"]
    assert {r["metric"] for r in cells} == {"fid@adm"}
    assert any(r["entry"] == "u-dit-l" and r["paper"] == 3.37 for r in cells)
