"""The ten papers: slug -> package folder under methods/, and the recipe `bench reproduce` runs.

``recipe`` is a lazy "module:attr" target, or None while the paper's method is not implemented: such a paper
is listed honestly and `bench reproduce` refuses it (exit 2) instead of running a placeholder.
"""
from __future__ import annotations

PAPERS: dict[str, dict[str, str | None]] = {
    "u-dit": {"package": "u_dit", "recipe": "methods.u_dit.recipe"},
    "qac": {"package": "qac", "recipe": "methods.qac.recipe"},
    "tad-sr": {"package": "tad_sr", "recipe": "methods.tad_sr.recipe"},
    "mgsr": {"package": "mgsr", "recipe": "methods.mgsr.recipe"},
    "instruct-ipt": {"package": "instruct_ipt", "recipe": "methods.instruct_ipt.recipe"},
    "gim": {"package": "gim", "recipe": "methods.gim.recipe"},
    "ctf": {"package": "ctf", "recipe": "methods.ctf.recipe"},
    "lipt": {"package": "lipt", "recipe": "methods.lipt.recipe"},
    "mipkd": {"package": "mipkd", "recipe": "methods.mipkd.recipe"},
    "sam-prior": {"package": "sam_prior", "recipe": "methods.sam_prior.recipe"},
}

# Implementations of the papers' own methods, by registered name (lazy targets; none imports torch here).
METHODS: dict[str, dict[str, str]] = {
    "instruct-ipt": {"target": "methods.instruct_ipt.model:InstructIPT", "paper": "instruct-ipt",
                     "doc": "Instruct-IPT: IPT with low-rank task biases on toy-selected weights, text instructions"},
    "mgsr": {"target": "methods.mgsr.objective:MGSR", "paper": "mgsr",
             "doc": "MGSR: SFT + DAC-KL + span loss with SCRG sequence revision"},
    "qac": {"target": "methods.qac.model:QAC", "paper": "qac",
            "doc": "QAC-style: EDM + FSQ-quantized image-code encoder (design inferred from the abstract)"},
    "ctf": {"target": "methods.ctf.ctf:CTF", "paper": "ctf",
            "doc": "CTF: K teacher-student pairs on LabelMatch with DPCO teacher selection"},
    "u-dit": {"target": "methods.u_dit.model:udit", "paper": "u-dit",
              "doc": "U-DiT-S/B/L: U-shaped DiT with token-downsampled attention, RoPE2D, re-parameterised FFN"},
    "sam-prior": {"target": "methods.sam_prior.model:SAMPriorDistill", "paper": "sam-prior",
                  "doc": "SAM-prior distillation: SPF fusion + SPD self-distillation + SGR relation loss (training only)"},
    "tad-sr": {"target": "methods.tad_sr.pipeline:distill_student", "paper": "tad-sr",
               "doc": "TAD-SR: one-step ResShift student, latent MSE + HSD + time-aware discriminator"},
    "gimformer": {"target": "methods.gim.model:build_gimformer", "paper": "gim",
                  "doc": "GIMFormer: ShadowTracer trace + dual MiT with FSB and MWAM, CMX fusion, MLP decoder"},
    "lipt": {"target": "methods.lipt.model:build_lipt", "paper": "lipt",
             "doc": "LIPT Tiny/Small/Base at x2/x3/x4 with NVSM-SA and the deployable re-parameterisation"},
    "mipkd": {"target": "methods.mipkd.mixers:MiPKD", "paper": "mipkd",
              "doc": "MiPKD: feature prior mixer (3-D masked shared latent + AE loss) and block prior mixer"},
}
