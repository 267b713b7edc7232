"""LLM-distillation baselines (baselines/llm_kd): losses against hand-computed values on a 3-token vocabulary,
MiniLLM's policy gradient against the exact gradient, DistiLLM's schedule, the sampler, the data pipeline,
the GPT-2 sizes, the instruct-docs set and the lm-eval task end to end on a tiny model."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from itertools import product
from pathlib import Path

import pytest
import torch

from baselines.llm_kd import divergences as D
from baselines.llm_kd.data import Example, collate_examples, encode_records, sequences_batch
from baselines.llm_kd.distillm import AdaptiveOffPolicy, DistiLLM, choose_source
from baselines.llm_kd.minillm import future_reward, surrogate
from baselines.llm_kd.module import DistillModule, GenerationSettings, TokenInfo
from baselines.llm_kd.objectives import GKD, KD, SFT, ImitKD, lm_loss
from baselines.llm_kd.sampling import sample
from bench.registry import BenchError

REPO = Path(__file__).resolve().parents[2]

# Position 1: teacher p = (0.5, 0.3, 0.2), student q = (0.2, 0.5, 0.3) -> the hand values below.
# Position 2 (masked out unless stated): p = (0.1, 0.1, 0.8), q = (0.6, 0.2, 0.2).
P = torch.tensor([[[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]]).log()
Q = torch.tensor([[[0.2, 0.5, 0.3], [0.6, 0.2, 0.2]]]).log()
FIRST = torch.tensor([[1, 0]])
LN = math.log

# -sum p ln q = 0.5 ln 5 + 0.3 ln 2 + 0.2 ln(10/3)
CE_1 = 0.5 * LN(5) + 0.3 * LN(2) + 0.2 * LN(10 / 3)                      # 1.2534577
KL_1 = CE_1 + (0.5 * LN(0.5) + 0.3 * LN(0.3) + 0.2 * LN(0.2))            # 0.2238047
RKL_1 = 0.2 * LN(0.2 / 0.5) + 0.5 * LN(0.5 / 0.3) + 0.3 * LN(0.3 / 0.2)  # 0.1937942


def test_forward_kl_cross_entropy_form_and_exact_kl():
    assert D.forward_kl(P, Q, FIRST).item() == pytest.approx(1.2534577, abs=1e-6)
    assert D.forward_kl(P, Q, FIRST).item() == pytest.approx(CE_1, abs=1e-6)
    assert D.forward_kl(P, Q, FIRST, exact=True).item() == pytest.approx(0.2238047, abs=1e-6)
    assert KL_1 == pytest.approx(0.2238047, abs=1e-6)
    # two positions: the token mean; position 2 by hand: -(0.1 ln .6 + 0.1 ln .2 + 0.8 ln .2)
    ce_2 = -(0.1 * LN(0.6) + 0.1 * LN(0.2) + 0.8 * LN(0.2))
    assert D.forward_kl(P, Q, torch.ones(1, 2)).item() == pytest.approx((CE_1 + ce_2) / 2, abs=1e-6)


def test_reverse_symmetric_jsd_tvd_hand_values():
    assert D.reverse_kl(P, Q, FIRST).item() == pytest.approx(0.1937942, abs=1e-6)
    assert RKL_1 == pytest.approx(0.1937942, abs=1e-6)
    # DistiLLM's symmetric KL: 0.1 * cross entropy + 0.9 * reverse KL
    assert D.symmetric_kl(P, Q, FIRST).item() == pytest.approx(0.1 * CE_1 + 0.9 * RKL_1, abs=1e-6)
    # JSD(0.9): m = 0.1 p + 0.9 q = (0.23, 0.48, 0.29); 0.9 KL(q||m) + 0.1 KL(p||m)
    m = (0.23, 0.48, 0.29)
    jsd = 0.9 * sum(b * LN(b / c) for b, c in zip((0.2, 0.5, 0.3), m)) + \
        0.1 * sum(a * LN(a / c) for a, c in zip((0.5, 0.3, 0.2), m))
    assert jsd == pytest.approx(0.0196612, abs=1e-6)
    assert D.generalized_jsd(P, Q, FIRST, lam=0.9).item() == pytest.approx(0.0196612, abs=1e-6)
    # lam = 0.5 is the symmetric Jensen-Shannon divergence
    assert D.generalized_jsd(P, Q, FIRST, lam=0.5).item() == pytest.approx(
        D.generalized_jsd(Q, P, FIRST, lam=0.5).item(), abs=1e-7)
    assert D.total_variation(P, Q, FIRST).item() == pytest.approx(0.5 * (0.3 + 0.2 + 0.1), abs=1e-7)
    with pytest.raises(ValueError):
        D.generalized_jsd(P, Q, FIRST, lam=1.0)


def test_skew_kls_hand_values():
    # SFKL(0.1): m = 0.1 p + 0.9 q = (0.23, 0.48, 0.29); -(0.5 ln .23 + 0.3 ln .48 + 0.2 ln .29)
    sfkl = -(0.5 * LN(0.23) + 0.3 * LN(0.48) + 0.2 * LN(0.29))
    assert sfkl == pytest.approx(1.2026036, abs=1e-6)
    assert D.skew_forward_kl(P, Q, FIRST, alpha=0.1).item() == pytest.approx(1.2026036, abs=1e-6)
    # SRKL(0.1): m' = 0.9 p + 0.1 q = (0.47, 0.32, 0.21); sum q ln(q / m')
    srkl = 0.2 * LN(0.2 / 0.47) + 0.5 * LN(0.5 / 0.32) + 0.3 * LN(0.3 / 0.21)
    assert srkl == pytest.approx(0.1592630, abs=1e-6)
    assert D.skew_reverse_kl(P, Q, FIRST, alpha=0.1).item() == pytest.approx(0.1592630, abs=1e-6)
    # alpha 0 gives back the unskewed losses
    assert D.skew_forward_kl(P, Q, FIRST, alpha=0.0).item() == pytest.approx(CE_1, abs=1e-6)
    assert D.skew_reverse_kl(P, Q, FIRST, alpha=0.0).item() == pytest.approx(RKL_1, abs=1e-6)


def test_lm_loss_hand_value_and_empty_mask():
    # labels: position 0 -> token 1 (q = 0.5), position 1 ignored
    batch = {"labels": torch.tensor([[1, -100]])}
    assert lm_loss(Q, batch).item() == pytest.approx(LN(2), abs=1e-6)
    assert D.forward_kl(P, Q, torch.zeros(1, 2)).item() == 0.0


# ---------------------------------------------------------------------------------------------------------------
# MiniLLM
# ---------------------------------------------------------------------------------------------------------------
def test_minillm_surrogate_hand_value():
    # sequence (0, 2); position 1 (q1, p1) as above, position 2 (q2, p2) as above
    tokens = torch.tensor([[0, 2]])
    loss, stats = surrogate(Q, P, tokens, torch.ones(1, 2), length_norm=False, reward_scale=1.0)
    kl_q2_p2 = 0.6 * LN(6) + 0.2 * LN(2) + 0.2 * LN(0.25)
    r2 = LN(0.8 / 0.2)                                 # log p - log q of token 2 at position 2
    term1 = RKL_1 - r2 * LN(0.2)                       # single-step KL - R_2 * log q(y_1)
    term2 = kl_q2_p2                                   # no future reward after the last token
    assert loss.item() == pytest.approx((term1 + term2) / 2, abs=1e-5)
    assert loss.item() == pytest.approx(1.6806891, abs=1e-5)
    assert stats["reward"].item() == pytest.approx((LN(0.5 / 0.2) + r2) / 2, abs=1e-6)


def test_future_reward_length_normalisation():
    r = torch.tensor([[1.0, 2.0, 4.0, 8.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])   # the 4th token is padding
    assert future_reward(r, mask, False).tolist() == [[6.0, 4.0, 0.0, 0.0]]
    assert future_reward(r, mask, True).tolist() == [[3.0, 4.0, 0.0, 0.0]]


def test_minillm_expected_gradient_is_the_exact_reverse_kl_gradient():
    """Enumerate every 2-token sequence of a tabular 3-token policy: sum_y q(y) grad surrogate(y) must equal the
    gradient of the sequence-level KL(q || p) computed exactly."""
    g = torch.Generator().manual_seed(0)
    theta0 = torch.randn(3, generator=g).requires_grad_()        # first-token logits
    theta1 = torch.randn(3, 3, generator=g).requires_grad_()     # second-token logits given the first
    t0, t1 = torch.randn(3, generator=g), torch.randn(3, 3, generator=g)

    def seq_logprob(l0, l1, a, b):
        return torch.log_softmax(l0, -1)[a] + torch.log_softmax(l1[a], -1)[b]

    exact = sum(seq_logprob(theta0, theta1, a, b).exp() * (seq_logprob(theta0, theta1, a, b)
                                                            - seq_logprob(t0, t1, a, b))
                for a, b in product(range(3), repeat=2))
    g_exact = torch.autograd.grad(exact, (theta0, theta1))

    expected = 0.0
    for a, b in product(range(3), repeat=2):
        weight = seq_logprob(theta0, theta1, a, b).exp().detach()
        s_logits = torch.stack([theta0, theta1[a]])[None]
        te_logits = torch.stack([t0, t1[a]])[None]
        loss, _ = surrogate(s_logits, te_logits, torch.tensor([[a, b]]), torch.ones(1, 2), length_norm=False,
                            reward_scale=1.0, reduction="sequence_sum")
        expected = expected + weight * loss
    g_est = torch.autograd.grad(expected, (theta0, theta1))
    for est, ref in zip(g_est, g_exact):
        assert torch.allclose(est, ref, atol=1e-5), (est, ref)


# ---------------------------------------------------------------------------------------------------------------
# DistiLLM
# ---------------------------------------------------------------------------------------------------------------
def test_distillm_source_rule():
    assert choose_source(0.05, 0.0, 0.0, 0, 10) == "ground-truth"        # threshold 0: never student data
    assert choose_source(0.9, 1.0, 0.5, 3, 10) == "fresh"                # buffer not full yet
    # threshold 0.5 at half of training: sampling threshold 0.25
    assert choose_source(0.20, 0.5, 0.5, 10, 10) == "fresh"
    assert choose_source(0.30, 0.5, 0.5, 10, 10) == "replay"
    assert choose_source(0.30, 0.5, 0.5, 9, 10) == "fresh"
    assert choose_source(0.60, 0.5, 0.5, 10, 10) == "ground-truth"
    assert choose_source(0.20, 0.5, 0.2, 10, 10, "increasing") == "replay"   # sampling threshold 0.5 * 0.2
    assert choose_source(0.30, 0.5, 0.9, 10, 10, "increasing") == "fresh"    # 0.5 * 0.9 = 0.45
    assert choose_source(0.26, 0.5, 0.0, 10, 10, "constant") == "replay"     # 0.25
    with pytest.raises(BenchError):
        choose_source(0.1, 0.5, 0.1, 1, 2, "sometimes")


def test_distillm_threshold_rule_and_buffer_state():
    sched = AdaptiveOffPolicy(capacity=2, width=6, pad_id=0, init_threshold=0.0, loss_eps=0.1)
    sched.on_validation(2.0)                  # the reference (loss before training)
    sched.on_validation(2.05)                 # worse, but by less than eps
    assert float(sched.threshold) == 0.0
    sched.on_validation(2.10)                 # worse by eps: +0.1, reference moves to 2.10
    assert float(sched.threshold) == pytest.approx(0.1) and float(sched.reference_loss) == pytest.approx(2.10)
    sched.on_validation(2.15)
    assert float(sched.threshold) == pytest.approx(0.1)
    for _ in range(12):
        sched.on_validation(float(sched.reference_loss) + 1)
    assert float(sched.threshold) == 1.0      # capped
    buf = sched.buffer
    buf.push([[1, 2]], [[3]])
    buf.push([[4]], [[5, 6]])
    buf.push([[7, 7]], [[8, 9, 9, 9, 9]])     # FIFO: evicts the first row; cut to width 6
    assert len(buf) == 2
    state = {k: v.clone() for k, v in sched.state_dict().items()}
    other = AdaptiveOffPolicy(capacity=2, width=6, pad_id=0)
    other.load_state_dict(state)              # checkpoints carry the buffer and the thresholds
    prompts, responses = other.buffer.sample(2)
    assert sorted(zip(map(tuple, prompts), map(tuple, responses))) == [((4,), (5, 6)), ((7, 7), (8, 9, 9, 9))]
    assert float(other.threshold) == 1.0


# ---------------------------------------------------------------------------------------------------------------
# tiny models: sampler, data, objectives
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    from baselines.llm_kd.models import build_gpt2, gpt2_config

    teacher = build_gpt2(gpt2_config(40, 64, n_layer=2, n_embd=32, n_head=2, eos_id=0, dropout=0.0), seed=1).eval()
    student = build_gpt2(gpt2_config(40, 64, n_layer=1, n_embd=16, n_head=2, eos_id=0, dropout=0.0), seed=2).eval()
    return teacher, student


def _greedy_reference(model, prompt, steps):
    ids = list(prompt)
    out = []
    with torch.no_grad():
        for _ in range(steps):
            nxt = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
            out.append(nxt)
            ids.append(nxt)
            if nxt == 0:
                break
    return out


def test_sampler_left_padding_matches_unbatched_greedy(tiny):
    teacher, _ = tiny
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15]]
    out = sample(teacher, prompts, [6, 9, 4], eos_id=0, pad_id=0, greedy=True)
    for prompt, budget, got in zip(prompts, [6, 9, 4], out.responses):
        assert got == _greedy_reference(teacher, prompt, budget)
        assert len(got) <= budget


def test_sampler_mixture_and_logprobs(tiny):
    teacher, student = tiny
    prompts = [[5, 6, 7], [8, 9]]
    mixed = sample(student, prompts, 5, eos_id=0, pad_id=0, greedy=True, mix_model=teacher, mix_alpha=1.0)
    assert mixed.responses == [_greedy_reference(teacher, p, 5) for p in prompts]
    torch.manual_seed(3)
    out = sample(student, prompts, 4, eos_id=0, pad_id=0, mix_model=teacher, mix_alpha=0.3, return_logprobs=True)
    for prompt, resp, logps in zip(prompts, out.responses, out.sampler_logprobs):
        ids = torch.tensor([prompt + resp])
        with torch.no_grad():
            q = torch.softmax(student(input_ids=ids).logits[0], -1)
            p = torch.softmax(teacher(input_ids=ids).logits[0], -1)
        for k, tok in enumerate(resp):
            pos = len(prompt) - 1 + k
            assert logps[k] == pytest.approx(math.log(0.7 * q[pos, tok] + 0.3 * p[pos, tok]), abs=1e-5)


def test_sequences_batch_alignment():
    batch = sequences_batch([[1, 2, 3], [4]], [[5, 0], [6, 7, 0]], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 5, 0], [4, 6, 7, 0, 0]]
    assert batch["labels"].tolist() == [[-100, -100, 5, 0, -100], [6, 7, 0, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]


def test_encode_records_drops_long_prompts_and_appends_eos():
    from baselines.llm_kd.models import train_tokenizer

    recs = [{"instruction": "Say hi.", "context": "", "response": "hi"},
            {"instruction": "word " * 200, "context": "", "response": "long"},
            {"instruction": "Sum.", "context": "1 2", "response": "3"}]
    from baselines.llm_kd.data import prompt_text

    tok = train_tokenizer([prompt_text(r) + r["response"] for r in recs] * 3, vocab_size=400)
    examples = encode_records(recs, tok, max_prompt_tokens=100, max_total_tokens=120)
    assert [e.index for e in examples] == [0, 2]                  # the 200-word prompt is dropped
    assert all(e.response[-1] == tok.eos_token_id for e in examples)
    assert tok.decode(examples[0].response, skip_special_tokens=True) == "hi"
    assert "### Input:\n1 2" in tok.decode(examples[1].prompt)


def _module(objective, tiny, steps=10):
    teacher, student = tiny
    return DistillModule(student, objective, teacher, TokenInfo(0, 0), GenerationSettings(4, 32), steps)


def _gt_batch():
    return collate_examples([Example((5, 6, 7), (8, 9, 0), 0), Example((10, 11), (12, 0), 1)], pad_id=0)


def test_sft_matches_transformers_own_loss(tiny):
    _, student = tiny
    batch = _gt_batch()
    loss, _ = _module(SFT(), tiny)(batch)
    hf_labels = batch["input_ids"].clone()
    hf_labels[0, :3] = -100
    hf_labels[1, :2] = -100
    hf_labels[1, 4:] = -100          # padding
    ref = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=hf_labels).loss
    assert loss.item() == pytest.approx(ref.item(), abs=1e-6)


def test_kd_gkd_distillm_on_ground_truth(tiny):
    teacher, student = tiny
    batch = _gt_batch()
    with torch.no_grad():
        t = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        s = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    mask = (batch["labels"] != -100).long()
    assert _module(KD(), tiny)(batch)[0].item() == pytest.approx(D.forward_kl(t, s, mask).item(), abs=1e-6)
    half = 0.5 * lm_loss(s, batch) + 0.5 * D.forward_kl(t, s, mask)
    assert _module(KD(kd_ratio=0.5), tiny)(batch)[0].item() == pytest.approx(half.item(), abs=1e-6)
    gkd_gt = _module(GKD(student_ratio=0.0), tiny)(batch)[0]          # never on-policy: JSD(0.9) on ground truth
    assert gkd_gt.item() == pytest.approx(D.generalized_jsd(t, s, mask, 0.9).item(), abs=1e-6)
    dl = _module(DistiLLM(capacity=4, width=32), tiny)(batch)[0]       # threshold 0: ground truth, SFKL(0.1)
    assert dl.item() == pytest.approx(D.skew_forward_kl(t, s, mask, 0.1).item(), abs=1e-6)


def test_on_policy_objectives_are_seeded_and_finite(tiny):
    batch = _gt_batch()
    from baselines.llm_kd.minillm import MiniLLM

    for make in (ImitKD, MiniLLM):
        values = []
        for _ in range(2):
            torch.manual_seed(7)
            loss, extras = _module(make(), tiny)(batch)
            assert torch.isfinite(loss)
            loss.backward()
            values.append(loss.item())
        assert values[0] == values[1]


# ---------------------------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------------------------
def _gpt2_formula(vocab, positions, d, layers):
    # token + position embeddings, per block 2 LayerNorms (4d) + attention (4d^2 + 4d) + MLP (8d^2 + 5d),
    # final LayerNorm (2d); the LM head is tied to the token embedding
    return vocab * d + positions * d + layers * (12 * d * d + 13 * d) + 2 * d


def test_gpt2_parameter_counts_match_the_released_sizes():
    from baselines.llm_kd.models import PAPER_PAIRS, count_gpt2_params

    assert count_gpt2_params("gpt2") == _gpt2_formula(50257, 1024, 768, 12) == 124_439_808
    assert count_gpt2_params("gpt2-xl") == _gpt2_formula(50257, 1024, 1600, 48) == 1_557_611_200
    assert PAPER_PAIRS["gpt2"].student_params == 124_439_808 and PAPER_PAIRS["gpt2"].teacher_params == 1_557_611_200
    with pytest.raises(BenchError):
        count_gpt2_params("gpt2-huge")


def test_model_folder_errors_are_one_line(tmp_path):
    from baselines.llm_kd.models import load_causal_lm, model_folder

    with pytest.raises(BenchError, match="--data-root"):
        model_folder(None, "gpt2")
    with pytest.raises(BenchError, match="models/gpt2"):
        model_folder(tmp_path, "gpt2")
    with pytest.raises(BenchError, match="config.json"):
        load_causal_lm(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# instruct-docs
# ---------------------------------------------------------------------------------------------------------------
def test_first_sentence_rules():
    from bench.data.instructions_docs import first_sentence

    assert first_sentence("Return the sum of x.\n\nMore text.") == "Return the sum of x."
    assert first_sentence("log(x, [base=math.e])\nReturn the logarithm of x to the given base.\n\nIf ...") == \
        "Return the logarithm of x to the given base."
    assert first_sentence("Split on whitespace, e.g. tabs. Then more.") == "Split on whitespace, e.g. tabs."
    assert first_sentence("Too short.") is None                  # fewer than 3 words
    assert first_sentence("    ") is None


def test_instruct_docs_splits_are_held_out_by_module():
    from bench.data.instructions_docs import SPLIT_SIZES, instruct_docs, split_modules

    train, valid, test = (instruct_docs(s) for s in ("train", "valid", "test"))
    assert len(valid) == SPLIT_SIZES["valid"] == 64 and len(test) == SPLIT_SIZES["test"] == 96
    assert len(train) > 1500
    mods = [set(split_modules(s)) for s in ("train", "valid", "test")]
    assert not (mods[0] & mods[1]) and not (mods[0] & mods[2]) and not (mods[1] & mods[2])
    assert any(r["context"] for r in train) and any(not r["context"] for r in train)   # both templates
    assert all(" at 0x" not in r["context"] for r in train)
    with pytest.raises(BenchError):
        instruct_docs("dev")


def test_instruct_docs_is_deterministic_across_processes():
    code = "from bench.data.instructions_docs import fingerprint; print(fingerprint())"
    prints = {subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout.strip() for seed in (1, 2)}
    assert len(prints) == 1 and next(iter(prints)).startswith("sha256:")


# ---------------------------------------------------------------------------------------------------------------
# evaluation through lm-eval
# ---------------------------------------------------------------------------------------------------------------
def test_task_yaml_carries_the_papers_protocol(tmp_path):
    import yaml

    from baselines.llm_kd.evaluation import EvalProtocol, write_task

    path = write_task(tmp_path, "t", [{"id": 0, "prompt": "Q", "references": ["a", "b"]}], EvalProtocol())
    text = path.read_text()
    assert "!function utils.load_docs" in text and "!function utils.process_results" in text
    config = yaml.safe_load(text.replace("!function", ""))
    assert config["generation_kwargs"] == {"until": [], "do_sample": True, "temperature": 1.0, "top_p": 1.0,
                                           "top_k": 0, "max_gen_toks": 256, "max_length": 512}
    assert config["output_type"] == "generate_until"


def test_lm_eval_task_end_to_end_on_a_tiny_model(tmp_path):
    from rouge_score import rouge_scorer

    from baselines.llm_kd.evaluation import EvalProtocol, evaluate_seed, load_hflm, task_rows, write_task
    from baselines.llm_kd.models import build_gpt2, gpt2_config, save_hf_folder, train_tokenizer

    records = [{"instruction": f"Describe item {i}.", "context": "" if i % 2 else "some input",
                "response": f"Item {i} is a small thing that returns a value."} for i in range(6)]
    records.append({"instruction": "very long " * 100, "context": "", "response": "x"})
    from baselines.llm_kd.data import prompt_text

    tok = train_tokenizer([prompt_text(r) + r["response"] for r in records] * 2, vocab_size=400)
    model = build_gpt2(gpt2_config(len(tok), 96, n_layer=1, n_embd=16, n_head=2, eos_id=tok.eos_token_id,
                                   dropout=0.0), seed=0)
    folder = save_hf_folder(model, tok, tmp_path / "model")
    protocol = EvalProtocol(max_prompt_tokens=64, max_total_tokens=96, seeds=(10,), batch_size=4)
    rows, dropped = task_rows(records, tok, protocol.max_prompt_tokens)
    assert dropped == 1 and len(rows) == 6
    write_task(tmp_path / "task", "tiny_task", rows, protocol)
    hflm = load_hflm(folder, protocol)
    a = evaluate_seed(hflm, tmp_path / "task", "tiny_task", 10, protocol)
    b = evaluate_seed(hflm, tmp_path / "task", "tiny_task", 10, protocol)
    c = evaluate_seed(hflm, tmp_path / "task", "tiny_task", 20, protocol)
    assert a["predictions"] == b["predictions"] and a["predictions"] != c["predictions"]
    assert len(a["protocol"]["task_hash"]) == 64 and a["n"] == 6
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    expected = [100 * scorer.score(rows[d]["references"][0], p)["rougeL"].fmeasure
                for d, p in zip(a["doc_ids"], a["predictions"])]
    assert a["per_item"] == pytest.approx(expected, abs=1e-9)
    assert a["value"] == pytest.approx(sum(expected) / len(expected), abs=1e-9)
