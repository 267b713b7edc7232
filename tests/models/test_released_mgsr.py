"""Released LLM folders (bench evaluate mgsr): Hugging Face save_pretrained folders in each official form
(safetensors, pytorch_model.bin, sharded, and the original GPT-2 hub form with base-model keys, causal-mask
buffers and a tied head left out) load strictly and give the saved model's logits; a folder missing a weight
or its tokenizer fails in one line; Table 1's families are recognised from config.json; the CLI runs end to
end and its ROUGE-L equals rouge-score recomputed on the recorded predictions."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from bench.evaluate import CheckpointError
from methods.mgsr import released

TEXTS = ["Give three tips for staying healthy. Eat well, sleep, and exercise.",
         "What is the capital of France? The capital of France is Paris.",
         "Name a primary colour. Red is a primary colour."] * 4


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A tiny GPT-2 with a byte-level BPE tokenizer, saved with save_pretrained (safetensors)."""
    from baselines.llm_kd.models import (
        build_gpt2,
        gpt2_config,
        save_hf_folder,
        train_tokenizer,
    )

    tok = train_tokenizer(TEXTS, vocab_size=300)
    model = build_gpt2(gpt2_config(len(tok), 512, n_layer=2, n_embd=32, n_head=2, eos_id=tok.eos_token_id,
                                   dropout=0.0), seed=0).eval()
    return save_hf_folder(model, tok, tmp_path_factory.mktemp("released") / "student"), model, tok


def logits(model, tok):
    ids = torch.tensor([tok.encode(TEXTS[0])])
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_safetensors_folder_loads_strictly_with_the_same_logits(tiny_folder):
    folder, model, tok = tiny_folder
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    loaded = released.load_strict_folder(folder)
    torch.testing.assert_close(logits(loaded, tok), logits(model, tok), rtol=0, atol=0)


@pytest.mark.parametrize("form", ["bin", "sharded"])
def test_bin_and_sharded_folders_load(tiny_folder, tmp_path, form):
    _, model, tok = tiny_folder
    out = tmp_path / form
    if form == "bin":
        out.mkdir()  # what save_pretrained wrote before safetensors: torch.save of the state dict
        model.config.save_pretrained(out)
        torch.save(model.state_dict(), out / "pytorch_model.bin")
    else:
        model.save_pretrained(out, max_shard_size="20KB")
        assert (out / "model.safetensors.index.json").is_file()
    tok.save_pretrained(out)
    torch.testing.assert_close(logits(released.load_strict_folder(out), tok), logits(model, tok), rtol=0, atol=0)
    _, params = released.check_strict(out)  # the evaluation's gate, from headers only
    assert params == sum(p.numel() for p in model.parameters())


def test_original_gpt2_hub_form_loads(tiny_folder, tmp_path):
    """The openai-community/gpt2 pytorch_model.bin form: GPT2Model keys (no 'transformer.'), the causal-mask
    buffers attn.bias / attn.masked_bias, and no lm_head (tied to wte)."""
    folder, model, tok = tiny_folder
    out = tmp_path / "hub"
    shutil.copytree(folder, out)
    (out / "model.safetensors").unlink()
    n = model.config.n_positions
    state = {k.removeprefix("transformer."): v for k, v in model.state_dict().items() if not k.startswith("lm_head")}
    for i in range(model.config.n_layer):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(n, n)).view(1, 1, n, n)
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(state, out / "pytorch_model.bin")
    torch.testing.assert_close(logits(released.load_strict_folder(out), tok), logits(model, tok), rtol=0, atol=0)
    released.check_strict(out)


def test_a_missing_weight_fails_in_one_line(tiny_folder, tmp_path):
    """from_pretrained would only warn and initialise the missing weight at random; the strict gate refuses."""
    from safetensors.torch import load_file, save_file

    folder, _, _ = tiny_folder
    out = tmp_path / "broken"
    shutil.copytree(folder, out)
    state = load_file(str(out / "model.safetensors"))
    del state["transformer.h.1.mlp.c_fc.weight"]
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    for gate in (released.load_strict_folder, released.check_strict):
        with pytest.raises(CheckpointError, match=r"missing keys transformer\.h\.1\.mlp\.c_fc\.weight") as info:
            gate(out)
        assert "\n" not in str(info.value)


def test_a_folder_without_tokenizer_names_what_is_missing(tiny_folder, tmp_path):
    folder, _, _ = tiny_folder
    out = tmp_path / "no-tok"
    out.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(folder / name, out / name)
    with pytest.raises(CheckpointError, match="tokenizer files.*not found"):
        released.check_folder(out)


def test_table1_families_are_recognised_from_config():
    from transformers import GPT2Config, LlamaConfig, OPTConfig

    from baselines.llm_kd.models import GPT2_CONFIGS

    assert released.family_setting(GPT2Config(**GPT2_CONFIGS["gpt2"]), "student") == \
        {"teacher": "gpt2-xl", "student": "gpt2"}
    assert released.family_setting(OPTConfig(hidden_size=2048, num_hidden_layers=24), "student") == \
        {"teacher": "opt-6.7b", "student": "opt-1.3b"}  # the card's claim setting for the OPT family
    llama7 = {"hidden_size": 4096, "num_hidden_layers": 32}
    assert released.family_setting(LlamaConfig(**llama7, max_position_embeddings=4096), "student") == \
        {"teacher": "llama2-13b", "student": "llama2-7b"}
    assert released.family_setting(LlamaConfig(**llama7, max_position_embeddings=2048), "teacher") == \
        {"teacher": "openllama2-7b", "student": "openllama2-3b"}
    with pytest.raises(CheckpointError, match="opt-6.7b, the teacher of the opt family; entry role is student"):
        released.family_setting(OPTConfig(hidden_size=4096, num_hidden_layers=32), "student")
    assert released.family_setting(GPT2Config(n_layer=2, n_embd=32), "student") == {"model": "gpt2 2 layers x 32"}


def write_eval_sets(root, n: int = 3):
    """MiniLLM's processed evaluation files (datasets/<set>.yaml layouts), n records each."""
    paths = {"dolly": "minillm/data/dolly/valid.jsonl", "self-inst": "minillm/data/self-inst/valid.jsonl",
             "vicuna": "minillm/data/vicuna/valid.jsonl", "sni": "minillm/data/sinst/11_/valid.jsonl",
             "unni": "minillm/data/uinst/11_/valid.jsonl"}
    for k, rel in enumerate(paths.values()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [{"instruction": f"Question {k}.{i}: {TEXTS[i].split('?')[0]}?", "input": "",
                 "output": [TEXTS[i], "An answer."]} for i in range(n)]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    shutil.copy(root / paths["dolly"], root / "minillm/data/dolly/raw.jsonl")  # the dolly card's layout
    return root


def short_answers(model, eos_id: int, p_eos: float = 0.3):
    """A copy whose next-token distribution ignores the input: EOS with probability about ``p_eos``, the rest
    spread evenly, so sampled answers are a few tokens long (a 512-token answer per prompt would take minutes on
    a CPU). The final LayerNorm outputs a constant vector along EOS's embedding; logits are its dot products."""
    import copy
    import math

    model = copy.deepcopy(model)
    wte = model.transformer.wte.weight.detach()
    others = model.config.vocab_size - 1
    alpha = math.log(p_eos * others / (1 - p_eos))
    with torch.no_grad():
        wte[eos_id] = wte[eos_id] / wte[eos_id].norm() * 20  # far longer than the other rows (std 0.02 each)
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(alpha * wte[eos_id] / wte[eos_id].norm() ** 2)
    return model


def test_bench_evaluate_mgsr_end_to_end(tiny_folder, tmp_path, store_root):
    from rouge_score import rouge_scorer
    from typer.testing import CliRunner

    from baselines.llm_kd.models import save_hf_folder
    from bench.cli import app

    _, model, tok = tiny_folder
    folder = save_hf_folder(short_answers(model, tok.eos_token_id), tok, tmp_path / "minillm-student")
    root = write_eval_sets(tmp_path / "data")
    args = ["evaluate", "mgsr", "--entry", "minillm", "--checkpoint", str(folder), "--data-root", str(root),
            "--scale", "small", "--max-samples", "2", "--device", "cpu", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)["run"]  # lm-eval logs to stderr
    assert run["dataset"] == "instruct-avg5" and run["status"] == "complete"
    (metric,) = run["metrics"]
    assert metric["metric"] == "rouge_l@rouge-score" and metric["n"] == 10  # 2 prompts x 5 sets
    assert metric["setting"] == {"model": "gpt2 2 layers x 32", "prompts_per_set": 100, "eval_seeds": 1}
    # independent: rouge-score on the recorded predictions, max over references, x100; mean per set, then over sets
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    items_dir = store_root / "mgsr" / run["run_id"] / "items" / "0"
    rows = [json.loads(line) for p in sorted(items_dir.glob("*.jsonl")) for line in p.read_text().splitlines()]
    refs = [TEXTS[0], "An answer."], [TEXTS[1], "An answer."]
    per_set = {}
    for r in rows:
        best = max(scorer.score(ref, r["prediction"])["rougeL"].fmeasure for ref in refs[r["doc_id"]]) * 100
        per_set.setdefault(r["set"], []).append(best)
    assert sorted(per_set) == sorted(released.EVAL_SETS) and all(len(v) == 2 for v in per_set.values())
    expected = sum(sum(v) / len(v) for v in per_set.values()) / 5
    assert metric["value"] == pytest.approx(expected, abs=1e-9)
