"""Causal LMs for LLM distillation: the paper's teacher -> student pairs (local Hugging Face folders) and, at
smoke scale, randomly initialised tiny GPT-2 / OPT / LLaMA models with a byte-level BPE tokenizer trained locally.

LoRA (through `peft`): the students of the OPT, OpenLLaMA2 and LLaMA2 pairs train a LoRA adapter
(`apply_lora`, `LoraSettings`; DistiLLM's defaults r 16, alpha 64, dropout 0.1). A LoRA model is saved merged
(`save_hf_folder` adds W + (alpha/r) B A into each adapted weight), so every saved folder is a plain
Hugging Face model that lm-eval and `load_causal_lm` read without peft.

Nothing is downloaded. At paper scale each model is a local folder ``<data_root>/models/<name>/`` holding
what ``save_pretrained`` writes (config, weights, tokenizer files). The GPT-2 configurations below are the
released ones, so the parameter counts can be checked without the weights (`count_gpt2_params`).
"""
from __future__ import annotations

import json
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
    "opt": PairSpec("opt-6.7b", "opt-1.3b", 6_658_473_984, 1_315_758_080, "lora",
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

# The released OPT and LLaMA2 configurations (the hub's config.json of facebook/opt-1.3b, facebook/opt-6.7b,
# meta-llama/Llama-2-7b-hf, meta-llama/Llama-2-13b-hf) [M]; tests count them on the meta device against
# PAPER_PAIRS' published parameter counts.
OPT_CONFIGS: dict[str, dict[str, int]] = {
    "opt-1.3b": dict(hidden_size=2048, num_hidden_layers=24, num_attention_heads=32, ffn_dim=8192,
                     vocab_size=50272, max_position_embeddings=2048, word_embed_proj_dim=2048),
    "opt-6.7b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, ffn_dim=16384,
                     vocab_size=50272, max_position_embeddings=2048, word_embed_proj_dim=4096),
}
LLAMA_CONFIGS: dict[str, dict[str, int]] = {
    "Llama-2-7b-hf": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, intermediate_size=11008,
                          vocab_size=32000, max_position_embeddings=4096),
    "Llama-2-13b-hf": dict(hidden_size=5120, num_hidden_layers=40, num_attention_heads=40, intermediate_size=13824,
                           vocab_size=32000, max_position_embeddings=4096),
}


@dataclass(frozen=True)
class LoraSettings:
    """The student's LoRA adapter. Defaults: DistiLLM's `--peft lora` arguments (r 16, alpha 64, dropout 0.1,
    papers-other 3.4 [R]); target modules: the query and value projections, peft's default for OPT and LLaMA
    (MiniLLM/DistiLLM's LoraConfig names none [I]). Every field is a knob of the recipe's `lora` argument."""

    r: int = 16
    alpha: int = 64
    dropout: float = 0.1
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")

    @classmethod
    def parse(cls, cfg: dict[str, Any] | None) -> LoraSettings:
        cfg = dict(cfg or {})
        unknown = set(cfg) - {"r", "alpha", "dropout", "target_modules"}
        if unknown:
            raise BenchError(f"unknown LoRA option(s) {', '.join(sorted(unknown))}; known: r, alpha, dropout, "
                             f"target_modules")
        if "target_modules" in cfg:
            cfg["target_modules"] = tuple(cfg["target_modules"])
        out = cls(**cfg)
        if out.r < 1 or out.alpha <= 0 or not 0.0 <= out.dropout < 1.0 or not out.target_modules:
            raise BenchError(f"bad LoRA settings {out}: need r >= 1, alpha > 0, 0 <= dropout < 1, target modules")
        return out

    def describe(self) -> dict[str, Any]:
        return {"r": self.r, "alpha": self.alpha, "dropout": self.dropout, "target_modules": list(self.target_modules)}


def apply_lora(model: Any, settings: LoraSettings, seed: int = 0) -> Any:
    """`model` wrapped by peft with a fresh LoRA adapter (A: peft's Kaiming init drawn under `seed`, B = 0, so
    the wrapped model computes exactly what `model` does); only the adapter is trainable."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=settings.r, lora_alpha=settings.alpha,
                        lora_dropout=settings.dropout, target_modules=list(settings.target_modules))
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in settings.target_modules if t not in names]
    if missing:
        raise BenchError(f"LoRA target module(s) {', '.join(missing)} not in {type(model).__name__}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return get_peft_model(model, config)


def is_lora(model: Any) -> bool:
    return type(model).__module__.startswith("peft.")


def merged_state_dict(model: Any) -> dict[str, Any]:
    """The base model's state dict with every LoRA delta (alpha/r) B A added to its weight; the peft model is
    left untouched (training continues on the same adapter)."""
    import torch

    base = model.get_base_model()
    adapter = model.active_adapter
    deltas: dict[str, Any] = {}
    for name, module in base.named_modules():
        if hasattr(module, "get_delta_weight") and adapter in getattr(module, "lora_A", {}):
            with torch.no_grad():
                deltas[f"{name}.weight"] = module.get_delta_weight(adapter)
    out = {}
    for key, value in base.state_dict().items():
        if "lora_" in key:
            continue
        key = key.replace(".base_layer.", ".")
        out[key] = (value + deltas[key]) if key in deltas else value
    return out


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


def tiny_config(family: str, vocab_size: int, n_positions: int, n_layer: int, n_embd: int, n_head: int,
                eos_id: int, dropout: float = 0.1) -> Any:
    """A tiny configuration of a Table 1 architecture: "gpt2", "opt" (pre-norm, learned positions, ReLU MLP of
    4x width, as the released OPTs) or "llama" (RMSNorm, rotary positions, SwiGLU MLP of 8/3 x width rounded
    up to a multiple of 8, as LLaMA2's 11008 = 8/3 x 4096 rounded to 256)."""
    if family == "gpt2":
        return gpt2_config(vocab_size, n_positions, n_layer, n_embd, n_head, eos_id, dropout)
    if family == "opt":
        from transformers import OPTConfig

        return OPTConfig(vocab_size=vocab_size, hidden_size=n_embd, num_hidden_layers=n_layer, ffn_dim=4 * n_embd,
                         num_attention_heads=n_head, max_position_embeddings=n_positions, word_embed_proj_dim=n_embd,
                         do_layer_norm_before=True, dropout=dropout, attention_dropout=dropout,
                         activation_dropout=0.0, bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id)
    if family == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(vocab_size=vocab_size, hidden_size=n_embd, num_hidden_layers=n_layer,
                           num_attention_heads=n_head, intermediate_size=-(-8 * n_embd // 3 // 8) * 8,
                           max_position_embeddings=n_positions, attention_dropout=dropout, tie_word_embeddings=False,
                           bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id)
    raise BenchError(f"unknown model family {family!r}; known: gpt2, opt, llama")


def build_causal_lm(config: Any, seed: int) -> Any:
    """A randomly initialised causal LM of `config`; the initialisation depends only on `seed`."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    return model


def count_config_params(config: Any) -> int:
    """Parameters of a configuration, counted on the meta device (no memory, no download)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


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
        if is_lora(model):  # merged: a plain folder of the base architecture
            model.get_base_model().save_pretrained(tmp, state_dict=merged_state_dict(model))
            (tmp / "lora.json").write_text(json.dumps({"merged": True, "adapter": model.peft_config[
                model.active_adapter].to_dict()}, default=str, sort_keys=True, indent=1))
        else:
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
