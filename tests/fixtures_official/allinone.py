"""State-dict layouts of the official all-in-one restoration codes, listed from their module trees by hand
(key names and shapes as the official code writes them; no official code is imported or copied):
huawei-noah/Pretrained-IPT model/ipt.py + model/common.py, XLearning-SCU/2022-CVPR-AirNet net/*.py,
va1shn9v/PromptIR net/model.py (its literal channel numbers at dim 48)."""
from __future__ import annotations

import math


def _conv(key: str, cin: int, cout: int, k: int, bias: bool = True) -> dict[str, tuple[int, ...]]:
    out = {f"{key}.weight": (cout, cin, k, k)}
    if bias:
        out[f"{key}.bias"] = (cout,)
    return out


def _linear(key: str, cin: int, cout: int, bias: bool = True) -> dict[str, tuple[int, ...]]:
    out = {f"{key}.weight": (cout, cin)}
    if bias:
        out[f"{key}.bias"] = (cout,)
    return out


def ipt_layout(n_feats: int, patch_dim: int, patch_size: int, num_layers: int, scales: tuple[int, ...],
               num_queries: int) -> dict[str, tuple[int, ...]]:
    d = n_feats * patch_dim ** 2
    hid, seq = 4 * d, (patch_size // patch_dim) ** 2
    keys: dict[str, tuple[int, ...]] = {}
    keys |= _conv("sub_mean", 3, 3, 1) | _conv("add_mean", 3, 3, 1)
    for t, s in enumerate(scales):
        keys |= _conv(f"head.{t}.0", 3, n_feats, 3)
        for r in (1, 2):
            keys |= _conv(f"head.{t}.{r}.body.0", n_feats, n_feats, 5) | _conv(f"head.{t}.{r}.body.2", n_feats, n_feats, 5)
        if s & (s - 1) == 0:
            for i in range(int(math.log2(s))):
                keys |= _conv(f"tail.{t}.0.{2 * i}", n_feats, 4 * n_feats, 3)
        else:
            keys |= _conv(f"tail.{t}.0.0", n_feats, 9 * n_feats, 3)
        keys |= _conv(f"tail.{t}.1", n_feats, 3, 3)
    b = "body"
    keys |= _linear(f"{b}.linear_encoding", d, d) | _linear(f"{b}.mlp_head.0", d, hid) | _linear(f"{b}.mlp_head.3", hid, d)
    keys[f"{b}.query_embed.weight"] = (num_queries, d * seq)
    for i in range(num_layers):
        e = f"{b}.encoder.layers.{i}"
        keys |= {f"{e}.self_attn.in_proj_weight": (3 * d, d), f"{e}.self_attn.out_proj.weight": (d, d)}
        keys |= _linear(f"{e}.linear1", d, hid) | _linear(f"{e}.linear2", hid, d)
        for n in (1, 2):
            keys |= {f"{e}.norm{n}.weight": (d,), f"{e}.norm{n}.bias": (d,)}
        c = f"{b}.decoder.layers.{i}"
        for a in ("self_attn", "multihead_attn"):
            keys |= {f"{c}.{a}.in_proj_weight": (3 * d, d), f"{c}.{a}.out_proj.weight": (d, d)}
        keys |= _linear(f"{c}.linear1", d, hid) | _linear(f"{c}.linear2", hid, d)
        for n in (1, 2, 3):
            keys |= {f"{c}.norm{n}.weight": (d,), f"{c}.norm{n}.bias": (d,)}
    keys[f"{b}.position_encoding.pe.weight"] = (seq, d)
    keys[f"{b}.position_encoding.position_ids"] = (1, seq)  # a persistent buffer
    return keys


def airnet_layout(n_feats: int = 64, n_groups: int = 5, n_blocks: int = 5, batch_size: int = 5) -> dict[str, tuple[int, ...]]:
    c = n_feats
    keys: dict[str, tuple[int, ...]] = {}
    keys |= _conv("R.head.0", 3, c, 3)
    for g in range(n_groups):
        for bl in range(n_blocks):
            p = f"R.body.{g}.body.{bl}"
            for m in ("dgm1", "dgm2"):
                keys[f"{p}.{m}.dcn.weight"] = (c, c, 3, 3)
                keys |= _conv(f"{p}.{m}.dcn.conv_offset_mask", 2 * c, 27, 3)
                for branch in ("conv_gamma", "conv_beta"):
                    keys |= _conv(f"{p}.{m}.sft.{branch}.0", c, c, 1, bias=False)
                    keys |= _conv(f"{p}.{m}.sft.{branch}.2", c, c, 1, bias=False)
            keys |= _conv(f"{p}.conv1", c, c, 3) | _conv(f"{p}.conv2", c, c, 3)
        keys |= _conv(f"R.body.{g}.body.{n_blocks}", c, c, 3)
    keys |= _conv(f"R.body.{n_groups}", c, c, 3) | _conv("R.tail.0", c, 3, 3)

    def bn(key: str, n: int) -> dict[str, tuple[int, ...]]:
        return {f"{key}.weight": (n,), f"{key}.bias": (n,), f"{key}.running_mean": (n,), f"{key}.running_var": (n,),
                f"{key}.num_batches_tracked": ()}

    def resblock(key: str, cin: int, cout: int) -> dict[str, tuple[int, ...]]:
        return (_conv(f"{key}.backbone.0", cin, cout, 3, bias=False) | bn(f"{key}.backbone.1", cout)
                | _conv(f"{key}.backbone.3", cout, cout, 3, bias=False) | bn(f"{key}.backbone.4", cout)
                | _conv(f"{key}.shortcut.0", cin, cout, 1, bias=False) | bn(f"{key}.shortcut.1", cout))

    for enc in ("encoder_q", "encoder_k"):
        p = f"E.E.{enc}"
        keys |= resblock(f"{p}.E_pre", 3, c) | resblock(f"{p}.E.0", c, 2 * c) | resblock(f"{p}.E.1", 2 * c, 4 * c)
        keys |= _linear(f"{p}.mlp.0", 4 * c, 4 * c) | _linear(f"{p}.mlp.2", 4 * c, 4 * c)
    keys["E.E.queue"] = (4 * c, batch_size * 4 * c)
    keys["E.E.queue_ptr"] = (1,)
    return keys


def promptir_layout() -> dict[str, tuple[int, ...]]:
    """The official PromptIR (dim 48, decoder=True) with its literal channel numbers."""
    keys: dict[str, tuple[int, ...]] = {}

    def conv(key: str, cin: int, cout: int, k: int, groups: int = 1) -> None:
        keys[f"{key}.weight"] = (cout, cin // groups, k, k)

    def block(key: str, d: int, h: int) -> None:
        hid = int(d * 2.66)
        for n in ("norm1", "norm2"):
            keys[f"{key}.{n}.body.weight"] = (d,)
            keys[f"{key}.{n}.body.bias"] = (d,)
        keys[f"{key}.attn.temperature"] = (h, 1, 1)
        conv(f"{key}.attn.qkv", d, 3 * d, 1)
        conv(f"{key}.attn.qkv_dwconv", 3 * d, 3 * d, 3, groups=3 * d)
        conv(f"{key}.attn.project_out", d, d, 1)
        conv(f"{key}.ffn.project_in", d, 2 * hid, 1)
        conv(f"{key}.ffn.dwconv", 2 * hid, 2 * hid, 3, groups=2 * hid)
        conv(f"{key}.ffn.project_out", hid, d, 1)

    def level(key: str, n: int, d: int, h: int) -> None:
        for i in range(n):
            block(f"{key}.{i}", d, h)

    conv("patch_embed.proj", 3, 48, 3)
    for i, (pd, size, lin) in enumerate([(64, 64, 96), (128, 32, 192), (320, 16, 384)], 1):
        keys[f"prompt{i}.prompt_param"] = (1, 5, pd, size, size)
        keys[f"prompt{i}.linear_layer.weight"] = (5, lin)
        keys[f"prompt{i}.linear_layer.bias"] = (5,)
        conv(f"prompt{i}.conv3x3", pd, pd, 3)
    conv("chnl_reduce1", 64, 64, 1)
    conv("chnl_reduce2", 128, 128, 1)
    conv("chnl_reduce3", 320, 256, 1)
    conv("reduce_noise_channel_1", 48 + 64, 48, 1)
    level("encoder_level1", 4, 48, 1)
    conv("down1_2.body.0", 48, 24, 3)
    conv("reduce_noise_channel_2", 96 + 128, 96, 1)
    level("encoder_level2", 6, 96, 2)
    conv("down2_3.body.0", 96, 48, 3)
    conv("reduce_noise_channel_3", 192 + 256, 192, 1)
    level("encoder_level3", 6, 192, 4)
    conv("down3_4.body.0", 192, 96, 3)
    level("latent", 8, 384, 8)
    conv("up4_3.body.0", 192, 384, 3)
    conv("reduce_chan_level3", 96 + 192, 192, 1)
    block("noise_level3", 192 + 512, 4)
    conv("reduce_noise_level3", 192 + 512, 192, 1)
    level("decoder_level3", 6, 192, 4)
    conv("up3_2.body.0", 192, 384, 3)
    conv("reduce_chan_level2", 192, 96, 1)
    block("noise_level2", 96 + 224, 4)
    conv("reduce_noise_level2", 96 + 224, 192, 1)
    level("decoder_level2", 6, 96, 2)
    conv("up2_1.body.0", 96, 192, 3)
    block("noise_level1", 96 + 64, 4)
    conv("reduce_noise_level1", 96 + 64, 96, 1)
    level("decoder_level1", 4, 96, 1)
    level("refinement", 4, 96, 1)
    conv("output", 96, 3, 3)
    return keys
