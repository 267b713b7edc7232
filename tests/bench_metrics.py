"""Benchmarks (pytest-benchmark), not timed tests: they measure, they never assert a speed.

`make bench` runs them with timing; in the ordinary test run (--benchmark-disable) each body runs once, so
the code paths stay exercised. Goals from issue 3, read off the report: adapter overhead over calling pyiqa
directly <= 5%; FID-style evaluation with cached reference statistics >= 10x faster than uncached.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.data.smoke import digits, photos
from bench.metrics import generative, offline_fd, restoration  # offline_fd registers its extractor


@pytest.fixture(scope="module")
def image_pairs():
    rng = np.random.default_rng(0)
    refs = []
    for photo in photos("train"):
        h, w = photo.shape[:2]
        for k in range(8):
            y, x = rng.integers(0, h - 64), rng.integers(0, w - 64)
            refs.append(photo[y:y + 64, x:x + 64])
    refs = refs[:100]
    noisy = [np.clip(r.astype(np.int16) + rng.integers(-8, 9, r.shape), 0, 255).astype(np.uint8) for r in refs]
    return noisy, refs


def test_psnr_y_adapter(benchmark, image_pairs):
    preds, refs = image_pairs
    result = benchmark(restoration.psnr_y_matlab, preds, refs, crop_border=4)
    assert result.n == len(refs)


def test_psnr_y_pyiqa_direct(benchmark, image_pairs):
    import pyiqa

    metric = pyiqa.create_metric("psnr", test_y_channel=True, crop_border=4, device="cpu")
    preds, refs = image_pairs
    to_t = lambda imgs: torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).double() / 255.0  # noqa: E731
    out = benchmark(lambda: metric(to_t(preds), to_t(refs)))
    assert out.shape[0] == len(refs)


def test_ssim_y_adapter(benchmark, image_pairs):
    preds, refs = image_pairs
    result = benchmark.pedantic(restoration.ssim_y_matlab, args=(preds[:20], refs[:20]),
                                kwargs={"crop_border": 4}, rounds=1, iterations=1)
    assert 0 < result.value < 1


def _fd_digits_reference(use_cache: bool):
    real, _ = digits("test")
    return generative.reference_statistics(torch.from_numpy(real), extractor=offline_fd.EXTRACTOR_NAME,
                                           use_cache=use_cache)


def test_reference_statistics_uncached(benchmark):
    mu, sigma, info = benchmark.pedantic(_fd_digits_reference, args=(False,), rounds=3, iterations=1)
    assert info["cache"] == "off" and mu.shape[0] == sigma.shape[0]


def test_reference_statistics_cached(benchmark):
    _fd_digits_reference(True)  # fill the cache
    mu, sigma, info = benchmark.pedantic(_fd_digits_reference, args=(True,), rounds=3, iterations=1)
    assert info["cache"] == "hit"
