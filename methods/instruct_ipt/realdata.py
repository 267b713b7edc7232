"""Small/paper-scale data for the all-in-one tasks, read from the dataset cards in their official layouts.

Training: PromptIR's all-in-one training sets (BSD400 + WED with Gaussian noise for the three noise levels,
Rain100L train, RESIDE OTS) and, for the two tasks PromptIR does not have, GoPro train (deblur) and Snow100K train
(desnow). Testing: CBSD68 (noise added per image, seeded), GoPro test, Rain100L, SOTS outdoor, Snow100K-L.

Training images are read once: ``crops`` random crops of ``crop`` px per image (the first ``max_images`` images of
each task), held in memory as the patch pool the shared sampler draws from. That bounds memory at paper scale
(Snow100K train has 50,000 images) at the price of fewer distinct crops than a streaming loader [I].
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.registry import BenchError

from .allinone import TASKS

NOISE_TRAIN = [("bsd400", "train"), ("wed", "train")]
TRAIN_SETS: dict[str, list[tuple[str, str]]] = {"deblur": [("gopro", "train")], "derain": [("rain100l-train", "train")],
                                                 "dehaze": [("reside-ots", "train")], "desnow": [("snow100k", "train")]}
TEST_SETS: dict[str, tuple[str, str]] = {"denoise": ("cbsd68", "test"), "deblur": ("gopro", "test"),
                                          "derain": ("rain100l", "test"), "dehaze": ("sots", "outdoor"),
                                          "desnow": ("snow100k", "test-l")}


def _base(task_name: str) -> str:
    return task_name.split("-")[0]


def required_sets(split: str) -> list[tuple[str, str]]:
    """Every (card, split) the run reads, in a fixed order."""
    if split == "test":
        return list(dict.fromkeys(TEST_SETS[_base(t.name)] for t in TASKS))
    return list(dict.fromkeys([*NOISE_TRAIN, *(s for t in TASKS if _base(t.name) != "denoise"
                                               for s in TRAIN_SETS[_base(t.name)])]))


def check_data(data_root: Path | None, train: bool) -> None:
    """One line naming the first missing folder, before any training."""
    from bench.data.cards import load_dataset_card, require_layout

    for card, split in (required_sets("train") if train else []) + required_sets("test"):
        require_layout(load_dataset_card(card), data_root, split)


def _open(card: str, split: str, data_root: Path | None):
    from bench.data.formats import open_dataset

    return open_dataset(card, split, data_root)


def _pair(item: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    if "target" in item:
        return item["target"], item["input"]
    return item["image"], None


def _random_crops(clean: np.ndarray, deg: np.ndarray, crop: int, n: int, rng: np.random.Generator):
    h, w = clean.shape[:2]
    if h < crop or w < crop:
        raise BenchError(f"a training image of {h}x{w} is smaller than the {crop}px crop")
    out = []
    for _ in range(n):
        y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        out.append((clean[y:y + crop, x:x + crop], deg[y:y + crop, x:x + crop]))
    return out


def train_pool(data_root: Path | None, crop: int, crops: int, max_images: int, seed: int
               ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{task: (clean, degraded)} float [0,1] crop pools (noise tasks: seeded Gaussian noise on BSD400+WED)."""
    from bench.data.smoke import degrade

    rng = np.random.default_rng(seed)
    pool = {}
    noise_sources = [(c, s) for c, s in NOISE_TRAIN]
    for ti, task in enumerate(TASKS):
        pairs = []
        sources = noise_sources if task.kind == "noise" else TRAIN_SETS[_base(task.name)]
        datasets = [_open(c, s, data_root) for c, s in sources]
        indices = [(d, i) for d in datasets for i in range(len(d))][:max_images]
        for d, i in indices:
            clean, deg = _pair(d[i])
            if deg is None:  # clean-only set: the noise task's degradation, seeded per image
                deg = degrade(clean, "noise", task.level, int(rng.integers(0, 2**31)))
            pairs += _random_crops(clean, deg, crop, crops, rng)
        to_t = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() / 255.0
        pool[task.name] = (to_t([p[0] for p in pairs]), to_t([p[1] for p in pairs]))
    return pool


def eval_pool(data_root: Path | None, max_images: int) -> dict[str, list[tuple[torch.Tensor, torch.Tensor]]]:
    """{task: [(clean [1,3,H,W], degraded [1,3,H,W]), ...]} whole images; CBSD68 noise seeded per image
    (image_seed(0, i): the same noisy set for every entry and seed)."""
    from bench.data.smoke import degrade, image_seed

    out = {}
    for task in TASKS:
        card, split = TEST_SETS[_base(task.name)]
        data = _open(card, split, data_root)
        items = []
        for i in range(min(len(data), max_images)):
            clean, deg = _pair(data[i])
            if deg is None:
                deg = degrade(clean, "noise", task.level, image_seed(0, i))
            to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255.0
            items.append((to_t(clean), to_t(deg)))
        out[task.name] = items
    return out
