"""NAFNet and Restormer (baselines/ir) at official shapes: official-layout state dicts load strictly, the outputs
equal an independent functional re-computation from the state dict alone, and parameter counts match the
published ones (and a hand count from the official block structure)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from baselines.ir import nafnet, restormer



@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """One torch thread: these models are tiny, and contending threads on a shared runner only slow them."""

# ----------------------------------------------------------------------------------------------- NAFNet
def _naf_block_keys(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    """Key -> shape of one official NAFBlock (NAFNet_arch.py: DW_Expand = FFN_Expand = 2)."""
    dw = 2 * c
    return {f"{prefix}.conv1.weight": (dw, c, 1, 1), f"{prefix}.conv1.bias": (dw,),
            f"{prefix}.conv2.weight": (dw, 1, 3, 3), f"{prefix}.conv2.bias": (dw,),
            f"{prefix}.conv3.weight": (c, c, 1, 1), f"{prefix}.conv3.bias": (c,),
            f"{prefix}.sca.1.weight": (c, c, 1, 1), f"{prefix}.sca.1.bias": (c,),
            f"{prefix}.conv4.weight": (2 * c, c, 1, 1), f"{prefix}.conv4.bias": (2 * c,),
            f"{prefix}.conv5.weight": (c, c, 1, 1), f"{prefix}.conv5.bias": (c,),
            f"{prefix}.norm1.weight": (c,), f"{prefix}.norm1.bias": (c,),
            f"{prefix}.norm2.weight": (c,), f"{prefix}.norm2.bias": (c,),
            f"{prefix}.beta": (1, c, 1, 1), f"{prefix}.gamma": (1, c, 1, 1)}


def official_nafnet_layout(width: int, enc: list[int], middle: int, dec: list[int]) -> dict[str, tuple[int, ...]]:
    keys = {"intro.weight": (width, 3, 3, 3), "intro.bias": (width,),
            "ending.weight": (3, width, 3, 3), "ending.bias": (3,)}
    c = width
    for i, n in enumerate(enc):
        for j in range(n):
            keys.update(_naf_block_keys(f"encoders.{i}.{j}", c))
        keys[f"downs.{i}.weight"], keys[f"downs.{i}.bias"] = (2 * c, c, 2, 2), (2 * c,)
        c *= 2
    for j in range(middle):
        keys.update(_naf_block_keys(f"middle_blks.{j}", c))
    for i, n in enumerate(dec):
        keys[f"ups.{i}.0.weight"] = (2 * c, c, 1, 1)
        c //= 2
        for j in range(n):
            keys.update(_naf_block_keys(f"decoders.{i}.{j}", c))
    return keys


def _random_state(layout: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=g) * 0.2 for k, shape in layout.items()}


def _ln_channels(x, w, b, eps):
    mu = x.mean(1, keepdim=True)
    var = ((x - mu) ** 2).mean(1, keepdim=True)
    y = (x - mu) / (var + eps).sqrt()
    return y * w[None, :, None, None] + (b[None, :, None, None] if b is not None else 0)


def _naf_block_ref(sd, p, x):
    c = x.shape[1]
    y = _ln_channels(x, sd[f"{p}.norm1.weight"], sd[f"{p}.norm1.bias"], 1e-6)
    y = F.conv2d(y, sd[f"{p}.conv1.weight"], sd[f"{p}.conv1.bias"])
    y = F.conv2d(y, sd[f"{p}.conv2.weight"], sd[f"{p}.conv2.bias"], padding=1, groups=2 * c)
    y = y[:, :c] * y[:, c:]
    att = F.conv2d(y.mean((2, 3), keepdim=True), sd[f"{p}.sca.1.weight"], sd[f"{p}.sca.1.bias"])
    y = F.conv2d(y * att, sd[f"{p}.conv3.weight"], sd[f"{p}.conv3.bias"])
    x = x + y * sd[f"{p}.beta"]
    y = F.conv2d(_ln_channels(x, sd[f"{p}.norm2.weight"], sd[f"{p}.norm2.bias"], 1e-6),
                 sd[f"{p}.conv4.weight"], sd[f"{p}.conv4.bias"])
    y = F.conv2d(y[:, :c] * y[:, c:], sd[f"{p}.conv5.weight"], sd[f"{p}.conv5.bias"])
    return x + y * sd[f"{p}.gamma"]


def nafnet_reference(sd, enc, middle, dec, inp):
    x = F.conv2d(inp, sd["intro.weight"], sd["intro.bias"], padding=1)
    skips = []
    for i, n in enumerate(enc):
        for j in range(n):
            x = _naf_block_ref(sd, f"encoders.{i}.{j}", x)
        skips.append(x)
        x = F.conv2d(x, sd[f"downs.{i}.weight"], sd[f"downs.{i}.bias"], stride=2)
    for j in range(middle):
        x = _naf_block_ref(sd, f"middle_blks.{j}", x)
    for i, n in enumerate(dec):
        x = F.pixel_shuffle(F.conv2d(x, sd[f"ups.{i}.0.weight"]), 2) + skips[-1 - i]
        for j in range(n):
            x = _naf_block_ref(sd, f"decoders.{i}.{j}", x)
    return F.conv2d(x, sd["ending.weight"], sd["ending.bias"], padding=1) + inp


@pytest.mark.parametrize("variant", ["gopro-w32", "sidd-w32"])
def test_nafnet_official_layout_matches_our_module(variant):
    cfg = nafnet.CONFIGS[variant]
    layout = official_nafnet_layout(cfg["width"], cfg["enc_blk_nums"], cfg["middle_blk_num"], cfg["dec_blk_nums"])
    ours = {k: tuple(v.shape) for k, v in nafnet.build(variant).state_dict().items()}
    assert ours == layout


def test_nafnet_loads_official_state_strictly_and_matches_reference():
    enc, middle, dec = [1, 2], 1, [1, 1]
    sd = _random_state(official_nafnet_layout(8, enc, middle, dec))
    model = nafnet.NAFNet(width=8, enc_blk_nums=enc, middle_blk_num=middle, dec_blk_nums=dec).eval()
    model.load_state_dict(sd, strict=True)
    x = torch.rand(1, 3, 16, 20, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(x), nafnet_reference(sd, enc, middle, dec, x), rtol=1e-5, atol=1e-5)
        # official check_image_size: zero-pad bottom/right to a multiple of 4, crop back
        odd = torch.rand(1, 3, 13, 18)
        padded = F.pad(odd, (0, 2, 0, 3))
        torch.testing.assert_close(model(odd), nafnet_reference(sd, enc, middle, dec, padded)[:, :, :13, :18],
                                   rtol=1e-5, atol=1e-5)


def _naf_hand_count(width, enc, middle, dec):
    """Parameters from the official block structure, by hand: per NAFBlock of c channels
    conv1 2c*c+2c, conv2 2c*9+2c, sca c*c+c, conv3 c*c+c, conv4 2c*c+2c, conv5 c*c+c, norms 4c, beta/gamma 2c."""
    def block(c):
        return (2 * c * c + 2 * c) + (18 * c + 2 * c) + 3 * (c * c + c) + (2 * c * c + 2 * c) + 4 * c + 2 * c

    total, c = (27 * width + width) + (9 * width * 3 + 3), width
    for n in enc:
        total += n * block(c) + (4 * c * 2 * c + 2 * c)
        c *= 2
    total += middle * block(c)
    for n in dec:
        total += c * 2 * c
        c //= 2
        total += n * block(c)
    return total


# Published: 67.89M (NAFNet-GoPro-width64) and 17.11M (width32), as tabulated in later deblurring papers
# (e.g. FFTformer, Restore-RWKV comparisons) [M]; the SIDD configs by the hand count only.
@pytest.mark.parametrize("variant,published_m", [("gopro-w32", 17.11), ("gopro-w64", 67.89),
                                                 ("sidd-w32", None), ("sidd-w64", None)])
def test_nafnet_parameter_counts(variant, published_m):
    cfg = nafnet.CONFIGS[variant]
    n = sum(p.numel() for p in nafnet.build(variant).parameters())
    assert n == _naf_hand_count(cfg["width"], cfg["enc_blk_nums"], cfg["middle_blk_num"], cfg["dec_blk_nums"])
    if published_m is not None:
        assert abs(n / 1e6 - published_m) / published_m < 0.01


# ------------------------------------------------------------------------------------------- Restormer
def _restormer_block_keys(p: str, dim: int, heads: int, expansion: float, with_bias: bool):
    hidden = int(dim * expansion)
    keys = {f"{p}.norm1.body.weight": (dim,), f"{p}.norm2.body.weight": (dim,),
            f"{p}.attn.temperature": (heads, 1, 1), f"{p}.attn.qkv.weight": (3 * dim, dim, 1, 1),
            f"{p}.attn.qkv_dwconv.weight": (3 * dim, 1, 3, 3), f"{p}.attn.project_out.weight": (dim, dim, 1, 1),
            f"{p}.ffn.project_in.weight": (2 * hidden, dim, 1, 1), f"{p}.ffn.dwconv.weight": (2 * hidden, 1, 3, 3),
            f"{p}.ffn.project_out.weight": (dim, hidden, 1, 1)}
    if with_bias:
        keys[f"{p}.norm1.body.bias"], keys[f"{p}.norm2.body.bias"] = (dim,), (dim,)
    return keys


def official_restormer_layout(dim, blocks, refinement, heads, expansion, with_bias):
    d = [dim, dim * 2, dim * 4, dim * 8]
    keys = {"patch_embed.proj.weight": (dim, 3, 3, 3), "output.weight": (3, 2 * dim, 3, 3)}
    stages = [("encoder_level1", d[0], blocks[0], heads[0]), ("encoder_level2", d[1], blocks[1], heads[1]),
              ("encoder_level3", d[2], blocks[2], heads[2]), ("latent", d[3], blocks[3], heads[3]),
              ("decoder_level3", d[2], blocks[2], heads[2]), ("decoder_level2", d[1], blocks[1], heads[1]),
              ("decoder_level1", d[1], blocks[0], heads[0]), ("refinement", d[1], refinement, heads[0])]
    for name, width, n, h in stages:
        for j in range(n):
            keys.update(_restormer_block_keys(f"{name}.{j}", width, h, expansion, with_bias))
    for name, c in (("down1_2", d[0]), ("down2_3", d[1]), ("down3_4", d[2])):
        keys[f"{name}.body.0.weight"] = (c // 2, c, 3, 3)
    for name, c in (("up4_3", d[3]), ("up3_2", d[2]), ("up2_1", d[1])):
        keys[f"{name}.body.0.weight"] = (2 * c, c, 3, 3)
    keys["reduce_chan_level3.weight"] = (d[2], d[3], 1, 1)
    keys["reduce_chan_level2.weight"] = (d[1], d[2], 1, 1)
    return keys


def _restormer_block_ref(sd, p, x, heads, with_bias):
    def ln(t, name):
        tt = t.permute(0, 2, 3, 1)
        var = tt.var(-1, keepdim=True, unbiased=False)
        w = sd[f"{p}.{name}.body.weight"]
        if with_bias:
            out = (tt - tt.mean(-1, keepdim=True)) / (var + 1e-5).sqrt() * w + sd[f"{p}.{name}.body.bias"]
        else:
            out = tt / (var + 1e-5).sqrt() * w
        return out.permute(0, 3, 1, 2)

    b, c, h, w = x.shape
    qkv = F.conv2d(F.conv2d(ln(x, "norm1"), sd[f"{p}.attn.qkv.weight"]), sd[f"{p}.attn.qkv_dwconv.weight"],
                   padding=1, groups=3 * c)
    q, k, v = (t.reshape(b, heads, c // heads, h * w) for t in qkv.chunk(3, 1))
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    k = k / k.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    a = torch.softmax(q @ k.transpose(-2, -1) * sd[f"{p}.attn.temperature"], dim=-1)
    x = x + F.conv2d((a @ v).reshape(b, c, h, w), sd[f"{p}.attn.project_out.weight"])
    y = F.conv2d(ln(x, "norm2"), sd[f"{p}.ffn.project_in.weight"])
    y = F.conv2d(y, sd[f"{p}.ffn.dwconv.weight"], padding=1, groups=y.shape[1])
    g, val = y.chunk(2, 1)
    return x + F.conv2d(F.gelu(g) * val, sd[f"{p}.ffn.project_out.weight"])


def restormer_reference(sd, blocks, refinement, heads, with_bias, inp):
    def stage(name, x, n, h):
        for j in range(n):
            x = _restormer_block_ref(sd, f"{name}.{j}", x, h, with_bias)
        return x

    def down(name, x):
        return F.pixel_unshuffle(F.conv2d(x, sd[f"{name}.body.0.weight"], padding=1), 2)

    def up(name, x):
        return F.pixel_shuffle(F.conv2d(x, sd[f"{name}.body.0.weight"], padding=1), 2)

    e1 = stage("encoder_level1", F.conv2d(inp, sd["patch_embed.proj.weight"], padding=1), blocks[0], heads[0])
    e2 = stage("encoder_level2", down("down1_2", e1), blocks[1], heads[1])
    e3 = stage("encoder_level3", down("down2_3", e2), blocks[2], heads[2])
    lat = stage("latent", down("down3_4", e3), blocks[3], heads[3])
    d3 = stage("decoder_level3", F.conv2d(torch.cat([up("up4_3", lat), e3], 1), sd["reduce_chan_level3.weight"]),
               blocks[2], heads[2])
    d2 = stage("decoder_level2", F.conv2d(torch.cat([up("up3_2", d3), e2], 1), sd["reduce_chan_level2.weight"]),
               blocks[1], heads[1])
    d1 = stage("decoder_level1", torch.cat([up("up2_1", d2), e1], 1), blocks[0], heads[0])
    d1 = stage("refinement", d1, refinement, heads[0])
    return F.conv2d(d1, sd["output.weight"], padding=1) + inp


@pytest.mark.parametrize("variant", ["restormer", "restormer-denoise"])
def test_restormer_official_layout_matches_our_module(variant):
    cfg = restormer.CONFIGS[variant]
    layout = official_restormer_layout(cfg["dim"], cfg["num_blocks"], cfg["num_refinement_blocks"], cfg["heads"],
                                       cfg["ffn_expansion_factor"], cfg["layernorm_type"] == "WithBias")
    ours = {k: tuple(v.shape) for k, v in restormer.build(variant).state_dict().items()}
    assert ours == layout


@pytest.mark.parametrize("with_bias", [True, False])
def test_restormer_loads_official_state_strictly_and_matches_reference(with_bias):
    dim, blocks, refinement, heads, expansion = 8, [1, 2, 1, 1], 1, [1, 2, 2, 4], 2.66
    sd = _random_state(official_restormer_layout(dim, blocks, refinement, heads, expansion, with_bias), seed=3)
    model = restormer.Restormer(dim=dim, num_blocks=blocks, num_refinement_blocks=refinement, heads=heads,
                                ffn_expansion_factor=expansion,
                                layernorm_type="WithBias" if with_bias else "BiasFree").eval()
    model.load_state_dict(sd, strict=True)
    x = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(model(x), restormer_reference(sd, blocks, refinement, heads, with_bias, x),
                                   rtol=1e-4, atol=1e-5)


def test_restormer_parameter_count_is_published():
    # Restormer paper, Table 1 / Fig. 1: 26.13M parameters [P]
    n = sum(p.numel() for p in restormer.build("restormer").parameters())
    assert abs(n / 1e6 - 26.13) / 26.13 < 0.01
