"""The Stable Diffusion VAE (stabilityai/sd-vae-ft-ema) in its official diffusers folder layout, tiny and random.

Layout (https://huggingface.co/stabilityai/sd-vae-ft-ema, what `huggingface-cli download` writes and
bench.diffusion.latents.load_sd_vae reads): ``config.json`` (diffusers AutoencoderKL config: the official
file's fields, class name and block types) and ``diffusion_pytorch_model.safetensors`` (parameter names as the
official file has them: ``encoder.down_blocks.0.resnets.0.conv1.weight``, ``quant_conv.weight``, ...).
The official widths (block_out_channels 128/256/512/512, 83.7 M parameters, 335 MB) would cost minutes of
CPU per 256x256 image, so the fixture keeps every structural choice (4 down/up blocks, hence the 8x
downsampling to 32x32x4 latents; 2 resnets per block; the mid-block attention; 4 latent channels) at width 8.
"""
from __future__ import annotations

from pathlib import Path

OFFICIAL_CONFIG = {  # config.json of stabilityai/sd-vae-ft-ema, except the widths (see the module docstring)
    "act_fn": "silu", "down_block_types": ["DownEncoderBlock2D"] * 4, "in_channels": 3, "latent_channels": 4,
    "layers_per_block": 2, "out_channels": 3, "sample_size": 256, "up_block_types": ["UpDecoderBlock2D"] * 4,
}
FIXTURE_WIDTHS = {"block_out_channels": [8, 8, 8, 8], "norm_num_groups": 4}


def write_sd_vae(folder: Path, seed: int = 0) -> Path:
    import torch
    from diffusers import AutoencoderKL

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = AutoencoderKL(**OFFICIAL_CONFIG, **FIXTURE_WIDTHS)
    vae.save_pretrained(folder, safe_serialization=True)
    return folder
