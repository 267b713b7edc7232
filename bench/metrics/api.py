"""``compute(dialect, **inputs)``: evaluate any metric dialect by name, resolving its lazy manifest target.

Torch-free until a target is loaded. Bad names answer with close matches; bad arguments with the signature.
"""
from __future__ import annotations

import inspect
from typing import Any
from collections.abc import Callable

from bench.metrics.base import MetricResult
from bench.metrics.manifest import DIALECTS
from bench.registry import BenchError, UnknownName, load_target, unknown_name_message


def dialect_spec(dialect: str) -> dict[str, Any]:
    if dialect not in DIALECTS:
        raise UnknownName(unknown_name_message("metric dialect", dialect, list(DIALECTS)))
    return DIALECTS[dialect]


def _bind(dialect: str, fn: Callable[..., Any], inputs: dict[str, Any]) -> None:
    try:
        inspect.signature(fn).bind(**inputs)
    except TypeError as exc:
        raise BenchError(f"{dialect}: {exc}; it takes {fn.__name__}{inspect.signature(fn)}") from None


def _cost(dialect: str, fn: Callable[..., Any], spec: dict[str, Any], inputs: dict[str, Any]) -> MetricResult:
    """params_m / gmacs / latency_ms through bench.profile, in the manifest's units."""
    if dialect == "params_m":
        _bind(dialect, fn, inputs)
        value, extra = fn(**inputs) / 1e6, {}
    elif dialect == "gmacs":
        model, example = inputs.get("model"), inputs.get("inputs")
        if model is None or not isinstance(example, (tuple, list)):
            raise BenchError("gmacs: pass model=<nn.Module> and inputs=(tensor, ...) for one forward")
        value, extra = fn(model, *example) / 1e9, {}
    else:  # latency_ms
        _bind(dialect, fn, inputs)
        timing = fn(**inputs)
        value, extra = timing["median_ms"], timing
    return MetricResult(name=dialect, value=float(value), n=1, per_item=None,
                        protocol={"dialect": spec["protocol"]}, extra=extra)


def compute(dialect: str, **inputs: Any) -> MetricResult:
    """Evaluate ``dialect`` on ``inputs`` (the keyword arguments of its implementation)."""
    spec = dialect_spec(dialect)
    if spec.get("target") is None:
        raise BenchError(f"{dialect!r} is only reported by papers ({spec['protocol']}); bench cannot compute it")
    fn = load_target(spec["target"])
    if spec.get("family") == "cost":
        return _cost(dialect, fn, spec, inputs)
    _bind(dialect, fn, inputs)
    result = fn(**inputs)
    if not isinstance(result, MetricResult):
        raise BenchError(f"{dialect}: implementation {spec['target']} returned {type(result).__name__}, "
                         f"not a MetricResult")
    result.protocol.setdefault("dialect", spec["protocol"])
    return result
