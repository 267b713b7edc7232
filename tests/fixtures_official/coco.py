"""MS COCO 2017 detection, tiny, in its official layout, and the ImageNet ResNet-50 checkpoint in torchvision's.

Layout (https://cocodataset.org/#download: train2017.zip, val2017.zip, annotations_trainval2017.zip; read by
datasets/coco2017.yaml and bench.data.coco.CocoDataset):
    coco/train2017/000000000009.jpg ...            12-digit zero-padded image ids, JPEG
    coco/val2017/000000000139.jpg ...
    coco/annotations/instances_train2017.json      {"info", "licenses", "images", "annotations", "categories"}
    coco/annotations/instances_val2017.json        80 categories with the official ids 1..90 (gaps included)
The COCO-standard 1/5/10 % splits are drawn from instances_train2017.json on the fly (STAC's sampling), as the
recipe does. Each image holds one to three filled rectangles of a few categories; boxes are COCO [x, y, w, h].

Backbone (datasets/../baselines/ssod/detector.py, LabelMatch's `pretrained`): ``pretrained/resnet50-19c8e357.pth``,
a torchvision ResNet-50 state dict (its own key names and shapes) with random weights. The real file's digest
prefix is 19c8e357; this one's is not, and nothing checks it (the detector loads it non-strictly by key), so a
rehearsal needs no checksum exception.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# The 80 COCO categories with their official ids (instances_*2017.json; ids 12, 26, 29, 30, 45, 66, 68, 69, 71,
# 83 are unused).
CATEGORIES = [
    (1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"), (4, "motorcycle", "vehicle"),
    (5, "airplane", "vehicle"), (6, "bus", "vehicle"), (7, "train", "vehicle"), (8, "truck", "vehicle"),
    (9, "boat", "vehicle"), (10, "traffic light", "outdoor"), (11, "fire hydrant", "outdoor"),
    (13, "stop sign", "outdoor"), (14, "parking meter", "outdoor"), (15, "bench", "outdoor"),
    (16, "bird", "animal"), (17, "cat", "animal"), (18, "dog", "animal"), (19, "horse", "animal"),
    (20, "sheep", "animal"), (21, "cow", "animal"), (22, "elephant", "animal"), (23, "bear", "animal"),
    (24, "zebra", "animal"), (25, "giraffe", "animal"), (27, "backpack", "accessory"),
    (28, "umbrella", "accessory"), (31, "handbag", "accessory"), (32, "tie", "accessory"),
    (33, "suitcase", "accessory"), (34, "frisbee", "sports"), (35, "skis", "sports"), (36, "snowboard", "sports"),
    (37, "sports ball", "sports"), (38, "kite", "sports"), (39, "baseball bat", "sports"),
    (40, "baseball glove", "sports"), (41, "skateboard", "sports"), (42, "surfboard", "sports"),
    (43, "tennis racket", "sports"), (44, "bottle", "kitchen"), (46, "wine glass", "kitchen"),
    (47, "cup", "kitchen"), (48, "fork", "kitchen"), (49, "knife", "kitchen"), (50, "spoon", "kitchen"),
    (51, "bowl", "kitchen"), (52, "banana", "food"), (53, "apple", "food"), (54, "sandwich", "food"),
    (55, "orange", "food"), (56, "broccoli", "food"), (57, "carrot", "food"), (58, "hot dog", "food"),
    (59, "pizza", "food"), (60, "donut", "food"), (61, "cake", "food"), (62, "chair", "furniture"),
    (63, "couch", "furniture"), (64, "potted plant", "furniture"), (65, "bed", "furniture"),
    (67, "dining table", "furniture"), (70, "toilet", "furniture"), (72, "tv", "electronic"),
    (73, "laptop", "electronic"), (74, "mouse", "electronic"), (75, "remote", "electronic"),
    (76, "keyboard", "electronic"), (77, "cell phone", "electronic"), (78, "microwave", "appliance"),
    (79, "oven", "appliance"), (80, "toaster", "appliance"), (81, "sink", "appliance"),
    (82, "refrigerator", "appliance"), (84, "book", "indoor"), (85, "clock", "indoor"), (86, "vase", "indoor"),
    (87, "scissors", "indoor"), (88, "teddy bear", "indoor"), (89, "hair drier", "indoor"),
    (90, "toothbrush", "indoor"),
]
# the categories the synthetic rectangles use (a person, a car, a dog), each with its own colour
USED = {1: (220, 40, 40), 3: (40, 200, 60), 18: (50, 80, 230)}


def _split(folder: Path, first_id: int, n: int, size: tuple[int, int], rng: np.random.Generator,
           ann_start: int) -> dict:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    h, w = size
    for k in range(n):
        image_id = first_id + 7 * k  # sparse ids, as the real files
        canvas = np.full((h, w, 3), 128, np.uint8) + rng.integers(0, 20, (h, w, 3), dtype=np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            cat = int(rng.choice(list(USED)))
            bw, bh = int(rng.integers(w // 5, w // 2)), int(rng.integers(h // 5, h // 2))
            x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            canvas[y:y + bh, x:x + bw] = USED[cat]
            annotations.append({"id": ann_start + len(annotations), "image_id": image_id, "category_id": cat,
                                "bbox": [float(x), float(y), float(bw), float(bh)], "area": float(bw * bh),
                                "iscrowd": 0, "segmentation": [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]]})
        name = f"{image_id:012d}.jpg"
        Image.fromarray(canvas).save(folder / name, quality=95)
        images.append({"id": image_id, "file_name": name, "width": w, "height": h, "license": 1,
                       "coco_url": f"http://images.cocodataset.org/{folder.name}/{name}",
                       "date_captured": "2013-11-14 11:18:45", "flickr_url": ""})
    return {"info": {"description": "COCO 2017 Dataset (bench test fixture)", "version": "1.0", "year": 2017},
            "licenses": [{"id": 1, "name": "Attribution License", "url": "http://creativecommons.org/licenses/by/2.0/"}],
            "images": images, "annotations": annotations,
            "categories": [{"id": i, "name": n, "supercategory": s} for i, n, s in CATEGORIES]}


def write_coco(root: Path, n_train: int = 30, n_val: int = 4, size: tuple[int, int] = (48, 64), seed: int = 0) -> Path:
    """coco/{train2017,val2017,annotations} under ``root``; returns ``root``."""
    rng = np.random.default_rng(seed)
    base = Path(root) / "coco"
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    for split, first, n, ann_start in (("train2017", 9, n_train, 1), ("val2017", 139, n_val, 900001)):
        data = _split(base / split, first, n, size, rng, ann_start)
        (base / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    return Path(root)


def write_resnet50_weights(root: Path, seed: int = 0) -> Path:
    """``pretrained/resnet50-19c8e357.pth`` under ``root``: torchvision's ResNet-50 state dict, random weights."""
    import torch
    from torchvision.models import resnet50

    torch.manual_seed(seed)
    path = Path(root) / "pretrained" / "resnet50-19c8e357.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(resnet50(weights=None).state_dict(), path)
    return path
