"""Detections in COCO results format, scored through bench.metrics.detection (pycocotools COCOeval, bbox).

Test protocol (LabelMatch test_cfg, recorded with every result): single scale (the config's test resize; none on
the 64-pixel smoke set), no flip, score threshold 0.001, class-wise NMS at IoU 0.5, 100 detections per image.
Boxes are mapped back to the original image, converted to [x, y, w, h] and labelled with the dataset's own
category ids, so the file can be re-scored with pycocotools alone.
"""
from __future__ import annotations

from typing import Any

import torch

from baselines.ssod.augment import ResizeSpec, resize
from baselines.ssod.boxes import scale_boxes
from baselines.ssod.data import CategoryMap, image_tensor
from baselines.ssod.detector import Detector


@torch.no_grad()
def predict(detector: Detector, dataset: Any, cats: CategoryMap, test_resize: ResizeSpec | None = None,
            batch_size: int = 8, device: str | torch.device = "cpu") -> list[dict[str, Any]]:
    """COCO results (image_id, category_id, bbox [x, y, w, h], score) of `detector` on every item of `dataset`."""
    test_resize = test_resize or ResizeSpec()
    was_training = detector.training
    detector.eval()
    results: list[dict[str, Any]] = []
    try:
        for start in range(0, len(dataset), batch_size):
            items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            images, factors = [], []
            for item in items:
                img = image_tensor(item["image"])
                img, _, f = resize(img, img.new_zeros((0, 4)), test_resize)
                images.append(img.to(device))
                factors.append(f)
            for item, det, (sx, sy) in zip(items, detector.detect(images), factors):
                boxes = scale_boxes(det["boxes"].cpu(), 1.0 / sx, 1.0 / sy)
                for box, score, label in zip(boxes.tolist(), det["scores"].tolist(), det["labels"].tolist()):
                    results.append({"image_id": int(item["image_id"]), "category_id": cats.category(int(label)),
                                    "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                                    "score": float(score)})
    finally:
        detector.train(was_training)
    return results


def score(ground_truth: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    """Both detection dialects from one COCOeval run: {dialect: MetricResult}."""
    from bench.metrics.detection import coco_bbox_ap50, coco_bbox_map

    return {"coco_bbox_map@pycocotools": coco_bbox_map(ground_truth, results),
            "coco_bbox_ap50@pycocotools": coco_bbox_ap50(ground_truth, results)}


def trivial_detections(train_data: dict[str, Any], test_data: dict[str, Any]) -> list[dict[str, Any]]:
    """The sanity floor's trivial detector: a detector that has learned only the labelled split's statistics.

    For every test image and every class it outputs one box, the class's mean labelled box (x, y, w, h taken
    relative to the image size, averaged, then scaled to the test image), scored by the class prior (the class's
    share of the labelled boxes). Classes without a labelled box get no detection. It knows where objects of each
    class sit on average and how often they occur, but looks at no pixel: a detector that learned nothing from
    the images scores about this."""
    sizes = {img["id"]: (float(img["width"]), float(img["height"])) for img in train_data["images"]}
    sums: dict[int, list[float]] = {}
    for ann in train_data["annotations"]:
        w, h = sizes[ann["image_id"]]
        x, y, bw, bh = (float(v) for v in ann["bbox"])
        acc = sums.setdefault(int(ann["category_id"]), [0.0, 0.0, 0.0, 0.0, 0.0])
        for k, v in enumerate((x / w, y / h, bw / w, bh / h, 1.0)):
            acc[k] += v
    total = sum(acc[4] for acc in sums.values())
    results = []
    for img in test_data["images"]:
        w, h = float(img["width"]), float(img["height"])
        for cat, (x, y, bw, bh, count) in sorted(sums.items()):
            results.append({"image_id": int(img["id"]), "category_id": cat,
                            "bbox": [x / count * w, y / count * h, bw / count * w, bh / count * h],
                            "score": count / total})
    return results


TEST_PROTOCOL = {"score_thr": 0.001, "nms_iou": 0.5, "max_per_img": 100, "flip": False, "scales": "single"}
