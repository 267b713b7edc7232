"""Format name -> loader, and `open_dataset(card, split, data_root)`: the one way a run opens data.

Loader targets are lazy "module:attr" strings, so naming a format imports nothing heavy.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.data.cards import PATH_ARGS, DatasetCard, load_dataset_card, require_layout
from bench.registry import BenchError, load_target

LOADERS: dict[str, str] = {
    "image-folder": "bench.data.folders:ImageFolder",
    "imagenet-folder": "bench.data.folders:ImageNetFolder",
    "image-flat": "bench.data.folders:FlatImageFolder",
    "paired-sr": "bench.data.folders:PairedSRFolder",
    "paired-folder": "bench.data.folders:PairedFolder",
    "forensics-folder": "bench.data.folders:ForensicsFolder",
    "forensics-json": "bench.data.folders:ForensicsJson",
    "edm-zip": "bench.data.archives:EdmZip",
    "cifar10-python": "bench.data.archives:Cifar10Batches",
    "coco-json": "bench.data.coco:CocoDataset",
    "voc-xml": "bench.data.coco:VocDataset",
    "instruction-jsonl": "bench.data.instruct:InstructionJsonl",
}


def open_dataset(card: str | DatasetCard, split: str, data_root: str | Path | None = None,
                 **overrides: Any):
    """Open one split of a dataset as an `IndexedDataset`.

    Real datasets: the card's layout is checked first (one-line error naming the missing path and how to get
    it), then the split's loader arguments are merged with `overrides` and path arguments are resolved
    against `data_root`. Embedded sets: the card's builder is called with the split and `overrides`.
    """
    if isinstance(card, str):
        card = load_dataset_card(card)
    spec = card.split(split)
    args = {**spec.args, **overrides}
    if card.smoke:
        return load_target(card.builder)(split=split, **args)
    if card.format == "aggregate":
        raise BenchError(f"dataset {card.name!r} is an aggregate of {', '.join(card.members)}: open those instead")
    root = require_layout(card, data_root, split)
    for key in PATH_ARGS:
        if key in args and args[key] is not None:
            args[key] = str(root / str(args[key]))
    fmt = card.split_format(split)
    if fmt not in LOADERS:
        raise BenchError(f"dataset {card.name!r}: no loader for format {fmt!r}")
    loader = load_target(LOADERS[fmt])
    try:
        return loader(**args)
    except TypeError as exc:
        raise BenchError(f"dataset {card.name!r} split {split!r}: bad loader arguments for {fmt}: {exc}") from None
