"""sam-prior's smoke plan: equal budgets per (plain, +SAM-prior) pair and honest stand-ins; and (slow) one pair
of a whole smoke reproduction through bench.runner.execute with a private run store."""
from __future__ import annotations

import pytest

from bench import runner
from bench.sanity import run_sanity
from bench.store import Store
from methods.sam_prior import recipe


def _pairs():
    specs = recipe.plan(None, "smoke", None)
    by_key = {(s.entry, s.setting["task"]): s for s in specs}
    for base, method in (("nafnet-w32", "sam-prior-nafnet-w32"), ("restormer", "sam-prior-restormer")):
        for task in recipe.SMOKE_TASKS:
            yield by_key[(base, task)], by_key[(method, task)]


def test_smoke_pairs_share_model_data_and_budget():
    pairs = list(_pairs())
    assert len(pairs) == 6
    for plain, boosted in pairs:
        assert (plain.impl, plain.args, plain.seeds, plain.sampler) == (boosted.impl, boosted.args, boosted.seeds,
                                                                         boosted.sampler)
        budget = {k: v for k, v in plain.train.items() if k not in ("sam_prior", "method")}
        assert budget == {k: v for k, v in boosted.train.items() if k not in ("sam_prior", "method")}
        assert (plain.train["sam_prior"], boosted.train["sam_prior"]) == (False, True)
        assert len(plain.seeds) >= 3  # claims need three seeds a side
        task = plain.setting["task"]
        assert plain.stands_for["settings"] == [{"paper": {"task": task}, "ours": {"task": task}}]


def test_every_claim_has_a_smoke_record_that_stands_for_it():
    from bench import papers

    card = papers.card("sam-prior")
    specs = recipe.plan(card, "smoke", None)
    for claim in card.claims:
        for entry in (claim.lhs, claim.rhs):
            assert any(s.entry == entry and claim.dataset in s.stands_for["dataset"]
                       and s.setting == claim.setting for s in specs), (claim.id, entry)


@pytest.mark.slow
def test_one_smoke_pair_learns_and_names_its_prior(store_root):
    store = Store(store_root)
    plain, boosted = next(_pairs())  # NAFNet, deraining
    results = {s.entry: runner.execute(s, store, log=print).result for s in (plain, boosted)}
    for entry, result in results.items():
        assert result["status"] == "complete"
        assert run_sanity(result).passed, (entry, run_sanity(result).detail())
        psnr = next(m for m in result["metrics"] if m["metric"] == "psnr_rgb")
        assert psnr["protocol"]["prior_source"] == ("slic" if entry.startswith("sam-prior") else
                                                     "none (plain training)")
    assert results[boosted.entry]["cost"]["params_m"] == results[plain.entry]["cost"]["params_m"]
    assert results[boosted.entry]["cost"]["gmacs"] == results[plain.entry]["cost"]["gmacs"]
