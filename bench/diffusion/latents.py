"""Latent spaces for the DiT / U-DiT family, and the pre-extracted latent cache of a whole dataset.

Codecs (one interface: ``moments(x) -> (mean, std)`` of the posterior for images x in [-1, 1] NCHW, and
``decode(z) -> images in [-1, 1]``; training samples ``z = (mean + std * eps) * scale``):

* `VaeCodec`: the Stable Diffusion VAE through diffusers' AutoencoderKL, loaded from a local folder (DiT and
  U-DiT use ``stabilityai/sd-vae-ft-ema``; its encoder equals ft-MSE's). ``scale`` = 0.18215 as DiT's
  ``train.py`` (``latent_dist.sample().mul_(0.18215)``); the decoder gets ``z / 0.18215``.
* `SpaceToDepthCodec`: an exact, weight-free stand-in: ``pixel_unshuffle`` by a factor f (std 0, scale 1).
  f = 1 is pixel space. It gives the paper's 32x32x4 latent shape from 64x64 grey images without any asset.

`LatentCache` pre-extracts the posterior moments of every image of an `IndexedDataset` once (and of its mirror
image, so that training can flip as DiT's ``train.py`` does), into one float16 ``.npy`` memmap of shape
[N, flips, 2, C, h, w] plus ``labels.npy``. It is filled chunk by chunk (a chunk is done iff its marker file
exists), chunks are dealt to ranks by index, and a rerun fills only the missing chunks, with any process count.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.registry import BenchError

SD_VAE_SCALE = 0.18215  # DiT train.py / sample.py; also diffusers' scaling_factor of the SD 1.x VAEs


# ------------------------------------------------------------------------------------------ pixel helpers
def uint8_to_unit(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 NCHW -> float32 in [-1, 1] (DiT: ToTensor then Normalize(0.5, 0.5))."""
    x = torch.as_tensor(images)
    if x.dtype != torch.uint8:
        raise BenchError(f"expected uint8 images, got {x.dtype}")
    return x.float() / 127.5 - 1.0


def unit_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> uint8 the way DiT's ``sample_ddp.py`` quantises: clamp(127.5 x + 128, 0, 255), truncated."""
    return torch.clamp(127.5 * x.float() + 128.0, 0, 255).to(torch.uint8)


# ------------------------------------------------------------------------------------------------ codecs
class SpaceToDepthCodec:
    """Deterministic, exactly invertible 'latent': pixel_unshuffle by ``factor`` (1 = pixel space)."""

    stochastic = False
    scale = 1.0

    def __init__(self, factor: int = 2):
        if factor < 1:
            raise BenchError(f"space-to-depth factor must be >= 1, got {factor}")
        self.factor = factor
        self.name = "pixels" if factor == 1 else f"space-to-depth-{factor}"

    def info(self) -> dict[str, Any]:
        return {"codec": self.name, "scale": self.scale}

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = F.pixel_unshuffle(x, self.factor) if self.factor > 1 else x
        return mean, torch.zeros_like(mean)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(z, self.factor) if self.factor > 1 else z


def vae_weights_file(folder: Path) -> Path:
    for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    raise BenchError(f"VAE folder {folder} has no diffusion_pytorch_model.safetensors (or .bin); expected a "
                     f"diffusers AutoencoderKL folder (config.json + weights)")


def load_sd_vae(folder: str | os.PathLike, device: str | torch.device = "cpu") -> Any:
    """diffusers' AutoencoderKL from a local folder (never downloads), eval mode, frozen, float32."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise BenchError(f"VAE folder {folder} has no config.json; expected a diffusers AutoencoderKL folder "
                         f"(e.g. stabilityai/sd-vae-ft-ema downloaded with huggingface-cli)")
    vae_weights_file(folder)
    from diffusers import AutoencoderKL

    try:
        vae = AutoencoderKL.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise BenchError(f"cannot load the VAE from {folder}: {str(exc).splitlines()[0][:200]}") from None
    return vae.to(device).eval().requires_grad_(False)


class VaeCodec:
    """The SD VAE: posterior moments of the encoder, decoder on ``z / scale``."""

    stochastic = True

    def __init__(self, vae: Any, scale: float = SD_VAE_SCALE, name: str = "sd-vae", weights_sha256: str | None = None):
        self.vae = vae
        self.scale = float(scale)
        self.name = name
        self.weights_sha256 = weights_sha256
        self.factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.latent_channels = int(vae.config.latent_channels)

    def info(self) -> dict[str, Any]:
        return {"codec": self.name, "scale": self.scale, "downsample": self.factor,
                "latent_channels": self.latent_channels, "weights_sha256": self.weights_sha256}

    @torch.no_grad()
    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dist = self.vae.encode(x.to(next(self.vae.parameters()).device)).latent_dist
        return dist.mean, dist.std

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z / self.scale).sample


def sample_latents(moments: torch.Tensor, scale: float, stochastic: bool) -> torch.Tensor:
    """Training latents from stored moments [B, flips, 2, C, h, w]: a random flip variant per sample, then
    ``(mean + std * eps) * scale`` (DiT's ``latent_dist.sample() * 0.18215``). Draws from the global RNG on the
    moments' device, which the training loop seeds and checkpoints."""
    b, flips = moments.shape[:2]
    if flips > 1:
        pick = torch.randint(flips, (b,), device=moments.device)
        chosen = moments[torch.arange(b, device=moments.device), pick]
    else:
        chosen = moments[:, 0]
    chosen = chosen.float()
    mean, std = chosen[:, 0], chosen[:, 1]
    z = mean + std * torch.randn_like(mean) if stochastic else mean
    return z * scale


# ------------------------------------------------------------------------------------------- latent cache
@dataclass
class CacheLayout:
    count: int
    flips: int
    latent_shape: tuple[int, int, int]
    chunk: int

    @property
    def num_chunks(self) -> int:
        return -(-self.count // self.chunk)

    def chunk_range(self, c: int) -> tuple[int, int]:
        return c * self.chunk, min(self.count, (c + 1) * self.chunk)


class LatentCache:
    """Posterior moments of a whole dataset, pre-extracted once (see the module docstring).

    root/manifest.json fixes the plan (count, flips, latent shape, chunk, ``meta`` such as the dataset
    fingerprint and the codec's weights); an existing cache made for another plan is an error, not reused.
    """

    def __init__(self, root: str | os.PathLike, layout: CacheLayout, meta: dict[str, Any] | None = None):
        self.root = Path(root)
        self.layout = layout
        self.manifest = {"version": 1, "count": layout.count, "flips": layout.flips,
                         "latent_shape": list(layout.latent_shape), "chunk": layout.chunk, "dtype": "float16",
                         "meta": json.loads(json.dumps(meta or {}, default=str))}
        path = self.root / "manifest.json"
        if path.exists():
            found = json.loads(path.read_text())
            for key, value in self.manifest.items():
                if found.get(key) != value:
                    raise BenchError(f"latent cache {self.root} was made for another plan ({key}: {found.get(key)!r} "
                                     f"there, {value!r} now); delete it or use another BENCH_CACHE")

    @property
    def moments_path(self) -> Path:
        return self.root / "moments.npy"

    @property
    def labels_path(self) -> Path:
        return self.root / "labels.npy"

    def marker(self, c: int) -> Path:
        return self.root / "chunks" / f"chunk_{c:06d}.done"

    def missing(self) -> list[int]:
        return [c for c in range(self.layout.num_chunks) if not self.marker(c).exists()]

    @property
    def complete(self) -> bool:
        return not self.missing()

    def _create(self) -> None:
        """Rank 0 (or a single process): allocate the memmaps and write the manifest."""
        from bench import atomic

        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "chunks").mkdir(exist_ok=True)
        shape = (self.layout.count, self.layout.flips, 2, *self.layout.latent_shape)
        if not self.moments_path.exists():
            np.lib.format.open_memmap(self.moments_path, mode="w+", dtype=np.float16, shape=shape).flush()
        if not self.labels_path.exists():
            np.lib.format.open_memmap(self.labels_path, mode="w+", dtype=np.int64, shape=(self.layout.count,)).flush()
        if not (self.root / "manifest.json").exists():
            atomic.write_json(self.root / "manifest.json", self.manifest)

    def fill(self, dataset: Any, codec: Any, image_size: int, batch_size: int = 64, num_workers: int = 4,
             device: str | torch.device = "cpu", rank: int | None = None, world_size: int | None = None,
             log: Any = None) -> list[int]:
        """Encode this rank's share of the missing chunks; returns the chunks it wrote.

        ``dataset[i]`` must give {"image": HWC uint8 of image_size x image_size, "label": int}.
        """
        from torch.utils.data import DataLoader

        from bench import distributed as dist

        rank = dist.get_rank() if rank is None else rank
        world = dist.get_world_size() if world_size is None else world_size
        if len(dataset) != self.layout.count:
            raise BenchError(f"latent cache {self.root} expects {self.layout.count} items, the dataset has {len(dataset)}")
        if rank == 0:
            self._create()
        dist.barrier()
        missing = self.missing()
        dist.barrier()
        moments = np.load(self.moments_path, mmap_mode="r+")
        labels = np.load(self.labels_path, mmap_mode="r+")
        mine = missing[rank::world]
        for done, c in enumerate(mine):
            start, stop = self.layout.chunk_range(c)
            loader = DataLoader(_ImageItems(dataset, range(start, stop), image_size), batch_size=batch_size,
                                num_workers=num_workers, shuffle=False)
            pos = start
            for images, ys in loader:
                x = uint8_to_unit(images).to(device)
                variants = [x, torch.flip(x, dims=[3])][: self.layout.flips]
                per_flip = []
                for v in variants:
                    mean, std = codec.moments(v)
                    per_flip.append(torch.stack([mean, std], dim=1))  # [B, 2, C, h, w]
                block = torch.stack(per_flip, dim=1).to(torch.float16).cpu().numpy()
                moments[pos:pos + len(block)] = block
                labels[pos:pos + len(block)] = ys.numpy()
                pos += len(block)
            moments.flush()
            labels.flush()
            self.marker(c).write_text(json.dumps({"start": start, "stop": stop}))
            if log is not None:
                log(f"  latent cache: chunk {c + 1}/{self.layout.num_chunks} ({done + 1} of {len(mine)} on rank {rank})")
        dist.barrier()
        return mine

    def dataset(self) -> LatentDataset:
        if not self.complete:
            missing = self.missing()
            raise BenchError(f"latent cache {self.root} is incomplete: {len(missing)} of {self.layout.num_chunks} "
                             f"chunks missing (first {missing[:3]}); rerun to fill them")
        return LatentDataset(self.moments_path, self.labels_path)


class _ImageItems(torch.utils.data.Dataset):
    """Items of an IndexedDataset as (uint8 CHW tensor, label), checked for the expected size."""

    def __init__(self, dataset: Any, indices: range, image_size: int):
        self.dataset, self.indices, self.image_size = dataset, indices, image_size

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int]:
        item = self.dataset[self.indices[k]]
        image = np.asarray(item["image"])
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.shape[:2] != (self.image_size, self.image_size):
            raise BenchError(f"item {self.indices[k]} is {image.shape[1]}x{image.shape[0]}, expected "
                             f"{self.image_size}x{self.image_size} (apply the ADM centre crop first)")
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), int(item["label"])


class LatentDataset(torch.utils.data.Dataset):
    """Map-style training items (moments float16 [flips, 2, C, h, w], label) read from the cache memmaps.
    The memmap is opened lazily in each DataLoader worker."""

    def __init__(self, moments_path: Path, labels_path: Path):
        self.moments_path, self.labels_path = Path(moments_path), Path(labels_path)
        self._labels = np.load(self.labels_path, mmap_mode="r")
        self._moments: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._moments is None:
            self._moments = np.load(self.moments_path, mmap_mode="r")
        return torch.from_numpy(np.array(self._moments[i])), torch.tensor(int(self._labels[i]))
