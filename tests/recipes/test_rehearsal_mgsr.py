"""CPU rehearsal of MGSR's paper code path (issue 15): Dolly (MiniLLM's processing) and the five evaluation sets
in their official file layouts, and GPT-2 teacher/student folders in the hub's layout
(tests/fixtures_official/instruct.py), through the SFT teacher fine-tuning, the SFT-initialised student, each
objective's training with ROUGE-L checkpoint selection, lm-eval generation with the five sampling seeds, the record
and the table. MGSR has no small scale (its recipe plans smoke and paper only).

The rehearsal caps (RunSpec.rehearsal) cut every training's steps (teacher, SFT init, student; epochs-based or
not), the validation prompts and the evaluated prompts; SeqKD samples the teacher only on the prompts the capped
steps visit (steps x batch)."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bench import runner
from bench.cli import app
from bench.store import Store
from tests.fixtures_official.instruct import write_gpt2_folders, write_instruction_data

pytestmark = pytest.mark.slow

CAPS = {"max_steps": 2, "max_samples": 2}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("llm-data")
    write_instruction_data(root)
    write_gpt2_folders(root)
    return root


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """One torch and one BLAS thread for every test here (tests/conftest.py)."""


def _metrics(result):
    return {m["metric"]: m for m in result["metrics"]}


def test_mgsr_paper_rehearsal_teacher_and_students(store_root, data_root):
    """The teacher, MGSR, SeqKD (teacher samples) and MiniLLM (its own step schedule) on Dolly; MGSR again on
    Self-Instruct, which reuses the student trained for Dolly."""
    store, logs = Store(store_root), []
    wanted = [("teacher", "dolly"), ("mgsr", "dolly"), ("seqkd", "dolly"), ("minillm", "dolly"),
              ("mgsr", "self-inst")]
    plan = {(s.entry, s.dataset): s for s in runner.plan("mgsr", "paper", data_root=data_root, rehearsal=CAPS)
            if s.args["pair"] == "gpt2"}
    outs = [runner.execute(plan[k], store, data_root=data_root, show_progress=False, log=logs.append) for k in wanted]
    for out in outs:
        result = out.result
        assert result["status"] == "complete" and result["rehearsal"] == CAPS
        rouge = _metrics(result)["rouge_l@rouge-score"]
        assert rouge["n"] == 2  # max_samples: two prompts of the evaluation file
        assert rouge["protocol"]["eval_seeds"] == [10, 20, 30, 40, 50]  # the papers' sampling seeds, all run
        assert 0.0 <= rouge["value"] <= 100.0
    # trained once each: the teacher, the SFT init, the MGSR student (Dolly and Self-Instruct share it)
    builds = [line for line in logs if "building shared" in line]
    assert sum("teacher" in b for b in builds) == 1 and sum("student-mgsr" in b for b in builds) == 1
    assert sum("sft-init" in b for b in builds) == 1
    table = CliRunner().invoke(app, ["table", "mgsr", "--all", "--format", "json"],
                               env={"BENCH_RESULTS": str(store_root)})
    assert table.exit_code == 0, table.output
    ours = [c for c in json.loads(table.output)["cells"] if c.get("run_id") in {o.run_id for o in outs}]
    assert ours and all(c["rehearsal"] and c["paper"] is None for c in ours)


@pytest.mark.parametrize("entry", ["sft", "imitkd", "gkd", "distillm", "mgsr-ablation-1"])
def test_mgsr_paper_rehearsal_other_baselines(store_root, data_root, entry):
    """The remaining objectives' paper paths (SFT from the pretrained student; ImitKD/GKD/DistiLLM from the SFT
    init with on-policy samples; Table 2's first ablation row, MGSR without its three components) on Vicuna."""
    (spec,) = [s for s in runner.plan("mgsr", "paper", [entry], data_root=data_root, rehearsal=CAPS)
               if s.dataset == "vicuna" and s.args["pair"] == "gpt2"]
    out = runner.execute(spec, Store(store_root), data_root=data_root, show_progress=False, log=lambda m: None)
    assert out.result["status"] == "complete"
    assert _metrics(out.result)["rouge_l@rouge-score"]["n"] == 2


def test_mgsr_paper_rehearsal_cli_one_entry_five_sets(store_root, data_root):
    """`bench reproduce mgsr --scale paper --entry kd --max-steps 2 --max-samples 2`: one KD student, evaluated on
    the five sets."""
    res = CliRunner().invoke(app, ["reproduce", "mgsr", "--scale", "paper", "--entry", "kd", "--data-root",
                                   str(data_root), "--max-steps", "2", "--max-samples", "2", "--device", "cpu"],
                             env={"BENCH_RESULTS": str(store_root)})
    assert res.exit_code == 0, res.output
    store = Store(store_root)
    specs = runner.plan("mgsr", "paper", ["kd"], data_root=data_root, rehearsal=CAPS)
    # only the GPT-2 pair's folders are under models/: the plan runs that family
    assert {s.args["pair"] for s in specs} == {"gpt2"}
    assert sorted(s.dataset for s in specs) == ["dolly", "instruct-avg5", "self-inst", "sni", "unni", "vicuna"]
    results = {}
    for spec in specs:
        results[spec.dataset] = result = store.read_result(store.run_dir(spec))
        assert result["status"] == "complete"
    for name in ("dolly", "self-inst", "vicuna", "sni", "unni"):
        assert _metrics(results[name])["rouge_l@rouge-score"]["n"] == 2
    # the instruct-avg5 run: its own record, the unweighted mean of the five sets with n per set; the same
    # student and the same sampling seeds give each set's value exactly
    avg = _metrics(results["instruct-avg5"])["rouge_l@rouge-score"]
    assert avg["n"] == 10 and avg["protocol"]["average"]["n_per_set"] == {k: 2 for k in
                                                                          ("dolly", "self-inst", "vicuna", "sni", "unni")}
    per_set = avg["protocol"]["average"]["value_per_set"]
    for name, value in per_set.items():
        assert value == pytest.approx(_metrics(results[name])["rouge_l@rouge-score"]["value"], abs=1e-9)
    assert avg["value"] == pytest.approx(sum(per_set.values()) / 5, abs=1e-12)


def test_mgsr_paper_without_models_names_the_folder(store_root, data_root, tmp_path):
    """Outside a rehearsal a missing model folder is one line naming it and how to get it."""
    import shutil

    broken = tmp_path / "no-models"
    shutil.copytree(data_root / "minillm", broken / "minillm")
    res = CliRunner().invoke(app, ["reproduce", "mgsr", "--scale", "paper", "--entry", "sft", "--data-root",
                                   str(broken), "--device", "cpu"],
                             env={"BENCH_RESULTS": str(store_root), "COLUMNS": "1000"})
    assert res.exit_code != 0
    (line,) = [x for x in res.output.splitlines() if x.startswith("error:")]
    assert "models/gpt2-xl" in line and "huggingface-cli download" in line


@pytest.fixture(scope="module")
def opt_root(tmp_path_factory):
    """The same data, and tiny random OPT folders under the names of the OPT pair (opt-6.7b -> opt-1.3b), in the
    hub's OPT layout (OPTForCausalLM config keys, the GPT-2 BPE tokenizer files OPT ships)."""
    import shutil

    import torch
    from transformers import AutoTokenizer, OPTConfig, OPTForCausalLM

    root = tmp_path_factory.mktemp("llm-opt")
    write_instruction_data(root)
    write_gpt2_folders(root / "gpt2-tok")  # only its tokenizer files are used
    tokenizer = AutoTokenizer.from_pretrained(root / "gpt2-tok" / "models" / "gpt2")
    eos = tokenizer.eos_token_id
    for k, (name, width) in enumerate((("opt-6.7b", 64), ("opt-1.3b", 32))):
        config = OPTConfig(vocab_size=len(tokenizer), hidden_size=width, num_hidden_layers=2, ffn_dim=4 * width,
                           num_attention_heads=2, max_position_embeddings=1024, word_embed_proj_dim=width,
                           do_layer_norm_before=True, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
        torch.manual_seed(k)
        folder = root / "models" / name
        OPTForCausalLM(config).save_pretrained(folder)
        for f in (root / "gpt2-tok" / "models" / "gpt2").iterdir():
            if not f.name.startswith(("config", "generation", "model")):
                shutil.copy(f, folder / f.name)
    shutil.rmtree(root / "gpt2-tok")
    return root


def test_mgsr_paper_rehearsal_lora_pair_avg5(store_root, opt_root):
    """The OPT pair's LoRA path: the teacher fine-tuned with its own adapter, the SFT init and the MGSR student
    with theirs (each saved merged, a plain OPT folder), and the instruct-avg5 record over the five sets; the
    record's setting is the claim's."""
    from transformers import AutoConfig

    plan = {s.entry: s for s in runner.plan("mgsr", "paper", ["mgsr"], data_root=opt_root, rehearsal=CAPS)
            if s.dataset == "instruct-avg5"}
    spec = plan["mgsr"]
    assert spec.args["pair"] == "opt" and spec.setting == {"teacher": "opt-6.7b", "student": "opt-1.3b"}
    logs = []
    out = runner.execute(spec, Store(store_root), data_root=opt_root, show_progress=False, log=logs.append)
    assert out.result["status"] == "complete"
    rouge = _metrics(out.result)["rouge_l@rouge-score"]
    assert rouge["n"] == 10 and set(rouge["protocol"]["average"]["n_per_set"].values()) == {2}
    shared = store_root / "mgsr" / "_shared"
    for kind in ("teacher", "sft-init", "student-mgsr"):
        (folder,) = [p for p in shared.glob(f"{kind}-*") if (p / "DONE").exists()]
        assert (folder / "lora.json").exists(), kind  # trained through an adapter, saved merged
        assert AutoConfig.from_pretrained(folder).model_type == "opt"
        assert not (folder / "adapter_config.json").exists()
