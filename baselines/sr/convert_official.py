"""Official released checkpoints of the lightweight SR baselines, loaded strictly into bench's models.

Each format reads the file exactly as its authors publish it (sources below), finds the SR factor from the
weights' shapes, builds bench's model and loads with ``strict=True`` (``bench.evaluate.load_strict``: a file
in another layout fails with one line naming the keys that do not fit).

* SwinIR-light: JingyunLiang/SwinIR release v0.0, ``002_lightweightSR_DIV2K_s64w8_SwinIR-S_x{2,3,4}.pth``:
  ``torch.save({'params': state_dict})`` of ``models/network_swinir.py`` (``main_test_swinir.py`` loads
  ``pretrained_model['params']`` strictly). The file also holds the buffers ``relative_position_index`` and,
  for shifted blocks, ``attn_mask`` (for 64x64 training patches), which bench recomputes for each input size.
* EDSR-baseline: sanghyun-son/EDSR-PyTorch ``src/model/edsr.py`` url table, ``edsr_baseline_x2-1bc95232.pt``,
  ``edsr_baseline_x3-abf2a44e.pt``, ``edsr_baseline_x4-6b446fab.pt``: a plain state dict. It includes the frozen
  mean shifts ``sub_mean``/``add_mean`` (1x1 convs whose bias is -/+ rgb_range x the DIV2K mean); bench reads
  rgb_range from them, so the model is fed the range it was trained on (255 for the released files).
* IMDN: Zheng222/IMDN ``checkpoints/IMDN_x{2,3,4}.pth``: ``torch.save(model.state_dict())``, keys possibly
  prefixed ``module.`` (``test_IMDN.py`` strips it through ``utils.load_state_dict``).
* ELAN-light: see ``baselines/sr/convert_elan.py`` (its frozen shift kernels need a conversion).

``OfficialTestPadding`` reproduces ``main_test_swinir.py``'s test-time padding, which differs from the
reflect padding inside the model: the LR image is extended by its own mirror image (edge row repeated) to the
next multiple of the window strictly above its size, and the output cropped back.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.evaluate import CheckpointError, load_strict, read_checkpoint

from . import edsr_baseline, imdn, swinir_light
from .common import DIV2K_RGB_MEAN


def strip_module_prefix(state: Mapping[str, Any]) -> dict[str, Any]:
    """Keys without the ``module.`` of an ``nn.DataParallel`` wrapper."""
    return {k.removeprefix("module."): v for k, v in state.items()}


def _tensors(obj: Any, path: Path, layout: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        kind = sorted(obj)[:6] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f"checkpoint {path} is not in the official {layout} layout: expected a state dict "
                              f"of tensors, got {kind}")
    return dict(obj)


def _pixel_shuffle_scale(state: Mapping[str, torch.Tensor], key: str, path: Path, colors: int = 3) -> int:
    """SR factor of a one-step upsampler conv (colors * s^2 outputs)."""
    if key not in state:
        raise CheckpointError(f"checkpoint {path}: no {key}, so its SR factor is unknown (not this model?)")
    out = int(state[key].shape[0])
    for s in (2, 3, 4):
        if out == colors * s * s:
            return s
    raise CheckpointError(f"checkpoint {path}: {key} has {out} outputs, not 3 x s^2 for s in 2, 3, 4")


# ----------------------------------------------------------------------------------------------- SwinIR
def swinir_state(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The weights main_test_swinir.py loads for lightweight_sr: ``obj['params']`` when present, else the
    file itself; the derived buffers are dropped (bench recomputes them)."""
    inner = obj["params"] if isinstance(obj, Mapping) and "params" in obj else obj
    return swinir_light.from_official_state_dict(_tensors(inner, path, "SwinIR ({'params': state_dict})"))


def load_swinir(path: Path, variant: str = "light") -> tuple[nn.Module, int]:
    state = swinir_state(read_checkpoint(path, "SwinIR checkpoint"), path)
    scale = _pixel_shuffle_scale(state, "upsample.0.weight", path)
    model = swinir_light.build(scale, variant)
    load_strict(model, state, path, "SwinIR ({'params': state_dict}, network_swinir.py)")
    return model.eval(), scale


class OfficialTestPadding(nn.Module):
    """``main_test_swinir.py``'s inference: pad bottom/right with the mirrored image (``torch.flip``
    concatenation, edge pixel repeated) by ``(h // w + 1) * w - h`` rows (1..w, never 0) and likewise columns,
    run the model, crop the output to ``scale x`` the input."""

    def __init__(self, model: nn.Module, window: int, scale: int):
        super().__init__()
        self.model, self.window, self.scale = model, window, scale
        self.rgb_range = getattr(model, "rgb_range", 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        h_pad = (h // self.window + 1) * self.window - h
        w_pad = (w // self.window + 1) * self.window - w
        x = torch.cat([x, torch.flip(x, [2])], 2)[:, :, : h + h_pad, :]
        x = torch.cat([x, torch.flip(x, [3])], 3)[:, :, :, : w + w_pad]
        return self.model(x)[..., : h * self.scale, : w * self.scale]


# ------------------------------------------------------------------------------------------------- EDSR
def mean_shift_rgb_range(state: Mapping[str, torch.Tensor], path: Path, model: str = "EDSR") -> float:
    """rgb_range a checkpoint was trained with, read from its frozen ``sub_mean`` bias (-rgb_range x the DIV2K
    mean; EDSR, ELAN and LIPT all carry this 1x1 conv), so that bench feeds the model that range."""
    if "sub_mean.bias" not in state:
        raise CheckpointError(f"checkpoint {path} is not in the official {model} layout: no sub_mean.bias")
    ratios = (-state["sub_mean.bias"].double() / torch.tensor(DIV2K_RGB_MEAN, dtype=torch.float64)).tolist()
    if max(ratios) - min(ratios) > 1e-3 * max(abs(r) for r in ratios) or ratios[0] <= 0:
        raise CheckpointError(f"checkpoint {path}: sub_mean.bias {state['sub_mean.bias'].tolist()} is not "
                              f"-rgb_range x the DIV2K mean {DIV2K_RGB_MEAN}")
    return float(round(ratios[0], 3))


def load_edsr(path: Path, variant: str = "baseline") -> tuple[nn.Module, int]:
    layout = "EDSR (plain state dict, src/model/edsr.py)"
    state = strip_module_prefix(_tensors(read_checkpoint(path, "EDSR checkpoint"), path, layout))
    if "tail.0.0.weight" not in state or "head.0.weight" not in state:
        raise CheckpointError(f"checkpoint {path} is not in the official {layout} layout: no head.0.weight / "
                              f"tail.0.0.weight")
    feats = int(state["head.0.weight"].shape[0])
    first = int(state["tail.0.0.weight"].shape[0])
    if first == 9 * feats:
        scale = 3
    elif first == 4 * feats:
        scale = 4 if "tail.0.2.weight" in state else 2
    else:
        raise CheckpointError(f"checkpoint {path}: tail.0.0.weight has {first} outputs for {feats} features, "
                              f"not an x2/x3/x4 EDSR upsampler")
    blocks = len({k.split(".")[1] for k in state if k.startswith("body.") and ".body." in k})
    want = edsr_baseline.VARIANTS[variant]
    if (feats, blocks) != (want["n_feats"], want["n_resblocks"]):
        raise CheckpointError(f"checkpoint {path} is an EDSR with {blocks} blocks of {feats} features, not "
                              f"EDSR-{variant} ({want['n_resblocks']} x {want['n_feats']})")
    model = edsr_baseline.build(scale, variant, rgb_range=mean_shift_rgb_range(state, path))
    load_strict(model, state, path, layout)
    return model.eval(), scale


# ------------------------------------------------------------------------------------------------- IMDN
def load_imdn(path: Path, variant: str = "imdn") -> tuple[nn.Module, int]:
    layout = "IMDN (plain state dict, model/architecture.py)"
    state = strip_module_prefix(_tensors(read_checkpoint(path, "IMDN checkpoint"), path, layout))
    scale = _pixel_shuffle_scale(state, "upsampler.0.weight", path)
    model = imdn.build(scale, variant)
    load_strict(model, state, path, layout)
    return model.eval(), scale


# ------------------------------------------------------------------------------------------------- ELAN
def load_elan(path: Path, variant: str = "light") -> tuple[nn.Module, int]:
    from .convert_elan import load_official

    model = load_official(path, variant)
    return model, model.scale


@dataclass(frozen=True)
class OfficialFormat:
    load: Callable[[Path, str], tuple[nn.Module, int]]  # (path, variant) -> (eval-mode model, SR factor)
    test_padding: str = "the model's own reflect padding"


FORMATS: dict[str, OfficialFormat] = {
    "swinir-light": OfficialFormat(load_swinir, "main_test_swinir.py: mirror-pad to the next multiple of 8 above "
                                                "the size"),
    "edsr-baseline": OfficialFormat(load_edsr, "none (fully convolutional)"),
    "imdn": OfficialFormat(load_imdn, "none (fully convolutional)"),
    "elan-light": OfficialFormat(load_elan),
}


def inference_network(impl: str, model: nn.Module, scale: int) -> nn.Module:
    """The network evaluated with the official test script's input handling (SwinIR's padding)."""
    if impl == "swinir-light":
        return OfficialTestPadding(model, model.window_size, scale).eval()
    return model
