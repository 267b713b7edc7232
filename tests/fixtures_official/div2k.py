"""DIV2K and the EDSR benchmark sets (Set5, Set14, B100, Urban100, Manga109), tiny, in their official layouts.

Layouts (datasets/div2k.yaml, datasets/set5.yaml ... and bench.data.folders.PairedSRFolder read them):
* DIV2K (https://data.vision.ee.ethz.ch/cvl/DIV2K/, the unzipped DIV2K_train_HR.zip and
  DIV2K_train_LR_bicubic_X{2,3,4}.zip): ``DIV2K/DIV2K_train_HR/0001.png`` with
  ``DIV2K/DIV2K_train_LR_bicubic/X2/0001x2.png``; the same for ``valid`` (ids 0801...).
* EDSR's benchmark.tar (https://cv.snu.ac.kr/research/EDSR/benchmark.tar): ``benchmark/Set5/HR/baby.png`` with
  ``benchmark/Set5/LR_bicubic/X2/babyx2.png``; Manga109 is not in that archive but is laid out the same way by
  BasicSR-style preparation, which is what the card expects.
Images are smooth random colour fields (so bicubic is a sensible baseline) and the LR files are made with
bench.data.imresize, the MATLAB-compatible bicubic the official LR files were made with. HR sides are not
multiples of every scale (as in the real sets), so the loader's crop-to-LR-times-scale path runs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# File stems as in the official releases (the first few of each).
BENCHMARK_STEMS = {
    "Set5": ["baby", "bird", "butterfly"],
    "Set14": ["baboon", "barbara"],
    "B100": ["3096", "8023"],
    "Urban100": ["img001", "img002"],
    "Manga109": ["AisazuNihaIrarenai", "AkkeraKanjinchou"],
}


def smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """uint8 HxWx3: a coarse random grid upsampled with bilinear weights, plus a little noise (texture)."""
    coarse = rng.uniform(0, 255, size=(height // 8 + 2, width // 8 + 2, 3))
    ys = np.linspace(0, coarse.shape[0] - 1.001, height)
    xs = np.linspace(0, coarse.shape[1] - 1.001, width)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x0 + 1] * fx
    bottom = coarse[y0 + 1][:, x0] * (1 - fx) + coarse[y0 + 1][:, x0 + 1] * fx
    image = top * (1 - fy) + bottom * fy + rng.normal(0, 4, size=(height, width, 3))
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _write_pair(hr: np.ndarray, stem: str, hr_dir: Path, lr_dir_of: dict[int, Path], lr_suffix: str) -> None:
    from PIL import Image

    from bench.data.imresize import bicubic_lr

    hr_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(hr).save(hr_dir / f"{stem}.png")
    for s, lr_dir in lr_dir_of.items():
        lr_dir.mkdir(parents=True, exist_ok=True)
        _, lr = bicubic_lr(hr, s)  # modcrop then MATLAB bicubic, as the official LR files
        Image.fromarray(lr).save(lr_dir / f"{stem}{lr_suffix.format(scale=s)}.png")


def write_div2k(root: Path, n_train: int = 2, n_valid: int = 1, size: tuple[int, int] = (196, 212),
                scales: tuple[int, ...] = (2, 3, 4), seed: int = 0) -> Path:
    """DIV2K/ under ``root`` (train ids 0001.., valid ids 0801..); returns ``root``. The default size leaves
    a 48x48 LR patch (EDSR's and SwinIR's) at x4."""
    rng = np.random.default_rng(seed)
    base = Path(root) / "DIV2K"
    for split, first, n in (("train", 1, n_train), ("valid", 801, n_valid)):
        lr_dirs = {s: base / f"DIV2K_{split}_LR_bicubic" / f"X{s}" for s in scales}
        for i in range(first, first + n):
            _write_pair(smooth_image(rng, *size), f"{i:04d}", base / f"DIV2K_{split}_HR", lr_dirs, "x{scale}")
    return Path(root)


def write_benchmarks(root: Path, sets: tuple[str, ...] = tuple(BENCHMARK_STEMS), size: tuple[int, int] = (37, 41),
                     scales: tuple[int, ...] = (2, 3, 4), seed: int = 1) -> Path:
    """benchmark/<Set>/HR and benchmark/<Set>/LR_bicubic/X<s>/ under ``root``; returns ``root``."""
    rng = np.random.default_rng(seed)
    for name in sets:
        base = Path(root) / "benchmark" / name
        lr_dirs = {s: base / "LR_bicubic" / f"X{s}" for s in scales}
        for stem in BENCHMARK_STEMS[name]:
            _write_pair(smooth_image(rng, *size), stem, base / "HR", lr_dirs, "x{scale}")
    return Path(root)


def write_sr_data_root(root: Path, **div2k: object) -> Path:
    """Everything `bench reproduce lipt --scale small|paper --data-root ROOT` reads."""
    write_div2k(root, **div2k)
    write_benchmarks(root)
    return Path(root)
