"""Folder loaders on small files written here in the official layouts."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bench.data.folders import (
    FlatImageFolder,
    ForensicsFolder,
    ForensicsJson,
    ImageFolder,
    ImageNetFolder,
    PairedFolder,
    PairedSRFolder,
    adm_center_crop,
)
from bench.data.imresize import bicubic_lr
from bench.registry import BenchError
from tests.data.conftest import random_image, save_png


def _class_tree(root, rng, layout):
    arrays = {}
    for cls, names in layout.items():
        for name in names:
            arr = random_image(rng, 8, 6)
            save_png(root / cls / name, arr)
            arrays[f"{cls}/{name}"] = arr
    return arrays


def test_image_folder_labels_follow_sorted_class_folders(tmp_path, rng):
    arrays = _class_tree(tmp_path, rng, {"zebra": ["b.png", "a.png"], "ant": ["c.png"], "moth": ["d.png", "e.PNG"]})
    (tmp_path / "notes.txt").write_text("not an image")
    ds = ImageFolder(tmp_path)
    assert ds.classes == ["ant", "moth", "zebra"]
    got = [(item["path"], item["label"]) for item in ds]
    assert got == [("ant/c.png", 0), ("moth/d.png", 1), ("moth/e.PNG", 1), ("zebra/a.png", 2), ("zebra/b.png", 2)]
    np.testing.assert_array_equal(ds[3]["image"], arrays["zebra/a.png"])
    assert ds[-1]["path"] == "zebra/b.png"


def test_rank_shards_partition_the_items(tmp_path, rng):
    _class_tree(tmp_path, rng, {"a": [f"{i}.png" for i in range(5)], "b": [f"{i}.png" for i in range(4)]})
    ds = ImageFolder(tmp_path)
    shards = [[item["index"] for item in ds.iter_shard(r, 4)] for r in range(4)]
    assert shards == [[0, 4, 8], [1, 5], [2, 6], [3, 7]]
    assert sorted(i for s in shards for i in s) == list(range(len(ds)))
    with pytest.raises(BenchError, match="rank must be in"):
        list(ds.iter_shard(4, 4))


def test_fingerprint_tracks_names_and_sizes(tmp_path, rng):
    _class_tree(tmp_path, rng, {"a": ["1.png", "2.png"]})
    first = ImageFolder(tmp_path).fingerprint()
    assert first == ImageFolder(tmp_path).fingerprint() and first.startswith("sha256:")
    save_png(tmp_path / "a" / "2.png", random_image(rng, 16, 16))  # same name, different size
    second = ImageFolder(tmp_path).fingerprint()
    (tmp_path / "a" / "2.png").rename(tmp_path / "a" / "3.png")
    third = ImageFolder(tmp_path).fingerprint()
    assert len({first, second, third}) == 3


def test_corrupt_and_truncated_images_name_the_file(tmp_path, rng):
    save_png(tmp_path / "a" / "ok.png", random_image(rng, 8, 8))
    (tmp_path / "a" / "bad.png").write_bytes(b"definitely not a png")
    good = save_png(tmp_path / "b" / "cut.png", random_image(rng, 64, 64))
    good.write_bytes(good.read_bytes()[:200])
    ds = ImageFolder(tmp_path)
    for index, name in ((0, "bad.png"), (2, "cut.png")):
        with pytest.raises(BenchError) as err:
            ds[index]
        message = str(err.value)
        assert name in message and "corrupt or unreadable image" in message and "\n" not in message


def test_imagenet_folder_checks_wnids_and_crops(tmp_path, rng):
    for wnid in ("n01440764", "n01443537"):  # ILSVRC file names end in upper-case .JPEG
        save_png(tmp_path / "train" / wnid / f"{wnid}_1.JPEG", random_image(rng, 40, 60))
    ds = ImageNetFolder(tmp_path, "train", image_size=16, expected_classes=2)
    assert [item["label"] for item in ds] == [0, 1] and ds[0]["image"].shape == (16, 16, 3)
    with pytest.raises(BenchError, match="2 class folders, expected 1000"):
        ImageNetFolder(tmp_path, "train")
    save_png(tmp_path / "val" / "not_a_wnid" / "x.png", random_image(rng, 8, 8))
    with pytest.raises(BenchError, match="not a WordNet id folder"):
        ImageNetFolder(tmp_path, "val", expected_classes=None)


def test_adm_center_crop_box_halves_then_crops_the_centre():
    # 1200 x 800 (W x H): halved once by the box filter (800 >= 2 * 256), bicubic to short side 256, centre
    # crop. A left-black / right-white image must stay split at the middle column of the crop.
    img = np.zeros((800, 1200, 3), dtype=np.uint8)
    img[:, 600:] = 255
    out = adm_center_crop(img, 256)
    assert out.shape == (256, 256, 3)
    assert out[:, :120].max() == 0 and out[:, 136:].min() == 255


def test_flat_folder_keeps_grey_images_grey(tmp_path, rng):
    grey = random_image(rng, 9, 7, c=1)
    save_png(tmp_path / "b.png", grey)
    save_png(tmp_path / "a.png", random_image(rng, 9, 7))
    ds = FlatImageFolder(tmp_path, mode="L")
    assert [item["name"] for item in ds] == ["a.png", "b.png"]
    np.testing.assert_array_equal(ds[1]["image"], grey)


def _sr_benchmark(root, rng, scale, sizes):
    """EDSR benchmark layout: HR/<name>.png and LR_bicubic/X<s>/<name>x<s>.png (HR not a multiple of s)."""
    for name, (h, w) in sizes.items():
        hr = random_image(rng, h, w)
        save_png(root / "HR" / f"{name}.png", hr)
        _, lr = bicubic_lr(hr, scale)
        save_png(root / "LR_bicubic" / f"X{scale}" / f"{name}x{scale}.png", lr)


def test_paired_sr_folder_reads_the_edsr_benchmark_layout(tmp_path, rng):
    _sr_benchmark(tmp_path / "Set5", rng, 3, {"baby": (20, 23), "bird": (18, 18)})
    ds = PairedSRFolder(tmp_path / "Set5", scale=3)
    item = ds[0]
    assert item["name"] == "baby" and item["hr"].shape == (18, 21, 3) and item["lr"].shape == (6, 7, 3)
    # Reading the LR file gives exactly the MATLAB-bicubic image that was written.
    np.testing.assert_array_equal(item["lr"], bicubic_lr(item["hr"], 3)[1])
    generated = PairedSRFolder(tmp_path / "Set5", scale=3, generate_lr=True)[0]
    np.testing.assert_array_equal(generated["lr"], item["lr"])
    np.testing.assert_array_equal(generated["hr"], item["hr"])


def test_paired_sr_folder_errors_name_the_missing_or_mismatched_file(tmp_path, rng):
    _sr_benchmark(tmp_path / "Set14", rng, 2, {"lenna": (16, 16), "zebra": (12, 10)})
    (tmp_path / "Set14" / "LR_bicubic" / "X2" / "zebrax2.png").unlink()
    with pytest.raises(BenchError, match=r"zebrax2\.png missing for zebra\.png"):
        PairedSRFolder(tmp_path / "Set14", scale=2)
    save_png(tmp_path / "Set14" / "LR_bicubic" / "X2" / "zebrax2.png", random_image(rng, 3, 3))
    with pytest.raises(BenchError, match="not a x2 pair"):
        PairedSRFolder(tmp_path / "Set14", scale=2)[1]
    with pytest.raises(BenchError, match=r"LR x4 folder not found: .*X4"):
        PairedSRFolder(tmp_path / "Set14", scale=4)


def test_paired_folder_matches_names_and_sots_style_keys(tmp_path, rng):
    for name in ("1", "2"):
        img = random_image(rng, 6, 5)
        save_png(tmp_path / "rain" / "input" / f"{name}.png", img)
        save_png(tmp_path / "rain" / "target" / f"{name}.png", 255 - img)
    ds = PairedFolder(tmp_path / "rain")
    np.testing.assert_array_equal(ds[1]["target"], 255 - ds[1]["input"])
    save_png(tmp_path / "sots" / "gt" / "0001.png", random_image(rng, 4, 4))
    save_png(tmp_path / "sots" / "hazy" / "0001_0.8_0.2.png", random_image(rng, 4, 4))
    save_png(tmp_path / "sots" / "hazy" / "0002_0.9_0.1.png", random_image(rng, 4, 4))
    with pytest.raises(BenchError, match=r"no target for .*0002_0\.9_0\.1\.png"):
        PairedFolder(tmp_path / "sots", "hazy", "gt", key_regex="^([^_]+)")
    (tmp_path / "sots" / "hazy" / "0002_0.9_0.1.png").unlink()
    assert PairedFolder(tmp_path / "sots", "hazy", "gt", key_regex="^([^_]+)")[0]["name"] == "0001_0.8_0.2"


def test_paired_folder_shared_dir_regexes_and_scale(tmp_path, rng):
    folder = tmp_path / "realsr" / "Canon" / "Test" / "4"
    save_png(folder / "Canon_001_LR4.png", random_image(rng, 5, 6))
    save_png(folder / "Canon_001_HR.png", random_image(rng, 20, 24))
    ds = PairedFolder(tmp_path / "realsr", "Canon/Test/4", "Canon/Test/4", key_regex="^(.*)_LR4$",
                      target_key_regex="^(.*)_HR$", scale=4)
    assert len(ds) == 1 and ds[0]["target"].shape == (20, 24, 3)
    with pytest.raises(BenchError, match="expected .* at scale 2"):
        PairedFolder(tmp_path / "realsr", "Canon/Test/4", "Canon/Test/4", key_regex="^(.*)_LR4$",
                     target_key_regex="^(.*)_HR$", scale=2)[0]


def test_forensics_folder_masks_labels_and_authentic_images(tmp_path, rng):
    image = random_image(rng, 8, 10)
    mask = np.zeros((8, 10), dtype=np.uint8)
    mask[2:5, 3:7] = 255
    mask[0, 0] = 100  # below mid-grey: background
    save_png(tmp_path / "Tp" / "fake1.png", image)
    save_png(tmp_path / "Gt" / "fake1_gt.png", mask)
    save_png(tmp_path / "Au" / "real1.png", random_image(rng, 8, 10))
    ds = ForensicsFolder(tmp_path, mask_suffix="_gt")
    fake, real = ds[0], ds[1]
    assert fake["label"] == 1 and real["label"] == 0
    np.testing.assert_array_equal(fake["mask"], mask >= 128)
    assert fake["mask"].sum() == 12 and not real["mask"].any()
    with pytest.raises(BenchError, match=r"mask .*fake1\.<ext> missing for fake1\.png"):
        ForensicsFolder(tmp_path)


def test_forensics_json_index_with_negative_entries(tmp_path, rng):
    save_png(tmp_path / "img" / "a.png", random_image(rng, 6, 6))
    save_png(tmp_path / "img" / "b.png", random_image(rng, 6, 6))
    save_png(tmp_path / "mask" / "a.png", np.full((6, 6), 255))
    index = tmp_path / "test.json"
    index.write_text(json.dumps([["img/a.png", "mask/a.png"], ["img/b.png", "Negative"]]))
    ds = ForensicsJson(index)
    assert [ds[i]["label"] for i in range(2)] == [1, 0] and ds[0]["mask"].all() and not ds[1]["mask"].any()
    assert ds.fingerprint().startswith("sha256:")
    index.write_text(json.dumps([["img/a.png"]]))
    with pytest.raises(BenchError, match="entry 0 is not"):
        ForensicsJson(index)


def test_sidd_mat_blocks_convert_to_paired_folders(tmp_path, rng):
    from scipy.io import savemat

    from bench.data.convert import sidd_blocks_to_folders

    noisy = rng.integers(0, 256, size=(2, 3, 8, 8, 3), dtype=np.uint8)
    gt = rng.integers(0, 256, size=(2, 3, 8, 8, 3), dtype=np.uint8)
    savemat(tmp_path / "noisy.mat", {"ValidationNoisyBlocksSrgb": noisy})
    savemat(tmp_path / "gt.mat", {"ValidationGtBlocksSrgb": gt})
    assert sidd_blocks_to_folders(tmp_path / "noisy.mat", tmp_path / "gt.mat", tmp_path / "val") == 6
    ds = PairedFolder(tmp_path / "val")
    assert len(ds) == 6 and ds[4]["name"] == "01_01"
    np.testing.assert_array_equal(ds[4]["input"], noisy[1, 1])
    np.testing.assert_array_equal(ds[4]["target"], gt[1, 1])
    with pytest.raises(BenchError, match="has no variable 'ValidationGtBlocksSrgb'"):
        sidd_blocks_to_folders(tmp_path / "noisy.mat", tmp_path / "noisy.mat", tmp_path / "x")
