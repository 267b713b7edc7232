"""fd_digits / kd_digits: the self-trained digits classifier and distances in its feature space."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bench.data.smoke import digits
from bench.metrics import offline_fd as O
from bench.registry import BenchError


@pytest.fixture(scope="module")
def sets():
    test_images, test_labels = digits("test")
    train_images, _ = digits("train")
    noise = np.random.default_rng(0).integers(0, 256, size=test_images.shape, dtype=np.uint8)
    return test_images, test_labels, train_images[:600], noise


def test_classifier_is_accurate_and_its_record_is_true(sets):
    test_images, test_labels, _, _ = sets
    path = O.ensure_digits_classifier()
    record = json.loads(path.with_suffix(".json").read_text())
    with torch.no_grad():
        predictions = O.load_classifier(path)(torch.from_numpy(test_images)).argmax(1).numpy()
    accuracy = float((predictions == test_labels).mean())
    assert accuracy >= 0.9
    assert record["test_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    from bench.metrics._assets import sha256_of

    assert record["sha256"] == sha256_of(path) and record["recipe"] == O.RECIPE


def test_training_is_deterministic_and_the_cache_is_reused(sets):
    path = O.ensure_digits_classifier()
    mtime = path.stat().st_mtime_ns
    retrained = O._train().state_dict()
    cached = torch.load(path, weights_only=True)
    assert all(torch.equal(retrained[k], cached[k]) for k in cached)  # same bits from the same recipe
    O._MEMO.clear()
    assert O.ensure_digits_classifier() == path and path.stat().st_mtime_ns == mtime  # reused, not retrained


def test_fd_digits_behaves(sets):
    test_images, _, real, noise = sets
    same = O.fd_digits(test_images, test_images)
    near = O.fd_digits(test_images, real)
    far = O.fd_digits(noise, real)
    assert abs(same.value) < 1e-6
    assert far.value > 20 * near.value > 0
    assert O.fd_digits(test_images, real).value == near.value  # deterministic across calls
    assert near.name == "fd_digits" and near.protocol["classifier_test_accuracy"] >= 0.9
    assert near.protocol["classifier_sha256"] == O.classifier_record()["sha256"]
    assert near.protocol["cuda"] is False and near.extra["n_real"] == len(real)


def test_fd_digits_equals_an_independent_frechet_computation(sets):
    from scipy import linalg

    test_images, _, real, _ = sets
    model = O.load_classifier()
    with torch.no_grad():
        f1 = model.embed(torch.from_numpy(test_images))[0].numpy()
        f2 = model.embed(torch.from_numpy(real))[0].numpy()
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    expected = np.sum((f1.mean(0) - f2.mean(0)) ** 2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert O.fd_digits(test_images, real).value == pytest.approx(expected, rel=1e-6)


def test_kd_digits_behaves(sets):
    test_images, _, real, noise = sets
    near = O.kd_digits(test_images, real, kid_subsets=20)
    far = O.kd_digits(noise, real, kid_subsets=20)
    assert abs(near.value) < 0.05 and far.value > 1.0
    assert near.name == "kd_digits" and near.protocol["kid_subset_size"] == 300 and near.protocol["kid_subsets"] == 20


def test_registered_with_torch_fidelity_and_input_errors(sets):
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    test_images, _, _, _ = sets
    assert FEATURE_EXTRACTORS_REGISTRY[O.EXTRACTOR_NAME] is O.DigitsFeatureExtractor
    with pytest.raises(BenchError, match=r"\[N,1,16,16\]"):
        O.fd_digits(np.repeat(test_images, 3, axis=1), test_images)
    with pytest.raises(BenchError, match="at least 2"):
        O.fd_digits(test_images[:1], test_images)
