"""Released SR checkpoints (bench evaluate lipt): each official layout, built here with the key names and shapes
the official code writes (listed independently below from the official sources) and random weights, saved the
official way, must load strictly into bench's model and give bench's outputs; ELAN's frozen one-hot shift
kernels are checked and converted (and refused when they are not the shift); the CLI runs end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.sr import convert_elan, edsr_baseline, elan_light, imdn, swinir_light
from baselines.sr.convert_official import OfficialTestPadding
from bench.evaluate import CheckpointError
from methods.lipt import released


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """One torch and one BLAS thread for every test here (tests/conftest.py)."""


def randomise_(model: torch.nn.Module, seed: int = 0, std: float = 0.02) -> torch.nn.Module:
    """Perturb every float parameter and buffer (BN statistics included) so that a key loaded into the wrong
    place changes the output; frozen mean shifts keep their meaning."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():  # what a checkpoint holds (shares the model's storage)
            if not t.is_floating_point() or name.startswith(("sub_mean.", "add_mean.")):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.add_(torch.randn(t.shape, generator=g) * std)
    return model.eval()


def check_same_outputs(loaded: torch.nn.Module, source: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x), rtol=0, atol=0)


# ---------------------------------------------------------------------------------- official key lists
def swinir_official_keys(depths=(6, 6, 6, 6)) -> set[str]:
    """models/network_swinir.py, lightweight_sr (patch_norm, 1conv, pixelshuffledirect, no ape)."""
    keys = {"conv_first.weight", "conv_first.bias", "patch_embed.norm.weight", "patch_embed.norm.bias",
            "norm.weight", "norm.bias", "conv_after_body.weight", "conv_after_body.bias",
            "upsample.0.weight", "upsample.0.bias"}
    for i, depth in enumerate(depths):
        keys |= {f"layers.{i}.conv.weight", f"layers.{i}.conv.bias"}
        for j in range(depth):
            b = f"layers.{i}.residual_group.blocks.{j}"
            keys |= {f"{b}.{leaf}" for leaf in (
                "norm1.weight", "norm1.bias", "attn.relative_position_bias_table", "attn.relative_position_index",
                "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias", "norm2.weight",
                "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias")}
            if j % 2:  # shifted blocks register attn_mask (None, i.e. absent, when shift_size == 0)
                keys.add(f"{b}.attn_mask")
    return keys


def edsr_official_keys(n_resblocks: int, scale: int) -> set[str]:
    """src/model/edsr.py + common.py: MeanShift convs, ResBlock body.{0,2}, Upsampler [conv, shuffle]*."""
    keys = {f"{m}.{p}" for m in ("sub_mean", "add_mean", "head.0", f"body.{n_resblocks}") for p in ("weight", "bias")}
    for i in range(n_resblocks):
        keys |= {f"body.{i}.body.{j}.{p}" for j in (0, 2) for p in ("weight", "bias")}
    ups = {2: [0], 3: [0], 4: [0, 2]}[scale]
    keys |= {f"tail.0.{j}.{p}" for j in ups for p in ("weight", "bias")}
    keys |= {"tail.1.weight", "tail.1.bias"}
    return keys


def imdn_official_keys(num_modules: int = 6) -> set[str]:
    """model/architecture.py IMDN + block.py IMDModule / CCALayer / conv_block / pixelshuffle_block."""
    keys = {f"{m}.{p}" for m in ("fea_conv", "c.0", "LR_conv", "upsampler.0") for p in ("weight", "bias")}
    for i in range(1, num_modules + 1):
        keys |= {f"IMDB{i}.{m}.{p}" for m in ("c1", "c2", "c3", "c4", "c5", "cca.conv_du.0", "cca.conv_du.2")
                 for p in ("weight", "bias")}
    return keys


def elan_official_keys(blocks: int = 12, n_share: int = 1) -> set[str]:
    """models/elan_network.py + elan_block.py with conv_type 'fast-training-speed' (ShiftConv2d1)."""
    keys = {f"{m}.{p}" for m in ("sub_mean", "add_mean", "head.0", "tail.0") for p in ("weight", "bias")}
    for i in range(blocks):
        for j in range(1 + n_share):
            for conv in ("conv0", "conv1"):
                sc = f"body.{i}.modules_lfe.lfe_{j}.{conv}.shift_conv"
                keys |= {f"{sc}.weight", f"{sc}.conv1x1.weight", f"{sc}.conv1x1.bias"}
            g = f"body.{i}.modules_gmsa.gmsa_{j}"
            keys |= {f"{g}.project_inp.0.weight", f"{g}.project_inp.0.bias", f"{g}.project_out.weight",
                     f"{g}.project_out.bias"}
            keys |= {f"{g}.project_inp.1.{p}" for p in ("weight", "bias", "running_mean", "running_var",
                                                         "num_batches_tracked")}
    return keys


def official_elan_kernel(channels: int) -> torch.Tensor:
    """ShiftConv2d1.weight exactly as the official __init__ fills it."""
    w = torch.zeros(channels, 1, 3, 3)
    g = channels // 5
    w[0 * g:1 * g, 0, 1, 2] = 1.0
    w[1 * g:2 * g, 0, 1, 0] = 1.0
    w[2 * g:3 * g, 0, 2, 1] = 1.0
    w[3 * g:4 * g, 0, 0, 1] = 1.0
    w[4 * g:, 0, 1, 1] = 1.0
    return w


def official_elan_state(model: elan_light.ELAN) -> dict[str, torch.Tensor]:
    """The state dict the official ELAN holds for the same weights: every ShiftConv2d as shift_conv.weight
    (frozen one-hot kernel) + shift_conv.conv1x1."""
    out = {}
    for key, value in model.state_dict().items():
        if ".conv1x1." in key:
            stem, leaf = key.rsplit(".conv1x1.", 1)
            out[f"{stem}.shift_conv.conv1x1.{leaf}"] = value
            if leaf == "weight":
                out[f"{stem}.shift_conv.weight"] = official_elan_kernel(value.shape[1])
        else:
            out[key] = value
    return out


# ------------------------------------------------------------------------------------------------ SwinIR
def test_swinir_params_file_loads_strictly_and_matches(tmp_path):
    source = randomise_(swinir_light.build(2, "light"), seed=1)
    official = dict(source.state_dict())
    for i, layer in enumerate(source.layers):  # the derived buffers the official model also saves
        for j, blk in enumerate(layer.residual_group.blocks):
            b = f"layers.{i}.residual_group.blocks.{j}"
            official[f"{b}.attn.relative_position_index"] = swinir_light.relative_position_index(8)
            if j % 2:
                official[f"{b}.attn_mask"] = swinir_light.shifted_window_mask(64, 64, 8, 4)
    assert set(official) == swinir_official_keys()
    path = tmp_path / "002_lightweightSR_DIV2K_s64w8_SwinIR-S_x2.pth"
    torch.save({"params": official}, path)
    net, scale, _ = released.load_released("swinir-light", path)
    assert scale == 2 and isinstance(net, OfficialTestPadding)
    x = torch.rand(1, 3, 13, 10)
    check_same_outputs(net.model, source, x)
    with torch.no_grad():  # through the test script's padding: the output still has the input's size x 2
        assert net(x).shape == (1, 3, 26, 20)


def test_swinir_test_padding_is_the_scripts_mirror_padding():
    seen = []

    def spy(x):
        seen.append(x)
        return x.repeat_interleave(2, -1).repeat_interleave(2, -2)

    wrapper = OfficialTestPadding(spy, window=4, scale=2)
    x = torch.arange(2 * 5 * 6, dtype=torch.float32).view(1, 2, 5, 6)
    out = wrapper(x)
    # h 5 -> (5 // 4 + 1) * 4 = 8 (3 mirrored rows); w 6 -> 8 (2): numpy's 'symmetric' pad repeats the edge
    ref = np.pad(x.numpy(), ((0, 0), (0, 0), (0, 3), (0, 2)), mode="symmetric")
    np.testing.assert_array_equal(seen[0].numpy(), ref)
    assert out.shape == (1, 2, 10, 12)
    # a size already a multiple of the window still gets a full window more (the script's "+ 1")
    wrapper(torch.zeros(1, 1, 8, 4))
    assert seen[1].shape[-2:] == (12, 8)


# -------------------------------------------------------------------------------------------------- EDSR
@pytest.mark.parametrize("scale", [2, 3])
def test_edsr_plain_state_dict_loads_strictly_and_matches(tmp_path, scale):
    source = randomise_(edsr_baseline.build(scale, "baseline"), seed=scale)
    official = source.state_dict()
    assert set(official) == edsr_official_keys(16, scale)
    # the released files' mean shifts: MeanShift(255) with the DIV2K mean, rgb_std 1
    torch.testing.assert_close(official["sub_mean.bias"], -255 * torch.tensor([0.4488, 0.4371, 0.4040]))
    path = tmp_path / f"edsr_baseline_x{scale}.pt"
    torch.save(official, path)
    net, found, _ = released.load_released("edsr-baseline", path)
    assert found == scale and net.rgb_range == 255.0
    check_same_outputs(net, source, torch.rand(1, 3, 9, 11) * 255)


def test_edsr_reads_rgb_range_from_its_mean_shift(tmp_path):
    source = randomise_(edsr_baseline.build(2, "baseline", rgb_range=1.0))
    torch.save(source.state_dict(), tmp_path / "edsr_rgb1.pt")
    net, _, _ = released.load_released("edsr-baseline", tmp_path / "edsr_rgb1.pt")
    assert net.rgb_range == 1.0
    check_same_outputs(net, source, torch.rand(1, 3, 8, 8))


def test_full_edsr_is_refused_as_edsr_baseline(tmp_path):
    big = edsr_baseline.EDSR(scale=2, n_resblocks=2, n_feats=32)
    torch.save(big.state_dict(), tmp_path / "edsr_x2.pt")
    with pytest.raises(CheckpointError, match="2 blocks of 32 features, not EDSR-baseline"):
        released.load_released("edsr-baseline", tmp_path / "edsr_x2.pt")


# -------------------------------------------------------------------------------------------------- IMDN
def test_imdn_dataparallel_state_dict_loads_strictly_and_matches(tmp_path):
    source = randomise_(imdn.build(4, "imdn"), seed=3)
    assert set(source.state_dict()) == imdn_official_keys()
    path = tmp_path / "IMDN_x4.pth"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)  # DataParallel training
    net, scale, _ = released.load_released("imdn", path)
    assert scale == 4
    check_same_outputs(net, source, torch.rand(1, 3, 7, 9))


def test_a_file_of_another_model_fails_with_one_line(tmp_path):
    torch.save(imdn.build(2, "imdn").state_dict(), tmp_path / "IMDN_x2.pth")
    with pytest.raises(CheckpointError) as info:
        released.load_released("edsr-baseline", tmp_path / "IMDN_x2.pth")
    assert "\n" not in str(info.value) and "IMDN_x2.pth" in str(info.value)


# -------------------------------------------------------------------------------------------------- ELAN
def test_elan_official_checkpoint_converts_and_matches(tmp_path):
    source = randomise_(elan_light.build(2, "light"), seed=4)
    official = official_elan_state(source)
    assert set(official) == elan_official_keys()
    path = tmp_path / "model_x2_1000.pt"
    torch.save({"epoch": 1000, "model_state_dict": {f"module.{k}": v for k, v in official.items()},
                "optimizer_state_dict": {}, "stat_dict": {"epochs": 1000}}, path)  # the official train.py's save
    with pytest.raises(RuntimeError, match="shift_conv"):  # what failed before the converter
        elan_light.build(2, "light").load_state_dict(official, strict=True)
    net, scale, _ = released.load_released("elan-light", path)
    assert scale == 2
    check_same_outputs(net, source, torch.rand(1, 3, 16, 16) * 255)


def test_elan_converted_shift_convs_equal_the_official_forward():
    """Both official shift-conv classes, run as the official forward does, against bench's converted layer."""
    torch.manual_seed(5)
    cin, cout = 12, 8
    x = torch.randn(2, cin, 6, 7)
    kernel = official_elan_kernel(cin)
    conv1x1 = torch.nn.Conv2d(cin, cout, 1)
    w3, b3 = torch.randn(cout, cin, 3, 3), torch.randn(cout)
    mask = kernel.transpose(0, 1).expand(cout, cin, 3, 3).clone()  # ShiftConv2d0's m: per input channel
    official = {"a.shift_conv.weight": kernel, "a.shift_conv.conv1x1.weight": conv1x1.weight.detach(),
                "a.shift_conv.conv1x1.bias": conv1x1.bias.detach(),
                "b.shift_conv.w": w3, "b.shift_conv.b": b3, "b.shift_conv.m": mask}
    converted = convert_elan.convert_state_dict(official)
    assert set(converted) == {"a.conv1x1.weight", "a.conv1x1.bias", "b.conv1x1.weight", "b.conv1x1.bias"}
    for stem, reference in (
            ("a", conv1x1(F.conv2d(x, kernel, padding=1, groups=cin))),  # ShiftConv2d1.forward
            ("b", F.conv2d(x, w3 * mask, b3, padding=1))):  # ShiftConv2d0.forward
        layer = elan_light.ShiftConv2d(cin, cout)
        layer.load_state_dict({k.removeprefix(f"{stem}."): v for k, v in converted.items()
                               if k.startswith(f"{stem}.")}, strict=True)
        with torch.no_grad():
            torch.testing.assert_close(layer(x), reference.detach(), rtol=1e-5, atol=1e-5)


def test_elan_refuses_kernels_that_are_not_its_shift():
    c = 10
    base = {"a.shift_conv.conv1x1.weight": torch.zeros(4, c, 1, 1), "a.shift_conv.conv1x1.bias": torch.zeros(4)}
    blurred = official_elan_kernel(c)
    blurred[3, 0] = 1 / 9  # a learned or averaged kernel: not a shift
    with pytest.raises(CheckpointError, match="channel 3 is not a one-hot shift kernel"):
        convert_elan.convert_state_dict({**base, "a.shift_conv.weight": blurred})
    swapped = official_elan_kernel(c)
    swapped[[0, 1, 2, 3]] = swapped[[2, 3, 0, 1]]  # groups in another order: one-hot, wrong directions
    with pytest.raises(CheckpointError, match=r"channel 0 shifts with its 1 at \(1, 0\).*from the right"):
        convert_elan.convert_state_dict({**base, "a.shift_conv.weight": swapped})
    scaled = official_elan_kernel(c) * 2  # one nonzero per channel but not 1: also not the shift
    with pytest.raises(CheckpointError, match="not a one-hot"):
        convert_elan.convert_state_dict({**base, "a.shift_conv.weight": scaled})


def test_elan_command_line_converter(tmp_path):
    source = randomise_(elan_light.build(3, "light"), seed=6)
    torch.save({"model_state_dict": official_elan_state(source)}, tmp_path / "model_x3_1.pt")
    assert convert_elan.main([str(tmp_path / "model_x3_1.pt"), str(tmp_path / "bench.pth")]) == 0
    fresh = elan_light.build(3, "light")
    fresh.load_state_dict(torch.load(tmp_path / "bench.pth", weights_only=True), strict=True)
    check_same_outputs(fresh.eval(), source, torch.rand(1, 3, 16, 16) * 255)
    assert convert_elan.main([str(tmp_path / "missing.pt"), str(tmp_path / "x.pth")]) == 2


# -------------------------------------------------------------------------------------------------- LIPT
def test_lipt_train_py_and_convert_py_checkpoints(tmp_path):
    from methods.lipt.model import build_lipt
    from methods.lipt.reparam import SobelBranch

    source = randomise_(build_lipt("tiny", 2), seed=7, std=0.01)
    for m in source.modules():  # BN gains small, so the deep random net stays O(1)
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.1, 0.3)
        if isinstance(m, SobelBranch):
            assert "mask" in dict(m.named_buffers())
    deployed = source.deploy()
    x = torch.rand(1, 3, 16, 16) * 255
    # train.py: {'model_state_dict': DataParallel state}, training form
    torch.save({"epoch": 1, "model_state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}},
               tmp_path / "model_x2_1.pt")
    net, scale, form = released.load_released("lipt-tiny", tmp_path / "model_x2_1.pt")
    assert scale == 2 and form.startswith("train.py") and net.is_deployed
    check_same_outputs(net, deployed, x)
    # convert.py: fused convs under .dbb_reparam., attention input projections still conv + BN
    conv = {}
    for key, value in deployed.state_dict().items():
        stem, leaf = key.rsplit(".", 1)
        if ".project_inp" in stem:
            continue
        rep = "modules_hrm" in stem and stem.endswith((".conv0", ".conv1"))
        conv[f"module.{stem}.dbb_reparam.{leaf}" if rep else f"module.{key}"] = value
    conv.update({f"module.{k}": v for k, v in source.state_dict().items() if ".project_inp." in k})
    torch.save(conv, tmp_path / "lipt_tiny_x2_deploy.pt")
    net, _, form = released.load_released("lipt-tiny", tmp_path / "lipt_tiny_x2_deploy.pt")
    assert form.startswith("convert.py")
    with torch.no_grad():
        torch.testing.assert_close(net(x), deployed(x), rtol=1e-5, atol=1e-3)


# ------------------------------------------------------------------------------------------- end to end
def _psnr_y_matlab(sr: np.ndarray, hr: np.ndarray, crop: int) -> float:
    """By hand: uint8-rounded SR, MATLAB rgb2ycbcr's uint8 Y (BT.601 limited range, .5 up; exact integers),
    crop, 10 log10(255^2 / MSE)."""
    def y(img):
        img = img.astype(np.int64)
        num = 255000 * 16 + 65481 * img[..., 0] + 128553 * img[..., 1] + 24966 * img[..., 2]
        return ((num + 127500) // 255000).astype(np.float64)

    a = y(np.round(np.clip(sr, 0, 255)))[crop:-crop, crop:-crop]
    b = y(hr)[crop:-crop, crop:-crop]
    return 10 * np.log10(255.0 ** 2 / np.mean((a - b) ** 2))


def test_bench_evaluate_swinir_end_to_end(tmp_path, store_root):
    from PIL import Image
    from typer.testing import CliRunner

    from bench.cli import app
    from bench.evaluate import released_module
    from tests.fixtures_official.div2k import write_benchmarks

    assert released_module("lipt") is released  # the core finds these hooks
    root = write_benchmarks(tmp_path / "data", sets=("Urban100",))
    source = randomise_(swinir_light.build(2, "light"), seed=8, std=0.002)
    ckpt = tmp_path / "002_lightweightSR_DIV2K_s64w8_SwinIR-S_x2.pth"
    torch.save({"params": source.state_dict()}, ckpt)
    missing = CliRunner().invoke(app, ["evaluate", "lipt", "--entry", "swinir-light", "--checkpoint",
                                       str(tmp_path / "nope.pth"), "--data-root", str(root)])
    assert missing.exit_code != 0 and "nope.pth" in missing.output and "JingyunLiang/SwinIR" in missing.output
    result = CliRunner().invoke(app, ["evaluate", "lipt", "--entry", "swinir-light", "--checkpoint", str(ckpt),
                                      "--data-root", str(root), "--max-samples", "2", "--device", "cpu",
                                      "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    run = out["run"]
    assert run["dataset"] == "urban100" and run["status"] == "complete"
    psnr = next(m for m in run["metrics"] if m["metric"] == "psnr_y@matlab")
    assert psnr["setting"] == {"sr_scale": 2} and psnr["n"] == 2
    # independent reference: the script's padding + our hand-written PSNR-Y on the two images
    padded = OfficialTestPadding(source, 8, 2).eval()
    values = []
    for stem in ("img001", "img002"):
        hr = np.asarray(Image.open(root / "benchmark/Urban100/HR" / f"{stem}.png").convert("RGB"))
        lr = np.asarray(Image.open(root / "benchmark/Urban100/LR_bicubic/X2" / f"{stem}x2.png").convert("RGB"))
        with torch.no_grad():
            sr = padded(torch.from_numpy(lr.copy()).permute(2, 0, 1)[None].float() / 255)
        sr = sr[0].permute(1, 2, 0).double().numpy() * 255
        hr = hr[: sr.shape[0], : sr.shape[1]]
        values.append(_psnr_y_matlab(sr, hr, 2))
    assert psnr["value"] == pytest.approx(float(np.mean(values)), abs=1e-6)
    # the same file without the rehearsal cap: its cell sits beside the card's SwinIR-light Urban100 x2 (32.76)
    full = CliRunner().invoke(app, ["evaluate", "lipt", "--entry", "swinir-light", "--checkpoint", str(ckpt),
                                    "--data-root", str(root), "--device", "cpu", "--json"])
    assert full.exit_code == 0, full.output
    beside = next(r for r in json.loads(full.stdout)["beside_paper"] if r["metric"] == "psnr_y@matlab")
    assert beside["setting"] == "sr_scale=2" and beside["paper"] == 32.76
    assert beside["ours"] == pytest.approx(float(np.mean(values)), abs=1e-6)
    assert beside["delta"] == pytest.approx(beside["ours"] - 32.76)
