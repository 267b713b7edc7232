"""Training students and teachers on the shared loop, with checkpoint selection on the validation split, and
the artifacts several runs share (the teacher, the SFT-initialised student, SeqKD's teacher samples).

* `train_model` wraps a student and an objective in a DistillModule and runs bench.train.train (checkpoints
  and resume come from there). A validation hook every `select_every` steps (and at the end) computes the
  validation LM loss (fed to the objective's validation hooks, e.g. DistiLLM's adaptive threshold) and, with
  `select="rouge"`, the validation ROUGE-L of sampled responses (T = 1, one fixed seed), as the baselines
  select checkpoints; the best student is saved as a Hugging Face folder `best/` with `selection.json`.
  `select="loss"` keeps the lowest validation loss (how DistiLLM picks its SFT-init students), "last" the end.
* `cached` builds an artifact once under a cache folder, keyed by a hash of everything it depends on;
  the folder appears atomically (a `DONE` marker is written last) and its work folder keeps the training
  checkpoints, so an interrupted build resumes.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from baselines.llm_kd.data import Example, collate_examples, forward_logits
from baselines.llm_kd.models import save_hf_folder
from baselines.llm_kd.module import DistillModule, GenerationSettings, Objective, TokenInfo
from baselines.llm_kd.objectives import lm_loss
from baselines.llm_kd.sampling import sample
from bench import atomic
from bench.registry import BenchError

SELECTIONS = ("rouge", "loss", "last")


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def folder_sha256(folder: Path) -> str:
    """sha256 over the weight files of a saved model folder (what the run record calls checkpoint sha256)."""
    h = hashlib.sha256()
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin"))
    for p in files:
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def cached(cache_root: Path, kind: str, key: dict[str, Any], build: Callable[[Path, Path], None],
           log: Callable[[str], None] = print) -> Path:
    """The artifact folder `<cache_root>/<kind>-<hash(key)>`, built by build(work_dir, out_dir) if absent."""
    name = f"{kind}-{digest(key)}"
    out = cache_root / name
    if (out / "DONE").exists():
        return out
    work = cache_root / f"{name}.work"
    work.mkdir(parents=True, exist_ok=True)
    (work / "key.json").write_text(json.dumps(key, indent=1, sort_keys=True, default=str))
    log(f"  building shared {kind} ({name})")
    tmp = cache_root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    build(work, tmp)
    (tmp / "key.json").write_text(json.dumps(key, indent=1, sort_keys=True, default=str))
    (tmp / "DONE").write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


@dataclass(frozen=True)
class Selection:
    select: str = "rouge"      # rouge | loss | last (see the module docstring)
    every: int = 0             # validation every N steps (0: only at the end)
    max_items: int | None = None   # validation prompts used for ROUGE-L (None: all)
    seed: int = 1234           # sampling seed of the validation generations
    max_new_tokens: int | None = None   # cap on validation generations (None: up to max_total_tokens)

    def __post_init__(self) -> None:
        if self.select not in SELECTIONS:
            raise BenchError(f"checkpoint selection must be one of {', '.join(SELECTIONS)}, got {self.select!r}")


@dataclass
class TrainedModel:
    folder: Path
    selection: dict[str, Any]
    train_wall_s: float
    params: int


@torch.no_grad()
def validation_loss(model: Any, examples: Sequence[Example], pad_id: int, batch_size: int = 32) -> float:
    was = model.training
    model.eval()
    total, count = 0.0, 0
    device = next(model.parameters()).device
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate_examples(chunk, pad_id).items()}
        tokens = int((batch["labels"] != -100).sum())
        total += float(lm_loss(forward_logits(model, batch), batch)) * tokens
        count += tokens
    model.train(was)
    return total / max(count, 1)


@torch.no_grad()
def validation_rouge(model: Any, tokenizer: Any, examples: Sequence[Example], references: Sequence[Sequence[str]],
                     gen: GenerationSettings, seed: int, batch_size: int = 64,
                     max_new_tokens: int | None = None) -> float:
    from bench.metrics.llm import rouge_l

    generator = torch.Generator().manual_seed(seed)
    predictions = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        prompts = [list(e.prompt) for e in chunk]
        budgets = [min(gen.max_total_tokens - len(p), max_new_tokens or gen.max_total_tokens) for p in prompts]
        out = sample(model, prompts, budgets, tokenizer.eos_token_id, tokenizer.pad_token_id,
                     temperature=gen.temperature, top_k=gen.top_k, top_p=gen.top_p, generator=generator)
        predictions += [tokenizer.decode(r, skip_special_tokens=True) for r in out.responses]
    return rouge_l(predictions, list(references)).value


def train_model(student: Any, objective: Objective, teacher: Any | None, tokenizer: Any, train: Sequence[Example],
                valid: Sequence[Example], valid_refs: Sequence[Sequence[str]], cfg: Any, out_dir: Path,
                gen: GenerationSettings, selection: Selection, log: Callable[[str], None] = print) -> TrainedModel:
    """Train `student` with `objective` (bench.train TrainConfig `cfg`), select, save `out_dir/best`."""
    from bench.train import Hook
    from bench.train import train as run_training

    out_dir = Path(out_dir)
    best_dir = out_dir / "best"
    tokens = TokenInfo(tokenizer.eos_token_id, tokenizer.pad_token_id)
    module = DistillModule(student, objective, teacher, tokens, gen, total_steps=cfg.steps * cfg.grad_accum)
    valid_sel = list(valid)[: selection.max_items] if selection.max_items else list(valid)
    refs_sel = list(valid_refs)[: len(valid_sel)]
    state_path = out_dir / "selection.json"
    record: dict[str, Any] = json.loads(state_path.read_text()) if state_path.exists() else \
        {"rule": selection.select, "history": [], "best": None}

    hooks_fns = objective.validation_hooks()
    if hooks_fns:  # the reference before training (DistiLLM evaluates at step 0); checkpoints overwrite it
        loss0 = validation_loss(student, valid, tokens.pad_id)
        for _, fn in hooks_fns:
            fn(module, loss0)

    def on_validation(state: Any) -> dict[str, Any]:
        model: DistillModule = state.model
        loss = validation_loss(model.student, valid, tokens.pad_id)
        for _, fn in hooks_fns:
            fn(model, loss)
        entry: dict[str, Any] = {"step": state.step, "valid_loss": loss}
        if selection.select == "rouge":
            entry["valid_rougeL"] = validation_rouge(model.student, tokenizer, valid_sel, refs_sel, gen, selection.seed,
                                                     max_new_tokens=selection.max_new_tokens)
        score = {"rouge": entry.get("valid_rougeL"), "loss": -loss, "last": state.step}[selection.select]
        best = record["best"]
        if best is None or score > best["score"] or not best_dir.exists():
            record["best"] = {"step": state.step, "score": score, **entry}
            if state.rank == 0:
                save_hf_folder(model.student, tokenizer, best_dir)
        record["history"] = [h for h in record["history"] if h["step"] < state.step] + [entry]
        if state.rank == 0:
            atomic.write_json(state_path, record)
        return entry

    every = selection.every if selection.every > 0 else cfg.steps
    t0 = time.perf_counter()
    run_training(module, lambda m, b: m(b), list(train), cfg, out_dir / "train", resume=True,
          hooks=[Hook(every=every, fn=on_validation, name="validation")],
          collate_fn=lambda items: collate_examples(items, tokens.pad_id))
    wall = time.perf_counter() - t0
    if not best_dir.exists():  # resumed after the last checkpoint and hook: nothing left to select from
        raise BenchError(f"training in {out_dir} finished without a selected checkpoint; delete the folder to rerun")
    params = sum(p.numel() for p in student.parameters())
    return TrainedModel(best_dir, dict(record), wall, params)


@torch.no_grad()
def teacher_samples(teacher: Any, tokenizer: Any, examples: Sequence[Example], gen: GenerationSettings, seed: int,
                    batch_size: int = 64) -> list[Example]:
    """SeqKD's data: one sampled teacher response per training prompt (T = 1, as DistiLLM's
    generate_data_seqkd), same prompts and indices."""
    generator = torch.Generator().manual_seed(seed)
    out_examples = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        prompts = [list(e.prompt) for e in chunk]
        budgets = [min(gen.max_new_tokens, gen.max_total_tokens - len(p)) for p in prompts]
        out = sample(teacher, prompts, budgets, tokenizer.eos_token_id, tokenizer.pad_token_id,
                     temperature=gen.temperature, top_k=gen.top_k, top_p=gen.top_p, generator=generator)
        for e, r in zip(chunk, out.responses):
            out_examples.append(Example(e.prompt, tuple(r) if r else (tokenizer.eos_token_id,), e.index))
    return out_examples


def save_examples(examples: Sequence[Example], path: Path) -> None:
    atomic.write_json(path, [{"prompt": list(e.prompt), "response": list(e.response), "index": e.index}
                             for e in examples])


def load_examples(path: Path) -> list[Example]:
    return [Example(tuple(r["prompt"]), tuple(r["response"]), int(r["index"])) for r in json.loads(path.read_text())]
