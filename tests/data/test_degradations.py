"""Seeded restoration degradations over the photos smoke set, checked against scipy / PIL / skimage and the
formulas computed here; plus the BENCH_PHOTOS_DIR extension of photos()."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter, label
from skimage.metrics import peak_signal_noise_ratio

from bench.data import smoke
from bench.data.imresize import imresize
from bench.registry import BenchError

from .conftest import random_image, save_png


@pytest.fixture(scope="module")
def test_photos() -> list[np.ndarray]:
    return smoke.photos("test", 64)


# ---------------------------------------------------------------------------------------------------------
# noise


@pytest.mark.parametrize("sigma", smoke.NOISE_LEVELS)
def test_noise_residual_has_the_requested_sigma_and_zero_mean(sigma):
    grey = np.full((512, 512, 3), 128, dtype=np.uint8)
    residual = smoke.degrade(grey, "noise", sigma, seed=7).astype(np.float64) - 128.0
    assert abs(residual.std() - sigma) / sigma < 0.02
    assert abs(residual.mean()) < 0.01 * sigma


@pytest.mark.parametrize("kind,level", [("noise", 25), ("rain", 0.02), ("snow", 0.01), ("blur", 2.0),
                                        ("jpeg", 20), ("haze", 1.0)])
def test_same_seed_gives_identical_bytes(rng, kind, level):
    image = random_image(rng, 48, 40)
    a, b = smoke.degrade(image, kind, level, seed=3), smoke.degrade(image, kind, level, seed=3)
    assert a.dtype == np.uint8 and a.shape == image.shape
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("kind,level", [("noise", 25), ("rain", 0.02), ("snow", 0.01)])
def test_different_seeds_give_different_outputs(rng, kind, level):
    image = random_image(rng, 48, 40) // 2  # room to brighten
    assert not np.array_equal(smoke.degrade(image, kind, level, seed=3), smoke.degrade(image, kind, level, seed=4))


def test_input_is_not_modified(rng):
    image = random_image(rng, 16, 16)
    before = image.copy()
    smoke.degrade(image, "noise", 50, seed=0)
    np.testing.assert_array_equal(image, before)


# ---------------------------------------------------------------------------------------------------------
# blur


def test_blur_of_a_constant_image_is_the_same_constant():
    image = np.full((20, 30, 3), 173, dtype=np.uint8)
    out = smoke.degrade(image, "blur", 3.0, seed=0)
    reference = gaussian_filter(image.astype(np.float64), sigma=(3.0, 3.0, 0.0), mode="reflect")
    np.testing.assert_array_equal(out, np.clip(np.round(reference), 0, 255).astype(np.uint8))
    assert (out == 173).all()


def test_blur_of_an_impulse_matches_scipy_and_keeps_its_sum():
    image = np.zeros((33, 33, 3), dtype=np.uint8)
    image[16, 16] = 255
    out = smoke.degrade(image, "blur", 1.0, seed=0)
    reference = gaussian_filter(image.astype(np.float64), sigma=(1.0, 1.0, 0.0), mode="reflect")
    np.testing.assert_array_equal(out, np.round(reference).astype(np.uint8))
    assert reference[..., 0].sum() == pytest.approx(255.0)
    # Rounding to uint8 moves only the tails (values below one half vanish): the impulse's mass is kept
    # within 5 % (249 of 255 here), where an unnormalised or wrong-sigma kernel would be far off.
    assert all(abs(int(out[..., c].sum()) - 255) <= 0.05 * 255 for c in range(3))
    assert out[16, 16, 0] == out.max() and out[16, 16, 0] < 255  # spread out, peak stays at the centre


# ---------------------------------------------------------------------------------------------------------
# jpeg


def _pil_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.array(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


@pytest.mark.parametrize("quality", smoke.JPEG_QUALITIES)
def test_jpeg_equals_pil_round_trip(test_photos, quality):
    np.testing.assert_array_equal(smoke.degrade(test_photos[0], "jpeg", quality, seed=0),
                                  _pil_round_trip(test_photos[0], quality))


def test_jpeg_quality_10_is_worse_than_40(test_photos):
    for photo in test_photos[:3]:
        psnr10 = peak_signal_noise_ratio(photo, smoke.degrade(photo, "jpeg", 10, seed=0))
        psnr40 = peak_signal_noise_ratio(photo, smoke.degrade(photo, "jpeg", 40, seed=0))
        assert psnr10 < psnr40


def test_jpeg_keeps_a_single_channel(rng):
    grey = rng.integers(0, 256, size=(24, 24, 1), dtype=np.uint8)
    out = smoke.degrade(grey, "jpeg", 30, seed=0)
    assert out.shape == (24, 24, 1)
    buffer = io.BytesIO()
    Image.fromarray(grey[:, :, 0]).save(buffer, "JPEG", quality=30)
    np.testing.assert_array_equal(out[:, :, 0], np.array(Image.open(io.BytesIO(buffer.getvalue()))))


# ---------------------------------------------------------------------------------------------------------
# haze


@pytest.mark.parametrize("beta", [0.5, 1.2, 3.0])
def test_haze_of_black_is_the_airlight_term(beta):
    h, w = 40, 30
    out = smoke.degrade(np.zeros((h, w, 3), dtype=np.uint8), "haze", beta, seed=0)
    depth = 1.0 - np.arange(h) / (h - 1)  # top row far (1), bottom row near (0)
    t = np.exp(-beta * depth)
    expected = np.round(255.0 * smoke.HAZE_AIRLIGHT * (1.0 - t)).astype(np.uint8)
    np.testing.assert_array_equal(out, np.broadcast_to(expected[:, None, None], (h, w, 3)))
    assert (out[-1] == 0).all() and out[0, 0, 0] == round(255 * 0.9 * (1 - np.exp(-beta)))


def test_haze_follows_the_scattering_model_on_a_photo(test_photos):
    photo = test_photos[1]
    out = smoke.degrade(photo, "haze", 1.0, seed=0)
    t = np.exp(-(1.0 - np.arange(64) / 63))[:, None, None]
    expected = (photo / 255.0 * t + smoke.HAZE_AIRLIGHT * (1 - t)) * 255.0
    np.testing.assert_array_equal(out, np.clip(np.round(expected), 0, 255).astype(np.uint8))


# ---------------------------------------------------------------------------------------------------------
# rain and snow


@pytest.mark.parametrize("kind,low,high", [("rain", 0.005, 0.03), ("snow", 0.002, 0.02)])
def test_weather_only_brightens_and_more_density_changes_more(test_photos, kind, low, high):
    for i, photo in enumerate(test_photos[:4]):
        light = smoke.degrade(photo, kind, low, seed=i)
        heavy = smoke.degrade(photo, kind, high, seed=i)
        assert (light.astype(int) >= photo).all() and (heavy.astype(int) >= photo).all()
        changed_light, changed_heavy = (light != photo).sum(), (heavy != photo).sum()
        assert 0 < changed_light < changed_heavy
        assert (heavy.astype(int) >= light).all()  # same seed: heavier weather only adds


def test_rain_streaks_point_along_the_rain_angle():
    black = np.zeros((128, 128, 3), dtype=np.uint8)
    streaks = smoke.degrade(black, "rain", 0.001, seed=5)[..., 0] > 10
    components, n = label(streaks, structure=np.ones((3, 3)))
    angles = []
    for k in range(1, n + 1):
        ys, xs = np.nonzero(components == k)
        if len(ys) < 8:
            continue
        # Principal axis of the component's pixel coordinates (x right, y up).
        cov = np.cov(np.stack([xs, -ys]).astype(float))
        vx, vy = np.linalg.eigh(cov)[1][:, -1]
        angles.append(np.degrees(np.arctan2(vy, vx)) % 180)
    assert len(angles) >= 5
    assert np.median(angles) == pytest.approx(smoke.RAIN_ANGLE_DEG, abs=5)


# ---------------------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("kind,level", [("fog", 1.0), ("noise", 0), ("noise", 100), ("noise", "25"),
                                        ("jpeg", 9), ("jpeg", 41), ("jpeg", 20.5), ("blur", -1.0),
                                        ("rain", 0.5), ("haze", float("nan")), ("snow", True)])
def test_bad_kind_or_level_is_a_one_line_bench_error(kind, level):
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    with pytest.raises(BenchError) as info:
        smoke.degrade(image, kind, level, seed=0)
    assert "\n" not in str(info.value) and str(info.value)
    with pytest.raises(BenchError):
        smoke.degraded_pairs("test", kind, level)


def test_bad_image_is_a_one_line_bench_error():
    with pytest.raises(BenchError, match="uint8") as info:
        smoke.degrade(np.zeros((8, 8, 3), dtype=np.float32), "noise", 15, seed=0)
    assert "\n" not in str(info.value)
    with pytest.raises(BenchError):
        smoke.degrade(np.zeros((8, 8), dtype=np.uint8), "noise", 15, seed=0)


# ---------------------------------------------------------------------------------------------------------
# degraded_pairs


def test_degraded_pairs_use_per_image_seeds_independent_of_order(test_photos):
    pairs = smoke.degraded_pairs("test", "noise", 25, seed=11, size=64)
    assert len(pairs) == len(test_photos) == 8
    for i, (clean, degraded) in enumerate(pairs):
        np.testing.assert_array_equal(clean, test_photos[i])
        # Image i alone, with only (seed, i): the same bytes as inside the full list.
        np.testing.assert_array_equal(degraded, smoke.degrade(test_photos[i], "noise", 25, smoke.image_seed(11, i)))
    seeds = [smoke.image_seed(11, i) for i in range(len(pairs))]
    assert len(set(seeds)) == len(seeds) and smoke.image_seed(12, 0) != seeds[0]
    # Different images get different noise fields.
    residuals = [d.astype(int) - c for c, d in pairs[:2]]
    assert not np.array_equal(residuals[0], residuals[1])
    other = smoke.degraded_pairs("test", "noise", 25, seed=12, size=64)
    assert not np.array_equal(other[0][1], pairs[0][1])


# ---------------------------------------------------------------------------------------------------------
# BENCH_PHOTOS_DIR


def test_photos_dir_extends_train_sorted_by_name(tmp_path, monkeypatch, rng):
    monkeypatch.delenv(smoke.PHOTOS_DIR_ENV, raising=False)
    base_train, base_names = smoke.photos("train", 32), smoke.photo_names("train")
    assert len(base_train) == 12

    colour = random_image(rng, 40, 50)
    grey = random_image(rng, 30, 30, c=1)
    save_png(tmp_path / "b_colour.png", colour)
    save_png(tmp_path / "a_grey.png", grey)
    (tmp_path / "notes.txt").write_text("not an image")
    monkeypatch.setenv(smoke.PHOTOS_DIR_ENV, str(tmp_path))

    names = smoke.photo_names("train")
    assert names == base_names + ["a_grey", "b_colour"]
    full = smoke.photos("train")
    assert len(full) == 14
    np.testing.assert_array_equal(full[12], np.repeat(grey[:, :, None], 3, axis=2))  # PIL "RGB" of an L image
    np.testing.assert_array_equal(full[13], colour)
    sized = smoke.photos("train", 32)
    for a, b in zip(sized[:12], base_train, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sized[13], imresize(colour[:, 5:45], output_shape=(32, 32)))
    assert len(smoke.photos("test")) == 8 and len(smoke.photos_dataset("train", 32)) == 14
    assert smoke.photos_dataset("train", 32)[13]["name"] == "b_colour"

    monkeypatch.setenv(smoke.PHOTOS_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(BenchError, match="BENCH_PHOTOS_DIR") as info:
        smoke.photos("train")
    assert "\n" not in str(info.value)

    monkeypatch.delenv(smoke.PHOTOS_DIR_ENV)
    assert smoke.photo_names("train") == base_names
    for a, b in zip(smoke.photos("train", 32), base_train, strict=True):
        np.testing.assert_array_equal(a, b)
