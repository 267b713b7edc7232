"""Lightweight super-resolution baselines (SwinIR-light, ELAN-light, EDSR-baseline, IMDN, CARN).

One module per model; each exposes ``build(scale, variant=...)``, its config table ``VARIANTS`` and the
parameter counts its paper publishes (``PUBLISHED_PARAMS``). Importing this package does not import torch.
"""
