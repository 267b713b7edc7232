"""End-to-end smoke reproduction of MGSR through bench.runner.execute with a private run store: the teacher is
fine-tuned once per seed and shared, SFT and MGSR distil from it (MGSR from the shared SFT-initialised student),
every entry is selected on the validation split and scored through the lm-eval task; every record carries its
sanity metric (students: ROUGE-L gain over the untrained student; teacher: margin over the sft entry, the scratch
student) with its floor; a removed seed record is recomputed from the stored evaluation shards and the training
checkpoint without re-running either. Whether the shortened runs clear their floors is not asserted (a few steps
learn nothing); the full smoke's numbers are in methods/mgsr/recipe.py.

The schedules are shortened here (a few steps) to keep the test fast; the real smoke plan is the same code
with methods/mgsr/recipe.py SMOKE (its wall time and numbers are in the recipe's report)."""
from __future__ import annotations

import json
import time

import pytest

from baselines.llm_kd.pipeline import folder_sha256
from bench import papers, runner
from bench.sanity import FAILED, PASSED, run_sanity
from bench.store import Store
from methods.mgsr import recipe


def _metric(result, name):
    """The run's metric record `name` ("sanity": the one carrying a floor)."""
    (found,) = [m for m in result["metrics"] if ("floor" in m if name == "sanity" else m["metric"] == name)]
    return found


@pytest.fixture()
def mgsr_paper():
    """The manifest may not list the recipe yet: register it for this test, then restore the entry."""
    reg = papers.registries()["papers"]
    old = reg.get("mgsr")
    reg.unregister("mgsr")
    reg.register("mgsr", "methods.mgsr.recipe", **old.meta)
    papers.card.cache_clear()
    yield "mgsr"
    reg.unregister("mgsr")
    reg.register("mgsr", old.target, **old.meta)
    papers.card.cache_clear()


def test_smoke_plan_has_every_entry_with_one_budget(mgsr_paper):
    specs = runner.plan(mgsr_paper, "smoke")
    assert [s.entry for s in specs] == ["teacher", "sft", "kd", "seqkd", "imitkd", "gkd", "minillm", "distillm",
                                        "mgsr"]
    card_entries = {e.id for e in papers.card("mgsr").entries}
    assert {s.entry for s in specs} <= card_entries
    for spec in specs:
        assert spec.dataset == "instruct-docs" and spec.metrics == ["rouge_l@rouge-score"]
        assert spec.stands_for["dataset"] == "instruct-avg5"
        assert spec.stands_for["metrics"] == {"rouge_l@rouge-score": "rouge_l@rouge-score"}
        assert spec.args["eval_sets"] == ["dolly", "self-inst", "vicuna", "sni", "unni"]
        assert spec.setting == {"teacher": "tiny-opt-2x64", "student": "tiny-opt-2x48"}
        assert spec.args["lora"] == {"r": 16, "alpha": 64, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]}
        assert spec.sampler["temperature"] == 1.0 and spec.sampler["top_k"] == 0 and spec.sampler["top_p"] == 1.0
        assert spec.impl in recipe.IMPLS
    students = [s for s in specs if s.entry != "teacher"]
    assert len({json.dumps(s.train, sort_keys=True) for s in students}) == 1          # same schedule for all
    assert {s.args["student_init"] for s in students} == {"sft-init"}
    paper = runner.plan(mgsr_paper, "paper")
    assert {s.dataset for s in paper} == {"dolly", "self-inst", "vicuna", "sni", "unni", "instruct-avg5"}
    assert {s.args["pair"] for s in paper} == {"gpt2", "opt", "openllama2", "llama2"}
    assert all(s.sampler["eval_seeds"] == [10, 20, 30, 40, 50] and s.sampler["max_total_tokens"] == 512
               for s in paper)


@pytest.mark.slow
def test_smoke_reproduction_shares_the_teacher_and_resumes(mgsr_paper, store_root, monkeypatch):
    short = {"teacher": dict(recipe.SMOKE["teacher_train"], steps=8, select_every=4, valid_items=8),
             "init": dict(recipe.SMOKE["init_train"], steps=4),
             "student": dict(recipe.SMOKE["train"], steps=4, select_every=2, valid_items=8)}
    specs = [s.with_overrides(train=short, seeds=[0])
             for s in runner.plan(mgsr_paper, "smoke", entries=["teacher", "sft", "mgsr"])]
    store = Store(store_root)
    t0 = time.perf_counter()
    results = {s.entry: runner.execute(s, store, log=print, show_progress=False).result for s in specs}
    print(f"shortened smoke wall time {time.perf_counter() - t0:.1f} s")
    for entry, result in results.items():
        assert result["status"] == "complete", entry
        assert len(result["metrics"]) == 2
        metric, sanity = (_metric(result, name) for name in ("rouge_l@rouge-score", "sanity"))
        assert metric["metric"] == "rouge_l@rouge-score" and 0.0 <= metric["value"] <= 100.0
        assert metric["n"] == 96                                   # every test prompt fits 128 tokens
        proto = metric["protocol"]
        assert proto["eval_seeds"] == [10] and len(proto["lm_eval"]["task_hash"]) == 64
        assert proto["lm_eval"]["generation_kwargs"]["top_k"] == 0
        assert proto["selection_rule"] in ("rouge", "loss")
        prov = result["provenance"]
        assert len(prov["checkpoint_sha256"]) == 64 and prov["dataset_fingerprint"].startswith("sha256:")
        assert result["cost"]["gmacs"] > 0 and result["cost"]["params_m"] > 0
        # every entry carries its sanity metric with a floor; its standing is decided on it
        assert sanity["metric"] == ("rouge_l_margin@scratch" if entry == "teacher" else "rouge_l_gain@untrained")
        assert sanity["floor"]["value"] == (recipe.MARGIN_FLOOR if entry == "teacher" else recipe.GAIN_FLOOR)
        assert sanity["value"] == pytest.approx(metric["value"] - sanity["floor"]["trivial_value"], abs=1e-9)
        assert run_sanity(result).checks[0]["metric"] == sanity["metric"]
        assert run_sanity(result).status in (PASSED, FAILED)
    # the students' reference is the untrained student, scored by the same lm-eval task (its own evaluation)
    (untrained_eval,) = [p for p in (store_root / "mgsr" / "_shared").glob("untrained-student-eval-*")
                         if (p / "DONE").exists()]
    untrained = json.loads((untrained_eval / "eval.json").read_text())["value"]
    assert 0.0 <= untrained < 100.0
    for entry in ("sft", "mgsr"):
        assert _metric(results[entry], "sanity")["floor"]["trivial_value"] == pytest.approx(untrained, abs=1e-12)
    # the teacher's reference is the sft entry (the student trained from scratch with SFT): the margin is the
    # teacher's ROUGE-L minus the sft entry's, which the sft run scored through its own evaluation
    margin, sft_rouge = _metric(results["teacher"], "sanity"), _metric(results["sft"], "rouge_l@rouge-score")["value"]
    assert margin["floor"]["trivial_value"] == pytest.approx(sft_rouge, abs=1e-9)
    assert margin["value"] == pytest.approx(_metric(results["teacher"], "rouge_l@rouge-score")["value"] - sft_rouge,
                                            abs=1e-9)
    # the teacher entry is the shared teacher the students distilled from
    assert results["teacher"]["provenance"]["checkpoint_sha256"] == results["mgsr"]["provenance"]["teacher_sha256"]
    shared = store_root / "mgsr" / "_shared"
    assert len([p for p in shared.glob("teacher-*") if (p / "DONE").exists()]) == 1
    # the sft entry's model is the shared scratch student the teacher's margin was measured against
    (scratch,) = [p for p in shared.glob("scratch-sft-*") if "-eval-" not in p.name and (p / "DONE").exists()]
    assert results["sft"]["provenance"]["checkpoint_sha256"] == folder_sha256(scratch)
    assert len([p for p in shared.glob("sft-init-*") if (p / "DONE").exists()]) == 1
    # per-prompt rows are in the store: the 96 test prompts in five slices (one per Table 1 set), and the
    # record is instruct-avg5: the unweighted mean of the slices' means, with n per slice
    mgsr_dir = store.run_dir(specs[2])
    items = [json.loads(line) for f in (mgsr_dir / "items" / "0").glob("*.jsonl")
             for line in f.read_text().splitlines()]
    assert len(items) == 96 and len({r["eval_set"] for r in items}) == 5
    by_set = {k: [r["rougeL"] for r in items if r["eval_set"] == k] for k in {r["eval_set"] for r in items}}
    rouge = _metric(results["mgsr"], "rouge_l@rouge-score")
    assert rouge["protocol"]["average"]["n_per_set"] == {k: len(v) for k, v in by_set.items()}
    assert rouge["value"] == pytest.approx(sum(sum(v) / len(v) for v in by_set.values()) / 5, abs=1e-9)
    # the students trained a LoRA adapter (saved merged), the teacher did not
    assert results["mgsr"]["provenance"]["checkpoint_sha256"] != results["teacher"]["provenance"]["checkpoint_sha256"]

    # resume: the seed record is lost; training (checkpoint) and evaluation (shards) are not redone
    (mgsr_dir / "seeds" / "0.json").unlink()
    (mgsr_dir / "result.json").unlink()
    log_before = (mgsr_dir / "work" / "0" / "train" / "train_log.jsonl").read_text()
    calls = []
    from baselines.llm_kd import evaluation

    monkeypatch.setattr(evaluation, "evaluate_seed", lambda *a, **k: calls.append(a) or pytest.fail("re-evaluated"))
    again = runner.execute(specs[2], store, log=print, show_progress=False).result
    assert calls == [] and again["status"] == "complete"
    assert _metric(again, "rouge_l@rouge-score")["value"] == pytest.approx(
        _metric(results["mgsr"], "rouge_l@rouge-score")["value"], abs=1e-12)
    assert _metric(again, "sanity")["value"] == pytest.approx(_metric(results["mgsr"], "sanity")["value"], abs=1e-12)
    assert (mgsr_dir / "work" / "0" / "train" / "train_log.jsonl").read_text() == log_before
