"""U-DiT: official parameter/MAC counts (train and deploy forms), the checkpoint layout, the token split, RoPE-2D,
cosine attention against a naive reference, and the re-parameterised FFN (fusion must never touch weights).

Official-size models are counted on the 'meta' device (no memory, attention counted; see test_dit.py).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bench.profile import count_macs
from bench.registry import BenchError
from methods.u_dit.model import (
    DownsampledAttention,
    RepFeedForward,
    UDiT,
    apply_rope,
    load_official_state_dict,
    merge_groups,
    rope2d_angles,
    split_groups,
    udit,
)

# Dossier papers-diffusion.md 1.2 / 5.3 (U-DiT paper Table 8 for the deploy form, verified on the official code).
PARAMS_M = {"U-DiT-S": (58.90, 52.05), "U-DiT-B": (231.25, 204.43), "U-DiT-L": (916.34, 810.19)}  # train, deploy
DEPLOY_GMACS = {"U-DiT-S": 6.04, "U-DiT-B": 22.22, "U-DiT-L": 85.00}


def meta_udit(name: str, **overrides) -> UDiT:
    with torch.device("meta"):
        return udit(name, **overrides)


def latent_batch():
    return (torch.zeros(1, 4, 32, 32, device="meta"), torch.zeros(1, dtype=torch.long, device="meta"),
            torch.zeros(1, dtype=torch.long, device="meta"))


@pytest.mark.parametrize("name", sorted(PARAMS_M))
def test_parameter_counts_train_and_deploy(name):
    model = meta_udit(name)
    train_m, deploy_m = PARAMS_M[name]
    assert model.num_params() / 1e6 == pytest.approx(train_m, abs=0.006)
    assert model.num_params(deploy=True) / 1e6 == pytest.approx(deploy_m, abs=0.006)


@pytest.mark.parametrize("name", sorted(DEPLOY_GMACS))
def test_deploy_macs_match_paper(name):
    # The paper counts the eval (re-parameterised) graph with torchprofile, which also counts a few
    # element-wise multiplies; FlopCounterMode counts matmul/conv/attention only, ~0.1-0.3% lower.
    macs = count_macs(meta_udit(name).eval(), *latent_batch())
    assert macs / 1e9 == pytest.approx(DEPLOY_GMACS[name], rel=0.01)


def test_train_form_and_vanilla_macs():
    # Train-form graph of U-DiT-S (un-fused FFN): 7.15 G [dossier]; vanilla U-DiT-S (dot-product attention,
    # no RoPE, plain MLP; paper Table 10): 5.91 G.
    assert count_macs(meta_udit("U-DiT-S").train(), *latent_batch()) / 1e9 == pytest.approx(7.15, rel=0.01)
    vanilla = meta_udit("U-DiT-S", attention="dot", rope=False, ffn="basic").eval()
    assert count_macs(vanilla, *latent_batch()) / 1e9 == pytest.approx(5.91, rel=0.01)


def test_official_state_dict_layout():
    state = meta_udit("U-DiT-S").state_dict()
    assert len(state) == 1043
    expected = {
        "x_embedder.proj.weight": (96, 4, 3, 3), "y_embedder_1.embedding_table.weight": (1001, 96),
        "y_embedder_3.embedding_table.weight": (1001, 384), "t_embedder_2.mlp.2.weight": (192, 192),
        "down1_2.body.0.weight": (48, 96, 3, 3), "down2_3.body.0.weight": (96, 192, 3, 3),
        "up3_2.body.0.weight": (768, 384, 3, 3), "reduce_chan_level2.weight": (192, 384, 1, 1),
        "up2_1.body.0.weight": (384, 192, 3, 3), "reduce_chan_level1.weight": (192, 192, 1, 1),
        "output.weight": (192, 192, 3, 3), "final_layer.out_proj.weight": (8, 192, 3, 3),
        "final_layer.adaLN_modulation.1.weight": (384, 192),
        "encoder_level_1.1.attn2.logit_scale": (4, 1, 1), "latent.7.attn1.to_qkv.weight": (1152, 384),
        "latent.7.attn1.to_out.weight": (384, 384, 1, 1), "decoder_level_1.0.attn1.downsampler.layer.weight": (192, 1, 5, 5),
        "encoder_level_2.4.mlp1.project_in.0.weight": (192, 192, 1, 1),
        "encoder_level_2.4.mlp1.project_in.1.weight": (384, 192, 1, 1),
        "encoder_level_2.4.mlp2.dwconv.1.weight": (384, 1, 3, 3), "encoder_level_2.4.mlp2.dwconv.2.weight": (384, 1, 1, 1),
        "decoder_level_2.4.mlp2.project_out.1.weight": (192, 192, 1, 1),
        "decoder_level_2.4.adaLN_modulation2.1.weight": (1152, 192),
    }
    assert {k: tuple(state[k].shape) for k in expected} == expected
    # Loading validates keys and shapes; the fused kernels are not part of the state dict.
    model = meta_udit("U-DiT-S").eval()
    load_official_state_dict(model, {"ema": state})
    assert len(model.state_dict()) == 1043
    with pytest.raises(BenchError, match=r"missing key 'x_embedder\.proj\.bias'"):
        load_official_state_dict(model, {k: v for k, v in state.items() if k != "x_embedder.proj.bias"})


def test_split_merge_is_a_bijection_onto_polyphase_groups():
    x = torch.randn(2, 6, 8, 12)
    groups = split_groups(x, 2)
    assert groups.shape == (2, 4, 24, 6)
    for a in (0, 1):
        for b in (0, 1):
            assert torch.equal(groups[:, 2 * a + b], x[:, :, a::2, b::2].flatten(2).transpose(1, 2))
    assert torch.equal(merge_groups(groups, 2, 8, 12), x)


def test_downsampled_attention_costs_a_quarter_of_full_attention():
    dim, heads, side = 64, 4, 16
    n = side * side
    x = torch.zeros(1, dim, side, side, device="meta")
    macs = {}
    for s in (1, 2):
        with torch.device("meta"):
            module = DownsampledAttention(dim, heads, down_factor=s)
        macs[s] = count_macs(module, x)
    projections = n * dim * 25 + n * dim * 3 * dim + n * dim * dim  # DW5 downsampler, qkv, 1x1 out
    # q k^T and A v in each of s^2 groups of n / s^2 tokens: 2 * s^2 * (n / s^2)^2 * dim.
    assert macs[1] == projections + 2 * n * n * dim
    assert macs[2] == projections + 2 * n * n * dim // 4


def complex_rope_reference(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """RoPE-2D the official way: complex multiplication with interleaved (x, y) frequencies."""
    d = x.shape[-1]
    freqs = 1.0 / 10000 ** (torch.arange(0, d, 4)[: d // 4].float() / d)
    n = torch.arange(rows * cols)
    col, row = n % cols, n // cols
    cis = torch.stack([torch.polar(torch.ones(n.numel(), d // 4), torch.outer(col.float(), freqs)),
                       torch.polar(torch.ones(n.numel(), d // 4), torch.outer(row.float(), freqs))], dim=-1)
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], d // 2, 2))
    return torch.view_as_real(xc * cis.reshape(rows * cols, d // 2)).flatten(-2)


def test_rope2d_matches_complex_reference_and_is_relative():
    rows = cols = 4
    x = torch.randn(3, 2, rows * cols, 24)
    got = apply_rope(x, rope2d_angles(24, rows, cols))
    assert torch.allclose(got, complex_rope_reference(x, rows, cols), atol=1e-5)
    # <R(p) q, R(p') k> depends only on p - p': shift both tokens by the same offset.
    q, k = torch.randn(24), torch.randn(24)
    angles = rope2d_angles(24, 8, 8)

    def score(p: tuple[int, int], p2: tuple[int, int]) -> float:
        return (apply_rope(q, angles[p[0] * 8 + p[1]]) @ apply_rope(k, angles[p2[0] * 8 + p2[1]])).item()

    assert score((1, 2), (3, 0)) == pytest.approx(score((4, 5), (6, 3)), abs=1e-4)
    assert score((1, 2), (3, 0)) != pytest.approx(score((1, 2), (0, 3)), abs=1e-3)


def naive_attention(module: DownsampledAttention, x: torch.Tensor) -> torch.Tensor:
    """Loop over polyphase groups and heads with explicit softmax(tau * cos) (independent of the module's
    reshapes and of SDPA)."""
    b, c, h, w = x.shape
    xd = module.downsampler.layer(x) + x
    out = torch.zeros_like(x)
    d = module.head_dim
    angles = rope2d_angles(d, h // 2, w // 2)
    tau = torch.clamp(module.logit_scale, max=4.6052).exp().flatten()
    for a in (0, 1):
        for bb in (0, 1):
            tokens = xd[:, :, a::2, bb::2].flatten(2).transpose(1, 2)  # [B, N, C]
            q, k, v = module.to_qkv(tokens).split(c, dim=-1)
            merged = []
            for head in range(module.num_heads):
                sl = slice(head * d, (head + 1) * d)
                qh, kh = apply_rope(q[..., sl], angles), apply_rope(k[..., sl], angles)
                logits = tau[head] * F.normalize(qh, dim=-1) @ F.normalize(kh, dim=-1).transpose(1, 2)
                merged.append(logits.softmax(-1) @ v[..., sl])
            out[:, :, a::2, bb::2] = torch.cat(merged, -1).transpose(1, 2).reshape(b, c, h // 2, w // 2)
    return module.to_out(out)


def test_cosine_attention_matches_naive_reference():
    torch.manual_seed(0)
    module = DownsampledAttention(16, 2)
    with torch.no_grad():
        module.logit_scale.copy_(torch.tensor([1.0, 5.0]).reshape(2, 1, 1))  # one head hits the ln(100) clamp
        x = torch.randn(2, 16, 8, 8)
        assert torch.allclose(module(x), naive_attention(module, x), atol=1e-5)


def randomised_tiny_udit(**overrides) -> UDiT:
    torch.manual_seed(0)
    model = UDiT(**{"input_size": 16, "in_channels": 1, "hidden_size": 16, "num_heads": 2, "depth": (1, 1, 1, 1, 1),
                    "num_classes": 10, **overrides})
    with torch.no_grad():  # move off the zero init so every branch contributes
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def inputs():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(3, 1, 16, 16, generator=gen), torch.tensor([1, 500, 999]), torch.tensor([0, 3, 10])


def run(model: UDiT) -> torch.Tensor:
    with torch.no_grad():
        return model(*inputs(), force_drop=torch.zeros(3) if model.training else None)


def test_fused_ffn_equals_training_form():
    model = randomised_tiny_udit()
    assert torch.allclose(run(model.eval()), run(model.train()), atol=1e-5)
    ffn = model.encoder_level_1[0].mlp1
    assert ffn._fused is not None and ffn._fused[2].shape == (32, 1, 5, 5)


def test_eval_train_eval_keeps_weights_and_outputs():
    """The official code overwrites the 5x5 kernels on every eval(); ours must leave them bit-identical."""
    model = randomised_tiny_udit()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first = run(model.eval())
    model.train()
    model.eval()
    model.eval()
    assert torch.equal(run(model), first)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_fused_cache_follows_weight_updates_in_eval_mode():
    model = randomised_tiny_udit().eval()
    run(model)
    with torch.no_grad():  # an in-place update (as an optimizer or EMA step would do) while in eval mode
        model.latent[0].mlp2.dwconv[1].weight.mul_(3.0)
    updated = run(model)
    assert torch.allclose(updated, run(model.train()), atol=1e-5)
    other = randomised_tiny_udit()
    with torch.no_grad():
        other.latent[0].mlp2.dwconv[1].weight.mul_(3.0)
    reference = run(other.train())
    fresh = randomised_tiny_udit().eval()
    run(fresh)
    fresh.load_state_dict(other.state_dict())  # load while fused: the cache must be rebuilt
    assert torch.allclose(run(fresh), reference, atol=1e-5)


def test_rep_ffn_deploy_count_and_grad_path():
    ffn = RepFeedForward(8, 2.0)
    fused_params = sum(t.numel() for t in ffn.fuse())
    assert ffn.deploy_num_params() == fused_params == 16 * 8 + 16 + 16 * 25 + 16 + 8 * 16 + 8
    ffn.eval()
    x = torch.randn(1, 8, 4, 4)
    ffn(x).sum().backward()  # eval with gradients on runs the (equal) training form, so gradients flow
    assert ffn.dwconv[0].weight.grad is not None


def test_label_dropout_shared_or_independent():
    for independent in (True, False):
        model = randomised_tiny_udit(independent_label_dropout=independent, class_dropout_prob=0.5).train()
        seen: dict[int, torch.Tensor] = {}
        for level in (1, 2, 3):
            table = getattr(model, f"y_embedder_{level}").embedding_table
            table.register_forward_hook(lambda mod, args, out, level=level, seen=seen: seen.__setitem__(level, args[0].clone()))
        model._conditions(torch.zeros(64, dtype=torch.long), torch.zeros(64, dtype=torch.long), None)
        same = torch.equal(seen[1], seen[2]) and torch.equal(seen[2], seen[3])
        assert same != independent  # 64 independent fair coins agree by chance with probability 2^-64
        assert set(seen[1].tolist()) == {0, 10}


def test_tiny_model_trains_and_rejects_bad_sizes():
    model = randomised_tiny_udit()
    with torch.inference_mode():  # sampling first (builds the shared RoPE tables) must not break training
        model.eval()(torch.randn(1, 1, 24, 24), torch.tensor([3]), torch.tensor([1]))
    model(torch.randn(1, 1, 24, 24), torch.tensor([3]), torch.tensor([1])).sum().backward()
    out = model.train()(torch.randn(2, 1, 16, 16), torch.tensor([3, 4]), torch.tensor([1, 2]))
    assert out.shape == (2, 2, 16, 16)
    out.pow(2).mean().backward()
    assert model.encoder_level_1[0].attn1.logit_scale.grad is not None
    with pytest.raises(BenchError, match="divisible by 8"):
        model(torch.randn(1, 1, 12, 12), torch.tensor([3]), torch.tensor([1]))
    with pytest.raises(BenchError, match="unknown U-DiT config 'U-DiT-XL'"):
        udit("U-DiT-XL")
    assert math.isclose(model.encoder_level_1[0].attn1.logit_scale.detach().mean().item(), math.log(10), abs_tol=0.2)
