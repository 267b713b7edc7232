"""LIPT (Latency-aware Image Processing Transformer): model, re-parameterisation and NVSM-SA."""
