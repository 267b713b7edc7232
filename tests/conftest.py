"""Test-wide settings: offline hubs, deterministic CPU, a private results store per test session."""
from __future__ import annotations

import os

# Hub look-ups otherwise retry for ~50 s before failing offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import _tv_cpu_shim  # noqa: E402,F401  (the .pth normally does this; importing it again is a no-op)
import pytest  # noqa: E402
from pathlib import Path  # noqa: E402


@pytest.fixture()
def store_root(tmp_path, monkeypatch):
    """An empty run store for one test (never the user's results/runs)."""
    root = tmp_path / "runs"
    monkeypatch.setenv("BENCH_RESULTS", str(root))
    return root


@pytest.fixture()
def smoke_store(store_root):
    """Where a test of a WHOLE default smoke reproduction finds its runs: a fresh store, except under CI, whose
    .ci/run reproduces every paper at smoke first (same commit, same specs) and points BENCH_SMOKE_STORE at that
    store; runner.execute then returns those complete runs instead of computing each smoke twice. The test's
    assertions are the same either way: they read the run records."""
    shared = os.environ.get("BENCH_SMOKE_STORE")
    return Path(shared) if shared and Path(shared).is_dir() else store_root


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread and one BLAS thread (scipy's sqrtm) for a module's tests: the smoke budgets
    are one thread's, and on a shared 2-core runner small ops are many times slower with contending threads."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)
