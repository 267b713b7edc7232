"""CPU rehearsals (`bench reproduce --max-steps N --max-samples M`): their own run ids, and never mixed with
real runs in `latest`, claims, `bench check`, the headline, the full table or `bench runs`. Uses the toy paper,
whose recipe runs in milliseconds."""
from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from bench import check, claims, headline, runner, table
from bench.cli import app
from bench.papers import REPO_ROOT
from bench.store import Store, setting_key

cli = CliRunner()
CAPS = {"max_steps": 3, "max_samples": 5}


def record(store: Store, paper: str, scale: str, rehearsal: dict[str, int] | None = None, seeds=None):
    """Run the toy paper's entries at a scale (as a rehearsal with `rehearsal`); returns entry -> result."""
    out = {}
    for spec in runner.plan(paper, scale, seeds=seeds, rehearsal=rehearsal):
        out[spec.entry] = runner.execute(spec, store, log=lambda m: None).result
    return out


# --------------------------------------------------------------------------------------------------- run ids
@pytest.mark.parametrize("paper", sorted(p.stem for p in (REPO_ROOT / "results" / "reference").glob("*.json")))
def test_real_smoke_run_ids_are_the_committed_references(paper):
    """The rehearsal field left real runs' ids as they were: the smoke specs hash to the references' run ids."""
    ref = json.loads((REPO_ROOT / "results" / "reference" / f"{paper}.json").read_text())
    committed = sorted((r["entry"], r["dataset"], r["setting"], r["run_id"]) for r in ref["runs"])
    planned = sorted((s.entry, s.dataset, setting_key(s.setting), s.run_id()) for s in runner.plan(paper, "smoke"))
    assert planned == committed


def test_a_rehearsal_has_its_own_run_id_and_each_cap_counts():
    (real, *_) = runner.plan("u-dit", "small")
    ids = {real.run_id(), real.with_overrides(rehearsal=CAPS).run_id(),
           real.with_overrides(rehearsal={"max_steps": 3}).run_id(),
           real.with_overrides(rehearsal={"max_steps": 4, "max_samples": 5}).run_id()}
    assert len(ids) == 4
    capped = real.with_overrides(rehearsal=CAPS)
    assert capped.is_rehearsal and not real.is_rehearsal
    assert capped.capped("max_steps", 400_000) == 3 and capped.capped("max_samples", 2) == 2
    assert real.capped("max_steps", 7) == 7


@pytest.mark.parametrize("caps", [{"max_stepz": 3}, {"max_steps": 0}, {"max_samples": -1}])
def test_the_spec_refuses_unknown_or_empty_caps(caps):
    (real, *_) = runner.plan("u-dit", "small")
    with pytest.raises(ValidationError):
        real.with_overrides(rehearsal=caps)


# ------------------------------------------------------------------------------------------------------ CLI
def test_max_steps_and_max_samples_are_recorded_in_the_spec(toy_paper, store_root):
    real = json.loads(cli.invoke(app, ["reproduce", toy_paper, "--scale", "small", "--dry-run"]).stdout)
    result = cli.invoke(app, ["reproduce", toy_paper, "--scale", "paper", "--max-steps", "3", "--max-samples", "5",
                              "--dry-run"])
    assert result.exit_code == 0, result.output
    rehearsal = json.loads(result.stdout)
    assert [s["rehearsal"] for s in rehearsal] == [CAPS, CAPS] and [s["rehearsal"] for s in real] == [{}, {}]
    assert not {s["run_id"] for s in rehearsal} & {s["run_id"] for s in real}
    only_steps = json.loads(cli.invoke(app, ["reproduce", toy_paper, "--scale", "small", "--max-steps", "7",
                                             "--dry-run"]).stdout)
    assert [s["rehearsal"] for s in only_steps] == [{"max_steps": 7}] * 2


@pytest.mark.parametrize(("args", "message"), [
    (["--max-steps", "3"], "--max-steps/--max-samples rehearse the small and paper code paths"),  # smoke: refused
    (["--scale", "small", "--max-steps", "0"], "--max-steps must be a positive integer, got 0"),
    (["--scale", "paper", "--max-samples", "-2"], "--max-samples must be a positive integer, got -2"),
])
def test_bad_rehearsal_flags_are_one_line_exit_2(toy_paper, store_root, args, message):
    result = cli.invoke(app, ["reproduce", toy_paper, *args])
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0 and message in result.output


def test_a_rehearsal_run_is_recorded_as_one(toy_paper, store_root):
    result = cli.invoke(app, ["reproduce", toy_paper, "--scale", "small", "--max-steps", "3"])
    assert result.exit_code == 0, result.output
    assert "[small, rehearsal]" in result.output  # the [k/N] lines and the closing headline say so
    records = [json.loads(p.read_text()) for p in store_root.glob("toy/*/result.json")]
    assert len(records) == 2 and all(r["rehearsal"] == {"max_steps": 3} for r in records)
    real = record(Store(store_root), toy_paper, "small")
    assert all("rehearsal" not in r for r in real.values())  # a real record has no rehearsal key at all


# ---------------------------------------------------------------------------------------------------- store
def test_latest_never_picks_a_rehearsal_in_place_of_a_real_run(toy_paper, store_root):
    store = Store(store_root)
    real = record(store, toy_paper, "small")
    newer = record(store, toy_paper, "small", CAPS)  # finished later than the real runs
    assert {r["run_id"] for r in store.latest(toy_paper)} == {r["run_id"] for r in real.values()}
    both = store.latest(toy_paper, rehearsals=True)
    assert {r["run_id"] for r in both} == {r["run_id"] for r in (*real.values(), *newer.values())}


# --------------------------------------------------------------------------------------------------- claims
def claim_at(store: Store, scale: str, claim: str = "better"):
    (v,) = [v for v in claims.evaluate("toy", store) if v.claim == claim and v.source == "ours" and v.scale == scale]
    return v


def test_claims_never_rest_on_a_rehearsal(toy_paper, store_root):
    store = Store(store_root)
    record(store, toy_paper, "small", CAPS, seeds=[0, 1, 2])
    only = claim_at(store, "small")
    assert (only.verdict, only.reason) == ("no evidence", "rehearsal runs only")
    assert only.lhs is None and only.rhs is None and "without --max-steps" in only.evidence
    real = record(store, toy_paper, "small", seeds=[0, 1, 2])
    record(store, toy_paper, "small", CAPS, seeds=[3, 4, 5])  # a newer rehearsal does not displace them
    v = claim_at(store, "small")
    assert (v.lhs.run_id, v.rhs.run_id) == (real["toy-method"]["run_id"], real["toy-baseline"]["run_id"])
    assert v.verdict != "no evidence"


# ---------------------------------------------------------------------------------------------------- check
def test_check_ignores_rehearsals_and_update_never_writes_them(toy_paper, store_root, tmp_path):
    store, refs = Store(store_root), tmp_path / "reference"
    real = record(store, toy_paper, "smoke")
    # a smoke rehearsal (the CLI refuses one, the API can still record one) and small ones
    for spec in runner.plan(toy_paper, "smoke", rehearsal=CAPS):
        runner.execute(spec, store, log=lambda m: None)
    record(store, toy_paper, "small", CAPS)
    (upd,) = check.update(store, refs, papers=[toy_paper])
    assert upd.written
    written = json.loads((refs / "toy.json").read_text())
    assert sorted(r["run_id"] for r in written["runs"]) == sorted(r["run_id"] for r in real.values())
    findings = check.check(store, refs, papers=[toy_paper])
    assert findings and {f.outcome for f in findings} == {"pass"}  # no "new" for the rehearsal runs
    (small,) = check.update(store, refs, papers=[toy_paper], scale="small")  # small rehearsals only: nothing to write
    assert not small.written and "no small runs" in small.changes[0]
    assert sorted(p.name for p in refs.iterdir()) == ["toy.json"]


# ---------------------------------------------------------------------------------------- headline and table
def test_headline_badges_rehearsals_in_sections_of_their_own(toy_paper, store_root):
    store = Store(store_root)
    record(store, toy_paper, "small", seeds=[0, 1, 2])
    fake = record(store, toy_paper, "small", CAPS, seeds=[0, 1, 2])
    view = headline.build_headline(toy_paper, store)
    real_rows = [r for r in view.rows if not r.rehearsal]
    rehearsal_rows = [r for r in view.rows if r.rehearsal]
    assert real_rows and rehearsal_rows
    assert {r.method.run_id for r in rehearsal_rows} == {fake["toy-method"]["run_id"]}  # never paired with a real run
    assert {r.baseline.run_id for r in rehearsal_rows} == {fake["toy-baseline"]["run_id"]}
    assert all(r.verdict is None for r in rehearsal_rows) and any(r.verdict for r in real_rows)
    md = view.markdown()
    assert "**ours [small]**" in md and "**ours [small, rehearsal]**" in md
    assert md.index("**ours [small]**") < md.index("**ours [small, rehearsal]**")
    assert "ours [small, rehearsal]" in view.latex() and "ours [small, rehearsal]" in view.html()
    assert [r["rehearsal"] for r in view.as_dicts()] == [r.rehearsal for r in view.rows]
    headline.table_model().model_validate({"paper": "toy", "title": view.title, "headline": view.as_dicts(),
                                           "cells": None})
    text = cli.invoke(app, ["table", toy_paper], env={"COLUMNS": "200"}).stdout
    assert "ours [small]" in text and "ours [small, rehearsal]" in text


def test_full_table_badges_a_rehearsal_and_never_puts_it_beside_a_paper_number(toy_paper, store_root):
    store = Store(store_root)
    record(store, toy_paper, "smoke", CAPS)  # only a rehearsal: the paper's digits cell keeps an empty "ours"
    frame = table.build(toy_paper, store)
    paper_cell = frame[(frame["entry"] == "toy-method") & (frame["dataset"] == "digits") & frame["paper"].notna()]
    assert len(paper_cell) == 1 and paper_cell["ours"].isna().all()
    shown = table.display_frame(frame)
    assert shown["ours"].str.endswith("[smoke, rehearsal]").sum() == 2
    real = record(store, toy_paper, "smoke")
    frame = table.build(toy_paper, store)
    paper_cell = frame[(frame["entry"] == "toy-method") & (frame["dataset"] == "digits") & frame["paper"].notna()]
    assert paper_cell["run_id"].tolist() == [real["toy-method"]["run_id"]]  # the real run fills it, with Δ
    assert table.display_frame(frame)["ours"].str.endswith("[smoke, rehearsal]").sum() == 2


# ----------------------------------------------------------------------------------------------- bench runs
def test_bench_runs_shows_the_rehearsal_badge(toy_paper, store_root):
    store = Store(store_root)
    record(store, toy_paper, "small")
    fake = record(store, toy_paper, "small", CAPS)
    rows = json.loads(cli.invoke(app, ["runs", toy_paper, "--json"]).stdout)
    by_id = {r["run_id"]: r for r in rows}
    assert len(rows) == 4 and all(r["scale"] == "small" for r in rows)
    assert {i for i, r in by_id.items() if r["rehearsal"]} == {r["run_id"] for r in fake.values()}
    assert all(by_id[r["run_id"]]["rehearsal"] == CAPS for r in fake.values())
    text = cli.invoke(app, ["runs", toy_paper], env={"COLUMNS": "250"}).stdout
    assert text.count("small, rehearsal") == 2
    csv_rows = cli.invoke(app, ["runs", toy_paper, "--format", "csv"]).stdout
    assert csv_rows.count("small, rehearsal") == 2
