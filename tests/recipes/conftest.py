"""Shared by the CPU rehearsals of the small and paper scales (tests/recipes/test_rehearsal_*.py)."""
from __future__ import annotations

import json

import pytest


@pytest.fixture()
def bench_env(official, tmp_path, monkeypatch, store_root):
    """BENCH_ASSETS pointing at the test module's `official` fixture folder (its stand-in assets), a private
    cache and the test's run store; set in this process and returned for CLI calls."""
    env = {"BENCH_ASSETS": str(official / "assets"), "BENCH_CACHE": str(tmp_path / "cache"),
           "BENCH_RESULTS": str(store_root)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def table_cells(paper: str, env: dict[str, str], run_ids: set[str]) -> list[dict]:
    """The `bench table PAPER --all --format json` cells of the given runs."""
    from typer.testing import CliRunner

    from bench.cli import app

    table = CliRunner().invoke(app, ["table", paper, "--all", "--format", "json"], env=env)
    assert table.exit_code == 0, table.output
    return [c for c in json.loads(table.output)["cells"] if c.get("run_id") in run_ids]
