"""Metric dialects: the name, direction, unit and protocol of every metric a paper card or run may use.

Plain data only (no torch import). ``target`` is the lazy implementation (``None`` for dialects that are only
reported by papers and cannot be computed here, e.g. the ADM TensorFlow evaluator). ``comparable`` lists
other dialects whose numbers may share a delta column with this one; everything else is printed without a
delta. ``tolerance`` is the regression-gate tolerance for non-bit-exact environments.
"""
from __future__ import annotations

from typing import Any


def _sanity(unit: str, protocol: str) -> dict[str, Any]:
    """A sanity-floor dialect (bench/sanity.py): a gain over a trivial baseline, always higher-is-better, computed
    by the recipe itself (no target), gated to 0.01 across environments like the metrics it is built from."""
    return dict(direction="higher", unit=unit, family="sanity", protocol=protocol, target=None,
                tolerance={"abs": 0.01})


# direction: "lower" or "higher" is better; "none" for cost counters that are not gated.
DIALECTS: dict[str, dict[str, Any]] = {
    # --- generative -------------------------------------------------------------------------------
    "fid@torch-fidelity": dict(direction="lower", unit="", family="generative",
                               protocol="torch-fidelity inception-v3-compat pool3 features, two image folders",
                               target="bench.metrics.generative:fid_two_sets", tolerance={"abs": 0.05}),
    "kid@torch-fidelity": dict(direction="lower", unit="", family="generative",
                               protocol="torch-fidelity KID, 100 subsets of 1000, poly kernel d=3",
                               target="bench.metrics.generative:kid_two_sets", tolerance={"abs": 1e-3}),
    "isc@torch-fidelity": dict(direction="higher", unit="", family="generative",
                               protocol="torch-fidelity Inception Score, 10 splits",
                               target="bench.metrics.generative:isc", tolerance={"rel": 0.01}),
    "fid@ref-npz": dict(direction="lower", unit="", family="generative",
                        protocol="Frechet distance of inception-v3-compat features against mu/sigma of an ADM/EDM "
                                 "reference .npz; float64 statistics",
                        target="bench.metrics.generative:fid_ref_npz", tolerance={"abs": 0.05},
                        comparable=["fid@adm", "fid@edm"]),
    "fid@adm": dict(direction="lower", unit="", family="generative", target=None,
                    protocol="ADM TensorFlow evaluator, 50k samples vs VIRTUAL_imagenet256_labeled.npz (paper-reported)",
                    comparable=["fid@ref-npz"]),
    "sfid@adm": dict(direction="lower", unit="", family="generative", target=None,
                     protocol="ADM evaluator spatial FID (mixed_6/conv first 7 channels), paper-reported"),
    "isc@adm": dict(direction="higher", unit="", family="generative", target=None,
                    protocol="ADM evaluator Inception Score, paper-reported"),
    "precision@adm": dict(direction="higher", unit="", family="generative", target=None,
                          protocol="ADM evaluator improved precision (k=3), paper-reported"),
    "recall@adm": dict(direction="higher", unit="", family="generative", target=None,
                       protocol="ADM evaluator improved recall (k=3), paper-reported"),
    "fid@edm": dict(direction="lower", unit="", family="generative", target=None,
                    protocol="EDM fid.py: 50k samples, torch Inception (pkl), vs fid-refs/*.npz; min of 3 seeds "
                             "in the EDM paper (paper-reported)",
                    comparable=["fid@ref-npz"]),
    "fd_digits": dict(direction="lower", unit="", family="generative",
                      protocol="Frechet distance in the 64-d penultimate features of bench's own digits classifier "
                           "(trained deterministically, offline); NOT FID",
                      target="bench.metrics.offline_fd:fd_digits", tolerance={"rel": 0.05}),
    "kd_digits": dict(direction="lower", unit="", family="generative",
                      protocol="kernel (KID-style, cubic polynomial) distance in the digits classifier features; NOT KID",
                      target="bench.metrics.offline_fd:kd_digits", tolerance={"abs": 2e-3}),
    # --- restoration ------------------------------------------------------------------------------
    "fd_dct8@patches": dict(direction="lower", unit="", family="restoration",
                            protocol="Frechet distance between the 8x8 stride-4 luma-patch AC DCT coefficients of "
                                     "restored and ground-truth images (offline, no weights; texture realism); "
                                     "NOT FID, not paired",
                            target="bench.metrics.patch_fd:fd_dct8_patches", tolerance={"rel": 0.05}),
    "psnr_y@matlab": dict(direction="higher", unit="dB", family="restoration",
                          protocol="uint8-rounded images, BT.601 limited-range Y (MATLAB rgb2ycbcr), border crop = "
                                   "scale, float64, mean over images",
                          target="bench.metrics.restoration:psnr_y_matlab", tolerance={"abs": 0.01}),
    "ssim_y@matlab": dict(direction="higher", unit="", family="restoration",
                          protocol="as psnr_y@matlab; 11x11 Gaussian sigma=1.5, K=(0.01,0.03), L=255",
                          target="bench.metrics.restoration:ssim_y_matlab", tolerance={"abs": 2e-4}),
    "psnr_y@basicsr": dict(direction="higher", unit="dB", family="restoration",
                           protocol="as psnr_y@matlab but Y kept in float64, not rounded to uint8 (BasicSR "
                                    "calculate_psnr with test_y_channel=True)",
                           target="bench.metrics.restoration:psnr_y_basicsr", tolerance={"abs": 0.01}),
    "ssim_y@basicsr": dict(direction="higher", unit="", family="restoration",
                           protocol="as ssim_y@matlab but Y kept in float64, not rounded (BasicSR calculate_ssim)",
                           target="bench.metrics.restoration:ssim_y_basicsr", tolerance={"abs": 2e-4}),
    "psnr_rgb": dict(direction="higher", unit="dB", family="restoration",
                     protocol="uint8-rounded RGB, border crop = scale, float64, mean over images",
                     target="bench.metrics.restoration:psnr_rgb", tolerance={"abs": 0.01}),
    "ssim_rgb": dict(direction="higher", unit="", family="restoration",
                     protocol="per-channel SSIM averaged over RGB, 11x11 Gaussian sigma=1.5",
                     target="bench.metrics.restoration:ssim_rgb", tolerance={"abs": 2e-4}),
    "psnr_b": dict(direction="higher", unit="dB", family="restoration", target=None,
                   protocol="PSNR-B (blocking-effect factor) for JPEG artefact removal, paper-reported"),
    "lpips_alex": dict(direction="lower", unit="", family="restoration",
                       protocol="LPIPS v0.1, AlexNet backbone, inputs in [-1,1] (pyiqa); needs weights asset",
                       target="bench.metrics.restoration:lpips_alex", tolerance={"abs": 1e-3}),
    "lpips_vgg": dict(direction="lower", unit="", family="restoration",
                      protocol="LPIPS v0.1, VGG backbone (pyiqa); needs weights asset",
                      target="bench.metrics.restoration:lpips_vgg", tolerance={"abs": 1e-3}),
    "niqe": dict(direction="lower", unit="", family="restoration", protocol="pyiqa NIQE; needs its params asset",
                 target="bench.metrics.restoration:niqe", tolerance={"abs": 0.01}),
    "musiq": dict(direction="higher", unit="", family="restoration", protocol="pyiqa MUSIQ (KonIQ); needs weights",
                  target="bench.metrics.restoration:musiq", tolerance={"abs": 0.05}),
    "clipiqa": dict(direction="higher", unit="", family="restoration", protocol="pyiqa CLIPIQA; needs weights",
                    target="bench.metrics.restoration:clipiqa", tolerance={"abs": 1e-3}),
    "maniqa": dict(direction="higher", unit="", family="restoration", protocol="pyiqa MANIQA; needs weights",
                   target="bench.metrics.restoration:maniqa", tolerance={"abs": 1e-3}),
    # --- detection --------------------------------------------------------------------------------
    "coco_bbox_map@pycocotools": dict(direction="higher", unit="%", family="detection",
                                      protocol="COCOeval bbox stats[0] (AP@[.50:.95], maxDets 100) x100",
                                      target="bench.metrics.detection:coco_bbox_map", tolerance={"abs": 0.01}),
    "coco_bbox_ap50@pycocotools": dict(direction="higher", unit="%", family="detection",
                                       protocol="COCOeval bbox stats[1] (AP@0.50) x100",
                                       target="bench.metrics.detection:coco_bbox_ap50", tolerance={"abs": 0.01}),
    # --- forensics (IMDL) -------------------------------------------------------------------------
    "pixel_f1": dict(direction="higher", unit="", family="forensics",
                     protocol="per-image F1 of the binarised mask (threshold 0.5), averaged over manipulated images",
                     target="bench.metrics.forensics:pixel_f1", tolerance={"abs": 1e-4}),
    "pixel_f1_best": dict(direction="higher", unit="", family="forensics",
                          protocol="OPTIMISTIC: per-image F1 at the per-image best threshold (chosen with the ground "
                                   "truth), averaged over manipulated images",
                          target="bench.metrics.forensics:pixel_f1_best", tolerance={"abs": 1e-4}),
    "pixel_auc": dict(direction="higher", unit="", family="forensics",
                      protocol="per-image ROC AUC of the soft mask, averaged over manipulated images",
                      target="bench.metrics.forensics:pixel_auc", tolerance={"abs": 1e-4}),
    "pixel_iou": dict(direction="higher", unit="", family="forensics",
                      protocol="per-image IoU of the binarised mask (threshold 0.5), averaged",
                      target="bench.metrics.forensics:pixel_iou", tolerance={"abs": 1e-4}),
    "image_acc": dict(direction="higher", unit="", family="forensics",
                      protocol="image-level real/fake accuracy at threshold 0.5",
                      target="bench.metrics.forensics:image_acc", tolerance={"abs": 1e-4}),
    "image_auc": dict(direction="higher", unit="", family="forensics",
                      protocol="image-level ROC AUC of the fake score",
                      target="bench.metrics.forensics:image_auc", tolerance={"abs": 1e-4}),
    # --- LLM ----------------------------------------------------------------------------------------
    "rouge_l@rouge-score": dict(direction="higher", unit="", family="llm",
                                protocol="ROUGE-L F-measure x100 via rouge-score (max over references), mean over "
                                         "prompts, run through lm-eval; decoding (greedy, or sampling at T=1 "
                                         "averaged over seeds as MiniLLM/MGSR do) is recorded in the setting",
                                target="bench.metrics.llm:rouge_l", tolerance={"abs": 0.01}),
    "exact_match": dict(direction="higher", unit="", family="llm",
                        protocol="stripped prediction equals a stripped reference (case-sensitive), mean over "
                                 "prompts; run through lm-eval",
                        target="bench.metrics.llm:exact_match", tolerance={"abs": 1e-6}),
    # --- sanity floors (bench/sanity.py): did the model learn its task at all? Always higher-is-better -------
    "class_acc@digits-cnn": _sanity("", "fraction of class-conditional samples that bench's own digits classifier "
                                        "assigns to the requested class (chance 0.1)"),
    "psnr_gain_y@bicubic": _sanity("dB", "psnr_y@matlab of the model minus psnr_y@matlab of MATLAB-bicubic upscaling "
                                         "of the same LR inputs, same crop"),
    "psnr_gain_y@untrained": _sanity("dB", "psnr_y@matlab of the model minus that of the same architecture at its "
                                           "initialisation (untrained), same sampler, noise, inputs and crop"),
    "psnr_gain@degraded": _sanity("dB", "PSNR of the restored image minus PSNR of the degraded input, same dialect"),
    "map_gain@supervised": _sanity("%", "coco_bbox_map@pycocotools of the model minus that of the supervised-only "
                                        "model trained on the same labelled split with the same budget"),
    "map_gain@trivial": _sanity("%", "coco_bbox_map@pycocotools of the model minus that of a trivial detector "
                                     "(recorded in the floor's 'trivial')"),
    "rouge_l_gain@untrained": _sanity("", "rouge_l@rouge-score of the model minus that of the same student before "
                                          "training, same prompts and decoding"),
    "rouge_l_margin@scratch": _sanity("", "rouge_l@rouge-score of the teacher minus that of the student trained from "
                                          "scratch (SFT) on the same data: the knowledge there is to distil"),
    "digits_is@digits-cnn": _sanity("", "Inception Score of unconditional samples with bench's own digits classifier: "
                                        "exp(mean KL(p(y|x) || mean p(y|x))); 1 for identical or unrecognisable "
                                        "samples, 10 for confident samples spread evenly over the ten digits "
                                        "(methods/qac/sanity.py; the floor's trivial generators are recorded)"),
    "pixel_f1_gain@random": _sanity("", "pixel_f1 of the model minus the expected pixel_f1 of a uniform random map "
                                        "(f / (f + 0.5) per image of manipulated fraction f; the all-authentic map "
                                        "scores 0) on the same manipulated images"),
    "pixel_auc_gain@chance": _sanity("", "pixel_auc of the model minus 0.5, the AUC of a constant or random map, on "
                                         "the same manipulated images"),
    # --- cost (never gated on shared CPU runners) ---------------------------------------------------
    "params_m": dict(direction="none", unit="M", family="cost", protocol="trainable parameters / 1e6 (deployed form "
                     "where a model re-parameterises)", target="bench.profile:count_params"),
    "gmacs": dict(direction="none", unit="G", family="cost",
                  protocol="multiply-accumulates per forward / 1e9 (the papers' 'GFLOPs' of DiT/U-DiT count MACs)",
                  target="bench.profile:count_macs"),
    "nfe": dict(direction="none", unit="", family="cost", protocol="network evaluations per sample",
                target=None),
    "latency_ms": dict(direction="lower", unit="ms", family="cost",
                       protocol="median forward latency after warm-up; device, precision and input size in the record",
                       target="bench.profile:latency"),
}


def direction(name: str) -> str:
    return DIALECTS[name]["direction"]


def comparable(a: str, b: str) -> bool:
    """Whether numbers of dialects ``a`` and ``b`` may share a delta column (equal, or declared comparable)."""
    return a == b or b in DIALECTS.get(a, {}).get("comparable", []) or a in DIALECTS.get(b, {}).get("comparable", [])
