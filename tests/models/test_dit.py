"""DiT at official shapes: parameter and MAC counts against the DiT paper, the official checkpoint layout,
and the fixed embeddings against their formulas.

Counting runs on the 'meta' device: no memory is allocated (DiT-XL/2 has 675 M parameters) and torch's
FlopCounterMode sees the attention kernel there (on CPU tensors it does not count the CPU flash-attention
op, see the report), so every config, XL/2 included, is counted in a few seconds.
"""
from __future__ import annotations

import math

import pytest
import torch
from einops import rearrange

from baselines.dit.model import DIT_CONFIGS, SMOKE_CONFIG, DiT, dit, load_official_state_dict
from bench.diffusion.embedders import timestep_features
from bench.profile import count_macs, count_params
from bench.registry import BenchError

# Dossier papers-diffusion.md 1.2 (verified on the official code) and DiT paper Table 4.
PARAMS_M = {"DiT-S/2": 32.96, "DiT-B/2": 130.51, "DiT-L/2": 458.10, "DiT-XL/2": 675.13}
PAPER_PARAMS_M = {"DiT-S/8": 33, "DiT-S/4": 33, "DiT-B/8": 131, "DiT-B/4": 130, "DiT-L/8": 459, "DiT-L/4": 458,
                  "DiT-XL/8": 676, "DiT-XL/4": 675}
PAPER_GMACS = {"DiT-S/8": 0.36, "DiT-S/4": 1.41, "DiT-S/2": 6.06, "DiT-B/8": 1.42, "DiT-B/4": 5.56,
               "DiT-B/2": 23.01, "DiT-L/8": 5.01, "DiT-L/4": 19.70, "DiT-L/2": 80.71, "DiT-XL/8": 7.39,
               "DiT-XL/4": 29.05, "DiT-XL/2": 118.64}


def meta_model(name: str) -> DiT:
    with torch.device("meta"):
        return dit(name).eval()


def latent_batch(device: str = "meta"):
    return (torch.zeros(1, 4, 32, 32, device=device), torch.zeros(1, dtype=torch.long, device=device),
            torch.zeros(1, dtype=torch.long, device=device))


@pytest.mark.parametrize("name", sorted(DIT_CONFIGS))
def test_parameter_counts_match_paper(name):
    # All parameters, the frozen sin-cos pos_embed included, as the paper and the dossier count them.
    total = count_params(meta_model(name), trainable_only=False)
    if name in PARAMS_M:
        assert total / 1e6 == pytest.approx(PARAMS_M[name], abs=0.006)
    else:
        assert total / 1e6 == pytest.approx(PAPER_PARAMS_M[name], rel=0.01)


@pytest.mark.parametrize("name", sorted(DIT_CONFIGS))
def test_macs_match_paper_gflops(name):
    """DiT's "GFLOPs" are MACs of one forward at batch 1 on a 32x32x4 latent."""
    macs = count_macs(meta_model(name), *latent_batch())
    assert macs / 1e9 == pytest.approx(PAPER_GMACS[name], rel=0.01)


def official_layout(depth: int, hidden: int, patch: int, in_channels: int = 4, classes: int = 1000,
                    input_size: int = 32) -> dict[str, tuple[int, ...]]:
    """Key -> shape of facebookresearch/DiT's state dict (timm Attention/Mlp/PatchEmbed names), by hand."""
    tokens = (input_size // patch) ** 2
    layout: dict[str, tuple[int, ...]] = {
        "pos_embed": (1, tokens, hidden),
        "x_embedder.proj.weight": (hidden, in_channels, patch, patch), "x_embedder.proj.bias": (hidden,),
        "t_embedder.mlp.0.weight": (hidden, 256), "t_embedder.mlp.0.bias": (hidden,),
        "t_embedder.mlp.2.weight": (hidden, hidden), "t_embedder.mlp.2.bias": (hidden,),
        "y_embedder.embedding_table.weight": (classes + 1, hidden),
    }
    for i in range(depth):
        for name, shape in {"attn.qkv": (3 * hidden, hidden), "attn.proj": (hidden, hidden),
                            "mlp.fc1": (4 * hidden, hidden), "mlp.fc2": (hidden, 4 * hidden),
                            "adaLN_modulation.1": (6 * hidden, hidden)}.items():
            layout[f"blocks.{i}.{name}.weight"] = shape
            layout[f"blocks.{i}.{name}.bias"] = (shape[0],)
    layout["final_layer.linear.weight"] = (patch * patch * 2 * in_channels, hidden)
    layout["final_layer.linear.bias"] = (patch * patch * 2 * in_channels,)
    layout["final_layer.adaLN_modulation.1.weight"] = (2 * hidden, hidden)
    layout["final_layer.adaLN_modulation.1.bias"] = (2 * hidden,)
    return layout


def test_xl2_official_layout_has_292_tensors_and_loads():
    layout = official_layout(depth=28, hidden=1152, patch=2)
    assert len(layout) == 292
    model = meta_model("DiT-XL/2")
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == layout
    state = {k: torch.empty(shape, device="meta") for k, shape in layout.items()}
    load_official_state_dict(model, {"model": {}, "ema": state, "opt": {}, "args": None})  # find_model takes ema


def tiny_kwargs():
    return {"input_size": 8, "patch_size": 2, "in_channels": 4, "hidden_size": 32, "depth": 2, "num_heads": 4, "num_classes": 1000}


def test_random_official_state_dict_loads_into_the_right_places():
    layout = official_layout(depth=2, hidden=32, patch=2, input_size=8)
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=gen) for k, shape in layout.items()}
    model = load_official_state_dict(DiT(**tiny_kwargs()), state)
    assert torch.equal(model.blocks[1].attn.qkv.weight, state["blocks.1.attn.qkv.weight"])
    assert torch.equal(model.final_layer.adaLN_modulation[1].bias, state["final_layer.adaLN_modulation.1.bias"])
    assert torch.equal(model.pos_embed, state["pos_embed"])
    out = model.eval()(torch.randn(2, 4, 8, 8), torch.tensor([0, 999]), torch.tensor([1, 1000]))
    assert out.shape == (2, 8, 8, 8) and out.abs().sum() > 0


def test_loader_names_the_first_bad_key_on_one_line():
    layout = official_layout(depth=2, hidden=32, patch=2, input_size=8)
    good = {k: torch.zeros(shape) for k, shape in layout.items()}
    model = DiT(**tiny_kwargs())
    missing = dict(good)
    del missing["blocks.1.mlp.fc2.bias"]
    with pytest.raises(BenchError, match=r"missing key 'blocks\.1\.mlp\.fc2\.bias'") as err:
        load_official_state_dict(model, missing)
    assert "\n" not in str(err.value)
    with pytest.raises(BenchError, match=r"unexpected key 'module\.pos_embed'"):
        load_official_state_dict(model, {**good, "module.pos_embed": good["pos_embed"]})
    wrong = {**good, "y_embedder.embedding_table.weight": torch.zeros(1000, 32)}
    with pytest.raises(BenchError, match=r"shape mismatch for 'y_embedder\.embedding_table\.weight'.*\(1000, 32\)"):
        load_official_state_dict(model, wrong)
    with pytest.raises(BenchError, match="no state dict"):
        load_official_state_dict(model, {"optimizer": {}})


def test_pos_embed_is_the_mae_sincos_formula():
    hidden, grid = 16, 4
    model = DiT(input_size=8, patch_size=2, in_channels=1, hidden_size=hidden, depth=1, num_heads=2, num_classes=2)
    assert not model.pos_embed.requires_grad
    quarter = hidden // 4
    for row in range(grid):
        for col in range(grid):
            token = model.pos_embed[0, row * grid + col]
            for k in range(quarter):
                w = 10000 ** (-k / quarter)
                # First half: the column (MAE's x-first mesh), second half: the row; each [sin..., cos...].
                expected = [math.sin(col * w), math.cos(col * w), math.sin(row * w), math.cos(row * w)]
                got = [token[k], token[quarter + k], token[2 * quarter + k], token[3 * quarter + k]]
                assert [g.item() for g in got] == pytest.approx(expected, abs=1e-6)


def test_timestep_features_formula():
    t = torch.tensor([0.0, 17.0, 999.0])
    features = timestep_features(t, 256)
    for i, step in enumerate(t.tolist()):
        for k in (0, 5, 127):
            f = math.exp(-math.log(10000) * k / 128)
            assert features[i, k].item() == pytest.approx(math.cos(step * f), abs=1e-4)
            assert features[i, 128 + k].item() == pytest.approx(math.sin(step * f), abs=1e-4)


def test_adaln_zero_init_outputs_zero_and_unpatchify_layout():
    torch.manual_seed(0)
    model = DiT(**tiny_kwargs()).eval()
    x, t, y = torch.randn(2, 4, 8, 8), torch.tensor([3, 500]), torch.tensor([7, 1000])
    assert model(x, t, y).abs().max() == 0  # adaLN-Zero: zero modulation and zero output layer at init
    tokens = torch.randn(2, 16, 2 * 2 * 8)
    want = rearrange(tokens, "b (h w) (p q c) -> b c (h p) (w q)", h=4, p=2, q=2)
    assert torch.equal(model.unpatchify(tokens), want)


def test_label_dropout_uses_the_null_class():
    model = DiT(**{**tiny_kwargs(), "class_dropout_prob": 1.0})
    labels = torch.tensor([1, 2, 3])
    assert model.y_embedder.embedding_table.num_embeddings == 1001 and model.null_class == 1000
    dropped = model.y_embedder(labels, train=True)
    assert torch.equal(dropped, model.y_embedder.embedding_table.weight[[1000, 1000, 1000]])
    kept = model.y_embedder(labels, train=False)
    assert torch.equal(kept, model.y_embedder.embedding_table.weight[[1, 2, 3]])
    forced = model.y_embedder(labels, train=False, force_drop=torch.tensor([0, 1, 0]))
    assert torch.equal(forced, model.y_embedder.embedding_table.weight[[1, 1000, 3]])
    assert DiT(**{**tiny_kwargs(), "class_dropout_prob": 0.0}).y_embedder.embedding_table.num_embeddings == 1000


def test_smoke_config_trains_and_rejects_bad_shapes():
    model = DiT(**SMOKE_CONFIG)
    x, t, y = torch.randn(4, 1, 16, 16), torch.randint(0, 1000, (4,)), torch.randint(0, 10, (4,))
    out = model(x, t, y)
    assert out.shape == (4, 2, 16, 16)
    ((out - 1.0) ** 2).mean().backward()
    assert model.final_layer.linear.weight.grad.abs().sum() > 0
    assert model.pos_embed.grad is None
    with pytest.raises(BenchError, match=r"DiT expects inputs \[B, 1, 16, 16\]"):
        model(torch.randn(1, 1, 32, 32), t[:1], y[:1])
    with pytest.raises(BenchError, match="unknown DiT config 'DiT-XL/3'"):
        dit("DiT-XL/3")
