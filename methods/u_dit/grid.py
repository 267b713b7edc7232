"""A picture of what the digits runs drew: real test digits beside each entry's samples, one row per class.

`after_reproduce` (called by `bench reproduce` after all runs) writes the grid as a PNG under the results root and
returns lines that say where it is and whether every entry cleared its sanity floor, so `make demo` ends with a
comparison a reader can check by eye.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

PER_CLASS = 8  # digits shown per class and source
SCALE = 3  # 16x16 digits drawn at 48x48
GAP = 12  # pixels between sources
PAD = 2  # pixels between digits
LABEL_WIDTH = 28
HEADER = 30


def _sample_store(run_dir: Path, seed: int, key: str) -> Any:
    """The finished sample store of one run, seed and setting, opened with the plan its manifest records."""
    from bench.train import ShardStore

    root = run_dir / "work" / str(seed) / "samples" / key
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    return ShardStore(root, total=manifest["total"], shard_size=manifest["shard_size"], fmt=manifest["format"],
                      meta=manifest["meta"])


def pick_per_class(images: np.ndarray, labels: np.ndarray, per_class: int = PER_CLASS) -> np.ndarray:
    """[10, per_class, 16, 16] uint8: the first ``per_class`` images of each class in index order (blank where a
    class has fewer)."""
    out = np.zeros((10, per_class, *images.shape[-2:]), dtype=np.uint8)
    for c in range(10):
        chosen = images[np.asarray(labels) == c][:per_class]
        out[c, :len(chosen)] = chosen.reshape(len(chosen), *images.shape[-2:])
    return out


def render(blocks: list[tuple[str, np.ndarray]], path: Path) -> Path:
    """Draw [(title, [10, k, 16, 16] uint8)] side by side, rows labelled 0..9, white digits on black tiles
    separated by PAD white pixels."""
    from PIL import Image, ImageDraw

    k, h, w = blocks[0][1].shape[1:]
    cell_h, cell_w = h * SCALE + PAD, w * SCALE + PAD
    block_w = k * cell_w
    width = LABEL_WIDTH + len(blocks) * block_w + (len(blocks) - 1) * GAP
    canvas = Image.new("L", (width, HEADER + 10 * cell_h), color=255)
    draw = ImageDraw.Draw(canvas)
    for c in range(10):
        draw.text((8, HEADER + c * cell_h + cell_h // 2 - 5), str(c), fill=0)
    for b, (title, grid) in enumerate(blocks):
        left = LABEL_WIDTH + b * (block_w + GAP)
        draw.text((left, 8), title, fill=0)
        for c in range(10):
            for j in range(k):
                tile = np.kron(grid[c, j], np.ones((SCALE, SCALE), dtype=np.uint8))
                canvas.paste(Image.fromarray(tile, mode="L"), (left + j * cell_w, HEADER + c * cell_h))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def after_reproduce(outcomes: list[Any], store: Any) -> list[str]:
    """The sample grid of the digits runs just reproduced (seed 0 where it ran, else the first seed) at their
    largest-NFE setting, and each entry's sanity standing. Returns the lines to print."""
    from bench.data.smoke import digits
    from bench.sanity import run_sanity
    from methods.u_dit.generate import setting_key

    runs = [o for o in outcomes if o.spec.dataset == "digits" and o.result.get("status") == "complete"]
    if not runs:
        return []
    lines = []
    real, real_labels = digits("test")
    blocks = [("real (test split)", pick_per_class(real, real_labels))]
    setting = max(runs[0].spec.sampler["settings"], key=lambda s: int(s["nfe"]))
    key = setting_key(setting)
    for out in runs:
        seed = 0 if 0 in out.result["seeds"] else out.result["seeds"][0]
        sample_store = _sample_store(store.run_dir(out.spec), seed, key)
        data = sample_store.load(["samples", "label"])
        sanity = run_sanity(out.result)
        accuracy = next((m["value"] for m in out.result["metrics"] if "floor" in m
                         and int(m["setting"].get("nfe", -1)) == int(setting["nfe"])), None)
        title = out.spec.entry + (f" (acc {accuracy:.2f})" if accuracy is not None else "")
        blocks.append((title, pick_per_class(data["samples"], data["label"])))
        lines.append(f"{out.spec.entry}: {sanity.status} ({sanity.detail()})")
    scale = runs[0].spec.scale
    path = render(blocks, Path(store.root) / runs[0].spec.paper / f"samples-{scale}-{key}.png")
    cleared = all(run_sanity(o.result).passed for o in runs)
    lines.append("every entry cleared its sanity floor" if cleared else
                 "NOT every entry cleared its sanity floor: the comparison is no evidence")
    lines.append(f"samples ({key}, rows = requested class): {path}")
    return lines
