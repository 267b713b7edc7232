"""State-dict layouts of ResShift's ``UNetModelSwin`` (zsyOAOA/ResShift models/unet.py + swin_transformer.py) and
TAD-SR's ``ProjectedDiscriminator`` (LearningHx/TAD-SR TAD-SR/models/unet.py), listed from their module trees
by hand: key names and shapes as the official code writes them (buffers included: every Swin block's
``relative_position_index``, and ``attn_mask`` in shifted blocks; spectral norm's weight_orig/u/v). No official
code is imported or copied."""
from __future__ import annotations

import math

Layout = dict[str, tuple[int, ...]]


def _conv(key: str, cin: int, cout: int, k: int) -> Layout:
    return {f"{key}.weight": (cout, cin, k, k), f"{key}.bias": (cout,)}


def _linear(key: str, cin: int, cout: int) -> Layout:
    return {f"{key}.weight": (cout, cin), f"{key}.bias": (cout,)}


def _norm(key: str, ch: int) -> Layout:
    return {f"{key}.weight": (ch,), f"{key}.bias": (ch,)}


def _resblock(key: str, cin: int, cout: int, emb: int) -> Layout:
    out = _norm(f"{key}.in_layers.0", cin) | _conv(f"{key}.in_layers.2", cin, cout, 3)
    out |= _linear(f"{key}.emb_layers.1", emb, 2 * cout)  # use_scale_shift_norm: scale and shift
    out |= _norm(f"{key}.out_layers.0", cout) | _conv(f"{key}.out_layers.3", cout, cout, 3)
    if cin != cout:
        out |= _conv(f"{key}.skip_connection", cin, cout, 1)
    return out


def _swin(key: str, ch: int, embed: int, heads: int, window: int, depth: int, res: int, mlp: float) -> Layout:
    out = _conv(f"{key}.patch_embed.proj", ch, embed, 1) | _conv(f"{key}.patch_unembed.proj", embed, ch, 1)
    w = min(window, res)
    for i in range(depth):
        b = f"{key}.blocks.{i}"
        shifted = i % 2 == 1 and res > window
        out |= _norm(f"{b}.norm1", embed) | _norm(f"{b}.norm2", embed)
        out[f"{b}.attn.relative_position_bias_table"] = ((2 * w - 1) ** 2, heads)
        out[f"{b}.attn.relative_position_index"] = (w * w, w * w)
        out |= _linear(f"{b}.attn.qkv", embed, 3 * embed) | _linear(f"{b}.attn.proj", embed, embed)
        out |= _conv(f"{b}.mlp.fc1", embed, int(embed * mlp), 1) | _conv(f"{b}.mlp.fc2", int(embed * mlp), embed, 1)
        if shifted:
            out[f"{b}.attn_mask"] = ((res // w) ** 2, w * w, w * w)
    return out


def unet_swin_layout(image_size: int = 64, in_channels: int = 3, model_channels: int = 160, out_channels: int = 3,
                     attention_resolutions=(64, 32, 16, 8), channel_mult=(1, 2, 2, 4), num_res_blocks=(2, 2, 2, 2),
                     num_head_channels: int = 32, swin_depth: int = 2, swin_embed_dim: int = 192,
                     window_size: int = 8, mlp_ratio: float = 4.0, lq_size: int = 64, **_: object) -> Layout:
    emb = 4 * model_channels
    heads = swin_embed_dim // num_head_channels

    def swin(key: str, ch: int, res: int) -> Layout:
        return _swin(key, ch, swin_embed_dim, heads, window_size, swin_depth, res, mlp_ratio)

    out = _linear("time_embed.0", model_channels, emb) | _linear("time_embed.2", emb, emb)
    lq_ch = 3
    if lq_size != image_size:
        feat, lq_ch = 3, 16
        for i in range(int(math.log2(lq_size / image_size))):
            out |= _conv(f"feature_extractor.{3 * i}", feat, lq_ch, 3)
            out |= _conv(f"feature_extractor.{3 * i + 2}.op", lq_ch, 2 * lq_ch, 3)
            lq_ch *= 2
            feat = lq_ch
    ch = model_channels * channel_mult[0]
    out |= _conv("input_blocks.0.0", in_channels + lq_ch, ch, 3)
    chans, res, n = [ch], image_size, 1
    for level, mult in enumerate(channel_mult):
        for j in range(num_res_blocks[level]):
            out |= _resblock(f"input_blocks.{n}.0", ch, model_channels * mult, emb)
            ch = model_channels * mult
            if res in attention_resolutions and j == 0:
                out |= swin(f"input_blocks.{n}.1", ch, res)
            chans.append(ch)
            n += 1
        if level != len(channel_mult) - 1:
            out |= _conv(f"input_blocks.{n}.0.op", ch, ch, 3)
            chans.append(ch)
            n += 1
            res //= 2
    out |= _resblock("middle_block.0", ch, ch, emb) | swin("middle_block.1", ch, res)
    out |= _resblock("middle_block.2", ch, ch, emb)
    n = 0
    for level in reversed(range(len(channel_mult))):
        mult = channel_mult[level]
        for i in range(num_res_blocks[level] + 1):
            out |= _resblock(f"output_blocks.{n}.0", ch + chans.pop(), model_channels * mult, emb)
            ch = model_channels * mult
            k = 1
            if res in attention_resolutions and i == 0:
                out |= swin(f"output_blocks.{n}.1", ch, res)
                k = 2
            if level and i == num_res_blocks[level]:
                out |= _conv(f"output_blocks.{n}.{k}.conv", ch, ch, 3)
                res *= 2
            n += 1
    out |= _norm("out.0", ch) | _conv("out.2", model_channels * channel_mult[0], out_channels, 3)
    return out


def _sn_conv1d(key: str, cin: int, cout: int, k: int) -> Layout:
    return {f"{key}.bias": (cout,), f"{key}.weight_orig": (cout, cin, k), f"{key}.weight_u": (cout,),
            f"{key}.weight_v": (cin * k,)}


def projected_discriminator_layout(c_dim: int = 64, embed_dim: int = 160) -> Layout:
    out: Layout = {}
    for k, mult in enumerate((1, 2, 2, 4, 4)):
        w = embed_dim * mult
        h = f"heads.{k}"
        out |= _sn_conv1d(f"{h}.main.0.0", w, w, 1) | _norm(f"{h}.main.0.1", w)
        out |= _sn_conv1d(f"{h}.main.1.fn.0", w, w, 9) | _norm(f"{h}.main.1.fn.1", w)
        out |= _sn_conv1d(f"{h}.cls", w, c_dim, 1)
        out |= _linear(f"emb_layers.{k}.1", embed_dim, 2 * w)
        out |= _norm(f"out_layers.{k}.0", w) | _conv(f"out_layers.{k}.3", w, w, 3)
    return out


def random_state_dict(layout: Layout, seed: int = 0):
    """Random tensors in the layout's shapes (buffers too: a strict load checks names and shapes, not values)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=gen) * 0.05 for k, shape in layout.items()}


def _vq_resnet(key: str, cin: int, cout: int) -> Layout:
    out = _norm(f"{key}.norm1", cin) | _conv(f"{key}.conv1", cin, cout, 3)
    out |= _norm(f"{key}.norm2", cout) | _conv(f"{key}.conv2", cout, cout, 3)
    if cin != cout:
        out |= _conv(f"{key}.nin_shortcut", cin, cout, 1)
    return out


def _vq_mid(key: str, ch: int) -> Layout:
    out = _vq_resnet(f"{key}.block_1", ch, ch) | _vq_resnet(f"{key}.block_2", ch, ch)
    out |= _norm(f"{key}.attn_1.norm", ch)
    for name in ("q", "k", "v", "proj_out"):
        out |= _conv(f"{key}.attn_1.{name}", ch, ch, 1)
    return out


def vqmodel_torch_layout(ch: int = 128, ch_mult=(1, 2, 4), num_res_blocks: int = 2, z_channels: int = 3,
                         embed_dim: int = 3, n_embed: int = 8192, in_channels: int = 3, out_ch: int = 3) -> Layout:
    """ResShift's ``ldm.models.autoencoder.VQModelTorch`` (Encoder/Decoder of ldm/modules/diffusionmodules/model.py,
    VectorQuantizer2 without remap) for ``attn_resolutions: []`` and ``double_z: False``: the mid attention is
    there anyway, nothing else attends. Defaults: the f4 autoencoder of configs/realsr_swinunet_realesrgan256.yaml."""
    out = _conv("encoder.conv_in", in_channels, ch, 3)
    cin = ch
    for i, mult in enumerate(ch_mult):
        for j in range(num_res_blocks):
            out |= _vq_resnet(f"encoder.down.{i}.block.{j}", cin, ch * mult)
            cin = ch * mult
        if i != len(ch_mult) - 1:
            out |= _conv(f"encoder.down.{i}.downsample.conv", cin, cin, 3)
    out |= _vq_mid("encoder.mid", cin) | _norm("encoder.norm_out", cin) | _conv("encoder.conv_out", cin, z_channels, 3)
    out |= _conv("quant_conv", z_channels, embed_dim, 1) | {"quantize.embedding.weight": (n_embed, embed_dim)}
    out |= _conv("post_quant_conv", embed_dim, z_channels, 1)
    cin = ch * ch_mult[-1]
    out |= _conv("decoder.conv_in", z_channels, cin, 3) | _vq_mid("decoder.mid", cin)
    for i in reversed(range(len(ch_mult))):
        for j in range(num_res_blocks + 1):
            out |= _vq_resnet(f"decoder.up.{i}.block.{j}", cin, ch * ch_mult[i])
            cin = ch * ch_mult[i]
        if i != 0:
            out |= _conv(f"decoder.up.{i}.upsample.conv", cin, cin, 3)
    return out | _norm("decoder.norm_out", cin) | _conv("decoder.conv_out", cin, out_ch, 3)


def write_vqgan_checkpoint(path, seed: int = 0, **layout_kwargs) -> dict:
    """A random ``autoencoder_vq_f4.pth``-style file: the plain state dict ResShift's trainer loads strictly
    (GroupNorm weights near 1 and a spread codebook, so encode/decode produce ordinary numbers)."""
    import torch

    state = random_state_dict(vqmodel_torch_layout(**layout_kwargs), seed)
    for key in state:
        if "norm" in key and key.endswith(".weight"):
            state[key] = state[key] + 1.0
    state["quantize.embedding.weight"] = state["quantize.embedding.weight"] * 20
    torch.save(state, path)
    return state


def write_tad_sr_data_root(root, lr_size: int = 16, sf: int = 4, n_test: int = 2):
    """TAD-SR's data in the official layouts, tiny: ResShift's ImageNet-Test (``resshift-imagenet-test/lq`` 64x64
    and ``gt`` 256x256 in the release; here lr_size and sf x lr_size, same names on both sides), the LR-only
    ``realsr/testdata/RealSR`` (one image larger than a tile) and ``realset65/testdata/RealSet65`` (one size that
    is not a multiple of the padding offset), and ImageNet train images under ``imagenet/train/<wnid>/``."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from tests.fixtures_official.div2k import smooth_image

    root = Path(root)
    rng = np.random.default_rng(0)
    for sub in ("resshift-imagenet-test/lq", "resshift-imagenet-test/gt", "realsr/testdata/RealSR",
                "realset65/testdata/RealSet65", "imagenet/train/n01440764"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_test):
        gt = smooth_image(rng, lr_size * sf, lr_size * sf)
        Image.fromarray(gt).save(root / "resshift-imagenet-test/gt" / f"ILSVRC2012_val_{i:08d}.png")
        lr = np.asarray(Image.fromarray(gt).resize((lr_size, lr_size), Image.BICUBIC))
        Image.fromarray(lr).save(root / "resshift-imagenet-test/lq" / f"ILSVRC2012_val_{i:08d}.png")
    Image.fromarray(smooth_image(rng, lr_size + 4, lr_size + 8)).save(root / "realsr/testdata/RealSR/Canon_001.png")
    Image.fromarray(smooth_image(rng, lr_size - 4, lr_size - 2)).save(root / "realset65/testdata/RealSet65/0014.jpg")
    for i in range(3):
        Image.fromarray(smooth_image(rng, 80, 72)).save(root / "imagenet/train/n01440764" / f"n01440764_{i}.JPEG")
    return root
