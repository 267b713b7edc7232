"""The lm-eval path end to end on a tiny randomly initialised GPT-2 saved to a temporary folder (fully offline)."""
from __future__ import annotations

import pytest

from bench.metrics import llm

ROWS = [{"prompt": f"Q: what is {a} plus {b}?\nA:", "answer": str(a + b)} for a, b in [(1, 2), (3, 4), (5, 6)]]


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-gpt2")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    texts = [r["prompt"] + " " + r["answer"] for r in ROWS] * 5
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                     unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(hf_tok), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=hf_tok.eos_token_id, eos_token_id=hf_tok.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(folder)
    hf_tok.save_pretrained(folder)
    return folder


def test_random_gpt2_runs_through_lm_eval_offline(tiny_gpt2, tmp_path):
    llm.write_generation_task(tmp_path, "toy_sum", ROWS, prompt_template="{{prompt}}", until=["\n"], max_gen_toks=4)
    results = llm.run_lm_eval(tmp_path, "toy_sum", tiny_gpt2, batch_size=4)
    rouge = results["rouge_l@rouge-score"]
    assert rouge.n == 3 and len(rouge.extra["predictions"]) == 3
    assert all(isinstance(p, str) and "\n" not in p for p in rouge.extra["predictions"])
    assert all(0.0 <= v <= 100.0 for v in rouge.per_item)
    # the per-prompt values are our ROUGE-L of the model's own (greedy) outputs
    expected = [llm.rouge_l_one(p, r["answer"]) for p, r in zip(rouge.extra["predictions"], ROWS)]
    assert rouge.per_item == pytest.approx(expected)
    assert rouge.protocol["model"].startswith("HFLM(") and rouge.protocol["generation_kwargs"]["do_sample"] is False
