"""Sanity floors (bench/sanity.py): the record a recipe writes, what the store keeps, what a table shows."""
from __future__ import annotations

import math

import pytest

from bench import sanity
from bench.sanity import FAILED, PASSED, UNKNOWN, run_sanity, sanity_record


def _run(*metrics):
    return {"metrics": list(metrics)}


def _agg(record, per_seed):
    """What Store.finish makes of one record over several seeds (the floor kept)."""
    values = list(per_seed.values())
    return {**record, "value": sum(values) / len(values), "per_seed": per_seed}


def test_record_carries_floor_and_refuses_non_sanity_dialects():
    rec = sanity_record("class_acc@digits-cnn", 0.84, 250, floor=0.5, trivial="chance", trivial_value=0.1,
                        setting={"nfe": 25})
    assert rec["floor"] == {"value": 0.5, "trivial": "chance", "trivial_value": 0.1, "note": ""}
    assert rec["setting"] == {"nfe": 25} and rec["n"] == 250
    with pytest.raises(ValueError, match="not a sanity dialect"):
        sanity_record("psnr_y@matlab", 30.0, 8, floor=0.0, trivial="bicubic")


def test_every_seed_must_clear_the_floor():
    rec = sanity_record("psnr_gain_y@bicubic", 0.0, 8, floor=0.0, trivial="bicubic")
    assert run_sanity(_run(_agg(rec, {"0": 0.3, "1": 0.2, "2": 0.4}))).status == PASSED
    # the mean (0.1) is above the floor, but seed 1 is not: that seed did not learn
    low = run_sanity(_run(_agg(rec, {"0": 0.3, "1": -0.1})))
    assert low.status == FAILED and "below on seed 1" in low.detail()
    # exactly at the floor is not above it; NaN never clears it
    assert run_sanity(_run(_agg(rec, {"0": 0.0}))).status == FAILED
    assert run_sanity(_run(_agg(rec, {"0": math.nan}))).status == FAILED


def test_all_sanity_records_must_pass_and_plain_metrics_are_ignored():
    good = _agg(sanity_record("class_acc@digits-cnn", 0, 1, floor=0.5, trivial="chance"), {"0": 0.9})
    bad = _agg(sanity_record("class_acc@digits-cnn", 0, 1, floor=0.5, trivial="chance", setting={"nfe": 4}),
               {"0": 0.3})
    plain = {"metric": "fd_digits", "value": 3.0, "per_seed": {"0": 3.0}}
    assert run_sanity(_run(plain)).status == UNKNOWN
    assert run_sanity(_run(plain, good)).passed
    result = run_sanity(_run(plain, good, bad))
    assert result.status == FAILED and [c["passed"] for c in result.checks] == [True, False]
    assert result.checks[1]["setting"] == "nfe=4"


def test_store_keeps_the_floor_and_table_badges_runs_below_it(tmp_path):
    from bench import table
    from bench.recipe import metric_record
    from bench.spec import RunSpec
    from bench.store import Store

    store = Store(tmp_path)
    spec = RunSpec(paper="u-dit", entry="u-dit-s", impl="u-dit-s", dataset="digits", split="train", scale="smoke",
                   seeds=[0, 1], metrics=["fd_digits"])
    handle = store.open(spec)
    seeds = {s: {"metrics": [metric_record("fd_digits", 3.0 + s, 10),
                             sanity_record("class_acc@digits-cnn", acc, 10, floor=0.5, trivial="chance",
                                           trivial_value=0.1)]}
             for s, acc in ((0, 0.8), (1, 0.2))}
    result = store.finish(handle, seeds, {}, "complete", "now")
    kept = [m for m in result["metrics"] if sanity.is_sanity(m)]
    assert kept and kept[0]["floor"]["value"] == 0.5 and kept[0]["per_seed"] == {"0": 0.8, "1": 0.2}
    assert run_sanity(result).status == FAILED
    shown = table.display_frame(table.build("u-dit", store))
    ours = shown[(shown.entry == "u-dit-s") & (shown.ours != "")]
    assert len(ours) == 2 and all(cell.endswith("[smoke, did not learn]") for cell in ours["ours"])
    note = shown[shown.metric == "class_acc@digits-cnn"]["note"].iloc[0]
    assert note == "sanity floor > 0.5 (chance = 0.1)"
    # the rich table prints the badge (bracketed text must not be taken for markup)
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "bench.cli", "table", "--paper", "u-dit", "--all", "--metric",
                          "class_acc@digits-cnn"], capture_output=True, text=True, check=True,
                         env={**os.environ, "BENCH_RESULTS": str(tmp_path)}).stdout
    assert "[smoke, did not learn]" in out
