"""`bench table`: the paper's numbers beside ours, with deltas only where the dialects agree.

Built with pandas from paper.yaml and the run records (never from printed output). Every "ours" cell
carries its scale badge; a smoke or small number never sits unlabelled next to a paper number. A rehearsal
(capped steps and samples) is badged "[small, rehearsal]" on a row of its own: it never fills a paper cell.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from bench import papers
from bench.metrics.manifest import DIALECTS, comparable
from bench.sanity import FAILED, is_sanity, run_sanity
from bench.store import Store, is_rehearsal, parse_setting_key, setting_key

COLUMNS = ["entry", "dataset", "split", "setting", "metric", "paper", "source", "ours", "spread", "scale", "rehearsal",
           "sanity", "delta", "note"]


def fmt(value: float | None, metric: str) -> str:
    if value is None or pd.isna(value):
        return ""
    digits = 4 if abs(value) < 1.5 and DIALECTS.get(metric, {}).get("unit") == "" else 2
    return f"{value:.{digits}f}"


def build(slug: str, store: Store | None = None, problems: list[str] | None = None) -> pd.DataFrame:
    """One row per (entry, dataset, setting, metric): paper value and source, ours, spread, scale, delta."""
    card = papers.card(slug)
    rows: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
    not_run = {e.id for e in card.entries if e.not_run}  # the reasons are footnotes (footnotes() below)
    for cell in card.reported:
        note = "; ".join(n for n in (cell.note, "not run by bench" if cell.entry in not_run else "") if n)
        key = (cell.entry, cell.dataset, cell.split, setting_key(cell.setting), cell.metric, "paper")
        rows[key] = {"entry": cell.entry, "dataset": cell.dataset, "split": cell.split,
                     "setting": setting_key(cell.setting),
                     "metric": cell.metric, "paper": cell.value, "source": f"[{cell.source.tag}] {cell.source.ref}",
                     "ours": None, "spread": None, "scale": "", "rehearsal": False, "sanity": "", "delta": None,
                     "note": note}
    store = store or Store()
    for run in sorted(store.latest(slug, problems, rehearsals=True),
                      key=lambda r: (r["entry"], r["dataset"], r["scale"], is_rehearsal(r))):
        proxy = run.get("stands_for") or {}
        sanity = run_sanity(run).status  # a run below its floor is badged "did not learn" on every row
        rehearsal = is_rehearsal(run)
        for m in run["metrics"]:
            skey = setting_key(m.get("setting", {}))
            spread = m.get("std")
            ours = {"ours": m["value"], "spread": spread, "scale": run["scale"], "rehearsal": rehearsal,
                    "sanity": sanity, "run_id": run["run_id"]}
            match = None
            for (entry, dataset, split, s, metric, _), row in rows.items():
                if (entry == run["entry"] and dataset == run["dataset"] and split == run["split"] and s == skey
                        and comparable(metric, m["metric"]) and row["ours"] is None and not rehearsal):
                    match = row
                    break
            if match is not None:
                match.update(ours)
                match["delta"] = m["value"] - match["paper"]
                if match["metric"] != m["metric"]:
                    match["note"] = (match["note"] + " " if match["note"] else "") + \
                        f"ours is {m['metric']} (comparable dialect)"
                continue
            note = ""
            if proxy:
                stand_metric = proxy.get("metrics", {}).get(m["metric"])
                stands = proxy.get("dataset", "?")
                note = f"stands in for {'/'.join(stands) if isinstance(stands, list) else stands}" + (f" / {stand_metric}" if stand_metric else "")
            if is_sanity(m):
                floor = m["floor"]
                trivial = floor.get("trivial", "")
                if floor.get("trivial_value") is not None:
                    trivial += f" = {floor['trivial_value']:.4g}"
                note = f"sanity floor > {floor['value']:.4g} ({trivial})"
            key = (run["entry"], run["dataset"], run["split"], skey, m["metric"],
                   run["scale"] + (", rehearsal" if rehearsal else ""))
            rows[key] = {"entry": run["entry"], "dataset": run["dataset"], "split": run["split"], "setting": skey,
                         "metric": m["metric"],
                         "paper": None, "source": "", **ours, "delta": None, "note": note}
    frame = pd.DataFrame(list(rows.values()))
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS + ["run_id"])
    if "run_id" not in frame:
        frame["run_id"] = None
    return frame[COLUMNS + ["run_id"]].reset_index(drop=True)


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Strings for humans: values formatted per metric, ours with ± spread and a [scale] badge."""
    out = []
    for _, r in frame.iterrows():
        ours = ""
        if r["ours"] is not None and not pd.isna(r["ours"]):
            ours = fmt(r["ours"], r["metric"])
            if r["spread"] is not None and not pd.isna(r["spread"]):
                ours += f" ± {fmt(r['spread'], r['metric'])}"
            badge = (r["scale"] + (", rehearsal" if bool(r.get("rehearsal", False)) else "")
                     + (", " + FAILED if r.get("sanity") == FAILED else ""))
            ours += f" [{badge}]"
        delta = ""
        if r["delta"] is not None and not pd.isna(r["delta"]):
            delta = f"{r['delta']:+.{4 if abs(r['paper']) < 1.5 else 2}f}"
        out.append({"entry": r["entry"], "dataset": r["dataset"] + ("" if r["split"] == "test" else f" ({r['split']})"),
                    "setting": r["setting"], "metric": r["metric"],
                    "paper": fmt(r["paper"], r["metric"]), "source": r["source"], "ours": ours, "Δ": delta,
                    "note": r["note"]})
    return pd.DataFrame(out, columns=["entry", "dataset", "setting", "metric", "paper", "source", "ours", "Δ",
                                      "note"])


def footnotes(slug: str) -> list[str]:
    card = papers.card(slug)
    notes = [("paper = the paper's reported number; [P] paper text, [F] figure, [R] repository, [V] verified by "
             "us, [S] third-party, [M] memory (unchecked), [B] blog, [I] inference."),
             ("ours = mean over seeds ± sample std, with its scale badge: [smoke] CPU/embedded data and [small] "
             "one GPU are NOT reproductions of paper numbers; Δ is printed only when both numbers share a "
             "dialect (or a declared comparable one) and setting.")]
    not_run = [f"not run by bench: {e.id}: {e.not_run}" for e in card.entries if e.not_run]
    return notes + list(card.limits) + not_run


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON rows: numbers as numbers (null when absent), the setting as a dict."""
    import json

    out = json.loads(frame.to_json(orient="records"))
    for row in out:
        row["setting"] = parse_setting_key(row.get("setting") or "")
    return out


def latex(frame: pd.DataFrame) -> str:
    """The full table as booktabs LaTeX that compiles under pdflatex (escaped, ASCII)."""
    from bench.headline import latex_escape

    shown = display_frame(frame)
    cols = list(shown.columns)
    lines = ["% needs \\usepackage{booktabs}", "\\begin{tabular}{" + "l" * len(cols) + "}", "\\toprule",
             " & ".join(latex_escape(c) for c in cols) + " \\\\", "\\midrule"]
    for _, row in shown.iterrows():
        lines.append(" & ".join(latex_escape(str(v)) for v in row.values) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


# `bench.table(...)` calls bench.api.table (see bench/__init__.py)
import bench as _bench

_bench.make_callable(__name__)
