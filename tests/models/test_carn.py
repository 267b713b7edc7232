"""CARN (baselines/sr/carn.py) against the official nmhkahn/CARN-pytorch code: its parameter count (derived here
from the official layer shapes and checked against the paper's 1,592K), its state-dict layout (key names and
shapes of ``carn/model/carn.py`` Net, listed here by hand from that file) and its forward, compared with a
functional re-implementation of the official ``Net.forward`` / ``Block.forward`` / ops written with F.conv2d."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from baselines.sr import carn
from bench.profile import count_params
from bench.registry import BenchError

C = 64
MEAN = (0.4488, 0.4371, 0.4040)  # carn.py: ops.MeanShift((0.4488, 0.4371, 0.4040), sub=...)


def conv_shapes(cin: int, cout: int, k: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return (cout, cin, k, k), (cout,)


def official_layout(multi_scale: bool = True, scale: int = 4) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the official Net(multi_scale=...).state_dict(), from carn.py and ops.py."""
    convs: dict[str, tuple[int, int, int]] = {"sub_mean.shifter": (3, 3, 1), "add_mean.shifter": (3, 3, 1),
                                              "entry": (3, C, 3), "exit": (C, 3, 3)}
    for i in (1, 2, 3):
        for j in (1, 2, 3):
            convs[f"b{i}.b{j}.body.0"] = (C, C, 3)  # ops.ResidualBlock: conv, ReLU, conv
            convs[f"b{i}.b{j}.body.2"] = (C, C, 3)
            convs[f"b{i}.c{j}.body.0"] = (C * (j + 1), C, 1)  # ops.BasicBlock(64*(j+1), 64, 1, 1, 0)
        convs[f"c{i}.body.0"] = (C * (i + 1), C, 1)
    ups = {"up2": 2, "up3": 3, "up4": 4} if multi_scale else {"up": scale}
    for name, s in ups.items():  # ops._UpsampleBlock: [conv, ReLU, PixelShuffle] per x2 step, or one x3 step
        for step in range(2 if s == 4 else 1):
            convs[f"upsample.{name}.body.{3 * step}"] = (C, (9 if s == 3 else 4) * C, 3)
    layout = {}
    for name, (cin, cout, k) in convs.items():
        layout[f"{name}.weight"], layout[f"{name}.bias"] = conv_shapes(cin, cout, k)
    return layout


def numel(shape: tuple[int, ...]) -> int:
    return int(torch.tensor(shape).prod())


def trainable_count(layout: dict[str, tuple[int, ...]]) -> int:
    """The official solver's count minus the frozen mean shifts (requires_grad False)."""
    return sum(numel(shape) for key, shape in layout.items() if "_mean." not in key)


# ------------------------------------------------------------------------------------------------ counts
def test_multi_scale_count_is_the_papers_1592k_at_every_scale():
    official = trainable_count(official_layout(multi_scale=True))
    # by hand: entry 1,792 + 3 blocks x 258,624 + global 1x1s 37,056 + exit 1,731 + up2 147,712 + up3 332,352
    # + up4 295,424
    assert official == 1792 + 3 * 258_624 + 37_056 + 1731 + 147_712 + 332_352 + 295_424 == 1_591_939
    assert official == pytest.approx(1_592_000, rel=0.01)  # CARN paper: 1,592K; LIPT's table: 1.59M
    for s in (2, 3, 4):
        model = carn.build(s, "carn")
        assert count_params(model) == official
        assert carn.PUBLISHED_PARAMS[s] == pytest.approx(count_params(model), rel=0.01)
        assert count_params(model, trainable_only=False) == official + 2 * (9 + 3)  # the frozen mean shifts


@pytest.mark.parametrize("s", [2, 3, 4])
def test_single_scale_count_and_paper_convention(s):
    model = carn.build(s, "carn-single")
    assert count_params(model) == trainable_count(official_layout(multi_scale=False, scale=s))
    # what a run records as params_m_paper_convention: the multi-scale model's count
    assert carn.paper_param_count(model) == 1_591_939


# ------------------------------------------------------------------------------------------------ layout
@pytest.mark.parametrize("variant,multi", [("carn", True), ("carn-single", False)])
def test_state_dict_keys_and_shapes_are_the_official_ones(variant, multi):
    state = carn.build(3, variant).state_dict()
    expected = official_layout(multi_scale=multi, scale=3)
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    assert list(state)[:6] == ["sub_mean.shifter.weight", "sub_mean.shifter.bias", "add_mean.shifter.weight",
                               "add_mean.shifter.bias", "entry.weight", "entry.bias"]


def test_mean_shifts_are_the_official_frozen_ones():
    model = carn.build(2)
    eye = torch.eye(3).view(3, 3, 1, 1)
    assert torch.equal(model.sub_mean.shifter.weight, eye) and torch.equal(model.add_mean.shifter.weight, eye)
    assert model.sub_mean.shifter.bias.tolist() == pytest.approx([-m for m in MEAN])
    assert model.add_mean.shifter.bias.tolist() == pytest.approx(list(MEAN))
    assert not any(p.requires_grad for p in model.sub_mean.parameters())
    assert model.rgb_range == 1.0  # the official data are ToTensor() images in [0, 1]


# ----------------------------------------------------------------------------------------------- forward
def official_state(seed: int) -> dict[str, torch.Tensor]:
    """A state dict in the official layout: random convs (std 0.05, so that activations neither die nor blow
    up through the cascade), the official mean shifts."""
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(shape, generator=g, dtype=torch.float64) * 0.05
             for k, shape in official_layout(multi_scale=True).items()}
    for name, sign in (("sub_mean", -1), ("add_mean", 1)):
        state[f"{name}.shifter.weight"] = torch.eye(3, dtype=torch.float64).view(3, 3, 1, 1)
        state[f"{name}.shifter.bias"] = sign * torch.tensor(MEAN, dtype=torch.float64)
    return state


def reference_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, scale: int) -> torch.Tensor:
    """carn.py Net.forward(x, scale) written out with F.conv2d, as in the official file (no loops)."""
    def conv(t, name, pad):
        return F.conv2d(t, sd[f"{name}.weight"], sd[f"{name}.bias"], padding=pad)

    def residual(t, name):  # ops.ResidualBlock
        return F.relu(conv(F.relu(conv(t, f"{name}.body.0", 1)), f"{name}.body.2", 1) + t)

    def basic(t, name):  # ops.BasicBlock, 1x1
        return F.relu(conv(t, f"{name}.body.0", 0))

    def block(t, p):  # carn.py Block.forward
        c0 = o0 = t
        b1 = residual(o0, f"{p}.b1")
        c1 = torch.cat([c0, b1], dim=1)
        o1 = basic(c1, f"{p}.c1")
        b2 = residual(o1, f"{p}.b2")
        c2 = torch.cat([c1, b2], dim=1)
        o2 = basic(c2, f"{p}.c2")
        b3 = residual(o2, f"{p}.b3")
        c3 = torch.cat([c2, b3], dim=1)
        return basic(c3, f"{p}.c3")

    x = conv(x, "sub_mean.shifter", 0)
    x = conv(x, "entry", 1)
    c0 = o0 = x
    b1 = block(o0, "b1")
    c1 = torch.cat([c0, b1], dim=1)
    o1 = basic(c1, "c1")
    b2 = block(o1, "b2")
    c2 = torch.cat([c1, b2], dim=1)
    o2 = basic(c2, "c2")
    b3 = block(o2, "b3")
    c3 = torch.cat([c2, b3], dim=1)
    out = basic(c3, "c3")
    if scale == 3:
        out = F.pixel_shuffle(F.relu(conv(out, "upsample.up3.body.0", 1)), 3)
    else:
        for step in range(scale // 2):
            out = F.pixel_shuffle(F.relu(conv(out, f"upsample.up{scale}.body.{3 * step}", 1)), 2)
    out = conv(out, "exit", 1)
    return conv(out, "add_mean.shifter", 0)


def test_official_state_dict_loads_strictly_and_matches_the_reference_forward():
    state = official_state(0)
    model = carn.build(2, "carn").double().eval()
    model.load_state_dict(state, strict=True)
    x = torch.rand(2, 3, 11, 9, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        for s in (2, 3, 4):
            want = reference_forward(state, x, s)
            assert want.shape == (2, 3, 11 * s, 9 * s)
            assert want.std() > 1e-3  # the random weights keep a signal through the cascade
            torch.testing.assert_close(model(x, s), want, rtol=1e-10, atol=1e-10)
        # without a scale argument the network upsamples by the factor it was built for
        torch.testing.assert_close(model(x), reference_forward(state, x, 2), rtol=1e-10, atol=1e-10)


def test_a_state_dict_of_another_layout_does_not_load():
    state = official_state(0)
    with pytest.raises(RuntimeError, match="upsample.up"):  # the single-scale model has only upsample.up
        carn.build(2, "carn-single").double().load_state_dict(state, strict=True)


# ------------------------------------------------------------------------------------------------ errors
def test_bad_scales_and_inputs_are_one_line_errors():
    with pytest.raises(BenchError, match="scale must be one of 2, 3, 4"):
        carn.build(5)
    with pytest.raises(BenchError, match="upsamples x2, not x4"):
        carn.build(2, "carn-single")(torch.rand(1, 3, 8, 8), 4)
    with pytest.raises(BenchError, match=r"expects a \[B, 3, H, W\]"):
        carn.build(2, "tiny")(torch.rand(1, 1, 8, 8))
    with pytest.raises(BenchError, match="unknown CARN variant"):
        carn.build(2, "carn-m")
