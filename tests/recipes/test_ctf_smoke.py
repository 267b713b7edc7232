"""End-to-end smoke reproduction of CTF: every entry (supervised, Unbiased Teacher, LabelMatch, CTF) through
bench.runner.execute on the embedded shapes-coco set, with a private run store."""
from __future__ import annotations

import time

import pytest

from bench import papers, runner
from bench.store import Store


@pytest.fixture()
def ctf_paper():
    """The manifest may not list the recipe yet: register it for this test, then restore the entry."""
    reg = papers.registries()["papers"]
    old = reg.get("ctf")
    reg.unregister("ctf")
    reg.register("ctf", "methods.ctf.recipe", **old.meta)
    yield "ctf"
    reg.unregister("ctf")
    reg.register("ctf", old.target, **old.meta)


@pytest.mark.slow
def test_smoke_reproduction_runs_every_entry(ctf_paper, store_root):
    specs = runner.plan(ctf_paper, "smoke")
    assert [s.entry for s in specs] == ["supervised", "unbiased-teacher", "labelmatch", "ctf"]
    store = Store(store_root)
    t0 = time.perf_counter()
    results = {s.entry: runner.execute(s, store, log=print).result for s in specs}
    wall = time.perf_counter() - t0
    print(f"smoke wall time {wall:.1f} s")
    for entry, result in results.items():
        assert result["status"] == "complete", entry
        values = {m["metric"]: m["value"] for m in result["metrics"]}
        print(entry, values, result["provenance"]["eval_model"], result["cost"])
        assert set(values) == {"coco_bbox_map@pycocotools", "coco_bbox_ap50@pycocotools"}
        # a trained detector finds the shapes: far above the ~0 AP of an untrained one
        assert values["coco_bbox_ap50@pycocotools"] > 10.0, (entry, values)
    # the teachers' pseudo-labels reach the students (a silent zero is the classic SSOD port bug)
    prov = {e: r["provenance"] for e, r in results.items()}
    assert prov["unbiased-teacher"]["pseudo_boxes_per_image"]["reliable"] > 0
    lm = prov["labelmatch"]["pseudo_boxes_per_image"]
    assert lm["reliable"] + lm["uncertain"] > 0
    assert all(p["reliable"] + p["uncertain"] > 0 for p in prov["ctf"]["pseudo_boxes_per_image"].values())
    assert prov["ctf"]["eval_model"].startswith("teacher of pair") and sum(prov["ctf"]["dpco"]["selections"]) == 60
    assert all(r["metrics"][0]["protocol"]["eval_model"] for r in results.values())
