"""Metric dialects. Importing this package must stay torch-free: the implementations are loaded lazily."""
from __future__ import annotations

from typing import Any

from bench.metrics.base import MetricResult

__all__ = ["MetricResult", "compute"]


def compute(dialect: str, **inputs: Any) -> MetricResult:
    """Evaluate a metric dialect by name (see bench.metrics.manifest.DIALECTS); bench.metrics.api does the work."""
    from bench.metrics.api import compute as _compute

    return _compute(dialect, **inputs)
