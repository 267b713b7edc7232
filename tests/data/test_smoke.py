"""Embedded smoke sets: deterministic, offline, and correct against independent references."""
from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest

from bench.data import smoke
from bench.data.cards import load_dataset_card
from bench.data.coco import partial_split_indices, validate_coco
from bench.data.imresize import imresize


def test_digits_is_unchanged():
    x, _ = smoke.digits("train")
    xt, _ = smoke.digits("test")
    assert x.shape == (1497, 1, 16, 16) and xt.shape == (300, 1, 16, 16) and x.dtype == np.uint8
    assert len(smoke.digits_dataset("test")) == load_dataset_card("digits").splits["test"].count
    np.testing.assert_array_equal(smoke.digits_dataset("test")[5]["image"][:, :, 0], xt[5, 0])


def test_photos_are_the_package_images_with_disjoint_splits():
    import skimage.data

    train, test = smoke.photos("train"), smoke.photos("test")
    assert len(train) == load_dataset_card("photos").splits["train"].count == 12
    assert len(test) == load_dataset_card("photos").splits["test"].count == 8
    assert not set(smoke.photo_names("train")) & set(smoke.photo_names("test"))
    np.testing.assert_array_equal(train[0], skimage.data.astronaut())
    camera = train[smoke.photo_names("train").index("camera")]
    assert camera.shape == (512, 512, 3)
    assert all(np.array_equal(camera[..., c], skimage.data.camera()) for c in range(3))
    assert all(p.dtype == np.uint8 and p.ndim == 3 and p.shape[2] == 3 for p in train + test)
    train[0][:] = 0  # a copy: the cached set is untouched
    assert smoke.photos("train")[0].any()


def test_resized_photos_are_centre_crops_through_matlab_bicubic():
    import skimage.data

    small = smoke.photos("test", size=32)
    assert all(p.shape == (32, 32, 3) for p in small)
    chelsea = skimage.data.chelsea()  # 300 x 451: centre square starts at column 75
    np.testing.assert_array_equal(small[0], imresize(chelsea[:, 75:375], output_shape=(32, 32)))


def test_photo_pairs_are_matlab_bicubic_downscales():
    pairs = smoke.photo_pairs("test", scale=3, size=50)
    for hr, lr in pairs:
        assert hr.shape == (48, 48, 3) and lr.shape == (16, 16, 3)
        np.testing.assert_array_equal(lr, imresize(hr, 1 / 3))
    ds = smoke.photos_dataset("test", size=50, scale=3)
    assert ds[2]["hr"].shape == (48, 48, 3) and ds[2]["name"] == "grace_hopper"


def _evaluate(coco, dets):
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco, coco.loadRes(dets), "bbox")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    return ev.stats


def test_shapes_coco_boxes_agree_with_pycocotools_masks():
    from pycocotools import mask as mask_utils

    train, val = smoke.shapes_coco("train"), smoke.shapes_coco("val")
    assert (len(train), len(val)) == (256, 64) == tuple(load_dataset_card("shapes-coco").splits[s].count
                                                          for s in ("train", "val"))
    validate_coco(train.data, "shapes train")
    for ann in train.data["annotations"]:
        rle = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode())
        assert mask_utils.toBbox(rle).tolist() == ann["bbox"] and int(mask_utils.area(rle)) == ann["area"]
    item = train[3]
    for ann in item["annotations"]:  # each shape is one flat colour inside its mask
        rle = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode())
        m = mask_utils.decode(rle).astype(bool)
        assert len(np.unique(item["image"][m].reshape(-1, 3), axis=0)) == 1
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
            for a in val.data["annotations"]]
    assert _evaluate(val.coco, dets)[0] == pytest.approx(1.0)
    assert {c["name"] for c in train.categories} == {"rectangle", "ellipse", "triangle"}


def test_shapes_labelled_split_uses_the_coco_standard_draws():
    labelled, unlabelled = smoke.labelled_split(10, fold=2)
    idx = partial_split_indices(256, 10, 2)
    assert len(labelled) == len(idx) < int(0.1 * 256)  # with replacement: fewer unique than draws
    assert [it["image_id"] for it in labelled] == [i + 1 for i in idx]
    assert len(labelled) + len(unlabelled) == 256
    np.testing.assert_array_equal(labelled[0]["image"], smoke.shapes_coco("train")[int(idx[0])]["image"])


def test_smoke_sets_are_deterministic_across_rebuilds():
    before = [smoke.shapes_coco("val").fingerprint(), smoke.forensics_shapes("test").fingerprint()]
    smoke._shapes_cached.cache_clear()  # rebuild from scratch (the photos cache holds read-only arrays)
    smoke._forensics_cached.cache_clear()
    assert [smoke.shapes_coco("val").fingerprint(), smoke.forensics_shapes("test").fingerprint()] == before


def test_forensics_shapes_labels_masks_and_balance():
    card = load_dataset_card("forensics-shapes")
    for split, n in (("train", 96), ("test", 48)):
        ds = smoke.forensics_shapes(split)
        assert len(ds) == n == card.splits[split].count
        kinds = [it["kind"] for it in ds]
        assert kinds.count("authentic") == n // 2 and kinds.count("splice") == n // 4 == kinds.count("blur")
        for it in ds:
            assert it["image"].shape == (64, 64, 3) and it["mask"].shape == (64, 64)
            assert it["label"] == int(it["mask"].any()) == int(it["kind"] != "authentic")
            if it["label"]:
                assert 0.04 <= it["mask"].mean() <= 0.26


def test_blur_inpainting_removes_high_frequencies_inside_the_mask():
    for it in smoke.forensics_shapes("train"):
        if it["kind"] != "blur":
            continue
        grey = it["image"].astype(np.float64).mean(axis=2)
        lap = np.abs(4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:])
        inner = it["mask"][1:-1, 1:-1]
        # Away from the region's edge, a sigma-3 blur leaves almost no Laplacian energy.
        from scipy.ndimage import binary_erosion

        core = binary_erosion(inner, iterations=3)
        if core.sum() > 20:
            assert lap[core].mean() < lap[~inner].mean()


def _answer(rec):
    """Recompute a toy instruction's answer from its text (independent of the generator)."""
    ins, ctx = rec["instruction"], rec["context"]
    if m := re.fullmatch(r"What is (\d+) (plus|minus|times) (\d+)\?", ins):
        a, op, b = int(m[1]), m[2], int(m[3])
        return str({"plus": a + b, "minus": a - b, "times": a * b}[op])
    if m := re.fullmatch(r"Write the word '(\w+)' backwards\.", ins):
        return "".join(reversed(m[1]))
    if m := re.fullmatch(r"Write the word '(\w+)' in capital letters\.", ins):
        return m[1].upper()
    if m := re.fullmatch(r"How many letters are in the word '(\w+)'\?", ins):
        return str(len(m[1]))
    if ins.startswith("List the first letter"):
        return ", ".join(w[0] for w in ctx.split())
    if ins.startswith("Sort the numbers"):
        return ", ".join(str(v) for v in sorted(int(t) for t in ctx.split(", ")))
    raise AssertionError(f"unknown template: {ins}")


def test_instruct_toy_answers_are_right_and_splits_disjoint():
    card = load_dataset_card("instruct-toy")
    splits = {s: smoke.instruct_toy(s) for s in ("train", "valid", "test")}
    keys = {}
    for split, records in splits.items():
        assert len(records) == card.splits[split].count
        keys[split] = {(r["instruction"], r["context"]) for r in records}
        assert len(keys[split]) == len(records)
        for r in records:
            assert set(r) == {"instruction", "context", "response", "category"} and r["response"] == _answer(r)
    for a, b in (("train", "test"), ("train", "valid"), ("valid", "test")):
        assert not keys[a] & keys[b]
    assert {r["category"] for r in splits["train"]} == set(smoke.INSTRUCT_CATEGORIES)
    assert smoke.instruct_toy("test") == splits["test"]  # deterministic


def test_instruct_toy_round_trips_through_the_jsonl_loader(tmp_path):
    from bench.data.instruct import InstructionJsonl

    records = smoke.instruct_toy("valid")
    smoke.write_jsonl(records, tmp_path / "toy.jsonl")
    ds = InstructionJsonl(tmp_path / "toy.jsonl")
    assert [(it["instruction"], it["context"], it["response"]) for it in ds] == \
        [(r["instruction"], r["context"], r["response"]) for r in records]
