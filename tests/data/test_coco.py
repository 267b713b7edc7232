"""COCO JSON through pycocotools, VOC XML converted to COCO form, and the COCO-standard partial splits."""
from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest

from bench.data.coco import (
    VOC_CLASSES,
    CocoDataset,
    VocDataset,
    coco_api,
    coco_partial_split,
    partial_split_indices,
    partial_split_name,
    voc_to_coco,
)
from bench.registry import BenchError
from tests.data.conftest import random_image, save_png

COCO_TRAIN2017 = 118_287
# Unique labelled images after drawing int(p/100 * N) indices WITH replacement (seeds 1..5), as the
# dossier recomputed with numpy's legacy generator (papers-other 1.1, tag V).
UNIQUE_LABELLED = {1: [1174, 1175, 1174, 1174, 1175], 5: [5764, 5772, 5756, 5766, 5762],
                   10: [11285, 11261, 11234, 11262, 11235]}


@pytest.mark.parametrize("percent", [1, 5, 10])
def test_partial_split_unique_counts_match_the_official_script(percent):
    draws = int(percent / 100.0 * COCO_TRAIN2017)
    assert draws == {1: 1182, 5: 5914, 10: 11828}[percent]
    got = [len(partial_split_indices(COCO_TRAIN2017, percent, seed)) for seed in range(1, 6)]
    assert got == UNIQUE_LABELLED[percent]


def _coco_dict(n_images=10):
    images = [{"id": 100 + i, "file_name": f"{i:012d}.png", "width": 8, "height": 6} for i in range(n_images)]
    anns = []
    for i in range(n_images):
        for k in range(i % 3):
            anns.append({"id": len(anns) + 1, "image_id": 100 + i, "category_id": 1 + k, "bbox": [1, 1, 3, 2],
                         "area": 6, "iscrowd": 0})
    cats = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    return {"info": {"v": 1}, "licenses": [], "images": images, "annotations": anns, "categories": cats}


def test_partial_split_keeps_order_and_moves_annotations_with_images():
    data = _coco_dict(40)
    labelled, unlabelled = coco_partial_split(data, 10, seed=3)
    idx = partial_split_indices(40, 10, 3)
    assert [im["id"] for im in labelled["images"]] == [100 + i for i in idx]  # original order, no duplicates
    assert len(labelled["images"]) + len(unlabelled["images"]) == 40
    lab_ids = {im["id"] for im in labelled["images"]}
    assert all(a["image_id"] in lab_ids for a in labelled["annotations"])
    assert all(a["image_id"] not in lab_ids for a in unlabelled["annotations"])
    assert len(labelled["annotations"]) + len(unlabelled["annotations"]) == len(data["annotations"])
    assert labelled["categories"] == data["categories"] and labelled["info"] == data["info"]
    assert partial_split_name(10, 3) == "instances_train2017.3@10"


def test_coco_dataset_items_and_cocoeval_on_perfect_detections(tmp_path, rng):
    data = _coco_dict(4)
    for im in data["images"]:
        save_png(tmp_path / "img" / im["file_name"], random_image(rng, 6, 8))
    ann_file = tmp_path / "instances.json"
    ann_file.write_text(json.dumps(data))
    ds = CocoDataset(tmp_path / "img", ann_file)
    assert len(ds) == 4 and ds[2]["image"].shape == (6, 8, 3)
    assert [len(ds[i]["annotations"]) for i in range(4)] == [0, 1, 2, 0]
    from pycocotools.cocoeval import COCOeval

    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
            for a in data["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(ds.coco, ds.coco.loadRes(dets), "bbox")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0) and ev.stats[1] == pytest.approx(1.0)
    part = CocoDataset(tmp_path / "img", ann_file, partial_percent=50, partial_seed=1, partial_part="unlabeled")
    assert len(part) == 4 - len(partial_split_indices(4, 50, 1)) and part.name.endswith("1@50-unlabeled")


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["annotations"][0].update(image_id=999), "annotation 1 refers to image id 999"),
    (lambda d: d["annotations"][0].update(category_id=7), "annotation 1 has category_id 7"),
    (lambda d: d["images"].append(dict(d["images"][0])), "duplicate image id 100"),
    (lambda d: d["annotations"][1].update(bbox=[0, 0, -1, 2]), "bbox"),
    (lambda d: d.pop("categories"), "'categories' must be a list"),
])
def test_malformed_coco_json_gives_one_line(tmp_path, mutate, message):
    data = _coco_dict(4)
    mutate(data)
    ann_file = tmp_path / "bad.json"
    ann_file.write_text(json.dumps(data))
    with pytest.raises(BenchError) as err:
        CocoDataset(tmp_path, ann_file, load_images=False)
    assert message in str(err.value) and str(ann_file) in str(err.value) and "\n" not in str(err.value)


def test_image_info_file_without_annotations_loads():
    data = _coco_dict(3)
    del data["annotations"]
    ds = CocoDataset("unused", data=copy.deepcopy(data), load_images=False)
    assert len(ds) == 3 and ds[0]["annotations"] == []


VOC_XML = """<annotation><filename>{name}.jpg</filename>
<size><width>50</width><height>40</height><depth>3</depth></size>
{objects}</annotation>"""
VOC_OBJ = ("<object><name>{cls}</name><difficult>{diff}</difficult>"
           "<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>")


def _voc(root, year, split, images):
    base = root / f"VOC{year}"
    (base / "Annotations").mkdir(parents=True, exist_ok=True)
    (base / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    (base / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{n}\n" for n in images))
    for name, objects in images.items():
        objs = "".join(VOC_OBJ.format(cls=c, diff=d, x1=b[0], y1=b[1], x2=b[2], y2=b[3]) for c, d, b in objects)
        (base / "Annotations" / f"{name}.xml").write_text(VOC_XML.format(name=name, objects=objs))
        save_png(base / "JPEGImages" / f"{name}.jpg", np.zeros((40, 50, 3)))


def test_voc_to_coco_follows_labelmatch_conventions(tmp_path):
    _voc(tmp_path, "2007", "test", {
        "000001": [("dog", 1, (10, 20, 30, 35)), ("person", 0, (1, 1, 50, 40))],
        "000002": [("aeroplane", 0, (5, 6, 7, 9))],
    })
    data = voc_to_coco(tmp_path, ["2007"], "test")
    assert [im["id"] for im in data["images"]] == [0, 1]
    assert data["images"][0] == {"id": 0, "file_name": "VOC2007/JPEGImages/000001.jpg", "width": 50, "height": 40}
    assert [c["name"] for c in data["categories"]] == list(VOC_CLASSES) and data["categories"][0]["id"] == 0
    a0, a1, a2 = data["annotations"]
    # Non-difficult first, corners -1 px, w = x2 - x1 (no +1), area = w * h.
    assert (a0["category_id"], a0["bbox"], a0["area"], a0["iscrowd"]) == (14, [0, 0, 49, 39], 49 * 39, 0)
    assert (a1["category_id"], a1["bbox"], a1["area"], a1["iscrowd"]) == (11, [9, 19, 20, 15], 300, 1)
    assert (a2["image_id"], a2["category_id"], a2["bbox"]) == (1, 0, [4, 5, 2, 3])
    assert [a["id"] for a in data["annotations"]] == [1, 2, 3]
    assert [a["id"] for a in voc_to_coco(tmp_path, ["2007"], "test", first_annotation_id=0)["annotations"]] == [0, 1, 2]


def _ap50_for_cat_only(coco, cat):
    from pycocotools.cocoeval import COCOeval

    dets = [{"image_id": 0, "category_id": cat, "bbox": [0, 0, 19, 19], "score": 0.9}]
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco, coco.loadRes(dets), "bbox")
        ev.params.catIds = [cat]
        ev.evaluate(), ev.accumulate(), ev.summarize()
    return ev.stats[1]


def test_voc_dataset_cocoeval_ignores_difficult_boxes(tmp_path):
    _voc(tmp_path, "2007", "test", {"000001": [("cat", 0, (1, 1, 20, 20)), ("dog", 1, (10, 20, 30, 35))]})
    ds = VocDataset(tmp_path, ["2007"], "test")
    assert ds[0]["image"].shape == (40, 50, 3)
    # Detect only the non-difficult cat: the missed difficult dog (iscrowd=1) must not cost anything.
    cat = VOC_CLASSES.index("cat")
    assert _ap50_for_cat_only(ds.coco, cat) == pytest.approx(1.0)
    # With LabelMatch's 0-based annotation ids the cat is annotation 0, which COCOeval cannot match.
    labelmatch_ids = voc_to_coco(tmp_path, ["2007"], "test", first_annotation_id=0)
    assert _ap50_for_cat_only(coco_api(labelmatch_ids), cat) == 0.0


def test_voc_errors_name_the_file(tmp_path):
    _voc(tmp_path, "2012", "trainval", {"a": [("unicorn", 0, (1, 1, 2, 2))]})
    with pytest.raises(BenchError, match=r"a\.xml: unknown class 'unicorn'"):
        voc_to_coco(tmp_path, ["2012"], "trainval")
    with pytest.raises(BenchError, match=r"VOC2012 test list not found: .*test\.txt"):
        voc_to_coco(tmp_path, ["2012"], "test")


def test_coco_api_matches_pycocotools_file_loading(tmp_path):
    data = _coco_dict(5)
    path = tmp_path / "a.json"
    path.write_text(json.dumps(data))
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        from_file = COCO(str(path))
    ours = coco_api(json.loads(path.read_text()))
    assert sorted(ours.getImgIds()) == sorted(from_file.getImgIds())
    assert ours.getAnnIds(imgIds=[102]) == from_file.getAnnIds(imgIds=[102])
