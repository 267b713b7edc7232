"""One CLI grammar (issue 14): --version and -h, names without case, the paper positional or --paper, list
options by commas or repeats, and --format rich|md|csv|latex|json (with --json as its alias) on every command
that prints results."""
from __future__ import annotations

import re

import csv
import io
import json
import shutil
import subprocess

import pytest
import typer
from typer.testing import CliRunner

import bench
from bench.cli import _parse_seeds, _split_list, app, latex_escape
from bench.registry import Registry, UnknownName

runner = CliRunner()


def run_ok(args: list[str]) -> str:
    """stdout of a successful command; a run's age ("age_s") moves between calls, so it is blanked."""
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (args, result.output)
    return re.sub(r'"age_s": [0-9.e+-]+', '"age_s": 0', result.stdout)


def test_version_prints_the_package_version():
    assert run_ok(["--version"]) == f"bench {bench.__version__}\n"


def test_dash_h_is_help_on_every_command():
    commands = typer.main.get_command(app).commands
    assert {"list", "claims", "show", "diff", "check", "assets", "runs", "score"} <= set(commands)
    assert "Usage: " in run_ok(["-h"])
    for name in commands:
        out = run_ok([name, "-h"])
        assert out.startswith("Usage: ") and f" {name} " in out.splitlines()[0], name
        assert out == run_ok([name, "--help"])


def test_registry_matches_names_without_case_and_exact_spelling_wins():
    reg: Registry[object] = Registry("widget")
    for name in ("alpha", "Beta", "beta", "gamma-ray"):
        reg.register(name, None)
    assert reg.get("ALPHA").name == "alpha" and reg.get("Gamma-Ray").name == "gamma-ray"
    assert reg.get("Beta").name == "Beta" and reg.get("beta").name == "beta"
    with pytest.raises(UnknownName, match="ambiguous"):
        reg.get("BETA")
    with pytest.raises(UnknownName, match="Did you mean 'gamma-ray'"):
        reg.get("GammaRay")


def test_paper_names_are_case_insensitive_with_suggestions(store_root):
    assert run_ok(["claims", "U-DiT", "--json"]) == run_ok(["claims", "u-dit", "--json"])
    result = runner.invoke(app, ["claims", "udit"])
    assert result.exit_code == 2
    assert "unknown paper 'udit'" in result.output and "Did you mean 'u-dit'" in result.output
    assert len(result.output.strip().splitlines()) == 1
    for args in (["assets", "UDIT"], ["runs", "U_DIT"], ["check", "u-ditt"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "Did you mean 'u-dit'" in result.output, args


def test_scale_status_entry_and_dialect_names_are_case_insensitive(toy_runs, tmp_path):
    assert len(json.loads(run_ok(["runs", "--scale", "SMOKE", "--status", "Complete", "--json"]))) == 2
    assert [r["entry"] for r in json.loads(run_ok(["runs", "toy", "--entry", "TOY-Method", "--json"]))] == \
        ["toy-method"]
    result = runner.invoke(app, ["runs", "--scale", "smok"])
    assert result.exit_code == 2 and "unknown scale 'smok'" in result.output and "'smoke'" in result.output
    result = runner.invoke(app, ["runs", "toy", "--entry", "toy-methd"])
    assert result.exit_code == 2 and "Did you mean 'toy-method'" in result.output
    result = runner.invoke(app, ["score", "PSNR-RGB", "--pred", str(tmp_path)])
    assert result.exit_code == 2 and "Did you mean 'psnr_rgb'" in result.output


def test_paper_is_positional_or_an_option_everywhere(toy_runs):
    assert run_ok(["claims", "-p", "lipt", "--json"]) == run_ok(["claims", "lipt", "--json"])
    assert run_ok(["assets", "--paper", "u-dit", "--json"]) == run_ok(["assets", "u-dit", "--json"])
    assert run_ok(["runs", "-p", "toy", "--json"]) == run_ok(["runs", "toy", "--json"])
    by_arg = runner.invoke(app, ["check", "lipt", "u-dit", "--format", "json"])
    by_opt = runner.invoke(app, ["check", "--paper", "lipt,u-dit", "--format", "json"])
    assert by_arg.exit_code == by_opt.exit_code == 1 and by_arg.stdout == by_opt.stdout
    assert {f["paper"] for f in json.loads(by_arg.stdout)} == {"lipt", "u-dit"}
    conflict = runner.invoke(app, ["claims", "lipt", "--paper", "u-dit"])
    assert conflict.exit_code == 2 and "two papers given" in conflict.output
    assert run_ok(["claims", "LIPT", "--paper", "lipt", "--json"]) == run_ok(["claims", "lipt", "--json"])
    missing = runner.invoke(app, ["claims"])
    assert missing.exit_code == 2 and "give a paper" in missing.output


def test_list_options_take_commas_or_repeats(toy_runs):
    assert _split_list(["a,b", "c", " d , "]) == ["a", "b", "c", "d"]
    assert _split_list(None) is None and _split_list([]) is None
    assert _parse_seeds(["0,1", "2"]) == _parse_seeds("0,1,2") == [0, 1, 2]
    assert _parse_seeds(None) is None
    commas = run_ok(["runs", "toy", "--entry", "toy-method,toy-baseline", "--json"])
    repeats = run_ok(["runs", "toy", "--entry", "toy-method", "--entry", "toy-baseline", "--json"])
    assert commas == repeats and len(json.loads(commas)) == 2


def test_json_is_an_alias_of_format_json(toy_runs):
    for args in (["list"], ["claims", "toy"], ["runs"], ["assets", "u-dit"]):
        assert run_ok(args + ["--json"]) == run_ok(args + ["--format", "json"]), args
    clash = runner.invoke(app, ["list", "--json", "--format", "csv"])
    assert clash.exit_code == 2 and len(clash.output.strip().splitlines()) == 1


def _csv_rows(text: str) -> list[dict[str, str]]:
    assert "┃" not in text and "│" not in text  # never the rich table
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_is_plain_csv_on_every_command(toy_runs):
    rows = _csv_rows(run_ok(["list", "--format", "csv"]))
    assert len(rows) == 11 and {r["paper"] for r in rows} >= {"toy", "u-dit", "lipt", "sam-prior"}  # 10 + toy
    result = runner.invoke(app, ["check", "lipt", "--format", "csv"])  # no runs: every reference is missing
    rows = _csv_rows(result.stdout)
    assert result.exit_code == 1 and rows and {r["outcome"] for r in rows} == {"missing"}
    rows = _csv_rows(run_ok(["claims", "toy", "--format", "csv"]))
    assert {(r["claim"], r["source"]) for r in rows} >= {("better", "paper"), ("better", "ours")}
    rows = _csv_rows(run_ok(["runs", "-f", "csv"]))
    assert sorted(r["entry"] for r in rows) == ["toy-baseline", "toy-method"]
    assert {r["seeds"] for r in rows} == {"0;1"}
    rows = _csv_rows(run_ok(["assets", "u-dit", "-f", "csv"]))
    assert {r["kind"] for r in rows} == {"file", "dataset"}


def test_markdown_tables_on_every_command(toy_runs):
    out = run_ok(["list", "--format", "md"])
    assert out.startswith("## bench: papers\n\n| paper | family |")
    assert any(line.startswith("| u-dit |") for line in out.splitlines())
    out = run_ok(["runs", "--format", "md"])
    assert "| id | paper | entry |" in out and out.count("| toy |") == 2
    out = run_ok(["claims", "toy", "--format", "md"])
    assert out.startswith("## Claims: A toy paper for harness tests") and "**better**: method beats baseline" in out


def test_latex_escapes_specials():
    assert latex_escape("psnr_y@matlab & 50% {x} Δ ±") == r"psnr\_y@matlab \& 50\% \{x\} $\Delta$ $\pm$"
    assert latex_escape("é≈✓") == r"e$\approx$?"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_latex_output_compiles_with_pdflatex(toy_runs, tmp_path):
    runs = json.loads(run_ok(["runs", "--json"]))
    parts = [run_ok(["list", "-f", "latex"]), run_ok(["runs", "-f", "latex"]), run_ok(["claims", "toy", "-f", "latex"]),
             run_ok(["assets", "u-dit", "-f", "latex"]), run_ok(["diff", runs[0]["run_id"], runs[1]["run_id"],
                                                                  "-f", "latex"])]
    check = runner.invoke(app, ["check", "lipt", "-f", "latex"])
    assert check.exit_code == 1
    parts.append(check.stdout)
    assert all(p.count(r"\toprule") == 1 and r"\bottomrule" in p for p in parts)
    body = "\n\\bigskip\n".join(r"\resizebox{\textwidth}{!}{" + p + "}" for p in parts)
    (tmp_path / "t.tex").write_text("\\documentclass{article}\\usepackage{booktabs}\\usepackage{graphicx}\n"
                                    "\\begin{document}\n" + body + "\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]


def test_score_and_diff_print_csv(toy_runs, tmp_path):
    import numpy as np
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio

    rng = np.random.default_rng(1)
    ref = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    pred = np.clip(ref.astype(int) + rng.integers(-4, 5, ref.shape), 0, 255).astype(np.uint8)
    for name, image in (("ref", ref), ("pred", pred)):
        (tmp_path / name).mkdir()
        Image.fromarray(image).save(tmp_path / name / "x.png")
    [row] = _csv_rows(run_ok(["score", "PSNR_RGB", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                              "--format", "csv"]))
    assert row["metric"] == "psnr_rgb" and row["n"] == "1"
    assert float(row["value"]) == pytest.approx(peak_signal_noise_ratio(ref, pred, data_range=255), abs=1e-9)
    ids = [r["run_id"] for r in json.loads(run_ok(["runs", "--json"]))]
    rows = _csv_rows(run_ok(["diff", *ids, "-f", "csv"]))
    metric = next(r for r in rows if r["section"] == "metrics")
    assert metric["key"] == "psnr_rgb" and metric["setting"] == "sr_scale=2"
    assert float(metric["delta"]) == pytest.approx(float(metric["b"]) - float(metric["a"]))
    assert {(r["section"], r["key"]) for r in rows} >= {("spec", "entry"), ("spec", "args.offset")}
