"""Offline generative dialects ``fd_digits`` / ``kd_digits``: Fréchet and kernel distances in the feature space of a
small CNN that bench trains itself on the embedded digits (bench.data.smoke.digits, uint8 [N,1,16,16]).

No Inception weights can be downloaded in CI, so smoke runs measure sample quality here instead. The numbers are
NOT FID/KID and are never labelled so. The classifier is trained deterministically on CPU (fixed seeds, one
thread, fixed data order) in about 10 s, cached as ``$BENCH_ASSETS/digits-cnn-v1.pt`` with a sidecar
``digits-cnn-v1.json`` recording its sha256, recipe and held-out accuracy on digits 'test'. It is registered as
the torch-fidelity feature extractor ``bench-digits-cnn``, so the distances come from torch-fidelity's own
FID/KID code (features are handed over in float64, so its statistics are float64 too).
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch_fidelity import FeatureExtractorBase, register_feature_extractor
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from bench.metrics import _assets
from bench.metrics.base import MetricResult
from bench.registry import BenchError

EXTRACTOR_NAME = "bench-digits-cnn"
FEATURE_DIM = 64
ASSET_NAME = "digits-cnn"
# Everything that determines the trained weights; a change here retrains (the cached file's recipe must match).
RECIPE = {
    "version": 1,
    "architecture": "conv3x3(1->16)-relu-maxpool2, conv3x3(16->32)-relu-maxpool2, fc(512->64), relu, fc(64->10)",
    "input": "uint8 / 255",
    "data": "bench.data.smoke.digits('train'), 1497 images, no augmentation",
    "optimizer": "Adam lr 2e-3, batch 64, 10 epochs, seed 0, torch.randperm order per epoch",
    "features": "fc1 output before ReLU, standardised per dimension by its mean/std over the train split",
    "threads": 1,
    "inference": "float64",
}


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 4 * 4, FEATURE_DIM)
        self.fc2 = nn.Linear(FEATURE_DIM, 10)
        # A fixed affine map of the features, set once after training: unit-scale features keep the cubic KID
        # kernel in a sensible range and make distances comparable between retrained copies.
        self.register_buffer("feature_mean", torch.zeros(FEATURE_DIM))
        self.register_buffer("feature_std", torch.ones(FEATURE_DIM))

    def embed(self, x_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(penultimate features, logits). The features are taken before the ReLU: after it, dead units have zero
        variance and the covariance of a few hundred samples becomes singular, which destabilises sqrtm."""
        x = x_uint8.to(self.conv1.weight.dtype) / 255.0
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        features = self.fc1(x.flatten(1))
        return (features - self.feature_mean) / self.feature_std, self.fc2(F.relu(features))

    def forward(self, x_uint8: torch.Tensor) -> torch.Tensor:
        return self.embed(x_uint8)[1]


def _train(seed: int = 0, epochs: int = 10, batch_size: int = 64, lr: float = 2e-3) -> DigitsCNN:
    from bench.data.smoke import digits

    images, labels = digits("train")
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # reductions in a fixed order: the same bits on every run of this machine
    try:
        # leave the caller's global RNG untouched, and train even if called under torch.no_grad()
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            torch.manual_seed(seed)
            model = DigitsCNN()
            optimizer = torch.optim.Adam(model.parameters(), lr=lr)
            model.train()
            for _ in range(epochs):
                order = torch.randperm(len(x))
                for start in range(0, len(x), batch_size):
                    idx = order[start:start + batch_size]
                    loss = F.cross_entropy(model(x[idx]), y[idx])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
        model.eval()
        with torch.no_grad():
            raw, _ = model.embed(x)  # buffers are still the identity map here
            model.feature_mean.copy_(raw.mean(0))
            model.feature_std.copy_(raw.std(0).clamp_min(1e-6))
    finally:
        torch.set_num_threads(threads)
    return model


@torch.no_grad()
def held_out_accuracy(model: DigitsCNN) -> float:
    from bench.data.smoke import digits

    images, labels = digits("test")
    predictions = model(torch.from_numpy(images)).argmax(1).numpy()
    return float((predictions == labels).mean())


def _paths() -> tuple[Path, Path]:
    """The classifier lives with the other assets ($BENCH_ASSETS), so `bench assets` shows whether it exists."""
    weights = _assets.asset_path(ASSET_NAME)
    return weights, weights.with_suffix(".json")


_MEMO: dict[str, Any] = {}


def classifier_record() -> dict[str, Any]:
    """The sidecar record of the cached classifier (training it first if needed)."""
    ensure_digits_classifier()
    return dict(_MEMO["record"])


def ensure_digits_classifier() -> Path:
    """Path of the trained classifier: reused when its sidecar's recipe and sha256 match, else (re)trained."""
    from bench.atomic import write_bytes, write_json

    weights, sidecar = _paths()
    if _MEMO.get("path") == weights and weights.is_file():
        return weights
    if weights.is_file() and sidecar.is_file():
        record = json.loads(sidecar.read_text())
        if record.get("recipe") == RECIPE and record.get("sha256") == _assets.sha256_of(weights):
            _MEMO.update(path=weights, record=record)
            return weights
    start = time.perf_counter()
    model = _train()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    write_bytes(weights, buffer.getvalue())
    record = {"sha256": _assets.sha256_of(weights), "test_accuracy": held_out_accuracy(load_classifier(weights)), "recipe": RECIPE,
              "torch": torch.__version__, "train_seconds": round(time.perf_counter() - start, 2)}
    write_json(sidecar, record)
    _MEMO.update(path=weights, record=record)
    return weights


def load_classifier(path: Path | str | None = None) -> DigitsCNN:
    model = DigitsCNN()
    model.load_state_dict(torch.load(path or ensure_digits_classifier(), map_location="cpu", weights_only=True))
    # inference in float64: per-sample features then do not depend on the batch size (float32 CPU kernels
    # change their blocking, and so their last bits, with it), and the net is small enough for it to be free
    return model.double().eval().requires_grad_(False)


class DigitsFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity feature extractor over uint8 [N,1,16,16] digits: '64' (penultimate) and 'logits'."""

    def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(name, features_list)
        self.net = load_classifier(feature_extractor_weights_path)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("64", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return {"isc": "logits"}.get(metric, "64")

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return torch.zeros(1, 1, 16, 16, dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if x.dtype != torch.uint8 or x.ndim != 4 or tuple(x.shape[1:]) != (1, 16, 16):
            raise BenchError(f"{EXTRACTOR_NAME} takes uint8 [N,1,16,16] digits, got {x.dtype} {tuple(x.shape)}")
        features, logits = self.net.embed(x)
        provided = {"64": features, "logits": logits}
        return tuple(provided[name].double() for name in self.features_list)


if EXTRACTOR_NAME not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor(EXTRACTOR_NAME, DigitsFeatureExtractor)


def _check_digits(images: Any, what: str) -> torch.Tensor:
    x = images if torch.is_tensor(images) else torch.from_numpy(np.asarray(images))
    if x.dtype != torch.uint8 or x.ndim != 4 or tuple(x.shape[1:]) != (1, 16, 16):
        raise BenchError(f"{what}: expected uint8 digits of shape [N,1,16,16], got {x.dtype} {tuple(x.shape)}")
    if x.shape[0] < 2:
        raise BenchError(f"{what}: need at least 2 images, got {x.shape[0]}")
    return x


def _provenance() -> dict[str, Any]:
    record = classifier_record()
    path, _ = _paths()
    return {"classifier": EXTRACTOR_NAME, "classifier_file": str(path), "classifier_sha256": record["sha256"],
            "classifier_test_accuracy": record["test_accuracy"], "classifier_recipe_version": RECIPE["version"]}


def fd_digits(fake: Any, real: Any, batch_size: int = 500) -> MetricResult:
    """``fd_digits``: Fréchet distance of the 64-d digits-CNN features of two uint8 [N,1,16,16] sets."""
    from bench.metrics.generative import fidelity_metrics

    fake, real = _check_digits(fake, "fake"), _check_digits(real, "real")
    metrics, protocol = fidelity_metrics(fake, real, fid=True, feature_extractor=EXTRACTOR_NAME,
                                         batch_size=batch_size)
    protocol.update(_provenance(), feature_layer="64 (pre-ReLU penultimate, train-standardised)")
    return MetricResult(name="fd_digits", value=float(metrics["frechet_inception_distance"]), n=len(fake),
                        protocol=protocol, extra={"n_real": len(real)})


def kd_digits(fake: Any, real: Any, batch_size: int = 500, kid_subsets: int = 100,
              kid_subset_size: int | None = None) -> MetricResult:
    """``kd_digits``: KID-style kernel distance (cubic polynomial, unbiased MMD^2) in the same features."""
    from bench.metrics.generative import fidelity_metrics

    fake, real = _check_digits(fake, "fake"), _check_digits(real, "real")
    metrics, protocol = fidelity_metrics(fake, real, kid=True, feature_extractor=EXTRACTOR_NAME,
                                         batch_size=batch_size, kid_subsets=kid_subsets,
                                         kid_subset_size=kid_subset_size)
    protocol.update(_provenance(), feature_layer="64 (pre-ReLU penultimate, train-standardised)")
    return MetricResult(name="kd_digits", value=float(metrics["kernel_inception_distance_mean"]), n=len(fake),
                        protocol=protocol, extra={"n_real": len(real),
                                                  "std_over_subsets": float(metrics["kernel_inception_distance_std"])})


def digits_probabilities(images: Any, batch_size: int = 500) -> np.ndarray:
    """Class probabilities [N,10] (float64) of bench's digits classifier for uint8 [N,1,16,16] digits.

    The per-sample signal behind the sanity floors of the digits smoke sets (bench/sanity.py): the
    classifier's class against the requested class for class-conditional samples, its confidence for
    unconditional ones."""
    x = _check_digits(images, "digits")
    net = load_classifier()
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            out.append(torch.softmax(net(x[start:start + batch_size]), dim=1).numpy())
    return np.concatenate(out).astype(np.float64)
