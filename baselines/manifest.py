"""Baseline implementations, by registered name (lazy "module:attr" targets)."""
from __future__ import annotations

BASELINES: dict[str, dict[str, str]] = {
    "dit": {"target": "baselines.dit.model:dit", "doc": "DiT-S/B/L/XL with patch 2/4/8 (adaLN-Zero)"},
    "swinir-light": {"target": "baselines.sr.swinir_light:build", "doc": "SwinIR-light (lightweight SR)"},
    "elan-light": {"target": "baselines.sr.elan_light:build", "doc": "ELAN-light (lightweight SR)"},
    "edsr-baseline": {"target": "baselines.sr.edsr_baseline:build", "doc": "EDSR-baseline (16 blocks, 64 ch)"},
    "imdn": {"target": "baselines.sr.imdn:build", "doc": "IMDN (lightweight SR)"},
}
