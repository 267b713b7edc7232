"""The IMDL baselines of the GIM paper at official shapes: TruFor, MVSS-Net and SegFormer.

Each test writes a state dict in the official layout (key names and shapes as the official code builds them, listed
here by hand from grip-unina/TruFor ``lib/models/cmx`` + IMDLBenCo ``model_zoo/trufor`` and dong03/MVSS-Net as
IMDLBenCo ``model_zoo/mvss_net`` re-hosts it), loads it strictly, and checks outputs against an independent functional
re-computation from the same tensors, and the parameter count against the published one.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.imdl.mit import MIT
from baselines.imdl.mvss import MVSSNet
from baselines.imdl.trufor import SegFormerSeg, TruFor


# ---------------------------------------------------------------------------------------------------------
# official layouts written by hand

def mit_stage_keys(prefix: str, stage: int, dims, depths, sr_ratios, in_ch: int, mlp_ratio: int = 4) -> dict:
    """Keys and shapes of one MiT stage as mix_transformer.py names them (patch_embed{i}, block{i}.{j}, norm{i})."""
    d = dims[stage]
    cin = in_ch if stage == 0 else dims[stage - 1]
    k = 7 if stage == 0 else 3
    i = stage + 1
    out = {f"{prefix}patch_embed{i}.proj.weight": (d, cin, k, k), f"{prefix}patch_embed{i}.proj.bias": (d,),
           f"{prefix}patch_embed{i}.norm.weight": (d,), f"{prefix}patch_embed{i}.norm.bias": (d,),
           f"{prefix}norm{i}.weight": (d,), f"{prefix}norm{i}.bias": (d,)}
    for j in range(depths[stage]):
        b = f"{prefix}block{i}.{j}."
        h = d * mlp_ratio
        out.update({b + "norm1.weight": (d,), b + "norm1.bias": (d,), b + "attn.q.weight": (d, d), b + "attn.q.bias": (d,),
                    b + "attn.kv.weight": (2 * d, d), b + "attn.kv.bias": (2 * d,), b + "attn.proj.weight": (d, d),
                    b + "attn.proj.bias": (d,), b + "norm2.weight": (d,), b + "norm2.bias": (d,),
                    b + "mlp.fc1.weight": (h, d), b + "mlp.fc1.bias": (h,), b + "mlp.dwconv.dwconv.weight": (h, 1, 3, 3),
                    b + "mlp.dwconv.dwconv.bias": (h,), b + "mlp.fc2.weight": (d, h), b + "mlp.fc2.bias": (d,)})
        if sr_ratios[stage] > 1:
            r = sr_ratios[stage]
            out.update({b + "attn.sr.weight": (d, d, r, r), b + "attn.sr.bias": (d,), b + "attn.norm.weight": (d,),
                        b + "attn.norm.bias": (d,)})
    return out


def bn(prefix: str, c: int) -> dict:
    return {prefix + "weight": (c,), prefix + "bias": (c,), prefix + "running_mean": (c,), prefix + "running_var": (c,),
            prefix + "num_batches_tracked": ()}


def decoder_keys(prefix: str, dims, embed: int, ncls: int) -> dict:
    out = {}
    for k, c in zip((1, 2, 3, 4), dims):
        out.update({f"{prefix}linear_c{k}.proj.weight": (embed, c), f"{prefix}linear_c{k}.proj.bias": (embed,)})
    out.update({f"{prefix}linear_fuse.0.weight": (embed, 4 * embed, 1, 1), f"{prefix}linear_fuse.0.bias": (embed,),
                **bn(f"{prefix}linear_fuse.1.", embed), f"{prefix}linear_pred.weight": (ncls, embed, 1, 1),
                f"{prefix}linear_pred.bias": (ncls,)})
    return out


def trufor_official_layout() -> dict[str, tuple]:
    cfg = MIT["mit-b2"]
    dims, depths, srs = cfg.embed_dims, cfg.depths, cfg.sr_ratios
    keys: dict[str, tuple] = {}
    # Noiseprint++: make_net(3, kernels [3]*17, features [64]*16 + [1], bns [F] + [T]*15 + [F], acts relu*16 + linear)
    idx = 0
    for layer in range(17):
        cin, cout = (3 if layer == 0 else 64), (1 if layer == 16 else 64)
        keys[f"dncnn.{idx}.weight"] = (cout, cin, 3, 3)
        if layer in (0, 16):
            keys[f"dncnn.{idx}.bias"] = (cout,)
            idx += 1
        else:
            keys.update(bn(f"dncnn.{idx + 1}.", cout))
            idx += 2
        if layer < 16:
            idx += 1  # ReLU
    for s in range(4):
        keys.update(mit_stage_keys("backbone.", s, dims, depths, srs, 3))
        keys.update(mit_stage_keys("backbone.extra_", s, dims, depths, srs, 3))
        d, f, g = dims[s], f"backbone.FRMs.{s}.", f"backbone.FFMs.{s}."
        keys.update({f + "channel_weights.mlp.0.weight": (4 * d, 4 * d), f + "channel_weights.mlp.0.bias": (4 * d,),
                     f + "channel_weights.mlp.2.weight": (2 * d, 4 * d), f + "channel_weights.mlp.2.bias": (2 * d,),
                     f + "spatial_weights.mlp.0.weight": (d, 2 * d, 1, 1), f + "spatial_weights.mlp.0.bias": (d,),
                     f + "spatial_weights.mlp.2.weight": (2, d, 1, 1), f + "spatial_weights.mlp.2.bias": (2,)})
        for n in (1, 2):
            keys.update({g + f"cross.channel_proj{n}.weight": (2 * d, d), g + f"cross.channel_proj{n}.bias": (2 * d,),
                         g + f"cross.cross_attn.kv{n}.weight": (2 * d, d),
                         g + f"cross.end_proj{n}.weight": (d, 2 * d), g + f"cross.end_proj{n}.bias": (d,),
                         g + f"cross.norm{n}.weight": (d,), g + f"cross.norm{n}.bias": (d,)})
        keys.update({g + "channel_emb.residual.weight": (d, 2 * d, 1, 1),
                     g + "channel_emb.channel_embed.0.weight": (d, 2 * d, 1, 1), g + "channel_emb.channel_embed.0.bias": (d,),
                     g + "channel_emb.channel_embed.1.weight": (d, 1, 3, 3), g + "channel_emb.channel_embed.1.bias": (d,),
                     g + "channel_emb.channel_embed.3.weight": (d, d, 1, 1), g + "channel_emb.channel_embed.3.bias": (d,),
                     **bn(g + "channel_emb.channel_embed.4.", d), **bn(g + "channel_emb.norm.", d)})
    keys.update(decoder_keys("decode_head.", dims, 512, 2))
    keys.update(decoder_keys("decode_head_conf.", dims, 512, 1))
    keys.update({"detection.0.weight": (128, 8), "detection.0.bias": (128,), "detection.3.weight": (1, 128),
                 "detection.3.bias": (1,)})
    return keys


def random_state(layout: dict[str, tuple], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in layout.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            out[k] = torch.rand(shape, generator=g) + 0.5
        else:
            out[k] = torch.randn(shape, generator=g) * 0.05
    return out


# ---------------------------------------------------------------------------------------------------------
# TruFor

@pytest.fixture(scope="module")
def trufor_loaded():
    layout = trufor_official_layout()
    state = random_state(layout)
    model = TruFor()
    model.load_state_dict(state, strict=True)  # strict: every official key, no other
    return model.eval(), state


def test_trufor_official_layout_loads_strictly_with_official_shapes(trufor_loaded):
    model, state = trufor_loaded
    assert set(model.state_dict()) == set(state)
    for k, v in model.state_dict().items():
        assert tuple(v.shape) == tuple(state[k].shape), k


def test_trufor_parameter_count_is_the_published_one(trufor_loaded):
    model, _ = trufor_loaded
    # TruFor with MiT-B2 has 68.7 M parameters (IMDLBenCo's model-zoo comparison; TruFor paper) [M]
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(68.7, rel=0.01)


def test_trufor_noiseprint_equals_a_functional_dncnn(trufor_loaded):
    """Noiseprint++ recomputed layer by layer with F.conv2d / F.batch_norm from the official tensors."""
    model, state = trufor_loaded
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    h, idx = x, 0
    for layer in range(17):
        w = state[f"dncnn.{idx}.weight"]
        if layer in (0, 16):
            h = F.conv2d(h, w, state[f"dncnn.{idx}.bias"], padding=1)
            idx += 1
        else:
            h = F.conv2d(h, w, padding=1)
            p = f"dncnn.{idx + 1}."
            h = F.batch_norm(h, state[p + "running_mean"], state[p + "running_var"], state[p + "weight"],
                             state[p + "bias"], training=False, eps=1e-5)
            idx += 2
        if layer < 16:
            h = F.relu(h)
            idx += 1
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(out["noiseprint"], h.repeat(1, 3, 1, 1), rtol=1e-5, atol=1e-5)
    assert out["mask_logits"].shape == (1, 2, 64, 64) and out["det"].shape == (1, 1)


def test_trufor_detector_equals_confpool_by_hand(trufor_loaded):
    """The detection logit recomputed from the network's own maps with TruFor's confpool formulas."""
    model, state = trufor_loaded
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = model(x)

    def pool(v, log_w):
        v, log_w = v.flatten(1), torch.log_softmax(log_w.flatten(1), dim=1)
        w = log_w.exp()
        return torch.stack([-torch.logsumexp(log_w - v, 1), torch.logsumexp(log_w + v, 1), (w * v).sum(1),
                            (w * v * v).sum(1)], dim=1)

    conf, logits = out["conf"][:, 0], out["mask_logits"]
    feats = torch.cat([pool(conf, torch.zeros_like(conf)), pool(logits[:, 1] - logits[:, 0], F.logsigmoid(conf))], 1)
    hidden = F.relu(feats @ state["detection.0.weight"].T + state["detection.0.bias"])
    det = hidden @ state["detection.3.weight"].T + state["detection.3.bias"]
    torch.testing.assert_close(out["det"], det, rtol=1e-5, atol=1e-5)


def test_segformer_b2_ade20k_shape_has_the_published_parameter_count():
    # SegFormer-B2 on ADE20K (150 classes, decoder embedding 768): 27.5 M parameters (SegFormer paper, Table 1)
    model = SegFormerSeg("mit-b2", decoder_embed=768)
    model.decode_head.linear_pred = torch.nn.Conv2d(768, 150, 1)
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(27.5, rel=0.01)
    layout = {}
    cfg = MIT["mit-b2"]
    for s in range(4):
        layout.update(mit_stage_keys("backbone.", s, cfg.embed_dims, cfg.depths, cfg.sr_ratios, 3))
    layout.update(decoder_keys("decode_head.", cfg.embed_dims, 768, 150))
    model.load_state_dict(random_state(layout), strict=True)


# ---------------------------------------------------------------------------------------------------------
# MVSS-Net

def resnet50_keys(prefix: str) -> dict[str, tuple]:
    keys = {prefix + "conv1.weight": (64, 3, 7, 7), **bn(prefix + "bn1.", 64), prefix + "fc.weight": (1000, 2048),
            prefix + "fc.bias": (1000,)}
    inplanes = 64
    for li, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=1):
        for b in range(blocks):
            p = f"{prefix}layer{li}.{b}."
            cin = inplanes if b == 0 else planes * 4
            keys.update({p + "conv1.weight": (planes, cin, 1, 1), **bn(p + "bn1.", planes),
                         p + "conv2.weight": (planes, planes, 3, 3), **bn(p + "bn2.", planes),
                         p + "conv3.weight": (planes * 4, planes, 1, 1), **bn(p + "bn3.", planes * 4)})
            if b == 0:
                keys.update({p + "downsample.0.weight": (planes * 4, cin, 1, 1), **bn(p + "downsample.1.", planes * 4)})
        inplanes = planes * 4
    return keys


def mvss_official_layout() -> dict[str, tuple]:
    keys = {**resnet50_keys("model."), **resnet50_keys("noise_extractor.model.")}
    for k, c in enumerate((256, 512, 1024, 2048), start=1):
        e = f"erb_db_{k}."
        keys.update({e + "conv1.weight": (1, c, 1, 1), e + "conv1.bias": (1,), e + "conv2.weight": (1, 1, 3, 3),
                     e + "conv2.bias": (1,), **bn(e + "bn.", 1), e + "conv3.weight": (1, 1, 3, 3), e + "conv3.bias": (1,)})
        for axis in "xy":
            keys.update({f"sobel_{axis}{k}.0.weight": (1, c, 3, 3), **bn(f"sobel_{axis}{k}.1.", 1)})
    for k in (1, 2, 3):
        e = f"erb_trans_{k}."
        keys.update({e + "conv1.weight": (1, 1, 1, 1), e + "conv1.bias": (1,), e + "conv2.weight": (1, 1, 3, 3),
                     e + "conv2.bias": (1,), **bn(e + "bn.", 1), e + "conv3.weight": (1, 1, 3, 3), e + "conv3.bias": (1,)})
    keys["constrain_conv.kernel"] = (1, 3, 24)
    cin, inter = 4096, 1024
    for n in ("p", "c"):
        keys.update({f"head.conv_{n}1.0.weight": (inter, cin, 3, 3), **bn(f"head.conv_{n}1.1.", inter),
                     f"head.conv_{n}2.0.weight": (inter, inter, 3, 3), **bn(f"head.conv_{n}2.1.", inter)})
    keys.update({"head.pam.conv_b.weight": (128, inter, 1, 1), "head.pam.conv_b.bias": (128,),
                 "head.pam.conv_c.weight": (128, inter, 1, 1), "head.pam.conv_c.bias": (128,),
                 "head.pam.conv_d.weight": (inter, inter, 1, 1), "head.pam.conv_d.bias": (inter,),
                 "head.pam.alpha": (1,), "head.cam.beta": (1,), "head.out.1.weight": (1, inter, 1, 1),
                 "head.out.1.bias": (1,)})
    return keys


def test_mvss_official_layout_loads_strictly_and_counts_the_published_parameters():
    layout = mvss_official_layout()
    state = random_state(layout)
    model = MVSSNet()
    model.load_state_dict(state, strict=True)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {k: tuple(v) for k, v in layout.items()}
    # MVSS-Net: 146.9 M parameters (IMDLBenCo's model-zoo comparison) [M]; counted like the official module
    # (the Sobel taps are Parameters with requires_grad False, the unused fc layers included)
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(146.9, rel=0.01)


def test_bayar_constraint_by_hand():
    conv = MVSSNet(layers=(1, 1, 1, 1), width=4).constrain_conv
    kernel = conv.constrained_kernel()
    assert kernel.shape == (3, 1, 5, 5)
    flat = kernel.reshape(3, 25)
    torch.testing.assert_close(flat[:, 12], -torch.ones(3))  # the centre tap
    torch.testing.assert_close(flat.sum(dim=1), torch.zeros(3), rtol=0, atol=1e-6)  # free taps sum to 1


def test_mvss_dilated_layer4_keeps_output_stride_16():
    model = MVSSNet(layers=(1, 2, 1, 3), width=4).eval()
    feats = model.model.features(torch.rand(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 4]
    assert [b.conv2.dilation[0] for b in model.model.layer4] == [1, 2, 4]


def test_mvss_smoke_stem_stride_keeps_the_layout_and_gives_an_8x8_map_at_32_px():
    official, smoke = MVSSNet(layers=(1, 1, 1, 1), width=4), MVSSNet(layers=(1, 1, 1, 1), width=4, stem_stride=1)
    smoke.load_state_dict(official.state_dict(), strict=True)  # no parameter differs
    x = torch.rand(2, 3, 32, 32)
    assert official.model.features(x)[-1].shape[-1] == 2   # output stride 16: 32 / 16
    assert smoke.model.features(x)[-1].shape[-1] == 8      # output stride 4, as the MiT decoders' first stage
    assert smoke.noise_extractor.model.features(x)[-1].shape[-1] == 8
    with pytest.raises(ValueError, match="stem_stride"):
        MVSSNet(layers=(1, 1, 1, 1), width=4, stem_stride=3)


def test_mvss_loss_weights_by_hand():
    """0.16 seg + 0.04 BCE(max prob, label) + 0.8 dice(edge); seg the official dice or the pos-weighted BCE."""
    torch.manual_seed(0)
    model = MVSSNet(layers=(1, 1, 1, 1), width=4, stem_stride=1).eval()
    x = torch.rand(2, 3, 32, 32)
    mask = torch.zeros(2, 32, 32, dtype=torch.bool)
    mask[0, 4:12, 8:20] = True
    edge = torch.zeros_like(mask)
    edge[0, 4, 8:20] = True
    label = torch.tensor([1, 0])
    with torch.no_grad():
        out = model(x)
        pm, pe = torch.sigmoid(out["mask_logits"])[:, 0].numpy(), torch.sigmoid(out["edge_logits"])[:, 0].numpy()
        dice_official = model.loss(x, mask, label, edge).item()
        bce_weighted = model.loss(x, mask, label, edge, seg_loss="bce", pos_weight=10.0).item()
    m, e, y = mask.numpy().astype(float), edge.numpy().astype(float), label.numpy().astype(float)

    def dice(p, g):
        return 1.0 - (2.0 * (p * g).sum() + 1.0) / ((g ** 2).sum() + (p ** 2).sum() + 1.0)

    score = pm.reshape(2, -1).max(axis=1)
    clf = -(y * np.log(score) + (1 - y) * np.log(1 - score)).mean()
    weighted = -(10.0 * m * np.log(pm) + (1 - m) * np.log(1 - pm)).mean()
    assert dice_official == pytest.approx(0.16 * dice(pm, m) + 0.04 * clf + 0.8 * dice(pe, e), rel=1e-4)
    assert bce_weighted == pytest.approx(0.16 * weighted + 0.04 * clf + 0.8 * dice(pe, e), rel=1e-4)
