"""Tables, claims and the regression gate, on the toy paper whose numbers are known in advance."""
from __future__ import annotations

import json

import pytest

from bench import check, claims, table
from bench.store import Store
from tests.core.test_runs import expected_mean


def test_table_from_card_alone(toy_paper, store_root):
    frame = table.build(toy_paper, Store(store_root))
    assert len(frame) == 3 and frame["ours"].isna().all()
    assert set(frame["paper"]) == {31.5, 30.0, 31.2}
    assert (frame["source"] == ["[P] Table 1", "[P] Table 1", "[I] Table 9"]).all()


def test_table_puts_ours_beside_paper_with_badge_and_delta(toy_runs, toy_paper):
    frame = table.build(toy_paper, toy_runs)
    row = frame[(frame.entry == "toy-method") & (frame.dataset == "digits")].iloc[0]
    ours = (expected_mean(1.0, 0) + expected_mean(1.0, 1)) / 2
    assert row["ours"] == pytest.approx(ours) and row["scale"] == "smoke"
    assert row["delta"] == pytest.approx(ours - 31.2)
    shown = table.display_frame(frame)
    cell = shown[(shown.entry == "toy-method") & (shown.dataset == "digits")].iloc[0]
    assert cell["ours"].endswith("[smoke]") and "±" in cell["ours"]
    base = frame[(frame.entry == "toy-baseline") & (frame.dataset == "digits")].iloc[0]
    assert pd_isna(base["paper"]) and pd_isna(base["delta"]) and "stands in for set5" in base["note"]


def pd_isna(v):
    import pandas as pd

    return v is None or pd.isna(v)


def test_delta_only_when_dialects_agree():
    assert table.comparable("fid@ref-npz", "fid@adm")
    assert not table.comparable("fd_digits", "fid@adm")
    assert not table.comparable("psnr_y@matlab", "psnr_rgb")


def test_claims_on_paper_numbers_and_ours(toy_runs, toy_paper):
    verdicts = {(v.claim, v.source, v.scale): v for v in claims.evaluate(toy_paper, toy_runs)}
    assert verdicts[("better", "paper", None)].verdict == "confirmed"  # 31.5 > 30.0 + 1.0 on [P] cells
    assert verdicts[("much-better", "paper", None)].verdict == "not confirmed"  # 31.5 < 30.0 + 2.0
    ours = verdicts[("better", "ours", "smoke")]
    # the toy recipe records no sanity floor, so its runs decide nothing (issue 23); the records still match
    assert ours.label == "inconclusive (no sanity floor recorded)" and ours.dialect == "same"
    assert set(ours.lhs.per_seed) == {"0", "1"} and ours.lhs.setting["sr_scale"] == 2


def test_claim_decision_rules():
    a, b = [2.0, 2.1, 1.9], [1.0, 1.1, 0.9]
    assert claims.welch_margin_test(a, b, "gt", 0.0).p_claim < 0.05
    assert claims.welch_margin_test(a, b, "lt", 0.0).p_opposite < 0.05
    assert claims.welch_margin_test(a, b, "gt", 1.5).p_opposite < 0.05  # a 1.0 gap misses a 1.5 margin
    noisy = [0.0, 2.2, 1.1]
    assert 0.05 < claims.welch_margin_test(noisy, b, "gt", 0.0).p_claim < 0.95
    assert claims.holds(1.0, 2.0, "lt", 0.5) and not claims.holds(1.0, 1.2, "lt", 0.5)


def test_check_pass_regressed_improved_stale_missing(toy_runs, toy_paper, tmp_path):
    ref_dir = tmp_path / "reference"
    ref_dir.mkdir()
    (written,) = check.update(toy_runs, ref_dir)
    path = written.path
    findings = check.check(toy_runs, ref_dir, papers=[toy_paper])
    assert [f.outcome for f in findings] == ["pass", "pass"]
    ref = json.loads(path.read_text())

    def rewrite(mutate):
        data = json.loads(json.dumps(ref))
        mutate(data)
        path.write_text(json.dumps(data))
        return {f.entry: f.outcome for f in check.check(toy_runs, ref_dir, papers=[toy_paper])}

    def shift(delta, entry="toy-method"):
        def mutate(data):
            run = next(r for r in data["runs"] if r["entry"] == entry)
            metric = run["metrics"]["psnr_rgb|sr_scale=2"]
            metric["value"] += delta
            metric["per_seed"] = {k: v + delta for k, v in metric["per_seed"].items()}
        return mutate

    # PSNR is higher-better: a reference 0.5 dB above the current run means the run regressed
    assert rewrite(shift(+0.5))["toy-method"] == "regressed"
    assert rewrite(shift(-0.5))["toy-method"] == "improved"
    # bit-level noise under the exact same environment is still a pass only within 1e-6 relative
    assert rewrite(shift(+1e-9))["toy-method"] == "pass"

    def stale(data):
        data["runs"][0]["run_id"] = "0" * 16
    assert "stale" in rewrite(stale).values()

    def missing(data):
        data["runs"][0]["entry"] = "toy-gone"
    assert rewrite(missing)["toy-gone"] == "missing"


def test_check_tolerance_outside_the_reference_environment():
    ref = {"value": 30.0, "per_seed": {}}
    assert check.compare_metric("psnr_rgb", ref, {"value": 30.005, "per_seed": {}}, False)[0] == "pass"
    assert check.compare_metric("psnr_rgb", ref, {"value": 30.005, "per_seed": {}}, True)[0] == "improved"
    assert check.compare_metric("fd_digits", {"value": 2.0, "per_seed": {}},
                                {"value": 2.5, "per_seed": {}}, False)[0] == "regressed"
