"""`bench claims`: each structured claim of a paper, evaluated on the paper's numbers and on ours per scale.

Verdicts: confirmed / not confirmed / inconclusive / no data.
- On the paper's numbers: the relation with its margin (and cost condition) is checked on the reported cells.
- On ours: the same relation on our run records. At smoke/small scale the runs use proxy datasets and
  metrics (recorded in `stands_for`), so the margin (in paper metric units) is not applied; only the
  direction is tested. With >= 2 seeds per side a one-sided Welch t-test (alpha 0.05) decides; with one seed
  the verdict is inconclusive (the gap is shown) because a single seed cannot separate method from noise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench import papers
from bench.cards import Claim
from bench.store import Store, setting_key
from bench.table import comparable

ALPHA = 0.05


@dataclass
class Verdict:
    claim: str
    where: str  # "paper" or a scale
    verdict: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"claim": self.claim, "where": self.where, "verdict": self.verdict, "detail": self.detail}


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


def _setting_matches(cell_setting: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(cell_setting.get(k) == v for k, v in wanted.items())


def _paper_value(card, entry: str, metric: str, dataset: str, setting: dict[str, Any]) -> float | None:
    for cell in card.reported:
        if (cell.entry == entry and cell.metric == metric and cell.dataset == dataset
                and _setting_matches(cell.setting, setting)):
            return cell.value
    return None


def _paper_cost(card, entry: str, metric: str, dataset: str, setting: dict[str, Any]) -> float | None:
    """The entry's cost cell, preferring the claim's dataset and the setting keys the cost cell shares with
    the claim (e.g. the same sr_scale or resolution); costs are often tabulated without a test set."""
    best, best_score = None, -1
    for cell in card.reported:
        if cell.entry != entry or cell.metric != metric:
            continue
        shared = set(cell.setting) & set(setting)
        if any(cell.setting[k] != setting[k] for k in shared):
            continue
        score = len(shared) * 2 + (cell.dataset == dataset)
        if score > best_score:
            best, best_score = cell.value, score
    return best


def evaluate_on_paper(card, claim: Claim) -> Verdict:
    lhs = _paper_value(card, claim.lhs, claim.metric, claim.dataset, claim.setting)
    rhs_setting = claim.rhs_setting if claim.rhs_setting is not None else claim.setting
    rhs = _paper_value(card, claim.rhs, claim.metric, claim.dataset, rhs_setting)
    if lhs is None or rhs is None:
        return Verdict(claim.id, "paper", "no data", "the card lacks one side's reported value")
    ok = holds(lhs, rhs, claim.relation, claim.margin)
    detail = f"{claim.lhs} {lhs:g} vs {claim.rhs} {rhs:g} ({claim.relation}, margin {claim.margin:g})"
    if ok and claim.cost:
        lc = _paper_cost(card, claim.lhs, claim.cost["metric"], claim.dataset, claim.setting)
        rc = _paper_cost(card, claim.rhs, claim.cost["metric"], claim.dataset, rhs_setting)
        if lc is None or rc is None:
            return Verdict(claim.id, "paper", "inconclusive", detail + f"; no reported {claim.cost['metric']}")
        ratio = lc / rc
        detail += f"; {claim.cost['metric']} ratio {ratio:.3f} (max {claim.cost['ratio_max']})"
        ok = ratio <= float(claim.cost["ratio_max"])
    return Verdict(claim.id, "paper", "confirmed" if ok else "not confirmed", detail)


def _our_records(runs: list[dict[str, Any]], entry: str, claim: Claim, scale: str) -> dict[str, dict[str, Any]]:
    """Metric records of `entry` at `scale` that stand for the claim's dataset and metric, by setting key."""
    found: dict[str, dict[str, Any]] = {}
    for run in runs:
        if run["entry"] != entry or run["scale"] != scale:
            continue
        proxy = run.get("stands_for") or {}
        stands = proxy.get("dataset")
        stands_list = stands if isinstance(stands, list) else [stands]
        if run["dataset"] != claim.dataset and claim.dataset not in stands_list:
            continue
        for m in run["metrics"]:
            stands = proxy.get("metrics", {}).get(m["metric"])
            if m["metric"] != claim.metric and stands != claim.metric and not comparable(m["metric"], claim.metric):
                continue
            if m["metric"] == claim.metric and not _setting_matches(m.get("setting", {}), claim.setting):
                continue
            found[setting_key(m.get("setting", {}))] = m
    return found


def _decide(lhs: dict[str, Any], rhs: dict[str, Any], relation: str) -> tuple[str, str]:
    a = [float(v) for v in lhs["per_seed"].values()]
    b = [float(v) for v in rhs["per_seed"].values()]
    gap = f"{lhs['value']:.4g} vs {rhs['value']:.4g}"
    if len(a) < 2 or len(b) < 2:
        direction = "holds" if holds(lhs["value"], rhs["value"], relation) else "does not hold"
        return "inconclusive", f"{gap}; direction {direction} on one seed (run --seeds 0,1,2 to test it)"
    from scipy.stats import ttest_ind

    # H1 in the claimed direction: lhs < rhs for lt/le, lhs > rhs for gt/ge.
    claimed = "less" if relation in ("lt", "le") else "greater"
    opposite = "greater" if claimed == "less" else "less"
    p_claim = float(ttest_ind(a, b, equal_var=False, alternative=claimed).pvalue)
    p_opp = float(ttest_ind(a, b, equal_var=False, alternative=opposite).pvalue)
    if p_claim < ALPHA:
        return "confirmed", f"{gap}; Welch p={p_claim:.3g} over {len(a)}+{len(b)} seeds"
    if p_opp < ALPHA:
        return "not confirmed", f"{gap}; opposite direction, Welch p={p_opp:.3g}"
    return "inconclusive", f"{gap}; Welch p={p_claim:.3g} (not significant)"


def evaluate(slug: str, store: Store | None = None, problems: list[str] | None = None) -> list[Verdict]:
    card = papers.card(slug)
    runs = (store or Store()).latest(slug, problems)
    scales = sorted({r["scale"] for r in runs}, key=["smoke", "small", "paper"].index)
    verdicts: list[Verdict] = []
    for claim in card.claims:
        verdicts.append(evaluate_on_paper(card, claim))
        if not scales:
            verdicts.append(Verdict(claim.id, "ours", "no data", f"no runs yet: bench reproduce {slug}"))
        for scale in scales:
            lhs, rhs = _our_records(runs, claim.lhs, claim, scale), _our_records(runs, claim.rhs, claim, scale)
            shared = sorted(set(lhs) & set(rhs))
            if not shared:
                verdicts.append(Verdict(claim.id, scale, "no data",
                                        f"no runs of both {claim.lhs} and {claim.rhs} for this claim"))
                continue
            for skey in shared:
                verdict, detail = _decide(lhs[skey], rhs[skey], claim.relation)
                metric = lhs[skey]["metric"]
                where = scale + (f" ({skey})" if skey else "")
                proxy_note = f" [{metric} as proxy, margin not applied]" if metric != claim.metric else ""
                verdicts.append(Verdict(claim.id, where, verdict, detail + proxy_note))
    return verdicts
