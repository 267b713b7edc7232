"""Instruction records -> token sequences -> training batches, as MiniLLM's processing does it.

A record (Dolly's fields) becomes prompt tokens (the Alpaca template, bench.data.instruct.alpaca_prompt) and
response tokens (the response text followed by EOS). A record whose prompt is longer than
``max_prompt_tokens`` is dropped, not truncated (MiniLLM's process_data_dolly.py), and the response is cut so
that prompt + response fit in ``max_total_tokens``.

Batches are right-padded ``prompt + response`` rows: ``input_ids``, ``attention_mask`` and ``labels`` aligned
with the logits (``labels[:, t]`` is the token the model must predict after position t, -100 where nothing is
trained: prompt, padding). ``prompt_lens``/``lengths`` let the samplers and SCRG find the response part.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from bench.data.instruct import alpaca_prompt
from bench.registry import BenchError

IGNORE = -100


@dataclass(frozen=True)
class Example:
    prompt: tuple[int, ...]
    response: tuple[int, ...]   # ends with EOS unless it was cut at max_total_tokens
    index: int                  # position of the record in its split


def prompt_text(record: dict[str, Any]) -> str:
    """The Alpaca prompt of a record (a pre-rendered `prompt` field wins, as in MiniLLM's eval files)."""
    if record.get("prompt"):
        return record["prompt"]
    return alpaca_prompt(record["instruction"], record.get("context", "") or "")


def encode_records(records: Sequence[dict[str, Any]], tokenizer: Any, max_prompt_tokens: int,
                   max_total_tokens: int) -> list[Example]:
    if max_total_tokens <= max_prompt_tokens:
        raise BenchError(f"max_total_tokens ({max_total_tokens}) must exceed max_prompt_tokens ({max_prompt_tokens})")
    eos = tokenizer.eos_token_id
    out = []
    for i, rec in enumerate(records):
        prompt = prompt_text(rec)
        prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
        if len(prompt_ids) > max_prompt_tokens:
            continue
        # tokenise prompt + response together (BPE merges across the boundary as MiniLLM's encoder sees them)
        full = tokenizer.encode(prompt + rec["response"], add_special_tokens=False) + [eos]
        response = full[len(prompt_ids):][: max_total_tokens - len(prompt_ids)]
        if not response:
            continue
        out.append(Example(tuple(prompt_ids), tuple(response), i))
    if not out:
        raise BenchError(f"no record fits max_prompt_tokens={max_prompt_tokens}")
    return out


def sequences_batch(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int,
                    device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """Right-padded training tensors for prompt + response rows (see the module docstring)."""
    lengths = [len(p) + len(r) for p, r in zip(prompts, responses)]
    width = max(lengths)
    ids = torch.full((len(lengths), width), pad_id, dtype=torch.long)
    labels = torch.full((len(lengths), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(lengths), width), dtype=torch.long)
    for row, (p, r) in enumerate(zip(prompts, responses)):
        seq = list(p) + list(r)
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
        if r:  # the logit at position len(p) - 1 + k predicts response token k
            labels[row, len(p) - 1: len(seq) - 1] = torch.tensor(list(r), dtype=torch.long)
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels,
             "prompt_lens": torch.tensor([len(p) for p in prompts], dtype=torch.long),
             "lengths": torch.tensor(lengths, dtype=torch.long)}
    return {k: v.to(device) for k, v in batch.items()} if device is not None else batch


def collate_examples(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    batch = sequences_batch([e.prompt for e in examples], [e.response for e in examples], pad_id)
    batch["index"] = torch.tensor([e.index for e in examples], dtype=torch.long)
    return batch


def split_batch(batch: dict[str, torch.Tensor]) -> tuple[list[list[int]], list[list[int]]]:
    """Back from tensors to (prompt tokens, response tokens) per row."""
    prompts, responses = [], []
    for row in range(batch["input_ids"].shape[0]):
        p, n = int(batch["prompt_lens"][row]), int(batch["lengths"][row])
        seq = batch["input_ids"][row, :n].tolist()
        prompts.append(seq[:p])
        responses.append(seq[p:])
    return prompts, responses


def response_mask(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """1 where a logit is trained (its label is a response token)."""
    return (batch["labels"] != IGNORE).long()


def forward_logits(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits [B, T, V] of a causal LM on a right-padded batch (positions count from 0 in every row)."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
