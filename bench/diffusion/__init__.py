"""Shared diffusion pieces for the DiT / U-DiT family.

* `gaussian`: the DiT/ADM Gaussian diffusion (linear betas, learned-range variance, hybrid loss, respacing).
* `sampling`: DDPM ancestral and DDIM samplers, classifier-free guidance as the official DiT code applies
  it, NFE counting, per-sample noise (samples do not depend on batch size or process count).
* `embedders`: timestep and class-label embedders used by DiT and U-DiT (shared so that a method never has
  to import a baseline).
* `checkpoint`: strict state-dict loading with one-line errors naming the first offending key.
* `latents`: latent codecs (the SD VAE through diffusers, an exact space-to-depth stand-in) and the
  pre-extracted, resumable latent cache of a whole dataset (DiT/U-DiT paper scale).

Submodules import torch; this package file does not.
"""
