"""CPU rehearsal of CTF's small and paper code paths (issue 15): COCO 2017 in its official layout and the
torchvision ResNet-50 checkpoint (tests/fixtures_official/coco.py), the COCO-standard 10 % split drawn on the fly,
ResNet-50-FPN detectors, burn-in, the semi-supervised stage (LabelMatch's ACT refresh, CTF's pairs and DPCO), the
supervised reference, COCOeval on the first test images, the record and the table.

The rehearsal caps (RunSpec.rehearsal) cut every stage's steps and the test/ACT images. A ResNet-50-FPN step at
the configs' 800-1333 px views costs minutes of one CPU thread, so the test also shrinks every view tenfold (same
resize modes, same code) and the batches to one image (the spec's own `overrides`, which at paper scale also
override the split-sized COCO burn-in schedule)."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from typer.testing import CliRunner

from baselines.ssod import configs
from bench import runner
from bench.cli import app
from bench.store import Store
from tests.fixtures_official.coco import write_coco, write_resnet50_weights

pytestmark = pytest.mark.slow

CAPS = {"max_steps": 1, "max_samples": 2}
N_TRAIN = 60  # train2017 images of the fixture; COCO-standard 10 % draws int(0.1 * 60) = 6 with replacement
ONE_IMAGE = {"burn_in": {"batch_size": 1}, "semi": {"batch_size": 1}}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco-data")
    write_coco(root, n_train=N_TRAIN)
    write_resnet50_weights(root)
    return root


def _shrunk(view, factor=10):
    if view is None or view.mode is None:
        return view
    return replace(view, scale=tuple(max(16, v // factor) for v in view.scale))


@pytest.fixture(autouse=True)
def small_views(monkeypatch):
    """Every named config's views at a tenth of their sizes (the resize modes and code paths unchanged)."""
    original = configs.named_config

    def named(name, backbone_weights=None):
        recipe = original(name, backbone_weights)
        aug = recipe.augment
        aug = replace(aug, labelled_resize=_shrunk(aug.labelled_resize), teacher_resize=_shrunk(aug.teacher_resize),
                      student_resize=_shrunk(aug.student_resize), test_resize=_shrunk(aug.test_resize))
        return replace(recipe, augment=aug, burn_in_view=_shrunk(recipe.burn_in_view))

    monkeypatch.setattr(configs, "named_config", named)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _one_image(spec):
    overrides = {**spec.args.get("overrides", {})}
    for section, values in ONE_IMAGE.items():
        overrides[section] = {**overrides.get(section, {}), **values}
    return spec.with_overrides(args={**spec.args, "overrides": overrides})


def _metrics(result):
    return {m["metric"]: m for m in result["metrics"]}


def test_ctf_small_rehearsal_supervised_and_ctf(store_root, data_root):
    specs = {s.entry: _one_image(s) for s in runner.plan("ctf", "small", ["supervised", "ctf"], data_root=data_root,
                                                         rehearsal=CAPS)}
    store, logs = Store(store_root), []
    outs = {e: runner.execute(specs[e], store, data_root=data_root, show_progress=False, log=logs.append)
            for e in ("supervised", "ctf")}
    for entry, out in outs.items():
        result = out.result
        assert result["status"] == "complete" and result["rehearsal"] == CAPS
        metrics = _metrics(result)
        assert metrics["coco_bbox_map@pycocotools"]["n"] == 2  # max_samples: two of the four val images
        assert result["cost"]["burn_in_steps"] == 1  # max_steps reached the burn-in schedule
    ctf = outs["ctf"].result
    assert ctf["cost"]["semi_steps"] == 1 and ctf["cost"]["trained_networks"] == 4
    assert "map_gain@supervised" in _metrics(ctf)
    assert ctf["provenance"]["split"]["percent"] == 10.0 and ctf["provenance"]["split"]["test_images"] == 2
    split = ctf["provenance"]["split"]
    assert 1 <= split["labelled_images"] <= 6 and split["labelled_images"] + split["unlabelled_images"] == N_TRAIN
    # CTF's pair 0 burn-in is the supervised entry's (same config, split and seed): trained once
    assert sum("burn-in (seed 1," in line for line in logs) == 3  # supervised, ctf pair 0 (reused), pair 1
    table = CliRunner().invoke(app, ["table", "ctf", "--all", "--format", "json"],
                               env={"BENCH_RESULTS": str(store_root)})
    assert table.exit_code == 0, table.output
    ours = [c for c in json.loads(table.output)["cells"] if c.get("run_id") in {o.run_id for o in outs.values()}]
    assert ours and all(c["rehearsal"] and c["paper"] is None for c in ours)


def test_ctf_small_rehearsal_unbiased_teacher(store_root, data_root):
    """Unbiased Teacher's paths: its own burn-in inside the schedule, the focal loss, the weak labelled copy and
    the "choice" resize of its detectron2 views."""
    (spec,) = runner.plan("ctf", "small", ["unbiased-teacher"], data_root=data_root, rehearsal=CAPS)
    out = runner.execute(_one_image(spec), Store(store_root), data_root=data_root, show_progress=False,
                         log=lambda m: None)
    result = out.result
    assert result["status"] == "complete" and result["cost"]["semi_steps"] == 1
    assert _metrics(result)["coco_bbox_map@pycocotools"]["n"] == 2
    assert result["provenance"]["recipe"]["ssod"]["cls_loss"] == "focal"


def test_ctf_paper_rehearsal_labelmatch_coco_burn_in(store_root, data_root):
    """Paper scale, LabelMatch 160k at 10 % fold 1: the COCO burn-in schedule (coco_burn_in), ACT on capped
    unlabelled images, the fold taken from the seed."""
    (spec,) = [s for s in runner.plan("ctf", "paper", ["labelmatch"], data_root=data_root, rehearsal=CAPS)
               if s.dataset == "coco2017" and s.setting["label_pct"] == 10.0 and s.args["config"] == "labelmatch-160k"]
    spec = _one_image(spec).with_overrides(seeds=[1])
    out = runner.execute(spec, Store(store_root), data_root=data_root, show_progress=False, log=lambda m: None)
    result = out.result
    assert result["status"] == "complete"
    assert result["cost"]["burn_in_steps"] == 1 and result["cost"]["semi_steps"] == 1
    assert _metrics(result)["coco_bbox_map@pycocotools"]["setting"]["fold"] == 1  # one fold, not "mean5"


def test_ctf_paper_without_weights_names_the_file(store_root, data_root, tmp_path):
    """Outside a rehearsal a missing backbone checkpoint is one line naming the file."""
    import shutil

    broken = tmp_path / "no-weights"
    shutil.copytree(data_root / "coco", broken / "coco")
    res = CliRunner().invoke(app, ["reproduce", "ctf", "--scale", "small", "--entry", "supervised", "--data-root",
                                   str(broken), "--device", "cpu"],
                             env={"BENCH_RESULTS": str(store_root), "COLUMNS": "1000"})
    assert res.exit_code != 0
    (line,) = [x for x in res.output.splitlines() if x.startswith("error:")]
    assert "pretrained/resnet50-19c8e357.pth" in line and "bench assets" in line
