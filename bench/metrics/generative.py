"""Generative dialects: FID / KID / IS between image sets (torch-fidelity) and FID against a reference .npz.

Images are uint8 NCHW (numpy or torch), a folder of PNG/JPEG files, or a torch Dataset of uint8 CHW tensors.

* ``fid@torch-fidelity``, ``kid@torch-fidelity``, ``isc@torch-fidelity``: ``torch_fidelity.calculate_metrics`` on
  CPU (cuda=False), no disk cache, no worker processes, files in sorted order. Any torch-fidelity feature
  extractor can be named; the dialect name is only used for torch-fidelity's ``inception-v3-compat`` (the TF
  2015-12-05 Inception), anything else is labelled ``fd@torch-fidelity:<extractor>`` (never "FID").
* ``fid@ref-npz``: features of the samples accumulate in float64 sums (n, sum x, sum x x^T), so the statistics
  do not depend on batch size or on how samples are split over processes (``FeatureStats.merge`` /
  ``all_reduce``); the Fréchet distance to the reference ``mu``/``sigma`` (ADM's VIRTUAL_imagenet256_labeled.npz
  and EDM's fid-refs/*.npz both use these keys) uses ``scipy.linalg.sqrtm`` as ADM's and EDM's evaluators do.
  A reference given as images is reduced to statistics once and cached under
  ``<cache_dir>/fid-stats/`` by a content fingerprint (images + extractor + layer + weights).
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import numpy as np

from bench.metrics import _assets
from bench.metrics.base import MetricResult, library_version
from bench.registry import BenchError

INCEPTION = "inception-v3-compat"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# torch-fidelity's own defaults, written out so that the record states them and an upstream change cannot
# silently move our numbers.
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
ISC_SPLITS = 10
RNG_SEED = 2020


# ---------------------------------------------------------------------------------------------------------------
# Feature statistics and the Fréchet distance
# ---------------------------------------------------------------------------------------------------------------
class FeatureStats:
    """Running float64 sums of features: n, sum x, sum x x^T. Merging shards gives the statistics of the union."""

    def __init__(self, dim: int):
        self.dim = dim
        self.n = 0
        self.sum = np.zeros(dim, dtype=np.float64)
        self.sum_outer = np.zeros((dim, dim), dtype=np.float64)

    def update(self, features: Any) -> FeatureStats:
        x = np.asarray(features.detach().cpu().numpy() if hasattr(features, "detach") else features,
                       dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise BenchError(f"expected features of shape [N, {self.dim}], got {x.shape}")
        self.n += x.shape[0]
        self.sum += x.sum(axis=0)
        self.sum_outer += x.T @ x
        return self

    def merge(self, other: FeatureStats) -> FeatureStats:
        if other.dim != self.dim:
            raise BenchError(f"cannot merge {other.dim}-d statistics into {self.dim}-d ones")
        self.n += other.n
        self.sum += other.sum
        self.sum_outer += other.sum_outer
        return self

    def all_reduce(self) -> FeatureStats:
        """Sum the statistics over all torch.distributed ranks (float64), a no-op without a process group.
        The packed sums travel on the group's own device (the process's GPU under NCCL, which rejects CPU
        tensors; float64 is exact there too) and come back to the CPU."""
        import torch
        import torch.distributed as dist

        from bench.distributed import collective_device

        if not (dist.is_available() and dist.is_initialized()):
            return self
        packed = torch.from_numpy(np.concatenate([[float(self.n)], self.sum, self.sum_outer.ravel()]))
        packed = packed.to(collective_device())
        dist.all_reduce(packed)
        flat = packed.cpu().numpy()
        self.n = int(round(flat[0]))
        self.sum = flat[1:1 + self.dim].copy()
        self.sum_outer = flat[1 + self.dim:].reshape(self.dim, self.dim).copy()
        return self

    @property
    def mu(self) -> np.ndarray:
        return self.sum / self.n

    @property
    def sigma(self) -> np.ndarray:
        """Unbiased covariance (ddof = 1), the estimator of np.cov used by the ADM, EDM and TTUR scripts."""
        if self.n < 2:
            raise BenchError(f"a covariance needs at least 2 samples, got {self.n}")
        mu = self.mu
        return (self.sum_outer - self.n * np.outer(mu, mu)) / (self.n - 1)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)), in float64, real part of sqrtm (EDM/ADM convention)."""
    from scipy import linalg

    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise BenchError(f"statistics differ in dimension: {mu1.shape[0]}-d vs {mu2.shape[0]}-d features")
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # singular product: the ADM/pytorch-fid fallback, a tiny ridge on both covariances
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    diff = mu1 - mu2
    return float(np.real(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)))


# ---------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------
def _image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise BenchError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {folder}")
    return files


def _load_image_chw(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except OSError as exc:
        raise BenchError(f"cannot read image {path}: {exc}") from None
    return arr.transpose(2, 0, 1)


def _as_uint8_nchw(images: Any) -> Any:
    import torch

    x = images if torch.is_tensor(images) else torch.from_numpy(np.asarray(images))
    if x.dtype != torch.uint8:
        raise BenchError(f"images must be uint8 NCHW (quantise samples first), got dtype {x.dtype}")
    if x.ndim != 4:
        raise BenchError(f"images must be uint8 NCHW, got shape {tuple(x.shape)}")
    return x.contiguous()


def as_dataset(images: Any) -> Any:
    """uint8 NCHW array/tensor, a folder path or a Dataset -> a torch Dataset of uint8 CHW tensors."""
    import torch
    from torch.utils.data import Dataset

    class UInt8Images(Dataset):
        def __init__(self, tensor: torch.Tensor):
            self.tensor = tensor

        def __len__(self) -> int:
            return self.tensor.shape[0]

        def __getitem__(self, i: int) -> torch.Tensor:
            return self.tensor[i]

    class ImageFolderFiles(Dataset):
        def __init__(self, files: list[Path]):
            self.files = files

        def __len__(self) -> int:
            return len(self.files)

        def __getitem__(self, i: int) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(_load_image_chw(self.files[i])))

    if isinstance(images, (str, Path)):
        folder = Path(images)
        if not folder.is_dir():
            raise BenchError(f"image folder {folder} does not exist")
        return ImageFolderFiles(_image_files(folder))
    if isinstance(images, Dataset):
        return images
    return UInt8Images(_as_uint8_nchw(images))


def _batches(dataset: Any, batch_size: int) -> Iterator[Any]:
    import torch

    for start in range(0, len(dataset), batch_size):
        yield torch.stack([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])


def fingerprint_images(images: Any) -> str:
    """sha256 over the content of an image set (array bytes + shape, or sorted file names + bytes)."""
    digest = hashlib.sha256()
    if isinstance(images, (str, Path)):
        for path in _image_files(Path(images)):
            digest.update(path.name.encode() + b"\0")
            digest.update(path.read_bytes())
    else:
        x = _as_uint8_nchw(images).numpy()
        digest.update(repr((x.shape, str(x.dtype))).encode())
        digest.update(np.ascontiguousarray(x).tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# Feature extractors (torch-fidelity's registry)
# ---------------------------------------------------------------------------------------------------------------
def extractor_weights(extractor: str) -> str | None:
    """Local weights file for a feature extractor that would otherwise download (None: it needs none)."""
    if extractor == INCEPTION:
        return str(_assets.require("inception-v3-compat"))
    from bench.metrics import offline_fd  # registers bench's digits extractor with torch-fidelity

    if extractor == offline_fd.EXTRACTOR_NAME:
        return str(offline_fd.ensure_digits_classifier())
    return None


def _registered_extractors() -> dict[str, Any]:
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    from bench.metrics import offline_fd  # noqa: F401  (registration side effect)

    return FEATURE_EXTRACTORS_REGISTRY


def resolve_layer(extractor: str, layer: str | None = None, metric: str = "fid") -> str:
    registry = _registered_extractors()
    if extractor not in registry:
        raise BenchError(f"unknown feature extractor {extractor!r}; registered: {', '.join(sorted(registry))}")
    return layer or registry[extractor].get_default_feature_layer_for_metric(metric)


def create_extractor(extractor: str, layer: str | None = None, metric: str = "fid") -> tuple[Any, str, str | None]:
    """(torch-fidelity feature extractor on CPU, feature layer, weights path)."""
    from torch_fidelity.utils import create_feature_extractor

    layer = resolve_layer(extractor, layer, metric)
    weights = extractor_weights(extractor)
    fe = create_feature_extractor(extractor, [layer], cuda=False, verbose=False,
                                  feature_extractor_weights_path=weights)
    return fe, layer, weights


def feature_statistics(images: Any, extractor: str = INCEPTION, layer: str | None = None,
                       batch_size: int = 50) -> tuple[FeatureStats, dict[str, Any]]:
    """Float64 statistics of one image set in an extractor's feature space, plus what fixed them."""
    import torch

    fe, layer, weights = create_extractor(extractor, layer)
    dataset = as_dataset(images)
    stats: FeatureStats | None = None
    with torch.no_grad():
        for batch in _batches(dataset, batch_size):
            feats = fe.convert_features_tuple_to_dict(fe(batch))[layer].reshape(batch.shape[0], -1)
            stats = stats or FeatureStats(feats.shape[1])
            stats.update(feats)
    if stats is None:
        raise BenchError("no images to extract features from")
    info = {"feature_extractor": extractor, "feature_layer": layer, "weights": weights,
            "weights_sha256": _assets.sha256_of(Path(weights)) if weights else None}
    return stats, info


def _load_reference_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise BenchError(f"reference statistics file {path} does not exist")
    with np.load(path) as ref:  # lazy: ADM's file also holds 10k images under arr_0, which we never read
        if "mu" not in ref.files or "sigma" not in ref.files:
            raise BenchError(f"{path} has keys {ref.files}, expected 'mu' and 'sigma' (ADM/EDM reference format)")
        return np.asarray(ref["mu"], np.float64), np.asarray(ref["sigma"], np.float64)


def reference_statistics(reference: Any, extractor: str = INCEPTION, layer: str | None = None,
                         batch_size: int = 50, use_cache: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """mu, sigma of a reference: an ADM/EDM ``.npz`` (read directly) or images (extracted once, then cached)."""
    if isinstance(reference, (str, Path)) and Path(reference).suffix == ".npz":
        mu, sigma = _load_reference_npz(Path(reference))
        fp = hashlib.sha256(mu.tobytes() + sigma.tobytes()).hexdigest()
        return mu, sigma, {"reference": str(reference), "reference_kind": "npz mu/sigma",
                           "reference_fingerprint": fp, "cache": "n/a"}
    layer = resolve_layer(extractor, layer)
    weights = extractor_weights(extractor)
    weights_sha = _assets.sha256_of(Path(weights)) if weights else "none"
    key = hashlib.sha256(f"{fingerprint_images(reference)}|{extractor}|{layer}|{weights_sha}".encode()).hexdigest()
    cache_file = _assets.cache_dir() / "fid-stats" / f"{key}.npz"
    info = {"reference": str(reference) if isinstance(reference, (str, Path)) else "in-memory images",
            "reference_kind": "images", "reference_fingerprint": key, "cache_file": str(cache_file)}
    if use_cache and cache_file.is_file():
        mu, sigma = _load_reference_npz(cache_file)
        return mu, sigma, {**info, "cache": "hit"}
    stats, _ = feature_statistics(reference, extractor, layer, batch_size)
    mu, sigma = stats.mu, stats.sigma
    if use_cache:
        from bench.atomic import write_bytes

        buffer = io.BytesIO()
        np.savez(buffer, mu=mu, sigma=sigma, n=stats.n)
        write_bytes(cache_file, buffer.getvalue())
    return mu, sigma, {**info, "cache": "miss" if use_cache else "off", "n_reference": stats.n}


def fid_ref_npz(samples: Any, reference: Any, feature_extractor: str = INCEPTION, feature_layer: str | None = None,
                batch_size: int = 50, use_cache: bool = True) -> MetricResult:
    """``fid@ref-npz``: Fréchet distance of the samples' features to a reference's mu/sigma (float64)."""
    stats, info = feature_statistics(samples, feature_extractor, feature_layer, batch_size)
    mu_ref, sigma_ref, ref_info = reference_statistics(reference, feature_extractor, info["feature_layer"],
                                                       batch_size, use_cache)
    if mu_ref.shape[0] != stats.dim:
        raise BenchError(f"reference has {mu_ref.shape[0]}-d statistics but {feature_extractor}/"
                         f"{info['feature_layer']} features are {stats.dim}-d")
    value = frechet_distance(stats.mu, stats.sigma, mu_ref, sigma_ref)
    name = "fid@ref-npz" if feature_extractor == INCEPTION else f"fd@ref:{feature_extractor}"
    protocol = {**info, **{k: v for k, v in ref_info.items() if k != "cache"},
                "statistics": "float64 sums, unbiased covariance (ddof=1)",
                "sqrtm": "scipy.linalg.sqrtm(sigma1 @ sigma2), real part; 1e-6 ridge if not finite",
                "torch_fidelity": library_version("torch-fidelity"), "scipy": library_version("scipy")}
    return MetricResult(name=name, value=value, n=stats.n, per_item=None, protocol=protocol,
                        extra={"reference_cache": ref_info.get("cache")})


# ---------------------------------------------------------------------------------------------------------------
# torch-fidelity between two image sets
# ---------------------------------------------------------------------------------------------------------------
def _fidelity_input(images: Any) -> Any:
    if isinstance(images, (str, Path)):
        if not Path(images).is_dir():
            raise BenchError(f"image folder {images} does not exist")
        return str(images)
    return as_dataset(images)


def _count(images: Any) -> int:
    return len(as_dataset(images))


def fidelity_metrics(input1: Any, input2: Any | None, *, fid: bool = False, kid: bool = False, isc: bool = False,
                     feature_extractor: str = INCEPTION, feature_layer: str | None = None, batch_size: int = 64,
                     kid_subsets: int = KID_SUBSETS, kid_subset_size: int | None = None,
                     isc_splits: int = ISC_SPLITS, rng_seed: int = RNG_SEED) -> tuple[dict[str, float], dict]:
    """Run torch_fidelity.calculate_metrics on CPU with every option explicit; returns (metrics, protocol)."""
    import torch_fidelity

    resolve_layer(feature_extractor, feature_layer)  # validates the name
    weights = extractor_weights(feature_extractor)
    n1 = _count(input1)
    n2 = _count(input2) if input2 is not None else None
    options: dict[str, Any] = dict(
        input1=_fidelity_input(input1), cuda=False, fid=fid, kid=kid, isc=isc, verbose=False,
        feature_extractor=feature_extractor, feature_extractor_weights_path=weights, batch_size=batch_size,
        cache=False,           # no hidden on-disk feature caches: every number is recomputed from its inputs
        save_cpu_ram=True,     # DataLoader without worker processes (deterministic, and cheap on 2 cores)
        samples_shuffle=False, samples_find_deep=False, samples_find_ext="png,jpg,jpeg,bmp,webp",
        rng_seed=rng_seed, isc_splits=isc_splits, kid_subsets=kid_subsets,
    )
    if input2 is not None:
        options["input2"] = _fidelity_input(input2)
    if kid:
        # torch-fidelity's default subset size is 1000 and it refuses larger-than-set subsets: small (smoke) sets
        # use their smaller size, and the record says so.
        options["kid_subset_size"] = kid_subset_size or min(KID_SUBSET_SIZE, n1, n2 or n1)
    if feature_layer is not None:
        for metric, on in (("fid", fid), ("kid", kid), ("isc", isc)):
            if on:
                options[f"feature_layer_{metric}"] = feature_layer
    try:
        metrics = torch_fidelity.calculate_metrics(**options)
    except ValueError as exc:  # torch-fidelity's vassert -> ValueError with a readable message
        raise BenchError(f"torch-fidelity: {exc}") from None
    protocol = {key: value for key, value in options.items() if key not in ("input1", "input2")}
    protocol.update(n1=n1, n2=n2, torch_fidelity=library_version("torch-fidelity"),
                    weights_sha256=_assets.sha256_of(Path(weights)) if weights else None)
    return metrics, protocol


_OTHER_FEATURES_LABEL = {"fid@torch-fidelity": "fd", "kid@torch-fidelity": "kd", "isc@torch-fidelity": "is"}


def _label(dialect: str, feature_extractor: str) -> str:
    """The dialect name for the TF Inception; a plainly different label for any other feature space."""
    if feature_extractor == INCEPTION:
        return dialect
    return f"{_OTHER_FEATURES_LABEL[dialect]}@torch-fidelity:{feature_extractor}"


def fid_two_sets(fake: Any, real: Any, feature_extractor: str = INCEPTION, feature_layer: str | None = None,
                 batch_size: int = 64) -> MetricResult:
    """``fid@torch-fidelity`` between generated and real images."""
    metrics, protocol = fidelity_metrics(fake, real, fid=True, feature_extractor=feature_extractor,
                                         feature_layer=feature_layer, batch_size=batch_size)
    return MetricResult(name=_label("fid@torch-fidelity", feature_extractor),
                        value=float(metrics["frechet_inception_distance"]), n=protocol["n1"], protocol=protocol)


def kid_two_sets(fake: Any, real: Any, feature_extractor: str = INCEPTION, feature_layer: str | None = None,
                 batch_size: int = 64, kid_subsets: int = KID_SUBSETS,
                 kid_subset_size: int | None = None) -> MetricResult:
    """``kid@torch-fidelity``: mean over subsets of the unbiased MMD^2 with a cubic polynomial kernel."""
    metrics, protocol = fidelity_metrics(fake, real, kid=True, feature_extractor=feature_extractor,
                                         feature_layer=feature_layer, batch_size=batch_size,
                                         kid_subsets=kid_subsets, kid_subset_size=kid_subset_size)
    return MetricResult(name=_label("kid@torch-fidelity", feature_extractor),
                        value=float(metrics["kernel_inception_distance_mean"]), n=protocol["n1"], protocol=protocol,
                        extra={"std_over_subsets": float(metrics["kernel_inception_distance_std"])})


def isc(images: Any, feature_extractor: str = INCEPTION, batch_size: int = 64,
        isc_splits: int = ISC_SPLITS) -> MetricResult:
    """``isc@torch-fidelity``: Inception Score (mean over splits) of one image set."""
    metrics, protocol = fidelity_metrics(images, None, isc=True, feature_extractor=feature_extractor,
                                         batch_size=batch_size, isc_splits=isc_splits)
    return MetricResult(name=_label("isc@torch-fidelity", feature_extractor),
                        value=float(metrics["inception_score_mean"]), n=protocol["n1"], protocol=protocol,
                        extra={"std_over_splits": float(metrics["inception_score_std"])})
