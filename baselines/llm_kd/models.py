"""Causal LMs for LLM distillation: the paper's teacher -> student pairs (local Hugging Face folders) and, at
smoke scale, randomly initialised tiny GPT-2s with a byte-level BPE tokenizer trained locally.

Nothing is downloaded. At paper scale each model is a local folder ``<data_root>/models/<name>/`` holding
what ``save_pretrained`` writes (config, weights, tokenizer files). The GPT-2 configurations below are the
released ones, so the parameter counts can be checked without the weights (`count_gpt2_params`).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from bench.registry import BenchError

EOS = "<|endoftext|>"  # GPT-2's one special token: end of text, also used for padding (as MiniLLM does)


@dataclass(frozen=True)
class PairSpec:
    """One teacher -> student family of MGSR's Table 1 (folder names under <data_root>/models/)."""

    teacher: str
    student: str
    teacher_params: int | None   # official parameter count (None where we do not know it exactly)
    student_params: int | None
    peft: str | None = None      # LoRA for the 3B+ students (DistiLLM's OpenLLaMA scripts; MGSR's reviewers)
    source: str = ""


# Parameter counts: GPT-2's follow from the released configs (checked by count_gpt2_params and a hand formula
# in the tests); the others are the models' published sizes [M] and are verified when the folders are loaded.
PAPER_PAIRS: dict[str, PairSpec] = {
    "gpt2": PairSpec("gpt2-xl", "gpt2", 1_557_611_200, 124_439_808, None,
                     "GPT-2 XL (1.5B) -> GPT-2 base (0.1B), DistiLLM's pair"),
    "opt": PairSpec("opt-6.7b", "opt-1.3b", 6_658_473_984, 1_315_758_080, None,
                    "OPT 6.7B -> 1.3B (new in MGSR)"),
    "openllama2": PairSpec("open_llama_7b_v2", "open_llama_3b_v2", 6_738_415_616, 3_426_473_600, "lora",
                           "OpenLLaMA2 7B -> 3B, DistiLLM's pair"),
    "llama2": PairSpec("Llama-2-13b-hf", "Llama-2-7b-hf", 13_015_864_320, 6_738_415_616, "lora",
                       "LLaMA2 13B -> 7B"),
}

# The released GPT-2 configurations (Hugging Face gpt2 / gpt2-xl config.json).
GPT2_CONFIGS: dict[str, dict[str, int]] = {
    "gpt2": dict(n_layer=12, n_embd=768, n_head=12, vocab_size=50257, n_positions=1024),
    "gpt2-medium": dict(n_layer=24, n_embd=1024, n_head=16, vocab_size=50257, n_positions=1024),
    "gpt2-large": dict(n_layer=36, n_embd=1280, n_head=20, vocab_size=50257, n_positions=1024),
    "gpt2-xl": dict(n_layer=48, n_embd=1600, n_head=25, vocab_size=50257, n_positions=1024),
}

# Smoke: a tiny teacher and a smaller student of the same (GPT-2) architecture and tokenizer.
SMOKE_TEACHER = dict(n_layer=4, n_embd=128, n_head=4)
SMOKE_STUDENT = dict(n_layer=2, n_embd=64, n_head=2)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024) -> Any:
    """A GPT-2-style byte-level BPE tokenizer trained on `texts` (deterministic for the same texts)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, unk_token=EOS,
                                   pad_token=EOS)


def gpt2_config(vocab_size: int, n_positions: int, n_layer: int, n_embd: int, n_head: int, eos_id: int,
                dropout: float = 0.1) -> Any:
    from transformers import GPT2Config

    return GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_layer=n_layer, n_embd=n_embd,
                      n_head=n_head, resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
                      bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id)


def build_gpt2(config: Any, seed: int) -> Any:
    """A randomly initialised GPT2LMHeadModel; the initialisation depends only on `seed`."""
    import torch
    from transformers import GPT2LMHeadModel

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    return model


def count_gpt2_params(name: str) -> int:
    """Parameters of a released GPT-2 size, counted on the meta device (no memory, no download)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    if name not in GPT2_CONFIGS:
        raise BenchError(f"unknown GPT-2 size {name!r}; known: {', '.join(GPT2_CONFIGS)}")
    with torch.device("meta"):
        model = GPT2LMHeadModel(GPT2Config(**GPT2_CONFIGS[name]))
    return sum(p.numel() for p in model.parameters())  # tied lm_head counted once, as HF reports


def model_folder(data_root: Path | None, name: str) -> Path:
    if data_root is None:
        raise BenchError(f"model {name!r} is a local folder: pass --data-root DIR holding models/{name}/")
    folder = Path(data_root) / "models" / name
    if not (folder / "config.json").is_file():
        raise BenchError(f"model folder {folder} not found (needs config.json, weights and tokenizer files "
                         f"written by save_pretrained; get them from the Hugging Face hub with "
                         f"`huggingface-cli download` on a machine with network)")
    return folder


def load_causal_lm(folder: str | Path, dtype: str = "float32") -> tuple[Any, Any]:
    """(model, tokenizer) from a local folder, offline."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise BenchError(f"not a Hugging Face model folder: {folder} (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # GPT-2/OPT/LLaMA pad with EOS in MiniLLM's code
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=getattr(torch, dtype))
    return model, tokenizer


def save_hf_folder(model: Any, tokenizer: Any, folder: str | Path, extra: dict[str, str] | None = None) -> Path:
    """save_pretrained into `folder` atomically (a temp sibling renamed into place), so a folder that exists
    is always complete."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for name, text in (extra or {}).items():
            (tmp / name).write_text(text)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder
