"""Detection data in COCO form: COCO JSON (through pycocotools), PASCAL VOC XML converted to COCO form the
way LabelMatch does it, and the COCO-standard semi-supervised partial splits (STAC's script).

COCO JSON (the annotation file) is metadata and is read whole; images are read one per item.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.base import IndexedDataset, content_fingerprint, require_dir, require_file
from bench.data.images import read_image
from bench.registry import BenchError


def validate_coco(data: dict[str, Any], label: str) -> None:
    """One-line errors for the mistakes that make COCOeval silently wrong: missing sections, duplicate ids,
    annotations pointing at images or categories that do not exist, malformed boxes."""
    if not isinstance(data, dict):
        raise BenchError(f"malformed COCO JSON {label}: top level must be an object")
    data.setdefault("annotations", [])  # image-info files (unlabeled2017, test-dev) carry none
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise BenchError(f"malformed COCO JSON {label}: '{key}' must be a list")
    image_ids: set[int] = set()
    for img in data["images"]:
        if "id" not in img or "file_name" not in img:
            raise BenchError(f"malformed COCO JSON {label}: an image entry lacks 'id' or 'file_name'")
        if img["id"] in image_ids:
            raise BenchError(f"malformed COCO JSON {label}: duplicate image id {img['id']}")
        image_ids.add(img["id"])
    category_ids = {c["id"] for c in data["categories"]}
    ann_ids: set[int] = set()
    for ann in data["annotations"]:
        if ann.get("id") in ann_ids:
            raise BenchError(f"malformed COCO JSON {label}: duplicate annotation id {ann.get('id')}")
        ann_ids.add(ann.get("id"))
        if ann.get("image_id") not in image_ids:
            raise BenchError(f"malformed COCO JSON {label}: annotation {ann.get('id')} refers to image id "
                             f"{ann.get('image_id')}, which is not in 'images'")
        if ann.get("category_id") not in category_ids:
            raise BenchError(f"malformed COCO JSON {label}: annotation {ann.get('id')} has category_id "
                             f"{ann.get('category_id')}, which is not in 'categories'")
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and bbox[2] >= 0 and bbox[3] >= 0):
            raise BenchError(f"malformed COCO JSON {label}: annotation {ann.get('id')} bbox {bbox!r} is not "
                             f"[x, y, w, h] with w, h >= 0")


def coco_api(data: dict[str, Any]):
    """A pycocotools COCO object built from an in-memory dict (without its progress prints)."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


class CocoDataset(IndexedDataset):
    """Images of a COCO JSON, in the JSON's image order, each with its annotations.

    `images_dir` holds the files named by `file_name` (relative paths allowed, as in the VOC conversion).
    `load_images=False` skips decoding (for evaluation or split bookkeeping). `.coco` is the pycocotools
    index, ready for COCOeval. `partial_percent`/`partial_seed`/`partial_part` select one side of a
    COCO-standard semi-supervised split (see `coco_partial_split`).
    """

    def __init__(self, images_dir: str | Path, ann_file: str | Path | None = None,
                 data: dict[str, Any] | None = None, load_images: bool = True, name: str | None = None,
                 partial_percent: float | None = None, partial_seed: int | None = None,
                 partial_part: str = "labeled"):
        if (ann_file is None) == (data is None):
            raise BenchError("CocoDataset needs exactly one of ann_file or data")
        if ann_file is not None:
            ann_file = require_file(Path(ann_file), "COCO annotation file")
            try:
                data = json.loads(ann_file.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise BenchError(f"malformed COCO JSON {ann_file}: {exc}") from None
            label = str(ann_file)
        else:
            label = name or "<in-memory COCO dict>"
        validate_coco(data, label)
        self.name = name or (Path(ann_file).stem if ann_file is not None else "coco")
        if partial_percent is not None:
            # A COCO-standard semi-supervised split made on the fly (same draws as the official files).
            if partial_seed is None or partial_part not in ("labeled", "unlabeled"):
                raise BenchError("a partial split needs partial_seed and partial_part 'labeled' or 'unlabeled'")
            labelled, unlabelled = coco_partial_split(data, partial_percent, partial_seed)
            data = labelled if partial_part == "labeled" else unlabelled
            suffix = "" if partial_part == "labeled" else "-unlabeled"
            self.name = f"{self.name}.{partial_seed}@{partial_percent:g}{suffix}"
        self.data = data
        self.images_dir = require_dir(Path(images_dir), f"{self.name} image folder") if load_images \
            else Path(images_dir)
        self.load_images = load_images
        self.images = data["images"]
        self.coco = coco_api(data)
        self.categories = sorted(data["categories"], key=lambda c: c["id"])

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> dict[str, Any]:
        info = self.images[index]
        anns = self.coco.imgToAnns.get(info["id"], [])
        item = {"image_id": info["id"], "file_name": info["file_name"], "annotations": anns,
                "width": info.get("width"), "height": info.get("height")}
        if self.load_images:
            item["image"] = read_image(self.images_dir / info["file_name"])
        return item

    def _fingerprint(self) -> str:
        # The annotation content (canonical JSON) plus the image file names and sizes it points at.
        canon = json.dumps({k: self.data[k] for k in ("images", "annotations", "categories")},
                           sort_keys=True, separators=(",", ":")).encode()
        chunks = [("annotations.json", canon)]
        if self.load_images:
            for info in self.images:
                path = self.images_dir / info["file_name"]
                size = path.stat().st_size if path.is_file() else -1
                chunks.append((f"img/{info['file_name']}", str(size).encode()))
        return content_fingerprint(chunks)


# ---------------------------------------------------------------------------------------------------------
# PASCAL VOC -> COCO form

# mmdet's VOC class order, which LabelMatch's converter enumerates for category ids.
VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")


def _text(node: ET.Element, tag: str, xml_path: Path) -> str:
    child = node.find(tag)
    if child is None or child.text is None:
        raise BenchError(f"malformed VOC annotation {xml_path}: <{tag}> missing")
    return child.text.strip()


def voc_to_coco(devkit: str | Path, years: list[str] | tuple[str, ...] = ("2007",), split: str = "trainval",
                first_category_id: int = 0, pixel_offset: int = -1, first_annotation_id: int = 1) -> dict[str, Any]:
    """Convert `VOCdevkit/VOC<year>/{ImageSets/Main/<split>.txt, Annotations/*.xml}` to a COCO dict.

    Follows LabelMatch's `convert_xml_to_json.py` (hikvision-research/SSOD), whose JSON the CTF/LabelMatch
    VOC numbers are computed on:
    * images numbered 0, 1, ... in list order, years concatenated; file_name `VOC<year>/JPEGImages/<id>.jpg`;
    * category ids = position in VOC_CLASSES starting at `first_category_id` (0 in LabelMatch);
    * box corners shifted by `pixel_offset` (-1: VOC is 1-based), then bbox = [x1, y1, x2 - x1, y2 - y1]
      cast to int, area = w * h (no +1);
    * "difficult" objects kept with iscrowd=1, so COCOeval ignores detections matched to them; non-difficult
      boxes of an image come first, then its difficult ones (the converter's order).

    One deliberate difference: annotation ids start at `first_annotation_id` = 1, not 0 as in LabelMatch's
    file. COCOeval records a match by the ground truth's id and reads 0 as "unmatched", so the annotation
    with id 0 can never count as detected; pass 0 to reproduce LabelMatch's file exactly.
    """
    devkit = require_dir(Path(devkit), "VOCdevkit folder")
    names = {name: i + first_category_id for i, name in enumerate(VOC_CLASSES)}
    images, annotations = [], []
    for year in years:
        list_file = require_file(devkit / f"VOC{year}" / "ImageSets" / "Main" / f"{split}.txt",
                                 f"VOC{year} {split} list")
        ids = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
        for image_name in ids:
            xml_path = require_file(devkit / f"VOC{year}" / "Annotations" / f"{image_name}.xml", "VOC annotation")
            try:
                root = ET.parse(xml_path).getroot()
            except ET.ParseError as exc:
                raise BenchError(f"malformed VOC annotation {xml_path}: {exc}") from None
            size = root.find("size")
            if size is None:
                raise BenchError(f"malformed VOC annotation {xml_path}: <size> missing")
            image_id = len(images)
            images.append({"id": image_id, "file_name": f"VOC{year}/JPEGImages/{image_name}.jpg",
                           "width": int(_text(size, "width", xml_path)),
                           "height": int(_text(size, "height", xml_path))})
            normal, difficult = [], []
            for obj in root.findall("object"):
                cls = _text(obj, "name", xml_path)
                if cls not in names:
                    raise BenchError(f"VOC annotation {xml_path}: unknown class {cls!r}")
                box_node = obj.find("bndbox")
                if box_node is None:
                    raise BenchError(f"malformed VOC annotation {xml_path}: <bndbox> missing")
                box = [int(_text(box_node, t, xml_path)) + pixel_offset for t in ("xmin", "ymin", "xmax", "ymax")]
                diff_node = obj.find("difficult")
                is_difficult = diff_node is not None and diff_node.text is not None and int(diff_node.text) == 1
                (difficult if is_difficult else normal).append((names[cls], box))
            for crowd, boxes in ((0, normal), (1, difficult)):
                for category_id, (x1, y1, x2, y2) in boxes:
                    w, h = x2 - x1, y2 - y1
                    annotations.append({
                        "id": len(annotations) + first_annotation_id, "image_id": image_id,
                        "category_id": category_id,
                        "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": crowd, "ignore": 0,
                        "segmentation": [[x1, y1, x1, y2, x2, y2, x2, y1]],
                    })
    categories = [{"id": i, "name": n, "supercategory": "none"} for n, i in names.items()]
    return {"images": images, "annotations": annotations, "categories": categories, "type": "instance"}


class VocDataset(CocoDataset):
    """VOC images and boxes through the COCO-form conversion above; `devkit` is the VOCdevkit folder."""

    def __init__(self, devkit: str | Path, years: list[str] | tuple[str, ...] = ("2007",), split: str = "test",
                 load_images: bool = True, first_category_id: int = 0):
        data = voc_to_coco(devkit, years, split, first_category_id=first_category_id)
        super().__init__(devkit, data=data, load_images=load_images,
                         name=f"voc{''.join(y[-2:] for y in years)}-{split}")


# ---------------------------------------------------------------------------------------------------------
# COCO-standard semi-supervised splits

def partial_split_indices(num_images: int, percent: float, seed: int) -> np.ndarray:
    """Sorted unique indices of the labelled images, exactly as STAC's `prepare_coco_standard.py` draws them
    (also shipped by LabelMatch and used by Soft Teacher): numpy's legacy generator seeded with `seed`,
    `int(percent / 100 * N)` draws WITH replacement. Duplicates collapse, so fewer than the nominal number
    of images end up labelled (e.g. 1,174 instead of 1,182 for 1 % of train2017 with seed 1)."""
    if not 0 < percent <= 100:
        raise BenchError(f"percent must be in (0, 100], got {percent}")
    draws = int(percent / 100.0 * num_images)
    chosen = np.random.RandomState(seed).choice(num_images, size=draws)
    return np.unique(chosen)


def coco_partial_split(data: dict[str, Any], percent: float, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(labelled, unlabelled) COCO dicts: images keep their original order; each image's annotations follow
    it; the other top-level keys are copied. File names in the official script:
    `instances_train2017.{seed}@{int(percent)}.json` and `...-unlabeled.json`."""
    validate_coco(data, "partial-split input")
    labelled_idx = set(partial_split_indices(len(data["images"]), percent, seed).tolist())
    labelled_imgs = [img for i, img in enumerate(data["images"]) if i in labelled_idx]
    unlabelled_imgs = [img for i, img in enumerate(data["images"]) if i not in labelled_idx]
    labelled_ids = {img["id"] for img in labelled_imgs}
    rest = {k: copy.deepcopy(v) for k, v in data.items() if k not in ("images", "annotations")}
    labelled = dict(rest, images=labelled_imgs,
                    annotations=[a for a in data["annotations"] if a["image_id"] in labelled_ids])
    unlabelled = dict(copy.deepcopy(rest), images=unlabelled_imgs,
                      annotations=[a for a in data["annotations"] if a["image_id"] not in labelled_ids])
    return labelled, unlabelled


def partial_split_name(percent: float, seed: int, version: int = 2017) -> str:
    return f"instances_train{version}.{seed}@{int(percent)}"
