"""Issue 22, "done when": every baseline named in the implemented papers' cards either runs at some scale or says in
the card (CardEntry.not_run) why bench does not run it; the card loader refuses a silent one."""
from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from bench import papers
from bench.cards import load_card, not_run_problems, planned_entries
from bench.cli import app
from bench.registry import BenchError

# Every paper with a recipe is audited: one that gains a recipe joins the audit by itself.
IMPLEMENTED = papers.implemented_papers()


@pytest.mark.parametrize("slug", IMPLEMENTED)
def test_every_baseline_is_planned_or_says_why_not(slug):
    """Plans are read at smoke, small and paper without data (they read none); a planned entry must not claim
    to be unrun, an unplanned baseline must give a reason."""
    card = papers.card(slug)
    planned = planned_entries(slug)
    assert planned, f"{slug}: the recipe plans nothing"
    assert not_run_problems(card, planned) == []
    for entry in card.entries:
        if entry.role == "baseline" and entry.id not in planned:
            assert len(entry.not_run.split()) >= 8, f"{slug}/{entry.id}: a reason, not a word: {entry.not_run!r}"


def test_the_audit_flags_both_kinds_of_disagreement():
    card = papers.card("u-dit")
    planned = planned_entries("u-dit")
    # dit-s-2 (impl dit, reported DiT-paper row) says why it is not run; pretend a plan ran it
    problems = not_run_problems(card, planned | {"dit-s-2"})
    reason = card.entry("dit-s-2").not_run
    assert problems == [f"u-dit: entry 'dit-s-2' is run by the recipe but says not_run: {reason!r}"]
    # and the retrained DiT-S/2*, which has no reason, would be flagged if no plan ran it
    problems = not_run_problems(card, planned - {"dit-s-2-retrained"})
    assert problems == ["u-dit: baseline 'dit-s-2-retrained' runs at no scale and has no not_run reason"]


QUOTED = r"'(?:[^']|'')*'"  # a YAML single-quoted string ('' is an escaped quote)


def _udit_card_copy(tmp_path, edit):
    path = tmp_path / "paper.yaml"
    text = papers.paper_card_path("u-dit").read_text(encoding="utf-8")
    path.write_text(edit(text), encoding="utf-8")
    return path


def test_a_baseline_with_impl_null_and_no_reason_is_refused_in_one_line(tmp_path):
    untouched = _udit_card_copy(tmp_path, lambda t: t)
    assert load_card(untouched).entry("dit-unet").not_run  # the control: the real card loads
    path = _udit_card_copy(tmp_path, lambda t: re.sub(r"(\{id: dit-unet, .*?), not_run: " + QUOTED + r"\}", r"\1}", t))
    assert "not_run" not in next(line for line in path.read_text().splitlines() if "{id: dit-unet," in line)
    with pytest.raises(BenchError) as err:
        load_card(path)
    message = str(err.value)
    assert len(message.splitlines()) == 1
    assert str(path) in message and "baseline 'dit-unet' has impl null and no not_run" in message


def test_a_blank_reason_is_refused(tmp_path):
    path = _udit_card_copy(tmp_path, lambda t: re.sub(r"(\{id: dit-unet, .*?, not_run: )" + QUOTED + r"\}", r"\1'  '}", t))
    assert "not_run: '  '}" in path.read_text()
    with pytest.raises(BenchError, match=r"entries\.25\.not_run: .*must say why"):
        load_card(path)


def test_card_only_papers_need_no_reasons(tmp_path):
    """A paper without a recipe runs nothing; its baselines with impl null load without a reason each. (All ten
    papers have recipes now: the card-only paper is a copy of gim's card under a slug no recipe answers to.)"""
    text = papers.paper_card_path("gim").read_text(encoding="utf-8")
    text = re.sub(r"^slug: gim$", "slug: card-only-copy", text, count=1, flags=re.M)
    text = re.sub(r"(\{id: pscc-net, .*?), not_run: " + QUOTED + r"\}", r"\1}", text)
    path = tmp_path / "paper.yaml"
    path.write_text(text, encoding="utf-8")
    card = load_card(path)  # no recipe: loads without pscc-net's reason
    assert card.slug == "card-only-copy" and not card.entry("pscc-net").not_run
    with pytest.raises(BenchError, match="baseline 'pscc-net'"):
        load_card(path, require_not_run=True)


def test_list_json_names_each_unrun_entry_with_its_reason():
    result = CliRunner().invoke(app, ["list", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {row["paper"]: row for row in json.loads(result.output)}
    assert rows["ctf"]["not_run"] == []  # issue 22: Soft Teacher and STAC run at smoke
    card = papers.card("u-dit")
    assert [i["entry"] for i in rows["u-dit"]["not_run"]] == [e.id for e in card.entries if e.not_run]
    assert rows["mgsr"]["not_run"] == []


def test_full_table_marks_unrun_rows_and_gives_the_reasons(store_root):
    from bench import table
    from bench.store import Store

    frame = table.build("u-dit", Store(store_root))
    notes = frame.groupby("entry")["note"].apply(lambda s: all("not run by bench" in n for n in s))
    assert notes["u-vit-l"] and notes["dit-s-2"] and not notes["u-dit-b"]
    reason = papers.card("u-dit").entry("u-vit-l").not_run
    assert f"not run by bench: u-vit-l: {reason}" in table.footnotes("u-dit")
