"""QAC's smoke sanity floor: the digits Inception Score of unconditional samples (``digits_is@digits-cnn``).

Why not class_acc@digits-cnn: QAC's claims compare it with the *unconditional* EDM entry (card: class_cond
false), FFHQ and AFHQv2 have no labels, and the dossier cannot tell whether QAC's CIFAR-10 number is
class-conditional. A class-conditional smoke would make its "edm" entry the card's edm-cond, which no claim
uses. So the smoke models stay unconditional and their sanity metric must not need a requested class.

The metric: with p(y|x) the class probabilities of bench's digits classifier,

    IS = exp( mean_x KL(p(y|x) || p(y)) ),   p(y) = mean_x p(y|x)

(Salimans et al. 2016, with the digits classifier in place of Inception). It is high only when the samples are
recognised confidently AND spread over the classes: a generator that always draws the same confident "8" (the
training mean image) scores exactly 1, noise that the classifier spreads over a few classes without conviction
scores about 2, the training digits about 8.5 (of a maximum of 10). Confidence alone would be fooled by the
mean image (the classifier gives it 0.94), coverage alone by noise.

The floor is computed, not guessed: halfway from the best of four trivial generators (below) to the same
number of training digits, all scored with the same classifier and sample count. Halfway, because the trivial
score only says "not noise"; a model whose samples are as far from noise as from the data has learned digits
in the sense that class_acc's floor asks of a conditional model.
"""
from __future__ import annotations

from typing import Any

import numpy as np

METRIC = "digits_is@digits-cnn"


def inception_score(probabilities: np.ndarray) -> float:
    """exp(mean KL(p(y|x) || mean p(y|x))) of class probabilities [N, K] (rows sum to 1); 0 log 0 = 0."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError(f"inception_score needs probabilities [N, K], got shape {p.shape}")
    marginal = p.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(marginal)), 0.0)
    return float(np.exp(terms.sum(axis=1).mean()))


def trivial_generators(real: np.ndarray, n: int, seed: int) -> dict[str, np.ndarray]:
    """n uint8 [n,1,H,W] samples from each trivial generator of the training digits ``real`` (uint8 [M,1,H,W]):

    mean-image       the training mean, every sample the same (what an untrained denoiser's mean converges to)
    pixel-gaussian   independent pixels with the training mean and standard deviation of each pixel
    shuffled-pixels  training digits with their pixels permuted (the right amount of ink, no shape)
    uniform-noise    every pixel uniform in 0..255
    """
    rng = np.random.default_rng(seed)
    x = real.astype(np.float64)
    shape = (n,) + real.shape[1:]
    mean, std = x.mean(axis=0), x.std(axis=0)
    shuffled = real[rng.integers(0, len(real), n)].reshape(n, -1).copy()
    for row in shuffled:
        rng.shuffle(row)
    return {
        "mean-image": np.repeat(np.round(mean)[None].astype(np.uint8), n, axis=0),
        "pixel-gaussian": np.clip(np.round(mean + std * rng.standard_normal(shape)), 0, 255).astype(np.uint8),
        "shuffled-pixels": shuffled.reshape(shape),
        "uniform-noise": rng.integers(0, 256, shape).astype(np.uint8),
    }


def halfway_floor(trivial_value: float, data_value: float) -> float:
    """The floor: halfway from the best trivial generator's score to the training data's."""
    return trivial_value + 0.5 * (data_value - trivial_value)


def floor_reference(real: np.ndarray, n: int, seed: int, probabilities: Any) -> dict[str, Any]:
    """Scores of the trivial generators and of n training digits (drawn without replacement), and the floor.

    probabilities(uint8 images) -> [N, 10]: bench.metrics.offline_fd.digits_probabilities in the recipe."""
    rng = np.random.default_rng(seed)
    data = real[rng.choice(len(real), size=min(n, len(real)), replace=False)]
    trivial = {name: inception_score(probabilities(images))
               for name, images in trivial_generators(real, n, seed).items()}
    best = max(trivial, key=trivial.get)
    data_value = inception_score(probabilities(data))
    return {"trivial": trivial, "best_trivial": best, "trivial_value": trivial[best], "data_value": data_value,
            "floor": halfway_floor(trivial[best], data_value), "n": n, "seed": seed}
