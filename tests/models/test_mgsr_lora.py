"""MGSR's LoRA students (peft), the paper pairs' official shapes, the instruct-avg5 average, the ablation switches
and the mapping of the claims onto the smoke's tiny pair.

References: the published parameter counts of OPT-1.3B/6.7B and LLaMA2-7B/13B (PAPER_PAIRS), LoRA's parameter
count by hand (r (d_in + d_out) per adapted matrix), the merged weight W + (alpha / r) B A recomputed from the
adapter's own A and B, and the paper's average (unweighted mean of the five sets) by hand."""
from __future__ import annotations

import pytest
import torch

from baselines.llm_kd.models import (
    LLAMA_CONFIGS,
    OPT_CONFIGS,
    PAPER_PAIRS,
    LoraSettings,
    apply_lora,
    build_causal_lm,
    count_config_params,
    load_causal_lm,
    merged_state_dict,
    save_hf_folder,
    tiny_config,
    train_tokenizer,
)
from bench.registry import BenchError


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(["What does json.dumps do? Serialize obj to a JSON formatted str."] * 8, 300)


@pytest.mark.parametrize("pair", ["opt", "llama2"])
def test_official_shapes_have_the_published_parameter_counts(pair):
    from transformers import LlamaConfig, OPTConfig

    spec = PAPER_PAIRS[pair]
    configs = {**{k: OPTConfig(**v) for k, v in OPT_CONFIGS.items()},
               **{k: LlamaConfig(**v) for k, v in LLAMA_CONFIGS.items()}}
    assert count_config_params(configs[spec.teacher]) == spec.teacher_params
    assert count_config_params(configs[spec.student]) == spec.student_params
    assert spec.peft == "lora"


@pytest.mark.parametrize("name,layers,width", [("opt-1.3b", 24, 2048), ("Llama-2-7b-hf", 32, 4096)])
def test_lora_trains_only_the_adapter_with_distillms_defaults(name, layers, width):
    from transformers import AutoModelForCausalLM, LlamaConfig, OPTConfig

    config = OPTConfig(**OPT_CONFIGS[name]) if name.startswith("opt") else LlamaConfig(**LLAMA_CONFIGS[name])
    with torch.device("meta"):
        model = apply_lora(AutoModelForCausalLM.from_config(config), LoraSettings())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # q_proj and v_proj of every layer, each with A [r, d] and B [d, r], r = 16
    assert trainable == layers * 2 * (16 * width + width * 16)
    assert model.peft_config["default"].lora_alpha == 64 and model.peft_config["default"].lora_dropout == 0.1


@pytest.mark.parametrize("family", ["opt", "llama"])
def test_merged_folder_is_the_adapted_model(family, tokenizer, tmp_path):
    """A saved LoRA student is a plain folder of the base architecture: it loads strictly without peft and gives
    the adapted model's logits; saving leaves the adapter in place (training goes on)."""
    config = tiny_config(family, len(tokenizer), 32, n_layer=2, n_embd=16, n_head=2, eos_id=tokenizer.eos_token_id,
                         dropout=0.0)
    model = apply_lora(build_causal_lm(config, seed=1), LoraSettings(r=4, alpha=8, dropout=0.0), seed=2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(generator=torch.Generator().manual_seed(len(name)))
    model.eval()
    ids = torch.randint(0, len(tokenizer), (2, 7), generator=torch.Generator().manual_seed(0))
    expected = model(input_ids=ids).logits
    # W + (alpha / r) B A, recomputed from the adapter's own matrices
    layer = model.get_base_model().model
    q = (layer.decoder.layers[0].self_attn.q_proj if family == "opt" else layer.layers[0].self_attn.q_proj)
    key = ("model.decoder.layers.0.self_attn.q_proj.weight" if family == "opt"
           else "model.layers.0.self_attn.q_proj.weight")
    by_hand = q.base_layer.weight + 2.0 * q.lora_B["default"].weight @ q.lora_A["default"].weight
    torch.testing.assert_close(merged_state_dict(model)[key], by_hand)

    folder = save_hf_folder(model, tokenizer, tmp_path / "student")
    from transformers import AutoModelForCausalLM

    _, info = AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert (folder / "lora.json").exists() and not (folder / "adapter_config.json").exists()
    torch.testing.assert_close(load_causal_lm(folder)[0].eval()(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(input_ids=ids).logits, expected)  # the adapter was not merged in place


def test_lora_settings_reject_bad_input(tokenizer):
    with pytest.raises(BenchError, match="unknown LoRA option"):
        LoraSettings.parse({"rank": 8})
    with pytest.raises(BenchError, match="bad LoRA settings"):
        LoraSettings.parse({"r": 0})
    config = tiny_config("opt", len(tokenizer), 32, 1, 16, 2, tokenizer.eos_token_id)
    with pytest.raises(BenchError, match="c_attn not in OPTForCausalLM"):
        apply_lora(build_causal_lm(config, 0), LoraSettings(target_modules=("c_attn",)))


def test_instruct_avg5_is_the_unweighted_mean_of_the_sets():
    from methods.mgsr.recipe import average_sets

    per_set = {"dolly": {"value": 20.0, "n": 500, "per_eval_seed": {"10": 19.0, "20": 21.0}},
               "self-inst": {"value": 10.0, "n": 252, "per_eval_seed": {"10": 10.0, "20": 10.0}},
               "vicuna": {"value": 15.0, "n": 80, "per_eval_seed": {"10": 14.0, "20": 16.0}},
               "sni": {"value": 30.0, "n": 9000, "per_eval_seed": {"10": 30.0, "20": 30.0}},
               "unni": {"value": 25.0, "n": 10000, "per_eval_seed": {"10": 24.0, "20": 26.0}}}
    avg = average_sets(per_set)
    assert avg["value"] == pytest.approx((20 + 10 + 15 + 30 + 25) / 5)  # 20.0; weighted by n it would be ~27
    assert avg["n"] == 500 + 252 + 80 + 9000 + 10000
    assert avg["n_per_set"] == {"dolly": 500, "self-inst": 252, "vicuna": 80, "sni": 9000, "unni": 10000}
    assert avg["per_eval_seed"] == pytest.approx({"10": (19 + 10 + 14 + 30 + 24) / 5, "20": (21 + 10 + 16 + 30 + 26) / 5})


def _claim(claim_id):
    from bench import papers

    (claim,) = [c for c in papers.card("mgsr").claims if c.id == claim_id]
    return claim


@pytest.mark.parametrize("claim_id", ["mgsr-beats-distillm-opt", "mgsr-student-beats-teacher-llama2"])
def test_claims_map_onto_the_smoke_pair_and_the_paper_runs(claim_id):
    """The smoke specs stand for instruct-avg5 at both claim settings (through stands_for["settings"]); at paper
    scale the pair's own avg5 runs match the claim's setting directly; a GPT-2 run matches neither."""
    from bench import runner
    from bench.claims import match_setting

    claim = _claim(claim_id)
    smoke = {s.entry: s for s in runner.plan("mgsr", "smoke")}
    for entry in (claim.lhs, claim.rhs):
        spec = smoke[entry]
        assert spec.stands_for["dataset"] == claim.dataset == "instruct-avg5"
        ok, failed, _ = match_setting(claim.setting, dict(spec.setting), spec.stands_for["settings"])
        assert ok, failed
    paper = [s for s in runner.plan("mgsr", "paper", [claim.lhs]) if s.dataset == "instruct-avg5"]
    matching = [s for s in paper if match_setting(claim.setting, dict(s.setting), [])[0]]
    assert len(matching) == 1 and matching[0].args["lora"] == {"r": 16, "alpha": 64, "dropout": 0.1,
                                                               "target_modules": ["q_proj", "v_proj"]}
    assert matching[0].args["eval_sets"] == ["dolly", "self-inst", "vicuna", "sni", "unni"]
    gpt2 = [s for s in paper if s.args["pair"] == "gpt2"]
    assert gpt2 and "lora" not in gpt2[0].args and not match_setting(claim.setting, dict(gpt2[0].setting), [])[0]


def test_ablation_rows_switch_the_three_components():
    """Table 2's rows are MGSR with components switched off: row 1 none, row 2 + SCRG, row 3 + DAC-KL; the full
    entry adds the span loss. They run at paper scale (one run per pair and set, like every entry)."""
    from bench import runner
    from methods.mgsr.objective import MGSR
    from methods.mgsr.recipe import ABLATIONS

    boundary = torch.zeros(8, dtype=torch.bool)
    built = {e: MGSR(boundary, **ABLATIONS[e]) for e in ABLATIONS}
    built["mgsr"] = MGSR(boundary)
    has = {e: (m.scrg["corrections"] > 0, m.dac is not None, m.weights[2] > 0) for e, m in built.items()}
    assert has == {"mgsr-ablation-1": (False, False, False), "mgsr-ablation-2": (True, False, False),
                   "mgsr-ablation-3": (True, True, False), "mgsr": (True, True, True)}
    paper = runner.plan("mgsr", "paper", list(ABLATIONS))
    assert {s.entry for s in paper} == set(ABLATIONS) and {s.impl for s in paper} == {"mgsr"}
    assert all(s.args["objective"] == ABLATIONS[s.entry] for s in paper)
