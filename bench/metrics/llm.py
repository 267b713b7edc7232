"""LLM dialects: ROUGE-L through rouge-score, and running a local generation task through lm-eval, offline.

``rouge_l@rouge-score`` is the protocol of the instruction-following distillation papers (MiniLLM, DistiLLM,
MGSR): ``RougeScorer(['rougeL'], use_stemmer=True)``, F-measure of rougeL (not rougeLsum), per example the max
over its references, x100, mean over examples. Exact match (stripped, case-sensitive, any reference) comes along.

``write_generation_task`` writes an lm-eval task folder (YAML + JSONL + a two-line utils.py that calls back into
this module), and ``run_lm_eval`` evaluates any ``lm_eval.api.model.LM`` (or a local Hugging Face folder) on it
through ``lm_eval.simple_evaluate`` with the built-in task index switched off, so nothing is fetched. The
record copies lm-eval's version, the task hash (computed from the logged samples exactly as lm-eval's
EvaluationTracker does) and the seeds.
"""
from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any
from collections.abc import Sequence

from bench.metrics.base import MetricResult, check_same_length, library_version, mean_of
from bench.registry import BenchError

ROUGE_PROTOCOL = {"scorer": "rouge_score.rouge_scorer.RougeScorer(['rougeL'], use_stemmer=True)",
                  "measure": "F-measure of rougeL (not rougeLsum)", "references": "max over references",
                  "scale": "x100", "aggregate": "mean over examples"}


@cache
def _scorer(use_stemmer: bool = True) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)


def _references(refs: str | Sequence[str]) -> list[str]:
    refs = [refs] if isinstance(refs, str) else list(refs)
    if not refs:
        raise BenchError("an example has no reference text")
    return refs


def rouge_l_one(prediction: str, references: str | Sequence[str]) -> float:
    """ROUGE-L F x100 of one prediction, max over its references."""
    return 100.0 * max(_scorer().score(ref, prediction)["rougeL"].fmeasure for ref in _references(references))


def exact_match_one(prediction: str, references: str | Sequence[str]) -> float:
    return float(any(prediction.strip() == ref.strip() for ref in _references(references)))


def exact_match(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> MetricResult:
    """``exact_match``: stripped prediction equals one of the stripped references (case-sensitive)."""
    check_same_length(predictions, references, "texts")
    values = [exact_match_one(p, r) for p, r in zip(predictions, references)]
    return MetricResult(name="exact_match", value=mean_of(values), n=len(values), per_item=values,
                        protocol={"measure": "stripped prediction == a stripped reference (case-sensitive)",
                                  "references": "any", "aggregate": "mean over examples"})


def rouge_l(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> MetricResult:
    """``rouge_l@rouge-score``: mean over examples of the max-over-references ROUGE-L F-measure, x100."""
    check_same_length(predictions, references, "texts")
    values = [rouge_l_one(p, r) for p, r in zip(predictions, references)]
    protocol = {**ROUGE_PROTOCOL, "library": f"rouge-score {library_version('rouge-score')}"}
    return MetricResult(name="rouge_l@rouge-score", value=mean_of(values), n=len(values), per_item=values,
                        protocol=protocol)


# ---------------------------------------------------------------------------------------------------------------
# lm-eval task files
# ---------------------------------------------------------------------------------------------------------------
def process_generation_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """lm-eval ``process_results`` hook of tasks written by write_generation_task."""
    prediction = results[0]
    return {"rougeL": rouge_l_one(prediction, doc["references"]),
            "exact_match": exact_match_one(prediction, doc["references"])}


def load_jsonl_docs(path: str | Path) -> Any:
    """lm-eval ``custom_dataset`` hook: a JSONL file as a one-split ('test') datasets.DatasetDict, offline."""
    import datasets

    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


_UTILS_PY = '''"""Written by bench.metrics.llm.write_generation_task: lm-eval hooks that call back into bench."""
import os

from bench.metrics.llm import load_jsonl_docs, process_generation_results as process_results  # noqa: F401


def load_docs(**kwargs):
    return load_jsonl_docs(os.path.join(os.path.dirname(os.path.abspath(__file__)), {data!r}))
'''


def write_generation_task(task_dir: str | Path, name: str, rows: Sequence[dict[str, Any]], *,
                          prompt_template: str = "{{prompt}}", reference_field: str = "answer",
                          until: Sequence[str] = ("\n",), max_gen_toks: int = 64, do_sample: bool = False,
                          temperature: float | None = None, extra_generation_kwargs: dict[str, Any] | None = None,
                          ) -> Path:
    """Write ``<task_dir>/<name>.yaml``, ``<name>.jsonl`` and ``utils.py``; returns the YAML path.

    Each row needs the fields used by ``prompt_template`` (a Jinja template, lm-eval's doc_to_text) and a
    reference: ``rows[i][reference_field]``, a string or a list of strings (several references: max over them).
    Generation settings go into the task's generation_kwargs and are recorded by run_lm_eval;
    ``extra_generation_kwargs`` (e.g. top_p, top_k, max_length) are added to them as given.
    """
    import yaml

    task_dir = Path(task_dir)
    task_dir.mkdir(parents=True, exist_ok=True)
    if not rows:
        raise BenchError("a task needs at least one row")
    lines = []
    for i, row in enumerate(rows):
        if reference_field not in row:
            raise BenchError(f"row {i} lacks the reference field {reference_field!r}")
        # the reference field is replaced by a list-valued "references" (Arrow needs one type per column)
        doc = {k: v for k, v in row.items() if k != reference_field}
        lines.append(json.dumps({**doc, "references": _references(row[reference_field])}, ensure_ascii=False))
    (task_dir / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    (task_dir / "utils.py").write_text(_UTILS_PY.format(data=f"{name}.jsonl"))
    generation: dict[str, Any] = {"until": list(until), "max_gen_toks": max_gen_toks, "do_sample": do_sample}
    if temperature is not None:
        generation["temperature"] = temperature
    generation.update(extra_generation_kwargs or {})
    config = {
        "task": name, "custom_dataset": "__LOAD_DOCS__", "test_split": "test", "output_type": "generate_until",
        "doc_to_text": prompt_template, "doc_to_target": "{{references[0]}}", "generation_kwargs": generation,
        "process_results": "__PROCESS_RESULTS__",
        "metric_list": [{"metric": "rougeL", "aggregation": "mean", "higher_is_better": True},
                        {"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0},
    }
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    # lm-eval resolves "!function module.attr" tags relative to the YAML's folder
    text = text.replace("__LOAD_DOCS__", "!function utils.load_docs")
    text = text.replace("__PROCESS_RESULTS__", "!function utils.process_results")
    path = task_dir / f"{name}.yaml"
    path.write_text(text)
    return path


def _task_hash(samples: list[dict[str, Any]]) -> str:
    """lm-eval's cumulative task hash (EvaluationTracker.save_results_aggregated), from the logged samples."""
    from lm_eval.utils import hash_string

    return hash_string("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in samples))


def run_lm_eval(task_dir: str | Path, task: str, model: Any, *, seed: int = 1234, limit: int | None = None,
                batch_size: int = 8, gen_kwargs: dict[str, Any] | None = None) -> dict[str, MetricResult]:
    """Evaluate ``model`` (an lm_eval LM instance, or a local HF causal-LM folder) on one local task.

    Returns ``{"rouge_l@rouge-score": ..., "exact_match": ...}`` with per-prompt values in doc order.
    """
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import lm_eval
    from lm_eval.tasks import TaskManager

    model_desc = type(model).__name__
    if isinstance(model, (str, Path)):
        if not Path(model).is_dir():
            raise BenchError(f"model folder {model} does not exist")
        from lm_eval.models.huggingface import HFLM

        model_desc = f"HFLM({model})"
        model = HFLM(pretrained=str(model), device="cpu", batch_size=batch_size, dtype="float32")
    manager = TaskManager(include_path=str(task_dir), include_defaults=False)
    if task not in manager.all_tasks:
        raise BenchError(f"task {task!r} not found in {task_dir}; found: {', '.join(manager.all_tasks) or 'none'}")
    res = lm_eval.simple_evaluate(model=model, tasks=[task], task_manager=manager, limit=limit,
                                  log_samples=True, random_seed=seed, numpy_random_seed=seed,
                                  torch_random_seed=seed, fewshot_random_seed=seed, gen_kwargs=gen_kwargs,
                                  bootstrap_iters=0)
    samples = sorted(res["samples"][task], key=lambda s: s["doc_id"])
    protocol = {**ROUGE_PROTOCOL, "runner": f"lm-eval {lm_eval.__version__} simple_evaluate",
                "task": task, "task_version": res["versions"].get(task), "task_hash": _task_hash(samples),
                "generation_kwargs": res["configs"][task].get("generation_kwargs"),
                "num_fewshot": res["configs"][task].get("num_fewshot"), "seed": seed, "limit": limit,
                "model": model_desc, "library": f"rouge-score {library_version('rouge-score')}"}
    predictions = [s["filtered_resps"][0] for s in samples]
    rouge = [float(s["rougeL"]) for s in samples]
    exact = [float(s["exact_match"]) for s in samples]
    extra = {"predictions": predictions, "doc_ids": [s["doc_id"] for s in samples],
             "lm_eval_results": res["results"][task]}
    return {
        "rouge_l@rouge-score": MetricResult("rouge_l@rouge-score", mean_of(rouge), len(rouge), rouge,
                                            protocol, extra),
        "exact_match": MetricResult("exact_match", mean_of(exact), len(exact), exact,
                                    {**protocol, "measure": "stripped prediction == a stripped reference"},
                                    {"doc_ids": extra["doc_ids"]}),
    }
