"""The metric adapters' view of the project asset layer (bench.assets) for the files in ./assets.yaml.

bench.assets finds every assets.yaml under bench/, resolves files in $BENCH_ASSETS and checks full sha256
digests. This module adds the torch.hub name-prefix check (``sha256_prefix`` in assets.yaml) for weights whose
full digest no source gives. Torch-free.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from bench import assets as project_assets
from bench.registry import BenchError

ASSETS_YAML = Path(__file__).with_name("assets.yaml")


def cache_dir() -> Path:
    return project_assets.cache_dir()


@lru_cache(maxsize=1)
def metric_assets() -> dict[str, dict[str, Any]]:
    """name -> the raw entry of this folder's assets.yaml (filename, sha256, sha256_prefix, source_url, how)."""
    import yaml

    return {entry["name"]: entry for entry in yaml.safe_load(ASSETS_YAML.read_text()) or []}


def asset_path(name: str) -> Path:
    """Where an asset lives (present or not)."""
    return project_assets.declared()[name].path


def sha256_of(path: Path) -> str:
    """sha256 of a file, memoised by bench.assets beside the file (by size and mtime): weights are hashed once."""
    return project_assets._verified_sha256(Path(path))


def require(name: str) -> Path:
    """Path of a present, checked asset, or bench.assets' one-line BenchError naming file, sha256 and source."""
    path = Path(project_assets.require(name))
    prefix = metric_assets().get(name, {}).get("sha256_prefix")
    if prefix:
        actual = sha256_of(path)
        if not actual.startswith(prefix):
            raise BenchError(f"asset {name} at {path} has sha256 {actual}, but its published name promises one "
                             f"starting with {prefix}: replace it ({metric_assets()[name]['how']})")
    return path
