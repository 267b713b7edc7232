"""The one result type every metric dialect returns, plus small input helpers shared by the adapters.

Torch-free on purpose: run records, tables and the CLI handle results without importing torch.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any
from collections.abc import Sequence

from bench.registry import BenchError


@dataclass
class MetricResult:
    """One evaluated dialect.

    name:     the dialect (a key of bench.metrics.manifest.DIALECTS, or a clearly non-standard label such as
              ``fd@torch-fidelity:<extractor>``; never a standard name for a different protocol)
    value:    the aggregate number, in the dialect's unit
    n:        how many items it aggregates (images, samples, detections' images, prompts)
    per_item: one value per item where the aggregate is their mean (so runs can be re-aggregated); None where
              the metric does not decompose (FID, mAP)
    protocol: everything that fixes the number (colour space, crop, thresholds, library versions, weights)
    extra:    everything else worth keeping (per-image rows, std over subsets, classifier accuracy, ...)
    """

    name: str
    value: float
    n: int
    per_item: list[float] | None = None
    protocol: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetricResult:
        return cls(**data)

    def __str__(self) -> str:
        return f"{self.name} = {self.value:.6g} (n={self.n})"


def mean_of(values: Sequence[float]) -> float:
    """Plain arithmetic mean (inf stays inf: a perfect PSNR pair is reported, not hidden)."""
    if len(values) == 0:
        raise BenchError("cannot average an empty list of per-item values")
    return math.fsum(values) / len(values)


def library_version(distribution: str) -> str | None:
    """Installed version of a distribution, for the protocol record (None if not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def check_same_length(preds: Sequence[Any], targets: Sequence[Any], what: str = "items") -> int:
    if len(preds) != len(targets):
        raise BenchError(f"got {len(preds)} predicted {what} but {len(targets)} reference {what}")
    if len(preds) == 0:
        raise BenchError(f"no {what} to score")
    return len(preds)
