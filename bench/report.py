"""`bench report PAPER`: one self-contained HTML page and its Markdown twin, to attach to an issue or a PR.

Sections, in this order (the same in both files, see SECTIONS):
1. the paper and how to read the page (smoke/small numbers are NOT reproductions of paper numbers);
2. the headline view (bench/headline.py: method against each baseline, Δ, cost ratios, verdict);
3. every claim with its verdicts and evidence (bench/claims.py), verdicts coloured;
4. the plots (bench/plot.py), embedded in the HTML as base64 PNGs and written beside the Markdown as files;
5. our latest runs and their provenance (commit, libraries, hardware), plus the commit the page was built at.

The HTML loads nothing from the network: its CSS is inline and its images are data URIs, so it renders the same
attached to a PR or opened offline. Every text that comes from a card or a run record is escaped: claim texts
contain "<" and evidence contains "[fd_digits as proxy ...]".
"""
from __future__ import annotations

import base64
import html
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from bench import __version__, papers
from bench.registry import BenchError
from bench.store import Store

SECTIONS = ("How to read this", "Headline", "Claims", "Plots", "Runs", "Provenance")

# Colours of the verdict badges (background, text); the words stay, so the page reads without colour too.
VERDICT_COLOURS = {
    "confirmed": ("#d8f0dc", "#14532d"),
    "not confirmed": ("#fbdada", "#7f1d1d"),
    "inconclusive": ("#fdf0c8", "#713f12"),
    "unverified": ("#eadcf8", "#4c1d95"),
    "no evidence": ("#fde2cc", "#7c2d12"),
    "no data": ("#e8e8e8", "#404040"),
}

HOW_TO_READ = (
    "This page puts the paper's reported numbers beside our own runs of the same methods and baselines. Each of "
    "our numbers carries its scale. <b>smoke</b> runs (2-core CPU, embedded data, tiny configurations, minutes) "
    "and <b>small</b> runs (one GPU, the smallest paper models, carried data) check that the pipeline works and "
    "give a first method-versus-baseline signal: they are <b>not reproductions of the paper's numbers</b>, and a "
    "smoke FID-like number is not an FID. Only <b>paper</b>-scale runs can reproduce them. On our runs a claim "
    "is <i>confirmed</i> only when its margin and cost condition hold at the claim's setting with at least 3 "
    "seeds a side (one-sided Welch t-test, p &lt; 0.05, Holm-corrected over the settings it spans) and every run "
    "cleared its sanity floor; otherwise it is <i>not confirmed</i>, <i>inconclusive</i>, <i>no evidence</i> or "
    "<i>no data</i>, with the reason beside it. A verdict on the paper's own numbers that rests on third-party, "
    "remembered or inferred cells is <i>unverified</i>."
)


# ---------------------------------------------------------------------------------------------- headline
class HeadlineView(Protocol):
    rows: list[dict[str, Any]]

    def markdown(self) -> str: ...

    def html(self) -> str: ...


@dataclass
class MissingHeadline:
    """Stands in while bench/headline.py does not exist: the page says so instead of failing."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    note: str = "headline not available (bench/headline.py is missing from this checkout)"

    def markdown(self) -> str:
        return f"_{self.note}_\n"

    def html(self) -> str:
        return f'<p class="muted">{html.escape(self.note)}</p>'


def load_headline(slug: str, store: Store, problems: list[str]) -> HeadlineView:
    try:
        from bench.headline import build_headline
    except ModuleNotFoundError as exc:
        if exc.name != "bench.headline":  # a missing dependency of headline.py is a real error
            raise
        return MissingHeadline()
    return build_headline(slug, store, problems)


# ---------------------------------------------------------------------------------------------- content
@dataclass
class RunRow:
    run_id: str
    entry: str
    dataset: str
    stands_for: str
    scale: str
    seeds: str
    status: str
    sanity: str
    params_m: str
    gmacs: str
    nfe: str
    latency_ms: str
    train_s: str
    wall_s: str
    finished: str


RUN_COLUMNS = [("run_id", "run"), ("entry", "entry"), ("dataset", "dataset"), ("stands_for", "stands for"),
               ("scale", "scale"), ("seeds", "seeds"), ("status", "status"), ("sanity", "sanity"),
               ("params_m", "params (M)"), ("gmacs", "GMACs"), ("nfe", "NFE"), ("latency_ms", "latency (ms)"),
               ("train_s", "train (s)"), ("wall_s", "total wall (s)"), ("finished", "finished (UTC)")]


@dataclass
class ProvenanceRow:
    field: str
    values: list[tuple[str, list[str]]]  # (value, run ids that recorded it)


@dataclass
class Report:
    """Everything the two renderers show, gathered once."""

    slug: str
    card: Any
    generated_at: str
    commit_now: str
    headline: HeadlineView
    verdicts: list[Any]
    plots: list[Path]
    runs: list[RunRow]
    not_shown: int
    provenance: list[ProvenanceRow]
    problems: list[str]


@dataclass
class ReportFiles:
    html: Path
    markdown: Path
    plots: list[Path]


def _number(value: Any) -> str:
    """A cost cell: a number, or the distinct numbers of a per-setting dict ("10 / 25")."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, (int, float)):
        return f"{value:.4g}"
    if isinstance(value, dict):
        numbers = sorted({v for v in value.values() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        return " / ".join(f"{v:.4g}" for v in numbers)
    return ""


def _minute(stamp: Any) -> str:
    """'2026-12-06T21:46:35+00:00' -> '2026-12-06 21:46' (records are written in UTC)."""
    text = str(stamp or "")
    return text[:16].replace("T", " ") if len(text) >= 16 else text


def _stands_for(run: dict[str, Any]) -> str:
    stands = (run.get("stands_for") or {}).get("dataset")
    if isinstance(stands, list):
        return ", ".join(map(str, stands))
    return str(stands) if stands else ""


def run_rows(runs: list[dict[str, Any]]) -> list[RunRow]:
    from bench.sanity import run_sanity

    rows = []
    for run in sorted(runs, key=lambda r: (r["scale"], r["dataset"], r["entry"], r["run_id"])):
        cost = run.get("cost") or {}
        train = cost.get("train_cpu_s", cost.get("train_wall_s"))
        rows.append(RunRow(
            run_id=run["run_id"], entry=run["entry"], dataset=run["dataset"], stands_for=_stands_for(run),
            scale=run["scale"], seeds=",".join(str(s) for s in run.get("seeds") or []), status=run["status"],
            sanity=run_sanity(run).status, params_m=_number(cost.get("params_m")), gmacs=_number(cost.get("gmacs")),
            nfe=_number(cost.get("nfe")), latency_ms=_number(cost.get("latency_ms")), train_s=_number(train),
            wall_s=_number(cost.get("wall_s")), finished=_minute(run.get("finished_at"))))
    return rows


def _commit_text(git: Any) -> str:
    if not isinstance(git, dict) or not git.get("commit"):
        return "unknown (not a git checkout)"
    dirty = git.get("dirty")
    return str(git["commit"])[:12] + (" (uncommitted changes)" if dirty else "" if dirty is False else " (dirty?)")


def _hardware_text(hw: Any) -> str:
    if not isinstance(hw, dict):
        return "not recorded"
    parts = [str(hw.get("cpu", "?"))]
    if hw.get("cpu_count"):
        parts.append(f"{hw['cpu_count']} cores")
    if hw.get("gpu"):
        parts.append(f"{hw.get('gpu_count', 1)}x {hw['gpu']}")
    if hw.get("torch_threads"):
        parts.append(f"{hw['torch_threads']} torch threads")
    if hw.get("python"):
        parts.append(f"Python {hw['python']}")
    return ", ".join(parts)


def provenance_rows(runs: list[dict[str, Any]]) -> list[ProvenanceRow]:
    """One row per provenance field; a field on which the runs disagree lists each value with its runs."""
    fields: dict[str, dict[str, list[str]]] = {}

    def add(name: str, value: str, run_id: str) -> None:
        fields.setdefault(name, {}).setdefault(value, []).append(run_id)

    for run in sorted(runs, key=lambda r: r["run_id"]):
        prov, rid = run.get("provenance") or {}, run["run_id"]
        add("commit", _commit_text(prov.get("git")), rid)
        add("bench version", str(prov.get("bench_version", "not recorded")), rid)
        add("hardware", _hardware_text(prov.get("hardware")), rid)
        add("world size, precision", f"{prov.get('world_size', '?')}, {prov.get('precision', '?')}", rid)
        for lib, version in sorted((prov.get("libraries") or {}).items()):
            add(f"library {lib}", str(version) if version else "not installed", rid)
    rows = [ProvenanceRow(name, sorted(values.items(), key=lambda kv: kv[1])) for name, values in fields.items()]
    # libraries every run agrees on fold into one line; one whose version differs keeps its own row
    same = [(r.field.removeprefix("library "), r.values[0][0]) for r in rows
            if r.field.startswith("library ") and len(r.values) == 1]
    rows = [r for r in rows if not (r.field.startswith("library ") and len(r.values) == 1)]
    if same:
        rows.append(ProvenanceRow("libraries", [(", ".join(f"{lib} {v}" for lib, v in same), sorted(
            {rid for _, rid_list in fields[f"library {same[0][0]}"].items() for rid in rid_list}))]))
    return rows


def gather(slug: str, store: Store, plots_dir: Path, problems: list[str]) -> Report:
    from bench import claims
    from bench.plot import plot_paper
    from bench.provenance import git_state

    card = papers.card(slug)
    headline = load_headline(slug, store, problems)
    verdicts = claims.evaluate(slug, store, problems)
    # plots/ belongs to the report: clear the previous report's PNGs so none is left unreferenced
    if plots_dir.exists():
        for old in plots_dir.glob("*.png"):
            old.unlink()
    plots = list(plot_paper(slug, store, plots_dir))
    runs = store.latest(slug, problems)
    shown = {r["run_id"] for r in runs}
    not_shown = sum(1 for _, r in store.iter_results(slug) if r.get("status") != "complete" and
                    r.get("run_id") not in shown)
    problems[:] = list(dict.fromkeys(problems))  # headline, claims and latest() each report a corrupt record
    return Report(slug=slug, card=card, generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                  commit_now=_commit_text(git_state()), headline=headline, verdicts=verdicts, plots=plots,
                  runs=run_rows(runs), not_shown=not_shown, provenance=provenance_rows(runs), problems=problems)


def grouped_verdicts(verdicts: list[Any]) -> list[tuple[str, str, list[Any]]]:
    """(claim id, claim text, its verdicts) in the card's order."""
    groups: dict[str, tuple[str, str, list[Any]]] = {}
    for v in verdicts:
        groups.setdefault(v.claim, (v.claim, v.text, []))[2].append(v)
    return list(groups.values())


def where(v: Any) -> str:
    return "paper's numbers" if v.source == "paper" else f"ours [{v.scale or 'no runs'}]"


def sub_name(sub: Any, siblings: list[Any]) -> str:
    """A Holm sub-result named by the setting keys that tell it apart from its siblings."""
    keys = [k for k in sub.setting if len({str(s.setting.get(k)) for s in siblings}) > 1] or list(sub.setting)
    return f"{sub.metric} at " + (",".join(f"{k}={sub.setting.get(k)}" for k in keys) or "its setting")


def verdict_summary(verdicts: list[Any]) -> list[tuple[str, dict[str, int]]]:
    """Per source and scale, how many claims got each verdict, e.g. ("ours [smoke]", {"inconclusive": 3})."""
    out: dict[str, dict[str, int]] = {}
    for v in verdicts:
        counts = out.setdefault(where(v), {})
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
    return list(out.items())


def paper_line(card: Any) -> list[tuple[str, str, str | None]]:
    """(label, text, link or None) for the paper's identity."""
    items: list[tuple[str, str, str | None]] = [("paper", card.title, None)]
    if card.arxiv:
        items.append(("arXiv", card.arxiv, f"https://arxiv.org/abs/{card.arxiv}"))
    items.append(("venue", card.venue or f"{card.year} (no venue)", None))
    if card.code:
        items.append(("code", card.code, card.code))
    return items


# ---------------------------------------------------------------------------------------------- HTML
CSS = """
body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;color:#1f2328;margin:0;
 background:#fff}
main{max-width:1320px;margin:0 auto;padding:20px 28px 60px}
h1{font-size:24px;margin:0 0 6px}
h2{font-size:19px;margin:34px 0 10px;padding-bottom:4px;border-bottom:1px solid #d0d7de}
h3{font-size:15px;margin:18px 0 6px}
a{color:#0757b5}
nav{margin:8px 0 4px;color:#57606a}
nav a{margin-right:14px}
.meta{color:#57606a;margin:2px 0}
.meta b{color:#1f2328;font-weight:600}
.howto{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:10px 14px;margin:14px 0}
.warn{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:8px 14px;margin:10px 0}
.muted{color:#57606a}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.nowrap{white-space:nowrap}
code,.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px}
.badge{display:inline-block;border-radius:10px;padding:1px 8px;font-size:12px;font-weight:600;white-space:nowrap}
table.claims{width:100%;table-layout:fixed}
table.claims td.evidence{overflow-wrap:anywhere}
table.claims tr.claimhead td{background:#eef3f9;font-weight:600;padding-top:7px;border-top:2px solid #8c959f}
table.claims tr.claimhead code{font-size:12px;font-weight:400;background:#fff;padding:1px 5px;border-radius:4px;
 margin-right:4px}
table.claims tr.sub td:first-child{padding-left:22px;color:#57606a}
/* figures keep their own size: small ones sit side by side, a wide multi-panel one gets the full row */
.plots{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
figure{margin:0;border:1px solid #d0d7de;border-radius:6px;padding:8px;flex:0 1 auto;max-width:100%;
 box-sizing:border-box}
figure img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{font-size:12px;color:#57606a;margin-top:4px;overflow-wrap:anywhere}
ul.problems{color:#7f1d1d}
table.headline{width:100%}
table.headline th{white-space:normal}
table.headline td:nth-child(3),table.headline td:nth-child(4){white-space:nowrap}
table.headline td.better{color:#14532d;font-weight:600}
table.headline td.worse{color:#7f1d1d;font-weight:600}
p.scale{margin:6px 0}
"""
# the headline marks its verdict cells <td class="verdict not-confirmed">: the same colours as the badges
CSS += "".join(f"table.headline td.verdict.{name.replace(' ', '-')}{{background:{bg};color:{fg}}}\n"
               for name, (bg, fg) in VERDICT_COLOURS.items())


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def badge(verdict: str) -> str:
    bg, fg = VERDICT_COLOURS.get(verdict, ("#e8e8e8", "#404040"))
    return f'<span class="badge" style="background:{bg};color:{fg}">{_e(verdict)}</span>'


def _html_table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    """Cells are escaped here; `numeric` columns are right-aligned."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="{"num" if i in numeric else "nowrap"}">{_e(c)}</td>'
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _verdict_row(label: str, v: Any, sub: bool = False) -> str:
    reason = f" <span class=\"muted\">({_e(v.reason)})</span>" if v.reason else ""
    return (f'<tr class="{"sub" if sub else ""}"><td>{_e(label)}</td><td>{badge(v.verdict)}{reason}</td>'
            f'<td class="evidence">{_e(v.evidence)}</td></tr>')


def _claims_html(report: Report) -> str:
    """One table for all claims: a header row per claim (id and text), then a row per verdict and sub-result."""
    parts = []
    summary = "; ".join(f"{_e(w)}: " + ", ".join(f"{n} {badge(k)}" for k, n in counts.items())
                        for w, counts in verdict_summary(report.verdicts))
    if summary:
        parts.append(f"<p>{summary}</p>")
    rows = []
    for claim_id, text, verdicts in grouped_verdicts(report.verdicts):
        rows.append(f'<tr class="claimhead" id="claim-{_e(claim_id)}"><td colspan="3"><code>{_e(claim_id)}</code> '
                    f"{_e(text)}</td></tr>")
        for v in verdicts:
            rows.append(_verdict_row(where(v), v))
            rows.extend(_verdict_row(sub_name(s, v.results), s, sub=True) for s in v.results)
    if rows:
        parts.append('<table class="claims"><colgroup><col style="width:16%"><col style="width:27%"><col>'
                     "</colgroup><thead><tr><th>on</th><th>verdict</th><th>evidence</th></tr></thead>"
                     f"<tbody>{''.join(rows)}</tbody></table>")
    else:
        parts.append('<p class="muted">The card states no structured claims.</p>')
    return "\n".join(parts)


def _plots_html(report: Report) -> str:
    if not report.plots:
        return '<p class="muted">No plot: too few comparable points (bench plot draws a figure from two).</p>'
    figures = []
    for path in report.plots:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        figures.append(f'<figure><img alt="{_e(path.stem)}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{_e(path.name)}</figcaption></figure>")
    return f'<div class="plots">{"".join(figures)}</div>'


def _runs_html(report: Report) -> str:
    if not report.runs:
        return f'<p class="muted">No complete run yet: <code>bench reproduce {_e(report.slug)}</code>.</p>'
    header = [title for _, title in RUN_COLUMNS]
    numeric = {i for i, (key, _) in enumerate(RUN_COLUMNS)
               if key in ("params_m", "gmacs", "nfe", "latency_ms", "train_s", "wall_s")}
    rows = [[getattr(r, key) for key, _ in RUN_COLUMNS] for r in report.runs]
    out = _html_table(header, rows, numeric)
    if report.not_shown:
        out += (f'<p class="muted">{report.not_shown} partial or failed run record(s) are not shown '
                f"(<code>bench runs {_e(report.slug)}</code> lists them).</p>")
    return out


def _provenance_html(report: Report) -> str:
    rows = []
    for row in report.provenance:
        if len(row.values) == 1:
            value = _e(row.values[0][0])
        else:
            value = "<br>".join(f"{_e(v)} <span class=\"muted\">(runs {_e(', '.join(ids))})</span>"
                                for v, ids in row.values)
        rows.append(f"<tr><th>{_e(row.field)}</th><td>{value}</td></tr>")
    recorded = (f'<div class="scroll"><table><tbody>{"".join(rows)}</tbody></table></div>' if rows else
                '<p class="muted">No run records, so no recorded provenance.</p>')
    return (f"<p>Recorded by the runs above (a field on which they differ lists each value with its runs):</p>"
            f"{recorded}<p>This page was generated at commit <code>{_e(report.commit_now)}</code> with bench "
            f"{_e(__version__)}.</p>")


def render_html(report: Report) -> str:
    card = report.card
    ids = {title: title.lower().replace(" ", "-") for title in SECTIONS}
    meta = []
    for label, text, link in paper_line(card):
        shown = f'<a href="{_e(link)}">{_e(text)}</a>' if link else _e(text)
        meta.append(f"<b>{_e(label)}:</b> {shown}")
    scales = sorted({r.scale for r in report.runs})
    warn = ""
    if scales and "paper" not in scales:
        warn = (f'<div class="warn">Our runs here are at scale <b>{_e(", ".join(scales))}</b> only: they test the '
                "pipeline and give a first signal, they do <b>not</b> reproduce the paper's numbers.</div>")
    problems = ""
    if report.problems:
        problems = "<ul class=\"problems\">" + "".join(f"<li>{_e(p)}</li>" for p in report.problems) + "</ul>"
    nav = " ".join(f'<a href="#{ids[t]}">{_e(t)}</a>' for t in SECTIONS[1:])

    def section(title: str, body: str) -> str:
        return f'<h2 id="{ids[title]}">{_e(title)}</h2>\n{body}\n'

    return "".join([
        ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
         f"<title>bench report: {_e(report.slug)}</title><style>{CSS}</style></head><body><main>\n"),
        f"<h1>bench report: {_e(report.slug)}</h1>\n",
        "".join(f'<p class="meta">{m}</p>' for m in meta),
        (f'<p class="meta"><b>generated:</b> {_e(report.generated_at)} · bench {_e(__version__)} · commit '
         f"<code>{_e(report.commit_now)}</code></p>\n<nav>{nav}</nav>\n"),
        warn, problems,
        section("How to read this", f'<div class="howto">{HOW_TO_READ}</div>'),
        section("Headline", f'<div class="scroll">{report.headline.html()}</div>'),
        section("Claims", _claims_html(report)),
        section("Plots", _plots_html(report)),
        section("Runs", _runs_html(report)),
        section("Provenance", _provenance_html(report)),
        "</main></body></html>\n",
    ])


# ---------------------------------------------------------------------------------------------- Markdown
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md_escape(text: Any) -> str:
    """Backslash-escape what Markdown would read as markup: links "[...]", HTML "<", emphasis, table pipes.
    An underscore inside a word (fd_digits) is left alone: CommonMark does not read it as emphasis."""
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), str(text)).replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _md_verdict(v: Any, label: str) -> str:
    reason = f" ({md_escape(v.reason)})" if v.reason else ""
    return f"**{md_escape(label)}**: **{md_escape(v.verdict)}**{reason}: {md_escape(v.evidence)}"


def render_markdown(report: Report, md_dir: Path) -> str:
    card = report.card
    out = [f"# bench report: {md_escape(report.slug)}\n"]
    for label, text, link in paper_line(card):
        out.append(f"- **{md_escape(label)}**: " + (f"[{md_escape(text)}](<{link}>)" if link else md_escape(text)))
    out.append(f"- **generated**: {report.generated_at}, bench {__version__}, commit `{report.commit_now}`\n")
    scales = sorted({r.scale for r in report.runs})
    if scales and "paper" not in scales:
        out.append(f"> **Our runs here are at scale {', '.join(scales)} only: they do not reproduce the paper's "
                   "numbers.**\n")
    out += [f"> warning: {md_escape(p)}" for p in report.problems]
    how = re.sub(r"</?b>", "**", re.sub(r"</?i>", "_", HOW_TO_READ)).replace("&lt;", "<")
    out.append(f"\n## {SECTIONS[0]}\n\n{how}\n")
    out.append(f"## {SECTIONS[1]}\n\n{report.headline.markdown().rstrip()}\n")
    out.append(f"## {SECTIONS[2]}\n")
    for w, counts in verdict_summary(report.verdicts):
        out.append(f"- {md_escape(w)}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    for claim_id, text, verdicts in grouped_verdicts(report.verdicts):
        out.append(f"\n### `{claim_id}`: {md_escape(text)}\n")
        for v in verdicts:
            out.append("- " + _md_verdict(v, where(v)))
            out.extend("  - " + _md_verdict(s, sub_name(s, v.results)) for s in v.results)
    if not report.verdicts:
        out.append("The card states no structured claims.")
    out.append(f"\n## {SECTIONS[3]}\n")
    for path in report.plots:
        rel = path.relative_to(md_dir) if path.is_relative_to(md_dir) else path
        out.append(f"![{md_escape(path.stem)}]({quote(rel.as_posix())})\n")
    if not report.plots:
        out.append("No plot: too few comparable points.\n")
    out.append(f"## {SECTIONS[4]}\n")
    if report.runs:
        out.append(_md_table([t for _, t in RUN_COLUMNS],
                             [[getattr(r, key) for key, _ in RUN_COLUMNS] for r in report.runs]))
        if report.not_shown:
            out.append(f"{report.not_shown} partial or failed run record(s) are not shown (`bench runs "
                       f"{report.slug}` lists them).\n")
    else:
        out.append(f"No complete run yet: `bench reproduce {report.slug}`.\n")
    out.append(f"## {SECTIONS[5]}\n")
    for row in report.provenance:
        if len(row.values) == 1:
            out.append(f"- **{md_escape(row.field)}**: {md_escape(row.values[0][0])}")
        else:
            out.append(f"- **{md_escape(row.field)}**: " + "; ".join(
                f"{md_escape(v)} (runs {', '.join(ids)})" for v, ids in row.values))
    out.append(f"\nThis page was generated at commit `{report.commit_now}` with bench {__version__}.\n")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- entry points
def default_dir(slug: str, store: Store) -> Path:
    return store.root / slug / "report"


def write_report(slug: str, store: Store | None = None, out_dir: Path | None = None,
                 problems: list[str] | None = None) -> ReportFiles:
    """Write report.html (self-contained) and report.md (+ plots/) for one paper; return their paths."""
    store = store or Store()
    problems = problems if problems is not None else []
    out_dir = Path(out_dir) if out_dir is not None else default_dir(slug, store)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot create the report folder {out_dir}: {exc.strerror or exc}") from None
    report = gather(slug, store, out_dir / "plots", problems)
    from bench import atomic

    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    atomic.write_text(html_path, render_html(report))
    atomic.write_text(md_path, render_markdown(report, out_dir))
    return ReportFiles(html_path, md_path, report.plots)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(html_path: Path, png_path: Path, width: int = 1400, height: int = 2000,
               timeout_s: float = 120.0) -> Path:
    """Render the page in headless Chromium (Debian's package) and save a PNG of the first width x height pixels."""
    browser = find_chromium()
    if browser is None:
        raise BenchError("no Chromium found (apt-get install chromium) to take a screenshot")
    with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profile:  # a private profile: runs never collide
        cmd = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={profile}", f"--screenshot={png_path}", f"--window-size={width},{height}",
               Path(html_path).resolve().as_uri()]
        try:
            done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise BenchError(f"chromium did not finish the screenshot in {timeout_s:.0f} s") from None
    if done.returncode != 0 or not Path(png_path).exists():
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"chromium could not render {html_path}: {tail}")
    return Path(png_path)


def as_dict(files: ReportFiles) -> dict[str, Any]:
    return {"html": str(files.html), "markdown": str(files.markdown), "plots": [str(p) for p in files.plots]}
