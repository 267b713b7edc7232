"""MiPKD's networks and losses: RCAN against the official EDSR-PyTorch layout (``src/model/rcan.py``: key names
and shapes listed here by hand from that file, the forward re-computed with F.conv2d from the state dict alone),
published parameter counts of the paper pairs, the staged forwards the distillers cut the bodies into, the SR-KD
losses against hand-written numpy, and the two prior mixers at their limiting probabilities."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.sr import edsr_baseline, rcan, swinir_light
from baselines.sr_kd import losses
from baselines.sr_kd.distill import Distiller
from baselines.sr_kd.stages import Staged, stage_bounds
from bench.profile import count_params
from bench.registry import BenchError
from methods.mipkd.mixers import FeaturePriorMixer, MiPKD, MiPKDConfig

MEAN = (0.4488, 0.4371, 0.4040)  # EDSR-PyTorch common.MeanShift's DIV2K mean, rgb_std 1


def official_rcan_layout(groups: int, blocks: int, c: int, reduction: int, scale: int) -> dict[str, tuple]:
    """Key -> shape of the official RCAN(args).state_dict() (rcan.py, common.py)."""
    convs = {"sub_mean": (3, 3, 1), "add_mean": (3, 3, 1), "head.0": (3, c, 3), f"body.{groups}": (c, c, 3),
             "tail.1": (c, 3, 3)}
    for g in range(groups):
        for b in range(blocks):  # RCAB: conv, ReLU, conv, CALayer(conv_du: 1x1 squeeze, ReLU, 1x1 excite, Sigmoid)
            convs[f"body.{g}.body.{b}.body.0"] = (c, c, 3)
            convs[f"body.{g}.body.{b}.body.2"] = (c, c, 3)
            convs[f"body.{g}.body.{b}.body.3.conv_du.0"] = (c, c // reduction, 1)
            convs[f"body.{g}.body.{b}.body.3.conv_du.2"] = (c // reduction, c, 1)
        convs[f"body.{g}.body.{blocks}"] = (c, c, 3)
    steps = [(f"tail.0.{2 * i}", 4) for i in range({2: 1, 4: 2}[scale])] if scale in (2, 4) else [("tail.0.0", 9)]
    for name, mult in steps:  # common.Upsampler: conv c -> mult*c, PixelShuffle
        convs[name] = (c, mult * c, 3)
    layout = {}
    for name, (cin, cout, k) in convs.items():
        layout[f"{name}.weight"], layout[f"{name}.bias"] = (cout, cin, k, k), (cout,)
    return layout


def official_rcan_state(groups, blocks, c, reduction, scale, seed=0):
    gen = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(shape, generator=gen) * 0.05 for k, shape in
             official_rcan_layout(groups, blocks, c, reduction, scale).items()}
    eye = torch.eye(3).view(3, 3, 1, 1)  # the mean shifts are fixed in the official code
    state.update({"sub_mean.weight": eye, "sub_mean.bias": -255 * torch.tensor(MEAN),
                  "add_mean.weight": eye.clone(), "add_mean.bias": 255 * torch.tensor(MEAN)})
    return state


def reference_rcan(state, x, groups, blocks, scale):
    """The official RCAN.forward written out from the state dict with F.conv2d."""
    def conv(h, name):
        w = state[f"{name}.weight"]
        return F.conv2d(h, w, state[f"{name}.bias"], padding=w.shape[-1] // 2)

    h = conv(conv(x, "sub_mean"), "head.0")
    res = h
    for g in range(groups):
        gin = res
        for b in range(blocks):
            p = f"body.{g}.body.{b}.body"
            y = conv(F.relu(conv(res, f"{p}.0")), f"{p}.2")
            att = torch.sigmoid(conv(F.relu(conv(y.mean((2, 3), keepdim=True), f"{p}.3.conv_du.0")),
                                     f"{p}.3.conv_du.2"))
            res = y * att + res
        res = conv(res, f"body.{g}.body.{blocks}") + gin
    res = conv(res, f"body.{groups}") + h
    if scale in (2, 4):
        for i in range({2: 1, 4: 2}[scale]):
            res = F.pixel_shuffle(conv(res, f"tail.0.{2 * i}"), 2)
    else:
        res = F.pixel_shuffle(conv(res, "tail.0.0"), 3)
    return conv(conv(res, "tail.1"), "add_mean")


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_rcan_loads_the_official_layout_strictly_with_equal_outputs(scale, one_torch_thread):
    groups, blocks, c, red = 2, 2, 16, 4
    state = official_rcan_state(groups, blocks, c, red, scale)
    model = rcan.build(scale, "tiny-teacher")
    assert set(model.state_dict()) == set(state)
    model.load_state_dict(state, strict=True)
    x = torch.rand(1, 3, 9, 7) * 255
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference_rcan(state, x, groups, blocks, scale), rtol=1e-5, atol=1e-3)


def test_rcan_full_layout_matches_the_official_key_list():
    assert {k: tuple(v.shape) for k, v in rcan.build(4, "rcan").state_dict().items()} == \
        official_rcan_layout(10, 20, 64, 16, 4)


@pytest.mark.parametrize("variant,published", [("rcan", 15.6e6), ("rcan-student", 5.2e6)])
def test_rcan_param_counts_equal_the_published_ones(variant, published):
    # RCAN paper ~15.6M at x4; DCKD Table 1 (MiPKD's pairs): teacher 15.6M, student (10 groups x 6 RCAB) 5.2M
    assert count_params(rcan.build(4, variant)) == pytest.approx(published, rel=0.01)


def test_edsr_teacher_param_count_equals_the_published_one():
    # EDSR paper: 43M for the x4 EDSR (32 blocks, 256 channels, residual scale 0.1)
    edsr = edsr_baseline.build(4, "baseline", n_feats=256, n_resblocks=32, res_scale=0.1)
    assert count_params(edsr) == pytest.approx(43e6, rel=0.01)


@pytest.mark.parametrize("variant,published", [("classical-m", 11.9e6), ("kd-student", 1.2e6)])
def test_swinir_pair_param_counts_equal_the_published_ones(variant, published):
    # DCKD Table 1 (MiPKD's pairs): SwinIR-M teacher 11.9M, c60s24 student 1.2M, in SwinIR's own convention
    # (the relative-position bias tables left out: swinir_light.paper_param_count)
    assert swinir_light.paper_param_count(swinir_light.build(4, variant)) == pytest.approx(published, rel=0.01)


def test_swinir_classical_tail_has_the_official_pixelshuffle_keys():
    # network_swinir.py, upsampler 'pixelshuffle': conv_before_upsample = [conv embed->64, LeakyReLU],
    # upsample = Upsample(scale, 64) = [conv 64->256, PixelShuffle(2)] x2 at x4, conv_last = conv 64->3
    tail = {k: tuple(v.shape) for k, v in swinir_light.build(4, "classical-m").state_dict().items()
            if k.startswith(("conv_before_upsample", "upsample", "conv_last"))}
    assert tail == {"conv_before_upsample.0.weight": (64, 180, 3, 3), "conv_before_upsample.0.bias": (64,),
                    "upsample.0.weight": (256, 64, 3, 3), "upsample.0.bias": (256,),
                    "upsample.2.weight": (256, 64, 3, 3), "upsample.2.bias": (256,),
                    "conv_last.weight": (3, 64, 3, 3), "conv_last.bias": (3,)}
    assert swinir_light.build(3, "kd-student").state_dict()["upsample.0.weight"].shape == (576, 64, 3, 3)


# ------------------------------------------------------------------------------------------------- stages
@pytest.mark.parametrize("build", [lambda: edsr_baseline.build(4, "tiny", n_resblocks=4),
                                   lambda: rcan.build(4, "tiny-teacher"),
                                   lambda: swinir_light.build(4, "kd-student", embed_dim=8, depths=(2, 2),
                                                              num_heads=(2, 2), window_size=4)])
def test_staged_forward_equals_the_model(build):
    torch.manual_seed(0)
    model = build()
    x = torch.rand(2, 3, 8, 7) * model.rgb_range  # 7: SwinIR pads to its window and crops back
    with torch.no_grad():
        torch.testing.assert_close(Staged(model, 2).forward(x).out, model(x))


def test_stage_bounds_cut_blocks_at_equal_depths():
    assert stage_bounds(32, 4) == [0, 8, 16, 24, 32]
    assert stage_bounds(10, 3) == [0, 3, 7, 10]
    with pytest.raises(BenchError):
        stage_bounds(2, 3)


# ------------------------------------------------------------------------------------------------- losses
def test_kd_losses_equal_hand_computations():
    gen = torch.Generator().manual_seed(1)
    s, t = torch.randn(2, 3, 4, 5, generator=gen), torch.randn(2, 6, 4, 5, generator=gen)
    sn, tn = s.numpy().astype(np.float64), t.numpy().astype(np.float64)
    fit = np.abs(sn.mean(1) - tn.mean(1)).mean()

    def att(a):
        q = (a ** 2).sum(1).reshape(2, -1)
        return q / np.linalg.norm(q, axis=1, keepdims=True)

    at = ((att(sn) - att(tn)) ** 2).mean()

    def aff(a):  # affinity[i, j] = <f_i, f_j> / (|f_i| |f_j|) over channels, positions i, j
        out = np.zeros((2, 20, 20))
        flat = a.reshape(2, a.shape[1], 20)
        for b in range(2):
            for i in range(20):
                for j in range(20):
                    u, v = flat[b, :, i], flat[b, :, j]
                    out[b, i, j] = u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
        return out

    fakd = np.abs(aff(sn) - aff(tn)).mean()
    assert float(losses.fitnet_loss([s], [t])) == pytest.approx(fit, rel=1e-5)
    assert float(losses.at_loss([s], [t])) == pytest.approx(at, rel=1e-5)
    assert float(losses.fakd_loss([s], [t])) == pytest.approx(fakd, rel=1e-5)
    with pytest.raises(BenchError):
        losses.fakd_loss([s], [t[:, :, :3]])


# --------------------------------------------------------------------------------------------------- mixers
def _pair():
    torch.manual_seed(0)
    teacher = edsr_baseline.build(4, "tiny", n_feats=32, n_resblocks=4).eval().requires_grad_(False)
    student = edsr_baseline.build(4, "tiny")
    return teacher, student


def _mipkd(teacher, student, **kw):
    return MiPKD(student, teacher, MiPKDConfig(n_stages=2, latent_dim=8, **kw))


def test_block_mixer_routes_all_student_or_all_teacher_are_the_two_networks():
    teacher, student = _pair()
    m = _mipkd(teacher, student)
    x = torch.rand(1, 3, 8, 8) * 255
    with torch.no_grad():
        assert torch.equal(m.hybrid_forward(x, ["S", "S"]), student(x))
        assert torch.equal(m.hybrid_forward(x, ["T", "T"]), teacher(x))
        mixed = m.hybrid_forward(x, ["S", "T"])
    assert not torch.allclose(mixed, student(x)) and not torch.allclose(mixed, teacher(x))
    assert m.routes(0.0) == ["S", "S"] and m.routes(1.0) == ["T", "T"]


def test_block_mixer_on_a_swinir_pair_has_the_same_limits():
    torch.manual_seed(0)
    small = {"window_size": 4, "num_heads": (2, 2)}
    teacher = swinir_light.build(4, "classical-m", embed_dim=12, depths=(2, 2), **small).eval().requires_grad_(False)
    student = swinir_light.build(4, "kd-student", embed_dim=8, depths=(1, 1), **small)
    m = MiPKD(student, teacher, MiPKDConfig(n_stages=2, latent_dim=8))
    x = torch.rand(1, 3, 9, 8)
    with torch.no_grad():
        assert torch.equal(m.hybrid_forward(x, ["S", "S"]), student(x))
        assert torch.equal(m.hybrid_forward(x, ["T", "T"]), teacher(x))
        assert m.hybrid_forward(x, ["T", "S"]).shape == (1, 3, 36, 32)


def test_feature_mixer_mask_is_3d_bernoulli_and_its_limits_are_the_two_latents():
    torch.manual_seed(0)
    mixer = FeaturePriorMixer(6, 4, 5)
    f_t, f_s = torch.randn(2, 6, 7, 7), torch.randn(2, 4, 7, 7)
    with torch.no_grad():
        _, dec0 = mixer.mix(f_t, f_s, 0.0)
        _, dec1 = mixer.mix(f_t, f_s, 1.0)
        torch.testing.assert_close(dec0, mixer.dec_t(mixer.enc_s(f_s)))
        torch.testing.assert_close(dec1, mixer.dec_t(mixer.enc_t(f_t)))
        mask = FeaturePriorMixer.mask(torch.zeros(64, 8, 16, 16), 0.3)
    assert mask.mean().item() == pytest.approx(0.3, abs=0.01)
    per_channel = mask.mean(dim=(2, 3))  # a 3-D mask differs along channels too (not one 2-D map per sample)
    assert (mask[:, 0] != mask[:, 1]).any() and per_channel.std() > 0


def test_mipkd_loss_at_probability_0_and_1():
    teacher, student = _pair()
    lr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32)
    x, y = lr * 255, hr * 255
    with torch.no_grad():
        s_out, t_out = student(x), teacher(x)
        plain = F.l1_loss(s_out, y)
        # mixers off and no logits term: exactly plain training
        off = _mipkd(teacher, student, feature_mixer=False, block_mixer=False, logits_weight=0.0)
        assert float(off(lr, hr)[0]) == pytest.approx(float(plain), rel=1e-6)
        # block probability 0: the mixed network is the student, its loss is the logits-KD L1(S, T)
        _, ex0 = _mipkd(teacher, student, feature_mixer=False, block_prob=0.0)(lr, hr)
        assert float(ex0["block_mixer"]) == pytest.approx(float(F.l1_loss(s_out, t_out)), rel=1e-6)
        # probability 1: the teacher path, which matches the teacher exactly
        _, ex1 = _mipkd(teacher, student, feature_mixer=False, block_prob=1.0)(lr, hr)
        assert float(ex1["block_mixer"]) == 0.0
        # feature mixer at mask probability 1: the decoded latent is the teacher AE's, so L_feat == L_ae(teacher)
        m1 = _mipkd(teacher, student, block_mixer=False, mask_prob=1.0)
        t_stages = Staged(teacher, 2).forward(x).stages
        ae_t = torch.stack([F.l1_loss(mx.dec_t(mx.enc_t(f)), f) for mx, f in zip(m1.mixers, t_stages)]).mean()
        assert float(m1(lr, hr)[1]["feature_mixer"]) == pytest.approx(float(ae_t), rel=1e-5)


def test_deployed_student_is_the_plain_student_and_the_teacher_stays_frozen():
    teacher, student = _pair()
    plain = count_params(student)
    m = _mipkd(teacher, student)
    assert count_params(m.student) == plain
    assert not any(k.startswith("_teacher") for k in m.state_dict())
    t_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    loss, _ = m(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32))
    loss.backward()
    opt.step()
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in t_before.items())
    assert all(p.grad is not None for p in m.student.parameters() if p.requires_grad)


def test_distiller_rejects_bad_configs():
    teacher, student = _pair()
    with pytest.raises(BenchError):
        Distiller(student, None, kd="fakd")
    with pytest.raises(BenchError):
        Distiller(student, teacher, kd="crd")
    with pytest.raises(BenchError):
        MiPKDConfig.from_args({"mask_prob": 1.5})
    with pytest.raises(BenchError):
        MiPKDConfig.from_args({"mask_ratio": 0.5})
