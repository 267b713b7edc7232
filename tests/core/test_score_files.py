"""Issue 16, `bench score` on odd image files: 16-bit PNG/TIFF at their bit depth, grey vs colour and alpha by a
declared rule, ambiguous stems refused; a fuzz test feeds it random files and it never tracebacks.

Expected values come from scikit-image's PSNR on arrays quantised here by hand (numpy), not from bench."""
from __future__ import annotations

import io
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio
from typer.testing import CliRunner

from bench.cli import app

cli = CliRunner()
RNG = np.random.default_rng(16)


def _score(*args: str):
    return cli.invoke(app, ["score", *args])


def _value(*args: str) -> float:
    result = _score(*args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return float(json.loads(result.stdout)["value"])


def _refusal(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _png16(path: Path, pixels: np.ndarray) -> Path:
    """A 16-bit PNG written by OpenCV (PIL cannot write 16-bit colour); OpenCV wants BGR."""
    import cv2

    assert pixels.dtype == np.uint16
    cv2.imwrite(str(path), pixels[..., ::-1] if pixels.ndim == 3 else pixels)
    return path


@pytest.fixture()
def rgb8(tmp_path) -> tuple[Path, np.ndarray]:
    pixels = RNG.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    path = tmp_path / "ref.png"
    Image.fromarray(pixels).save(path)
    return path, pixels


# --- bit depth -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dialect", ["psnr_rgb", "psnr_y@matlab"])
@pytest.mark.parametrize("grey", [False, True])
def test_16bit_copy_of_an_8bit_image_scores_as_identical(tmp_path, rgb8, dialect, grey):
    """A 16-bit PNG equal to its 8-bit source x257 scored 6.08 dB (99.7% of the pixels clipped)."""
    ref, pixels = rgb8
    if grey:
        pixels = pixels[..., 0]
        Image.fromarray(pixels).save(ref)
    pred = _png16(tmp_path / "pred.png", pixels.astype(np.uint16) * 257)
    assert _value(dialect, "--pred", str(pred), "--ref", str(ref)) == math.inf


def test_16bit_grey_png_and_tiff_are_quantised_by_the_declared_rule(tmp_path):
    """Arbitrary 16-bit values: uint8 = round(v * 255 / 65535), half to even, then the usual PSNR."""
    ref8 = RNG.integers(0, 256, (20, 20), dtype=np.uint8)
    wide = RNG.integers(0, 65536, (20, 20), dtype=np.uint16)
    expected_u8 = np.round(wide.astype(np.float64) * 255 / 65535).astype(np.uint8)
    expected = peak_signal_noise_ratio(ref8, expected_u8, data_range=255)
    (tmp_path / "png").mkdir()
    (tmp_path / "tif").mkdir()
    Image.fromarray(ref8).save(tmp_path / "ref.png")
    Image.fromarray(wide).save(tmp_path / "png" / "pred.png")  # PIL writes 16-bit grey PNG as I;16
    tifffile.imwrite(tmp_path / "tif" / "pred.tif", wide)
    for pred in (tmp_path / "png" / "pred.png", tmp_path / "tif" / "pred.tif"):
        assert _value("psnr_rgb", "--pred", str(pred), "--ref", str(tmp_path / "ref.png")) == \
            pytest.approx(expected, abs=1e-9)
        result = _score("psnr_rgb", "--pred", str(pred), "--ref", str(tmp_path / "ref.png"))
        assert "file_inputs: 8-bit as read; 16-bit quantised like float inputs (v*255/65535" in result.stdout
        assert "1 of 2 files were 16-bit" in result.stdout


def test_16bit_rgb_tiff_keeps_its_low_byte(tmp_path, rgb8):
    """PIL reads 16-bit RGB TIFF/PNG by its high byte (floor(v / 256)); we round v * 255 / 65535."""
    ref, pixels = rgb8
    wide = RNG.integers(0, 65536, pixels.shape, dtype=np.uint16)
    tifffile.imwrite(tmp_path / "pred.tif", wide, photometric="rgb")
    expected = peak_signal_noise_ratio(pixels, np.round(wide / 257.0).astype(np.uint8), data_range=255)
    assert _value("psnr_rgb", "--pred", str(tmp_path / "pred.tif"), "--ref", str(ref)) == \
        pytest.approx(expected, abs=1e-9)


def test_float_tiff_is_refused(tmp_path, rgb8):
    ref, _ = rgb8
    tifffile.imwrite(tmp_path / "pred.tif", RNG.random((24, 24)).astype(np.float32))
    line = _refusal(_score("psnr_rgb", "--pred", str(tmp_path / "pred.tif"), "--ref", str(ref)))
    assert "pred.tif" in line and "floating-point" in line


# --- modes -----------------------------------------------------------------------------------------------------
def test_grey_prediction_against_rgb_reference_is_refused_naming_both(tmp_path, rgb8):
    """It scored 11.6 dB with psnr_rgb, silently."""
    ref, pixels = rgb8
    pred = tmp_path / "pred.png"
    Image.fromarray(pixels).convert("L").save(pred)
    line = _refusal(_score("psnr_rgb", "--pred", str(pred), "--ref", str(ref)))
    assert f"{pred} is greyscale but {ref} is colour" in line


def test_two_grey_images_compare_as_one_channel(tmp_path):
    a, b = (RNG.integers(0, 256, (16, 16), dtype=np.uint8) for _ in range(2))
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(b).save(tmp_path / "b.png")
    assert _value("psnr_rgb", "--pred", str(tmp_path / "a.png"), "--ref", str(tmp_path / "b.png")) == \
        pytest.approx(peak_signal_noise_ratio(b, a, data_range=255), abs=1e-9)


def test_opaque_alpha_is_dropped_and_transparency_refused(tmp_path, rgb8):
    ref, pixels = rgb8
    noisy = np.clip(pixels.astype(int) + RNG.integers(-3, 4, pixels.shape), 0, 255).astype(np.uint8)
    alpha = np.full(pixels.shape[:2], 255, np.uint8)
    Image.fromarray(np.dstack([noisy, alpha])).save(tmp_path / "opaque.png")
    assert _value("psnr_rgb", "--pred", str(tmp_path / "opaque.png"), "--ref", str(ref)) == \
        pytest.approx(peak_signal_noise_ratio(pixels, noisy, data_range=255), abs=1e-9)
    alpha[3, 4] = 10
    Image.fromarray(np.dstack([noisy, alpha])).save(tmp_path / "see-through.png")
    line = _refusal(_score("psnr_rgb", "--pred", str(tmp_path / "see-through.png"), "--ref", str(ref)))
    assert "see-through.png has 1 transparent pixels" in line


def test_palette_image_is_expanded_to_its_rgb(tmp_path, rgb8):
    ref, pixels = rgb8
    pal = Image.fromarray(pixels).quantize(64)
    pal.save(tmp_path / "pal.png")
    expanded = np.asarray(pal.convert("RGB"))
    assert _value("psnr_rgb", "--pred", str(tmp_path / "pal.png"), "--ref", str(ref)) == \
        pytest.approx(peak_signal_noise_ratio(pixels, expanded, data_range=255), abs=1e-9)


# --- folders ---------------------------------------------------------------------------------------------------
def test_ambiguous_stems_are_refused_naming_both_files(tmp_path, rgb8):
    """With x.png and x.bmp in one folder, one of them was picked silently."""
    _, pixels = rgb8
    for folder in ("pred", "ref"):
        (tmp_path / folder).mkdir()
        Image.fromarray(pixels).save(tmp_path / folder / "x.png")
    Image.fromarray(255 - pixels).save(tmp_path / "pred" / "x.bmp")
    line = _refusal(_score("psnr_rgb", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref")))
    assert "x.bmp" in line and "x.png" in line and "'x'" in line


# --- fuzz ------------------------------------------------------------------------------------------------------
def _random_image_bytes(rng: np.random.Generator) -> tuple[str, bytes]:
    """One random image file: size, mode, depth and format drawn at random, sometimes truncated or garbage."""
    kind = rng.integers(0, 10)
    if kind == 0:
        return ".png", bytes(rng.integers(0, 256, int(rng.integers(0, 200)), dtype=np.uint8))
    h, w = (int(v) for v in rng.integers(1, 30, 2))
    buf = io.BytesIO()
    if kind == 1:  # 16-bit, grey or colour, PNG or TIFF
        channels = [None, 3, 4][int(rng.integers(0, 3))]
        shape = (h, w) if channels is None else (h, w, channels)
        pixels = rng.integers(0, 65536, shape, dtype=np.uint16)
        if rng.integers(0, 2):
            tifffile.imwrite(buf, pixels, photometric="minisblack" if channels is None else "rgb")
            suffix = ".tif"
        else:
            import cv2

            ok, enc = cv2.imencode(".png", pixels)
            assert ok
            buf.write(enc.tobytes())
            suffix = ".png"
    elif kind == 2:  # float or 32-bit integer TIFF
        pixels = rng.random((h, w)).astype(np.float32) if rng.integers(0, 2) else \
            rng.integers(0, 2**31, (h, w), dtype=np.int32)
        tifffile.imwrite(buf, pixels)
        suffix = ".tif"
    else:
        mode = ["L", "LA", "RGB", "RGBA", "P", "1", "I;16", "CMYK"][int(rng.integers(0, 8))]
        suffix = [".png", ".bmp", ".tif", ".jpg", ".webp"][int(rng.integers(0, 5))]
        base = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")
        try:
            img = base.convert(mode) if mode not in ("I;16", "P") else (
                base.convert("RGB").quantize(16) if mode == "P" else
                Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16)))
            img.save(buf, format={".jpg": "JPEG", ".tif": "TIFF"}.get(suffix, suffix[1:].upper()))
        except (OSError, ValueError, KeyError):  # a mode this format cannot store: TIFF stores them all
            buf = io.BytesIO()
            img.save(buf, format="TIFF")
            suffix = ".tif"
    data = buf.getvalue()
    if rng.integers(0, 4) == 0:  # truncated somewhere
        data = data[: int(rng.integers(0, max(1, len(data))))]
    return suffix, data


@pytest.mark.parametrize("dialect", ["psnr_rgb", "psnr_y@matlab", "ssim_y@matlab"])
def test_fuzz_score_never_tracebacks(tmp_path, dialect):
    rng = np.random.default_rng(sum(map(ord, dialect)))
    outcomes = {0: 0, 2: 0}
    for i in range(60):
        case = tmp_path / f"case{i}"
        for side in ("pred", "ref"):
            (case / side).mkdir(parents=True)
            for stem in ("a", "b"):
                suffix, data = _random_image_bytes(rng)
                (case / side / f"{stem}{suffix}").write_bytes(data)
        with warnings.catch_warnings(record=True) as caught:  # a warning is more stderr lines (and a file
            warnings.simplefilter("always")                   # PIL half-read, e.g. a truncated TIFF)
            result = _score(dialect, "--pred", str(case / "pred"), "--ref", str(case / "ref"))
        assert result.exit_code in (0, 2), (i, result.exception, result.stderr)
        assert "Traceback" not in result.stderr
        assert not caught, (i, [str(w.message) for w in caught])
        if result.exit_code == 2:
            assert len(result.stderr.strip().splitlines()) == 1, (i, result.stderr)
        outcomes[result.exit_code] += 1
    assert outcomes[2] > 0  # the generator does make bad inputs
