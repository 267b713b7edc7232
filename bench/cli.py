"""The `bench` command line (Typer + rich). Heavy modules are imported inside the commands that need them,
so `bench list` and `--help` stay fast and never import torch."""
from __future__ import annotations

import functools
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bench import papers
from bench.registry import BenchError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Reproduce ten 2024 papers against their baselines, with honest labels.")


def _console(stderr: bool = False) -> Console:
    """A terminal gets rich's usual width; a pipe or file (CI logs, `| grep`) gets one unwrapped line per row,
    so a name is never split across lines ("sam-pri/or") and grep finds it."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=100_000, soft_wrap=True, highlight=False)


console = _console()
err_console = _console(stderr=True)


class Fmt(str, Enum):
    rich = "rich"
    md = "md"
    csv = "csv"
    latex = "latex"
    json = "json"


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A BenchError becomes one line on stderr and its exit code (2 = bad input); nothing else is printed."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BenchError as exc:
            err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code)

    return wrapper


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def check_paper(slug: str) -> str:
    papers.registries()["papers"].get(slug)  # raises UnknownName with close matches
    return slug


def _store():
    from bench.store import Store

    return Store()


def _report_problems(problems: list[str]) -> None:
    for line in problems:
        err_console.print(f"warning: {line}", markup=False, highlight=False)


@app.command("list")
@handle_errors
def list_cmd(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """The ten papers: methods, baselines, datasets, claims and whether `reproduce` can run them."""
    rows = []
    for entry in papers.registries()["papers"]:
        card = papers.card(entry.name)
        rows.append({"paper": entry.name, "title": card.title, "family": card.family, "arxiv": card.arxiv,
                     "status": "implemented" if entry.target else "card only (not implemented)",
                     "methods": [e.id for e in card.entries if e.role == "method"],
                     "baselines": [e.id for e in card.entries if e.role == "baseline"],
                     "datasets": card.datasets, "reported_cells": len(card.reported), "claims": len(card.claims)})
    if as_json:
        print_json(rows)
        return
    table = Table(title="bench: papers")
    for col in ("paper", "family", "status", "methods", "baselines", "datasets", "cells", "claims"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["paper"], r["family"], r["status"], ", ".join(r["methods"]), ", ".join(r["baselines"]),
                      ", ".join(r["datasets"]), str(r["reported_cells"]), str(r["claims"]))
    console.print(table)


def _parse_seeds(seeds: Optional[str]) -> list[int] | None:
    if not seeds:
        return None
    try:
        return [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise BenchError(f"--seeds takes comma-separated integers, e.g. 0,1,2 (got {seeds!r})") from None


@app.command()
@handle_errors
def reproduce(paper: str = typer.Argument(..., help="paper slug, e.g. u-dit"),
              entry: Optional[list[str]] = typer.Option(None, "--entry", "-e", help="only these entries"),
              scale: str = typer.Option("smoke", help="smoke (CPU, minutes) | small (1 GPU) | paper"),
              seeds: Optional[str] = typer.Option(None, help="comma-separated seeds, e.g. 0,1,2"),
              nproc: int = typer.Option(1, help="processes (torchrun/DDP) for this run"),
              data_root: Optional[Path] = typer.Option(None, help="root folder of the real datasets"),
              dry_run: bool = typer.Option(False, "--dry-run", help="print the resolved run specs and stop"),
              resume: bool = typer.Option(True, "--resume/--no-resume", help="reuse finished seeds and shards"),
              force: bool = typer.Option(False, help="recompute even if a complete run exists"),
              as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Train and evaluate a paper's method and its baselines at a scale, recording every run."""
    from bench import runner
    from bench.spec import SCALES

    check_paper(paper)
    if scale not in SCALES:
        raise BenchError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    if nproc < 1:
        raise BenchError("--nproc must be >= 1")
    specs = runner.plan(paper, scale, entry, _parse_seeds(seeds), data_root, world_size=nproc)
    if dry_run:
        print_json([{"run_id": s.run_id(), **s.model_dump(mode="json")} for s in specs])
        return
    runner.check_data(specs, data_root)
    store = _store()
    if nproc > 1:
        store.check_writable()
        runner.launch(paper, scale, nproc, entry, _parse_seeds(seeds), data_root, resume, force)
        console.print(f"recorded the runs under {store.root / paper}; see `bench table --paper {paper}`")
        return
    store.check_writable()
    outcomes = []
    for spec in specs:
        if not as_json:
            console.print(f"[bold]{spec.paper}[/] {spec.entry} on {spec.dataset} [{spec.scale}] "
                          f"run {spec.run_id()}")
        out = runner.execute(spec, store, data_root=data_root, resume=resume, force=force,
                             log=(lambda m: None) if as_json else console.print, show_progress=not as_json)
        outcomes.append(out)
        if not as_json:
            metrics = ", ".join(f"{m['metric']}{'@' + _skey(m) if m.get('setting') else ''}={m['value']:.4g}"
                                for m in out.result["metrics"])
            console.print(f"  {'cached' if out.cached else 'done'}: {metrics}")
    # a recipe may summarise the runs it just made (u-dit: a PNG grid of samples and the sanity standing)
    after = getattr(papers.recipe(paper), "after_reproduce", None)
    notes = after(outcomes, store) if after is not None else []
    if as_json:
        print_json([o.result for o in outcomes])
    else:
        for line in notes:
            console.print(line)
        console.print(f"recorded {len(outcomes)} runs under {store.root / paper}; "
                      f"see `bench table --paper {paper}` and `bench claims {paper}`")


def _skey(m: dict[str, Any]) -> str:
    from bench.store import setting_key

    return setting_key(m.get("setting", {}))


@app.command()
@handle_errors
def table(paper: str = typer.Option(..., "--paper", "-p", help="paper slug"),
          fmt: Fmt = typer.Option(Fmt.rich, "--format", "-f", help="rich | md | csv | latex | json"),
          metric: Optional[list[str]] = typer.Option(None, "--metric", "-m", help="only these metrics")) -> None:
    """The paper's reported numbers beside ours (± spread, scale badge) with deltas where dialects match."""
    from bench import table as table_mod

    check_paper(paper)
    problems: list[str] = []
    frame = table_mod.build(paper, _store(), problems)
    _report_problems(problems)
    if metric:
        frame = frame[frame["metric"].isin(metric)]
    if fmt == Fmt.json:
        print_json(json.loads(frame.to_json(orient="records")))
        return
    shown = table_mod.display_frame(frame)
    notes = table_mod.footnotes(paper)
    if fmt == Fmt.md:
        sys.stdout.write(f"## {papers.card(paper).title}\n\n" + shown.to_markdown(index=False) + "\n\n"
                         + "\n".join(f"- {n}" for n in notes) + "\n")
    elif fmt == Fmt.csv:
        sys.stdout.write(shown.to_csv(index=False))
    elif fmt == Fmt.latex:
        sys.stdout.write(shown.to_latex(index=False))
    else:
        t = Table(title=papers.card(paper).title)
        for col in shown.columns:
            t.add_column(col, overflow="fold")
        for _, row in shown.iterrows():  # Text cells: "[smoke, did not learn]" is a badge, not rich markup
            t.add_row(*[Text(str(v)) for v in row.values])
        console.print(t)
        for n in notes:
            console.print(f"• {n}", markup=False, highlight=False)


@app.command()
@handle_errors
def claims(paper: Optional[str] = typer.Argument(None, help="paper slug"),
           paper_opt: Optional[str] = typer.Option(None, "--paper", "-p", help="paper slug (same as the argument)"),
           as_json: bool = typer.Option(False, "--json",
                                        help="machine-readable output (bench/schemas/claims.schema.json)"),
           strict: bool = typer.Option(False, help="exit 1 if one of our verdicts is 'not confirmed'")) -> None:
    """Each claim of the paper, decided only on evidence: on its reported numbers and on ours, per scale."""
    from rich.markup import escape

    from bench import claims as claims_mod

    if paper and paper_opt and paper != paper_opt:
        raise BenchError(f"two papers given ({paper!r} and --paper {paper_opt!r}); give one")
    paper = paper or paper_opt
    if not paper:
        raise BenchError("give a paper slug: bench claims u-dit (or --paper u-dit); bench list shows them")
    check_paper(paper)
    problems: list[str] = []
    verdicts = claims_mod.evaluate(paper, _store(), problems)
    _report_problems(problems)
    if as_json:
        print_json([v.as_dict() for v in verdicts])
    else:
        colour = {"confirmed": "green", "not confirmed": "red", "inconclusive": "yellow", "unverified": "magenta",
                  "no evidence": "red", "no data": "dim"}

        def say(indent: str, where: str, v: Any) -> None:
            # soft_wrap: piped output keeps one verdict per line; escape: "[fd_digits ...]" is text, not markup
            console.print(f"{indent}{escape(where)}  [{colour[v.verdict]}]{escape(v.label)}[/] - {escape(v.evidence)}",
                          soft_wrap=True, highlight=False)

        shown = None
        for v in verdicts:
            if v.claim != shown:
                shown = v.claim
                console.print(f"{escape(v.claim)}: {escape(v.text)}", soft_wrap=True, highlight=False, style="bold")
            say("  ", "paper" if v.source == "paper" else f"ours [{v.scale or 'no runs'}]", v)
            # sub-results of a Holm family: name them by the setting keys that tell them apart
            differ = [k for k in (v.results[0].setting if v.results else {})
                      if len({str(r.setting.get(k)) for r in v.results}) > 1]
            for sub in v.results:
                keys = differ or list(sub.setting)
                say("      ", sub.metric + " at " + ",".join(f"{k}={sub.setting.get(k)}" for k in keys), sub)
    if strict and any(v.verdict == "not confirmed" and v.source == "ours" for v in verdicts):
        raise typer.Exit(1)


@app.command()
@handle_errors
def show(run: str = typer.Argument(..., help="run id (or a unique prefix)"),
         as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """One run record: spec, metrics, cost, provenance, status."""
    store = _store()
    run_dir = store.find(run)
    result = store.read_result(run_dir)
    spec = json.loads((run_dir / "spec.json").read_text())
    if as_json:
        print_json({"spec": spec, "result": result})
        return
    console.print(f"[bold]{run_dir.name}[/]  {spec['paper']} {spec['entry']} on {spec['dataset']} "
                  f"[{spec['scale']}]  status: {result.get('status') if result else 'not finished'}")
    if result:
        for m in result["metrics"]:
            spread = f" ± {m['std']:.4g}" if m.get("std") is not None else ""
            console.print(f"  {m['metric']} {_skey(m)}: {m['value']:.6g}{spread}  (n={m.get('n')}, "
                          f"seeds {list(m['per_seed'])})", markup=False)
        console.print(f"  cost: {json.dumps(result['cost'])}", markup=False)
        prov = result["provenance"]
        console.print(f"  git {prov.get('git')}, torch {prov.get('libraries', {}).get('torch')}, "
                      f"{prov.get('hardware', {}).get('cpu')}", markup=False)


@app.command()
@handle_errors
def diff(run_a: str = typer.Argument(...), run_b: str = typer.Argument(...),
         as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Explain a delta between two runs: spec, library versions, hardware, seeds, dataset fingerprint."""
    from bench.rundiff import explain

    store = _store()
    report = explain(store.find(run_a), store.find(run_b))
    if as_json:
        print_json(report)
        return
    for section, items in report.items():
        console.print(f"[bold]{section}[/]")
        if not items:
            console.print("  (same)")
        for item in items:
            console.print(f"  {item}", markup=False)


@app.command()
@handle_errors
def check(update: bool = typer.Option(False, "--update", help="merge the newest runs into results/reference and "
                                                            "print the diff (old -> new per metric)"),
          prune: bool = typer.Option(False, "--prune", help="with --update: drop reference entries and metrics "
                                                            "that no run reports any more"),
          allow_stale: bool = typer.Option(False, "--allow-stale", help="do not fail on stale results (spec "
                                                                        "changed since the reference)"),
          paper: Optional[list[str]] = typer.Option(None, "--paper", "-p", help="only these papers"),
          reference_dir: Optional[Path] = typer.Option(None, "--reference-dir",
                                                       help="reference folder (default results/reference)"),
          fmt: Fmt = typer.Option(Fmt.rich, "--format", "-f", help="rich | md | csv | json"),
          summary: Optional[Path] = typer.Option(None, help="also write the Markdown summary to this file")) -> None:
    """CI gate: newest runs vs results/reference. Exit 1 on regressed, missing or stale (see README); exit 2 on an
    unreadable reference or run record."""
    from bench import check as check_mod

    for p in paper or []:
        check_paper(p)
    if fmt == Fmt.latex:
        raise BenchError("bench check prints rich, md, csv or json (not latex)")
    if prune and not update:
        raise BenchError("--prune only makes sense with --update")
    ref_dir = reference_dir or check_mod.REFERENCE_DIR
    if update:
        for upd in check_mod.update(_store(), ref_dir, papers=paper, prune=prune):
            action = f"wrote {upd.path}" if upd.written else f"{upd.path} unchanged"
            console.print(f"{upd.paper}: {action}", markup=False, highlight=False, soft_wrap=True)
            for line in upd.changes:
                console.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    findings = check_mod.check(_store(), ref_dir, papers=paper, allow_stale=allow_stale)
    if summary:
        summary.write_text(check_mod.markdown(findings, allow_stale))
    if fmt == Fmt.json:
        print_json([f.as_dict() for f in findings])
    elif fmt == Fmt.md:
        sys.stdout.write(check_mod.markdown(findings, allow_stale))
    elif fmt == Fmt.csv:
        sys.stdout.write(check_mod.csv_text(findings))
    else:
        colour = {"pass": "green", "regressed": "red", "improved": "cyan", "stale": "yellow", "missing": "magenta",
                  "new": "blue"}
        t = Table(title="bench check", title_justify="left")
        for col in ("paper", "entry", "dataset", "metric", "setting", "outcome", "detail"):
            t.add_column(col, overflow="fold")
        for f in findings:  # Text cells: names and details are never parsed as rich markup
            t.add_row(*(Text(v) for v in (f.paper, f.entry, f.dataset, f.metric, f.setting)),
                      Text(f.outcome, style=colour.get(f.outcome, "")), Text(f.detail))
        console.print(t)
        console.print(check_mod.summary_line(findings, allow_stale), markup=False, highlight=False, soft_wrap=True)
    if any(check_mod.fails(f, allow_stale) for f in findings):
        raise typer.Exit(1)


@app.command()
@handle_errors
def assets(as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
           data_root: Optional[Path] = typer.Option(None, help="check the datasets' files under this root"),
           count: bool = typer.Option(False, help="count every split's items against the cards (slow)"),
           verify: bool = typer.Option(False, help="hash the archives against the cards' checksums (slow)")) -> None:
    """Every external file (weights, reference statistics, datasets): found? sha256 ok? how to get it."""
    from bench import assets as assets_mod

    from bench.data.cards import all_dataset_cards, dataset_status

    rows = [assets_mod.status(a) for a in assets_mod.declared().values()]
    for card in all_dataset_cards():
        state = dataset_status(card, data_root, count_items=count, verify_checksums=verify)
        rows.append({"name": f"dataset:{card.name}", "file": str(data_root / card.name) if data_root else
                     "(pass --data-root)", "found": {"embedded": True, "found": True}.get(state.state, False),
                     "state": state.state, "sha256_ok": False if state.state == "bad" else None, "sha256": None,
                     "how": card.get if state.state not in ("embedded", "found") else state.detail,
                     "source_url": card.source, "used_by": list(card.papers)})
    if as_json:
        print_json(rows)
        return
    t = Table(title=f"assets (BENCH_ASSETS={assets_mod.assets_dir()})")
    for col in ("name", "found", "sha256", "file", "how to get it"):
        t.add_column(col, overflow="fold")
    for r in rows:
        found = {True: "[green]yes[/]", False: "[red]no[/]", None: "?"}[r["found"]]
        sha = {True: "ok", False: "[red]WRONG[/]", None: "-"}[r["sha256_ok"]]
        t.add_row(r["name"], found, sha, r["file"], r["how"] or "")
    console.print(t)


@app.command()
@handle_errors
def profile(paper: str = typer.Argument(..., help="paper slug"),
            scale: str = typer.Option("smoke", help="which configs: smoke (tiny) or paper (official shapes)"),
            device: str = typer.Option("cpu", help="cpu or cuda"),
            repeats: int = typer.Option(20, help="timed repeats after warm-up"),
            as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Params, MACs, latency (CUDA events on GPU) and NFE of every entry of a paper."""
    check_paper(paper)
    recipe = papers.recipe(paper)
    if not hasattr(recipe, "profile"):
        raise BenchError(f"the {paper} recipe has no profile yet")
    rows = recipe.profile(scale=scale, device=device, repeats=repeats)
    if as_json:
        print_json(rows)
        return
    t = Table(title=f"profile of {paper} [{scale}, {device}]")
    cols = list(rows[0].keys()) if rows else []
    for col in cols:
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()])
    console.print(t)


@app.command()
@handle_errors
def plot(paper: str = typer.Argument(..., help="paper slug"),
         out_dir: Path = typer.Option(Path("results/plots"), help="where to write the PNGs")) -> None:
    """PNG trade-off plots (quality vs cost, Pareto fronts) from the card's numbers and our runs."""
    from bench.plot import plot_paper

    check_paper(paper)
    for path in plot_paper(paper, _store(), out_dir):
        console.print(f"wrote {path}")


@app.command()
@handle_errors
def score(dialect: str = typer.Argument(..., help="metric dialect, e.g. psnr_y@matlab (see bench/metrics/manifest.py)"),
          pred: Path = typer.Option(..., "--pred", help="image file/folder (or COCO detections JSON)"),
          ref: Optional[Path] = typer.Option(None, "--ref", help="reference image file/folder (or COCO GT JSON)"),
          crop: int = typer.Option(0, "--crop", help="border crop in pixels (= SR scale for psnr_y@matlab)"),
          as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Score your own outputs with one metric dialect (images matched by file stem)."""
    papers.registries()["metrics"].get(dialect)
    for path in (pred, ref):
        if path is not None and not path.exists():
            raise BenchError(f"no such file or folder: {path}")
    from bench.metrics.score import score_files

    result = score_files(dialect, pred, ref, crop_border=crop)
    if as_json:
        print_json(result.to_dict())
        return
    console.print(f"{dialect}: {result.value:.6g} over {result.n} items", markup=False)
    for key, value in sorted(result.protocol.items()):
        console.print(f"  {key}: {value}", markup=False)


def main() -> None:  # pragma: no cover - console-script entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
