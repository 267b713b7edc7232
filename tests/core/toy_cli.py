"""Runs the toy paper through the real runner in a fresh process (used by the resume test)."""
from bench import papers, runner
from bench.store import Store
from tests.core.conftest import TOY_CARD

papers.registries()["papers"].register("toy", "tests.core.toy_recipe", package="toy", card=str(TOY_CARD))
for spec in runner.plan("toy", "smoke"):
    runner.execute(spec, Store(), log=lambda m: None)
