"""U-DiT (NeurIPS 2024): U-shaped diffusion transformers with token downsampling."""
