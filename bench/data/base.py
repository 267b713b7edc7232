"""What every loader shares: a fixed item index, lazy per-item loading, rank sharding and a fingerprint.

A loader builds a sorted index of its items (paths, offsets, ids: never pixels) when it is created, and reads
one item from disk in `__getitem__`. It is therefore a map-style dataset that a torch `DataLoader` can use
directly, and `iter_shard(rank, world_size)` streams the items of one rank: item i goes to rank
i % world_size, so the union over ranks is every item exactly once and the split does not depend on timing.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bench.assets import file_digest
from bench.registry import BenchError


def shard_indices(n: int, rank: int = 0, world_size: int = 1) -> range:
    """Indices of the items that belong to `rank` out of `world_size` ranks (i % world_size == rank)."""
    if world_size < 1:
        raise BenchError(f"world_size must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise BenchError(f"rank must be in [0, {world_size - 1}], got {rank}")
    return range(rank, n, world_size)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:  # a file outside the root (e.g. an absolute path in an index file)
        return path.as_posix()


def file_list_fingerprint(root: Path, files: Iterable[Path]) -> str:
    """sha256 over the sorted "relative path <TAB> size in bytes" lines of `files`.

    Cheap (one stat per file) and sensitive to any added, removed, renamed or resized file; used for large
    datasets where hashing every byte would take hours.
    """
    lines = sorted(f"{_relative(Path(f), root)}\t{Path(f).stat().st_size}\n" for f in files)
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8"))
    return "sha256:" + digest.hexdigest()


def content_fingerprint(chunks: Iterable[tuple[str, bytes]]) -> str:
    """sha256 over (name, content) pairs in name order; for small sets and in-memory data."""
    digest = hashlib.sha256()
    for name, data in sorted(chunks, key=lambda c: c[0]):
        digest.update(name.encode("utf-8") + b"\0" + hashlib.sha256(data).digest())
    return "sha256:" + digest.hexdigest()


def sha256_file(path: Path) -> str:
    return file_digest(path, "sha256")


def md5_file(path: Path) -> str:
    return file_digest(path, "md5")


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise BenchError(f"{what} not found: {path} (see `bench assets`)")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise BenchError(f"{what} not found: {path} (see `bench assets`)")
    return path


class FirstN:
    """The first ``n`` items of an indexed dataset (a DIV2K subset at small scale, a rehearsal's test images); its
    fingerprint names the cut, so a subset never passes for the whole set."""

    def __init__(self, source: Any, n: int):
        self.source, self.n = source, min(int(n), len(source))

    def __len__(self) -> int:
        return self.n

    def fingerprint(self) -> str:
        return f"{self.source.fingerprint()}[:{self.n}]"

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < self.n:
            raise IndexError(index)
        return self.source[index]


class IndexedDataset:
    """Base class: subclasses set `self.name`, build their index in `__init__`, and implement
    `__len__`, `load(i)` and `_fingerprint()`."""

    name: str = "dataset"

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, index: int) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fingerprint(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{self.name}: index {index} out of range for {n} items")
        index = index % n
        item = self.load(index)
        item["index"] = index
        return item

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.iter_shard(0, 1)

    def shard(self, rank: int = 0, world_size: int = 1) -> range:
        return shard_indices(len(self), rank, world_size)

    def iter_shard(self, rank: int = 0, world_size: int = 1) -> Iterator[dict[str, Any]]:
        """Stream this rank's items one at a time (nothing beyond the current item is held in memory)."""
        for i in self.shard(rank, world_size):
            yield self[i]

    def fingerprint(self) -> str:
        """Identity of the data this loader reads, for run records (format-specific, see subclasses)."""
        if not hasattr(self, "_fingerprint_cache"):
            self._fingerprint_cache = self._fingerprint()
        return self._fingerprint_cache

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, items={len(self)})"


def _value_bytes(value: Any) -> bytes:
    import numpy as np

    if isinstance(value, np.ndarray):
        return f"{value.dtype}{value.shape}".encode() + np.ascontiguousarray(value).tobytes()
    return repr(value).encode("utf-8")


class InMemoryDataset(IndexedDataset):
    """Items already in memory (the embedded smoke sets). Each read returns copies, so a caller that edits an
    image in place cannot change the cached set; the fingerprint hashes every value."""

    def __init__(self, name: str, items: list[dict[str, Any]], **attrs: Any):
        self.name = name
        self.items = items
        for key, value in attrs.items():
            setattr(self, key, value)

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> dict[str, Any]:
        import copy

        return copy.deepcopy(self.items[index])

    def _fingerprint(self) -> str:
        chunks = []
        for i, item in enumerate(self.items):
            for key in sorted(item):
                chunks.append((f"{i:08d}/{key}", _value_bytes(item[key])))
        return content_fingerprint(chunks)
