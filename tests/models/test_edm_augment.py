"""EDM's augmentation pipe (baselines/edm/augment.py) against hand computations: the identity at p = 0, each
transform's effect on a fixed draw (flips = torch.flip, integer translation = a shift with torch's reflect
padding, a quarter turn = torch.rot90, a whole-pixel fractional translation = a shift), the 9-value label
layout of EDM config F, and each transform's firing frequency over many draws (binomial tolerances)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from baselines.edm.augment import (
    CONFIG_F_LABELS,
    EDM_AUGMENT_P,
    EDM_CONFIG_F,
    AugmentPipe,
    edm_config_f,
    resample,
)
from bench.registry import BenchError


def _images(n=4, c=3, h=12, w=16, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _shift_reflect(images, dx, dy):
    """out[y, x] = in[y - dy, x - dx] with the borders mirrored (no edge repeat): pad, then crop."""
    pad = max(abs(dx), abs(dy))
    padded = F.pad(images, [pad] * 4, mode="reflect")
    h, w = images.shape[2:]
    return padded[:, :, pad - dy:pad - dy + h, pad - dx:pad - dx + w]


def test_config_f_parameters_are_edm_train_py_and_readme():
    # train.py: --augment default 0.12 and xflip=1e8, yflip=1, scale=1, rotate_frac=1, aniso=1, translate_frac=1;
    # README: FFHQ / AFHQv2 64x64 with --augment=0.15
    assert EDM_CONFIG_F == {"xflip": 1e8, "yflip": 1, "scale": 1, "rotate_frac": 1, "aniso": 1, "translate_frac": 1}
    assert EDM_AUGMENT_P == {"cifar10": 0.12, "ffhq-64": 0.15, "afhqv2-64": 0.15}
    pipe = AugmentPipe.from_config(edm_config_f("cifar10"))
    assert pipe.p == 0.12 and pipe.label_dim == 9 == len(CONFIG_F_LABELS)  # the network's augment_dim 9
    with pytest.raises(BenchError, match="no augment probability"):
        edm_config_f("imagenet-64")
    with pytest.raises(BenchError, match="unknown augment option 'hue'"):
        AugmentPipe.from_config({"p": 0.1, "hue": 1})
    with pytest.raises(BenchError, match="probability"):
        AugmentPipe(p=1.5)


def test_p_zero_leaves_images_unchanged_and_labels_zero():
    x = _images()
    torch.manual_seed(0)
    out, labels = AugmentPipe(p=0.0, **EDM_CONFIG_F)(x)
    assert labels.shape == (4, 9) and torch.equal(labels, torch.zeros(4, 9))
    # the geometric path still runs (identity map): sym6 up/down sampling reconstructs perfectly
    assert torch.allclose(out, x, atol=1e-5)


def test_xflip_is_torch_flip_and_sets_its_label():
    x = _images(n=64)
    out, labels = AugmentPipe(p=1.0, xflip=1.0)(x, generator=torch.Generator().manual_seed(1))
    assert labels.shape == (64, 1)
    flipped = labels[:, 0] == 1
    assert 0 < int(flipped.sum()) < 64  # a fair coin per image
    assert torch.equal(out[flipped], torch.flip(x[flipped], dims=[3]))
    assert torch.equal(out[~flipped], x[~flipped])
    out, labels = AugmentPipe(p=1.0, yflip=1.0)(x, generator=torch.Generator().manual_seed(1))
    flipped = labels[:, 0] == 1
    assert torch.equal(out[flipped], torch.flip(x[flipped], dims=[2])) and torch.equal(out[~flipped], x[~flipped])


def test_integer_translation_is_a_reflect_padded_shift():
    """EDM's integer translation: out[y, x] = in[y + ty, x - tx] with mirrored borders, label (tx, ty) in units
    of translate_int_max * (W, H)."""
    x = _images(n=32, h=16, w=16)
    pipe = AugmentPipe(p=1.0, translate_int=1.0, translate_int_max=0.25)  # shifts up to 4 pixels
    out, labels = pipe(x, generator=torch.Generator().manual_seed(2))
    assert labels.shape == (32, 2)
    shifts = (labels * 16 * 0.25).round().to(torch.int64)
    assert torch.allclose(labels * 4, shifts.float())  # whole pixels
    assert shifts.abs().max() == 4 and len({tuple(s) for s in shifts.tolist()}) > 5
    for i, (tx, ty) in enumerate(shifts.tolist()):
        assert torch.equal(out[i:i + 1], _shift_reflect(x[i:i + 1], tx, -ty)), (tx, ty)


def test_label_vector_layout_is_the_official_order():
    """Config F's 9 labels: xflip, yflip, scale, rotation (cos - 1, sin), aniso (w cos r, w sin r), translation
    (tx, ty). With p = 1 every transform fires: the flips are 0/1, cos - 1 and sin lie on the circle shifted by
    (-1, 0), and each label block follows its own distribution."""
    x = _images(n=2000, c=1, h=8, w=8)
    _, labels = AugmentPipe(p=1.0, **EDM_CONFIG_F)(x, generator=torch.Generator().manual_seed(3))
    assert labels.shape == (2000, 9)
    assert set(labels[:, 0].tolist()) == {0.0, 1.0} and set(labels[:, 1].tolist()) == {0.0, 1.0}
    cos, sin = labels[:, 3] + 1, labels[:, 4]
    assert torch.allclose(cos ** 2 + sin ** 2, torch.ones(2000), atol=1e-5)
    angle = torch.atan2(sin, cos)  # uniform on (-pi, pi): mean |angle| = pi / 2
    assert float(angle.abs().mean()) == pytest.approx(math.pi / 2, abs=0.1)
    for column in (2, 7, 8):  # scale and translation: standard normal draws
        assert float(labels[:, column].mean()) == pytest.approx(0.0, abs=0.1)
        assert float(labels[:, column].std()) == pytest.approx(1.0, abs=0.1)
    # aniso: w ~ N(0, 1) times (cos r, sin r); r = 0 (no rotation of the stretch axis) half the time
    radius = labels[:, 5].hypot(labels[:, 6])
    assert float((radius ** 2).mean()) == pytest.approx(1.0, abs=0.15)
    assert float((labels[:, 6] == 0).float().mean()) == pytest.approx(0.5, abs=0.05)


def test_whole_pixel_translation_and_quarter_turn_through_the_geometric_path():
    """The resampling path on hand-built maps. A translation by whole pixels is exactly a shift with mirrored
    borders (the reflect padding; the sym6 up/down pair is invariant to whole-pixel shifts). A quarter turn about
    the centre is torch.rot90 counter-clockwise on screen for theta = pi/2 (the official rotate2d_inv(-theta)),
    up to the interpolation of the asymmetric sym6 filter: checked on a smooth image, against the other turn."""
    x = _images(n=1, c=2, h=16, w=16)
    shift = torch.tensor([[[1.0, 0.0, -3.0], [0.0, 1.0, 2.0], [0.0, 0.0, 1.0]]])  # g_inv: out(p) = in(p - (3, -2))
    assert torch.allclose(resample(x, shift), _shift_reflect(x, 3, -2), atol=1e-4)
    theta = torch.tensor([math.pi / 2])
    rot = torch.stack([torch.stack([theta.cos(), -theta.sin(), torch.zeros(1)], -1),
                       torch.stack([theta.sin(), theta.cos(), torch.zeros(1)], -1),
                       torch.tensor([[0.0, 0.0, 1.0]])], dim=1)
    smooth = F.interpolate(_images(n=1, c=2, h=4, w=4), size=16, mode="bicubic", align_corners=True)
    turned = resample(smooth, rot)
    assert (turned - torch.rot90(smooth, k=1, dims=(2, 3))).abs().mean() < 0.01
    assert (turned - torch.rot90(smooth, k=3, dims=(2, 3))).abs().mean() > 0.1


def _rotation(theta):
    """[N, 3, 3] inverse maps out(p) = in(R(theta) p), R = [[cos, -sin], [sin, cos]] (x right, y down)."""
    zero, one = torch.zeros_like(theta), torch.ones_like(theta)
    return torch.stack([torch.stack([theta.cos(), -theta.sin(), zero], -1),
                        torch.stack([theta.sin(), theta.cos(), zero], -1),
                        torch.stack([zero, zero, one], -1)], dim=1)


def test_rotation_label_names_the_applied_turn():
    """rotate_frac's labels (cos - 1, sin) give the angle theta that was applied: the pipe's output is the
    resampling with R(theta), the map that turns an image a quarter counter-clockwise at theta = pi/2 (above)."""
    x = _images(n=32, c=1, h=16, w=16)
    out, labels = AugmentPipe(p=1.0, rotate_frac=1.0)(x, generator=torch.Generator().manual_seed(8))
    theta = torch.atan2(labels[:, 1], labels[:, 0] + 1)
    assert float(theta.abs().max()) > 2.5  # turns of more than 140 degrees were drawn
    assert torch.allclose(out, resample(x, _rotation(theta)), atol=1e-4)
    assert not torch.allclose(out, resample(x, _rotation(-theta)), atol=1e-2)


def test_scale_label_names_the_magnification():
    """scale's label w magnifies the image by s = 2^(w scale_std) about its centre: a centred Gaussian blob of
    width 2.5 pixels comes out 2.5 s wide (measured by its second moment)."""
    grid = torch.arange(32.0) - 15.5
    blob = torch.exp(-(grid[:, None] ** 2 + grid[None, :] ** 2) / (2 * 2.5 ** 2))
    out, labels = AugmentPipe(p=1.0, scale=1.0)(blob.expand(64, 1, 32, 32).contiguous(),
                                                generator=torch.Generator().manual_seed(10))
    mass = out[:, 0].clamp(min=0)
    width = ((mass * grid[None, :] ** 2).sum((1, 2)) / mass.sum((1, 2))).sqrt()
    magnification = torch.exp2(labels[:, 0] * 0.2)
    assert float(magnification.max() / magnification.min()) > 1.5
    assert torch.allclose(width, 2.5 * magnification, rtol=0.03)


def test_fractional_translation_label_matches_the_applied_shift():
    """translate_frac draws t ~ N(0, 1) and moves the image by t * translate_frac_std * (W, H) pixels, +x right
    and +y down: with std 1/32 of a 32-pixel image, a square's centre of mass moves by exactly the label."""
    x = torch.zeros(64, 1, 32, 32)
    x[:, :, 14:18, 14:18] = 1.0
    out, labels = AugmentPipe(p=1.0, translate_frac=1.0, translate_frac_std=1 / 32)(
        x, generator=torch.Generator().manual_seed(6))
    grid = torch.arange(32.0)
    mass = out[:, 0].clamp(min=0)
    cx = (mass.sum(1) * grid).sum(1) / mass.sum((1, 2))
    cy = (mass.sum(2) * grid).sum(1) / mass.sum((1, 2))
    assert torch.allclose(cx - 15.5, labels[:, 0], atol=0.1) and torch.allclose(cy - 15.5, labels[:, 1], atol=0.1)
    assert float(labels.abs().max()) > 1.0  # shifts of more than a pixel were checked


@pytest.mark.parametrize("p", [0.12, 0.15])
def test_each_transform_fires_with_probability_multiplier_times_p(p):
    """Over 20,000 images each transform of config F fires with probability multiplier * p: its label is
    non-zero that often (y-flip: the coin then flips half of them; x-flip's multiplier 1e8 makes it always
    selected, a fair coin whatever p). Tolerance: 4.5 binomial standard deviations."""
    n = 20_000
    _, labels = AugmentPipe(p=p, **EDM_CONFIG_F)(torch.zeros(n, 1, 4, 4), generator=torch.Generator().manual_seed(7))
    expected = {0: 0.5, 1: p / 2, 2: p, 4: p, 5: p, 7: p}  # label column -> firing rate
    for column, rate in expected.items():
        seen = float((labels[:, column] != 0).float().mean())
        assert abs(seen - rate) < 4.5 * math.sqrt(rate * (1 - rate) / n), (CONFIG_F_LABELS[column], seen, rate)
    # the translation's two coordinates fire together (one draw decides both)
    assert torch.equal(labels[:, 7] != 0, labels[:, 8] != 0)


def test_same_seed_same_draws():
    x = _images()
    a = AugmentPipe(p=0.5, **EDM_CONFIG_F)(x, generator=torch.Generator().manual_seed(9))
    b = AugmentPipe(p=0.5, **EDM_CONFIG_F)(x, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
