"""`bench plot PAPER`: one figure per claim family, from the card's numbers and our run records.

A claim family is the paper's claims that share (dataset, metric, cost metric or none). Its figure is a grid:
one column per claim setting (e.g. sr_scale 2, 3, 4), one row for the paper's cells and one row per scale of
our runs ("ours [smoke]"). Our records stand for the claim through the run's `stands_for` (dataset, metric
proxy and setting mappings), matched by the same rules `bench claims` uses (bench.claims._matches).

Rules that keep the plots right:
- Cost is looked up per (entry, dataset, setting): a cost cell applies to the panel's dataset only (a dataset
  the card uses for costs alone, such as lipt's div2k, applies to all), and only when every setting key it
  shares with the claim is equal; a cell with no setting applies to every setting. So U-DiT-B's 512-px GMACs
  never land on a 256-px plot. When an entry has several applicable cells that differ in a key the claim does
  not fix (lipt's GPU and CPU latency), one variant is chosen for the whole panel and named on the axis.
- A Pareto front is drawn only with at least 3 points on a cost axis whose relative range is at least 1%;
  an equal-cost panel plots quality per entry instead, and says so. Cost axes start at 0, or are logarithmic
  when the costs span more than a factor of 20.
- Our points are means over seeds with a one-std error bar (sample std of `per_seed`).
- Method entries (card role "method") are red diamonds, baselines blue circles, entries outside the family grey;
  the paper's points are filled, ours hollow with error bars.

Quality-versus-NFE curves come as one figure per (dataset, metric), with the paper and each scale of ours as
panels. matplotlib is imported only inside the drawing functions (read-only commands never import it).
"""
from __future__ import annotations

import math
import statistics
import tempfile
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import papers
from bench.cards import Claim, PaperCard, ReportedCell
from bench.claims import SCALE_ORDER, _cost_value, _matches, _paper_cell, _same
from bench.metrics.manifest import DIALECTS
from bench.registry import BenchError
from bench.store import Store, default_root, setting_key

COST_AXES = ("gmacs", "params_m", "latency_ms", "nfe")
EQUAL_COST_REL = 0.01  # a cost axis whose (max - min) / max is below this is "equal cost"
MIN_FRONT_POINTS = 3
LOG_COST_SPAN = 20.0  # costs spanning more than this factor go on a log axis

STYLE = {  # role -> matplotlib marker style
    "method": {"color": "#c0392b", "marker": "D", "size": 7},
    "baseline": {"color": "#2471a3", "marker": "o", "size": 6},
    "other": {"color": "#b3b6b7", "marker": "o", "size": 4},
}


# ---------------------------------------------------------------------------------------------- data model
@dataclass
class Family:
    """Claims sharing a dataset, a metric and a cost metric (None when the claims carry no cost condition)."""

    dataset: str
    metric: str
    cost: str | None
    claims: list[Claim] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.dataset} {self.metric}" + (f" vs {self.cost}" if self.cost else " per entry")

    def settings(self) -> list[dict[str, Any]]:
        """The distinct claim settings, in the card's order (one figure column each)."""
        seen: dict[str, dict[str, Any]] = {}
        for claim in self.claims:
            seen.setdefault(setting_key(dict(claim.setting)), dict(claim.setting))
        return list(seen.values())

    def entries(self) -> set[str]:
        return {e for claim in self.claims for e in (claim.lhs, claim.rhs)}


@dataclass
class Point:
    entry: str
    value: float
    role: str  # method | baseline | other (not in the family: drawn grey)
    cost: float | None = None
    err: float | None = None  # one sample std over seeds (ours, n >= 2)
    n: int | None = None  # seeds (ours)


@dataclass
class Panel:
    title: str
    ylabel: str
    points: list[Point]
    source: str  # paper | ours
    cost: str | None = None
    cost_label: str = ""
    empty: str = ""  # why the panel has no points
    note: str = ""  # e.g. the family entries the card reports no value for


@dataclass
class Figure:
    path: Path
    family: str
    claims: list[str]
    kind: str  # trade-off (the family has a cost metric) | per-entry (it has none) | nfe


def claim_families(card: PaperCard) -> list[Family]:
    families: dict[tuple[str, str, str | None], Family] = {}
    for claim in card.claims:
        cost = (claim.cost or {}).get("metric")
        key = (claim.dataset, claim.metric, cost)
        families.setdefault(key, Family(*key)).claims.append(claim)
    return list(families.values())


def direction_text(metric: str) -> str:
    direction = DIALECTS.get(metric, {}).get("direction")
    return {"lower": "lower is better", "higher": "higher is better"}.get(direction, "")


def axis_label(metric: str, extra: str = "") -> str:
    unit = DIALECTS.get(metric, {}).get("unit")
    parts = [p for p in (extra, direction_text(metric)) if p]
    return f"{metric}{f' ({unit})' if unit else ''}" + (f", {', '.join(parts)}" if parts else "")


def _role(card: PaperCard, entry: str, family_entries: set[str]) -> str:
    if entry not in family_entries:
        return "other"
    roles = {e.id: e.role for e in card.entries}
    return roles.get(entry, "baseline")


# ---------------------------------------------------------------------------------------------- paper cost
def cost_only_datasets(card: PaperCard) -> set[str]:
    """Datasets the card uses only to tabulate costs (no quality cell): their cost cells describe the model,
    not an evaluation set, so they apply on every dataset."""
    quality = {c.dataset for c in card.reported if DIALECTS.get(c.metric, {}).get("family") != "cost"}
    return set(card.datasets) - quality


def cost_cells(card: PaperCard, entry: str, metric: str, dataset: str,
               setting: dict[str, Any]) -> list[ReportedCell]:
    """The entry's `metric` cells that apply at (dataset, setting), best first: the same dataset (or a
    cost-only one), and every setting key shared with `setting` equal. A cell with no setting applies to
    every setting of its entry and dataset; a cell for another evaluation dataset never applies."""
    cost_only = cost_only_datasets(card)
    found = []
    for cell in card.reported:
        if cell.entry != entry or cell.metric != metric:
            continue
        if cell.dataset != dataset and cell.dataset not in cost_only:
            continue
        if any(not _same(cell.setting[k], setting[k]) for k in set(cell.setting) & set(setting)):
            continue
        found.append(cell)
    # the evaluation dataset before a cost-only one, then the cell that shares the most keys with the setting
    return sorted(found, key=lambda c: (c.dataset != dataset, -len(set(c.setting) & set(setting))))


def _extra(cell: ReportedCell, setting: dict[str, Any]) -> dict[str, Any]:
    """The cell's setting keys that the claim does not fix (e.g. device=GPU)."""
    return {k: v for k, v in cell.setting.items() if k not in setting}


def paper_cost(card: PaperCard, entry: str, metric: str, dataset: str, setting: dict[str, Any],
               variant: dict[str, Any] | None = None) -> ReportedCell | None:
    """The entry's cost cell at (dataset, setting). `variant` fixes the keys the claim leaves open (e.g.
    {"device": "GPU"}): a cell whose open keys disagree with it is skipped."""
    for cell in cost_cells(card, entry, metric, dataset, setting):
        extra = _extra(cell, setting)
        if variant is None or all(k in variant and _same(variant[k], v) for k, v in extra.items()):
            return cell
    return None


def _cost_variant(card: PaperCard, entries: list[str], metric: str, dataset: str,
                  setting: dict[str, Any]) -> dict[str, Any]:
    """The open-key variant most entries have a cost cell for, so one panel never mixes GPU and CPU."""
    counts: Counter[str] = Counter()
    variants: dict[str, dict[str, Any]] = {}
    for entry in entries:
        for cell in cost_cells(card, entry, metric, dataset, setting):
            extra = _extra(cell, setting)
            if extra:
                key = setting_key(extra)
                variants.setdefault(key, extra)
                counts[key] += 1
    if not counts:
        return {}
    return variants[counts.most_common(1)[0][0]]  # ties: the first seen (card order)


# ---------------------------------------------------------------------------------------------- panels
def paper_panel(card: PaperCard, family: Family, setting: dict[str, Any]) -> Panel:
    """The paper's cells at one claim setting: the family's entries and, greyed, every other entry with a
    cell on the same dataset, metric and setting."""
    members = family.entries()
    order = [e.id for e in card.entries]
    points: list[Point] = []
    for entry in order:
        cell = _paper_cell(card, entry, family.metric, family.dataset, setting)
        if cell is not None:
            points.append(Point(entry, float(cell.value), _role(card, entry, members)))
    label = ""
    if family.cost:
        variant = _cost_variant(card, [p.entry for p in points], family.cost, family.dataset, setting)
        label = setting_key(variant)
        for p in points:
            cell = _paper_cell(card, p.entry, family.metric, family.dataset, setting)
            if cell is not None and family.cost in cell.setting:  # e.g. nfe fixed by the quality cell itself
                p.cost = float(cell.setting[family.cost])
                continue
            cost = paper_cost(card, p.entry, family.cost, family.dataset, setting, variant)
            p.cost = float(cost.value) if cost is not None else None
    at_setting = {e for c in family.claims if setting_key(dict(c.setting)) == setting_key(setting)
                  for e in (c.lhs, c.rhs)}
    absent = sorted(at_setting - {p.entry for p in points})
    return Panel(title=f"paper: {setting_key(setting) or 'any setting'}", ylabel=axis_label(family.metric),
                 points=points, source="paper", cost=family.cost, cost_label=label,
                 empty="" if points else "the card reports no value at this setting",
                 note=f"not reported: {', '.join(absent)}" if absent else "")


def seed_stats(record: dict[str, Any]) -> tuple[float, float | None, int]:
    """(mean, sample std, n) over a metric record's per_seed values; the std is None with one seed."""
    values = [float(v) for v in (record.get("per_seed") or {}).values() if v is not None]
    if not values:
        return float(record["value"]), None, 0
    mean = math.fsum(values) / len(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None), len(values)


_DIALECT_ORDER = {"same": 0, "comparable": 1, "proxy": 2}


def our_panel(card: PaperCard, family: Family, claim: Claim, runs: list[dict[str, Any]], scale: str) -> Panel:
    """Our records at one scale that stand for `claim`'s dataset, metric and setting (through stands_for)."""
    members = family.entries()
    points: list[Point] = []
    shown: set[str] = set()
    metrics, datasets = set(), set()
    for entry in dict.fromkeys(r["entry"] for r in runs):
        found, _ = _matches(runs, entry, claim, dict(claim.setting), set())
        if not found:
            continue
        match = min(found, key=lambda m: _DIALECT_ORDER[m.dialect])
        mean, std, n = seed_stats(match.record)
        cost = _cost_value(match, family.cost)[0] if family.cost else None
        points.append(Point(entry, mean, _role(card, entry, members), cost=cost, err=std, n=n))
        metrics.add(match.record["metric"])
        datasets.add(match.run["dataset"])
        shown.add(setting_key(match.record.get("setting") or {}))
    metric = min(metrics) if metrics else family.metric
    proxy = f" (proxy for {family.metric})" if metric != family.metric else ""
    where = f"{', '.join(sorted(datasets))}{proxy}" if datasets else ""
    title = f"ours [{scale}]" + (f": {where}" if where else "")
    if len(shown) == 1 and next(iter(shown)):
        key = next(iter(shown))
        title += "\n" + (key if len(key) <= 70 else key[:67] + "...")
    return Panel(title=title, ylabel=axis_label(metric), points=points, source="ours", cost=family.cost,
                 empty="" if points else "no runs at this setting")


# ---------------------------------------------------------------------------------------------- layout rules
def relative_range(values: list[float]) -> float:
    top = max(abs(v) for v in values)
    return 0.0 if top == 0 else (max(values) - min(values)) / top


def panel_kind(panel: Panel) -> tuple[str, str]:
    """How to draw a panel: ("trade-off" | "per-entry", note). A trade-off needs every family entry's cost
    and a non-degenerate cost range; otherwise quality per entry, with the reason in the title."""
    if not panel.cost:
        return "per-entry", ""
    missing = [p.entry for p in panel.points if p.cost is None and p.role != "other"]
    with_cost = [p for p in panel.points if p.cost is not None]
    if missing:
        everyone = len(missing) == len([p for p in panel.points if p.role != "other"])
        where = "in our runs" if panel.source == "ours" else "in the card"
        return "per-entry", (f"no {panel.cost} recorded {where}" if everyone
                             else f"no {panel.cost} for {', '.join(missing)}")
    if len(with_cost) < 2:
        return "per-entry", f"{panel.cost} for fewer than 2 entries"
    if relative_range([p.cost for p in with_cost]) < EQUAL_COST_REL:
        return "per-entry", f"equal cost ({panel.cost} within {EQUAL_COST_REL:.0%})"
    return "trade-off", ""


def wants_front(points: list[Point]) -> bool:
    """A Pareto front means something only over >= 3 points whose costs are not all (nearly) equal."""
    costs = [p.cost for p in points if p.cost is not None]
    return len(costs) >= MIN_FRONT_POINTS and relative_range(costs) >= EQUAL_COST_REL


def pareto_front(points: list[tuple[float, float]], lower_is_better: bool) -> list[tuple[float, float]]:
    """Points not dominated by another with lower-or-equal cost and better-or-equal quality."""
    front = []
    best = None
    for x, y in sorted(points, key=lambda p: (p[0], p[1] if lower_is_better else -p[1])):
        if best is None or (y < best if lower_is_better else y > best):
            front.append((x, y))
            best = y
    return front


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in name)


def default_out_dir(slug: str, store: Store | None = None) -> Path:
    """<results root>/<paper>/plots (BENCH_RESULTS or results/runs), never relative to the working directory."""
    return (store.root if store is not None else default_root()) / slug / "plots"


def ensure_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".probe-"):
            pass
    except OSError as exc:
        raise BenchError(f"cannot write plots to {out_dir}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------------------------------------- drawing
def _legend_handles(sources: set[str]):
    from matplotlib.lines import Line2D

    handles = []
    for role, name in (("method", "method"), ("baseline", "baseline"), ("other", "other entries")):
        s = STYLE[role]
        handles.append(Line2D([], [], color=s["color"], marker=s["marker"], linestyle="", label=name))
    if "ours" in sources:
        handles.append(Line2D([], [], color="black", marker="o", markerfacecolor="white", linestyle="",
                              label="ours (hollow, ±1 std over seeds)"))
    return handles


def _mark(ax, p: Point, x: float, y: float, source: str) -> None:
    s = STYLE[p.role]
    face = s["color"] if source == "paper" else "white"
    ax.errorbar([x], [y], yerr=None if p.err is None else [p.err], fmt=s["marker"], color=s["color"],
                markerfacecolor=face, markersize=s["size"], capsize=3, zorder=3 if p.role != "other" else 2)


def _draw_trade_off(ax, panel: Panel, lower: bool) -> None:
    points = [p for p in panel.points if p.cost is not None]
    for p in points:
        _mark(ax, p, p.cost, p.value, panel.source)
        if p.role != "other" or len(points) <= 12:
            ax.annotate(p.entry, (p.cost, p.value), textcoords="offset points", xytext=(4, 3),
                        fontsize=6 if p.role != "other" else 5, color="black" if p.role != "other" else "grey")
    front = pareto_front([(p.cost, p.value) for p in points], lower) if wants_front(points) else []
    if len(front) > 1:  # a one-point front (one entry dominates the rest) is no line
        ax.plot([f[0] for f in front], [f[1] for f in front], "--", color="#7d3c98", lw=1, label="Pareto front")
        ax.legend(fontsize=6, loc="best")
    costs = [p.cost for p in points]
    if min(costs) > 0 and max(costs) / min(costs) > LOG_COST_SPAN:
        ax.set_xscale("log")
    else:
        ax.set_xlim(0, max(costs) * 1.3)  # from 0: a sliver of an axis makes equal costs look different
    ax.set_xlabel(axis_label(panel.cost, panel.cost_label) if panel.cost else "", fontsize=7)


def _draw_per_entry(ax, panel: Panel, lower: bool) -> None:
    # best at the top: sort worst first (barh-style y positions grow upwards)
    points = sorted(panel.points, key=lambda p: p.value, reverse=lower)
    for i, p in enumerate(points):
        s = STYLE[p.role]
        face = s["color"] if panel.source == "paper" else "white"
        ax.errorbar([p.value], [i], xerr=None if p.err is None else [p.err], fmt=s["marker"], color=s["color"],
                    markerfacecolor=face, markersize=s["size"], capsize=3)
    ax.set_yticks(range(len(points)))
    ax.set_yticklabels([p.entry + (f" (n={p.n})" if p.n else "") for p in points], fontsize=6)
    for tick, p in zip(ax.get_yticklabels(), points):
        tick.set_color("black" if p.role != "other" else "grey")
    ax.set_xlabel(panel.ylabel, fontsize=7)
    ax.grid(axis="x", alpha=0.3)


def _draw_panel(ax, panel: Panel, lower: bool) -> None:
    if not panel.points:
        ax.text(0.5, 0.5, panel.empty, ha="center", va="center", transform=ax.transAxes, fontsize=8, color="grey")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(panel.title, fontsize=8)
        return
    kind, note = panel_kind(panel)
    if kind == "trade-off":
        _draw_trade_off(ax, panel, lower)
        ax.set_ylabel(panel.ylabel, fontsize=7)
        ax.grid(alpha=0.3)
    else:
        _draw_per_entry(ax, panel, lower)
        note = note or "quality per entry"
        note = f"{note}: quality per entry" if "per entry" not in note else note
    n = sorted({p.n for p in panel.points if p.n})
    seeds = f", seeds n={'/'.join(map(str, n))}" if n else ""
    notes = "\n".join(textwrap.fill(n, 90) for n in (note, panel.note) if n)
    ax.set_title(panel.title + seeds + (f"\n{notes}" if notes else ""), fontsize=8)
    ax.tick_params(labelsize=6)


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def draw_family(slug: str, card: PaperCard, family: Family, runs: list[dict[str, Any]],
                out_dir: Path) -> Path | None:
    """One figure for one claim family; None when neither the paper nor our runs have a point for it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = family.settings()
    rows: list[list[Panel]] = [[paper_panel(card, family, s) for s in settings]]
    for scale in SCALE_ORDER:
        at_scale = [r for r in runs if r["scale"] == scale]
        if not at_scale:
            continue
        row = []
        for s in settings:
            claim = next(c for c in family.claims if setting_key(dict(c.setting)) == setting_key(s))
            row.append(our_panel(card, family, claim, at_scale, scale))
        # a row of ours is drawn when it holds one of the family's entries (others alone are no evidence)
        if any(p.role != "other" for panel in row for p in panel.points):
            rows.append(row)
    if not any(p.points for row in rows for p in row):
        return None
    lower = DIALECTS.get(family.metric, {}).get("direction") == "lower"
    # a per-entry chart needs a line per entry; a scatter a fixed height
    heights = [max(3.6, 0.17 * max((len(p.points) for p in row if panel_kind(p)[0] == "per-entry"), default=0)
                   + 1.6) for row in rows]
    fig, axes = plt.subplots(len(rows), len(settings), figsize=(5.4 * len(settings), sum(heights) + 0.8),
                             squeeze=False, gridspec_kw={"height_ratios": heights})
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            _draw_panel(axes[r][c], panel, lower)
    ids = ", ".join(c.id for c in family.claims)
    head = f"{slug}: {family.dataset}, {family.metric}" + (f" vs {family.cost}" if family.cost else "")
    sources = {p.source for row in rows for p in row}
    fig.legend(handles=_legend_handles(sources), loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.suptitle(head + "\n" + textwrap.fill(f"claims: {ids}", 60 + 40 * len(settings)), fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    tail = f"vs-{family.cost}" if family.cost else "per-entry"
    return _save(fig, out_dir / f"{_safe_name(f'{slug}-{family.dataset}-{family.metric}-{tail}')}.png")


# ---------------------------------------------------------------------------------------------- NFE curves
def _our_family_key(run: dict[str, Any], metric: str) -> tuple[str, str]:
    """The paper (dataset, metric) our record stands for; our own names when the spec declares none."""
    stands = run.get("stands_for") or {}
    dataset = stands.get("dataset") if isinstance(stands.get("dataset"), str) else run["dataset"]
    paper_metric = (stands.get("metrics") or {}).get(metric)
    return (dataset, paper_metric) if paper_metric else (run["dataset"], metric)


def nfe_curves(slug: str, store: Store) -> dict[tuple[str, str], dict[str, dict[str, list]]]:
    """{(dataset, metric): {source: {curve label: [(nfe, value, err)]}}}, quality against sampling steps.
    Ours are filed under the paper's (dataset, metric) they stand for, so one figure holds both."""
    from bench.sanity import is_sanity

    curves: dict[tuple[str, str], dict[str, dict[str, list]]] = {}

    def label(entry: str, setting: dict[str, Any]) -> str:
        rest = {k: v for k, v in setting.items() if k != "nfe"}
        return f"{entry} {setting_key(rest)}".strip()

    for cell in papers.card(slug).reported:
        if "nfe" in cell.setting and DIALECTS.get(cell.metric, {}).get("family") != "cost":
            curves.setdefault((cell.dataset, cell.metric), {}).setdefault("paper", {}).setdefault(
                label(cell.entry, dict(cell.setting)), []).append((float(cell.setting["nfe"]), cell.value, None))
    for run in store.latest(slug):
        for m in run["metrics"]:
            setting = m.get("setting") or {}
            if "nfe" not in setting or is_sanity(m) or DIALECTS.get(m["metric"], {}).get("family") in (
                    "cost", "sanity"):
                continue
            mean, std, _ = seed_stats(m)
            curves.setdefault(_our_family_key(run, m["metric"]), {}).setdefault(
                f"ours [{run['scale']}]", {}).setdefault(label(run["entry"], setting), []).append(
                (float(setting["nfe"]), mean, std, m["metric"]))
    return curves


def plot_nfe_curves(slug: str, store: Store, out_dir: Path) -> list[Figure]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    card = papers.card(slug)
    roles = {e.id: e.role for e in card.entries}
    # only what the paper reports or claims: our unmapped side metrics (e.g. kd_digits) stay in the tables
    known = {(c.dataset, c.metric) for c in card.reported} | {(c.dataset, c.metric) for c in card.claims}
    written = []
    for (dataset, metric), sources in sorted(nfe_curves(slug, store).items()):
        if (dataset, metric) not in known:
            continue
        sources = {s: lines for s, lines in sources.items() if sum(len(v) for v in lines.values()) >= 2}
        if not sources:
            continue
        order = sorted(sources, key=lambda s: (s != "paper", [sc in s for sc in SCALE_ORDER][::-1]))
        fig, axes = plt.subplots(1, len(order), figsize=(5.4 * len(order), 4.2), squeeze=False)
        for ax, source in zip(axes[0], order):
            our_metric = metric
            for i, (name, points) in enumerate(sorted(sources[source].items())):
                points.sort()
                role = roles.get(name.split()[0], "baseline")
                style = {"marker": "D", "linestyle": "-", "lw": 1.8} if role == "method" else \
                    {"marker": "o", "linestyle": "--", "lw": 1.2}
                errs = [p[2] for p in points]
                hollow = {} if source == "paper" else {"markerfacecolor": "white"}
                ax.errorbar([p[0] for p in points], [p[1] for p in points],
                            yerr=None if all(e is None for e in errs) else [e or 0.0 for e in errs],
                            color=f"C{i % 10}", label=name, capsize=3, markersize=5, **style, **hollow)
                if len(points[0]) > 3:
                    our_metric = points[0][3]
            ax.set_xscale("log")
            nfes = sorted({p[0] for points in sources[source].values() for p in points})
            ax.set_xticks(nfes)  # the NFEs sampled, as plain numbers (not 2x10^1)
            ax.set_xticklabels([f"{n:g}" for n in nfes])
            ax.minorticks_off()
            ax.set_xlabel("NFE (network evaluations per sample), log axis", fontsize=7)
            ax.set_ylabel(axis_label(our_metric), fontsize=7)
            proxy = f" (proxy for {metric})" if our_metric != metric else ""
            spread = any(p[2] is not None for points in sources[source].values() for p in points)
            ax.set_title(f"{source}{proxy}" + ("\nhollow markers: mean, bars: ±1 std over seeds" if spread else ""),
                         fontsize=8)
            ax.tick_params(labelsize=6)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
        fig.suptitle(f"{slug}: {dataset}, {metric} against NFE (methods solid, baselines dashed)", fontsize=9)
        fig.tight_layout(rect=(0, 0, 1, 0.95))
        path = _save(fig, out_dir / f"{_safe_name(f'{slug}-{dataset}-{metric}-nfe-curves')}.png")
        ids = [c.id for c in card.claims if c.dataset == dataset and c.metric == metric]
        written.append(Figure(path, f"{dataset} {metric} vs NFE", ids, "nfe"))
    return written


# ---------------------------------------------------------------------------------------------- entry points
def plot_figures(slug: str, store: Store | None = None, out_dir: Path | None = None) -> list[Figure]:
    """Every figure of a paper: one per claim family, then the quality-vs-NFE curves."""
    store = store or Store()
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(slug, store)
    ensure_writable(out_dir)
    card = papers.card(slug)
    runs = store.latest(slug)
    figures = []
    for family in claim_families(card):
        path = draw_family(slug, card, family, runs, out_dir)
        if path is not None:
            figures.append(Figure(path, family.name, [c.id for c in family.claims],
                                  "trade-off" if family.cost else "per-entry"))
    return figures + plot_nfe_curves(slug, store, out_dir)


def plot_paper(slug: str, store: Store | None = None, out_dir: Path | None = None) -> list[Path]:
    """The PNG paths written for a paper (bench report embeds them)."""
    return [f.path for f in plot_figures(slug, store, out_dir)]
