"""EDM (Karras et al. 2022, NVlabs/edm) as a baseline: networks, preconditioning, loss, samplers, pickles.

* `networks`: the DDPM++ / NCSN++ U-Net (`SongUNet`) and the ADM U-Net (`DhariwalUNet`) with the official
  state-dict layout, plus `ARCHS` (the official `--arch` presets) and `build_precond`.
* `precond`: VP, VE, iDDPM and EDM preconditioning (c_skip, c_out, c_in, c_noise) around a U-Net.
* `loss`: VPLoss, VELoss and EDMLoss (weighting and sigma sampling), EDM's per-batch reduction.
* `samplers`: the rho=7 schedule, EDM's Heun sampler (deterministic and stochastic) and few-step solvers
  (Euler, DPM-Solver++(2M), iPNDM) with exact NFE accounting.
* `pickles`: a restricted unpickler for official `network-snapshot-*.pkl` / `edm-*.pkl` files that never runs
  pickled code.

Submodules import torch; this package file does not.
"""
