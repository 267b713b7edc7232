"""ResShift's VQGAN f4 autoencoder (baselines/resshift/vqgan.py) against the official layout and independent
re-computations: a state dict listed by hand from ldm's VQModelTorch module tree loads strictly (parameter count
of the f4 model from that listing), one ResnetBlock and the mid attention computed with plain torch functional
calls, the quantiser's nearest code by brute force, and the whole autoencoder against diffusers' VQModel (an
independent implementation of the same LDM architecture) through a key converter."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from baselines.resshift import vqgan
from tests.fixtures_official.resshift import (
    random_state_dict,
    vqmodel_torch_layout,
    write_vqgan_checkpoint,
)

TINY = dict(embed_dim=3, n_embed=64, ddconfig=dict(double_z=False, z_channels=3, resolution=32, in_channels=3,
                                                   out_ch=3, ch=32, ch_mult=(1, 2, 4), num_res_blocks=2,
                                                   attn_resolutions=(), dropout=0.0))
TINY_LAYOUT = dict(ch=32, n_embed=64)


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """One torch and one BLAS thread (tests/conftest.py)."""


def test_the_f4_autoencoder_loads_the_official_layout_strictly_with_its_parameter_count():
    layout = vqmodel_torch_layout()  # ch 128, ch_mult [1,2,4], 2 res-blocks, z 3, codebook 8192 x 3
    model = vqgan.build()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == layout
    model.load_state_dict(random_state_dict(layout), strict=True)
    official = sum(math.prod(shape) for shape in layout.values())
    assert official == 55_322_782  # every tensor of the layout is a parameter (no buffers in VQModelTorch)
    assert sum(p.numel() for p in model.parameters()) == official


def test_a_resnet_block_and_the_mid_attention_equal_a_functional_recomputation():
    torch.manual_seed(0)
    block = vqgan.ResnetBlock(32, 64)
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x = torch.randn(2, 32, 6, 5)
    h = F.silu(F.group_norm(x, 32, block.norm1.weight, block.norm1.bias, eps=1e-6))
    h = F.conv2d(h, block.conv1.weight, block.conv1.bias, padding=1)
    h = F.silu(F.group_norm(h, 32, block.norm2.weight, block.norm2.bias, eps=1e-6))
    h = F.conv2d(h, block.conv2.weight, block.conv2.bias, padding=1)
    expected = F.conv2d(x, block.nin_shortcut.weight, block.nin_shortcut.bias) + h
    torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)

    attn = vqgan.AttnBlock(32)
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.1)
    n = F.group_norm(x, 32, attn.norm.weight, attn.norm.bias, eps=1e-6)
    q, k, v = (F.conv2d(n, m.weight, m.bias).flatten(2) for m in (attn.q, attn.k, attn.v))  # b, c, hw
    w = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / math.sqrt(32), dim=2)  # [query, key]
    out = torch.einsum("bcj,bij->bci", v, w).reshape_as(x)
    torch.testing.assert_close(attn(x), x + F.conv2d(out, attn.proj_out.weight, attn.proj_out.bias),
                               rtol=1e-5, atol=1e-5)


def test_decode_quantises_to_the_nearest_code_and_encode_does_not():
    torch.manual_seed(1)
    quantize = vqgan.VectorQuantizer(50, 3)
    torch.nn.init.normal_(quantize.embedding.weight)
    z = torch.randn(2, 3, 4, 5)
    points = z.permute(0, 2, 3, 1).reshape(-1, 3)
    nearest = torch.cdist(points.double(), quantize.embedding.weight.double()).argmin(1)
    assert torch.equal(quantize.indices(z).flatten(), nearest)
    expected = quantize.embedding.weight[nearest].view(2, 4, 5, 3).permute(0, 3, 1, 2)
    assert torch.equal(quantize(z), expected)

    model = vqgan.build(TINY).eval()
    model.load_state_dict(random_state_dict(vqmodel_torch_layout(**TINY_LAYOUT), 3), strict=True)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        h = model.encode(x)
        assert h.shape == (1, 3, 4, 4)  # f4: 16 -> 4
        torch.testing.assert_close(model.decode(h), model.decode(model.quantize(h), force_not_quantize=True))


def _ldm_to_diffusers(state: dict[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """Key converter from ldm's VQModelTorch names to diffusers' VQModel names (attention 1x1 convs -> linears)."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        new = key
        if parts[1] == "down" and parts[3] == "block":
            new = f"{parts[0]}.down_blocks.{parts[2]}.resnets.{parts[4]}." + ".".join(parts[5:])
        elif parts[1] == "down" and parts[3] == "downsample":
            new = f"{parts[0]}.down_blocks.{parts[2]}.downsamplers.0." + ".".join(parts[4:])
        elif parts[1] == "up" and parts[3] == "block":
            new = f"{parts[0]}.up_blocks.{levels - 1 - int(parts[2])}.resnets.{parts[4]}." + ".".join(parts[5:])
        elif parts[1] == "up" and parts[3] == "upsample":
            new = f"{parts[0]}.up_blocks.{levels - 1 - int(parts[2])}.upsamplers.0." + ".".join(parts[4:])
        elif parts[1] == "mid" and parts[2].startswith("block_"):
            new = f"{parts[0]}.mid_block.resnets.{int(parts[2][-1]) - 1}." + ".".join(parts[3:])
        elif parts[1] == "mid" and parts[2] == "attn_1":
            name = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}[parts[3]]
            new = f"{parts[0]}.mid_block.attentions.0.{name}.{parts[4]}"
            value = value.reshape(value.shape[0], -1) if value.dim() == 4 else value
        elif parts[1] == "norm_out":
            new = f"{parts[0]}.conv_norm_out.{parts[2]}"
        new = new.replace("nin_shortcut", "conv_shortcut")
        out[new] = value
    return out


def test_the_whole_autoencoder_equals_diffusers_vqmodel_on_converted_weights(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    path = tmp_path / "autoencoder_vq_f4.pth"
    state = write_vqgan_checkpoint(path, seed=5, **TINY_LAYOUT)
    ours = vqgan.load(path, TINY)
    ref = diffusers.VQModel(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                            up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(32, 64, 128),
                            layers_per_block=2, act_fn="silu", latent_channels=3, sample_size=32,
                            num_vq_embeddings=64, norm_num_groups=32, vq_embed_dim=3).eval()
    ref.load_state_dict(_ldm_to_diffusers(state, 3), strict=True)
    x = torch.rand(2, 3, 24, 20) * 2 - 1
    with torch.no_grad():
        h = ours.encode(x)
        torch.testing.assert_close(h, ref.encode(x).latents, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(ours.decode(h), ref.decode(h).sample, rtol=1e-4, atol=1e-4)


def test_released_checkpoint_wrappers_are_unwrapped(tmp_path):
    state = random_state_dict(vqmodel_torch_layout(**TINY_LAYOUT))
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module._orig_mod.{k}": v for k, v in state.items()}}, path)
    model = vqgan.load(path, TINY)
    assert torch.equal(model.quantize.embedding.weight, state["quantize.embedding.weight"])
    torch.save({**state, "encoder.extra": torch.zeros(1)}, path)
    with pytest.raises(RuntimeError, match="encoder.extra"):
        vqgan.load(path, TINY)
