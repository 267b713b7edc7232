"""The MiPKD recipe: its plans at the three scales (equal budgets for every student entry, the card's knobs
reaching MiPKD), a reduced smoke reproduction through bench.runner.execute (one cached teacher, deployed students
of equal size, sanity floors), the official-teacher loading of small/paper and the profile."""
from __future__ import annotations

import math

import pytest
import torch

from bench import papers, runner
from bench.data.smoke import photo_names
from bench.recipe import RunContext
from bench.registry import BenchError
from bench.store import Store
from methods.mipkd import recipe

STUDENTS = ["student", "logits-kd", "fitnet", "at", "fakd", "mipkd"]


def test_smoke_plan_gives_every_student_entry_the_same_budget():
    card = papers.card("mipkd")
    specs = runner.plan("mipkd", "smoke")
    assert [s.entry for s in specs] == ["teacher", *STUDENTS]
    students = [s for s in specs if s.entry != "teacher"]
    assert all(s.train == students[0].train and s.setting == students[0].setting for s in students)
    assert all(s.seeds == [0, 1, 2] for s in students) and specs[0].seeds == [0]
    assert specs[0].setting == {"sr_scale": 4, "teacher": "edsr-c32b4", "student": "edsr-c16b2"}
    mipkd = next(s for s in specs if s.entry == "mipkd")
    knobs = card.entry("mipkd").args
    assert {k: v for k, v in mipkd.args.items() if k not in recipe.SMOKE_MIPKD} == \
        {k: v for k, v in knobs.items() if k not in recipe.SMOKE_MIPKD}
    assert {s.entry: s.args.get("kd") for s in students if s.entry != "mipkd"} == \
        {"student": "none", "logits-kd": "logits", "fitnet": "fitnet", "at": "at", "fakd": "fakd"}
    paper_setting = specs[0].stands_for["settings"][0]["paper"]
    assert paper_setting == {"sr_scale": 4, "teacher": "edsr-c256b32", "student": "edsr-c64b16"}


@pytest.mark.parametrize("scale,n_scales", [("small", 1), ("paper", 3)])
def test_small_and_paper_plans_cover_both_pairs_and_the_five_sets(scale, n_scales):
    specs = runner.plan("mipkd", scale)
    assert len(specs) == 3 * 7 * n_scales * 5
    assert {s.dataset for s in specs} == {"set5", "set14", "b100", "urban100", "manga109"}
    assert {(s.setting["teacher"], s.setting["student"]) for s in specs} == set(recipe.PAIRS.values())
    assert all(s.sampler["self_ensemble"] is False for s in specs)
    if scale == "paper":
        assert specs[0].train["steps"] == 250_000 and specs[0].train["lr"] == 1e-4


def test_reduced_smoke_reproduction_trains_one_teacher_and_equal_students(store_root, one_torch_thread):
    picked = ["teacher", "student", "fakd", "mipkd"]
    specs = [s.with_overrides(seeds=[0], train={**s.train, "steps": 3, "warmup_steps": 1, "ckpt_every": 3,
                                                "teacher": {"steps": 3, "lr": 2e-3}})
             for s in runner.plan("mipkd", "smoke") if s.entry in picked]
    store = Store(store_root)
    results = {s.entry: runner.execute(s, store, log=lambda m: None).result for s in specs}
    n_photos = len(photo_names("test"))
    for result in results.values():
        assert result["status"] == "complete"
        values = {m["metric"]: m for m in result["metrics"]}
        assert set(values) == {"psnr_y@matlab", "ssim_y@matlab", "psnr_gain_y@bicubic"}
        assert values["psnr_gain_y@bicubic"]["floor"]["value"] == 0.0
        assert all(m["n"] == n_photos and math.isfinite(m["value"]) for m in values.values())
        assert values["psnr_y@matlab"]["setting"]["teacher"] == "edsr-c32b4"
    teachers = list((store_root / "mipkd" / "_shared").glob("teacher-*"))
    assert len(teachers) == 1  # trained once, reused by every student entry
    costs = {e: r["cost"] for e, r in results.items()}
    assert costs["mipkd"]["params_m"] == costs["student"]["params_m"] == costs["fakd"]["params_m"]
    assert costs["mipkd"]["gmacs"] == costs["student"]["gmacs"]
    assert costs["mipkd"]["params_m_training"] > costs["mipkd"]["params_m"]  # the mixers are training-only
    assert costs["teacher"]["params_m"] > costs["student"]["params_m"]


def test_official_teacher_loads_strictly_and_a_missing_one_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_ASSETS", str(tmp_path))
    ctx = RunContext(handle=None)
    teacher = recipe.build_network("rcan-c64g10b20", 4)
    with pytest.raises(BenchError, match=r"missing asset mipkd-teacher-rcan-x4: .*RCAN_BIX4\.pt"):
        recipe._load_official_teacher(teacher, "rcan-c64g10b20", 4, ctx)
    torch.manual_seed(3)
    official = recipe.build_network("rcan-c64g10b20", 4)
    torch.save(official.state_dict(), tmp_path / "RCAN_BIX4.pt")
    loaded = recipe._load_official_teacher(teacher, "rcan-c64g10b20", 4, ctx)
    assert torch.equal(loaded.tail[1].weight, official.tail[1].weight)
    torch.save({"head.0.weight": official.head[0].weight}, tmp_path / "RCAN_BIX4.pt")
    with pytest.raises(BenchError, match="not the official layout"):
        recipe._load_official_teacher(teacher, "rcan-c64g10b20", 4, ctx)


def test_profile_gives_every_student_entry_the_plain_student_cost():
    rows = recipe.profile(scale="smoke", measure_latency=False)
    by_entry = {r["entry"]: r for r in rows}
    assert set(by_entry) == {"teacher", *STUDENTS}
    assert len({(by_entry[e]["params_m"], by_entry[e]["gmacs"]) for e in STUDENTS}) == 1
    with pytest.raises(BenchError):
        recipe.profile(scale="smoke", entries=["crd"])
