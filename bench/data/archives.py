"""Loaders for single-file dataset formats: EDM dataset zips and CIFAR-10 python batches."""
from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.base import IndexedDataset, require_dir, require_file
from bench.data.images import read_image_bytes
from bench.registry import BenchError


def _pil_extensions() -> set[str]:
    from PIL import Image

    Image.init()
    return set(Image.EXTENSION)


class EdmZip(IndexedDataset):
    """A dataset zip written by EDM's `dataset_tool.py`: images such as `00000/img00000000.png` and an
    optional `dataset.json` holding `{"labels": [[file, class], ...]}` (or `"labels": null`).

    As EDM's loader does: every member with an image extension PIL knows is an item, in sorted name order;
    labels come from dataset.json by file name. `num_classes` (e.g. 10 for CIFAR-10) makes an out-of-range
    label an error. The zip is opened lazily and per process, so the loader can be sent to workers.
    """

    def __init__(self, path: str | Path, num_classes: int | None = None, use_labels: bool = True,
                 name: str | None = None):
        self.path = require_file(Path(path), "EDM dataset zip")
        self.name = name or self.path.stem
        self._zip: zipfile.ZipFile | None = None
        try:
            with zipfile.ZipFile(self.path) as zf:
                infos = {i.filename: i for i in zf.infolist()}
                labels_json = zf.read("dataset.json") if "dataset.json" in infos else None
        except zipfile.BadZipFile:
            raise BenchError(f"not a valid zip file: {self.path}") from None
        exts = _pil_extensions()
        self.members = sorted(n for n in infos if Path(n).suffix.lower() in exts)
        if not self.members:
            raise BenchError(f"{self.path} holds no images")
        # For the fingerprint: names, sizes and CRC-32s recorded in the zip directory (no decompression).
        self._directory = [(n, infos[n].file_size, infos[n].CRC) for n in sorted(infos)]
        self.labels: np.ndarray | None = None
        if use_labels and labels_json is not None:
            self.labels = self._parse_labels(labels_json, num_classes)

    def _parse_labels(self, raw: bytes, num_classes: int | None) -> np.ndarray | None:
        try:
            labels = json.loads(raw)["labels"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise BenchError(f"{self.path}: dataset.json must be an object with a 'labels' list or null") from None
        if labels is None:
            return None
        by_name = {str(k).replace("\\", "/"): v for k, v in labels}
        out = []
        for member in self.members:
            if member not in by_name:
                raise BenchError(f"{self.path}: dataset.json has no label for {member}")
            value = by_name[member]
            if not isinstance(value, int) or value < 0 or (num_classes is not None and value >= num_classes):
                bound = f"[0, {num_classes - 1}]" if num_classes is not None else ">= 0"
                raise BenchError(f"{self.path}: label {value!r} of {member} is out of range {bound}")
            out.append(value)
        return np.asarray(out, dtype=np.int64)

    def _zipfile(self) -> zipfile.ZipFile:
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.path)
        return self._zip

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__, _zip=None)  # a ZipFile handle cannot cross process boundaries

    def __len__(self) -> int:
        return len(self.members)

    def load(self, index: int) -> dict[str, Any]:
        member = self.members[index]
        image = read_image_bytes(self._zipfile().read(member), f"{self.path}:{member}", mode=None)
        if image.ndim == 2:
            image = image[:, :, None]
        label = None if self.labels is None else int(self.labels[index])
        return {"image": image, "label": label, "path": member}

    def _fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name, size, crc in self._directory:
            digest.update(f"{name}\t{size}\t{crc:08x}\n".encode())
        return "sha256:" + digest.hexdigest()


CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR10_TEST = ["test_batch"]


def _load_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise BenchError(f"corrupt CIFAR-10 batch {path}: {exc}") from None


def _key(d: dict, name: str):
    return d[name.encode()] if name.encode() in d else d[name]


class Cifar10Batches(IndexedDataset):
    """CIFAR-10 "python version" (`cifar-10-batches-py/`): `data_batch_1..5` (train), `test_batch` (test),
    `batches.meta`. Each batch pickles `data` (N x 3072 uint8: the 1024 red, then green, then blue values of
    a row-major 32x32 image) and `labels`. Batches are read one at a time when first touched; only the
    label arrays stay in memory. Items: image HWC uint8 32x32x3, label 0..9.
    """

    def __init__(self, root: str | Path, split: str = "train"):
        self.root = require_dir(Path(root), "CIFAR-10 folder (cifar-10-batches-py)")
        if split not in ("train", "test"):
            raise BenchError(f"CIFAR-10 has splits 'train' and 'test', not {split!r}")
        self.name = f"cifar10-{split}"
        self.batch_files = [require_file(self.root / b, "CIFAR-10 batch")
                            for b in (CIFAR10_TRAIN if split == "train" else CIFAR10_TEST)]
        meta = _load_pickle(require_file(self.root / "batches.meta", "CIFAR-10 batches.meta"))
        self.classes = [n.decode() if isinstance(n, bytes) else n for n in _key(meta, "label_names")]
        labels, self._offsets = [], [0]
        for path in self.batch_files:
            batch = _load_pickle(path)  # read once to learn the labels; pixels are dropped right away
            data, y = _key(batch, "data"), np.asarray(_key(batch, "labels"), dtype=np.int64)
            if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != len(y):
                raise BenchError(f"corrupt CIFAR-10 batch {path}: data shape {data.shape}, {len(y)} labels")
            if len(y) and (y.min() < 0 or y.max() >= len(self.classes)):
                raise BenchError(f"corrupt CIFAR-10 batch {path}: labels outside [0, {len(self.classes) - 1}]")
            labels.append(y)
            self._offsets.append(self._offsets[-1] + len(y))
        self.labels = np.concatenate(labels)
        self._cached: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def _batch_pixels(self, b: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != b:
            data = _key(_load_pickle(self.batch_files[b]), "data")
            self._cached = (b, data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        return self._cached[1]

    def load(self, index: int) -> dict[str, Any]:
        b = int(np.searchsorted(self._offsets, index, side="right") - 1)
        image = np.ascontiguousarray(self._batch_pixels(b)[index - self._offsets[b]])
        return {"image": image, "label": int(self.labels[index])}

    def _fingerprint(self) -> str:
        # Small enough to hash every byte (about 180 MB at most): the batch files themselves.
        digest = hashlib.sha256()
        for path in self.batch_files:
            with open(path, "rb") as f:
                digest.update(path.name.encode() + b"\0" + hashlib.sha256(f.read()).digest())
        return "sha256:" + digest.hexdigest()
