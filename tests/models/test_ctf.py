"""CTF (methods/ctf): DPCO accumulation and selection against hand calculations, cross-pair guidance (students
learn from the selected teacher's pseudo-labels), per-pair EMA, configuration errors, and the recipe's plan."""
from __future__ import annotations

import pytest
import torch

from baselines.ssod.configs import SMOKE_DETECTOR
from baselines.ssod.detector import build_detector
from baselines.ssod.methods import SSODConfig
from bench.registry import BenchError
from methods.ctf.ctf import CTF, CTFConfig
from methods.ctf.dpco import accumulate, guide_of, select_best


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_dpco_running_sum_and_argmin_match_hand_calculation():
    acc = torch.zeros(3, dtype=torch.float64)
    acc = accumulate(acc, torch.tensor([1.0, 0.5, 0.75]))
    assert acc.tolist() == [1.0, 0.5, 0.75] and select_best(acc) == 1
    acc = accumulate(acc, torch.tensor([0.25, 1.0, 0.0]))
    # sums 1.25, 1.5, 0.75: teacher 2 has the lowest accumulated labelled loss
    assert acc.tolist() == [1.25, 1.5, 0.75] and select_best(acc) == 2


def test_dpco_decay_forgets_old_losses():
    acc = accumulate(torch.tensor([4.0, 1.0], dtype=torch.float64), torch.tensor([0.5, 2.0]), decay=0.5)
    # 0.5 * 4 + 0.5 = 2.5 ; 0.5 * 1 + 2 = 2.5: a tie goes to the first pair
    assert acc.tolist() == [2.5, 2.5] and select_best(acc) == 0
    with pytest.raises(ValueError):
        accumulate(acc, torch.zeros(2), decay=0.0)


def test_guide_of_replace_and_add():
    assert [guide_of(k, 1, "replace") for k in range(3)] == [1, 1, 1]
    assert [guide_of(k, 1, "add") for k in range(3)] == [0, 1, 2]
    assert [guide_of(k, None, "replace") for k in range(3)] == [0, 1, 2]  # before the first selection


def test_config_errors_are_one_line():
    with pytest.raises(BenchError, match="at least 2"):
        CTFConfig(pairs=1)
    with pytest.raises(BenchError, match="guidance"):
        CTFConfig(guidance="vote")
    with pytest.raises(BenchError, match="unknown field 'k'"):
        CTFConfig.from_dict({"k": 3})


def _ctf(cfg: CTFConfig) -> CTF:
    torch.manual_seed(0)
    detectors = [build_detector(SMOKE_DETECTOR) for _ in range(cfg.pairs)]
    return CTF(detectors, SSODConfig(method="labelmatch", keep_rate=0.5), cfg)


def _batch():
    g = torch.Generator().manual_seed(1)
    return {"images": [torch.rand(3, 64, 64, generator=g)], "boxes": [torch.tensor([[5.0, 5.0, 30.0, 30.0]])],
            "labels": [torch.tensor([1])], "u_weak": [torch.rand(3, 64, 64, generator=g)],
            "u_strong": [torch.rand(3, 64, 64, generator=g)], "u_to_student": [torch.tensor([1.0, 1.0])]}


@pytest.mark.parametrize("guidance,expected_pair0", [("replace", True), ("add", False)])
def test_students_learn_from_the_selected_teacher(monkeypatch, guidance, expected_pair0):
    model = _ctf(CTFConfig(pairs=2, guidance=guidance))
    model.train()
    # teacher 0 accepts no pseudo-box (thresholds above any score), teacher 1 accepts every candidate
    model.pairs[0].thr_pos.fill_(1.01)
    model.pairs[0].thr_unc.fill_(1.01)
    model.pairs[1].thr_pos.fill_(0.0)
    model.pairs[1].thr_unc.fill_(0.0)
    # teacher 1 has the lower labelled loss, so DPCO selects it
    monkeypatch.setattr(model, "teacher_labelled_losses", lambda batch: torch.tensor([2.0, 1.0]))
    loss, extras = model(_batch())
    assert extras["best_teacher"] == 1 and model.selections.tolist() == [0, 1]
    assert model.accumulated.tolist() == [2.0, 1.0]
    assert extras["pair1_pseudo_reliable"] > 0  # the best pair uses its own teacher
    # student 0: with "replace" its pseudo-boxes come from teacher 1; with "add" from its own teacher (none)
    assert (extras["pair0_pseudo_reliable"] > 0) == expected_pair0
    assert "pair0_loss_dpc" in extras and "pair1_loss_dpc" not in extras  # L_DPC only for students k != best
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.student.cls_score.weight.grad is not None for p in model.pairs)
    assert all(p.teacher.cls_score.weight.grad is None for p in model.pairs), "teachers get no gradient"


def test_each_teacher_follows_its_own_student():
    model = _ctf(CTFConfig(pairs=2))
    with torch.no_grad():
        for k, pair in enumerate(model.pairs):
            pair.student.cls_score.bias.fill_(float(k + 1) * 4.0)
            pair.teacher.cls_score.bias.fill_(0.0)
    model.after_step()
    # keep_rate 0.5: teacher k = 0.5 * 0 + 0.5 * 4 (k + 1)
    assert model.pairs[0].teacher.cls_score.bias.tolist() == [2.0] * 4
    assert model.pairs[1].teacher.cls_score.bias.tolist() == [4.0] * 4


def test_real_teacher_labelled_loss_is_computed_without_gradients():
    model = _ctf(CTFConfig(pairs=2))
    model.train()
    losses = model.teacher_labelled_losses(_batch())
    assert losses.shape == (2,) and torch.isfinite(losses).all() and not losses.requires_grad
    assert losses[0] != losses[1]  # different initialisations


def test_smoke_plan_lists_every_entry():
    from bench import papers
    from methods.ctf import recipe

    specs = recipe.plan(papers.card("ctf"), "smoke", None)
    assert [s.entry for s in specs] == ["supervised", "unbiased-teacher", "labelmatch", "ctf", "soft-teacher", "stac"]
    assert all(s.dataset == "shapes-coco" and s.stands_for["dataset"] == "coco2017" for s in specs)
    assert all(s.setting == {"label_pct": 10.0, "fold": 1} for s in specs)
    paper = recipe.plan(papers.card("ctf"), "paper", None)
    coco = [s for s in paper if s.dataset == "coco2017"]
    assert all(s.seeds == [1, 2, 3, 4, 5] for s in coco)  # the 5 COCO-standard folds
    configs = {s.args["config"] for s in coco if s.entry == "labelmatch"}
    assert configs == {"labelmatch-40k", "labelmatch-160k"}
    assert {s.dataset for s in paper} == {"coco2017", "voc07"}


def test_ctf_training_resumes_bit_exactly(tmp_path):
    """Two steps, checkpoint, two more steps == four steps in one go: teachers, DPCO sums, ACT thresholds and
    the data stream all come back from the checkpoint (CPU, deterministic algorithms)."""
    from baselines.ssod.augment import AugmentConfig
    from baselines.ssod.configs import Schedule
    from baselines.ssod.data import CategoryMap, SemiPairs
    from baselines.ssod.train import semi_stage
    from bench.data.smoke import labelled_split

    labelled, unlabelled = labelled_split(10.0, 1)
    cats = CategoryMap(labelled.data["categories"])
    pairs = SemiPairs(labelled, unlabelled, cats, AugmentConfig())
    schedule = Schedule(steps=4, batch_size=1, lr=0.01, warmup_steps=0)
    images = [pairs.unlabelled.get(i)[0] for i in range(4)]

    def run(out, stop=None, model=None):
        model = model or _ctf(CTFConfig(pairs=2))
        semi_stage(model, pairs, schedule, out, 0, lambda step: model.refresh_thresholds(images), act_interval=2,
                   ckpt_every=2, stop_after=stop)
        return model

    straight = run(tmp_path / "a")
    run(tmp_path / "b", stop=2)
    resumed = run(tmp_path / "b")  # a fresh module: everything must come from the step-2 checkpoint
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]
    assert int(straight.steps_seen) == 4 and straight.accumulated.sum() > 0
