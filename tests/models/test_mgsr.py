"""MGSR (methods/mgsr): DAC-KL (reduces to forward KL when nothing is clipped; hand-computed clipped value; what
f_sub learns), the span loss and its chunker, SCRG's error position and revision, and the full objective."""
from __future__ import annotations

import math

import pytest
import torch

from baselines.llm_kd import divergences as D
from baselines.llm_kd.data import Example, collate_examples, forward_logits, sequences_batch
from baselines.llm_kd.module import DistillModule, GenerationSettings, TokenInfo
from baselines.llm_kd.objectives import lm_loss
from bench.registry import BenchError
from methods.mgsr.dac_kl import DACKL, BoundNet, clipped_kl, density_mask
from methods.mgsr.objective import MGSR
from methods.mgsr.scrg import position_divergence, revise, select_error_positions
from methods.mgsr.span import pair_count, span_loss, span_pairs, token_is_boundary

LN = math.log
P3 = torch.tensor([[0.5, 0.3, 0.2]])
Q3 = torch.tensor([[0.2, 0.5, 0.3]])


# ---------------------------------------------------------------------------------------------------------------
# DAC-KL
# ---------------------------------------------------------------------------------------------------------------
def test_dac_kl_is_forward_kl_when_nothing_is_clipped():
    kl_hand = (0.5 * LN(0.5 / 0.2) + 0.3 * LN(0.3 / 0.5) + 0.2 * LN(0.2 / 0.3))      # 0.2238047
    assert clipped_kl(P3.log(), Q3.log(), torch.ones(1, 3)).item() == pytest.approx(kl_hand, abs=1e-6)
    # the hard mask with bounds (0, 1) keeps everything
    assert density_mask(P3, torch.tensor([0.0]), torch.tensor([1.0]), None).tolist() == [[1.0, 1.0, 1.0]]
    dac = DACKL(bounds="fixed", fixed_lower=0.0, fixed_upper=1.0, mask_temperature=None)
    g = torch.Generator().manual_seed(0)
    t = torch.randn(2, 5, 50, generator=g)
    s = torch.randn(2, 5, 50, generator=g).requires_grad_()
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    loss, _ = dac(t, s, mask)
    ref = D.forward_kl(t, s, mask, exact=True)
    assert loss.item() == pytest.approx(ref.item(), abs=1e-6)
    g1, = torch.autograd.grad(loss, s)
    g2, = torch.autograd.grad(D.forward_kl(t, s, mask), s)      # DistiLLM's cross-entropy form: same gradient
    assert torch.allclose(g1, g2, atol=1e-7)


def test_dac_kl_clipped_hand_value():
    # sorted p = (0.5, 0.3, 0.2): mass centres 0.25, 0.65, 0.9. Bounds (0.3, 0.8) keep the 0.3 entry; the
    # target class (0.5) is always kept; 0.2 is clipped.
    mask = density_mask(P3, torch.tensor([0.3]), torch.tensor([0.8]), None)
    assert mask.tolist() == [[1.0, 1.0, 0.0]]
    # p^ = (0.5, 0.3) / 0.8, q^ = (0.2, 0.5) / 0.7
    hand = 0.625 * LN(0.625 / (0.2 / 0.7)) + 0.375 * LN(0.375 / (0.5 / 0.7))
    assert hand == pytest.approx(0.2475907, abs=1e-6)
    assert clipped_kl(P3.log(), Q3.log(), mask).item() == pytest.approx(0.2475907, abs=1e-6)
    dac = DACKL(bounds="fixed", fixed_lower=0.3, fixed_upper=0.8, mask_temperature=None)
    loss, stats = dac(P3.log()[None], Q3.log()[None], torch.ones(1, 1))
    assert loss.item() == pytest.approx(0.2475907, abs=1e-6)
    assert stats["kept_mass"].item() == pytest.approx(0.8, abs=1e-6)


def test_soft_mask_approaches_the_hard_mask():
    soft = density_mask(P3, torch.tensor([0.3]), torch.tensor([0.8]), 1e-3)
    assert torch.allclose(soft, torch.tensor([[1.0, 1.0, 0.0]]), atol=1e-6)


def test_bound_net_starts_near_no_clipping():
    lower, upper = BoundNet(top_k=8, hidden=4)(torch.softmax(torch.randn(3, 8), -1))
    assert torch.allclose(lower, torch.full((3,), 0.02), atol=1e-6)
    assert torch.allclose(upper, torch.full((3,), 0.98), atol=1e-6)


def test_density_objective_learns_the_high_density_region():
    """With density_weight 1 the optimum keeps exactly the entries with p > 1/V (here 0.4, 0.25, 0.15 of V = 8)."""
    torch.manual_seed(0)
    p = torch.tensor([0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.015, 0.005])
    dac = DACKL(top_k=8, hidden=16, mask_temperature=0.01, density_weight=1.0)
    opt = torch.optim.Adam(dac.subnet.parameters(), lr=0.05)
    t_logits, s_logits = p.log()[None, None], torch.zeros(1, 1, 8)
    for _ in range(300):
        loss, _ = dac(t_logits, s_logits, torch.ones(1, 1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    lower, upper = dac.subnet(p[None])
    kept = density_mask(p[None], lower, upper, None)
    assert kept.tolist() == [[1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]]


def test_dac_kl_rejects_bad_options():
    with pytest.raises(BenchError):
        DACKL(bounds="guessed")
    with pytest.raises(BenchError):
        DACKL(bounds="learned", mask_temperature=None)
    with pytest.raises(BenchError):
        DACKL(bounds="fixed", fixed_lower=0.9, fixed_upper=0.5)


# ---------------------------------------------------------------------------------------------------------------
# span loss
# ---------------------------------------------------------------------------------------------------------------
def test_chunker_boundaries():
    assert token_is_boundary(" the") and token_is_boundary(",") and token_is_boundary("\n")
    assert token_is_boundary(" ") and token_is_boundary("``")
    assert not token_is_boundary(" Return") and not token_is_boundary(" value")
    assert token_is_boundary(" value.", "sentence") and not token_is_boundary(" the", "sentence")
    # "Return the sum of the values ." -> spans [Return] [sum] [values]: no adjacent pair; "sum values" -> 1
    assert pair_count([" Return", " the", " sum", " of", " the", " values", "."]) == 0
    assert pair_count([" Return", " integer", " sum", " of", " values"]) == 2
    assert pair_count(["a", "b", "c", "d", "e"], "window:2") == 2


def test_span_pairs_and_hand_value():
    boundary = torch.tensor([True, False, False, True, False, False])     # tokens 0 (EOS) and 3 break spans
    labels = torch.tensor([[-100, 1, 2, 3, 4, 5, 0]])
    pairs = span_pairs(labels, (labels != -100).long(), boundary)
    assert pairs.tolist() == [[False, True, False, False, True, False]]
    # two in-span positions; correlation p_a * p_b vs q_a * q_b over a 3-token vocabulary
    p = torch.tensor([[[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]])
    q = torch.tensor([[[0.2, 0.5, 0.3], [0.6, 0.2, 0.2]]])
    one_pair = torch.tensor([[True]])
    # teacher (0.05, 0.03, 0.16), student (0.12, 0.10, 0.06): 0.07^2 + 0.07^2 + 0.10^2 = 0.0198
    assert span_loss(p.log(), q.log(), one_pair).item() == pytest.approx(0.0198, abs=1e-7)
    assert span_loss(p.log(), q.log(), one_pair, "l2").item() == pytest.approx(math.sqrt(0.0198), abs=1e-6)
    assert span_loss(p.log(), q.log(), torch.tensor([[False]])).item() == 0.0
    assert span_loss(p.log(), p.log(), one_pair).item() == 0.0


# ---------------------------------------------------------------------------------------------------------------
# SCRG
# ---------------------------------------------------------------------------------------------------------------
def test_error_position_is_the_most_divergent_mismatch():
    div = torch.tensor([[0.1, 0.9, 0.5, 0.3], [0.2, 0.1, 0.3, 0.4]])
    student = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    teacher = torch.tensor([[1, 2, 0, 0], [5, 6, 7, 8]])
    allowed = torch.ones(2, 4, dtype=torch.bool)
    # row 0: position 1 diverges most but the tokens agree; of the mismatches (2, 3) position 2 wins
    assert select_error_positions(div, student, teacher, allowed).tolist() == [2, -1]
    allowed[0, 2] = False
    assert select_error_positions(div, student, teacher, allowed).tolist() == [3, -1]


def test_position_divergence_matches_the_losses():
    t, s = P3.log(), Q3.log()
    one = torch.ones(1)
    fkl = D.forward_kl(t, s, one, exact=True).item()
    assert position_divergence(t, s, "fkl").item() == pytest.approx(fkl, abs=1e-6)
    assert position_divergence(t, s, "rkl").item() == pytest.approx(D.reverse_kl(t, s, torch.ones(1)).item(), abs=1e-6)
    assert position_divergence(t, s, "tvd").item() == pytest.approx(0.3, abs=1e-6)
    assert position_divergence(t, s, "jsd").item() == pytest.approx(D.generalized_jsd(t, s, one, 0.5).item(), abs=1e-6)


@pytest.fixture(scope="module")
def tiny():
    from baselines.llm_kd.models import build_gpt2, gpt2_config

    teacher = build_gpt2(gpt2_config(40, 64, n_layer=2, n_embd=32, n_head=2, eos_id=0, dropout=0.0), seed=1).eval()
    student = build_gpt2(gpt2_config(40, 64, n_layer=1, n_embd=16, n_head=2, eos_id=0, dropout=0.0), seed=2).eval()
    return teacher, student


def test_scrg_corrects_the_argmax_divergence_mismatch_and_regenerates(tiny):
    teacher, student = tiny
    prompts = [[5, 6, 7], [8, 9]]
    responses = [[11, 12, 13, 14, 15, 16], [17, 18, 19, 20]]
    batch = sequences_batch(prompts, responses, 0)
    with torch.no_grad():
        t, s = forward_logits(teacher, batch), forward_logits(student, batch)
    torch.manual_seed(0)
    out = revise(student, teacher, prompts, responses, [8, 8], eos_id=0, pad_id=0, teacher_token="argmax")
    for row, (p, r) in enumerate(zip(prompts, responses)):
        # independent recomputation of the error position: per-position KL(p_t || p_s) over the response
        pos = [len(p) - 1 + k for k in range(len(r))]
        kl = [float((t[row, i].softmax(-1) * (t[row, i].log_softmax(-1) - s[row, i].log_softmax(-1))).sum())
              for i in pos]
        argmax_t = [int(t[row, i].argmax()) for i in pos]
        mismatched = [k for k in range(len(r)) if argmax_t[k] != r[k]]
        j = max(mismatched, key=lambda k: kl[k])
        assert out.corrected[row] == [j]
        assert out.responses[row][:j] == r[:j]
        assert out.responses[row][j] == argmax_t[j]
        assert len(out.responses[row]) <= 8
    same = revise(student, teacher, prompts, responses, [8, 8], eos_id=0, pad_id=0, corrections=0)
    assert same.responses == responses


def test_scrg_rejects_bad_options(tiny):
    teacher, student = tiny
    with pytest.raises(BenchError):
        revise(student, teacher, [[1]], [[2]], [4], 0, 0, teacher_token="beam")
    with pytest.raises(BenchError):
        revise(student, teacher, [[1]], [[2]], [4], 0, 0, divergence="cosine")


# ---------------------------------------------------------------------------------------------------------------
# the objective
# ---------------------------------------------------------------------------------------------------------------
def _module(objective, tiny):
    teacher, student = tiny
    return DistillModule(student, objective, teacher, TokenInfo(0, 0), GenerationSettings(4, 32), 10)


def _batch():
    return collate_examples([Example((5, 6, 7), (8, 9, 10, 0), 0), Example((11, 12), (13, 14, 0), 1)], pad_id=0)


def test_mgsr_terms_on_ground_truth(tiny):
    teacher, student = tiny
    boundary = torch.zeros(40, dtype=torch.bool)
    boundary[0] = True
    batch = _batch()
    with torch.no_grad():
        t = forward_logits(teacher, batch)
        s = forward_logits(student, batch)
    mask = (batch["labels"] != -100).long()
    # never student data, plain forward KL as token loss, no span term: SFT + exact forward KL
    obj = MGSR(boundary, student_ratio=0.0, token_loss="fkl", span_weight=0.0)
    loss, extras = _module(obj, tiny)(batch)
    ref = lm_loss(s, batch) + D.forward_kl(t, s, mask, exact=True)
    assert loss.item() == pytest.approx(ref.item(), abs=1e-6)
    assert extras["student_data"] == 0.0
    # the span term: in-span pairs (8,9), (9,10) in row 0 and (13,14) in row 1
    obj = MGSR(boundary, student_ratio=0.0, sft_weight=0.0, dac_weight=0.0, span_weight=1.0)
    loss, _ = _module(obj, tiny)(batch)
    pairs = span_pairs(batch["labels"], mask, boundary)
    assert int(pairs.sum()) == 3
    assert loss.item() == pytest.approx(span_loss(t, s, pairs).item(), abs=1e-7)


def test_mgsr_on_policy_trains_student_and_subnet(tiny):
    boundary = torch.zeros(40, dtype=torch.bool)
    boundary[0] = True
    obj = MGSR(boundary, generation="on-policy", dac={"top_k": 16, "hidden": 8})
    module = _module(obj, tiny)
    torch.manual_seed(1)
    loss, extras = module(_batch())
    assert extras["student_data"] == 1.0 and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in obj.dac.subnet.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.student.parameters())
    module.student.zero_grad()


def test_mgsr_rejects_bad_options():
    boundary = torch.zeros(4, dtype=torch.bool)
    with pytest.raises(BenchError):
        MGSR(boundary, generation="sometimes")
    with pytest.raises(BenchError):
        MGSR(boundary, chunker="window:1")
    with pytest.raises(BenchError):
        MGSR(boundary, token_loss="tvd")


def test_profile_macs_match_the_hand_count():
    from methods.mgsr.recipe import profile

    # per token: 12 d^2 per block (attention projections 4 d^2 + MLP 8 d^2) + the LM head V d; attention
    # scores and weighted values: 2 T^2 d per block
    def macs(tokens, vocab, d, layers):
        return tokens * (layers * 12 * d * d + vocab * d) + layers * 2 * tokens * tokens * d

    smoke = {r["entry"]: r for r in profile("smoke", "cpu", repeats=1)}
    assert smoke["teacher"]["gmacs"] * 1e9 == pytest.approx(macs(160, 1024, 64, 2), rel=1e-9)
    assert smoke["student"]["gmacs"] * 1e9 == pytest.approx(macs(160, 1024, 48, 2), rel=1e-9)
    paper = {r["entry"]: r for r in profile("paper", "cpu")}       # meta device: no weights, no latency
    assert paper["gpt2-student"]["gmacs"] * 1e9 == pytest.approx(macs(512, 50257, 768, 12), rel=1e-9)
    assert paper["gpt2-teacher"]["params_m"] == pytest.approx(1557.6112)
    assert paper["gpt2-teacher"]["latency_ms"] is None
    # OPT's blocks have GPT-2's shape (4 d^2 attention, a 4 d MLP): the same count for OPT-1.3B
    assert paper["opt-student"]["gmacs"] * 1e9 == pytest.approx(macs(512, 50272, 2048, 24), rel=1e-9)
    assert paper["opt-student"]["params_m"] == pytest.approx(1315.75808)
