"""IPT, AirNet and PromptIR at their official shapes (baselines/allinone): official-layout state dicts (listed by
hand in tests/fixtures_official/allinone.py) load strictly; IPT's outputs equal an unrolled functional
re-computation; AirNet's deformable conv equals a per-pixel bilinear loop; parameter counts equal the published
ones (IPT 115.5M as cited by later papers [S], AirNet 8.93M and PromptIR 35.59M as their papers report [M])."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.allinone import airnet, ipt, promptir
from tests.fixtures_official.allinone import airnet_layout, ipt_layout, promptir_layout


def _random_state(layout: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in layout.items():
        if key.endswith("position_ids"):
            out[key] = torch.arange(shape[1]).view(shape)
        elif key.endswith(("num_batches_tracked", "queue_ptr")):
            out[key] = torch.zeros(shape, dtype=torch.long)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        else:
            out[key] = torch.randn(shape, generator=g) * 0.1
    return out


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------------------------- IPT
def test_ipt_official_parameter_count():
    with torch.device("meta"):
        model = ipt.build(scales=(2,))
    count = sum(p.numel() for p in model.parameters())
    assert count == ipt.param_count_formula(64, 3, 48, 12, (2,), 1) == 115_460_443
    assert abs(count / 115.5e6 - 1) < 0.01  # IPT's published 115.5M (one task's head and tail)
    with torch.device("meta"):
        model = ipt.build(scales=(2, 3, 4, 1, 1, 1), num_queries=6)  # the six-task pre-training model
    assert _shapes(model) == ipt_layout(64, 3, 48, 12, (2, 3, 4, 1, 1, 1), 6)


TINY = {"n_feats": 4, "patch_dim": 3, "patch_size": 12, "num_heads": 2, "num_layers": 2, "scales": (1, 2),
        "num_queries": 2, "rgb_range": 255}


def _attention(sd: dict[str, torch.Tensor], key: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               heads: int) -> torch.Tensor:
    """Multi-head attention written out (seq-first [L, B, D]), no biases, as IPT's nn.MultiheadAttention."""
    w = sd[f"{key}.in_proj_weight"]
    d = q.shape[-1]
    qp, kp, vp = q @ w[:d].T, k @ w[d:2 * d].T, v @ w[2 * d:].T
    dh = d // heads

    def split(x: torch.Tensor) -> torch.Tensor:  # [L, B, D] -> [B, H, L, dh]
        return x.reshape(x.shape[0], x.shape[1], heads, dh).permute(1, 2, 0, 3)

    att = torch.softmax(split(qp) @ split(kp).transpose(-1, -2) / math.sqrt(dh), -1) @ split(vp)
    merged = att.permute(2, 0, 1, 3).reshape(q.shape[0], q.shape[1], d)
    return merged @ sd[f"{key}.out_proj.weight"].T


def _ipt_reference(sd: dict[str, torch.Tensor], x: torch.Tensor, task: int, cfg: dict) -> torch.Tensor:
    def conv(h, key, pad):
        return F.conv2d(h, sd[f"{key}.weight"], sd[f"{key}.bias"], padding=pad)

    def ln(h, key):
        return F.layer_norm(h, h.shape[-1:], sd[f"{key}.weight"], sd[f"{key}.bias"])

    def ffn(h, key):
        return F.linear(F.relu(F.linear(h, sd[f"{key}.linear1.weight"], sd[f"{key}.linear1.bias"])),
                        sd[f"{key}.linear2.weight"], sd[f"{key}.linear2.bias"])

    heads, p, size = cfg["num_heads"], cfg["patch_dim"], cfg["patch_size"]
    h = conv(x, "sub_mean", 0)
    feat = conv(h, f"head.{task}.0", 1)
    for r in (1, 2):
        feat = feat + conv(F.relu(conv(feat, f"head.{task}.{r}.body.0", 2)), f"head.{task}.{r}.body.2", 2)
    tokens = F.unfold(feat, p, stride=p).permute(2, 0, 1)
    tokens = F.linear(tokens, sd["body.linear_encoding.weight"], sd["body.linear_encoding.bias"]) + tokens
    seq, d = tokens.shape[0], tokens.shape[-1]
    query = sd["body.query_embed.weight"][task].view(seq, 1, d)
    h = tokens + sd["body.position_encoding.pe.weight"].view(seq, 1, d)
    for i in range(cfg["num_layers"]):
        e = f"body.encoder.layers.{i}"
        n = ln(h, f"{e}.norm1")
        h = h + _attention(sd, f"{e}.self_attn", n, n, n, heads)
        h = h + ffn(ln(h, f"{e}.norm2"), e)
    memory = out = h
    for i in range(cfg["num_layers"]):
        c = f"body.decoder.layers.{i}"
        n = ln(out, f"{c}.norm1")
        out = out + _attention(sd, f"{c}.self_attn", n + query, n + query, n, heads)
        n = ln(out, f"{c}.norm2")
        out = out + _attention(sd, f"{c}.multihead_attn", n + query, memory, memory, heads)
        out = out + ffn(ln(out, f"{c}.norm3"), c)
    mlp = F.linear(F.relu(F.linear(out, sd["body.mlp_head.0.weight"], sd["body.mlp_head.0.bias"])),
                   sd["body.mlp_head.3.weight"], sd["body.mlp_head.3.bias"])
    body = F.fold((mlp + out).permute(1, 2, 0), size, p, stride=p)
    res = body + feat
    scale = cfg["scales"][task]
    for i in range(int(math.log2(scale))):
        res = F.pixel_shuffle(conv(res, f"tail.{task}.0.{2 * i}", 1), 2)
    return conv(conv(res, f"tail.{task}.1", 1), "add_mean", 0)


@pytest.mark.parametrize("task", [0, 1])
def test_ipt_official_layout_loads_strictly_with_equal_outputs(task):
    layout = ipt_layout(TINY["n_feats"], TINY["patch_dim"], TINY["patch_size"], TINY["num_layers"], TINY["scales"],
                        TINY["num_queries"])
    sd = _random_state(layout)
    sd["sub_mean.weight"] = torch.eye(3).view(3, 3, 1, 1)
    sd["add_mean.weight"] = torch.eye(3).view(3, 3, 1, 1)
    model = ipt.build("tiny", **TINY).eval()
    assert _shapes(model) == layout
    model.load_state_dict(sd, strict=True)
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(1)) * 255
    with torch.no_grad():
        ours = model(x, task)
    torch.testing.assert_close(ours, _ipt_reference(sd, x, task, TINY), rtol=1e-4, atol=1e-3)
    assert ours.shape[-1] == 12 * TINY["scales"][task]


def test_ipt_tiles_cover_the_image_and_average_overlaps():
    model = ipt.build("tiny", **TINY).eval()
    x = torch.rand(1, 3, 20, 20)
    # an identity "forward" must come back unchanged whatever the overlaps
    torch.testing.assert_close(model.forward_tiles(x, 0, forward=lambda t: t), x)
    with pytest.raises(ValueError, match="smaller than"):
        model.forward_tiles(torch.rand(1, 3, 8, 8), 0)


# ---------------------------------------------------------------------------------------------------- AirNet
def test_airnet_official_layout_and_parameter_count():
    with torch.device("meta"):
        model = airnet.build()
    assert _shapes(model) == airnet_layout()
    trained = sum(p.numel() for p in model.parameters())
    assert trained == 8_930_313 and abs(trained / 8.93e6 - 1) < 0.01
    tiny = airnet.build("tiny", n_feats=8, n_groups=2, n_blocks=1, batch_size=3)
    tiny.load_state_dict(_random_state(airnet_layout(8, 2, 1, 3)), strict=True)
    tiny.eval()
    out = tiny(torch.rand(1, 3, 16, 16))
    assert out.shape == (1, 3, 16, 16) and torch.isfinite(out).all()


def _deform_loop(x: np.ndarray, offset: np.ndarray, mask: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """DCNv2 per output pixel: bilinear sampling with zeros outside, (dy, dx) interleaved per tap (mmcv)."""
    _, c, h, w = x.shape
    o, _, k, _ = weight.shape
    pad = (k - 1) // 2
    out = np.zeros((1, o, h, w))

    def pixel(ch: int, yy: int, xx: int) -> float:
        return x[0, ch, yy, xx] if 0 <= yy < h and 0 <= xx < w else 0.0

    for i in range(h):
        for j in range(w):
            for tap in range(k * k):
                ky, kx = divmod(tap, k)
                py = i - pad + ky + offset[0, 2 * tap, i, j]
                px = j - pad + kx + offset[0, 2 * tap + 1, i, j]
                y0, x0 = math.floor(py), math.floor(px)
                fy, fx = py - y0, px - x0
                for ch in range(c):
                    v = ((1 - fy) * (1 - fx) * pixel(ch, y0, x0) + (1 - fy) * fx * pixel(ch, y0, x0 + 1)
                         + fy * (1 - fx) * pixel(ch, y0 + 1, x0) + fy * fx * pixel(ch, y0 + 1, x0 + 1))
                    out[0, :, i, j] += weight[:, ch, ky, kx] * v * mask[0, tap, i, j]
    return out


def test_airnet_deformable_conv_equals_a_bilinear_loop():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2, 5, 6, generator=g, dtype=torch.float64)
    offset = torch.randn(1, 18, 5, 6, generator=g, dtype=torch.float64) * 1.5
    mask = torch.rand(1, 9, 5, 6, generator=g, dtype=torch.float64)
    weight = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64)
    ours = airnet.modulated_deform_conv(x, offset, mask, weight, 1).numpy()
    np.testing.assert_allclose(ours, _deform_loop(x.numpy(), offset.numpy(), mask.numpy(), weight.numpy()),
                               rtol=1e-9, atol=1e-9)
    # zero offsets and unit masks: an ordinary convolution
    plain = airnet.modulated_deform_conv(x, torch.zeros_like(offset), torch.ones_like(mask), weight, 1)
    torch.testing.assert_close(plain, F.conv2d(x, weight, padding=1))


# -------------------------------------------------------------------------------------------------- PromptIR
def test_promptir_official_layout_and_parameter_count():
    with torch.device("meta"):
        model = promptir.build()
    layout = promptir_layout()
    assert _shapes(model) == layout
    count = sum(math.prod(s) for s in layout.values())
    assert sum(p.numel() for p in model.parameters()) == count == 35_592_263
    assert abs(count / 35.59e6 - 1) < 0.01


def test_promptir_prompt_block_and_layernorm_by_hand():
    g = torch.Generator().manual_seed(5)
    block = promptir.PromptGenBlock(prompt_dim=3, prompt_len=2, prompt_size=4, lin_dim=6)
    x = torch.randn(1, 6, 8, 8, generator=g)
    weights = torch.softmax(block.linear_layer(x.mean(dim=(2, 3))), 1)[0]
    mix = weights[0] * block.prompt_param[0, 0] + weights[1] * block.prompt_param[0, 1]
    expected = block.conv3x3(F.interpolate(mix[None], (8, 8), mode="bilinear", align_corners=False))
    torch.testing.assert_close(block(x), expected)
    norm = promptir.LayerNorm2d(6)
    with torch.no_grad():
        norm.body.weight.uniform_(0.5, 1.5)
        norm.body.bias.uniform_(-0.5, 0.5)
    by_hand = F.layer_norm(x.permute(0, 2, 3, 1), (6,), norm.body.weight, norm.body.bias, eps=1e-5).permute(0, 3, 1, 2)
    torch.testing.assert_close(norm(x), by_hand)
