"""Access to the metric weight files declared in bench/metrics/assets.yaml.

The project-wide asset layer is ``bench.assets`` (``require(name) -> Path``, ``cache_dir() -> Path``). While that
module does not exist yet this file answers with the same contract, reading only this folder's assets.yaml and
looking for ``<cache_dir>/assets/<filename>``, so the metric adapters and their tests work either way. Once
``bench.assets`` exists it is always preferred. Torch-free.
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from bench.registry import BenchError

ASSETS_YAML = Path(__file__).with_name("assets.yaml")


def _project_asset_layer() -> Any | None:
    try:
        import bench.assets as layer
    except ModuleNotFoundError as exc:  # only "the module is not written yet" falls back, real errors surface
        if exc.name != "bench.assets":
            raise
        return None
    return layer


def cache_dir() -> Path:
    layer = _project_asset_layer()
    if layer is not None:
        return Path(layer.cache_dir())
    return Path(os.environ.get("BENCH_CACHE") or Path.home() / ".cache" / "bench")


@lru_cache(maxsize=1)
def metric_assets() -> dict[str, dict[str, Any]]:
    """name -> {filename, sha256, sha256_prefix, source_url, how, used_by} from assets.yaml."""
    import yaml

    entries = yaml.safe_load(ASSETS_YAML.read_text()) or []
    return {entry["name"]: entry for entry in entries}


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


_VERIFIED: dict[tuple[str, int, int], str] = {}


def _verified_sha256(path: Path) -> str:
    """sha256 of a file, hashed once per process per (path, size, mtime)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256_of(path)
    return _VERIFIED[key]


def missing_message(name: str, where: Path) -> str:
    spec = metric_assets()[name]
    sha = spec.get("sha256") or (f"unknown (name prefix {spec['sha256_prefix']})" if spec.get("sha256_prefix")
                                 else "unknown")
    return (f"missing asset {name!r}: file {spec['filename']} (sha256 {sha}) not found at {where}; "
            f"get it from {spec['source_url']} ({spec['how']})")


def require(name: str) -> Path:
    """Path of a present, checksum-verified asset, or a one-line BenchError naming the file and its source."""
    layer = _project_asset_layer()
    if layer is not None:
        return Path(layer.require(name))
    specs = metric_assets()
    if name not in specs:
        raise BenchError(f"unknown metric asset {name!r}; known: {', '.join(sorted(specs))}")
    spec = specs[name]
    path = cache_dir() / "assets" / spec["filename"]
    if not path.is_file():
        raise BenchError(missing_message(name, path))
    actual = _verified_sha256(path)
    if spec.get("sha256") and actual != spec["sha256"]:
        raise BenchError(f"asset {name!r} at {path} has sha256 {actual}, expected {spec['sha256']}: "
                         f"replace it ({spec['how']})")
    if spec.get("sha256_prefix") and not actual.startswith(spec["sha256_prefix"]):
        raise BenchError(f"asset {name!r} at {path} has sha256 {actual}, expected one starting with "
                         f"{spec['sha256_prefix']}: replace it ({spec['how']})")
    return path
