"""One-off converters from official distribution formats to the folder layouts the loaders read."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.data.base import require_file
from bench.registry import BenchError

# Variable names inside SIDD's sRGB validation files, as Restormer/NAFNet's SIDD scripts read them.
SIDD_NOISY_KEY = "ValidationNoisyBlocksSrgb"
SIDD_GT_KEY = "ValidationGtBlocksSrgb"


def _load_blocks(path: Path, key: str) -> np.ndarray:
    from scipy.io import loadmat

    try:
        data = loadmat(path)
    except (ValueError, NotImplementedError, OSError) as exc:
        raise BenchError(f"cannot read MATLAB file {path}: {str(exc).splitlines()[0]}") from None
    if key not in data:
        names = sorted(k for k in data if not k.startswith("__"))
        raise BenchError(f"{path} has no variable {key!r} (it has {', '.join(names) or 'none'})")
    blocks = np.asarray(data[key])
    if blocks.ndim != 5 or blocks.shape[-1] != 3 or blocks.dtype != np.uint8:
        raise BenchError(f"{path}:{key} should be uint8 [images, blocks, H, W, 3], got {blocks.dtype} {blocks.shape}")
    return blocks


def sidd_blocks_to_folders(noisy_mat: str | Path, gt_mat: str | Path, out_dir: str | Path,
                           noisy_key: str = SIDD_NOISY_KEY, gt_key: str = SIDD_GT_KEY) -> int:
    """Write SIDD's validation blocks (40 images x 32 blocks of 256x256 in two .mat files) as PNG pairs
    `out_dir/input/<image>_<block>.png` and `out_dir/target/<image>_<block>.png`; returns the pair count
    (1,280 for the official files)."""
    from PIL import Image

    noisy = _load_blocks(require_file(Path(noisy_mat), "SIDD noisy blocks"), noisy_key)
    gt = _load_blocks(require_file(Path(gt_mat), "SIDD ground-truth blocks"), gt_key)
    if noisy.shape != gt.shape:
        raise BenchError(f"SIDD noisy blocks {noisy.shape} and ground truth {gt.shape} differ in shape")
    out = Path(out_dir)
    for sub in ("input", "target"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for i in range(noisy.shape[0]):
        for b in range(noisy.shape[1]):
            name = f"{i:02d}_{b:02d}.png"
            Image.fromarray(noisy[i, b]).save(out / "input" / name)
            Image.fromarray(gt[i, b]).save(out / "target" / name)
    return noisy.shape[0] * noisy.shape[1]
