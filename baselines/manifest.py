"""Baseline implementations, by registered name (lazy "module:attr" targets)."""
from __future__ import annotations

BASELINES: dict[str, dict[str, str]] = {
    "llm-sft": {"target": "baselines.llm_kd.objectives:SFT", "doc": "supervised fine-tuning"},
    "llm-kd": {"target": "baselines.llm_kd.objectives:KD", "doc": "word-level KD (forward KL)"},
    "llm-seqkd": {"target": "baselines.llm_kd.objectives:SeqKD", "doc": "SeqKD (teacher-generated responses)"},
    "llm-imitkd": {"target": "baselines.llm_kd.objectives:ImitKD", "doc": "ImitKD (student-generated responses)"},
    "llm-gkd": {"target": "baselines.llm_kd.objectives:GKD", "doc": "GKD (generalised JSD, on-policy)"},
    "llm-distillm": {"target": "baselines.llm_kd.distillm:DistiLLM", "doc": "DistiLLM (skew KL, adaptive off-policy)"},
    "llm-minillm": {"target": "baselines.llm_kd.minillm:MiniLLM", "doc": "MiniLLM (reverse KL by policy gradient)"},
    "edm": {"target": "baselines.edm.precond:EDMPrecond",
            "doc": "EDM VP/VE/iDDPM/EDM preconditioning over DDPM++/NCSN++/ADM U-Nets"},
    "ssod-supervised": {"target": "baselines.ssod.methods:SupervisedOnly",
                        "doc": "Faster R-CNN FPN on the labelled split only (SSOD burn-in)"},
    "unbiased-teacher": {"target": "baselines.ssod.methods:MeanTeacher",
                         "doc": "Unbiased Teacher (threshold 0.7, focal RoI loss, EMA teacher)"},
    "labelmatch": {"target": "baselines.ssod.methods:MeanTeacher",
                   "doc": "LabelMatch (adaptive thresholds, proposal self-assignment, mining)"},
    "dit": {"target": "baselines.dit.model:dit", "doc": "DiT-S/B/L/XL with patch 2/4/8 (adaLN-Zero)"},
    "swinir-light": {"target": "baselines.sr.swinir_light:build", "doc": "SwinIR-light (lightweight SR)"},
    "elan-light": {"target": "baselines.sr.elan_light:build", "doc": "ELAN-light (lightweight SR)"},
    "edsr-baseline": {"target": "baselines.sr.edsr_baseline:build", "doc": "EDSR-baseline (16 blocks, 64 ch)"},
    "imdn": {"target": "baselines.sr.imdn:build", "doc": "IMDN (lightweight SR)"},
    "carn": {"target": "baselines.sr.carn:build", "doc": "CARN (cascading residual network, lightweight SR)"},
}
