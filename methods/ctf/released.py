"""Checkpoints of LabelMatch's code (hikvision-research/SSOD, mmdet 2.10), evaluated on COCO val2017
(`bench evaluate ctf --entry labelmatch|supervised --checkpoint FILE --data-root DIR`).

LabelMatch publishes no weights (its README's "Model Weights" column links training logs); its code writes them:
* the semi-supervised stage (mmdet_extension/core/runner/semi_runner.py) saves, every checkpoint interval,
  `iter_<N>.pth` (the student) and `iter_<N>_ema.pth` (the EMA teacher, which LabelMatch evaluates and reports);
* the supervised burn-in (configs/baseline/baseline_ssod.py, mmdet's EpochBasedRunner) saves `epoch_<N>.pth`, which
  the README renames `pretrained_model/baseline/instances_train2017.<fold>@<percent>.pth`.
Both are mmcv `save_checkpoint` files: torch.save({"meta": {..., "iter", "config": the config's text, "CLASSES"},
"state_dict": the FasterRCNN's weights, "optimizer": ...}). The state dict uses mmdet's names (ResNet `backbone.*`,
FPN `neck.lateral_convs/fpn_convs.<i>.conv`, `rpn_head.rpn_conv/rpn_cls/rpn_reg`, Shared2FCBBoxHead
`roi_head.bbox_head.shared_fcs.<0,1>/fc_cls/fc_reg`), with BatchNorm `num_batches_tracked` counters and the
background as the LAST row of fc_cls (mmdet >= 2.0). `to_bench_state` renames them to bench's detector
(baselines.ssod.detector: torchvision names, background first) and drops only the BatchNorm counters (bench's
backbone uses frozen BatchNorm, as LabelMatch's norm_eval=True); every other key must be there, strictly.

Protocol (LabelMatch's test_cfg, baselines.ssod.evaluate): single scale 1333x800, no flip, score threshold 0.001,
class-wise NMS 0.5, 100 detections per image; pycocotools bbox mAP and AP50 on val2017. The record's setting is the
checkpoint's own: label_pct and fold from its config text (the split file instances_train2017.<fold>@<pct>.json) or
file name, train_iters from its meta. LabelMatch's reported numbers are the mean over 5 folds (fold: mean5), so one
fold's checkpoint sits in its own row; a Δ needs the five folds' runs (not aggregated here).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.evaluate import (
    CheckpointError,
    Layout,
    load_strict,
    missing_file,
    pick,
    read_checkpoint,
)
from bench.recipe import RunContext, SeedResult, metric_record
from bench.spec import RunSpec

VERSION = 1
SSOD_REPO = "https://github.com/hikvision-research/SSOD"
MMCV_FORMAT = "mmcv save_checkpoint {'meta', 'state_dict', 'optimizer'} of mmdet's FasterRCNN R50-FPN"

LAYOUTS: dict[str, Layout] = {
    "labelmatch": Layout(
        files=("iter_160000_ema.pth",), format=MMCV_FORMAT, weights="['state_dict'] (the EMA teacher's file)",
        source=f"no published weights: train with {SSOD_REPO} (configs/labelmatch/labelmatch_standard_paper.py); "
               f"its semi_runner writes work_dirs/.../iter_<N>_ema.pth",
        extra={"config": "labelmatch-160k"}),
    "supervised": Layout(
        files=("instances_train2017.1@10.pth",), format=MMCV_FORMAT, weights="['state_dict']",
        source=f"no published weights: train with {SSOD_REPO} (configs/baseline/baseline_ssod.py); the README "
               f"names the result pretrained_model/baseline/instances_train2017.<fold>@<percent>.pth",
        extra={"config": "labelmatch-160k"}),
}
TEST_RESIZE: Any = None  # None: the LabelMatch config's test view (1333x800); tests shrink it
SPLIT_FILE = re.compile(r"instances_train2017\.(\d+)@(\d+(?:\.\d+)?)")


def released_spec(card: Any, entry: str, scale: str) -> dict[str, Any]:
    return {"dataset": "coco2017", "split": "val",
            "metrics": ["coco_bbox_map@pycocotools", "coco_bbox_ap50@pycocotools"],
            "args": {"config": LAYOUTS[entry].extra["config"]},
            "setting": {"test_images": "all" if scale == "paper" else 500}}


def _rename(key: str) -> str | None:
    """mmdet's name of one tensor -> bench's; None for a key bench does not hold (BatchNorm counters)."""
    if key.endswith("num_batches_tracked"):
        return None
    rules = [(r"^backbone\.(.*)$", r"backbone.body.\1"),
             (r"^neck\.lateral_convs\.(\d+)\.conv\.(weight|bias)$", r"backbone.fpn.inner_blocks.\1.0.\2"),
             (r"^neck\.fpn_convs\.(\d+)\.conv\.(weight|bias)$", r"backbone.fpn.layer_blocks.\1.0.\2"),
             (r"^rpn_head\.rpn_conv\.(weight|bias)$", r"rpn.head.conv.0.0.\1"),
             (r"^rpn_head\.rpn_cls\.(weight|bias)$", r"rpn.head.cls_logits.\1"),
             (r"^rpn_head\.rpn_reg\.(weight|bias)$", r"rpn.head.bbox_pred.\1"),
             (r"^roi_head\.bbox_head\.shared_fcs\.0\.(weight|bias)$", r"box_head.fc6.\1"),
             (r"^roi_head\.bbox_head\.shared_fcs\.1\.(weight|bias)$", r"box_head.fc7.\1"),
             (r"^roi_head\.bbox_head\.fc_cls\.(weight|bias)$", r"cls_score.\1"),
             (r"^roi_head\.bbox_head\.fc_reg\.(weight|bias)$", r"bbox_pred.\1")]
    for pattern, target in rules:
        if re.match(pattern, key):
            return re.sub(pattern, target, key)
    return key  # unknown: kept under its own name, so the strict load names it as unexpected


def to_bench_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """mmdet FasterRCNN state dict -> bench's detector's: renamed, BatchNorm counters dropped, and the
    classifier's background row moved from last (mmdet) to first (bench: label 0 is background)."""
    import torch

    out: dict[str, Any] = {}
    for key, value in state.items():
        name = _rename(key)
        if name is None:
            continue
        if name.startswith("cls_score."):
            value = torch.cat([value[-1:], value[:-1]])
        out[name] = value
    return out


def checkpoint_setting(obj: Mapping[str, Any], checkpoint: Path) -> dict[str, Any]:
    """label_pct / fold / train_iters of an mmcv checkpoint, where its meta or name says them."""
    meta = obj.get("meta") or {}
    setting: dict[str, Any] = {}
    found = SPLIT_FILE.search(str(meta.get("config", ""))) or SPLIT_FILE.search(checkpoint.name)
    if found:
        setting.update(fold=int(found.group(1)), label_pct=float(found.group(2)))
    if isinstance(meta.get("iter"), int) and meta["iter"] > 0:
        setting["train_iters"] = int(meta["iter"])
    return setting


def load_released(spec: RunSpec, checkpoint: Path) -> tuple[Any, dict[str, Any]]:
    """bench's detector holding the checkpoint's weights (strict), and the checkpoint's own setting."""
    from baselines.ssod.configs import named_config
    from baselines.ssod.detector import build_detector

    obj = read_checkpoint(checkpoint)
    state = pick(obj, "state_dict", checkpoint, MMCV_FORMAT)
    detector = build_detector(named_config(spec.args["config"]).detector)
    load_strict(detector, to_bench_state(state), checkpoint, "LabelMatch (mmdet FasterRCNN)")
    return detector.eval(), checkpoint_setting(obj, checkpoint)


def val2017(data_root: Path) -> Any:
    """COCO val2017 where datasets/coco2017.yaml puts it. Only val is needed to evaluate (opening the card's
    dataset would also demand train2017); a missing file or folder is one line saying where to get it."""
    from bench.data.cards import load_dataset_card
    from bench.data.coco import CocoDataset

    args = load_dataset_card("coco2017").split("val").args
    images, annotations = data_root / args["images_dir"], data_root / args["ann_file"]
    for path, what, archive in ((annotations, "COCO val2017 annotations", "annotations_trainval2017.zip"),
                                (images, "COCO val2017 images", "val2017.zip")):
        if not path.exists():
            raise missing_file(path, what, f"http://images.cocodataset.org ({archive}; datasets/coco2017.yaml)")
    return CocoDataset(images, annotations)


def evaluate_released(spec: RunSpec, checkpoint: Path, ctx: RunContext) -> SeedResult:
    from baselines.ssod.configs import named_config
    from baselines.ssod.data import CategoryMap
    from baselines.ssod.evaluate import TEST_PROTOCOL, predict, score

    if ctx.data_root is None:
        from bench.registry import BenchError

        raise BenchError("COCO val2017 is needed: pass --data-root DIR holding coco/val2017/ and "
                         "coco/annotations/instances_val2017.json (`bench assets` says where to get them)")
    test = val2017(Path(ctx.data_root))
    limit = len(test) if spec.setting.get("test_images", "all") == "all" else int(spec.setting["test_images"])
    n = spec.capped("max_samples", min(limit, len(test)))
    if n < len(test):  # the first n images, in the JSON's order (a rehearsal or the small protocol)
        from bench.data.coco import CocoDataset

        keep = test.data["images"][:n]
        ids = {img["id"] for img in keep}
        test = CocoDataset(test.images_dir, data={**test.data, "images": keep,
                                                  "annotations": [a for a in test.data["annotations"]
                                                                  if a["image_id"] in ids]}, name=f"val2017[:{n}]")
    detector, own_setting = load_released(spec, checkpoint)
    cats = CategoryMap(test.data["categories"])
    if len(cats) != detector.num_classes:
        raise CheckpointError(f"checkpoint {checkpoint} detects {detector.num_classes} classes, "
                              f"the annotations have {len(cats)}")
    resize = TEST_RESIZE or named_config(spec.args["config"]).augment.test_resize
    results = predict(detector.to(ctx.device), test, cats, resize, device=ctx.device)
    scored = score(test.data, results)
    seed = int(ctx.extra.get("seed", 0))
    ctx.handle.write_shard(seed, "detections", [{"kind": "detection", **r} for r in results])
    protocol = dict(TEST_PROTOCOL, eval_model=LAYOUTS[spec.entry].weights, test_images=n)
    if spec.scale != "paper":  # the small protocol scores a subset: it must never sit beside a full-val number
        own_setting = {**own_setting, "test_images": limit}
    metrics = [metric_record(name, result.value, result.n, own_setting, {**result.protocol, **protocol})
               for name, result in scored.items()]
    return SeedResult(metrics=metrics, cost={"params_m": sum(p.numel() for p in detector.parameters()) / 1e6},
                      provenance={"layout": MMCV_FORMAT, "checkpoint_setting": own_setting})
