"""`bench evaluate ctf`: a checkpoint written by LabelMatch's code (mmcv save_checkpoint of mmdet's FasterRCNN
R50-FPN: mmdet names, BatchNorm counters, background as the last classifier row) loads strictly into bench's
detector with the same detections, the classifier rows land on the right COCO categories, and the CLI scores it
on a tiny COCO val2017 in the official layout (tests/fixtures_official/coco.py) with pycocotools.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from baselines.ssod.augment import ResizeSpec
from baselines.ssod.configs import named_config
from baselines.ssod.detector import build_detector
from bench.cli import app
from bench.evaluate import CheckpointError, build_spec
from methods.ctf import released
from tests.fixtures_official.coco import write_coco

runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """One torch and one BLAS thread for every test here (tests/conftest.py)."""


def bench_detector(seed: int = 0):
    torch.manual_seed(seed)
    detector = build_detector(named_config("labelmatch-160k").detector).eval()
    with torch.no_grad():  # random heads that still propose and score boxes
        for name, p in detector.named_parameters():
            if not name.startswith("backbone.body"):
                p.normal_(0, 0.01)
    return detector


def mmdet_state(detector) -> dict[str, torch.Tensor]:
    """The state dict mmdet 2.10's FasterRCNN (ResNet + FPN + RPNHead + Shared2FCBBoxHead) holds for these
    weights, written from mmdet's module names: ResNet as torchvision's plus num_batches_tracked per BatchNorm,
    FPN ConvModules `.conv`, RPNHead rpn_conv/rpn_cls/rpn_reg, bbox head shared_fcs/fc_cls (background last)/fc_reg."""
    named = {"rpn.head.conv.0.0": "rpn_head.rpn_conv", "rpn.head.cls_logits": "rpn_head.rpn_cls",
             "rpn.head.bbox_pred": "rpn_head.rpn_reg", "box_head.fc6": "roi_head.bbox_head.shared_fcs.0",
             "box_head.fc7": "roi_head.bbox_head.shared_fcs.1", "cls_score": "roi_head.bbox_head.fc_cls",
             "bbox_pred": "roi_head.bbox_head.fc_reg"}
    out: dict[str, torch.Tensor] = {}
    for key, value in detector.state_dict().items():
        module, _, leaf = key.rpartition(".")
        if key.startswith("backbone.body."):
            name = key[len("backbone.body."):]
            out[name if name.startswith("backbone.") else "backbone." + name] = value.clone()
            if leaf == "running_var":
                out["backbone." + name[: -len("running_var")] + "num_batches_tracked"] = torch.tensor(1000)
            continue
        fpn = re.match(r"backbone\.fpn\.(inner|layer)_blocks\.(\d+)\.0$", module)
        if fpn:
            kind = "lateral_convs" if fpn.group(1) == "inner" else "fpn_convs"
            out[f"neck.{kind}.{fpn.group(2)}.conv.{leaf}"] = value.clone()
            continue
        value = value.clone()
        if module == "cls_score":  # bench: background first; mmdet: background last
            value = torch.cat([value[1:], value[:1]])
        out[f"{named[module]}.{leaf}"] = value
    return out


def save_mmcv(path: Path, state: dict[str, torch.Tensor], config_text: str = "", iters: int = 160000) -> None:
    """mmcv.runner.save_checkpoint: {'meta', 'state_dict', 'optimizer'} (meta as tools/train.py fills it)."""
    meta = {"mmcv_version": "1.3.3", "time": "Mon Mar  7 12:00:00 2022", "epoch": 1, "iter": iters,
            "config": config_text, "seed": 0, "exp_name": "labelmatch_standard_paper.py",
            "CLASSES": tuple(f"class{i}" for i in range(80))}
    torch.save({"meta": meta, "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}, path)


CONFIG_TEXT = ("data = dict(train=dict(ann_file='./dataset/coco/annotations/semi_supervised/"
               "instances_train2017.2@10.json'))\n")


def test_mmdet_checkpoint_loads_strictly_with_equal_detections(tmp_path):
    detector = bench_detector()
    state = mmdet_state(detector)
    assert {"backbone.conv1.weight", "backbone.bn1.num_batches_tracked", "neck.lateral_convs.3.conv.weight",
            "neck.fpn_convs.0.conv.bias", "rpn_head.rpn_reg.weight", "roi_head.bbox_head.shared_fcs.0.weight",
            "roi_head.bbox_head.fc_cls.weight"} <= set(state)
    assert tuple(state["roi_head.bbox_head.fc_cls.weight"].shape) == (81, 1024)
    assert tuple(state["roi_head.bbox_head.fc_reg.weight"].shape) == (4, 1024)  # class-agnostic
    path = tmp_path / "iter_160000_ema.pth"
    save_mmcv(path, state, CONFIG_TEXT)
    spec = build_spec("ctf", "labelmatch", path, sha="0" * 64)
    loaded, setting = released.load_released(spec, path)
    assert setting == {"fold": 2, "label_pct": 10.0, "train_iters": 160000}
    images = [torch.rand(3, 64, 96, generator=torch.Generator().manual_seed(1))]
    with torch.no_grad():
        want, got = detector.detect(images)[0], loaded.detect(images)[0]
    assert len(want["boxes"]) > 0
    assert all(torch.equal(want[k], got[k]) for k in ("boxes", "scores", "labels"))


def test_classifier_rows_land_on_the_right_coco_categories(tmp_path):
    """mmdet's class 0 (COCO id 1, person) made certain: every bench detection must be label 1 = person."""
    state = mmdet_state(bench_detector())
    state["roi_head.bbox_head.fc_cls.weight"].zero_()
    bias = torch.full((81,), -10.0)
    bias[0] = 10.0  # mmdet row 0 = the first category; row 80 (background) stays at -10
    state["roi_head.bbox_head.fc_cls.bias"] = bias
    path = tmp_path / "iter_160000_ema.pth"
    save_mmcv(path, state)
    loaded, _ = released.load_released(build_spec("ctf", "labelmatch", path, sha="0" * 64), path)
    with torch.no_grad():
        out = loaded.detect([torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(2))])[0]
    assert len(out["labels"]) > 0 and set(out["labels"].tolist()) == {1}


def test_a_torchvision_layout_is_refused_in_one_line(tmp_path):
    state = mmdet_state(bench_detector())
    state["roi_heads.box_predictor.cls_score.weight"] = state.pop("roi_head.bbox_head.fc_cls.weight")
    path = tmp_path / "iter_160000_ema.pth"
    save_mmcv(path, state)
    with pytest.raises(CheckpointError) as err:
        released.load_released(build_spec("ctf", "labelmatch", path, sha="0" * 64), path)
    assert "\n" not in str(err.value)
    assert "missing keys cls_score.weight" in str(err.value)
    assert "unexpected keys roi_heads.box_predictor.cls_score.weight" in str(err.value)
    bare = tmp_path / "plain.pth"
    torch.save(state, bare)  # a bare state dict, not mmcv's {'meta', 'state_dict', ...}
    with pytest.raises(CheckpointError, match="no 'state_dict' entry"):
        released.load_released(build_spec("ctf", "labelmatch", bare, sha="0" * 64), bare)


def test_cli_scores_val2017_with_pycocotools(tmp_path, store_root, monkeypatch):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    data_root = write_coco(tmp_path / "data", n_train=2, n_val=3)
    shutil.rmtree(data_root / "coco" / "train2017")  # evaluating needs val2017 only
    (data_root / "coco" / "annotations" / "instances_train2017.json").unlink()
    monkeypatch.setattr(released, "TEST_RESIZE", ResizeSpec())  # the 48x64 fixture images as they are
    path = tmp_path / "instances_train2017.1@10.pth"
    save_mmcv(path, mmdet_state(bench_detector(seed=3)), iters=0)
    result = runner.invoke(app, ["evaluate", "ctf", "-e", "supervised", "-c", str(path), "--data-root",
                                 str(data_root), "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)["run"]
    assert (run["dataset"], run["split"]) == ("coco2017", "val")
    metrics = {m["metric"]: m for m in run["metrics"]}
    assert metrics["coco_bbox_map@pycocotools"]["setting"] == {"fold": 1, "label_pct": 10.0}
    # the recorded mAP is pycocotools' own stats[0] x 100 on the stored detections
    rows = [json.loads(line) for line in (store_root / "ctf" / run["run_id"] / "items" / "0" /
                                          "detections.jsonl").read_text().splitlines()]
    assert rows and all(r["score"] >= 0.001 for r in rows)
    gt = COCO(str(data_root / "coco" / "annotations" / "instances_val2017.json"))
    dt = gt.loadRes([{k: r[k] for k in ("image_id", "category_id", "bbox", "score")} for r in rows])
    ev = COCOeval(gt, dt, "bbox")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    assert metrics["coco_bbox_map@pycocotools"]["value"] == pytest.approx(100 * max(ev.stats[0], 0.0), abs=1e-9)
    assert metrics["coco_bbox_ap50@pycocotools"]["value"] == pytest.approx(100 * max(ev.stats[1], 0.0), abs=1e-9)


def test_missing_checkpoint_and_missing_data_are_one_line(tmp_path, store_root):
    result = runner.invoke(app, ["evaluate", "ctf", "-e", "labelmatch", "-c", str(tmp_path / "iter_160000_ema.pth")])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and "iter_160000_ema.pth" in line and "hikvision-research/SSOD" in line
    path = tmp_path / "iter_160000_ema.pth"
    save_mmcv(path, mmdet_state(bench_detector()))
    result = runner.invoke(app, ["evaluate", "ctf", "-e", "labelmatch", "-c", str(path), "--device", "cpu"])
    assert result.exit_code == 2 and "\n" not in result.stderr.strip() and "--data-root" in result.stderr
    (tmp_path / "data" / "coco" / "val2017").mkdir(parents=True)
    result = runner.invoke(app, ["evaluate", "ctf", "-e", "labelmatch", "-c", str(path), "--device", "cpu",
                                 "--data-root", str(tmp_path / "data")])
    line = result.stderr.strip()
    assert result.exit_code == 2 and "\n" not in line and "instances_val2017.json" in line
    assert "annotations_trainval2017.zip" in line
