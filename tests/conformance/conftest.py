"""Conformance tests run against private asset/cache folders: nothing is read from or written to the user's."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def private_bench_dirs(tmp_path_factory):
    """Empty $BENCH_ASSETS (so weight-gated metrics report missing files) and $BENCH_CACHE for the session.

    The digits classifier is trained once into this $BENCH_ASSETS and shared by the session's tests."""
    root = tmp_path_factory.mktemp("bench-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENCH_ASSETS", str(root / "assets"))
        patch.setenv("BENCH_CACHE", str(root / "cache"))
        yield root
