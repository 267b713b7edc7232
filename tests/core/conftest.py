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


@pytest.fixture()
def toy_runs(toy_paper, store_root):
    """Both toy entries reproduced once into the test's store; returns the Store."""
    from bench import runner
    from bench.store import Store

    store = Store(store_root)
    for spec in runner.plan(toy_paper, "smoke"):
        runner.execute(spec, store, log=lambda m: None)
    return store
