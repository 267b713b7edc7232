"""`bench evaluate mgsr --entry E --checkpoint FOLDER`: a released LLM (teacher or distilled student) scored with
the paper's protocol (the hook contract is in bench/evaluate.py).

Layout: a Hugging Face ``save_pretrained`` folder: ``config.json``, the weights (``model.safetensors``,
``pytorch_model.bin``, or sharded with ``model.safetensors.index.json`` / ``pytorch_model.bin.index.json``)
and the tokenizer files (``tokenizer.json``, or ``vocab.json`` + ``merges.txt``, or ``tokenizer.model``). MGSR
itself releases no code or weights; MiniLLM/DistiLLM-style releases of the baselines and teachers come as such
folders. Before anything is evaluated, the weights' names and shapes (read from the files' headers, no weights
in memory) must be exactly those of the architecture ``config.json`` names, as a strict load requires
(``from_pretrained``, which lm-eval then uses, only warns about missing weights and initialises them at random);
a tied output layer, a base-model save (no ``transformer.`` prefix) and the causal-mask buffers of older GPT-2
files are the tolerated differences. ``load_strict_folder`` does the full strict load (tests, small models).

Protocol (methods/mgsr/recipe.py, baselines/llm_kd/evaluation.py; MiniLLM/DistiLLM's eval scripts): Alpaca
prompts, prompts over 256 tokens dropped, sampling at T = 1 (top-p 1, no top-k) up to 512 tokens in total,
rouge_l@rouge-score (stemmed rougeL F x100, max over references) through an lm-eval task, mean over sampling
seeds 10-50. ``instruct-avg5`` (the default dataset, Table 1's average column) is the unweighted mean over
Dolly, SelfInst, Vicuna, S-NI and UnNI, each scored this way. The metric's setting is the family of Table 1 the
folder's architecture belongs to, in the card's names ({teacher: opt-6.7b, student: opt-1.3b}, ...), read from
``config.json``; an architecture outside the paper's families records {model: <what it is>} and gets no Δ.
Scale ``small``: one sampling seed (10) and at most ``SMALL_PROMPTS`` prompts per set, recorded in the setting.
A rehearsal (``--max-samples M``) caps the prompts per set at M.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bench.evaluate import CheckpointError, Layout, load_strict, missing_file
from bench.recipe import RunContext, SeedResult, metric_record
from bench.registry import BenchError
from bench.spec import RunSpec

METRIC = "rouge_l@rouge-score"
EVAL_SETS = ("dolly", "self-inst", "vicuna", "sni", "unni")
AVERAGE = "instruct-avg5"
DEFAULT_DATASET = AVERAGE
SMALL_PROMPTS = 100
SMALL_SEEDS = (10,)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("tokenizer.model",))

# Table 1's families in the card's names: (role, name) per architecture signature. GPT-2 sizes are the released
# configs (baselines/llm_kd/models.GPT2_CONFIGS); OPT and LLaMA shapes are the published model configs [M]:
# OPT-1.3B 24 x 2048, OPT-6.7B 32 x 4096, OpenLLaMA-3B-v2 26 x 3200, OpenLLaMA-7B-v2 32 x 4096 with 2,048
# positions, LLaMA-2-7B 32 x 4096 with 4,096 positions, LLaMA-2-13B 40 x 5120.
FAMILIES: dict[str, dict[str, str]] = {
    "gpt2": {"teacher": "gpt2-xl", "student": "gpt2"},
    "opt": {"teacher": "opt-6.7b", "student": "opt-1.3b"},
    "openllama2": {"teacher": "openllama2-7b", "student": "openllama2-3b"},
    "llama2": {"teacher": "llama2-13b", "student": "llama2-7b"},
}
_SIGNATURES: dict[tuple, tuple[str, str]] = {
    ("gpt2", 48, 1600, None): ("gpt2", "teacher"),
    ("gpt2", 12, 768, None): ("gpt2", "student"),
    ("opt", 32, 4096, None): ("opt", "teacher"),
    ("opt", 24, 2048, None): ("opt", "student"),
    ("llama", 32, 4096, 2048): ("openllama2", "teacher"),
    ("llama", 26, 3200, 2048): ("openllama2", "student"),
    ("llama", 40, 5120, 4096): ("llama2", "teacher"),
    ("llama", 32, 4096, 4096): ("llama2", "student"),
}

_FOLDER = ("Hugging Face save_pretrained folder: config.json, model.safetensors or pytorch_model.bin (or their "
           "sharded index), tokenizer files")


def _layout(entry: str) -> Layout:
    role = "teacher" if entry == "teacher" else "student"
    return Layout(files=("config.json", "model.safetensors | pytorch_model.bin", "tokenizer files"),
                  source=("MGSR releases no weights; a save_pretrained folder of the " + role + " (e.g. a MiniLLM / "
                          "DistiLLM release downloaded with `huggingface-cli download <repo> --local-dir DIR`, or "
                          "one written by `bench reproduce mgsr`)"),
                  format=_FOLDER, note=f"the {role} of one of Table 1's families (GPT-2, OPT, OpenLLaMA2, "
                                       f"LLaMA2), read from config.json", extra={"role": role})


LAYOUTS: dict[str, Layout] = {e: _layout(e) for e in
                              ("mgsr", "sft", "kd", "seqkd", "imitkd", "gkd", "minillm", "distillm", "teacher")}


def released_spec(card: Any, entry: str, scale: str, dataset: str | None = None) -> dict[str, Any]:
    """RunSpec fields: one evaluation set of Table 1 or their average (default), the paper's sampling protocol."""
    from baselines.llm_kd.evaluation import PAPER_SEEDS, EvalProtocol

    dataset = dataset or DEFAULT_DATASET
    if dataset not in (*EVAL_SETS, AVERAGE):
        raise BenchError(f"mgsr released models are scored on {', '.join((*EVAL_SETS, AVERAGE))}, not {dataset!r}")
    protocol = EvalProtocol()
    seeds = list(SMALL_SEEDS if scale == "small" else PAPER_SEEDS)
    sampler = {"max_prompt_tokens": protocol.max_prompt_tokens, "max_total_tokens": protocol.max_total_tokens,
               "temperature": protocol.temperature, "top_p": protocol.top_p, "top_k": protocol.top_k,
               "eval_seeds": seeds, "eval_batch_size": protocol.batch_size,
               "max_prompts": SMALL_PROMPTS if scale == "small" else None}
    # split "test": the card's cells carry no split (so "test"); the sets' files are their "eval" splits
    return {"dataset": dataset, "split": "test", "metrics": [METRIC], "sampler": sampler, "precision": "fp32",
            "args": {"role": LAYOUTS[entry].extra["role"], "layout": _FOLDER}, "setting": {}}


# ------------------------------------------------------------------------------------------------ the folder
def check_folder(folder: Path) -> None:
    """One line naming the first file a save_pretrained folder lacks."""
    if not folder.is_dir():
        raise missing_file(folder, "model folder (config.json, weights, tokenizer files)",
                           "the release's Hugging Face repository (`huggingface-cli download <repo> --local-dir "
                           "DIR`)")
    if not (folder / "config.json").is_file():
        raise missing_file(folder / "config.json", "the model's config.json", "the release it came with")
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        raise missing_file(folder / "model.safetensors", f"the weights ({' or '.join(WEIGHT_FILES)})",
                           "the release it came with")
    if not any(all((folder / f).is_file() for f in group) for group in TOKENIZER_FILES):
        raise missing_file(folder / "tokenizer.json", "the tokenizer files (tokenizer.json, or vocab.json + "
                           "merges.txt, or tokenizer.model)", "the release it came with")


def read_weights(folder: Path, shapes_only: bool = False) -> dict[str, Any]:
    """Every tensor of the folder's weights (single file or shards), on the CPU; with ``shapes_only``, meta
    tensors of the same shapes and dtypes (file headers / memory-mapped reads: no weights in memory)."""
    import torch

    def one(path: Path) -> dict[str, Any]:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            if not shapes_only:
                from safetensors.torch import load_file

                return load_file(str(path))
            with safe_open(str(path), framework="pt") as f:
                return {k: torch.empty(f.get_slice(k).get_shape(), device="meta")
                        for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
        from bench.evaluate import read_checkpoint

        try:  # pytorch_model.bin: memory-mapped, so reading shapes costs no memory
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # a legacy (pre-zip) torch file cannot be memory-mapped: read it whole
            state = read_checkpoint(path, "model weights")
        if shapes_only:
            return {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in state.items()}
        return state

    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return one(folder / name)
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index).is_file():
            shards = sorted(set(json.loads((folder / index).read_text())["weight_map"].values()))
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                if not (folder / shard).is_file():
                    raise missing_file(folder / shard, f"weight shard listed in {index}", "the release it came with")
                state.update(one(folder / shard))
            return state
    raise missing_file(folder / "model.safetensors", "the weights", "the release it came with")


def _architecture(folder: Path) -> tuple[Any, Any]:
    """(config, the model config.json names on the meta device: no memory)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    check_folder(folder)
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return config, model


def _as_saved_by_today(model: Any, config: Any, state: dict[str, Any]) -> dict[str, Any]:
    """The keys today's model has for the same weights: a base-model save gets its prefix, the causal-mask
    buffers older GPT-2 files hold are dropped, and a tied output layer shares the input embedding."""
    own = set(model.state_dict())
    prefix = model.base_model_prefix
    if not any(k.startswith(f"{prefix}.") for k in state) and any(f"{prefix}.{k}" in own for k in state):
        state = {(f"{prefix}.{k}" if f"{prefix}.{k}" in own else k): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if k in own or not k.endswith((".attn.bias", ".attn.masked_bias"))}
    out_key = next((k for k in own if k.endswith("lm_head.weight")), None)
    if getattr(config, "tie_word_embeddings", True) and out_key and out_key not in state:
        emb = model.get_input_embeddings()
        emb_key = next(k for k, p in model.named_parameters(remove_duplicate=False) if p is emb.weight)
        if emb_key in state:
            state[out_key] = state[emb_key]
    return state


def check_strict(folder: Path) -> Any:
    """The gate of an evaluation: the folder's weight names and shapes are exactly those of the architecture
    config.json names (from headers, without loading the weights); returns (config, parameter count). One line
    otherwise."""
    from bench.evaluate import layout_problem

    config, model = _architecture(folder)
    problem = layout_problem(model, _as_saved_by_today(model, config, read_weights(folder, shapes_only=True)))
    if problem:
        raise CheckpointError(f"checkpoint {folder} is not in the official {config.model_type} layout "
                              f"({_FOLDER}): {problem}")
    return config, sum(p.numel() for p in model.parameters())


def load_strict_folder(folder: Path) -> Any:
    """The architecture config.json names, holding exactly the folder's weights (strict), in eval mode."""
    config, model = _architecture(folder)
    state = _as_saved_by_today(model, config, read_weights(folder))
    model = model.to_empty(device="cpu")
    load_strict(model, state, folder, f"{config.model_type} ({_FOLDER})")
    if getattr(config, "tie_word_embeddings", True):
        model.tie_weights()
    return model.eval()


def family_setting(config: Any, role: str) -> dict[str, str]:
    """The card's setting of the Table 1 family this architecture is the ``role`` of; {model: ...} otherwise."""
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    width = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None)
    positions = getattr(config, "max_position_embeddings", None) if config.model_type == "llama" else None
    found = _SIGNATURES.get((config.model_type, layers, width, positions))
    if found is None:
        return {"model": f"{config.model_type} {layers} layers x {width}"}
    family, arch_role = found
    if arch_role != role:
        raise CheckpointError(f"config.json describes {FAMILIES[family][arch_role]}, the {arch_role} of the "
                              f"{family} family; entry role is {role}")
    return dict(FAMILIES[family])


# ---------------------------------------------------------------------------------------------- evaluating
def _score_set(spec: RunSpec, ctx: RunContext, seed: int, folder: Path, tokenizer: Any, name: str,
               protocol: Any, hflm_box: list) -> dict[str, Any]:
    """One evaluation set: per-prompt rows per sampling seed as shards (resume), the mean over seeds."""
    from baselines.llm_kd.evaluation import (
        evaluate_seed,
        load_hflm,
        summarise,
        task_rows,
        write_task,
    )
    from bench import atomic
    from bench.data.formats import open_dataset

    records = list(open_dataset(name, "eval", ctx.data_root))
    limit = len(records)
    if spec.sampler.get("max_prompts"):
        limit = min(limit, int(spec.sampler["max_prompts"]))
    records = records[: spec.capped("max_samples", limit)]
    rows, dropped = task_rows(records, tokenizer, protocol.max_prompt_tokens)
    task = f"released_{name.replace('-', '_')}"
    task_dir = ctx.work_dir(seed) / f"lm_eval_{task}"
    write_task(task_dir, task, rows, protocol)
    per_seed = []
    for s in protocol.seeds:
        shard = f"{name}-eval-seed{s}"
        meta_path = ctx.work_dir(seed) / f"{shard}.json"
        if ctx.handle.shard_done(seed, shard) and meta_path.exists():
            items = [r for r in ctx.handle.read_items(seed) if r["set"] == name and r["eval_seed"] == s]
            per_seed.append({"seed": s, "value": sum(r["rougeL"] for r in items) / len(items), "n": len(items),
                             "protocol": json.loads(meta_path.read_text())})
            continue
        if not hflm_box:
            hflm_box.append(load_hflm(folder, protocol, device=ctx.device))
        out = evaluate_seed(hflm_box[0], task_dir, task, s, protocol)
        atomic.write_json(meta_path, out["protocol"])
        ctx.handle.write_shard(seed, shard, [
            {"set": name, "eval_seed": s, "doc_id": d, "id": rows[d]["id"], "rougeL": v, "prediction": p}
            for d, v, p in zip(out["doc_ids"], out["per_item"], out["predictions"])])
        per_seed.append(out)
        ctx.log(f"    {name} seed {s}: ROUGE-L {out['value']:.2f} over {out['n']} prompts")
    summary = summarise(per_seed)
    summary.update(dropped_prompts=dropped, prompts=len(records), lm_eval=per_seed[0]["protocol"],
                   fingerprint=open_dataset(name, "eval", ctx.data_root).fingerprint())
    return summary


def evaluate_released(spec: RunSpec, checkpoint: Path, ctx: RunContext) -> SeedResult:
    import lm_eval
    from transformers import AutoTokenizer

    from baselines.llm_kd.evaluation import EvalProtocol
    from baselines.llm_kd.pipeline import folder_sha256
    from bench.metrics.llm import ROUGE_PROTOCOL

    folder = Path(checkpoint)
    seed = int(ctx.extra.get("seed", 0))
    # the gate: exactly the weights the architecture needs (from_pretrained would only warn), checked from the
    # files' headers; lm-eval's HFLM then loads the folder itself, as the recipe's evaluation does
    config, params = check_strict(folder)
    setting = family_setting(config, spec.args["role"])
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    sm = spec.sampler
    protocol = EvalProtocol(max_prompt_tokens=int(sm["max_prompt_tokens"]),
                            max_total_tokens=int(sm["max_total_tokens"]), temperature=float(sm["temperature"]),
                            top_p=float(sm["top_p"]), top_k=int(sm["top_k"]),
                            seeds=tuple(int(s) for s in sm["eval_seeds"]), batch_size=int(sm["eval_batch_size"]))
    sets = list(EVAL_SETS) if spec.dataset == AVERAGE else [spec.dataset]
    t0, c0 = time.perf_counter(), time.process_time()
    hflm_box: list = []
    per_set = {name: _score_set(spec, ctx, seed, folder, tokenizer, name, protocol, hflm_box) for name in sets}
    value = sum(s["value"] for s in per_set.values()) / len(per_set)  # unweighted mean over the sets
    n = sum(s["n"] for s in per_set.values())
    if sm.get("max_prompts"):
        setting["prompts_per_set"] = int(sm["max_prompts"])  # the small protocol: its own setting, no delta
        setting["eval_seeds"] = len(protocol.seeds)
    record = metric_record(METRIC, value, n, setting, {
        **ROUGE_PROTOCOL, **protocol.describe(), "aggregation": "unweighted mean over the sets" if len(sets) > 1
        else "one set", "per_set": {k: v["value"] for k, v in per_set.items()},
        "per_set_eval_seed": {k: v["per_eval_seed"] for k, v in per_set.items()},
        "dropped_prompts": {k: v["dropped_prompts"] for k, v in per_set.items()},
        "prompts": {k: v["prompts"] for k, v in per_set.items()}, "data_split": "eval",
        "lm_eval": next(iter(per_set.values()))["lm_eval"]})
    cost = {"params_m": params / 1e6, "eval_wall_s": time.perf_counter() - t0, "eval_cpu_s": time.process_time() - c0,
            "nfe": None}
    provenance = {"dataset_fingerprint": {k: v["fingerprint"] for k, v in per_set.items()},
                  "checkpoint_folder_sha256": folder_sha256(folder), "lm_eval_version": lm_eval.__version__,
                  "tokenizer_vocab": len(tokenizer), "model_type": setting}
    return SeedResult(metrics=[record], cost=cost, provenance=provenance)
