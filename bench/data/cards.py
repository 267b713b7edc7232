"""Dataset cards (datasets/<name>.yaml): schema, loading, and the on-disk layout check.

A card says what a dataset is (task, official source, license, which papers use it), how it sits under
`--data-root` (`layout`: the relative paths that must exist; a trailing "/" marks a folder), which loader
format reads it and with what arguments per split, how many items each split must hold, and the protocol
facts that change numbers (MATLAB bicubic LR, Y-channel evaluation, reference statistics). Every fact keeps
the provenance tag of ../shared/papers (P, F, R, V, S, M, B, I).

This module must stay torch-free: `bench list` and `bench assets` import it.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bench.cards import load_yaml_model
from bench.registry import BenchError, UnknownName, unknown_name_message

Tag = Literal["P", "F", "R", "V", "S", "M", "B", "I"]

# Loader formats; bench.data.formats maps each to its implementation (a test keeps the two in sync).
# "smoke" marks embedded sets (built in memory); "aggregate" a reporting column over other cards (e.g. the
# mean over MGSR's five instruction sets), which has no files of its own and no loader.
FORMATS = ("image-folder", "imagenet-folder", "image-flat", "edm-zip", "cifar10-python", "paired-sr",
           "paired-folder", "coco-json", "voc-xml", "instruction-jsonl", "forensics-folder", "forensics-json",
           "smoke", "aggregate")
Format = Literal["image-folder", "imagenet-folder", "image-flat", "edm-zip", "cifar10-python", "paired-sr",
                 "paired-folder", "coco-json", "voc-xml", "instruction-jsonl", "forensics-folder",
                 "forensics-json", "smoke", "aggregate"]

Task = Literal["class-conditional-generation", "unconditional-generation", "super-resolution",
               "real-world-super-resolution", "denoising", "jpeg-artifact-removal", "deraining", "deblurring",
               "dehazing", "desnowing", "face-restoration", "object-detection", "instruction-following",
               "manipulation-detection"]

# Split arguments that are paths; `open_dataset` resolves them against --data-root.
PATH_ARGS = ("root", "path", "ann_file", "images_dir", "devkit", "index")

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_relative(layout: list[str]) -> list[str]:
    for p in layout:
        if p.startswith("/") or ".." in Path(p).parts:
            raise ValueError(f"layout path {p!r} must be relative to --data-root")
    return layout


class SplitSpec(Strict):
    count: int | None = Field(description="expected number of items (images, pairs, records); null = unknown")
    count_tag: Tag | None = Field(None, description="provenance of the count")
    format: Format | None = Field(None, description="overrides the card's format for this split")
    layout: list[str] = Field(default_factory=list, description="extra paths only this split needs")
    args: dict[str, Any] = Field(default_factory=dict,
                                 description="loader arguments; path arguments are relative to --data-root")
    note: str = ""

    @field_validator("layout")
    @classmethod
    def _relative_paths(cls, layout: list[str]) -> list[str]:
        return _check_relative(layout)

    @model_validator(mode="after")
    def _count_has_tag(self) -> SplitSpec:
        if self.count is not None and self.count_tag is None:
            raise ValueError("a split count needs a count_tag saying where the number comes from")
        return self


class FileRef(Strict):
    """An archive, reference statistics file or split list that belongs to the dataset."""

    file: str = Field(description="path relative to --data-root (or the archive's own name)")
    role: Literal["archive", "reference-stats", "annotations", "split-list"]
    url: str | None
    md5: str | None = None
    sha256: str | None = None
    tag: Tag
    note: str = ""

    @field_validator("md5", "sha256")
    @classmethod
    def _hex_digest(cls, value: str | None, info) -> str | None:
        length = {"md5": 32, "sha256": 64}[info.field_name]
        if value is not None and not re.fullmatch(rf"[0-9a-fA-F]{{{length}}}", value):
            raise ValueError(f"{info.field_name} must be {length} hex digits (quote it in YAML)")
        return value


class DatasetCard(Strict):
    name: str
    title: str
    task: Task
    format: Format
    smoke: bool = False
    builder: str | None = Field(None, description="embedded sets: lazy 'module:attr' that opens a split")
    members: list[str] = Field(default_factory=list, description="aggregate cards: the cards averaged over")
    source: str | None = Field(description="official source URL (null for embedded sets)")
    license: str
    sha256: str | None = Field(None, description="sha256 of the archive or of the file list; null = not known")
    papers: list[str] = Field(default_factory=list, description="paper slugs using it")
    splits: dict[str, SplitSpec]
    layout: list[str] = Field(default_factory=list, description="paths under --data-root; trailing / = folder")
    files: list[FileRef] = Field(default_factory=list)
    protocol: dict[str, Any] = Field(default_factory=dict, description="evaluation/preparation facts")
    get: str = Field("", description="how to obtain the data, one line")
    provenance: list[str] = Field(default_factory=list, description="where the card's facts come from, tagged")
    notes: str = ""

    @field_validator("name")
    @classmethod
    def _slug(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(f"name {name!r} must be lower-case letters, digits and dashes")
        return name

    @field_validator("layout")
    @classmethod
    def _relative_paths(cls, layout: list[str]) -> list[str]:
        return _check_relative(layout)

    @field_validator("papers")
    @classmethod
    def _known_papers(cls, papers: list[str]) -> list[str]:
        from methods.manifest import PAPERS  # plain data, torch-free

        unknown = [p for p in papers if p not in PAPERS]
        if unknown:
            raise ValueError(f"unknown paper slug(s) {unknown}; known: {sorted(PAPERS)}")
        return papers

    @model_validator(mode="after")
    def _smoke_or_real(self) -> DatasetCard:
        if self.smoke:
            if self.format != "smoke" or not self.builder:
                raise ValueError("an embedded (smoke) card needs format: smoke and a builder")
            if self.layout or self.files:
                raise ValueError("an embedded (smoke) card has no layout or files: nothing is on disk")
        elif self.format == "aggregate":
            if not self.members or self.layout or self.files or self.builder:
                raise ValueError("an aggregate card lists its members and has no layout, files or builder")
        else:
            if self.format == "smoke" or self.builder:
                raise ValueError("only smoke: true cards may use format: smoke or a builder")
            if self.members:
                raise ValueError("only format: aggregate cards have members")
            if not self.layout:
                raise ValueError("a real dataset card needs its layout under --data-root")
            if not self.source or not self.get:
                raise ValueError("a real dataset card needs its official source and a 'get' line")
        if not self.splits:
            raise ValueError("a card needs at least one split")
        return self

    def split(self, name: str) -> SplitSpec:
        if name not in self.splits:
            raise UnknownName(unknown_name_message(f"split of dataset {self.name}", name, list(self.splits)))
        return self.splits[name]

    def split_format(self, name: str) -> str:
        return self.split(name).format or self.format


def datasets_dir() -> Path:
    """Where the cards live: $BENCH_DATASETS_DIR, else the repository's datasets/ folder."""
    env = os.environ.get("BENCH_DATASETS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "datasets"


def _card_names() -> list[str]:
    return sorted(p.stem for p in datasets_dir().glob("*.yaml"))


def load_card_file(path: Path) -> DatasetCard:
    """Read and validate one card; a bad file raises BenchError naming the file and the field."""
    card = load_yaml_model(path, DatasetCard, "dataset card")
    if card.name != path.stem:
        raise BenchError(f"malformed dataset card {path}: name {card.name!r} differs from the file name")
    return card


@lru_cache(maxsize=None)
def _load_cached(directory: str, name: str) -> DatasetCard:
    return load_card_file(Path(directory) / f"{name}.yaml")


def load_dataset_card(name: str) -> DatasetCard:
    names = _card_names()
    if name not in names:
        raise UnknownName(unknown_name_message("dataset", name, names))
    return _load_cached(str(datasets_dir()), name)


def all_dataset_cards() -> list[DatasetCard]:
    return [load_dataset_card(n) for n in _card_names()]


def _resolve_root(data_root: str | Path | None) -> Path:
    if data_root is None:
        env = os.environ.get("BENCH_DATA_ROOT")
        if not env:
            raise BenchError("no data root: pass --data-root DIR or set BENCH_DATA_ROOT (see `bench assets`)")
        data_root = env
    return Path(data_root).expanduser()


def check_layout(card: DatasetCard, data_root: str | Path, split: str | None = None) -> list[str]:
    """The layout paths missing under `data_root` (empty = all there; always empty for embedded sets):
    the card's common paths plus, when `split` is given, that split's own. A path ending in "/" must be a
    folder, any other a file."""
    if card.smoke:
        return []
    if card.format == "aggregate":
        return [p for m in card.members for p in check_layout(load_dataset_card(m), data_root)]
    root = Path(data_root).expanduser()
    wanted = list(card.layout) + (list(card.split(split).layout) if split is not None else [])
    missing = []
    for rel in wanted:
        path = root / rel
        ok = path.is_dir() if rel.endswith("/") else path.is_file()
        if not ok:
            missing.append(rel)
    return missing


def require_layout(card: DatasetCard, data_root: str | Path | None, split: str | None = None) -> Path:
    """Return the data root, or raise ONE line naming the first missing path, the dataset and how to get it."""
    if card.smoke:
        return Path(".")
    root = _resolve_root(data_root)
    if not root.is_dir():
        raise BenchError(f"data root {root} does not exist (dataset {card.name!r}; see `bench assets`)")
    missing = check_layout(card, root, split)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise BenchError(f"dataset {card.name!r}: missing {root / missing[0]}{more}; get it: {card.get} "
                         f"(datasets/{card.name}.yaml, `bench assets`)")
    return root


def verify_files(card: DatasetCard, data_root: str | Path) -> list[str]:
    """Check every file of `card.files` that is present under `data_root` against its md5/sha256; raise ONE
    line on the first mismatch. Returns the files that were checked (absent files are skipped: archives are
    usually deleted after extraction)."""
    from bench.data.base import md5_file, sha256_file  # hashlib only, still torch-free

    root = Path(data_root).expanduser()
    checked = []
    for ref in card.files:
        path = root / ref.file
        if not path.is_file() or not (ref.md5 or ref.sha256):
            continue
        for algo, want, fn in (("sha256", ref.sha256, sha256_file), ("md5", ref.md5, md5_file)):
            if want:
                got = fn(path)
                if got != want.lower():
                    raise BenchError(f"dataset {card.name!r}: {path} has {algo} {got}, the card expects {want} "
                                     f"(corrupt or different download; get it: {ref.url or card.get})")
        checked.append(ref.file)
    return checked


@dataclass(frozen=True)
class DatasetStatus:
    name: str
    state: Literal["embedded", "found", "partial", "missing", "bad"]
    detail: str = ""


def dataset_status(card: DatasetCard, data_root: str | Path | None, count_items: bool = False,
                   verify_checksums: bool = False) -> DatasetStatus:
    """found / partial (some splits' own files absent) / missing / bad, for `bench assets`.

    With `count_items`, every split with an expected count is opened and counted (a full file listing, so
    slow on ImageNet-size sets); a mismatch is "bad". With `verify_checksums`, archives present under the
    data root are hashed against the card (minutes for ImageNet-size archives)."""
    if card.smoke:
        return DatasetStatus(card.name, "embedded", "built from data shipped in installed packages")
    if card.format == "aggregate":
        states = [dataset_status(load_dataset_card(m), data_root, count_items, verify_checksums)
                  for m in card.members]
        bad = [s for s in states if s.state != "found"]
        if not bad:
            return DatasetStatus(card.name, "found", f"all of {', '.join(card.members)}")
        worst = "missing" if any(s.state == "missing" for s in bad) else bad[0].state
        return DatasetStatus(card.name, worst, "; ".join(f"{s.name}: {s.state}" for s in bad))
    try:
        root = _resolve_root(data_root)
    except BenchError as exc:
        return DatasetStatus(card.name, "missing", str(exc))
    missing = check_layout(card, root)
    if missing:
        return DatasetStatus(card.name, "missing", f"{len(missing)} of {len(card.layout)} paths missing, "
                                                   f"first: {missing[0]}; get it: {card.get}")
    absent = [name for name in card.splits if check_layout(card, root, name)]
    if verify_checksums:
        try:
            verify_files(card, root)
        except BenchError as exc:
            return DatasetStatus(card.name, "bad", str(exc))
    if count_items:
        from bench.data.formats import open_dataset  # loaders are only imported when counting

        for split_name, spec in card.splits.items():
            if spec.count is None or split_name in absent:
                continue
            overrides = {}
            if card.split_format(split_name) == "paired-sr" and "scale" not in spec.args:
                # The SR factor is a run-time choice; every factor has the same pairs, count the first.
                overrides["scale"] = card.protocol.get("scales", [2])[0]
            try:
                n = len(open_dataset(card, split_name, root, **overrides))
            except BenchError as exc:
                return DatasetStatus(card.name, "bad", str(exc))
            if n != spec.count:
                return DatasetStatus(card.name, "bad", f"split {split_name!r} has {n} items, expected "
                                                       f"{spec.count} [{spec.count_tag}]")
    if absent:
        return DatasetStatus(card.name, "partial", f"{root}; splits without their files: {', '.join(absent)}")
    return DatasetStatus(card.name, "found", str(root))
