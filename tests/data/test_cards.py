"""Dataset cards: schema, coverage of the papers' datasets, layout checks and one-line errors."""
from __future__ import annotations

import glob
import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from bench.data.base import IndexedDataset
from bench.data.cards import (
    FORMATS,
    all_dataset_cards,
    check_layout,
    dataset_status,
    load_card_file,
    load_dataset_card,
    require_layout,
    verify_files,
)
from bench.data.formats import LOADERS, open_dataset
from bench.data.imresize import bicubic_lr
from bench.registry import BenchError, UnknownName, load_target
from methods.manifest import PAPERS
from tests.data.conftest import random_image, save_png

ROOT = Path(__file__).resolve().parents[2]

# The names issue 4 and the data brief require.
REQUIRED = ["imagenet-256", "cifar10", "ffhq-64", "afhqv2-64", "div2k", "flickr2k", "set5", "set14", "b100",
            "urban100", "manga109", "cbsd68", "kodak24", "mcmaster", "classic5", "live1", "rain100l", "rain100h",
            "test100", "gopro", "hide", "sots", "snow100k", "realsr", "drealsr", "realset65", "coco2017", "voc07",
            "voc12", "dolly", "self-inst", "vicuna", "sni", "unni", "gim"]
EMBEDDED = ["digits", "photos", "shapes-coco", "forensics-shapes", "instruct-toy"]


def test_every_required_card_exists_and_validates():
    cards = {c.name: c for c in all_dataset_cards()}
    assert set(REQUIRED + EMBEDDED) <= set(cards)
    assert all(cards[n].smoke for n in EMBEDDED)
    assert not any(cards[n].smoke for n in REQUIRED)


def test_every_dataset_named_by_a_paper_card_has_a_card_that_lists_the_paper():
    package_to_slug = {v["package"]: k for k, v in PAPERS.items()}
    for path in glob.glob(str(ROOT / "methods" / "*" / "paper.yaml")):
        slug = package_to_slug[Path(path).parent.name]
        for name in yaml.safe_load(Path(path).read_text())["datasets"]:
            card = load_dataset_card(name)  # raises UnknownName for a missing card
            assert slug in card.papers, f"{name}.yaml does not list {slug}"


def test_formats_and_loaders_agree():
    assert set(LOADERS) == set(FORMATS) - {"smoke", "aggregate"}
    for target in LOADERS.values():
        assert issubclass(load_target(target), IndexedDataset)


@pytest.mark.parametrize("card", all_dataset_cards(), ids=lambda c: c.name)
def test_split_arguments_fit_the_loader_signature(card):
    for split, spec in card.splits.items():
        if card.format == "aggregate":
            continue
        fn = load_target(card.builder) if card.smoke else load_target(LOADERS[card.split_format(split)])
        args = dict(spec.args)
        if card.split_format(split) == "paired-sr":
            args.setdefault("scale", 2)
        if card.smoke:
            args["split"] = split
        inspect.signature(fn).bind(**args)  # TypeError on a misspelt or missing argument


def test_loading_cards_does_not_import_torch():
    code = ("import sys; from bench.data.cards import all_dataset_cards; import bench.data.formats; "
            "all_dataset_cards(); assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def _set5(root: Path, n: int = 5) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        hr = random_image(rng, 12, 12)
        save_png(root / "benchmark" / "Set5" / "HR" / f"img{i}.png", hr)
        for s in (2, 3, 4):
            save_png(root / "benchmark" / "Set5" / "LR_bicubic" / f"X{s}" / f"img{i}x{s}.png", bicubic_lr(hr, s)[1])


def test_layout_check_and_one_line_missing_error(tmp_path):
    card = load_dataset_card("set5")
    (tmp_path / "benchmark" / "Set5" / "HR").mkdir(parents=True)
    assert check_layout(card, tmp_path) == []
    assert check_layout(card, tmp_path, "test") == [f"benchmark/Set5/LR_bicubic/X{s}/" for s in (2, 3, 4)]
    with pytest.raises(BenchError) as err:
        open_dataset("set5", "test", tmp_path, scale=2)
    msg = str(err.value)
    assert "\n" not in msg and "'set5'" in msg and "LR_bicubic/X2" in msg and "(and 2 more)" in msg
    assert "benchmark.tar" in msg  # how to get it
    with pytest.raises(BenchError, match="data root .* does not exist"):
        require_layout(card, tmp_path / "nowhere")


def test_open_dataset_and_status_on_a_real_layout(tmp_path):
    _set5(tmp_path, n=4)
    ds = open_dataset("set5", "test", tmp_path, scale=3)
    assert len(ds) == 4 and ds[0]["lr"].shape == (4, 4, 3)
    status = dataset_status(load_dataset_card("set5"), tmp_path, count_items=True)
    assert status.state == "bad" and "has 4 items, expected 5" in status.detail
    _set5(tmp_path, n=5)
    assert dataset_status(load_dataset_card("set5"), tmp_path, count_items=True).state == "found"
    assert dataset_status(load_dataset_card("div2k"), tmp_path).state == "missing"
    assert dataset_status(load_dataset_card("photos"), tmp_path).state == "embedded"


def test_partial_status_and_split_specific_layout(tmp_path):
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta"):
        (tmp_path / "cifar-10-batches-py").mkdir(exist_ok=True)
        (tmp_path / "cifar-10-batches-py" / name).write_bytes(b"")
    status = dataset_status(load_dataset_card("cifar10"), tmp_path)
    assert status.state == "partial" and "train-zip" in status.detail
    with pytest.raises(BenchError, match=r"missing .*edm/cifar10-32x32\.zip"):
        open_dataset("cifar10", "train-zip", tmp_path)


def test_aggregate_and_embedded_cards():
    agg = load_dataset_card("instruct-avg5")
    assert agg.members == ["dolly", "self-inst", "vicuna", "sni", "unni"]
    with pytest.raises(BenchError, match="aggregate of dolly"):
        open_dataset(agg, "eval", "/nonexistent")
    toy = open_dataset("instruct-toy", "valid")
    assert len(toy) == load_dataset_card("instruct-toy").splits["valid"].count


def test_unknown_names_suggest_close_matches():
    with pytest.raises(UnknownName, match="Did you mean 'cifar10'"):
        load_dataset_card("cifar-10")
    with pytest.raises(UnknownName, match="split of dataset set5"):
        load_dataset_card("set5").split("train")


GOOD = """name: {name}
title: t
task: denoising
format: image-flat
source: https://example.org
license: x
papers: [lipt]
splits:
  test: {{count: 3, count_tag: M, args: {{root: a}}}}
layout: [a/]
get: copy it
"""


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("format: image-flat", "format: tarball"), "field format"),
    (lambda t: t.replace("papers: [lipt]", "papers: [not-a-paper]"), "unknown paper slug"),
    (lambda t: t.replace("count_tag: M, ", ""), "count_tag"),
    (lambda t: t.replace("layout: [a/]", "layout: []"), "needs its layout"),
    (lambda t: t.replace("layout: [a/]", "layout: [/abs/path]"), "relative to --data-root"),
    (lambda t: t + "smoke: true\n", "needs format: smoke and a builder"),
    (lambda t: t + "colour: blue\n", "field colour"),
    (lambda t: t.replace("name: mycard", "name: other"), "differs from the file name"),
    (lambda t: "- a list\n", "top level must be a mapping"),
])
def test_malformed_cards_give_one_line_naming_file_and_field(tmp_path, edit, message):
    path = tmp_path / "mycard.yaml"
    path.write_text(edit(GOOD.format(name="mycard")))
    with pytest.raises(BenchError) as err:
        load_card_file(path)
    assert message in str(err.value) and "mycard.yaml" in str(err.value) and "\n" not in str(err.value)


def test_cards_directory_can_be_moved(tmp_path, monkeypatch):
    (tmp_path / "mycard.yaml").write_text(GOOD.format(name="mycard"))
    monkeypatch.setenv("BENCH_DATASETS_DIR", str(tmp_path))
    assert [c.name for c in all_dataset_cards()] == ["mycard"]


def test_archive_checksums_are_verified_when_present(tmp_path):
    import hashlib

    payload = b"pretend archive"
    md5 = hashlib.md5(payload).hexdigest()
    text = GOOD.format(name="mycard") + (
        "files:\n"
        f"  - {{file: a.tar, role: archive, url: 'https://example.org/a.tar', tag: M, md5: '{md5}'}}\n"
        f"  - {{file: b.tar, role: archive, url: null, tag: M, sha256: '{'0' * 64}'}}\n")
    (tmp_path / "mycard.yaml").write_text(text)
    card = load_card_file(tmp_path / "mycard.yaml")
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    assert verify_files(card, data) == []  # archives absent: nothing to check
    (data / "a.tar").write_bytes(payload)
    assert verify_files(card, data) == ["a.tar"]
    (data / "b.tar").write_bytes(payload)
    with pytest.raises(BenchError) as err:
        verify_files(card, data)
    msg = str(err.value)
    assert "b.tar has sha256 " + hashlib.sha256(payload).hexdigest() in msg and "\n" not in msg
    status = dataset_status(card, data, verify_checksums=True)
    assert status.state == "bad" and "b.tar" in status.detail
