"""Instruction data in JSON Lines: databricks-dolly-15k (`instruction`, `context`, `response`, `category`) and
the MiniLLM-processed evaluation sets (`instruction`, `input`, `output`, optional `prompt`; `output` may be
a list of references, scored by the max over references).

Records are normalised to Dolly's field names. The file is indexed by line offsets once; each item is parsed
when read, so a 15k-line file is never held as Python objects.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.data.base import IndexedDataset, content_fingerprint, require_file
from bench.registry import BenchError

# Accepted spellings of each normalised field, in order of preference.
FIELD_ALIASES = {
    "instruction": ("instruction",),
    "context": ("context", "input"),
    "response": ("response", "output"),
}


class InstructionJsonl(IndexedDataset):
    """Items: instruction, context ("" when absent), response (the first reference), references (all),
    category (Dolly's, or None) and prompt (when the file carries a rendered prompt).

    `start`/`stop` select a line range, which is how MiniLLM splits Dolly's raw.jsonl: the first `dev_num`
    records are the validation split and the rest train.
    """

    def __init__(self, path: str | Path, start: int = 0, stop: int | None = None, name: str | None = None):
        self.path = require_file(Path(path), "instruction JSONL file")
        self.name = name or self.path.stem
        offsets: list[tuple[int, int]] = []  # (byte offset, line number) of non-blank lines
        with open(self.path, "rb") as f:
            pos = 0
            for line_no, line in enumerate(f, start=1):
                if line.strip():
                    offsets.append((pos, line_no))
                pos += len(line)
        if not offsets:
            raise BenchError(f"instruction file {self.path} is empty")
        self._offsets = offsets[start:stop]
        if not self._offsets:
            raise BenchError(f"instruction file {self.path} has no records in lines [{start}:{stop}]")

    def __len__(self) -> int:
        return len(self._offsets)

    def load(self, index: int) -> dict[str, Any]:
        pos, line_no = self._offsets[index]
        with open(self.path, "rb") as f:
            f.seek(pos)
            raw = f.readline()
        where = f"{self.path}:{line_no}"
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BenchError(f"malformed JSON at {where}: {exc.msg}") from None
        if not isinstance(record, dict):
            raise BenchError(f"malformed record at {where}: expected a JSON object")
        out: dict[str, Any] = {}
        for field, aliases in FIELD_ALIASES.items():
            key = next((a for a in aliases if a in record), None)
            if key is None:
                # Context is optional; MiniLLM's evaluation files may carry only a rendered prompt + output.
                if field == "context" or (field == "instruction" and "prompt" in record):
                    out[field] = ""
                    continue
                raise BenchError(f"record at {where} has no {' / '.join(aliases)} field")
            out[field] = record[key]
        refs = out["response"]
        refs = list(refs) if isinstance(refs, list) else [refs]
        if not refs or not all(isinstance(r, str) for r in refs) or not isinstance(out["instruction"], str) \
                or not isinstance(out["context"], str):
            raise BenchError(f"record at {where}: instruction/context must be strings and the response a string "
                             f"or a non-empty list of strings")
        out["response"], out["references"] = refs[0], refs
        out["category"] = record.get("category")
        if "prompt" in record:
            out["prompt"] = str(record["prompt"]).replace("<n>", "\n")  # MiniLLM escapes newlines as <n>
        return out

    def _fingerprint(self) -> str:
        # Small text files: hash the content, plus the line range this loader reads.
        first, last = self._offsets[0][1], self._offsets[-1][1]
        return content_fingerprint([(f"{self.path.name}[lines {first}-{last}]", self.path.read_bytes())])


def alpaca_prompt(instruction: str, context: str = "") -> str:
    """The Alpaca-style template MiniLLM/DistiLLM (and so MGSR) format Dolly-style records with; the
    `### Input:` block appears only when the context is non-empty."""
    if context:
        return ("Below is an instruction that describes a task, paired with an input that provides further "
                "context. Write a response that appropriately completes the request.\n\n"
                f"### Instruction:\n{instruction}\n\n### Input:\n{context}\n\n### Response:\n")
    return ("Below is an instruction that describes a task. Write a response that appropriately completes the "
            f"request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")
