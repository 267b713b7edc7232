"""The instruction-following data MGSR trains and evaluates on, and its GPT-2 teacher/student model folders, tiny,
in their official layouts.

Data (datasets/dolly.yaml ... read through bench.data.instruct.InstructionJsonl):
* ``dolly/databricks-dolly-15k.jsonl``: the original release's JSON Lines, fields instruction / context /
  response / category (https://huggingface.co/datasets/databricks/databricks-dolly-15k).
* ``minillm/data/dolly/raw.jsonl``: MiniLLM's processed Dolly (LMOps minillm/tools/process_data_dolly.py; the
  huggingface MiniLLM/dolly files), fields instruction / input / output; the first dev_num = 1000 records are
  the validation split, the rest train, so the fixture writes 1000 + ``n_train`` records.
* ``minillm/data/{dolly,self-inst,vicuna}/valid.jsonl``, ``minillm/data/sinst/11_/valid.jsonl`` and
  ``minillm/data/uinst/11_/valid.jsonl``: MiniLLM's evaluation files (instruction / input / output, with a
  rendered ``prompt`` in some; ``output`` may be a list of references, as in Self-Instruct and S-NI).
Records are short synthetic arithmetic/colour questions with exact answers.

Models (baselines.llm_kd.models.model_folder: ``<data_root>/models/<name>/``): the Hugging Face hub folders of
``gpt2-xl`` (teacher) and ``gpt2`` (student) as ``save_pretrained`` writes them: config.json with GPT-2's own
keys (model_type gpt2, activation gelu_new, n_ctx/n_positions 1024, the <|endoftext|> bos/eos), safetensors
weights, generation_config.json, and the tokenizer files of the hub's GPT-2 (vocab.json, merges.txt,
tokenizer.json, tokenizer_config.json). Widths, depths and the BPE vocabulary are tiny
(a 1.5B teacher cannot be built in a CPU test) and the weights random; no checksum guards these folders.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

COLOURS = ["red", "green", "blue", "yellow", "black", "white", "orange", "purple"]
EVAL_FILES = {"dolly": "minillm/data/dolly/valid.jsonl", "self-inst": "minillm/data/self-inst/valid.jsonl",
              "vicuna": "minillm/data/vicuna/valid.jsonl", "sni": "minillm/data/sinst/11_/valid.jsonl",
              "unni": "minillm/data/uinst/11_/valid.jsonl"}


def _record(rng: random.Random) -> dict[str, str]:
    if rng.random() < 0.5:
        a, b = rng.randint(1, 40), rng.randint(1, 40)
        return {"instruction": f"What is {a} plus {b}?", "context": "", "response": f"{a} plus {b} is {a + b}.",
                "category": "open_qa"}
    colour = rng.choice(COLOURS)
    thing = rng.choice(["car", "house", "kite", "ball"])
    return {"instruction": "What colour is the object in the text?", "context": f"The {thing} is {colour}.",
            "response": f"The {thing} is {colour}.", "category": "information_extraction"}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_instruction_data(root: Path, n_train: int = 64, n_eval: int = 6, seed: int = 0) -> Path:
    """Every file `bench reproduce mgsr --scale paper` reads under ``root``; returns ``root``."""
    rng = random.Random(seed)
    root = Path(root)
    dolly = [_record(rng) for _ in range(1000 + n_train)]
    _write_jsonl(root / "dolly" / "databricks-dolly-15k.jsonl", dolly)
    _write_jsonl(root / "minillm" / "data" / "dolly" / "raw.jsonl",
                 [{"instruction": r["instruction"], "input": r["context"], "output": r["response"]} for r in dolly])
    for name, rel in EVAL_FILES.items():
        rows = []
        for _ in range(n_eval):
            r = _record(rng)
            row = {"instruction": r["instruction"], "input": r["context"],
                   "output": [r["response"], r["response"].rstrip(".")] if name in ("self-inst", "sni")
                   else r["response"]}
            if name in ("sni", "unni"):
                row["prompt"] = r["instruction"] + ("<n>" + r["context"] if r["context"] else "")
            rows.append(row)
        _write_jsonl(root / rel, rows)
    return root


def write_gpt2_folders(root: Path, teacher: str = "gpt2-xl", student: str = "gpt2", vocab_size: int = 320,
                       seed: int = 0) -> Path:
    """models/<teacher>/ and models/<student>/ under ``root`` (hub layout, tiny random GPT-2s); returns ``root``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    rng = random.Random(seed)
    texts = [" ".join((r["instruction"], r["context"], r["response"])) for r in (_record(rng) for _ in range(400))]
    texts.append("Below is an instruction that describes a task. ### Instruction: ### Input: ### Response:")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                                       show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = GPT2TokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                  unk_token="<|endoftext|>", model_max_length=1024)
    eos = tokenizer.eos_token_id
    for k, (name, (layers, width, heads)) in enumerate(((teacher, (2, 64, 4)), (student, (1, 32, 2)))):
        config = GPT2Config(vocab_size=len(tokenizer), n_positions=1024, n_ctx=1024, n_embd=width, n_layer=layers,
                            n_head=heads, activation_function="gelu_new", bos_token_id=eos, eos_token_id=eos,
                            architectures=["GPT2LMHeadModel"], task_specific_params={"text-generation": {
                                "do_sample": True, "max_length": 50}})
        torch.manual_seed(seed + k)
        folder = Path(root) / "models" / name
        GPT2LMHeadModel(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        bpe.model.save(str(folder))  # vocab.json and merges.txt, as in the hub's GPT-2 folders
    return Path(root)
