"""Official ELAN / ELAN-light checkpoints -> bench's ELAN (baselines/sr/elan_light.py).

The official code (xindongzhang/ELAN, ``models/elan_block.py``) wraps every shift-conv of an LFE in a
``ShiftConv2d`` whose ``shift_conv`` sub-module is one of two classes:

* ``ShiftConv2d1`` (``conv_type='fast-training-speed'``, the default): ``weight`` [C, 1, 3, 3], a frozen
  depthwise kernel with a single 1 per channel (groups of C//5 channels at (1,2), (1,0), (2,1), (0,1), the rest
  at the centre), then ``conv1x1.{weight,bias}``;
* ``ShiftConv2d0`` (``'low-training-memory'``): a full 3x3 conv ``w`` [O, C, 3, 3], ``b`` [O] multiplied by a
  frozen mask ``m`` [O, C, 3, 3] with the same one-hot position per input channel.

Bench shifts by slicing (``elan_light.shift_features``: no multiply-adds) and keeps only the 1x1 conv, so the
frozen kernels have no key in bench's model and a strict load fails. This converter checks that every frozen
kernel IS the shift bench computes (one-hot per channel, each group in bench's direction) and refuses
otherwise, then renames ``...shift_conv.conv1x1.*`` to ``...conv1x1.*`` (ShiftConv2d1) or folds ``w * m`` into
the 1x1 weight (ShiftConv2d0: the masked 3x3 conv of a shifted input is a 1x1 conv whose weight is ``w`` read
at each input channel's one-hot position). Every other key (mean shifts, head, GMSA, BN statistics, tail) has
the same name in both models.

Checkpoints are what the official ``train.py`` writes: ``{'epoch', 'model_state_dict', 'optimizer_state_dict',
'scheduler_state_dict', 'stat_dict'}`` with ``module.`` prefixes (the model is an ``nn.DataParallel``); a plain
state dict, with or without the prefix, is accepted too.

Command line: ``python -m baselines.sr.convert_elan OFFICIAL.pt OUT.pth`` writes bench's state dict.
"""
from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from bench.evaluate import CheckpointError

from .elan_light import ELAN, build, shift_features

# Direction names of bench's five channel groups, in shift_features' order (for the refusal messages).
GROUP_NAMES = ("from the right neighbour", "from the left neighbour", "from the lower neighbour",
               "from the upper neighbour", "identity")
_DEPTHWISE = re.compile(r"^(?P<stem>.*)\.shift_conv\.weight$")
_MASKED = re.compile(r"^(?P<stem>.*)\.shift_conv\.m$")


def official_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The model's tensors from an official checkpoint: unwrap ``model_state_dict`` and drop ``module.``."""
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"ELAN checkpoint: expected a dict, got {type(checkpoint).__name__}")
    state = checkpoint.get("model_state_dict", checkpoint)
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError("ELAN checkpoint: neither a state dict nor {'model_state_dict': state dict}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def shift_kernel(channels: int) -> torch.Tensor:
    """The depthwise 3x3 kernel [C, 1, 3, 3] that equals bench's ``shift_features`` as a conv (padding 1).

    Derived from the shift itself, not written out: the response to a unit impulse at the centre of a 3x3
    image is the kernel flipped (a conv is a correlation), so a change to the shift changes what is accepted.
    """
    impulse = torch.zeros(1, channels, 3, 3, dtype=torch.float64)
    impulse[0, :, 1, 1] = 1.0
    return shift_features(impulse)[0].flip(-2, -1).unsqueeze(1)


def _channel_group(channel: int, channels: int) -> str:
    return GROUP_NAMES[min(channel // (channels // 5), 4)]


def _one_hot_position(kernel: torch.Tensor) -> tuple[int, int] | None:
    """(row, col) of the single 1 of a 3x3 kernel, None when it is not exactly one-hot."""
    flat = kernel.reshape(-1)
    if not (bool(((flat == 0) | (flat == 1)).all()) and int((flat == 1).sum()) == 1):
        return None
    index = int(flat.argmax())
    return index // 3, index % 3


def check_shift_kernel(name: str, kernel: torch.Tensor) -> None:
    """Refuse (CheckpointError) unless ``kernel`` [C, 3, 3] (one 3x3 per input channel) is bench's shift."""
    channels = kernel.shape[0]
    if channels < 5 or tuple(kernel.shape[1:]) != (3, 3):
        raise CheckpointError(f"ELAN checkpoint: {name} has shape {list(kernel.shape)}, expected a 3x3 shift kernel "
                              f"over at least 5 channels")
    expected = shift_kernel(channels)[:, 0].to(kernel.dtype)
    for c in range(channels):
        found = _one_hot_position(kernel[c])
        if found is None:
            raise CheckpointError(f"ELAN checkpoint: {name} channel {c} is not a one-hot shift kernel "
                                  f"({kernel[c].flatten().tolist()}); refusing to convert: bench's ELAN shifts by "
                                  f"slicing and would silently compute something else")
        want = _one_hot_position(expected[c])
        if found != want:
            raise CheckpointError(f"ELAN checkpoint: {name} channel {c} shifts with its 1 at {found}, bench's ELAN "
                                  f"takes that channel {_channel_group(c, channels)} (1 at {want}); refusing to "
                                  f"convert a different shift")


def convert_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Bench's ELAN state dict from an official checkpoint (see the module docstring); refuses kernels that
    are not bench's one-hot shift."""
    state = official_state_dict(checkpoint)
    out: dict[str, torch.Tensor] = {}
    handled: set[str] = set()
    for key, value in state.items():
        if m := _DEPTHWISE.match(key):  # ShiftConv2d1: frozen depthwise kernel + conv1x1
            stem = m["stem"]
            if value.ndim != 4 or value.shape[1] != 1:
                raise CheckpointError(f"ELAN checkpoint: {key} has shape {list(value.shape)}, expected [C, 1, 3, 3]")
            check_shift_kernel(key, value[:, 0])
            for leaf in ("weight", "bias"):
                src = f"{stem}.shift_conv.conv1x1.{leaf}"
                if src not in state:
                    raise CheckpointError(f"ELAN checkpoint: {key} has no {src}")
                out[f"{stem}.conv1x1.{leaf}"] = state[src]
                handled.add(src)
            handled.add(key)
        elif m := _MASKED.match(key):  # ShiftConv2d0: 3x3 conv w, b times the frozen mask m
            stem = m["stem"]
            w, b = state.get(f"{stem}.shift_conv.w"), state.get(f"{stem}.shift_conv.b")
            if w is None or b is None or w.shape != value.shape:
                raise CheckpointError(f"ELAN checkpoint: {key} needs {stem}.shift_conv.w and .b of its shape "
                                      f"{list(value.shape)}")
            for o in range(value.shape[0]):  # the mask repeats the same per-input-channel shift for each output
                check_shift_kernel(f"{key}[{o}]", value[o])
            out[f"{stem}.conv1x1.weight"] = (w * value).sum(dim=(2, 3), keepdim=True)
            out[f"{stem}.conv1x1.bias"] = b
            handled.update({key, f"{stem}.shift_conv.w", f"{stem}.shift_conv.b"})
    for key, value in state.items():
        if key in handled:
            continue
        if ".shift_conv." in key:
            raise CheckpointError(f"ELAN checkpoint: unexpected shift-conv key {key} (neither the depthwise "
                                  f"'weight' + 'conv1x1' nor the masked 'w', 'b', 'm' layout)")
        out[key] = value
    return out


def infer_config(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """scale, channels and sub-blocks of a (converted or official) ELAN state dict, from its shapes."""
    try:
        channels = int(state["head.0.weight"].shape[0])
        tail_out = int(state["tail.0.weight"].shape[0])
    except KeyError as exc:
        raise CheckpointError(f"ELAN checkpoint: no {exc.args[0]}; is this an ELAN checkpoint?") from None
    scale = round((tail_out / 3) ** 0.5)
    if 3 * scale * scale != tail_out:
        raise CheckpointError(f"ELAN checkpoint: tail.0.weight has {tail_out} outputs, not 3 * scale^2")
    blocks = {int(k.split(".")[1]) for k in state if k.startswith("body.")}
    shares = {k.split(".")[3] for k in state if k.startswith("body.0.modules_lfe.")}
    return {"scale": scale, "channels": channels, "sub_blocks": len(blocks) * len(shares),
            "n_share": len(shares) - 1}


def load_official(path: Path, variant: str = "light", scale: int | None = None) -> ELAN:
    """Bench's ELAN-``variant`` holding the official checkpoint at ``path`` (strict load), in eval mode.

    ``scale`` (optional) must agree with the checkpoint's tail; the variant's width and depth must agree with
    its shapes (otherwise one line names the keys or shapes that differ)."""
    from bench.evaluate import load_strict, read_checkpoint

    from .convert_official import mean_shift_rgb_range

    path = Path(path)
    state = convert_state_dict(read_checkpoint(path, "ELAN checkpoint"))
    found = infer_config(state)
    if scale is not None and scale != found["scale"]:
        raise CheckpointError(f"ELAN checkpoint {path} is x{found['scale']}, not x{scale}")
    # fed the range it was trained on (255 for the official configs), read from its frozen mean shift
    model = build(found["scale"], variant, rgb_range=mean_shift_rgb_range(state, path, "ELAN"))
    load_strict(model, state, path, f"ELAN-{variant} (xindongzhang/ELAN, converted)")
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m baselines.sr.convert_elan OFFICIAL_CHECKPOINT OUT.pth", file=sys.stderr)
        return 2
    src, dst = Path(args[0]), Path(args[1])
    if not src.is_file():
        print(f"error: {src} not found", file=sys.stderr)
        return 2
    from bench.evaluate import read_checkpoint

    try:
        state = convert_state_dict(read_checkpoint(src, "ELAN checkpoint"))
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    torch.save(state, dst)
    print(f"{dst}: bench ELAN state dict, {infer_config(state)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
