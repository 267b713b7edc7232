"""Detection dialects through pycocotools' COCOeval (iouType 'bbox'), reported x100 as the SSOD papers print them.

``coco_bbox_map@pycocotools`` = stats[0] (AP over IoU .50:.05:.95, 101-point interpolated precision, all areas,
maxDets 100); ``coco_bbox_ap50@pycocotools`` = stats[1]. Ground truth is a COCO dict or a path to a COCO JSON;
detections are COCO results (``image_id, category_id, bbox [x,y,w,h], score``) as a list or a JSON path.
``write_coco_results`` stores detections in that format so a run's mAP can be recomputed from its record.

Per-image rows (extra["per_image"]) give, at IoU 0.5 / area 'all' / maxDets 100, the ground truths, the
detections kept, and the true positives, false positives and misses, read from COCOeval's own matching.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.metrics.base import MetricResult, library_version
from bench.registry import BenchError

STAT_INDEX = {"coco_bbox_map@pycocotools": 0, "coco_bbox_ap50@pycocotools": 1}


def _load_json(source: Any, what: str) -> Any:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise BenchError(f"{what} file {path} does not exist")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise BenchError(f"{what} file {path} is not valid JSON: {exc}") from None
    return source


def _coco_ground_truth(gt: Any) -> Any:
    from pycocotools.coco import COCO

    data = _load_json(gt, "ground-truth")
    if not isinstance(data, dict) or not {"images", "annotations", "categories"} <= set(data):
        raise BenchError("ground truth must be a COCO dict with 'images', 'annotations' and 'categories'")
    if not data["annotations"]:
        raise BenchError("ground truth has no annotations: AP is undefined")
    coco = COCO()
    coco.dataset = copy.deepcopy(data)  # pycocotools adds fields (area, id) in place; keep the caller's dict
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _check_detections(dets: Any, coco: Any) -> list[dict[str, Any]]:
    dets = _load_json(dets, "detections")
    if not isinstance(dets, list):
        raise BenchError("detections must be a list of COCO results {image_id, category_id, bbox, score}")
    known_images, known_cats = set(coco.getImgIds()), set(coco.getCatIds())
    for i, det in enumerate(dets):
        missing = {"image_id", "category_id", "bbox", "score"} - set(det)
        if missing:
            raise BenchError(f"detection {i} lacks {sorted(missing)}")
        if det["image_id"] not in known_images:
            raise BenchError(f"detection {i} is for image_id {det['image_id']}, which the ground truth lacks")
        if det["category_id"] not in known_cats:
            raise BenchError(f"detection {i} has category_id {det['category_id']}, not in the ground truth")
        if len(det["bbox"]) != 4:
            raise BenchError(f"detection {i}: bbox must be [x, y, w, h], got {det['bbox']}")
    return dets


def coco_eval(gt: Any, dets: Any) -> tuple[np.ndarray, list[dict[str, Any]], dict[str, Any]]:
    """Run COCOeval; returns (stats[0..11], per-image rows, protocol)."""
    from pycocotools.cocoeval import COCOeval

    coco = _coco_ground_truth(gt)
    dets = _check_detections(dets, coco)
    protocol = {"library": f"pycocotools {library_version('pycocotools')}", "iouType": "bbox",
                "iouThrs": "0.50:0.05:0.95", "recThrs": "101 points", "maxDets": 100, "areaRng": "all",
                "scale": "x100", "n_detections": len(dets)}
    image_ids = sorted(coco.getImgIds())
    if not dets:  # pycocotools cannot load an empty result list; no detections means AP 0 by definition
        rows = [{"image_id": i, "n_gt": len(coco.getAnnIds(imgIds=[i], iscrowd=False)), "n_det": 0, "tp": 0,
                 "fp": 0, "fn": len(coco.getAnnIds(imgIds=[i], iscrowd=False))} for i in image_ids]
        return np.zeros(12), rows, protocol
    with contextlib.redirect_stdout(io.StringIO()):
        results = coco.loadRes(copy.deepcopy(dets))
        evaluator = COCOeval(coco, results, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats), _per_image_rows(evaluator, image_ids), protocol


def _per_image_rows(evaluator: Any, image_ids: list[int]) -> list[dict[str, Any]]:
    """Matches at IoU 0.5, area 'all', maxDets 100, summed over categories, from COCOeval.evalImgs."""
    params = evaluator.params
    all_area = params.areaRng[params.areaRngLbl.index("all")]
    t50 = int(np.argmin(np.abs(params.iouThrs - 0.5)))
    rows = {i: {"image_id": i, "n_gt": 0, "n_det": 0, "tp": 0, "fp": 0, "fn": 0} for i in image_ids}
    for record in evaluator.evalImgs:
        if record is None or list(record["aRng"]) != list(all_area):
            continue
        row = rows[record["image_id"]]
        gt_ignored = np.asarray(record["gtIgnore"], dtype=bool)
        det_ignored = np.asarray(record["dtIgnore"])[t50].astype(bool) if len(record["dtIds"]) else np.zeros(0, bool)
        matched = np.asarray(record["dtMatches"])[t50] > 0 if len(record["dtIds"]) else np.zeros(0, bool)
        row["n_gt"] += int((~gt_ignored).sum())
        row["n_det"] += int((~det_ignored).sum())
        row["tp"] += int((matched & ~det_ignored).sum())
        row["fp"] += int((~matched & ~det_ignored).sum())
    for row in rows.values():
        row["fn"] = row["n_gt"] - row["tp"]
    return [rows[i] for i in image_ids]


def _dialect(name: str, gt: Any, dets: Any) -> MetricResult:
    stats, rows, protocol = coco_eval(gt, dets)
    value = float(stats[STAT_INDEX[name]]) * 100.0
    protocol["stat"] = f"stats[{STAT_INDEX[name]}]"
    return MetricResult(name=name, value=value, n=len(rows), per_item=None, protocol=protocol,
                        extra={"per_image": rows, "stats": [float(s) for s in stats]})


def coco_bbox_map(gt: Any, dets: Any) -> MetricResult:
    """``coco_bbox_map@pycocotools``: COCO AP@[.50:.95] x100."""
    return _dialect("coco_bbox_map@pycocotools", gt, dets)


def coco_bbox_ap50(gt: Any, dets: Any) -> MetricResult:
    """``coco_bbox_ap50@pycocotools``: COCO AP@0.50 x100."""
    return _dialect("coco_bbox_ap50@pycocotools", gt, dets)


def write_coco_results(path: Path | str, dets: list[dict[str, Any]]) -> Path:
    """Write detections as a COCO results JSON (atomically) so mAP can be recomputed from the run record."""
    from bench.atomic import write_json

    clean = [{"image_id": int(d["image_id"]), "category_id": int(d["category_id"]),
              "bbox": [float(v) for v in d["bbox"]], "score": float(d["score"])} for d in dets]
    write_json(Path(path), clean)
    return Path(path)
