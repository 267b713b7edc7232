"""`bench claims`: each structured claim of a paper, decided only on evidence, on the paper's numbers and on ours.

One verdict per claim on the paper's numbers (source "paper") and one per claim and scale on our run records
(source "ours"). Verdicts: confirmed | not confirmed | inconclusive | unverified | no evidence | no data, each
with a short `reason` and the `evidence` behind it.

Paper side: the relation, after the margin, and the cost condition are checked on the card's reported cells,
and the cells' provenance tags are shown. A verdict resting on any [S] (third-party), [M] (memory) or
[I] (our inference) cell is "unverified", never "confirmed".

Our side, per pair of lhs/rhs metric records (same dataset, same metric, same setting):
- Setting: every key of the claim's setting (`rhs_setting` for the rhs) must equal our record's setting (run
  setting + metric setting) directly, or through a mapping the run's spec declares in
  `stands_for["settings"]`: `[{"paper": {claim keys: values}, "ours": {a subset of our setting}}]`. This holds
  for proxy and comparable dialects too; a record at another setting never decides the claim.
- Floors (bench/sanity.py): a run below its sanity floor gives "no evidence (below the sanity floor)"; a run
  with no floor recorded gives "inconclusive (no sanity floor recorded)". Neither ever confirms or refutes.
- Margin: the claim's margin is in the units of the claim's metric. It is applied on the same dialect and on a
  declared comparable one (bench.metrics.manifest.comparable). A negative margin states non-inferiority ("TAD-SR
  is within 0.02 CLIPIQA of its teacher": lhs ge rhs, margin -0.02): lhs may trail rhs by at most |margin|, and
  the same shifted test decides it. A proxy dialect cannot express a margin: a margin other than 0 on a proxy is
  "inconclusive"; margin 0 tests the direction only.
- Seeds: at least 3 per side; a side whose seeds all give the same value is "inconclusive (seeds do not vary
  the result)", since a t-test on zero spread returns p = 0 for any gap.
- Test: a one-sided Welch t-test on the margin-shifted difference. For gt/ge, H1: mean(lhs) - mean(rhs) > margin
  (lhs shifted down by the margin); for lt/le, H1: mean(lhs) - mean(rhs) < -margin. p < 0.05 -> confirmed; the
  opposite one-sided p < 0.05 (the margin significantly fails) -> not confirmed; otherwise inconclusive. The
  effect is the advantage in the claimed direction minus the margin (positive supports the claim) with its
  two-sided 95% Welch interval. We chose the t-test over a bootstrap interval because 3-5 seeds are too few for
  a bootstrap to resample meaningfully.
- Cost: `cost: {metric, ratio_max}` must hold on our recorded costs (run["cost"]: params_m, gmacs, nfe,
  latency_ms; a metric named in the record's setting, e.g. nfe, is taken from there): lhs / rhs <= ratio_max.
  Latency is compared only when both runs record the same hardware (provenance) and device, and the same
  input (cost["latency_input"] or cost["input_shape"]); otherwise the cost is not checkable. A failed cost
  condition makes the pair "not confirmed"; an uncheckable one keeps a significant pair "inconclusive".
- Rehearsals (`bench reproduce --max-steps/--max-samples`: steps and items capped, numbers meaningless) are
  never evidence: they are left out of every pair, and a scale with rehearsal runs only gets "no evidence
  (rehearsal runs only)".
- Several pairs (settings or datasets) for one claim: one verdict per claim and scale, with Holm's step-down
  correction over the pairs' tests, and the per-setting results beneath it. The family is confirmed only when
  every pair is confirmed after the correction, and not confirmed when any pair is.

Reads records only: no torch import; scipy is imported lazily.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bench import papers
from bench.cards import Claim, PaperCard, ReportedCell
from bench.metrics.manifest import comparable
from bench.sanity import FAILED, UNKNOWN, run_sanity
from bench.store import Store, is_rehearsal, setting_key

ALPHA = 0.05
MIN_SEEDS = 3
UNVERIFIED_TAGS = frozenset({"S", "M", "I"})
SCALE_ORDER = ("smoke", "small", "paper")

VerdictName = Literal["confirmed", "not confirmed", "inconclusive", "unverified", "no evidence", "no data"]
SettingValue = str | int | float | bool


# ---------------------------------------------------------------------------------------------- output schema
class _Out(BaseModel):
    # strict: a number that arrives as a string is a schema violation, not something to coerce
    model_config = ConfigDict(extra="forbid", strict=True)


class PaperCellOut(_Out):
    entry: str
    dataset: str
    metric: str
    value: float
    setting: dict[str, SettingValue]
    tag: str = Field(description="provenance tag: P paper, F figure, R repository, V verified, S third-party, "
                                 "M memory, B blog, I our inference")
    ref: str


class SideOut(_Out):
    entry: str
    metric: str | None = None
    value: float | None = Field(None, description="paper cell, or our mean over seeds; null if not a number")
    per_seed: dict[str, float | None] | None = Field(None, description="ours: seed -> value")
    n: int | None = Field(None, description="ours: number of seeds")
    run_id: str | None = None
    setting: dict[str, SettingValue] | None = Field(None, description="ours: run setting + metric setting")
    sanity: str | None = Field(None, description="ours: passed | did not learn | no floor recorded")
    cells: list[PaperCellOut] | None = Field(None, description="paper: the cells used, with their tags")


class CostOut(_Out):
    metric: str
    lhs: float | None
    rhs: float | None
    ratio: float | None
    bound: float
    holds: bool | None = Field(description="null when the condition cannot be checked (see note)")
    note: str = ""


class SignificanceOut(_Out):
    name: str
    p: float | None = Field(description="one-sided p in the claimed direction (Holm-adjusted in a family)")
    p_raw: float | None = Field(None, description="before the Holm correction")
    effect: float | None = Field(None, description="advantage in the claimed direction minus the margin")
    ci95: list[float] | None = Field(None, min_length=2, max_length=2)
    n: list[int] | None = Field(None, description="seeds [lhs, rhs]")


class Verdict(_Out):
    claim: str
    text: str
    source: Literal["paper", "ours"]
    scale: Literal["smoke", "small", "paper"] | None = Field(description="null for the paper's numbers")
    setting: dict[str, SettingValue] = Field(description="the claim's setting (ours, in sub-results)")
    metric: str = Field(description="the metric compared (a proxy or comparable dialect on ours)")
    dialect: Literal["same", "comparable", "proxy"] | None = None
    lhs: SideOut | None = None
    rhs: SideOut | None = None
    margin: float
    relation: Literal["lt", "le", "gt", "ge"]
    cost: CostOut | None = None
    test: SignificanceOut | None = None
    verdict: VerdictName
    reason: str = Field(description="why, in a few words, e.g. 'seeds do not vary the result'")
    evidence: str = Field(description="the numbers behind the verdict, for humans")
    results: list[Verdict] = Field(default_factory=list, description="per-setting results of a Holm family")

    @property
    def label(self) -> str:
        return f"{self.verdict} ({self.reason})" if self.reason else self.verdict

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def schema() -> dict[str, Any]:
    """The documented JSON schema of `bench claims --json` (a list of verdicts)."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "bench claims --json",
            "type": "array", "items": {"$ref": "#/$defs/Verdict"},
            "$defs": {**Verdict.model_json_schema(ref_template="#/$defs/{model}")["$defs"],
                      "Verdict": {k: v for k, v in Verdict.model_json_schema(
                          ref_template="#/$defs/{model}").items() if k != "$defs"}}}


# ---------------------------------------------------------------------------------------------- helpers
def _num(value: Any) -> float | None:
    """A JSON-safe float: None for missing, NaN or infinite values."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True
    na, nb = _num(a), _num(b)  # 1 and 1.0, "1.0" and 1.0 name the same setting
    return na is not None and nb is not None and not isinstance(a, bool) and not isinstance(b, bool) and na == nb


def holds(lhs: float, rhs: float, relation: str, margin: float = 0.0) -> bool:
    if relation == "lt":
        return lhs < rhs - margin
    if relation == "le":
        return lhs <= rhs - margin
    if relation == "gt":
        return lhs > rhs + margin
    if relation == "ge":
        return lhs >= rhs + margin
    raise ValueError(relation)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class WelchResult:
    name: str
    p_claim: float  # H1: the claim (with its margin) holds
    p_opposite: float  # H1: it does not
    effect: float
    ci95: tuple[float, float]


def welch_margin_test(lhs: list[float], rhs: list[float], relation: str, margin: float,
                      names: tuple[str, str] = ("lhs", "rhs")) -> WelchResult:
    """One-sided Welch t-test of the claim on the margin-shifted difference (see the module docstring)."""
    from scipy.stats import t as student_t
    from scipy.stats import ttest_ind

    better_high = relation in ("gt", "ge")
    shift = margin if better_high else -margin
    shifted = [v - shift for v in lhs]
    claimed = "greater" if better_high else "less"
    p_claim = float(ttest_ind(shifted, rhs, equal_var=False, alternative=claimed).pvalue)
    na, nb = len(lhs), len(rhs)
    ma, mb = math.fsum(lhs) / na, math.fsum(rhs) / nb
    va = math.fsum((v - ma) ** 2 for v in lhs) / (na - 1)
    vb = math.fsum((v - mb) ** 2 for v in rhs) / (nb - 1)
    se2 = va / na + vb / nb
    df = se2 ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    half = float(student_t.ppf(0.975, df)) * math.sqrt(se2)
    advantage = (ma - mb) if better_high else (mb - ma)
    effect = advantage - margin
    sign = ">" if better_high else "<"
    name = f"one-sided Welch t-test, H1: {names[0]} - {names[1]} {sign} {shift + 0.0:g}"  # + 0.0: no "-0"
    return WelchResult(name, p_claim, 1.0 - p_claim, effect, (effect - half, effect + half))


# ---------------------------------------------------------------------------------------------- paper side
def _paper_cell(card: PaperCard, entry: str, metric: str, dataset: str,
                setting: dict[str, Any]) -> ReportedCell | None:
    for cell in card.reported:
        if (cell.entry == entry and cell.metric == metric and cell.dataset == dataset
                and all(k in cell.setting and _same(cell.setting[k], v) for k, v in setting.items())):
            return cell
    return None


def _paper_cost_cell(card: PaperCard, entry: str, metric: str, dataset: str,
                     setting: dict[str, Any]) -> ReportedCell | None:
    """The entry's cost cell, preferring the claim's dataset and the setting keys the cost cell shares with
    the claim (e.g. the same sr_scale or resolution); costs are often tabulated without a test set."""
    best, best_score = None, -1
    for cell in card.reported:
        if cell.entry != entry or cell.metric != metric:
            continue
        shared = set(cell.setting) & set(setting)
        if any(not _same(cell.setting[k], setting[k]) for k in shared):
            continue
        score = len(shared) * 2 + (cell.dataset == dataset)
        if score > best_score:
            best, best_score = cell, score
    return best


def _cell_out(cell: ReportedCell) -> PaperCellOut:
    return PaperCellOut(entry=cell.entry, dataset=cell.dataset, metric=cell.metric, value=float(cell.value),
                        setting=dict(cell.setting), tag=cell.source.tag, ref=cell.source.ref)


def _tagged(cell: ReportedCell) -> str:
    return f"{cell.value:g} [{cell.source.tag}] {cell.source.ref}"


def evaluate_on_paper(card: PaperCard, claim: Claim) -> Verdict:
    base = {"claim": claim.id, "text": claim.text, "source": "paper", "scale": None, "setting": dict(claim.setting),
            "metric": claim.metric, "margin": float(claim.margin), "relation": claim.relation}
    rhs_setting = claim.rhs_setting if claim.rhs_setting is not None else claim.setting
    lhs = _paper_cell(card, claim.lhs, claim.metric, claim.dataset, claim.setting)
    rhs = _paper_cell(card, claim.rhs, claim.metric, claim.dataset, rhs_setting)
    if lhs is None or rhs is None:
        missing = " and ".join(e for e, c in ((claim.lhs, lhs), (claim.rhs, rhs)) if c is None)
        return Verdict(**base, verdict="no data", reason="the card reports no value",
                       evidence=f"no reported {claim.metric} on {claim.dataset} at {setting_key(claim.setting)} "
                                f"for {missing}")
    used = [lhs, rhs]
    ok = holds(lhs.value, rhs.value, claim.relation, claim.margin)
    evidence = (f"{claim.lhs} {_tagged(lhs)} vs {claim.rhs} {_tagged(rhs)} "
                f"({claim.relation}, margin {claim.margin:g})")
    cost_out = None
    cost_known = True
    if claim.cost:
        metric, bound = claim.cost["metric"], float(claim.cost["ratio_max"])
        lc = _paper_cost_cell(card, claim.lhs, metric, claim.dataset, claim.setting)
        rc = _paper_cost_cell(card, claim.rhs, metric, claim.dataset, rhs_setting)
        if lc is None or rc is None or rc.value == 0:
            cost_known = False
            cost_out = CostOut(metric=metric, lhs=_num(lc.value) if lc else None, rhs=_num(rc.value) if rc else None,
                               ratio=None, bound=bound, holds=None, note=f"the card reports no usable {metric}")
            evidence += f"; no reported {metric} for both"
        else:
            used += [lc, rc]
            ratio = lc.value / rc.value
            cost_ok = ratio <= bound
            cost_out = CostOut(metric=metric, lhs=float(lc.value), rhs=float(rc.value), ratio=ratio, bound=bound,
                               holds=cost_ok)
            evidence += f"; {metric} {_tagged(lc)} / {_tagged(rc)} = ratio {ratio:.3g} (max {bound:g})"
            ok = ok and cost_ok
    sides = {"lhs": SideOut(entry=claim.lhs, metric=claim.metric, value=float(lhs.value), cells=[_cell_out(lhs)]),
             "rhs": SideOut(entry=claim.rhs, metric=claim.metric, value=float(rhs.value), cells=[_cell_out(rhs)])}
    if cost_out is not None and cost_out.holds is not None:
        sides["lhs"].cells.append(_cell_out(used[2]))
        sides["rhs"].cells.append(_cell_out(used[3]))
    weak = sorted({c.source.tag for c in used} & UNVERIFIED_TAGS)
    if weak:
        would = "holds" if ok and cost_known else ("does not hold" if not ok else "holds (cost not reported)")
        return Verdict(**base, **sides, cost=cost_out, verdict="unverified",
                       reason=f"rests on [{'], ['.join(weak)}] cells",
                       evidence=evidence + f"; on these numbers the claim {would}")
    if not ok:
        return Verdict(**base, **sides, cost=cost_out, verdict="not confirmed", reason="on the reported numbers",
                       evidence=evidence)
    if not cost_known:
        return Verdict(**base, **sides, cost=cost_out, verdict="inconclusive", reason="cost not reported",
                       evidence=evidence)
    return Verdict(**base, **sides, cost=cost_out, verdict="confirmed", reason="on the reported numbers",
                   evidence=evidence)


# ---------------------------------------------------------------------------------------------- our side
@dataclass
class Match:
    """One of our metric records that stands for the claim's (dataset, metric, setting) for one entry."""

    run: dict[str, Any]
    record: dict[str, Any]
    dialect: str  # same | comparable | proxy
    ours: dict[str, Any]  # run setting + metric setting
    pair_key: tuple[str, str, str]


def _dialect(metric: str, run: dict[str, Any], claim: Claim) -> str | None:
    if metric == claim.metric:
        return "same"
    if comparable(metric, claim.metric):
        return "comparable"
    if ((run.get("stands_for") or {}).get("metrics") or {}).get(metric) == claim.metric:
        return "proxy"
    return None


def _stands_for_dataset(run: dict[str, Any], dataset: str) -> bool:
    stands = (run.get("stands_for") or {}).get("dataset")
    stands_list = stands if isinstance(stands, list) else [stands]
    return run["dataset"] == dataset or dataset in stands_list


def match_setting(wanted: dict[str, Any], ours: dict[str, Any],
                  mappings: list[dict[str, Any]]) -> tuple[bool, list[str], dict[str, set[str]]]:
    """Does our setting stand for the claim's? Every claim key must equal ours directly, or come from a
    stands_for["settings"] mapping whose "ours" side our setting contains. Returns (ok, the keys that failed,
    our keys each claim key was matched on)."""
    failed: list[str] = []
    used: dict[str, set[str]] = {}
    for key, value in wanted.items():
        if key in ours and _same(ours[key], value):
            used[key] = {key}
            continue
        for mapping in mappings:
            paper_side, our_side = mapping.get("paper") or {}, mapping.get("ours") or {}
            if (key in paper_side and _same(paper_side[key], value)
                    and all(k in ours and _same(ours[k], v) for k, v in our_side.items())):
                used[key] = set(our_side)
                break
        else:
            failed.append(f"{key}={value}")
    return not failed, failed, used


def _matches(runs: list[dict[str, Any]], entry: str, claim: Claim, wanted: dict[str, Any],
             varying: set[str]) -> tuple[list[Match], list[str]]:
    """Our records of `entry` at the claim's dataset, metric and setting; and, for the explanation when there
    are none, the records that had the dataset and metric but another setting."""
    from bench.sanity import is_sanity

    found: list[Match] = []
    near: list[str] = []
    for run in runs:
        if run["entry"] != entry or not _stands_for_dataset(run, claim.dataset):
            continue
        mappings = list((run.get("stands_for") or {}).get("settings") or [])
        for m in run["metrics"]:
            if is_sanity(m):
                continue
            dialect = _dialect(m["metric"], run, claim)
            if dialect is None:
                continue
            ours = {**(run.get("setting") or {}), **(m.get("setting") or {})}
            ok, failed, used = match_setting(wanted, ours, mappings)
            if not ok:
                near.append(f"{m['metric']} at {setting_key(m.get('setting') or {}) or 'no setting'} "
                            f"(lacks {', '.join(failed)})")
                continue
            # lhs and rhs are paired on everything but the claim keys on which their settings differ
            dropped = {k for key in varying for k in used.get(key, {key})}
            shown = {k: v for k, v in sorted(ours.items()) if k not in dropped}
            found.append(Match(run, m, dialect, ours, (run["dataset"], m["metric"], setting_key(shown))))
    return found, near


def _side(match: Match) -> SideOut:
    per_seed = {str(k): _num(v) for k, v in (match.record.get("per_seed") or {}).items()}
    setting = {k: v for k, v in match.ours.items() if isinstance(v, (str, int, float, bool))}
    return SideOut(entry=match.run["entry"], metric=match.record["metric"], value=_num(match.record.get("value")),
                   per_seed=per_seed, n=len(per_seed), run_id=match.run.get("run_id"), setting=setting,
                   sanity=run_sanity(match.run).status)


def _cost_value(match: Match, metric: str) -> tuple[float | None, str]:
    if metric in (match.record.get("setting") or {}):  # e.g. nfe is part of a sampler setting
        return _num(match.record["setting"][metric]), ""
    value = (match.run.get("cost") or {}).get(metric)
    if isinstance(value, dict):  # recorded per setting (e.g. per sampler setting)
        value = value.get(setting_key(match.record.get("setting") or {}))
    number = _num(value)
    return number, "" if number is not None else f"no {metric} recorded in run {match.run.get('run_id')}"


def _latency_conditions(match: Match) -> tuple[dict[str, Any] | None, Any]:
    hw = (match.run.get("provenance") or {}).get("hardware")
    cost = match.run.get("cost") or {}
    device = None if not isinstance(hw, dict) else {"cpu": hw.get("cpu"), "gpu": hw.get("gpu"),
                                                     "device": cost.get("device")}
    return device, cost.get("latency_input", cost.get("input_shape"))


def our_cost(claim: Claim, lhs: Match, rhs: Match) -> CostOut | None:
    if not claim.cost:
        return None
    metric, bound = claim.cost["metric"], float(claim.cost["ratio_max"])
    lv, lwhy = _cost_value(lhs, metric)
    rv, rwhy = _cost_value(rhs, metric)
    note = "; ".join(w for w in (lwhy, rwhy) if w)
    if metric == "latency_ms" and not note:
        (ldev, lin), (rdev, rin) = _latency_conditions(lhs), _latency_conditions(rhs)
        if ldev is None or rdev is None:
            note = "latency without recorded hardware"
        elif ldev != rdev:
            note = f"latency measured on different hardware ({ldev} vs {rdev})"
        elif lin is None or rin is None:
            note = "latency without a recorded input (cost latency_input or input_shape)"
        elif lin != rin:
            note = f"latency measured on different inputs ({lin} vs {rin})"
    ratio = lv / rv if lv is not None and rv not in (None, 0.0) else None
    if ratio is None and not note:
        note = f"{metric} of {rhs.run['entry']} is 0"
    return CostOut(metric=metric, lhs=lv, rhs=rv, ratio=_num(ratio), bound=bound,
                   holds=None if note else ratio <= bound, note=note)


@dataclass
class Pair:
    lhs: Match
    rhs: Match
    setting: dict[str, Any]
    gate: tuple[str, str, str] | None  # verdict, reason, evidence when the evidence rules stop before the test
    test: WelchResult | None
    cost: CostOut | None


def _values(match: Match) -> list[float]:
    """Per-seed values; a missing or non-numeric one becomes NaN, which the evidence rules refuse to test."""
    values = [_num(v) for v in (match.record.get("per_seed") or {}).values()]
    return [math.nan if v is None else v for v in values]


def _seeds_below(sanity: Any) -> str:
    """The seeds' values that did not clear their floor, e.g. ' (seed 1: 0.08, seed 2: 0.08)'."""
    low = [f"seed {seed}: {value:.4g}" for c in sanity.checks for seed, value in c["below"].items()]
    return f" ({', '.join(low)})" if low else ""


def _floor_gate(lhs: Match, rhs: Match) -> tuple[str, str, str] | None:
    sanity = {side: (m, run_sanity(m.run)) for side, m in (("lhs", lhs), ("rhs", rhs))}
    low = [f"{side} {m.run['entry']} (run {m.run.get('run_id')}): {s.detail()}{_seeds_below(s)}"
           for side, (m, s) in sanity.items() if s.status == FAILED]
    if low:
        return "no evidence", "below the sanity floor", "; ".join(low)
    unknown = [f"{side} {m.run['entry']} (run {m.run.get('run_id')})"
               for side, (m, s) in sanity.items() if s.status == UNKNOWN]
    if unknown:
        return "inconclusive", "no sanity floor recorded", "no sanity metric in " + " and ".join(unknown)
    return None


def _pair(claim: Claim, lhs: Match, rhs: Match) -> Pair:
    a, b = _values(lhs), _values(rhs)
    shown = f"{lhs.run['entry']} {_fmt(lhs.record.get('value'))} (n={len(a)}) vs " \
            f"{rhs.run['entry']} {_fmt(rhs.record.get('value'))} (n={len(b)})"
    setting = {k: v for k, v in sorted(lhs.ours.items()) if isinstance(v, (str, int, float, bool))}
    cost = our_cost(claim, lhs, rhs)
    gate = _floor_gate(lhs, rhs)
    if gate is None and lhs.dialect == "proxy" and claim.margin != 0:
        gate = ("inconclusive", "margin not expressible in proxy units",
                f"the margin {claim.margin:g} is in {claim.metric} units; {lhs.record['metric']} is a proxy; {shown}")
    if gate is None and (len(a) < MIN_SEEDS or len(b) < MIN_SEEDS):
        gate = ("inconclusive", f"fewer than {MIN_SEEDS} seeds a side",
                f"{shown}; run --seeds 0,1,2 to test it")
    if gate is None and not all(math.isfinite(v) for v in a + b):
        gate = ("inconclusive", "non-finite result", shown)
    if gate is None and (len(set(a)) == 1 or len(set(b)) == 1):
        flat = " and ".join(m.run["entry"] for m, v in ((lhs, a), (rhs, b)) if len(set(v)) == 1)
        gate = ("inconclusive", "seeds do not vary the result", f"{shown}; every seed of {flat} gives the same value")
    test = None
    if gate is None:
        test = welch_margin_test(a, b, claim.relation, claim.margin, (lhs.run["entry"], rhs.run["entry"]))
    return Pair(lhs, rhs, setting, gate, test, cost)


def _fmt(value: Any) -> str:
    number = _num(value)
    return "nan" if number is None else f"{number:.4g}"


def _pair_verdict(claim: Claim, pair: Pair, base: dict[str, Any], p_claim: float | None,
                  p_opp: float | None, in_family: bool) -> Verdict:
    """The verdict of one pair once its p-values are final (Holm-adjusted within a family)."""
    fields = dict(base, lhs=_side(pair.lhs), rhs=_side(pair.rhs), cost=pair.cost, metric=pair.lhs.record["metric"],
                  dialect=pair.lhs.dialect)
    if in_family:
        fields["setting"] = pair.setting
    cost_text = ""
    if pair.cost is not None:
        c = pair.cost
        cost_text = (f"; {c.metric} ratio {_fmt(c.ratio)} (max {c.bound:g})" if c.holds is not None
                     else f"; {c.metric} not checkable: {c.note}")
    if pair.gate is not None:
        verdict, reason, evidence = pair.gate
        return Verdict(**fields, verdict=verdict, reason=reason, evidence=evidence + cost_text)
    t = pair.test
    assert t is not None and p_claim is not None and p_opp is not None
    fields["test"] = SignificanceOut(name=t.name + (" (Holm-adjusted p)" if in_family else ""), p=_num(p_claim),
                             p_raw=_num(t.p_claim), effect=_num(t.effect), ci95=[float(t.ci95[0]), float(t.ci95[1])],
                             n=[len(_values(pair.lhs)), len(_values(pair.rhs))])
    evidence = (f"{pair.lhs.run['entry']} {_fmt(pair.lhs.record['value'])} vs {pair.rhs.run['entry']} "
                f"{_fmt(pair.rhs.record['value'])}; {t.name}: p={p_claim:.3g}, effect {t.effect:+.4g} "
                f"[{t.ci95[0]:+.4g}, {t.ci95[1]:+.4g}] over {len(_values(pair.lhs))}+{len(_values(pair.rhs))} "
                f"seeds") + cost_text
    if pair.cost is not None and pair.cost.holds is False:
        return Verdict(**fields, verdict="not confirmed", reason="cost condition fails", evidence=evidence)
    if p_claim < ALPHA:
        if pair.cost is not None and pair.cost.holds is None:
            return Verdict(**fields, verdict="inconclusive", reason="cost condition not checkable", evidence=evidence)
        held = "the margin holds significantly" + (", the cost condition holds" if pair.cost is not None else "")
        return Verdict(**fields, verdict="confirmed", reason=held, evidence=evidence)
    if p_opp < ALPHA:
        return Verdict(**fields, verdict="not confirmed", reason="the margin significantly fails",
                       evidence=evidence + f"; opposite p={p_opp:.3g}")
    return Verdict(**fields, verdict="inconclusive", reason="not significant", evidence=evidence)


def _family(claim: Claim, base: dict[str, Any], subs: list[Verdict]) -> Verdict:
    """One verdict for a claim evaluated over several settings: confirmed only if every setting is."""
    m = len(subs)
    counts: dict[str, int] = {}
    for s in subs:
        counts[s.label] = counts.get(s.label, 0) + 1
    summary = ", ".join(f"{k}: {v}" for k, v in counts.items())
    tested = [s.test.p for s in subs if s.test is not None and s.test.p is not None]
    test = SignificanceOut(name=f"Holm over {len(tested)} one-sided Welch tests", p=max(tested) if tested else None) \
        if tested else None
    fields = dict(base, dialect=subs[0].dialect, metric=subs[0].metric, test=test, results=subs,
                  evidence=f"{m} settings: {summary}")
    bad = [s for s in subs if s.verdict == "not confirmed"]
    if bad:
        return Verdict(**fields, verdict="not confirmed", reason=f"not confirmed at {len(bad)} of {m} settings")
    if all(s.verdict == "confirmed" for s in subs):
        return Verdict(**fields, verdict="confirmed", reason=f"confirmed at all {m} settings (Holm)")
    if len({(s.verdict, s.reason) for s in subs}) == 1:
        return Verdict(**fields, verdict=subs[0].verdict, reason=subs[0].reason)
    if all(s.verdict == "no evidence" for s in subs):
        return Verdict(**fields, verdict="no evidence", reason="below the sanity floor")
    return Verdict(**fields, verdict="inconclusive", reason=f"not confirmed at every one of {m} settings")


def evaluate_on_ours(claim: Claim, runs: list[dict[str, Any]], scale: str) -> Verdict:
    """One verdict for the claim on our records at one scale (a Holm family when it spans several settings)."""
    base = {"claim": claim.id, "text": claim.text, "source": "ours", "scale": scale, "setting": dict(claim.setting),
            "metric": claim.metric, "margin": float(claim.margin), "relation": claim.relation}
    real = [r for r in runs if not is_rehearsal(r)]
    if runs and not real:
        return Verdict(**base, verdict="no evidence", reason="rehearsal runs only",
                       evidence=f"a rehearsal caps steps and samples, so its numbers decide nothing: run "
                                f"bench reproduce {runs[0].get('paper', '')} --scale {scale} without --max-steps "
                                f"and --max-samples")
    runs = real
    rhs_setting = dict(claim.rhs_setting if claim.rhs_setting is not None else claim.setting)
    varying = {k for k in set(claim.setting) | set(rhs_setting)
               if k not in claim.setting or k not in rhs_setting or not _same(claim.setting[k], rhs_setting[k])}
    lhs, lhs_near = _matches(runs, claim.lhs, claim, dict(claim.setting), varying)
    rhs, rhs_near = _matches(runs, claim.rhs, claim, rhs_setting, varying)
    pairs = [_pair(claim, a, b) for a in lhs for b in rhs if a.pair_key == b.pair_key]
    if not pairs:
        why = []
        for entry, found, near in ((claim.lhs, lhs, lhs_near), (claim.rhs, rhs, rhs_near)):
            if near and not found:
                why.append(f"{entry}: {'; '.join(near[:4])}")
            elif not found:
                why.append(f"{entry}: no run of {claim.metric} or a declared proxy on {claim.dataset}")
        if lhs and rhs:
            why.append("lhs and rhs records share no setting")
        reason = "no records at the claim's setting" if (lhs_near or rhs_near) else "no runs of both sides"
        hint = (" (a proxy declares the paper settings it stands for in stands_for['settings'])"
                if lhs_near or rhs_near else "")
        return Verdict(**base, verdict="no data", reason=reason, evidence="; ".join(why) + hint)
    tested = [p for p in pairs if p.test is not None]
    adj_claim = dict(zip(map(id, tested), holm([p.test.p_claim for p in tested])))
    adj_opp = dict(zip(map(id, tested), holm([p.test.p_opposite for p in tested])))
    family = len(pairs) > 1
    subs = [_pair_verdict(claim, p, base, adj_claim.get(id(p)), adj_opp.get(id(p)), family) for p in pairs]
    return _family(claim, base, subs) if family else subs[0]


def evaluate(slug: str, store: Store | None = None, problems: list[str] | None = None) -> list[Verdict]:
    card = papers.card(slug)
    runs = (store or Store()).latest(slug, problems, rehearsals=True)  # a rehearsal-only scale says so
    scales = [s for s in SCALE_ORDER if any(r["scale"] == s for r in runs)]
    verdicts: list[Verdict] = []
    for claim in card.claims:
        verdicts.append(evaluate_on_paper(card, claim))
        if not scales:
            verdicts.append(Verdict(claim=claim.id, text=claim.text, source="ours", scale=None,
                                    setting=dict(claim.setting), metric=claim.metric, margin=float(claim.margin),
                                    relation=claim.relation, verdict="no data", reason="no runs yet",
                                    evidence=f"bench reproduce {slug}"))
        for scale in scales:
            verdicts.append(evaluate_on_ours(claim, [r for r in runs if r["scale"] == scale], scale))
    return verdicts


# `bench.claims(...)` calls bench.api.claims (see bench/__init__.py)
import bench as _bench  # noqa: E402

_bench.make_callable(__name__)
