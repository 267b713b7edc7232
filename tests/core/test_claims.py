"""`bench claims` decides only on evidence (issue 13, claims half; issue 23, floors in the verdicts).

Every test writes synthetic run records into a temporary store and registers a small card whose claims mirror
the cases the issues saw (CTF's +0.71 margin, LIPT's latency bound, u-dit's cfg=1.0, QAC's 6-NFE solvers,
tad-sr's [S] cells). Expected p-values and intervals come from scipy, Holm's correction from a hand calculation.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from scipy.stats import ttest_ind
from typer.testing import CliRunner

from bench import claims, papers
from bench.cli import app
from bench.store import SCHEMA_VERSION, Store, setting_key

CARD = """
slug: evid
title: A card whose claims exercise the evidence rules
arxiv: null
venue: null
year: 2024
code: null
family: detection
summary: Synthetic claims for the claims tests.
entries:
  - {id: ctf, role: method}
  - {id: labelmatch, role: baseline}
  - {id: lipt-small, role: method}
  - {id: swinir-light, role: baseline}
  - {id: u-dit-b, role: method}
  - {id: dit-xl-2, role: baseline}
  - {id: qac, role: method}
  - {id: edm, role: baseline}
datasets: [coco2017, urban100, imagenet-256, cifar10]
metrics: [coco_bbox_map@pycocotools, psnr_y@matlab, fid@adm, fid@edm, latency_ms]
reported:
  - {entry: ctf, dataset: coco2017, metric: coco_bbox_map@pycocotools, value: 40.2, setting: {label_pct: 10.0}, source: {ref: abstract, tag: S}}
  - {entry: labelmatch, dataset: coco2017, metric: coco_bbox_map@pycocotools, value: 39.0, setting: {label_pct: 10.0}, source: {ref: Table 1, tag: P}}
  - {entry: lipt-small, dataset: urban100, metric: psnr_y@matlab, value: 32.9, setting: {sr_scale: 2}, source: {ref: Table 2, tag: P}}
  - {entry: swinir-light, dataset: urban100, metric: psnr_y@matlab, value: 32.7, setting: {sr_scale: 2}, source: {ref: Table 2, tag: P}}
  - {entry: lipt-small, dataset: urban100, metric: latency_ms, value: 20.0, setting: {sr_scale: 2}, source: {ref: Table 2, tag: P}}
  - {entry: swinir-light, dataset: urban100, metric: latency_ms, value: 200.0, setting: {sr_scale: 2}, source: {ref: Table 2, tag: P}}
claims:
  - {id: margin, text: CTF improves LabelMatch by 0.71 mAP, lhs: ctf, rhs: labelmatch, metric: coco_bbox_map@pycocotools,
     dataset: coco2017, relation: ge, margin: 0.71, setting: {label_pct: 10.0}, source: {ref: abstract, tag: S}}
  - {id: latency, text: LIPT-Small matches SwinIR-light at a fifth of its latency, lhs: lipt-small, rhs: swinir-light,
     metric: psnr_y@matlab, dataset: urban100, relation: ge, margin: 0.0, setting: {sr_scale: 2},
     cost: {metric: latency_ms, ratio_max: 0.2}, source: {ref: Table 2, tag: P}}
  - {id: cfg, text: 'U-DiT-B has lower FID than DiT-XL/2 without guidance [fd_digits as proxy]', lhs: u-dit-b, rhs: dit-xl-2, metric: fid@adm,
     dataset: imagenet-256, relation: lt, margin: 0.0, setting: {cfg: 1.0, sampler: ddpm-250},
     source: {ref: Table 2, tag: P}}
  - {id: nfe6, text: QAC beats EDM at 6 NFE, lhs: qac, rhs: edm, metric: fid@edm, dataset: cifar10, relation: lt,
     margin: 0.0, setting: {nfe: 6}, source: {ref: abstract, tag: I}}
"""

PASS_FLOOR = "pass"
FAIL_FLOOR = "fail"
HARDWARE = {"cpu": "AMD EPYC", "cpu_count": 2, "machine": "x86_64"}


@pytest.fixture()
def evid(tmp_path):
    path = tmp_path / "evid.yaml"
    path.write_text(CARD)
    reg = papers.registries()["papers"]
    reg.register("evid", None, package="evid", card=str(path))
    papers.card.cache_clear()
    yield "evid"
    reg.unregister("evid")
    papers.card.cache_clear()


def write_run(root: Path, entry: str, metric: str, per_seed: list[float], *, dataset: str,
              metric_setting: dict | None = None, run_setting: dict | None = None, scale: str = "paper",
              stands_for: dict | None = None, cost: dict | None = None, floor: str | None = PASS_FLOOR,
              hardware: dict | None = None, extra: list[dict] | None = None) -> str:
    """One complete result.json, shaped like Store.finish writes it."""
    run_id = f"{entry}-{scale}-{abs(hash((metric, dataset, setting_key(run_setting or {}))))}"[:40]
    def record(name, values, setting, floor_value=None):
        mean = math.fsum(values) / len(values)
        out = {"metric": name, "setting": setting or {}, "n": 100, "protocol": {},
               "per_seed": {str(i): v for i, v in enumerate(values)}, "value": mean, "std": None, "ci95": None}
        if floor_value is not None:
            out["floor"] = {"value": floor_value, "trivial": "chance", "trivial_value": 0.1, "note": "test"}
        return out
    metrics = [record(metric, per_seed, metric_setting)] + list(extra or [])
    if floor is not None:
        acc = [0.9] * len(per_seed) if floor == PASS_FLOOR else [0.9] + [0.08] * (len(per_seed) - 1)
        metrics.append(record("class_acc@digits-cnn", acc, {}, floor_value=0.2))
    result = {"schema_version": SCHEMA_VERSION, "run_id": run_id, "paper": "evid", "entry": entry, "impl": entry,
              "dataset": dataset, "split": "test", "scale": scale, "stands_for": stands_for or {},
              "setting": run_setting or {}, "status": "complete", "error": None,
              "seeds": list(range(len(per_seed))), "metrics": metrics, "cost": cost or {},
              "provenance": {"hardware": hardware or HARDWARE}, "started_at": "2026-01-01T00:00:00+00:00",
              "finished_at": "2026-01-01T00:01:00+00:00"}
    run_dir = root / "evid" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "result.json").write_text(json.dumps(result))
    return run_id


def ours(slug: str, root: Path, claim: str, scale: str = "paper") -> claims.Verdict:
    (v,) = [v for v in claims.evaluate(slug, Store(root)) if v.claim == claim and v.scale == scale]
    return v


CTF = [40.15, 40.25, 40.20, 40.18, 40.22]
LABELMATCH = [40.05, 40.15, 40.10, 40.08, 40.12]


def write_ctf(root, ctf=CTF, labelmatch=LABELMATCH, **kw):
    for entry, values in (("ctf", ctf), ("labelmatch", labelmatch)):
        write_run(root, entry, "coco_bbox_map@pycocotools", values, dataset="coco2017",
                  run_setting={"label_pct": 10.0}, **kw)


# ------------------------------------------------------------------------------------------------ margin
def test_margin_is_applied_to_our_runs(evid, store_root):
    """Issue 13: CTF 40.20 vs 40.10 over 5 folds was 'confirmed' for a +0.71 mAP claim."""
    write_ctf(store_root)
    v = ours(evid, store_root, "margin")
    assert v.verdict == "not confirmed" and v.source == "ours" and v.scale == "paper"
    shifted = [x - 0.71 for x in CTF]
    expected = ttest_ind(shifted, LABELMATCH, equal_var=False, alternative="greater")
    assert v.test.p == pytest.approx(expected.pvalue, rel=1e-9)
    assert v.test.effect == pytest.approx(0.10 - 0.71, abs=1e-9)
    ci = ttest_ind(shifted, LABELMATCH, equal_var=False).confidence_interval(0.95)
    assert v.test.ci95 == pytest.approx([ci.low, ci.high], rel=1e-9)
    assert "Welch" in v.test.name and "0.71" in v.test.name and "p=" in v.evidence


def test_same_gap_confirms_a_claim_without_margin(evid, store_root, tmp_path):
    card = (tmp_path / "evid.yaml")
    card.write_text(card.read_text().replace("margin: 0.71", "margin: 0.0"))
    papers.card.cache_clear()
    write_ctf(store_root)
    v = ours(evid, store_root, "margin")
    assert v.verdict == "confirmed"
    assert v.test.p == pytest.approx(ttest_ind(CTF, LABELMATCH, equal_var=False, alternative="greater").pvalue)


def test_a_negative_margin_is_a_non_inferiority_bound(evid, store_root, tmp_path):
    """"Within 0.2 mAP of LabelMatch" (ge, margin -0.2): a student 0.1 behind is within it, 0.5 behind is not;
    the same shifted one-sided Welch test decides, as scipy computes it."""
    card = tmp_path / "evid.yaml"
    card.write_text(card.read_text().replace("margin: 0.71", "margin: -0.2"))
    papers.card.cache_clear()
    behind = [x - 0.2 for x in CTF]  # 0.1 below LabelMatch on average
    write_ctf(store_root, ctf=behind)
    v = ours(evid, store_root, "margin")
    expected = ttest_ind([x + 0.2 for x in behind], LABELMATCH, equal_var=False, alternative="greater")
    assert v.verdict == "confirmed" and v.test.p == pytest.approx(expected.pvalue, rel=1e-9)
    assert v.test.effect == pytest.approx(-0.1 + 0.2, abs=1e-9)
    write_ctf(store_root, ctf=[x - 0.6 for x in CTF])  # newer runs, 0.5 below: outside the bound
    assert ours(evid, store_root, "margin").verdict == "not confirmed"


def test_margin_cannot_be_expressed_on_a_proxy(evid, store_root):
    proxy = {"dataset": "coco2017", "metrics": {"map_digits": "coco_bbox_map@pycocotools"}}
    for entry, values in (("ctf", [5.0, 5.2, 5.1]), ("labelmatch", [1.0, 1.1, 1.2])):
        write_run(store_root, entry, "map_digits", values, dataset="digits-boxes", scale="smoke",
                  run_setting={"label_pct": 10.0}, stands_for=proxy)
    v = ours(evid, store_root, "margin", "smoke")
    assert v.verdict == "inconclusive" and "proxy" in v.reason and v.dialect == "proxy" and v.test is None


# ------------------------------------------------------------------------------------------------ cost
def write_lipt(root, lipt_cost, swinir_cost, lipt_hw=None, swinir_hw=None):
    write_run(root, "lipt-small", "psnr_y@matlab", [33.0, 33.1, 33.2], dataset="urban100",
              run_setting={"sr_scale": 2}, cost=lipt_cost, hardware=lipt_hw)
    write_run(root, "swinir-light", "psnr_y@matlab", [32.0, 32.1, 32.2], dataset="urban100",
              run_setting={"sr_scale": 2}, cost=swinir_cost, hardware=swinir_hw)


def test_cost_condition_is_checked_on_our_latency(evid, store_root):
    """Issue 13: LIPT-Small at 100x SwinIR-light's latency stayed 'confirmed' for ratio_max 0.2."""
    write_lipt(store_root, {"latency_ms": 500.0, "input_shape": [1, 3, 64, 64]},
               {"latency_ms": 5.0, "input_shape": [1, 3, 64, 64]})
    v = ours(evid, store_root, "latency")
    assert v.test.p < 0.05  # the PSNR part alone would confirm it
    assert v.verdict == "not confirmed" and v.reason == "cost condition fails"
    assert v.cost.ratio == pytest.approx(100.0) and v.cost.bound == 0.2 and v.cost.holds is False


def test_latency_on_different_hardware_is_not_compared(evid, store_root):
    gpu = {**HARDWARE, "gpu": "NVIDIA H100"}
    write_lipt(store_root, {"latency_ms": 1.0, "input_shape": [1, 3, 64, 64]},
               {"latency_ms": 50.0, "input_shape": [1, 3, 64, 64]}, lipt_hw=gpu)
    v = ours(evid, store_root, "latency")
    assert v.verdict == "inconclusive" and v.cost.holds is None and "different hardware" in v.cost.note


def test_latency_on_different_inputs_is_not_compared(evid, store_root):
    write_lipt(store_root, {"latency_ms": 1.0, "input_shape": [1, 3, 32, 32]},
               {"latency_ms": 50.0, "input_shape": [1, 3, 64, 64]})
    v = ours(evid, store_root, "latency")
    assert v.verdict == "inconclusive" and "different inputs" in v.cost.note


def test_cost_that_holds_lets_the_claim_be_confirmed(evid, store_root):
    write_lipt(store_root, {"latency_ms": 1.0, "input_shape": [1, 3, 64, 64]},
               {"latency_ms": 50.0, "input_shape": [1, 3, 64, 64]})
    v = ours(evid, store_root, "latency")
    assert v.verdict == "confirmed" and v.cost.ratio == pytest.approx(0.02) and v.cost.holds is True


def test_cost_values_come_from_the_records(evid):
    """params_m from run["cost"]; nfe from the metric's own setting when it names one (a sampler setting)."""
    claim = papers.card(evid).claims[0].model_copy(update={"cost": {"metric": "params_m", "ratio_max": 1.02}})

    def match(entry, cost, setting):
        run = {"entry": entry, "run_id": entry, "cost": cost, "provenance": {}}
        record = {"metric": "fid@edm", "setting": setting, "per_seed": {}}
        return claims.Match(run, record, "same", dict(setting), ("d", "m", ""))

    qac, edm = match("qac", {"params_m": 56.5}, {"nfe": 6}), match("edm", {"params_m": 55.7}, {"nfe": 6})
    cost = claims.our_cost(claim, qac, edm)
    assert cost.ratio == pytest.approx(56.5 / 55.7) and cost.holds is True
    nfe_claim = claim.model_copy(update={"cost": {"metric": "nfe", "ratio_max": 0.067}})
    one, fifteen = match("tad-sr", {"nfe": 99}, {"nfe": 1}), match("resshift", {}, {"nfe": 15})
    assert claims.our_cost(nfe_claim, one, fifteen).ratio == pytest.approx(1 / 15)
    missing = claims.our_cost(claim, qac, match("edm", {}, {"nfe": 6}))
    assert missing.holds is None and "no params_m recorded in run edm" in missing.note


# ------------------------------------------------------------------------------------------------ settings
UDIT = [10.0, 10.2, 10.1]
DIT = [20.0, 20.3, 20.1]


def test_records_at_another_setting_do_not_decide(evid, store_root):
    """Issue 13: fid@ref-npz runs at cfg=1.5 confirmed a claim made at cfg=1.0."""
    for entry, values in (("u-dit-b", UDIT), ("dit-xl-2", DIT)):
        write_run(store_root, entry, "fid@ref-npz", values, dataset="imagenet-256",
                  metric_setting={"cfg": 1.5, "sampler": "ddpm-250"})
    v = ours(evid, store_root, "cfg")
    assert v.verdict == "no data" and "cfg=1.0" in v.evidence


def test_comparable_dialect_at_the_claims_setting_decides(evid, store_root):
    for entry, values in (("u-dit-b", UDIT), ("dit-xl-2", DIT)):
        write_run(store_root, entry, "fid@ref-npz", values, dataset="imagenet-256",
                  metric_setting={"cfg": 1.0, "sampler": "ddpm-250"})
    v = ours(evid, store_root, "cfg")
    assert v.verdict == "confirmed" and v.dialect == "comparable" and v.metric == "fid@ref-npz"


def test_a_proxy_decides_only_through_declared_stands_for_settings(evid, store_root):
    base = {"dataset": "imagenet-256", "metrics": {"fd_digits": "fid@adm"}}
    declared = {**base, "settings": [{"paper": {"sampler": "ddpm-250"}, "ours": {"sampler": "ddim", "nfe": 25}}]}
    for stands_for, expected in ((base, "no data"), (declared, "confirmed")):
        for entry, values in (("u-dit-b", UDIT), ("dit-xl-2", DIT)):
            write_run(store_root, entry, "fd_digits", values, dataset="digits", scale="smoke", stands_for=stands_for,
                      metric_setting={"cfg": 1.0, "sampler": "ddim", "nfe": 25})
        v = ours(evid, store_root, "cfg", "smoke")
        assert v.verdict == expected, v.evidence
    assert v.dialect == "proxy" and v.lhs.setting == {"cfg": 1.0, "sampler": "ddim", "nfe": 25}


def test_rhs_setting_pairs_each_side_at_its_own_setting(evid, store_root, tmp_path):
    card = tmp_path / "evid.yaml"
    card.write_text(card.read_text().replace("margin: 0.71, setting: {label_pct: 10.0},",
                                             "margin: 0.0, setting: {label_pct: 10.0}, rhs_setting: {label_pct: 1.0},"))
    papers.card.cache_clear()
    write_run(store_root, "ctf", "coco_bbox_map@pycocotools", CTF, dataset="coco2017", run_setting={"label_pct": 10.0})
    for pct, values in ((1.0, [30.0, 30.2, 30.1]), (10.0, [50.0, 50.2, 50.1])):
        write_run(store_root, "labelmatch", "coco_bbox_map@pycocotools", values, dataset="coco2017",
                  run_setting={"label_pct": pct})
    v = ours(evid, store_root, "margin")
    assert v.verdict == "confirmed" and v.rhs.setting == {"label_pct": 1.0} and v.lhs.setting == {"label_pct": 10.0}


def test_holm_matches_a_hand_calculation():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01 = 0.03, max(0.03, 2*0.03) = 0.06, max(0.06, 1*0.04) = 0.06
    assert claims.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert claims.holm([0.5]) == [0.5]


def test_one_verdict_per_claim_over_several_solvers_with_holm(evid, store_root):
    """Issue 13: every QAC solver at 6 NFE was its own alpha=0.05 test, uncorrected."""
    edm = [10.0, 10.3, 9.7]
    qac = {"euler": 2.0, "heun": 0.6, "dpm": 0.55}  # raw p about 5e-4, 0.031, 0.038
    extra = []
    for solver, gap in qac.items():
        extra.append({"metric": "fid@edm", "setting": {"nfe": 6, "solver": solver}, "n": 100, "protocol": {},
                      "per_seed": {str(i): v - gap for i, v in enumerate([10.1, 10.2, 9.7])}, "value": 0.0})
    extra.append({"metric": "fid@edm", "setting": {"nfe": 10, "solver": "euler"}, "n": 100, "protocol": {},
                  "per_seed": {"0": 1.0, "1": 1.1, "2": 1.2}, "value": 1.1})  # another NFE: not in the family
    edm_records = [{"metric": "fid@edm", "setting": {"nfe": n, "solver": s}, "n": 100, "protocol": {},
                    "per_seed": {str(i): v for i, v in enumerate(edm)}, "value": 10.0}
                   for s, n in (("euler", 6), ("heun", 6), ("dpm", 6), ("euler", 10))]
    # the first metric record is a placeholder at another dataset setting; the solver records ride in `extra`
    write_run(store_root, "qac", "fid@edm", [1.0, 1.0, 1.0], dataset="cifar10", metric_setting={"nfe": 50},
              extra=extra)
    write_run(store_root, "edm", "fid@edm", [1.0, 1.0, 1.0], dataset="cifar10", metric_setting={"nfe": 50},
              extra=edm_records)
    verdicts = [v for v in claims.evaluate(evid, Store(store_root)) if v.claim == "nfe6"]
    assert [(v.source, v.scale) for v in verdicts] == [("paper", None), ("ours", "paper")]
    family = verdicts[1]
    assert [r.setting["solver"] for r in family.results] == ["euler", "heun", "dpm"]
    raw = [ttest_ind([v - gap for v in [10.1, 10.2, 9.7]], edm, equal_var=False, alternative="less").pvalue
           for gap in qac.values()]
    assert all(p < 0.05 for p in raw)  # each alone would have been "confirmed"
    assert [r.test.p_raw for r in family.results] == pytest.approx(raw)
    assert [r.test.p for r in family.results] == pytest.approx(claims.holm(raw))
    assert [r.verdict for r in family.results] == ["confirmed", "inconclusive", "inconclusive"]
    assert family.verdict == "inconclusive" and family.test.p == pytest.approx(max(claims.holm(raw)))


# ------------------------------------------------------------------------------------------------ evidence rules
def test_fewer_than_three_seeds_decide_nothing(evid, store_root):
    write_ctf(store_root, ctf=[45.0, 45.1], labelmatch=[40.0, 40.1])
    v = ours(evid, store_root, "margin")
    assert v.verdict == "inconclusive" and "3 seeds" in v.reason and v.test is None


def test_zero_spread_is_inconclusive_not_p_zero(evid, store_root):
    """Issue 13: a seed that changes nothing gave Welch p=0, so a 0.001 dB gap was 'confirmed'."""
    for entry, values in (("lipt-small", [32.001] * 3), ("swinir-light", [32.0] * 3)):
        write_run(store_root, entry, "psnr_y@matlab", values, dataset="urban100", run_setting={"sr_scale": 2},
                  cost={"latency_ms": 1.0, "input_shape": [1]})
    v = ours(evid, store_root, "latency")
    assert v.label == "inconclusive (seeds do not vary the result)" and v.test is None


# ------------------------------------------------------------------------------------------------ floors
def test_run_below_its_floor_is_no_evidence(evid, store_root):
    write_run(store_root, "ctf", "coco_bbox_map@pycocotools", [45.0, 45.1, 45.2], dataset="coco2017",
              run_setting={"label_pct": 10.0}, floor=FAIL_FLOOR)
    write_run(store_root, "labelmatch", "coco_bbox_map@pycocotools", [40.0, 40.1, 40.2], dataset="coco2017",
              run_setting={"label_pct": 10.0})
    v = ours(evid, store_root, "margin")
    assert v.label == "no evidence (below the sanity floor)"
    assert "ctf" in v.evidence and "0.08" in v.evidence and v.lhs.run_id in v.evidence
    assert v.lhs.sanity == "did not learn" and v.rhs.sanity == "passed"


def test_run_without_a_floor_is_inconclusive(evid, store_root):
    write_ctf(store_root, ctf=[45.0, 45.1, 45.2], labelmatch=[40.0, 40.1, 40.2], floor=None)
    v = ours(evid, store_root, "margin")
    assert v.label == "inconclusive (no sanity floor recorded)" and "labelmatch" in v.evidence


# ------------------------------------------------------------------------------------------------ paper side
def test_paper_side_shows_tags_and_never_confirms_on_s_m_i_cells(evid, store_root):
    """Issue 13: tad-sr printed 'confirmed' on third-party cells."""
    by_claim = {v.claim: v for v in claims.evaluate(evid, Store(store_root)) if v.source == "paper"}
    ctf = by_claim["margin"]  # 40.2 [S] vs 39.0 [P]: the relation holds, but on a third-party cell
    assert ctf.verdict == "unverified" and "[S]" in ctf.reason
    assert [c.tag for c in ctf.lhs.cells] == ["S"] and [c.tag for c in ctf.rhs.cells] == ["P"]
    lipt = by_claim["latency"]  # [P] cells: 32.9 >= 32.7 at 20/200 = 0.1 <= 0.2 of the latency
    assert lipt.verdict == "confirmed" and lipt.cost.ratio == pytest.approx(0.1)
    assert len(lipt.lhs.cells) == 2 and lipt.scale is None and lipt.test is None
    assert by_claim["nfe6"].verdict == "no data"
    tad = [v for v in claims.evaluate("tad-sr", Store(store_root)) if v.source == "paper"]
    assert not any(v.verdict == "confirmed" for v in tad)
    assert sum(v.verdict == "unverified" for v in tad) >= 6


# ------------------------------------------------------------------------------------------------ JSON and CLI
runner = CliRunner()


def test_json_output_validates_against_the_documented_schema(evid, store_root):
    write_ctf(store_root)  # paper-scale runs beside the paper's own numbers
    write_ctf(store_root, ctf=[float("nan")] * 3, labelmatch=[1.0, 2.0, 3.0], scale="smoke",
              stands_for={"dataset": "coco2017"})
    result = runner.invoke(app, ["claims", evid, "--json"])
    assert result.exit_code == 0, result.output

    def no_nan(token):
        raise AssertionError(f"{token} in JSON")

    rows = json.loads(result.output, parse_constant=no_nan)
    documented = json.loads((Path(claims.__file__).parent / "schemas" / "claims.schema.json").read_text())
    assert documented == claims.schema()  # the committed file is the model's schema
    for row in rows:
        claims.Verdict.model_validate(row)  # strict: a number given as a string fails
    margin = [r for r in rows if r["claim"] == "margin"]
    assert [(r["source"], r["scale"]) for r in margin] == [("paper", None), ("ours", "smoke"), ("ours", "paper")]
    paper_scale = margin[2]
    assert paper_scale["lhs"]["per_seed"]["0"] == 40.15 and paper_scale["lhs"]["n"] == 5
    assert isinstance(paper_scale["test"]["p"], float) and paper_scale["setting"] == {"label_pct": 10.0}
    assert margin[1]["lhs"]["value"] is None and margin[1]["lhs"]["per_seed"]["0"] is None  # NaN -> null
    with pytest.raises(ValidationError):
        claims.Verdict.model_validate({**paper_scale, "margin": "0.71"})


def test_human_output_one_line_per_verdict_unwrapped_and_unescaped(evid, store_root):
    proxy = {"dataset": "imagenet-256", "metrics": {"fd_digits": "fid@adm"},
             "settings": [{"paper": {"sampler": "ddpm-250"}, "ours": {"sampler": "ddim"}}]}
    for entry, values in (("u-dit-b", UDIT), ("dit-xl-2", DIT)):
        write_run(store_root, entry, "fd_digits", values, dataset="digits", scale="smoke", stands_for=proxy,
                  metric_setting={"cfg": 1.0, "sampler": "ddim"})
    result = runner.invoke(app, ["claims", "--paper", evid])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    ctf_paper = [line for line in lines if line.strip().startswith("paper") and "40.2 [S] abstract" in line]
    assert len(ctf_paper) == 1 and "unverified (rests on [S] cells)" in ctf_paper[0]  # markup not eaten
    assert len(ctf_paper[0]) > 120  # not wrapped at the pipe's 80 columns
    cfg = [line for line in lines if line.strip().startswith("ours [smoke]")]
    assert any("without guidance [fd_digits as proxy]" in line for line in lines)  # rich markup escaped
    assert len(cfg) == 4  # one verdict per claim and scale
    assert "ours [smoke]  confirmed" in cfg[2] and "Welch" in cfg[2] and "no data" in cfg[0]
    assert sum(line.startswith(("margin:", "latency:", "cfg:", "nfe6:")) for line in lines) == 4
    assert runner.invoke(app, ["claims"]).exit_code == 2


def test_claims_reads_records_without_importing_torch(tmp_path):
    # a u-dit record for the matching to read (matching once imported pandas through bench.table: +0.4 s)
    run_id = write_run(tmp_path / "runs", "u-dit-s", "fid@adm", [20.0], dataset="imagenet-256")
    src, dst = tmp_path / "runs" / "evid" / run_id, tmp_path / "runs" / "u-dit" / run_id
    dst.parent.mkdir(parents=True)
    src.rename(dst)
    record = json.loads((dst / "result.json").read_text())
    (dst / "result.json").write_text(json.dumps({**record, "paper": "u-dit"}))
    code = ("import sys; from typer.testing import CliRunner; from bench.cli import app; "
            "r = CliRunner().invoke(app, ['claims', 'u-dit', '--json']); assert r.exit_code == 0, r.output; "
            "assert '\"u-dit-s\"' in r.output; "
            "import bench.claims; bad = [m for m in ('torch', 'scipy', 'pandas') if m in sys.modules]; "
            "assert not bad, bad")
    env = {"BENCH_RESULTS": str(tmp_path / "runs"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env,
                          cwd=Path(claims.__file__).parents[1])
    assert proc.returncode == 0, proc.stderr
