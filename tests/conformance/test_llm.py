"""ROUGE-L on hand-computed pairs, and a local task run end to end through lm-eval with an oracle LM."""
from __future__ import annotations

import json

import pytest

from bench.metrics import llm
from bench.registry import BenchError


def test_rouge_l_by_hand():
    # LCS("the cat sat on the mat", "the cat is on the mat") = the cat on the mat (5 of 6 tokens each side)
    assert llm.rouge_l_one("the cat sat on the mat", "the cat is on the mat") == pytest.approx(100 * 5 / 6)
    # P = 2/3, R = 2/4 -> F = 2PR/(P+R) = 4/7
    assert llm.rouge_l_one("a b c", "a x c y") == pytest.approx(100 * 4 / 7)
    # stemming (Porter): "running dogs" ~ "run dog"; tokens are lower-cased, punctuation dropped
    assert llm.rouge_l_one("Running dogs!", "run dog") == pytest.approx(100.0)
    assert llm.rouge_l_one("", "anything") == 0.0


def test_rouge_l_takes_the_max_over_references_and_averages():
    result = llm.rouge_l(["the cat sat", "blue"], [["a dog sat", "the cat sat down"], "red"])
    # pred 1: vs "a dog sat" LCS 1 (F 1/3); vs "the cat sat down" LCS 3, P 1, R 3/4 -> F 6/7
    assert result.per_item == pytest.approx([100 * 6 / 7, 0.0])
    assert result.value == pytest.approx(100 * 3 / 7)
    assert result.name == "rouge_l@rouge-score" and "max over references" in result.protocol["references"]
    with pytest.raises(BenchError, match="2 predicted texts but 1"):
        llm.rouge_l(["a", "b"], ["a"])


def test_exact_match():
    result = llm.exact_match([" 27 ", "Paris", "x"], ["27", ["paris", "Paris"], "y"])
    assert result.per_item == [1.0, 1.0, 0.0]


ROWS = [
    {"question": "What is 13 plus 14?", "answer": "27"},
    {"question": "Capital of France?", "answer": ["Paris", "paris city"]},
    {"question": "Reverse the word abc", "answer": "cba"},
    {"question": "Say hello", "answer": "hello there friend"},
]
# what the oracle "generates"; text after the stop sequence must be cut by the model (lm-eval contract)
ANSWERS = {"What is 13 plus 14?": " 27\nQ: junk", "Capital of France?": " the paris city",
           "Reverse the word abc": " abc", "Say hello": " hello friend"}


def test_task_files_carry_the_generation_settings(tmp_path):
    import yaml

    path = llm.write_generation_task(tmp_path, "t", ROWS[:1], do_sample=True, temperature=1.0, until=(),
                                     extra_generation_kwargs={"top_p": 1.0, "top_k": 0})
    text = path.read_text()
    assert "!function utils.load_docs" in text and "!function utils.process_results" in text
    config = yaml.safe_load(text.replace("!function ", ""))
    assert config["generation_kwargs"] == {"until": [], "max_gen_toks": 64, "do_sample": True, "temperature": 1.0,
                                           "top_p": 1.0, "top_k": 0}
    with pytest.raises(BenchError, match="lacks the reference field"):
        llm.write_generation_task(tmp_path, "u", [{"question": "q"}])


def test_lm_eval_oracle_gives_the_expected_numbers(tmp_path):
    from lm_eval.api.model import LM

    class Oracle(LM):
        def generate_until(self, requests):
            out = []
            for request in requests:
                context, kwargs = request.args
                text = ANSWERS[context.split("Q: ")[-1].split("\nA:")[0]]
                for stop in kwargs.get("until", []):
                    text = text.split(stop)[0]
                out.append(text)
            return out

        def loglikelihood(self, requests):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError

    yaml_path = llm.write_generation_task(tmp_path / "tasks", "toy_qa", ROWS, prompt_template="Q: {{question}}\nA:",
                                          until=["\n"], max_gen_toks=8)
    assert yaml_path.exists() and (tmp_path / "tasks" / "utils.py").exists()
    docs = [json.loads(line) for line in (tmp_path / "tasks" / "toy_qa.jsonl").read_text().splitlines()]
    assert docs[1]["references"] == ["Paris", "paris city"]

    results = llm.run_lm_eval(tmp_path / "tasks", "toy_qa", Oracle(), seed=7)
    rouge, em = results["rouge_l@rouge-score"], results["exact_match"]
    # by hand: 27 vs 27 -> 100; "the paris city" vs "paris city": LCS 2, P 2/3, R 1 -> 80 (vs "Paris": 50);
    # "abc" vs "cba" -> 0; "hello friend" vs "hello there friend": LCS 2, P 1, R 2/3 -> 80
    assert rouge.per_item == pytest.approx([100.0, 80.0, 0.0, 80.0])
    assert rouge.value == pytest.approx(65.0)
    assert em.per_item == [1.0, 0.0, 0.0, 0.0] and em.value == pytest.approx(0.25)
    assert rouge.extra["predictions"][0] == " 27"
    # lm-eval's own aggregate agrees with ours, and the record carries what fixes the number
    assert rouge.extra["lm_eval_results"]["rougeL,none"] == pytest.approx(65.0)
    assert rouge.protocol["seed"] == 7 and rouge.protocol["runner"].startswith("lm-eval 0.4")
    assert len(rouge.protocol["task_hash"]) == 64
    assert rouge.protocol["generation_kwargs"]["until"] == ["\n"]

    with pytest.raises(BenchError, match="not found"):
        llm.run_lm_eval(tmp_path / "tasks", "no_such_task", Oracle())
