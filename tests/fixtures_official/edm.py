"""EDM's data and release files (NVlabs/edm), tiny, in their official layouts.

* Dataset zips (``python dataset_tool.py --source=... --dest=cifar10-32x32.zip``; datasets/cifar10.yaml,
  ffhq-64.yaml, afhqv2-64.yaml; bench.data.archives.EdmZip): an uncompressed (ZIP_STORED) zip of PNGs named
  ``00000/img00000000.png`` (1000 per folder) and ``dataset.json`` = ``{"labels": [["00000/img00000000.png", 6],
  ...]}`` for labelled sources, ``{"labels": null}`` otherwise. Paths: ``edm/cifar10-32x32.zip``,
  ``edm/ffhq-64x64.zip``, ``edm/afhqv2-64x64.zip`` under the data root.
* FID reference statistics (https://nvlabs-fi-cdn.nvidia.com/edm/fid-refs/cifar10-32x32.npz; EDM fid.py ref
  writes ``np.savez(dest, mu=mu, sigma=sigma)``): keys ``mu`` (2048) and ``sigma`` (2048 x 2048), random here.
* Network pickles (https://nvlabs-fi-cdn.nvidia.com/edm/pretrained/edm-cifar10-32x32-uncond-vp.pkl): EDM's
  training_loop.py pickles ``{'ema': net, 'loss_fn': ..., 'augment_pipe': ..., 'dataset_kwargs': ...}`` through
  torch_utils.persistence, so every network object is ``_reconstruct_persistent_obj(meta)`` with meta = {type
  'class', version 6, module_src, class_name, state (__dict__ with _init_args/_init_kwargs)}; torch containers
  stay torch classes; SongUNet's ``skip_scale`` is a numpy float64. The network here is a VPPrecond around a
  narrow SongUNet (DDPM++ settings, model_channels 16 instead of 128) with random weights: the loader rebuilds
  whatever the pickle's init kwargs say, so the layout is exercised without 56 M parameters. The embedded
  module source would register a marker module if anything ever executed it.
"""
from __future__ import annotations

import io
import json
import pickle
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tests.fixtures_official.cifar10 import images
from tests.fixtures_official.imagenet import random_statistics

# data-root paths (the cards' layouts and methods/qac/recipe.py PAPER_DATASETS)
ZIPS = {"cifar10": ("edm/cifar10-32x32.zip", 32, True), "ffhq-64": ("edm/ffhq-64x64.zip", 64, False),
        "afhqv2-64": ("edm/afhqv2-64x64.zip", 64, False)}
FID_REFS = {"cifar10": "edm/fid-refs/cifar10-32x32.npz", "ffhq-64": "edm/fid-refs/ffhq-64x64.npz",
            "afhqv2-64": "edm/fid-refs/afhqv2-64x64.npz"}


def write_edm_zip(path: Path, count: int, resolution: int, labelled: bool, seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = images(rng, count, resolution)
    labels = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for i in range(count):
            name = f"{i // 1000:05d}/img{i:08d}.png"
            buffer = io.BytesIO()
            Image.fromarray(pixels[i]).save(buffer, format="png", compress_level=0, optimize=False)
            zf.writestr(name, buffer.getvalue())
            labels.append([name, int(rng.integers(0, 10))])
        zf.writestr("dataset.json", json.dumps({"labels": labels if labelled else None}))
    return path


def write_fid_ref(path: Path, seed: int = 0) -> Path:
    mu, sigma = random_statistics(np.random.default_rng(seed), 2048)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, mu=mu, sigma=sigma)
    return path


def write_edm_datasets(data_root: Path, count: int = 8, datasets: tuple[str, ...] = tuple(ZIPS)) -> Path:
    """The EDM zips and fid-refs of ``datasets`` under data_root; returns data_root."""
    for k, name in enumerate(datasets):
        rel, resolution, labelled = ZIPS[name]
        write_edm_zip(data_root / rel, count, resolution, labelled, seed=k)
        write_fid_ref(data_root / FID_REFS[name], seed=k)
    return data_root


def tiny_vp_network_kwargs(resolution: int = 32, label_dim: int = 0) -> dict[str, Any]:
    """VPPrecond init kwargs as EDM's train.py passes them for DDPM++ (--arch=ddpmpp), narrowed."""
    from baselines.edm.networks import arch_kwargs

    return dict(img_resolution=resolution, img_channels=3, label_dim=label_dim, use_fp16=False,
                **arch_kwargs("ddpmpp", model_channels=16, channel_mult=[1, 2], num_blocks=1, dropout=0.13,
                              augment_dim=9))


def write_edm_pickle(path: Path, init_kwargs: dict[str, Any], seed: int = 0, protocol: int = 4) -> Path:
    """A random VPPrecond pickled in torch_utils.persistence's layout (see the module docstring)."""
    import torch

    from baselines.edm.precond import VPPrecond

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = VPPrecond(**init_kwargs).eval()
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p) * 0.02)  # EDM zero-initialises output layers; trained nets are not zero

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        write_persistence_pickle(net, init_kwargs, handle, protocol)
    return path


def write_persistence_pickle(net: Any, init_kwargs: dict[str, Any], handle: Any, protocol: int = 4,
                             dataset_path: str = "cifar10-32x32.zip") -> None:
    """Pickle `net` the way EDM's training_loop.py saves it through torch_utils.persistence: every network
    class becomes _reconstruct_persistent_obj(meta) with the module source, class name and __dict__ (plus init
    args); torch containers stay torch classes; EDM's skip_scale is a numpy float64. The embedded source would
    create a marker module if it ever ran, and reconstructing by code raises."""
    from torch import nn

    fake = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):
        raise AssertionError("a persistent object was reconstructed by running its code")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    fake._reconstruct_persistent_obj = _reconstruct_persistent_obj
    source = "import sys\nsys.modules['edm_pickle_code_ran'] = sys\n"

    class Persistent:
        def __init__(self, module: nn.Module, kwargs: dict[str, Any] | None = None):
            state = dict(module.__dict__)
            state["_modules"] = {k: convert(v) for k, v in module._modules.items()}
            if "skip_scale" in state:
                state["skip_scale"] = np.float64(state["skip_scale"])
            state["_init_args"], state["_init_kwargs"] = (), dict(kwargs or {})
            self.meta = {"type": "class", "version": 6, "module_src": source,
                         "class_name": type(module).__name__, "state": state}

        def __reduce__(self):
            return (_reconstruct_persistent_obj, (self.meta,))

    def container(module: nn.Module) -> nn.Module:
        """A real torch container (pickled as torch.nn.modules.container.*) whose children are records."""
        clone = type(module).__new__(type(module))
        clone.__dict__.update(module.__dict__)
        clone.__dict__["_modules"] = {k: convert(v) for k, v in module._modules.items()}
        return clone

    def convert(module: nn.Module | None) -> Any:
        if module is None:
            return None
        return container(module) if isinstance(module, (nn.ModuleDict, nn.ModuleList, nn.Sequential)) \
            else Persistent(module)

    saved = {k: sys.modules.get(k) for k in ("torch_utils", "torch_utils.persistence")}
    sys.modules["torch_utils"] = types.ModuleType("torch_utils")
    sys.modules["torch_utils.persistence"] = fake
    try:
        data = {"ema": Persistent(net, init_kwargs), "loss_fn": None, "augment_pipe": None,
                "dataset_kwargs": {"class_name": "training.dataset.ImageFolderDataset", "path": dataset_path}}
        pickle.dump(data, handle, protocol=protocol)
    finally:
        for key, value in saved.items():
            if value is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = value


# data-root paths of the official pretrained pickles (methods/qac/recipe.py PAPER_DATASETS) -> (resolution, labels)
PICKLES = {"edm/pretrained/edm-cifar10-32x32-uncond-vp.pkl": (32, 0),
           "edm/pretrained/edm-cifar10-32x32-cond-vp.pkl": (32, 10),
           "edm/pretrained/edm-ffhq-64x64-uncond-vp.pkl": (64, 0),
           "edm/pretrained/edm-afhqv2-64x64-uncond-vp.pkl": (64, 0)}


def write_edm_data_root(data_root: Path, count: int = 8) -> Path:
    """Everything QAC's small and paper scales read under --data-root: CIFAR-10's python batches, the three EDM
    dataset zips with their fid-refs, and the four official pretrained pickles' paths."""
    from tests.fixtures_official.cifar10 import write_cifar10

    write_cifar10(data_root, per_batch=max(1, count // 2))
    write_edm_datasets(data_root, count)
    for k, (rel, (resolution, label_dim)) in enumerate(PICKLES.items()):
        write_edm_pickle(data_root / rel, tiny_vp_network_kwargs(resolution, label_dim), seed=k)
    return data_root
