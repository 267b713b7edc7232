"""The metric adapters' access to the project asset layer (bench.assets): files declared in ./assets.yaml."""
from __future__ import annotations

from pathlib import Path

from bench import assets as project_assets

cache_dir = project_assets.cache_dir
require = project_assets.require
sha256_of = project_assets.verified_sha256


def asset_path(name: str) -> Path:
    """Where an asset lives (present or not)."""
    return project_assets.declared()[name].path
