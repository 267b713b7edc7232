"""Loaders for folder layouts: class folders, ImageNet, flat test sets, paired SR / restoration, forensics.

Every loader lists its files once (sorted), reads one item per `__getitem__`, and fingerprints the file list
(relative paths + sizes). Items are dicts of numpy arrays (HWC uint8 images) and plain values.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.base import IndexedDataset, file_list_fingerprint, require_dir, require_file
from bench.data.images import is_image_file, list_images, read_image, read_mask
from bench.data.imresize import bicubic_lr
from bench.registry import BenchError


class ImageFolder(IndexedDataset):
    """`root/<class>/**/<image>`: the label is the index of the class folder in sorted order.

    This is the torchvision ImageFolder convention, which DiT/U-DiT's training scripts use for ImageNet.
    Pass `classes` to fix the class list (and its order) instead of taking the folders found.
    """

    def __init__(self, root: str | Path, classes: list[str] | None = None, mode: str | None = "RGB",
                 name: str | None = None):
        self.root = require_dir(Path(root), "image folder")
        self.name = name or self.root.name
        self.mode = mode
        found = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if classes is None:
            classes = found
        else:
            missing = [c for c in classes if c not in found]
            if missing:
                raise BenchError(f"{self.name}: class folder {self.root / missing[0]} is missing "
                                 f"({len(missing)} of {len(classes)} classes missing)")
        if not classes:
            raise BenchError(f"{self.name}: no class sub-folders in {self.root}")
        self.classes = list(classes)
        self.class_to_index = {c: i for i, c in enumerate(self.classes)}
        self.files: list[Path] = []
        self.labels: list[int] = []
        for c in self.classes:
            files = list_images(self.root / c, recursive=True)
            if not files:
                raise BenchError(f"{self.name}: class folder {self.root / c} holds no images")
            self.files += files
            self.labels += [self.class_to_index[c]] * len(files)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> dict[str, Any]:
        path = self.files[index]
        image = read_image(path, self.mode)
        return {"image": image, "label": self.labels[index], "path": path.relative_to(self.root).as_posix()}

    def _fingerprint(self) -> str:
        return file_list_fingerprint(self.root, self.files)


_SYNSET = re.compile(r"^n\d{8}$")


def adm_center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """ADM/DiT ImageNet preprocessing: halve with a box filter while the short side is >= 2*size, then
    bicubic-resize (PIL) so the short side is `size`, then take the centre `size` x `size` crop."""
    from PIL import Image

    im = Image.fromarray(image)
    while min(im.size) >= 2 * size:
        im = im.resize((im.size[0] // 2, im.size[1] // 2), resample=Image.BOX)
    ratio = size / min(im.size)
    im = im.resize((round(im.size[0] * ratio), round(im.size[1] * ratio)), resample=Image.BICUBIC)
    arr = np.asarray(im)
    top = (arr.shape[0] - size) // 2
    left = (arr.shape[1] - size) // 2
    return arr[top: top + size, left: left + size].copy()


class ImageNetFolder(ImageFolder):
    """ILSVRC-2012 as `root/{train,val}/<wnid>/<image>.JPEG` (val re-foldered by class, the usual layout).

    Labels are the sorted-wnid indices (0..999), as DiT/U-DiT use. `image_size` applies the ADM centre crop;
    `expected_classes` guards against a half-extracted copy.
    """

    def __init__(self, root: str | Path, split: str = "train", image_size: int | None = None,
                 expected_classes: int | None = 1000):
        split_root = require_dir(Path(root) / split, f"ImageNet {split} folder")
        wnids = sorted(p.name for p in split_root.iterdir() if p.is_dir())
        bad = [w for w in wnids if not _SYNSET.match(w)]
        if bad:
            raise BenchError(f"imagenet: {split_root / bad[0]} is not a WordNet id folder (n########); "
                             f"val must be sorted into class folders")
        if expected_classes is not None and len(wnids) != expected_classes:
            raise BenchError(f"imagenet: {split_root} has {len(wnids)} class folders, expected {expected_classes}")
        super().__init__(split_root, classes=wnids, name=f"imagenet-{split}")
        self.image_size = image_size

    def load(self, index: int) -> dict[str, Any]:
        item = super().load(index)
        if self.image_size is not None:
            item["image"] = adm_center_crop(item["image"], self.image_size)
        return item


class FlatImageFolder(IndexedDataset):
    """A folder of images without labels (CBSD68, Kodak24, McMaster, Classic5, LIVE1, RealSet65, ...)."""

    def __init__(self, root: str | Path, mode: str | None = "RGB", recursive: bool = False,
                 name: str | None = None):
        self.root = require_dir(Path(root), "image folder")
        self.name = name or self.root.name
        self.mode = mode
        self.files = list_images(self.root, recursive=recursive)
        if not self.files:
            raise BenchError(f"{self.name}: no images in {self.root}")

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> dict[str, Any]:
        path = self.files[index]
        return {"image": read_image(path, self.mode), "name": path.relative_to(self.root).as_posix()}

    def _fingerprint(self) -> str:
        return file_list_fingerprint(self.root, self.files)


def _index_by_stem(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in list_images(folder):
        if p.stem in out:
            raise BenchError(f"two images share the name {p.stem!r} in {folder}: {out[p.stem].name}, {p.name}")
        out[p.stem] = p
    return out


class PairedSRFolder(IndexedDataset):
    """EDSR/BasicSR layout: `root/<hr_dir>/<name>.png` with `root/<lr_dir>/<name><lr_suffix>.png`.

    Defaults are the EDSR benchmark folders (`HR/`, `LR_bicubic/X{scale}/`, suffix `x{scale}`); DIV2K uses
    hr_dir="DIV2K_valid_HR", lr_dir="DIV2K_valid_LR_bicubic/X{scale}". HR is cropped to LR size x scale (the
    benchmark HR images are not always multiples of the scale). With `generate_lr=True` the LR folder is not
    read: LR is made from the HR with the MATLAB-compatible bicubic (bench.data.imresize).
    """

    def __init__(self, root: str | Path, scale: int, hr_dir: str = "HR", lr_dir: str = "LR_bicubic/X{scale}",
                 lr_suffix: str = "x{scale}", generate_lr: bool = False, mode: str | None = "RGB",
                 name: str | None = None):
        if int(scale) != scale or scale < 1:
            raise BenchError(f"SR scale must be a positive integer, got {scale}")
        self.scale = int(scale)
        self.root = Path(root)
        self.name = name or self.root.name
        self.mode = mode
        self.hr_root = require_dir(self.root / hr_dir.format(scale=self.scale), f"{self.name} HR folder")
        self.hr_files = list_images(self.hr_root)
        if not self.hr_files:
            raise BenchError(f"{self.name}: no images in {self.hr_root}")
        self.generate_lr = generate_lr
        self.lr_files: list[Path] = []
        if not generate_lr:
            self.lr_root = require_dir(self.root / lr_dir.format(scale=self.scale),
                                       f"{self.name} LR x{self.scale} folder")
            lr_by_stem = _index_by_stem(self.lr_root)
            suffix = lr_suffix.format(scale=self.scale)
            for hr in self.hr_files:
                lr = lr_by_stem.get(hr.stem + suffix)
                if lr is None:
                    raise BenchError(f"{self.name}: LR image {self.lr_root / (hr.stem + suffix + hr.suffix)} "
                                     f"missing for {hr.name}")
                self.lr_files.append(lr)

    def __len__(self) -> int:
        return len(self.hr_files)

    def load(self, index: int) -> dict[str, Any]:
        hr_path = self.hr_files[index]
        hr = read_image(hr_path, self.mode)
        if self.generate_lr:
            hr, lr = bicubic_lr(hr, self.scale)
        else:
            lr_path = self.lr_files[index]
            lr = read_image(lr_path, self.mode)
            h, w = lr.shape[0] * self.scale, lr.shape[1] * self.scale
            if hr.shape[0] < h or hr.shape[1] < w or hr.shape[0] - h >= self.scale or hr.shape[1] - w >= self.scale:
                raise BenchError(f"{self.name}: {lr_path} is {lr.shape[1]}x{lr.shape[0]} but HR {hr_path.name} is "
                                 f"{hr.shape[1]}x{hr.shape[0]}; not a x{self.scale} pair")
            hr = hr[:h, :w]
        return {"hr": hr, "lr": lr, "scale": self.scale, "name": hr_path.stem}

    def _fingerprint(self) -> str:
        return file_list_fingerprint(self.root, self.hr_files + self.lr_files)


class PairedFolder(IndexedDataset):
    """Restoration pairs: `root/<input_dir>/<x>` degraded, `root/<target_dir>/<y>` clean, matched by key.

    The Restormer/MPRNet test folders (`input/`, `target/`) use identical names, so the key is the file stem.
    Sets whose names carry extra parts use regexes whose group 1 is the key: SOTS (`hazy/0001_0.8_0.2.jpg`
    -> `gt/0001.png`: key_regex "^([^_]+)"), DRealSR (`x_x4` -> `x_x1`: key_regex "^(.*)_x4$",
    target_key_regex "^(.*)_x1$"). When both sides live in one folder, files matching neither regex are
    skipped; otherwise a non-matching name is an error. Extensions may differ. `scale` > 1 is for
    real-world SR pairs whose target is `scale` times the input (ResShift's ImageNet-Test: 64 -> 256).
    """

    def __init__(self, root: str | Path, input_dir: str = "input", target_dir: str = "target",
                 key_regex: str | None = None, target_key_regex: str | None = None, mode: str | None = "RGB",
                 scale: int = 1, name: str | None = None):
        self.root = Path(root)
        self.scale = int(scale)
        self.name = name or self.root.name
        self.mode = mode
        self.input_root = require_dir(self.root / input_dir, f"{self.name} input folder")
        self.target_root = require_dir(self.root / target_dir, f"{self.name} target folder")
        shared = self.input_root.resolve() == self.target_root.resolve()
        input_keys = self._keys(self.input_root, key_regex, skip_unmatched=shared)
        target_keys = self._keys(self.target_root, target_key_regex, skip_unmatched=shared)
        targets: dict[str, Path] = {}
        for path, key in target_keys:
            if key in targets:
                raise BenchError(f"{self.name}: targets {targets[key].name} and {path.name} share the key {key!r}")
            targets[key] = path
        self.inputs, self.targets = [], []
        for path, key in input_keys:
            if key not in targets:
                raise BenchError(f"{self.name}: no target for {path} (expected key {key!r} in {self.target_root})")
            self.inputs.append(path)
            self.targets.append(targets[key])
        if not self.inputs:
            raise BenchError(f"{self.name}: no input images in {self.input_root}")

    def _keys(self, folder: Path, regex: str | None, skip_unmatched: bool) -> list[tuple[Path, str]]:
        pattern = re.compile(regex) if regex else None
        out = []
        for p in list_images(folder):
            if pattern is None:
                out.append((p, p.stem))
                continue
            m = pattern.match(p.stem)
            if m is None:
                if skip_unmatched:
                    continue
                raise BenchError(f"{self.name}: file name {p.name} does not match {regex!r}")
            out.append((p, m.group(1)))
        return out

    def __len__(self) -> int:
        return len(self.inputs)

    def load(self, index: int) -> dict[str, Any]:
        inp = read_image(self.inputs[index], self.mode)
        tgt = read_image(self.targets[index], self.mode)
        want = (inp.shape[0] * self.scale, inp.shape[1] * self.scale) + inp.shape[2:]
        if tgt.shape != want:
            raise BenchError(f"{self.name}: {self.inputs[index]} is {inp.shape} but its target "
                             f"{self.targets[index].name} is {tgt.shape} (expected {want} at scale {self.scale})")
        return {"input": inp, "target": tgt, "name": self.inputs[index].stem}

    def _fingerprint(self) -> str:
        return file_list_fingerprint(self.root, self.inputs + sorted(set(self.targets)))


class ForensicsFolder(IndexedDataset):
    """Manipulation detection/localisation folders: `fake_dir` images with binary masks in `mask_dir`
    (mask name = image stem + `mask_suffix`, any image extension), and optional authentic images in
    `real_dir` (label 0, all-zero mask). Defaults are the CASIA-style `Tp/`, `Gt/`, `Au/` names that
    IMDLBenCo's ManiDataset reads. Items: image, mask (bool HW), label (1 = manipulated)."""

    def __init__(self, root: str | Path, fake_dir: str = "Tp", mask_dir: str = "Gt", real_dir: str | None = "Au",
                 mask_suffix: str = "", mask_threshold: int = 128, name: str | None = None):
        self.root = Path(root)
        self.name = name or self.root.name
        self.mask_threshold = mask_threshold
        fake_root = require_dir(self.root / fake_dir, f"{self.name} manipulated-image folder")
        mask_root = require_dir(self.root / mask_dir, f"{self.name} mask folder")
        masks = _index_by_stem(mask_root)
        self.entries: list[tuple[Path, Path | None, int]] = []
        for p in list_images(fake_root):
            mask = masks.get(p.stem + mask_suffix)
            if mask is None:
                raise BenchError(f"{self.name}: mask {mask_root / (p.stem + mask_suffix)}.<ext> missing for {p.name}")
            self.entries.append((p, mask, 1))
        if real_dir is not None and (self.root / real_dir).is_dir():
            self.entries += [(p, None, 0) for p in list_images(self.root / real_dir)]
        if not self.entries:
            raise BenchError(f"{self.name}: no images under {self.root}")

    def __len__(self) -> int:
        return len(self.entries)

    def load(self, index: int) -> dict[str, Any]:
        path, mask_path, label = self.entries[index]
        image = read_image(path)
        if mask_path is None:
            mask = np.zeros(image.shape[:2], dtype=bool)
        else:
            mask = read_mask(mask_path, self.mask_threshold)
            if mask.shape != image.shape[:2]:
                raise BenchError(f"{self.name}: mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but image "
                                 f"{path.name} is {image.shape[1]}x{image.shape[0]}")
        return {"image": image, "mask": mask, "label": label, "name": path.relative_to(self.root).as_posix()}

    def _fingerprint(self) -> str:
        files = [e[0] for e in self.entries] + [e[1] for e in self.entries if e[1] is not None]
        return file_list_fingerprint(self.root, files)


class ForensicsJson(ForensicsFolder):
    """IMDLBenCo's JSON index: a list of `[image_path, mask_path]`, with the string "Negative" as the mask of
    an authentic image. Relative paths are resolved against the JSON file's folder (or `root`)."""

    def __init__(self, index: str | Path, root: str | Path | None = None, mask_threshold: int = 128,
                 name: str | None = None):
        index = require_file(Path(index), "forensics index")
        self.root = Path(root) if root is not None else index.parent
        self.name = name or index.stem
        self.mask_threshold = mask_threshold
        self.index_file = index
        try:
            rows = json.loads(index.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise BenchError(f"malformed forensics index {index}: {exc}") from None
        if not isinstance(rows, list):
            raise BenchError(f"malformed forensics index {index}: top level must be a list of [image, mask]")
        self.entries = []
        for i, row in enumerate(rows):
            if not (isinstance(row, list) and len(row) == 2 and all(isinstance(x, str) for x in row)):
                raise BenchError(f"malformed forensics index {index}: entry {i} is not [image, mask]")
            image = self.root / row[0]
            if not is_image_file(image.name):
                raise BenchError(f"forensics index {index}: entry {i} {row[0]!r} is not an image file")
            if row[1] == "Negative":
                self.entries.append((image, None, 0))
            else:
                self.entries.append((image, self.root / row[1], 1))
        if not self.entries:
            raise BenchError(f"forensics index {index} is empty")

    def _fingerprint(self) -> str:
        files = [e[0] for e in self.entries] + [e[1] for e in self.entries if e[1] is not None]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise BenchError(f"{self.name}: {missing[0]} listed in {self.index_file} does not exist")
        return file_list_fingerprint(self.root, files)
