"""Where a number came from: code version, libraries, hardware. Recorded in every result.json."""
from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from typing import Any

from bench import __version__
from bench.papers import REPO_ROOT

TRACKED_LIBRARIES = ("torch", "torchvision", "torch-fidelity", "pyiqa", "pycocotools", "lm-eval", "numpy",
                     "scipy", "scikit-image", "transformers", "torchmetrics", "pillow")


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@lru_cache(maxsize=None)
def git_state() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "machine": platform.machine(),
                            "python": platform.python_version()}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_count"] = torch.cuda.device_count()
    except ImportError:
        pass
    return info


def environment_key(hw: dict[str, Any], libs: dict[str, Any]) -> str:
    """Two records with the same key were made on the same CPU kind with the same library versions:
    a deterministic smoke run must then agree bit for bit (or nearly)."""
    parts = [str(hw.get("cpu")), str(hw.get("gpu", "")), str(hw.get("torch_threads"))]
    parts += [f"{k}={v}" for k, v in sorted(libs.items())]
    return "|".join(parts)


def collect() -> dict[str, Any]:
    hw, libs = hardware(), library_versions()
    return {"bench_version": __version__, "git": git_state(), "libraries": libs, "hardware": hw,
            "environment_key": environment_key(hw, libs)}
