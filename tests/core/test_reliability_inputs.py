"""Issue 16, smaller bad inputs: an unknown dataset in a paper card, a check summary into an unwritable folder."""
from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from bench import check, papers
from bench.cards import load_card
from bench.cli import app
from bench.registry import BenchError
from tests.core.conftest import TOY_CARD

cli = CliRunner()


@pytest.fixture()
def typo_card(tmp_path):
    """The toy card with the dataset `set5` misspelt `set55` everywhere, registered as paper `typo`."""
    path = tmp_path / "paper.yaml"
    path.write_text(TOY_CARD.read_text().replace("slug: toy", "slug: typo").replace("set5", "set55"))
    reg = papers.registries()["papers"]
    reg.register("typo", "tests.core.toy_recipe", package="typo", card=str(path))
    papers.card.cache_clear()
    yield path
    reg.unregister("typo")
    papers.card.cache_clear()


def test_unknown_dataset_in_a_card_is_refused_when_loaded(typo_card):
    """It was accepted: the typo only surfaced (or not) much later."""
    with pytest.raises(BenchError) as err:
        load_card(typo_card)
    message = str(err.value)
    assert str(typo_card) in message and "unknown dataset 'set55'" in message and "Did you mean 'set5'" in message
    result = cli.invoke(app, ["claims", "typo"])
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "'set55'" in lines[0] and str(typo_card) in lines[0]


def test_every_committed_card_names_known_datasets():
    for entry in papers.registries()["papers"]:
        papers.card(entry.name)  # raises on an unknown dataset


def test_check_summary_into_an_unwritable_place_is_one_line(tmp_path):
    """`check --summary` into an unwritable folder gave a traceback (the CLI calls check.write_summary)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(BenchError, match=f"cannot write the summary to {blocker / 'summary.md'}") as err:
        check.write_summary(blocker / "summary.md", [])
    assert "\n" not in str(err.value) and blocker.read_text() == "not a folder"
    if os.geteuid() != 0:  # root writes through permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(BenchError, match="cannot write the summary"):
            check.write_summary(locked / "summary.md", [])
    written = check.write_summary(tmp_path / "ok" / "summary.md", [])
    assert written.read_text() == check.markdown([])
