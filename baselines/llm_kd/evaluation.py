"""Evaluation exactly as MiniLLM / DistiLLM / MGSR do it, through an lm-eval `generate_until` task.

Protocol (papers-other 1.2, read in the baselines' eval scripts):
* Alpaca prompt (with or without the `### Input:` block); records whose prompt exceeds `max_prompt_tokens`
  (256) are dropped, as MiniLLM's processing drops them;
* sampling: do_sample, temperature 1.0, top_p 1.0, top_k 0 (off); total length `max_total_tokens` (512), so
  each batch generates up to 512 - (its padded prompt length) tokens, which is what MiniLLM's
  `generate(max_length=512)` on left-padded batches does; generation stops at EOS only;
* ROUGE-L F-measure (rouge-score, stemmed, max over references) x100, mean over prompts, for each sampling
  seed (10, 20, 30, 40, 50), then the mean over seeds.

The task is a local folder (YAML + JSONL + utils.py, written by bench.metrics.llm.write_generation_task
with the generation settings above added), so a user can run the same task with
``lm_eval --model hf --model_args pretrained=<folder>,max_length=512 --tasks <name> --include_path <dir>
--seed <s>``. The model is lm-eval's own HFLM on the saved Hugging Face folder.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from baselines.llm_kd.data import prompt_text
from bench.registry import BenchError

PAPER_SEEDS = (10, 20, 30, 40, 50)


@dataclass(frozen=True)
class EvalProtocol:
    max_prompt_tokens: int = 256
    max_total_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seeds: tuple[int, ...] = PAPER_SEEDS
    batch_size: int = 8                # MiniLLM's eval batch is 8-16; results depend on it only through padding
    extra: dict[str, Any] = field(default_factory=dict)

    def generation_kwargs(self) -> dict[str, Any]:
        return {"until": [], "do_sample": True, "temperature": self.temperature, "top_p": self.top_p,
                "top_k": self.top_k, "max_gen_toks": self.max_total_tokens - self.max_prompt_tokens,
                "max_length": self.max_total_tokens}

    def describe(self) -> dict[str, Any]:
        return {"prompt": "Alpaca template, records with prompts > max_prompt_tokens dropped",
                "max_prompt_tokens": self.max_prompt_tokens, "max_total_tokens": self.max_total_tokens,
                "sampling": {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k},
                "seeds": list(self.seeds), "batch_size": self.batch_size, "stop": "EOS only"}


def task_rows(records: Sequence[dict[str, Any]], tokenizer: Any,
              max_prompt_tokens: int) -> tuple[list[dict[str, Any]], int]:
    """(rows, dropped): one row per record whose prompt fits, with its prompt and references."""
    rows, dropped = [], 0
    for i, rec in enumerate(records):
        prompt = prompt_text(rec)
        if len(tokenizer.encode(prompt, add_special_tokens=False)) > max_prompt_tokens:
            dropped += 1
            continue
        refs = rec.get("references") or [rec["response"]]
        rows.append({"id": i, "prompt": prompt, "references": list(refs)})
    if not rows:
        raise BenchError(f"no evaluation prompt fits max_prompt_tokens={max_prompt_tokens}")
    return rows, dropped


_FUNCTION_TAG = re.compile(r"!function (\S+)")


def write_task(task_dir: str | Path, name: str, rows: Sequence[dict[str, Any]], protocol: EvalProtocol) -> Path:
    """The lm-eval task folder for `rows`, with the full sampling protocol in its generation_kwargs.

    bench.metrics.llm.write_generation_task writes the files; the generation settings it does not take
    (top_p, top_k, max_length) are added here by rewriting the YAML's generation_kwargs.
    """
    import yaml

    from bench.metrics.llm import write_generation_task

    path = write_generation_task(task_dir, name, rows, prompt_template="{{prompt}}", reference_field="references",
                                 until=(), max_gen_toks=protocol.max_total_tokens - protocol.max_prompt_tokens,
                                 do_sample=True, temperature=protocol.temperature)
    text = path.read_text()
    tags = _FUNCTION_TAG.findall(text)
    config = yaml.safe_load(_FUNCTION_TAG.sub(lambda m: f"__FUNCTION__{m.group(1)}", text))
    config["generation_kwargs"] = protocol.generation_kwargs()
    out = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    for tag in tags:
        out = out.replace(f"__FUNCTION__{tag}", f"!function {tag}")
    path.write_text(out)
    return path


def load_hflm(folder: str | Path, protocol: EvalProtocol, device: str = "cpu") -> Any:
    """lm-eval's HFLM on a saved folder, with the protocol's total length."""
    import os

    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(var, "1")
    from lm_eval.models.huggingface import HFLM

    if not (Path(folder) / "config.json").is_file():
        raise BenchError(f"model folder {folder} has no config.json")
    return HFLM(pretrained=str(folder), device=device, batch_size=protocol.batch_size, dtype="float32",
                max_length=protocol.max_total_tokens)


def evaluate_seed(model: Any, task_dir: str | Path, task: str, seed: int, protocol: EvalProtocol) -> dict[str, Any]:
    """One sampling seed: per-prompt ROUGE-L and predictions plus lm-eval's version and task hash."""
    import logging

    from bench.metrics.llm import run_lm_eval

    from unittest import mock

    # lm-eval warns once per batch that max_length sits in generation_kwargs (it is deliberate, see above)
    logging.getLogger("lm_eval.models.huggingface").setLevel(logging.ERROR)
    # simple_evaluate collects an environment report (torch's collect_env, subprocesses: ~1.5 s per call) that
    # no bench record uses; skipping it changes nothing that is computed
    with mock.patch("lm_eval.evaluator.add_env_info", lambda *args, **kwargs: None):
        results = run_lm_eval(task_dir, task, model, seed=seed, batch_size=protocol.batch_size)
    rouge = results["rouge_l@rouge-score"]
    return {"seed": seed, "value": rouge.value, "n": rouge.n, "per_item": rouge.per_item,
            "predictions": rouge.extra["predictions"], "doc_ids": rouge.extra["doc_ids"],
            "protocol": {k: rouge.protocol[k] for k in ("runner", "task", "task_hash", "task_version",
                                                        "generation_kwargs", "library") if k in rouge.protocol}}


def summarise(per_seed: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean over sampling seeds (the papers' number) and the per-seed values."""
    values = [s["value"] for s in per_seed]
    return {"value": sum(values) / len(values), "per_eval_seed": {str(s["seed"]): s["value"] for s in per_seed},
            "n": per_seed[0]["n"]}
