"""Instruction JSONL: Dolly's fields, MiniLLM's processed fields, line ranges and errors."""
from __future__ import annotations

import json

import pytest

from bench.data.instruct import InstructionJsonl, alpaca_prompt
from bench.registry import BenchError

DOLLY = [
    {"instruction": "When did Virgin Australia start operating?", "context": "Virgin Australia ... 31 August 2000.",
     "response": "Virgin Australia commenced services on 31 August 2000.", "category": "closed_qa"},
    {"instruction": "Which is a species of fish? Tope or Rope", "context": "", "response": "Tope",
     "category": "classification"},
    {"instruction": "Why can camels survive for long without water?", "context": "",
     "response": "Camels use the fat in their humps.", "category": "open_qa"},
]


def _write(path, records, blank_lines=False):
    lines = [json.dumps(r) for r in records]
    text = ("\n\n".join(lines) if blank_lines else "\n".join(lines)) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def test_dolly_records_keep_their_fields(tmp_path):
    ds = InstructionJsonl(_write(tmp_path / "databricks-dolly-15k.jsonl", DOLLY, blank_lines=True))
    assert len(ds) == 3
    first = ds[0]
    assert (first["instruction"], first["context"], first["response"], first["category"]) == tuple(DOLLY[0].values())
    assert first["references"] == [DOLLY[0]["response"]] and "prompt" not in first
    assert [item["category"] for item in ds.iter_shard(1, 2)] == ["classification"]


def test_minillm_fields_multiple_references_and_prompt_only(tmp_path):
    records = [
        {"instruction": "Name a colour.", "input": "", "output": ["red", "blue"]},
        {"prompt": "Below is an instruction.<n><n>### Response:<n>", "output": "ok"},
    ]
    ds = InstructionJsonl(_write(tmp_path / "valid.jsonl", records))
    assert ds[0]["context"] == "" and ds[0]["response"] == "red" and ds[0]["references"] == ["red", "blue"]
    assert ds[1]["instruction"] == "" and ds[1]["prompt"] == "Below is an instruction.\n\n### Response:\n"


def test_line_ranges_split_like_minillm_dev_num(tmp_path):
    path = _write(tmp_path / "raw.jsonl", [dict(DOLLY[i % 3], instruction=f"q{i}") for i in range(10)])
    valid = InstructionJsonl(path, stop=4)
    train = InstructionJsonl(path, start=4)
    assert [r["instruction"] for r in valid] == ["q0", "q1", "q2", "q3"]
    assert [r["instruction"] for r in train] == [f"q{i}" for i in range(4, 10)]
    assert valid.fingerprint() != train.fingerprint()
    with pytest.raises(BenchError, match="no records in lines"):
        InstructionJsonl(path, start=20)


def test_malformed_lines_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(DOLLY[0]) + "\n{not json\n" + json.dumps({"context": "x", "response": "y"}) + "\n")
    ds = InstructionJsonl(path)
    with pytest.raises(BenchError, match=r"malformed JSON at .*bad\.jsonl:2"):
        ds[1]
    with pytest.raises(BenchError, match=r"record at .*bad\.jsonl:3 has no instruction field"):
        ds[2]
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(BenchError, match="is empty"):
        InstructionJsonl(tmp_path / "empty.jsonl")


def test_alpaca_prompt_has_input_block_only_with_context():
    with_ctx = alpaca_prompt("Summarise.", "Some text.")
    without = alpaca_prompt("Say hi.")
    assert "### Input:\nSome text.\n\n" in with_ctx and "### Input:" not in without
    assert with_ctx.index("### Instruction:\nSummarise.") < with_ctx.index("### Input:")
    for prompt in (with_ctx, without):
        assert prompt.startswith("Below is an instruction that describes a task") and prompt.endswith("### Response:\n")


def test_instruct_docs_do_not_depend_on_what_was_imported_before():
    """transformers adds methods to logging.Logger and torch.package replaces inspect.getfile: the embedded set
    (and every mgsr number trained on it) must not change with them (it did: teacher ROUGE-L 10.388 -> 9.684)."""
    import subprocess
    import sys

    from bench.papers import REPO_ROOT

    def fingerprint(pre: str) -> str:
        code = (f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); {pre}; "
                "from bench.data.instructions_docs import fingerprint; print(fingerprint())")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              timeout=300).stdout.strip()

    clean = fingerprint("pass")
    assert clean.startswith("sha256:")
    assert fingerprint("import transformers.utils.logging, torch.package") == clean
