"""The headline view: did the method beat its baselines in our runs, by how much, at what cost, and is it evidence?

`bench table PAPER` prints this first (the paper's full table comes behind `--all`), `bench reproduce` ends with
it, and `bench report` embeds it. One row per (scale, dataset, setting, metric, method, baseline):
- each side's mean over seeds, sample std and n, with its sanity standing;
- delta = method - baseline, and whether that is better given the metric's direction;
- the cost ratios method / baseline that papers argue with: params, MACs, training time, sampling time per
  sample, latency, NFE (whichever both runs recorded);
- the verdict of the claim about this pair (bench.claims rules), and the paper's own numbers for that claim.

Which pairs: those the paper's claims compare, where we have runs of both sides; the other quality metrics of
the same pair of runs are shown beside them (without a verdict). At a scale where no claim pairs our runs,
every method run meets every baseline run on the same dataset and run setting.

Rehearsals (capped steps and samples: `bench reproduce --max-steps/--max-samples`) get sections of their own,
"ours [small, rehearsal]": they never pair with real runs, and no claim verdict rests on them.

Reads records only: no torch, no pandas (pandas only in `to_frame`), so `bench table` stays fast.
"""
from __future__ import annotations

import csv
import html
import io
import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from bench import papers
from bench.metrics.manifest import DIALECTS
from bench.sanity import is_sanity, run_sanity
from bench.store import Store, is_rehearsal, setting_key

SCALE_ORDER = ("smoke", "small", "paper")

# cost name -> (label, keys tried in run["cost"], in order); a dict value is looked up by the metric's setting key
COSTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "params_m": ("params", ("params_m",)),
    "gmacs": ("MACs", ("gmacs",)),
    "train_s": ("train time", ("train_wall_s", "train_s")),
    "sample_s_per_item": ("sampling time/sample", ("sample_s_per_item",)),
    "latency_ms": ("latency", ("latency_ms",)),
    "nfe": ("NFE", ("nfe",)),
}

SCALE_NOTE = {"smoke": "CPU, embedded data, minutes: checks the code path, NOT a reproduction of the paper's numbers",
              "small": "one GPU, 20 minutes: a proxy, NOT a reproduction of the paper's numbers",
              "paper": "the paper's configuration on the real datasets"}
REHEARSAL_NOTE = "a CPU rehearsal of this scale's code path, steps and samples capped: its numbers mean nothing"


def section_note(scale: str, rehearsal: bool) -> str:
    return REHEARSAL_NOTE if rehearsal else SCALE_NOTE[scale]


@dataclass
class Side:
    entry: str
    mean: float | None
    std: float | None
    n: int
    run_id: str | None
    sanity: str

    def as_dict(self) -> dict[str, Any]:
        return {"entry": self.entry, "mean": self.mean, "std": self.std, "n": self.n, "run_id": self.run_id,
                "sanity": self.sanity}


@dataclass
class Row:
    scale: str
    dataset: str
    setting: dict[str, Any]
    metric: str
    direction: str
    method: Side
    baseline: Side
    cost: dict[str, dict[str, float | None]] = field(default_factory=dict)
    claim: str | None = None
    verdict: str | None = None
    verdict_reason: str | None = None
    paper: dict[str, Any] | None = None
    run_setting: dict[str, Any] = field(default_factory=dict)  # the part of `setting` that tells runs apart
    rehearsal: bool = False  # both sides are capped rehearsals (bench.store.is_rehearsal)

    @property
    def badge(self) -> str:
        """"small", or "small, rehearsal" for a rehearsal row: the section it is shown under."""
        return f"{self.scale}, rehearsal" if self.rehearsal else self.scale

    @property
    def delta(self) -> float | None:
        if self.method.mean is None or self.baseline.mean is None:
            return None
        return self.method.mean - self.baseline.mean

    @property
    def delta_pct(self) -> float | None:
        d = self.delta
        if d is None or not self.baseline.mean:
            return None
        return 100.0 * d / abs(self.baseline.mean)

    @property
    def better(self) -> bool | None:
        """True when the method is better than the baseline on this metric, None on a tie or no numbers."""
        return _better(self.delta, self.direction)

    def as_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "rehearsal": self.rehearsal, "dataset": self.dataset, "setting": self.setting,
                "metric": self.metric, "direction": self.direction, "method": self.method.as_dict(),
                "baseline": self.baseline.as_dict(),
                "delta": self.delta, "delta_pct": self.delta_pct, "better": self.better, "cost": self.cost,
                "claim": self.claim, "verdict": self.verdict, "verdict_reason": self.verdict_reason,
                "paper": self.paper}


def _better(delta: float | None, direction: str) -> bool | None:
    if delta is None or delta == 0 or direction not in ("lower", "higher"):
        return None
    return delta < 0 if direction == "lower" else delta > 0


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _side(run: dict[str, Any], record: dict[str, Any]) -> Side:
    values = [v for v in (_num(x) for x in (record.get("per_seed") or {}).values()) if v is not None]
    mean = _num(record.get("value"))
    std = statistics.stdev(values) if len(values) >= 2 else None
    return Side(run["entry"], mean, std, len(values) or int(record.get("n_seeds", 0) or 0), run.get("run_id"),
                run_sanity(run).status)


def cost_value(run: dict[str, Any], record: dict[str, Any], name: str) -> float | None:
    """One cost of a run for one metric record: a cost in the record's setting (e.g. nfe) wins; a cost recorded
    per setting (a dict keyed by setting key) is looked up by the record's setting."""
    setting = record.get("setting") or {}
    keys = COSTS[name][1] if name in COSTS else (name,)
    if name in setting:
        return _num(setting[name])
    cost = run.get("cost") or {}
    for key in keys:
        value = cost.get(key)
        if isinstance(value, dict):
            value = value.get(setting_key(setting))
        if _num(value) is not None:
            return _num(value)
    return None


def _costs(lhs: tuple[dict, dict], rhs: tuple[dict, dict]) -> dict[str, dict[str, float | None]]:
    out = {}
    for name in COSTS:
        a, b = cost_value(*lhs, name), cost_value(*rhs, name)
        if a is None or b is None:
            continue
        out[name] = {"method": a, "baseline": b, "ratio": a / b if b else None}
    return out


def _quality(record: dict[str, Any]) -> bool:
    return not is_sanity(record) and DIALECTS.get(record["metric"], {}).get("family") != "cost"


def _record_for(run: dict[str, Any], metric: str, setting: dict[str, Any]) -> dict[str, Any] | None:
    """The run's record of `metric` whose own setting is contained in `setting` (run + metric setting)."""
    for m in run["metrics"]:
        if m["metric"] == metric and all(setting.get(k) == v for k, v in (m.get("setting") or {}).items()):
            return m
    return None


def _shown_setting(run: dict[str, Any], record: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    """The metric's own setting plus the run-setting keys that matter here (claim keys, keys that vary)."""
    run_setting = run.get("setting") or {}
    shown = {k: v for k, v in run_setting.items() if k in keys}
    shown.update(record.get("setting") or {})
    return dict(sorted(shown.items()))


def _paper_side(paper_verdict: Any, claim: Any) -> dict[str, Any] | None:
    lhs, rhs = paper_verdict.lhs, paper_verdict.rhs
    direction = DIALECTS.get(claim.metric, {}).get("direction", "")
    tags = sorted({c.tag for side in (lhs, rhs) if side is not None for c in (side.cells or [])})
    lv = lhs.value if lhs is not None else None
    rv = rhs.value if rhs is not None else None
    delta = lv - rv if lv is not None and rv is not None else None
    cost = paper_verdict.cost
    return {"metric": claim.metric, "dataset": claim.dataset, "setting": dict(claim.setting), "method": lv,
            "baseline": rv, "delta": delta, "better": _better(delta, direction), "direction": direction,
            "tags": tags, "verdict": paper_verdict.verdict, "reason": paper_verdict.reason,
            "cost": None if cost is None else {"metric": cost.metric, "ratio": cost.ratio, "bound": cost.bound}}


@dataclass
class Headline:
    paper: str
    title: str
    rows: list[Row]
    scales: list[str]
    hidden_cells: int  # paper cells not shown (bench table --all shows them)
    unpaired: dict[str, list[str]] = field(default_factory=dict)  # scale -> entries run but in no row

    # ------------------------------------------------------------------ data
    def as_dicts(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.rows]

    def to_frame(self) -> Any:
        """A flat pandas DataFrame, one column per number (for notebooks: bench.table(...))."""
        import pandas as pd

        return pd.DataFrame(flat_records(self.rows))

    def sections(self) -> list[tuple[str, str, list[tuple[Row, dict[str, str]]]]]:
        """(badge, note, [(row, display cells)]) per scale, real runs first, then that scale's rehearsals."""
        cells = self.cells()
        out = []
        for scale in self.scales:
            for rehearsal in (False, True):
                rows = [(r, c) for r, c in zip(self.rows, cells) if r.scale == scale and r.rehearsal == rehearsal]
                if rows:
                    out.append((rows[0][0].badge, section_note(scale, rehearsal), rows))
        return out

    # ------------------------------------------------------------------ text
    def csv(self) -> str:
        buf = io.StringIO()
        records = flat_records(self.rows)
        writer = csv.DictWriter(buf, fieldnames=list(FLAT_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return buf.getvalue()

    def cells(self) -> list[dict[str, str]]:
        """Display strings per column, shared by the rich, Markdown, HTML and LaTeX renderers."""
        return [display(r) for r in self.rows]

    def markdown(self) -> str:
        lines = []
        for badge, note, section in self.sections():
            lines += [f"**ours [{badge}]**: {note}", ""]
            cols = list(DISPLAY_COLUMNS)
            lines.append("| " + " | ".join(DISPLAY_COLUMNS[c] for c in cols) + " |")
            lines.append("|" + "|".join("---" for _ in cols) + "|")
            for _, c in section:
                lines.append("| " + " | ".join(c[k].replace("|", "\\|") for k in cols) + " |")
            lines.append("")
        if not self.rows:
            lines.append(self.empty_message())
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        if not self.rows:
            return f"<p>{html.escape(self.empty_message())}</p>"
        parts = []
        for badge, note, section in self.sections():
            parts.append(f'<p class="scale"><b>ours [{html.escape(badge)}]</b>: {html.escape(note)}</p>')
            parts.append('<table class="headline"><thead><tr>'
                         + "".join(f"<th>{html.escape(DISPLAY_COLUMNS[c])}</th>" for c in DISPLAY_COLUMNS)
                         + "</tr></thead><tbody>")
            for r, c in section:
                cls = {True: "better", False: "worse", None: ""}[r.better]
                tds = []
                for k in DISPLAY_COLUMNS:
                    attr = f' class="{cls}"' if k == "delta" and cls else ""
                    if k == "verdict" and r.verdict:
                        attr = f' class="verdict {html.escape(r.verdict.replace(" ", "-"))}"'
                    tds.append(f"<td{attr}>{html.escape(c[k])}</td>")
                parts.append("<tr>" + "".join(tds) + "</tr>")
            parts.append("</tbody></table>")
        return "\n".join(parts)

    def latex(self) -> str:
        """A booktabs table that compiles under pdflatex (ASCII only, every special character escaped)."""
        cols = list(DISPLAY_COLUMNS)
        out = ["% needs \\usepackage{booktabs}", "\\begin{tabular}{" + "l" * len(cols) + "}", "\\toprule",
               " & ".join(latex_escape(DISPLAY_COLUMNS[c]) for c in cols) + " \\\\", "\\midrule"]
        for badge, _, section in self.sections():
            out.append(f"\\multicolumn{{{len(cols)}}}{{l}}{{\\emph{{ours [{latex_escape(badge)}]}}}} \\\\")
            for _, c in section:
                out.append(" & ".join(latex_escape(c[k]) for k in cols) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}"]
        return "\n".join(out) + "\n"

    def empty_message(self) -> str:
        return (f"no runs of {self.paper} that pair a method with a baseline yet: "
                f"bench reproduce {self.paper}")


DISPLAY_COLUMNS = {"where": "dataset, setting", "metric": "metric", "method": "method", "baseline": "baseline",
                   "delta": "delta (method - baseline)", "cost": "cost (method / baseline)",
                   "verdict": "claim verdict", "paper": "paper (method vs baseline)"}

FLAT_COLUMNS = ("scale", "rehearsal", "dataset", "setting", "metric", "direction", "method", "method_mean",
                "method_std", "method_n", "method_sanity", "baseline", "baseline_mean", "baseline_std", "baseline_n",
                "baseline_sanity", "delta", "delta_pct", "better", *(f"{c}_ratio" for c in COSTS), "claim",
                "verdict", "verdict_reason", "paper_metric", "paper_dataset", "paper_method", "paper_baseline",
                "paper_delta", "paper_tags")


def flat_records(rows: list[Row]) -> list[dict[str, Any]]:
    """One flat dict per row: numbers stay numbers (blank when absent), the setting as its key string."""
    out = []
    for r in rows:
        p = r.paper or {}
        rec = {"scale": r.scale, "rehearsal": r.rehearsal, "dataset": r.dataset, "setting": setting_key(r.setting),
               "metric": r.metric,
               "direction": r.direction, "method": r.method.entry, "method_mean": r.method.mean,
               "method_std": r.method.std, "method_n": r.method.n, "method_sanity": r.method.sanity,
               "baseline": r.baseline.entry, "baseline_mean": r.baseline.mean, "baseline_std": r.baseline.std,
               "baseline_n": r.baseline.n, "baseline_sanity": r.baseline.sanity, "delta": r.delta,
               "delta_pct": r.delta_pct, "better": r.better, "claim": r.claim, "verdict": r.verdict,
               "verdict_reason": r.verdict_reason, "paper_metric": p.get("metric"), "paper_dataset": p.get("dataset"),
               "paper_method": p.get("method"), "paper_baseline": p.get("baseline"), "paper_delta": p.get("delta"),
               "paper_tags": "".join(p.get("tags", []))}
        for c in COSTS:
            rec[f"{c}_ratio"] = (r.cost.get(c) or {}).get("ratio")
        out.append(rec)
    return out


def fmt(value: float | None, metric: str = "") -> str:
    if value is None:
        return "-"
    unit = DIALECTS.get(metric, {}).get("unit", "")
    if abs(value) >= 1000 or (value != 0 and abs(value) < 0.01):
        return f"{value:.3g}"
    digits = 4 if abs(value) < 1.5 and unit == "" else 2
    return f"{value:.{digits}f}"


def _side_text(side: Side, metric: str) -> str:
    text = f"{side.entry} {fmt(side.mean, metric)}"
    if side.std is not None:
        text += f" ± {fmt(side.std, metric)}"
    text += f" (n={side.n})"
    if side.sanity == "did not learn":
        text += " [did not learn]"
    elif side.sanity == "no floor recorded":
        text += " [no floor]"
    return text


def _arrow(better: bool | None) -> str:
    return {True: "▲ better", False: "▼ worse", None: "= tie"}[better]


def display(r: Row) -> dict[str, str]:
    unit = DIALECTS.get(r.metric, {}).get("unit", "")
    delta = "-"
    if r.delta is not None:
        shown_unit = "pp" if unit == "%" else unit  # a difference of percentages is in percentage points
        delta = f"{r.delta:+.4g}{' ' + shown_unit if shown_unit else ''} {_arrow(r.better)}"
        if r.delta_pct is not None:
            delta += f" ({r.delta_pct:+.1f}%)"
    cost = ", ".join(f"{COSTS[c][0]} {v['ratio']:.2f}x" for c, v in r.cost.items() if v.get("ratio") is not None)
    paper = ""
    if r.paper and r.paper.get("delta") is None:
        p = r.paper
        paper = f"{p['metric']} on {p['dataset']}: {p['verdict']} ({p['reason']})"
    elif r.paper:
        p = r.paper
        paper = (f"{p['metric']} on {p['dataset']}: {fmt(p['method'], p['metric'])} vs "
                 f"{fmt(p['baseline'], p['metric'])} ({p['delta']:+.4g} {_arrow(p['better'])})"
                 + (f" [{''.join(p['tags'])}]" if p.get("tags") else ""))
        if p.get("cost") and p["cost"].get("ratio") is not None:
            paper += f", {p['cost']['metric']} ratio {p['cost']['ratio']:.2f} (claimed <= {p['cost']['bound']:g})"
    where = r.dataset + (f", {setting_key(r.setting)}" if r.setting else "")
    arrow = {"lower": " (lower is better)", "higher": " (higher is better)"}.get(r.direction, "")
    verdict = ""
    if r.verdict:
        verdict = f"{r.claim}: {r.verdict}" + (f" ({r.verdict_reason})" if r.verdict_reason else "")
    return {"where": where, "metric": r.metric + arrow, "method": _side_text(r.method, r.metric),
            "baseline": _side_text(r.baseline, r.metric), "delta": delta, "cost": cost or "-",
            "verdict": verdict or "no claim here", "paper": paper or "-"}


def latex_escape(text: str) -> str:
    """Escape LaTeX specials and spell the few non-ASCII symbols we print, so pdflatex compiles it."""
    out = []
    specials = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
                ">": r"\textgreater{}", "|": r"\textbar{}"}
    words = {"±": r"$\pm$", "▲": r"$\uparrow$", "▼": r"$\downarrow$", "Δ": r"$\Delta$", "×": r"$\times$",
             "α": r"$\alpha$", "—": "--", "–": "--", "≤": r"$\le$", "≥": r"$\ge$"}
    for ch in text:
        if ch in specials:
            out.append(specials[ch])
        elif ch in words:
            out.append(words[ch])
        elif ord(ch) < 128:
            out.append(ch)
        else:
            out.append("?")
    return "".join(out)


# ---------------------------------------------------------------------------------------------- building
def build_headline(slug: str, store: Store | None = None, problems: list[str] | None = None,
                   runs: list[dict[str, Any]] | None = None) -> Headline:
    """The headline rows of a paper from the store's newest runs (or the `runs` given)."""
    from bench import claims as claims_mod

    card = papers.card(slug)
    if runs is None:
        runs = (store or Store()).latest(slug, problems, rehearsals=True)
    roles = {e.id: e.role for e in card.entries}
    claim_keys = {k for c in card.claims for k in c.setting}
    rows: list[Row] = []
    scales = [s for s in SCALE_ORDER if any(r["scale"] == s for r in runs)]
    paper_verdicts = {c.id: claims_mod.evaluate_on_paper(card, c) for c in card.claims}
    # a rehearsal never meets a real run: each scale is built twice, from its real runs, then from its rehearsals
    groups = [(s, rehearsal) for s in scales for rehearsal in (False, True)]
    for scale, rehearsal in groups:
        at_scale = [r for r in runs if r["scale"] == scale and is_rehearsal(r) == rehearsal]
        if not at_scale:
            continue
        by_id = {r["run_id"]: r for r in at_scale}
        varying = {k for k in {k for r in at_scale for k in (r.get("setting") or {})}
                   if len({json.dumps((r.get("setting") or {}).get(k), sort_keys=True) for r in at_scale}) > 1}
        mapped = {k for r in at_scale for m in ((r.get("stands_for") or {}).get("settings") or [])
                  for k in (m.get("ours") or {})}
        keys = claim_keys | varying | mapped
        seen: dict[tuple[str, str, str, str], Row] = {}
        pairs: list[tuple[str, str]] = []
        for claim in card.claims:
            verdict = claims_mod.evaluate_on_ours(claim, at_scale, scale)
            for sub in (verdict.results or [verdict]):
                if sub.lhs is None or sub.rhs is None or sub.lhs.run_id not in by_id or sub.rhs.run_id not in by_id:
                    continue
                lrun, rrun = by_id[sub.lhs.run_id], by_id[sub.rhs.run_id]
                lrec = _record_for(lrun, sub.lhs.metric or "", sub.lhs.setting or {})
                rrec = _record_for(rrun, sub.rhs.metric or "", sub.rhs.setting or {})
                if lrec is None or rrec is None:
                    continue
                key = (lrun["run_id"], rrun["run_id"], lrec["metric"], setting_key(lrec.get("setting") or {}))
                if key in seen:
                    continue
                seen[key] = _row(scale, lrun, lrec, rrun, rrec, keys, claim.id, sub,
                                 _paper_side(paper_verdicts[claim.id], claim), rehearsal)
                if (lrun["run_id"], rrun["run_id"]) not in pairs:
                    pairs.append((lrun["run_id"], rrun["run_id"]))
        if not pairs:  # no claim pairs our runs here: every method meets every baseline on its dataset
            for lrun in at_scale:
                for rrun in at_scale:
                    if (roles.get(lrun["entry"]) == "method" and roles.get(rrun["entry"]) == "baseline"
                            and lrun["dataset"] == rrun["dataset"] and lrun.get("split") == rrun.get("split")
                            and (lrun.get("setting") or {}) == (rrun.get("setting") or {})):
                        pairs.append((lrun["run_id"], rrun["run_id"]))
        for lid, rid in pairs:  # the pair's other quality metrics, beside the claimed one
            lrun, rrun = by_id[lid], by_id[rid]
            for lrec in lrun["metrics"]:
                if not _quality(lrec):
                    continue
                rrec = next((m for m in rrun["metrics"] if m["metric"] == lrec["metric"]
                             and (m.get("setting") or {}) == (lrec.get("setting") or {})), None)
                key = (lid, rid, lrec["metric"], setting_key(lrec.get("setting") or {}))
                if rrec is not None and key not in seen:
                    seen[key] = _row(scale, lrun, lrec, rrun, rrec, keys, None, None, None, rehearsal)
        order = {c.id: i for i, c in enumerate(card.claims)}
        rows += sorted(seen.values(), key=lambda r: (r.dataset, r.method.entry, r.baseline.entry,
                                                     order.get(r.claim or "", len(order)), r.metric,
                                                     _natural(r.setting)))
    unpaired = {}
    for scale in scales:
        shown = {e for r in rows if r.scale == scale for e in (r.method.entry, r.baseline.entry)}
        rest = sorted({r["entry"] for r in runs if r["scale"] == scale} - shown)
        if rest:
            unpaired[scale] = rest
    return Headline(slug, card.title, rows, [s for s in scales if any(r.scale == s for r in rows)],
                    len(card.reported), unpaired)


def _natural(setting: dict[str, Any]) -> list[tuple[str, float, str]]:
    """Sort settings by their numbers as numbers (nfe=4 before nfe=12)."""
    out = []
    for key in sorted(setting):
        value = setting[key]
        number = _num(value)
        out.append((key, number if number is not None else math.inf, "" if number is not None else str(value)))
    return out


def _row(scale: str, lrun: dict, lrec: dict, rrun: dict, rrec: dict, keys: set[str], claim: str | None,
         verdict: Any, paper: dict[str, Any] | None, rehearsal: bool = False) -> Row:
    run_setting = {k: v for k, v in (lrun.get("setting") or {}).items() if k in keys}
    return Row(scale=scale, dataset=lrun["dataset"], setting=_shown_setting(lrun, lrec, keys), metric=lrec["metric"],
               run_setting=dict(sorted(run_setting.items())),
               direction=DIALECTS.get(lrec["metric"], {}).get("direction", ""), method=_side(lrun, lrec),
               baseline=_side(rrun, rrec), cost=_costs((lrun, lrec), (rrun, rrec)), claim=claim,
               verdict=verdict.verdict if verdict is not None else None,
               verdict_reason=(verdict.reason or None) if verdict is not None else None, paper=paper,
               rehearsal=rehearsal)


# ---------------------------------------------------------------------------------------------- terminal
def _cost_text(cost: dict[str, dict[str, float | None]], names: list[str]) -> str:
    return ", ".join(f"{COSTS[c][0]} {cost[c]['ratio']:.2f}x" for c in names
                     if c in cost and cost[c].get("ratio") is not None)


def rich_renderables(view: Headline) -> list[Any]:
    """Compact lines, one block per (method, baseline) pair: it fits one screen at 80 columns. Every piece is a
    Text, so names like "[did not learn]" are printed, never read as markup."""
    from rich.text import Text

    if not view.rows:
        return [Text(view.empty_message())]
    colour = {"confirmed": "green", "not confirmed": "red", "inconclusive": "yellow", "unverified": "magenta",
              "no evidence": "red", "no data": "dim"}
    out: list[Any] = []
    sections = view.sections()
    for k, (badge, note, section) in enumerate(sections):
        scale = section[0][0].scale
        out.append(Text.assemble((f"ours [{badge}]", "bold"), f": {note}"))
        pairs: dict[tuple[str, str, str, str], list[Row]] = {}
        for r, _ in section:
            pair = (r.dataset, setting_key(r.run_setting), r.method.entry, r.baseline.entry)
            pairs.setdefault(pair, []).append(r)
        for (dataset, run_key, method, baseline), rows in pairs.items():
            # a cost ratio equal on every row belongs to the pair (params, MACs); the rest to each row (NFE)
            shared = [c for c in COSTS if all(c in r.cost for r in rows)
                      and len({round(r.cost[c]["ratio"] or 0, 6) for r in rows}) == 1]
            head = Text.assemble((f"{method}", "bold cyan"), " vs ", (f"{baseline}", "bold"),
                                 f" on {dataset}" + (f" ({run_key})" if run_key else ""))
            cost = _cost_text(rows[0].cost, shared)
            if cost:
                head.append(f"   cost ratio: {cost}")
            out.append(head)
            for r in rows:
                c = display(r)
                line = Text(f"  {r.metric} {'↓' if r.direction == 'lower' else '↑'}")
                own_setting = {k: v for k, v in r.setting.items() if k not in r.run_setting}
                if own_setting:
                    line.append(f" {setting_key(own_setting)}", style="dim")
                line.append(f"  {c['method'].removeprefix(method + ' ')} vs {c['baseline'].removeprefix(baseline + ' ')}")
                line.append(f"  Δ {c['delta']}", style={True: "green", False: "red", None: ""}[r.better])
                own = _cost_text(r.cost, [k for k in r.cost if k not in shared])
                if own:
                    line.append(f"  ({own})", style="dim")
                out.append(line)
                if r.verdict:
                    out.append(Text.assemble("    claim ", (r.claim or "", "bold"), ": ",
                                             (f"{r.verdict}" + (f" ({r.verdict_reason})" if r.verdict_reason else ""),
                                              colour.get(r.verdict, ""))))
                if r.paper:
                    out.append(Text(f"    paper: {c['paper']}", style="dim"))
        last_of_scale = k + 1 == len(sections) or sections[k + 1][2][0][0].scale != scale
        if view.unpaired.get(scale) and last_of_scale:
            out.append(Text(f"also run at {scale}, but no claim compares them here: "
                            f"{', '.join(view.unpaired[scale])} (bench table {view.paper} --all)", style="dim"))
        out.append(Text(""))
    out.append(Text("↓/↑: lower/higher is better; Δ = method - baseline, ▲ better / ▼ worse for the method; "
                    "mean ± sample std over n seeds; a claim needs >= 3 seeds a side (bench claims)", style="dim"))
    return out


# ---------------------------------------------------------------------------------------------- JSON schema
def table_schema() -> dict[str, Any]:
    """The documented schema of `bench table --format json` (bench/schemas/table.schema.json)."""
    return table_model().model_json_schema()


def table_model() -> Any:
    """The pydantic model of `bench table --format json`; `table_model().model_validate(data)` checks output."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field

    class _Out(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)

    Setting = dict[str, str | int | float | bool]

    class SideOut(_Out):
        entry: str
        mean: float | None = Field(description="mean over seeds")
        std: float | None = Field(description="sample std over seeds; null with one seed")
        n: int = Field(description="number of seeds")
        run_id: str | None
        sanity: Literal["passed", "did not learn", "no floor recorded"]

    class CostRatioOut(_Out):
        method: float
        baseline: float
        ratio: float | None = Field(description="method / baseline")

    class PaperCostOut(_Out):
        metric: str
        ratio: float | None
        bound: float

    class PaperOut(_Out):
        metric: str
        dataset: str
        setting: Setting
        method: float | None = Field(description="null when the card reports no value")
        baseline: float | None
        delta: float | None
        better: bool | None
        direction: str
        tags: list[str] = Field(description="provenance tags of the paper cells used")
        verdict: str = Field(description="the claim's verdict on the paper's own numbers")
        reason: str
        cost: PaperCostOut | None

    class RowOut(_Out):
        scale: Literal["smoke", "small", "paper"]
        rehearsal: bool = Field(description="both runs are capped rehearsals (--max-steps/--max-samples): shown "
                                            "as [scale, rehearsal], their numbers mean nothing")
        dataset: str
        setting: Setting
        metric: str
        direction: str = Field(description="lower | higher: which is better")
        method: SideOut
        baseline: SideOut
        delta: float | None = Field(description="method mean - baseline mean")
        delta_pct: float | None = Field(description="delta in % of |baseline mean|")
        better: bool | None = Field(description="is the method better, given the direction (null: tie)")
        cost: dict[str, CostRatioOut] = Field(description=f"cost ratios, keys among {', '.join(COSTS)}")
        claim: str | None
        verdict: str | None
        verdict_reason: str | None
        paper: PaperOut | None

    class TableOut(_Out):
        paper: str
        title: str
        headline: list[RowOut]
        cells: list[dict[str, Any]] | None = Field(description="with --all: every reported number beside ours")

    return TableOut
