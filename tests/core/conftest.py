from __future__ import annotations

from pathlib import Path

import pytest

from bench import papers

TOY_CARD = Path(__file__).with_name("toy_paper.yaml")


@pytest.fixture()
def toy_paper():
    """Register the toy paper (card + recipe) for one test."""
    reg = papers.registries()["papers"]
    reg.register("toy", "tests.core.toy_recipe", package="toy", card=str(TOY_CARD))
    papers.card.cache_clear()
    yield "toy"
    reg.unregister("toy")
    papers.card.cache_clear()
