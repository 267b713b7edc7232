"""EDM dataset zips and CIFAR-10 python batches, written here in their official formats."""
from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import pytest
from PIL import Image

from bench.data.archives import Cifar10Batches, EdmZip
from bench.registry import BenchError


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _edm_zip(path, images, labels):
    """The layout EDM's dataset_tool.py writes: <idx[:5]>/img<idx:08d>.png plus dataset.json."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        names = []
        for i, img in enumerate(images):
            idx = f"{i:08d}"
            name = f"{idx[:5]}/img{idx}.png"
            zf.writestr(name, _png_bytes(img))
            names.append(name)
        meta = {"labels": [[n, y] for n, y in zip(names, labels, strict=True)] if labels is not None else None}
        zf.writestr("dataset.json", json.dumps(meta))
    return names


def test_edm_zip_images_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8) for _ in range(12)]
    labels = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8]
    _edm_zip(tmp_path / "cifar10-32x32.zip", images, labels)
    ds = EdmZip(tmp_path / "cifar10-32x32.zip", num_classes=10)
    assert len(ds) == 12 and ds.name == "cifar10-32x32"
    for i in (0, 7, 11):
        np.testing.assert_array_equal(ds[i]["image"], images[i])
        assert ds[i]["label"] == labels[i] and ds[i]["path"] == f"00000/img{i:08d}.png"
    # The lazily opened zip handle is dropped when the loader is sent to a worker process.
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone[5]["image"], images[5])
    assert [it["label"] for it in ds.iter_shard(1, 5)] == [labels[1], labels[6], labels[11]]


def test_edm_zip_without_labels_and_grey_images(tmp_path):
    grey = [np.full((3, 3), v, dtype=np.uint8) for v in (10, 20)]
    _edm_zip(tmp_path / "ffhq.zip", grey, None)
    ds = EdmZip(tmp_path / "ffhq.zip")
    assert ds.labels is None and ds[1]["label"] is None and ds[1]["image"].shape == (3, 3, 1)
    assert ds[1]["image"].max() == 20


def test_edm_zip_label_errors_are_one_line(tmp_path):
    img = [np.zeros((2, 2, 3), dtype=np.uint8)] * 2
    _edm_zip(tmp_path / "a.zip", img, [0, 10])
    with pytest.raises(BenchError, match=r"label 10 of 00000/img00000001\.png is out of range \[0, 9\]"):
        EdmZip(tmp_path / "a.zip", num_classes=10)
    names = _edm_zip(tmp_path / "b.zip", img, [0, 1])
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as zf:  # dataset.json that misses one image
        for name in names:
            zf.writestr(name, _png_bytes(img[0]))
        zf.writestr("dataset.json", json.dumps({"labels": [[names[0], 0]]}))
    with pytest.raises(BenchError, match=r"no label for 00000/img00000001\.png"):
        EdmZip(tmp_path / "c.zip")
    (tmp_path / "d.zip").write_bytes(b"not a zip")
    with pytest.raises(BenchError, match="not a valid zip file"):
        EdmZip(tmp_path / "d.zip")


def test_edm_zip_fingerprint_follows_content(tmp_path):
    img = [np.zeros((2, 2, 3), dtype=np.uint8), np.ones((2, 2, 3), dtype=np.uint8)]
    _edm_zip(tmp_path / "a.zip", img, [0, 1])
    _edm_zip(tmp_path / "b.zip", img, [0, 1])
    _edm_zip(tmp_path / "c.zip", img[::-1], [0, 1])
    fa, fb, fc = (EdmZip(tmp_path / f"{n}.zip").fingerprint() for n in "abc")
    assert fa == fb != fc


def _cifar_batch(path, images_hwc, labels):
    """The python-version batch format: a pickled dict with bytes keys, data N x 3072 (R plane, G, B)."""
    data = images_hwc.transpose(0, 3, 1, 2).reshape(len(images_hwc), 3072)
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"batch", b"labels": list(labels), b"data": data,
                     b"filenames": [f"{i}.png".encode() for i in range(len(labels))]}, f)


def _cifar_root(root, per_batch=3, bad_label=None):
    root.mkdir()
    rng = np.random.default_rng(7)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer", "dog",
                                                           "frog", "horse", "ship", "truck")]}, f)
    everything = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        imgs = rng.integers(0, 256, size=(per_batch, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        if bad_label is not None and name == "data_batch_2":
            labels[0] = bad_label
        _cifar_batch(root / name, imgs, labels)
        everything[name] = (imgs, labels)
    return everything


def test_cifar10_batches_decode_channel_planes(tmp_path):
    truth = _cifar_root(tmp_path / "cifar-10-batches-py")
    train = Cifar10Batches(tmp_path / "cifar-10-batches-py", "train")
    test = Cifar10Batches(tmp_path / "cifar-10-batches-py", "test")
    assert len(train) == 15 and len(test) == 3 and train.classes[3] == "cat"
    imgs, labels = truth["data_batch_3"]
    item = train[7]  # batch 3, position 1
    np.testing.assert_array_equal(item["image"], imgs[1])
    assert item["label"] == labels[1]
    # Pixel (row 0, col 1): red is data[1], green data[1024 + 1], blue data[2048 + 1] of the raw row.
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"][1]
    assert tuple(item["image"][0, 1]) == (raw[1], raw[1025], raw[2049])
    assert [it["index"] for it in train.iter_shard(2, 4)] == [2, 6, 10, 14]
    assert train.fingerprint() != test.fingerprint()


def test_cifar10_bad_labels_and_split(tmp_path):
    _cifar_root(tmp_path / "c", bad_label=10)
    with pytest.raises(BenchError, match=r"data_batch_2: labels outside \[0, 9\]"):
        Cifar10Batches(tmp_path / "c", "train")
    with pytest.raises(BenchError, match="splits 'train' and 'test'"):
        Cifar10Batches(tmp_path / "c", "valid")
    (tmp_path / "c" / "test_batch").write_bytes(b"\x80\x04garbage")
    with pytest.raises(BenchError, match="corrupt CIFAR-10 batch .*test_batch"):
        Cifar10Batches(tmp_path / "c", "test")
