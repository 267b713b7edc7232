"""Sanity floors: did a model learn its task at all, before anyone compares it with another?

A comparison between two models that have not learned their task says nothing about the method. So every
recipe records, beside its metrics, one or more *sanity metrics* against a trivial baseline of the task:

- class-conditional generation: accuracy of bench's digits classifier on class-conditional samples
  (the trivial baseline is chance, 0.1);
- super-resolution / restoration: PSNR gain over bicubic (or over the degraded input);
- semi-supervised detection: mAP gain over the supervised-only model (and, for that model, over a trivial one);
- LLM distillation: ROUGE-L gain over the untrained student; the teacher's margin over the scratch student.

A sanity metric is an ordinary metric record (so the gate guards it and tables show it) with one more key,
``floor``: ``{"value": <threshold>, "trivial": <what the trivial baseline is>, "trivial_value": <its score>,
"note": <why this threshold>}``. Every sanity dialect is "higher is better" and a seed clears the floor when
its value is strictly above ``floor.value``. A run *cleared its floor* when every seed of every sanity record
did; otherwise it "did not learn", and no claim is decided on it.

Plain Python (no torch): tables and claims import it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PASSED = "passed"
FAILED = "did not learn"
UNKNOWN = "no floor recorded"


def sanity_record(metric: str, value: float, n: int, *, floor: float, trivial: str,
                  trivial_value: float | None = None, note: str = "", setting: dict[str, Any] | None = None,
                  protocol: dict[str, Any] | None = None) -> dict[str, Any]:
    """A metric record carrying its floor (one seed). ``metric`` must be a sanity dialect of the manifest."""
    from bench.metrics.manifest import DIALECTS

    dialect = DIALECTS.get(metric)
    if dialect is None or dialect.get("family") != "sanity":
        raise ValueError(f"{metric!r} is not a sanity dialect (bench/metrics/manifest.py, family 'sanity')")
    return {"metric": metric, "value": float(value), "n": int(n), "setting": dict(setting or {}),
            "protocol": dict(protocol or {}),
            "floor": {"value": float(floor), "trivial": trivial,
                      "trivial_value": None if trivial_value is None else float(trivial_value), "note": note}}


def is_sanity(metric_record: dict[str, Any]) -> bool:
    return isinstance(metric_record.get("floor"), dict)


@dataclass
class Sanity:
    """A run's standing against its floors."""

    status: str  # PASSED, FAILED or UNKNOWN
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def detail(self) -> str:
        if not self.checks:
            return "no sanity floor recorded"
        parts = []
        for c in self.checks:
            where = f" ({c['setting']})" if c["setting"] else ""
            parts.append(f"{c['metric']}{where} {c['value']:.4g} vs floor {c['floor']:.4g} ({c['trivial']})"
                         + (f", below on seed {','.join(c['below'])}" if c["below"] else ""))
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "checks": self.checks}


def run_sanity(run: dict[str, Any]) -> Sanity:
    """The sanity standing of a run record (result.json): every seed of every sanity metric above its floor."""
    from bench.store import setting_key

    checks = []
    for m in run.get("metrics", []):
        if not is_sanity(m):
            continue
        per_seed = {str(k): float(v) for k, v in (m.get("per_seed") or {"0": m["value"]}).items()}
        floor = float(m["floor"]["value"])
        below = {seed: v for seed, v in per_seed.items() if not v > floor}  # NaN is never above the floor
        checks.append({"metric": m["metric"], "setting": setting_key(m.get("setting", {})), "value": float(m["value"]),
                       "per_seed": per_seed, "floor": floor, "below": below,
                       "trivial": m["floor"].get("trivial", ""), "trivial_value": m["floor"].get("trivial_value"),
                       "passed": not below})
    if not checks:
        return Sanity(UNKNOWN, [])
    return Sanity(PASSED if all(c["passed"] for c in checks) else FAILED, checks)
