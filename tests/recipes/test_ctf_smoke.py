"""End-to-end smoke reproduction of CTF: every entry (supervised, Unbiased Teacher, LabelMatch, CTF, Soft Teacher,
STAC) through bench.runner.execute on the embedded shapes-coco set, with a private run store."""
from __future__ import annotations

import time

import pytest

from baselines.ssod.configs import named_config
from baselines.ssod.evaluate import score, trivial_detections
from bench import papers, runner
from bench.sanity import run_sanity
from bench.store import Store

SEMI_STEPS = named_config("smoke-labelmatch").semi.steps


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
def test_smoke_reproduction_runs_every_entry(ctf_paper, smoke_store):
    specs = runner.plan(ctf_paper, "smoke")
    assert [s.entry for s in specs] == ["supervised", "unbiased-teacher", "labelmatch", "ctf", "soft-teacher", "stac"]
    store = Store(smoke_store)
    t0 = time.perf_counter()
    results = {s.entry: runner.execute(s, store, log=print).result for s in specs}
    wall = time.perf_counter() - t0
    print(f"smoke wall time {wall:.1f} s")
    for entry, result in results.items():
        assert result["status"] == "complete", entry
        values = {m["metric"]: m["value"] for m in result["metrics"]}
        print(entry, values, result["provenance"]["eval_model"], result["cost"])
        sanity = "map_gain@trivial" if entry == "supervised" else "map_gain@supervised"
        assert set(values) == {"coco_bbox_map@pycocotools", "coco_bbox_ap50@pycocotools", sanity}
        record = next(m for m in result["metrics"] if m["metric"] == sanity)
        # the gain is the entry's mAP minus the trivial / supervised-only model's, which the floor records
        assert record["value"] == pytest.approx(values["coco_bbox_map@pycocotools"] - record["floor"]["trivial_value"])
        assert record["floor"]["value"] == (5.0 if entry == "supervised" else 0.0)
        # issue 23: every smoke entry learned (clears its floor)
        assert run_sanity(result).passed, (entry, run_sanity(result).detail())
        # a trained detector finds the shapes: far above the ~0 AP of an untrained one
        assert values["coco_bbox_ap50@pycocotools"] > 10.0, (entry, values)
    # the semi-supervised entries are measured against the supervised entry's model (the same shared training)
    sup_map = {m["metric"]: m["value"] for m in results["supervised"]["metrics"]}["coco_bbox_map@pycocotools"]
    for entry in ("unbiased-teacher", "labelmatch", "ctf", "soft-teacher", "stac"):
        gain = next(m for m in results[entry]["metrics"] if m["metric"] == "map_gain@supervised")
        assert gain["floor"]["trivial_value"] == pytest.approx(sup_map), entry
    # the teachers' pseudo-labels reach the students (a silent zero is the classic SSOD port bug)
    prov = {e: r["provenance"] for e, r in results.items()}
    assert prov["unbiased-teacher"]["pseudo_boxes_per_image"]["reliable"] > 0
    lm = prov["labelmatch"]["pseudo_boxes_per_image"]
    assert lm["reliable"] + lm["uncertain"] > 0
    assert all(p["reliable"] + p["uncertain"] > 0 for p in prov["ctf"]["pseudo_boxes_per_image"].values())
    st = prov["soft-teacher"]["pseudo_boxes_per_image"]
    assert st["cls"] > 0 and st["reg"] > 0
    assert prov["stac"]["stac_offline_boxes"] > 0 and prov["stac"]["eval_model"].startswith("student")
    assert prov["ctf"]["eval_model"].startswith("teacher of pair") and sum(prov["ctf"]["dpco"]["selections"]) == SEMI_STEPS
    assert all(r["metrics"][0]["protocol"]["eval_model"] for r in results.values())


def _image(image_id, size=100):
    return {"id": image_id, "width": size, "height": size}


def _ann(ann_id, image_id, cat, bbox):
    return {"id": ann_id, "image_id": image_id, "category_id": cat, "bbox": bbox, "area": bbox[2] * bbox[3],
            "iscrowd": 0}


def test_trivial_detector_boxes_scores_and_map_match_a_hand_calculation():
    categories = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]
    # labelled split: class 1 boxes average to [10, 10, 20, 20] (one on a 200-px image, taken relative to its
    # size), class 2 has one box; 2 of 3 labelled boxes are class 1; class 3 has none.
    train = {"images": [_image(1), _image(2, 200)], "categories": categories,
             "annotations": [_ann(1, 1, 1, [5, 0, 10, 30]), _ann(2, 2, 1, [30, 40, 60, 20]),
                             _ann(3, 1, 2, [50, 50, 20, 20])]}
    test = {"images": [_image(7)], "categories": categories,
            "annotations": [_ann(1, 7, 1, [10, 10, 20, 20]), _ann(2, 7, 1, [60, 60, 20, 20]),
                            _ann(3, 7, 2, [50, 50, 20, 27])]}
    dets = trivial_detections(train, test)
    assert [(d["image_id"], d["category_id"]) for d in dets] == [(7, 1), (7, 2)]
    assert dets[0]["bbox"] == pytest.approx([10, 10, 20, 20]) and dets[0]["score"] == pytest.approx(2 / 3)
    assert dets[1]["bbox"] == pytest.approx([50, 50, 20, 20]) and dets[1]["score"] == pytest.approx(1 / 3)
    # By hand (COCO 101-point AP, IoU thresholds .50:.05:.95; class 3 has no ground truth and is left out):
    # class 1: one of two boxes found exactly at every threshold -> precision 1 up to recall 0.5 -> 51/101;
    # class 2: IoU 400/540 = 0.741 -> a hit at 0.50-0.70 (5 of 10 thresholds), a miss above -> 0.5.
    scored = score(test, dets)
    assert scored["coco_bbox_map@pycocotools"].value == pytest.approx(100 * (51 / 101 + 0.5) / 2)
    assert scored["coco_bbox_ap50@pycocotools"].value == pytest.approx(100 * (51 / 101 + 1.0) / 2)
