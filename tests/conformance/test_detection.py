"""COCO bbox AP through pycocotools on hand-built cases whose AP is known by hand (101-point interpolation)."""
from __future__ import annotations

import json

import pytest

from bench.metrics import detection as D
from bench.registry import BenchError


def coco(boxes_per_image):
    """GT dict: {image_id: [(category, [x,y,w,h]), ...]}."""
    images, annotations = [], []
    for image_id, boxes in boxes_per_image.items():
        images.append({"id": image_id, "width": 200, "height": 200})
        for category, box in boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}


GT = coco({1: [(1, [10, 10, 50, 50]), (2, [100, 100, 40, 60])], 2: [(1, [20, 30, 60, 40])]})


def det(image_id, category, box, score):
    return {"image_id": image_id, "category_id": category, "bbox": box, "score": score}


def perfect():
    return [det(a["image_id"], a["category_id"], a["bbox"], 0.9) for a in GT["annotations"]]


def test_perfect_detections_give_100():
    assert D.coco_bbox_map(GT, perfect()).value == pytest.approx(100.0)
    assert D.coco_bbox_ap50(GT, perfect()).value == pytest.approx(100.0)


def test_one_missed_object_is_recall_limited_ap():
    # category 1 has two objects; one is found: precision 1 up to recall 0.5, then nothing.
    # 101-point interpolation: 51 recall points (0, .01, ..., .50) at precision 1 -> AP = 51/101.
    # category 2 is perfect (AP 1); the mean over categories is (51/101 + 1) / 2.
    dets = [d for d in perfect() if d["image_id"] != 2]
    expected = 100 * (51 / 101 + 1) / 2
    result = D.coco_bbox_map(GT, dets)
    assert result.value == pytest.approx(expected, abs=1e-9)
    assert D.coco_bbox_ap50(GT, dets).value == pytest.approx(expected, abs=1e-9)
    rows = {r["image_id"]: r for r in result.extra["per_image"]}
    assert rows[2] == {"image_id": 2, "n_gt": 1, "n_det": 0, "tp": 0, "fp": 0, "fn": 1}
    assert rows[1]["tp"] == 2 and rows[1]["fp"] == 0


def test_false_positive_ranked_first():
    # category 1: FP (score .95) above both true positives -> precision 1/2 at recall .5 and 2/3 at recall 1;
    # interpolated precision (max to the right) is 2/3 at every recall point -> AP = 2/3
    dets = perfect() + [det(1, 1, [150, 10, 20, 20], 0.95)]
    expected = 100 * (2 / 3 + 1) / 2
    result = D.coco_bbox_map(GT, dets)
    assert result.value == pytest.approx(expected, abs=1e-9)
    assert {r["image_id"]: r["fp"] for r in result.extra["per_image"]} == {1: 1, 2: 0}


def test_localisation_quality_splits_map_from_ap50():
    # a single object, a single box of IoU 0.72: a hit at IoU thresholds .50-.70 (5 of 10), a miss above
    gt = coco({1: [(1, [0, 0, 100, 100])]})
    dets = [det(1, 1, [0, 0, 100, 72], 0.8)]
    assert D.coco_bbox_ap50(gt, dets).value == pytest.approx(100.0)
    assert D.coco_bbox_map(gt, dets).value == pytest.approx(50.0)


def test_results_json_round_trip(tmp_path):
    dets = perfect()[:2] + [det(2, 2, [0, 0, 5, 5], 0.3)]
    path = D.write_coco_results(tmp_path / "dets.json", dets)
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(GT))
    assert D.coco_bbox_map(gt_path, path).value == pytest.approx(D.coco_bbox_map(GT, dets).value)
    assert D.coco_bbox_map(GT, dets).protocol["n_detections"] == 3


def test_edge_cases_and_errors():
    assert D.coco_bbox_map(GT, []).value == 0.0
    with pytest.raises(BenchError, match="image_id 99"):
        D.coco_bbox_map(GT, [det(99, 1, [0, 0, 1, 1], 0.5)])
    with pytest.raises(BenchError, match="category_id 7"):
        D.coco_bbox_map(GT, [det(1, 7, [0, 0, 1, 1], 0.5)])
    with pytest.raises(BenchError, match="no annotations"):
        D.coco_bbox_map({**GT, "annotations": []}, perfect())
    with pytest.raises(BenchError, match="lacks"):
        D.coco_bbox_map(GT, [{"image_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}])
    original = json.dumps(GT)
    D.coco_bbox_map(GT, perfect())
    assert json.dumps(GT) == original  # the caller's dict is not modified
