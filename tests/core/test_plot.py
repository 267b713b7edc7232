"""`bench plot`: cost looked up per (entry, dataset, setting), a Pareto front only where it means something,
error bars over seeds, one figure per claim family, written under the results root."""
from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bench import papers
from bench.cards import PaperCard
from bench.cli import app
from bench.plot import (
    Family,
    Panel,
    Point,
    claim_families,
    cost_cells,
    our_panel,
    panel_kind,
    paper_cost,
    paper_panel,
    pareto_front,
    plot_figures,
    wants_front,
)
from bench.store import Store

runner = CliRunner()
SRC = {"ref": "Table 1", "tag": "P"}
IMAGENET = {"train_iters": 400000, "cfg": 1.0}


def _cell(entry, dataset, metric, value, **setting):
    return {"entry": entry, "dataset": dataset, "metric": metric, "value": value, "setting": setting, "source": SRC}


def _claim(cid, lhs, rhs, dataset, metric, setting, cost=None):
    claim = {"id": cid, "text": cid, "lhs": lhs, "rhs": rhs, "metric": metric, "dataset": dataset,
             "relation": "lt" if metric == "fid@adm" else "gt", "setting": setting, "source": SRC}
    if cost:
        claim["cost"] = {"metric": cost, "ratio_max": 1.0}
    return claim


def _card(**overrides) -> dict:
    """A U-DiT-like card: the method's GMACs at 256 px and at 512 px, as the real card has them."""
    card = {
        "slug": "plotcard", "title": "plot test card", "arxiv": None, "venue": None, "year": 2024, "code": None,
        "family": "diffusion", "summary": "synthetic",
        "entries": [{"id": "big", "role": "method"}, {"id": "dit", "role": "baseline"},
                    {"id": "other", "role": "baseline"}],
        "datasets": ["imagenet-256", "imagenet-512", "set5", "set14", "div2k"],
        "metrics": ["fid@adm", "gmacs", "psnr_rgb", "params_m", "latency_ms"],
        "reported": [
            _cell("big", "imagenet-256", "fid@adm", 16.0, **IMAGENET),
            _cell("dit", "imagenet-256", "fid@adm", 19.5, **IMAGENET),
            _cell("other", "imagenet-256", "fid@adm", 40.0, **IMAGENET),
            _cell("big", "imagenet-512", "fid@adm", 15.4, **IMAGENET),
            _cell("dit", "imagenet-512", "fid@adm", 20.9, **IMAGENET),
            _cell("big", "imagenet-256", "gmacs", 22.22),  # no setting: applies to every 256-px setting
            _cell("dit", "imagenet-256", "gmacs", 118.68),
            _cell("other", "imagenet-256", "gmacs", 6.0),
            _cell("big", "imagenet-512", "gmacs", 106.7),
            _cell("dit", "imagenet-512", "gmacs", 524.7),
        ],
        "claims": [_claim("c256", "big", "dit", "imagenet-256", "fid@adm", IMAGENET, "gmacs"),
                   _claim("c512", "big", "dit", "imagenet-512", "fid@adm", IMAGENET, "gmacs")],
    }
    card.update(overrides)
    return card


def _family(card: PaperCard, dataset: str) -> Family:
    return next(f for f in claim_families(card) if f.dataset == dataset)


# ---------------------------------------------------------------------------------------------- cost lookup
def test_cost_of_the_512px_cell_is_never_used_on_a_256px_plot():
    card = PaperCard.model_validate(_card())
    at_256 = {p.entry: p.cost for p in paper_panel(card, _family(card, "imagenet-256"), IMAGENET).points}
    at_512 = {p.entry: p.cost for p in paper_panel(card, _family(card, "imagenet-512"), IMAGENET).points}
    assert at_256 == {"big": 22.22, "dit": 118.68, "other": 6.0}
    assert at_512 == {"big": 106.7, "dit": 524.7}
    assert [c.value for c in cost_cells(card, "big", "gmacs", "imagenet-256", {"cfg": 1.5})] == [22.22]


def test_cost_cell_settings_must_agree_and_one_device_per_panel():
    # lipt-like: latency tabulated on a cost-only dataset (div2k), per sr_scale and per device
    reported = [
        _cell("big", "set5", "psnr_rgb", 32.0, sr_scale=2), _cell("dit", "set5", "psnr_rgb", 31.0, sr_scale=2),
        _cell("big", "set5", "psnr_rgb", 28.0, sr_scale=3), _cell("dit", "set5", "psnr_rgb", 27.5, sr_scale=3),
        _cell("big", "div2k", "latency_ms", 30.0, sr_scale=2, device="GPU"),
        _cell("big", "div2k", "latency_ms", 900.0, sr_scale=2, device="CPU"),
        _cell("dit", "div2k", "latency_ms", 1200.0, sr_scale=2, device="CPU"),
    ]
    card = PaperCard.model_validate(_card(reported=reported, claims=[
        _claim("x2", "big", "dit", "set5", "psnr_rgb", {"sr_scale": 2}, "latency_ms"),
        _claim("x3", "big", "dit", "set5", "psnr_rgb", {"sr_scale": 3}, "latency_ms")]))
    family = claim_families(card)[0]
    x2 = paper_panel(card, family, {"sr_scale": 2})
    # dit has only a CPU latency, so the panel uses CPU for both rather than GPU for one and CPU for the other
    assert {p.entry: p.cost for p in x2.points} == {"big": 900.0, "dit": 1200.0}
    assert x2.cost_label == "device=CPU"
    # the x2 latency never stands in for x3
    assert {p.entry: p.cost for p in paper_panel(card, family, {"sr_scale": 3}).points} == {"big": None, "dit": None}
    assert paper_cost(card, "big", "latency_ms", "set5", {"sr_scale": 3}) is None


# ---------------------------------------------------------------------------------------------- Pareto rules
def test_pareto_front_by_hand():
    points = [(1.0, 5.0), (2.0, 3.0), (3.0, 4.0), (4.0, 1.0)]
    assert pareto_front(points, lower_is_better=True) == [(1.0, 5.0), (2.0, 3.0), (4.0, 1.0)]
    assert pareto_front(points, lower_is_better=False) == [(1.0, 5.0)]


def _points(costs):
    return [Point(f"e{i}", 10.0 + i, "method" if i == 0 else "baseline", cost=c) for i, c in enumerate(costs)]


def test_no_front_for_two_points_or_a_degenerate_cost_axis():
    assert not wants_front(_points([1.0, 50.0]))
    # the smoke plot of the issue: costs 0.00660..0.00666 differ by 0.9%, which is "equal cost"
    degenerate = _points([0.00660, 0.00663, 0.00666])
    assert not wants_front(degenerate)
    kind, note = panel_kind(Panel("ours", "fd", degenerate, "ours", cost="gmacs"))
    assert kind == "per-entry" and note.startswith("equal cost")
    assert wants_front(_points([1.0, 2.0, 3.0]))
    assert panel_kind(Panel("p", "fid", _points([1.0, 2.0]), "paper", cost="gmacs"))[0] == "trade-off"


def test_cost_axis_starts_at_zero_or_is_logarithmic():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.plot import _draw_panel

    fig, (near, wide) = plt.subplots(1, 2)
    _draw_panel(near, Panel("ours", "fd", _points([0.00667, 0.00681]), "ours", cost="gmacs"), lower=True)
    _draw_panel(wide, Panel("paper", "fid", _points([0.9, 22.2, 118.7]), "paper", cost="gmacs"), lower=True)
    assert near.get_xlim()[0] == 0.0 and near.get_xscale() == "linear"
    assert wide.get_xscale() == "log"
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- our runs
def _run(entry, per_seed, *, scale="smoke", setting=None, metric="psnr_rgb", cost=None, paper="toy"):
    values = list(per_seed.values())
    return {"schema_version": 1, "run_id": f"{entry}-{scale}-{abs(hash(json.dumps(setting))) % 10**6}",
            "paper": paper, "entry": entry, "impl": "toy", "dataset": "digits", "split": "test", "scale": scale,
            "stands_for": {"dataset": "set5", "metrics": {"fd_proxy": "psnr_rgb"}}, "setting": {},
            "status": "complete", "error": None, "seeds": [int(s) for s in per_seed],
            "metrics": [{"metric": metric, "setting": setting or {"sr_scale": 2}, "n": 20, "per_seed": per_seed,
                         "value": statistics.fmean(values),
                         "std": statistics.stdev(values) if len(values) > 1 else None}],
            "cost": cost or {"params_m": 0.001}, "provenance": {}, "started_at": "2026-01-01T00:00:00+00:00",
            "finished_at": "2026-01-01T00:01:00+00:00"}


def _write(root: Path, run: dict) -> None:
    path = root / run["paper"] / run["run_id"] / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run))


def test_our_points_carry_a_one_std_error_bar_over_seeds(toy_paper):
    card = papers.card(toy_paper)
    family = claim_families(card)[0]
    runs = [_run("toy-method", {"0": 1.0, "1": 2.0, "2": 4.0}), _run("toy-baseline", {"0": 3.0})]
    panel = our_panel(card, family, family.claims[0], runs, "smoke")
    points = {p.entry: p for p in panel.points}
    # sample std by hand: mean 7/3, squared deviations 16/9 + 1/9 + 25/9 = 42/9, over n-1 = 2 -> 7/3
    assert points["toy-method"].err == pytest.approx(math.sqrt(7 / 3))
    assert points["toy-method"].value == pytest.approx(7 / 3) and points["toy-method"].n == 3
    assert points["toy-baseline"].err is None and points["toy-baseline"].n == 1
    assert points["toy-method"].role == "method" and points["toy-baseline"].role == "baseline"
    assert panel.title.startswith("ours [smoke]")


# ---------------------------------------------------------------------------------------------- figures
def test_default_output_is_under_the_results_root_not_the_cwd(toy_paper, store_root, tmp_path, monkeypatch):
    _write(store_root, _run("toy-method", {"0": 31.0, "1": 31.4}))
    _write(store_root, _run("toy-baseline", {"0": 30.0, "1": 30.1}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = runner.invoke(app, ["plot", "toy"])
    assert result.exit_code == 0, result.output
    printed = [Path(line) for line in result.output.splitlines()]
    assert printed and all(p.parent == store_root / "toy" / "plots" and p.is_file() for p in printed)
    assert not any(elsewhere.iterdir())


def test_one_figure_per_claim_family(store_root, tmp_path):
    # claims: two settings of (set5, psnr_rgb, params_m) -> one figure; (set5, psnr_rgb, none); (set14, ...)
    reported = [_cell(e, d, "psnr_rgb", v + s, sr_scale=s) for e, v in (("big", 30.0), ("dit", 29.0))
                for d in ("set5", "set14") for s in (2, 3)]
    reported += [_cell("big", "div2k", "params_m", 0.9), _cell("dit", "div2k", "params_m", 1.4)]
    claims = [_claim("x2", "big", "dit", "set5", "psnr_rgb", {"sr_scale": 2}, "params_m"),
              _claim("x3", "big", "dit", "set5", "psnr_rgb", {"sr_scale": 3}, "params_m"),
              _claim("plain", "big", "dit", "set5", "psnr_rgb", {"sr_scale": 2}),
              _claim("s14", "big", "dit", "set14", "psnr_rgb", {"sr_scale": 2}, "params_m")]
    card_path = tmp_path / "paper.yaml"
    card_path.write_text(yaml.safe_dump(_card(slug="plotcard", reported=reported, claims=claims)))
    registry = papers.registries()["papers"]
    registry.register("plotcard", "tests.core.toy_recipe", package="plotcard", card=str(card_path))
    papers.card.cache_clear()
    try:
        # our runs at two NFEs stand for set5 psnr_rgb: the NFE curves are one more figure, not one per source
        for entry, base in (("big", 31.0), ("dit", 30.0)):
            for nfe in (10, 25):
                run = _run(entry, {"0": base + nfe / 100, "1": base + nfe / 90}, setting={"nfe": nfe},
                           metric="fd_proxy", paper="plotcard")
                run["run_id"] += f"-{nfe}"
                run["setting"] = {"nfe": nfe}  # two runs, not one superseding the other
                _write(store_root, run)
        result = runner.invoke(app, ["plot", "plotcard", "--json"])
        assert result.exit_code == 0, result.output
        figures = json.loads(result.output)["figures"]
        assert [(f["family"], f["claims"]) for f in figures] == [
            ("set5 psnr_rgb vs params_m", ["x2", "x3"]), ("set5 psnr_rgb per entry", ["plain"]),
            ("set14 psnr_rgb vs params_m", ["s14"]), ("set5 psnr_rgb vs NFE", ["x2", "x3", "plain"])]
        assert all(Path(f["path"]).is_file() and Path(f["path"]).parent == store_root / "plotcard" / "plots"
                   for f in figures)
        assert json.loads(result.output)["paper"] == "plotcard"
    finally:
        registry.unregister("plotcard")
        papers.card.cache_clear()


def test_unwritable_out_dir_is_one_line_and_exit_2(toy_paper, store_root, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = runner.invoke(app, ["plot", "toy", "--out-dir", str(blocker / "plots")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write plots to {blocker / 'plots'}: ")


def test_plot_paper_returns_the_written_paths(toy_paper, store_root, tmp_path):
    from bench.plot import plot_paper

    paths = plot_paper(toy_paper, Store(), tmp_path / "out")
    assert paths == [f.path for f in plot_figures(toy_paper, Store(), tmp_path / "out")]
    assert len(paths) == 1 and paths[0].name == "toy-set5-psnr_rgb-per-entry.png"


def test_importing_bench_plot_does_not_import_matplotlib():
    code = "import sys, bench.plot; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
