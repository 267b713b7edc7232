"""COCO-form detection items -> tensors, and the training streams of the two SSOD stages.

Items are what bench.data's detection loaders return (shapes-coco smoke set, CocoDataset, VocDataset): a dict with
`image` (uint8 HWC), `image_id` and COCO `annotations`. Category ids map to contiguous labels 1..C in increasing
id order (0 is background); crowd boxes (and VOC "difficult" boxes, stored as iscrowd=1) and boxes thinner than
one pixel are not training targets, as in mmdet and detectron2.

`LabelledSet` (burn-in) yields one augmented labelled image per item. `SemiPairs` follows LabelMatch's
SemiDataset: its length is the unlabelled set, and item i pairs unlabelled image i (teacher and student views)
with a labelled image drawn uniformly at random, so a batch of B items is B labelled + B unlabelled images.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from baselines.ssod.augment import (
    AugmentConfig,
    colour_strong,
    labelled_view,
    unlabelled_views,
)
from bench.registry import BenchError


class CategoryMap:
    def __init__(self, categories: Sequence[dict[str, Any]]):
        ids = sorted(int(c["id"]) for c in categories)
        if not ids:
            raise BenchError("the detection set has no categories")
        self.cat_ids = ids
        self.to_label = {cid: i + 1 for i, cid in enumerate(ids)}
        self.names = {int(c["id"]): c.get("name", str(c["id"])) for c in categories}

    def __len__(self) -> int:
        return len(self.cat_ids)

    def category(self, label: int) -> int:
        return self.cat_ids[label - 1]


def image_tensor(image: np.ndarray) -> Tensor:
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(image[..., :3])).permute(2, 0, 1).float() / 255.0


def targets_of(annotations: list[dict[str, Any]], cats: CategoryMap) -> tuple[Tensor, Tensor]:
    boxes, labels = [], []
    for ann in annotations:
        x, y, w, h = ann["bbox"]
        if ann.get("iscrowd", 0) or w < 1 or h < 1:
            continue
        boxes.append([x, y, x + w, y + h])
        labels.append(cats.to_label[int(ann["category_id"])])
    return (torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.tensor(labels, dtype=torch.long))


class _Items:
    """Random access to a loader's items as tensors; small in-memory sets are converted once and cached."""

    def __init__(self, dataset: Any, cats: CategoryMap, cache: bool):
        self.dataset, self.cats = dataset, cats
        self.cache: dict[int, tuple] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.dataset)

    def get(self, index: int) -> tuple[Tensor, Tensor, Tensor, int]:
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        item = self.dataset[index]
        boxes, labels = targets_of(item["annotations"], self.cats)
        value = (image_tensor(item["image"]), boxes, labels, int(item["image_id"]))
        if self.cache is not None:
            self.cache[index] = value
        return value


class LabelledSet:
    """Burn-in stream: augmented labelled images (`labelled_resize` + flip; colour only if configured)."""

    def __init__(self, labelled: Any, cats: CategoryMap, aug: AugmentConfig, colour: bool = False, cache: bool = True):
        if len(labelled) == 0:
            raise BenchError("the labelled split is empty")
        self.items = _Items(labelled, cats, cache)
        self.aug, self.colour = aug, colour

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, boxes, labels, _ = self.items.get(index)
        image, boxes = labelled_view(image, boxes, self.aug, colour=self.colour)
        return {"images": [image], "boxes": [boxes], "labels": [labels]}


class SemiPairs:
    """Semi-supervised stream: unlabelled image `index` (both views) + a random labelled image (views as the
    method's AugmentConfig says: the strong labelled view, plus a weak copy for Unbiased Teacher)."""

    def __init__(self, labelled: Any, unlabelled: Any, cats: CategoryMap, aug: AugmentConfig, cache: bool = True):
        if len(labelled) == 0 or len(unlabelled) == 0:
            raise BenchError(f"semi-supervised training needs labelled and unlabelled images "
                             f"(got {len(labelled)} and {len(unlabelled)})")
        self.labelled = _Items(labelled, cats, cache)
        self.unlabelled = _Items(unlabelled, cats, cache)
        self.aug = aug

    def __len__(self) -> int:
        return len(self.unlabelled)

    def __getitem__(self, index: int) -> dict[str, Any]:
        pick = int(torch.randint(0, len(self.labelled), ()))
        image, boxes, labels, _ = self.labelled.get(pick)
        # One geometry for both labelled views; the strong one adds the colour ops (Unbiased Teacher's q / k).
        weak, weak_boxes = labelled_view(image, boxes, self.aug, colour=False)
        strong = colour_strong(weak) if self.aug.labelled_colour else weak
        images, box_list, label_list = [strong], [weak_boxes], [labels]
        if self.aug.labelled_weak_copy:
            images.append(weak)
            box_list.append(weak_boxes)
            label_list.append(labels)
        u_image, _, _, u_id = self.unlabelled.get(index)
        views = unlabelled_views(u_image, self.aug)
        return {"images": images, "boxes": box_list, "labels": label_list, "u_weak": views["weak"],
                "u_strong": views["strong"], "u_to_student": views["to_student"], "u_image_id": u_id}


def collate(items: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Keep images as lists (sizes differ after random resizing); labelled views are flattened."""
    out: dict[str, list[Any]] = {}
    for item in items:
        for key, value in item.items():
            if key in ("images", "boxes", "labels"):
                out.setdefault(key, []).extend(value)
            else:
                out.setdefault(key, []).append(value)
    return out
