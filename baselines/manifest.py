"""Baseline implementations, by registered name (lazy "module:attr" targets)."""
from __future__ import annotations

BASELINES: dict[str, dict[str, str]] = {}
