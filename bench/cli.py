"""The `bench` command line (Typer + rich). Heavy modules are imported inside the commands that need them,
so `bench list` and `--help` stay fast and never import torch."""
from __future__ import annotations

import functools
import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bench import papers
from bench.registry import BenchError, resolve_name

# -h works wherever --help does: click hands help_option_names down to every subcommand's context
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Reproduce ten 2024 papers against their baselines, with honest labels.")


def _print_version(value: bool) -> None:
    if value:
        from bench import __version__

        sys.stdout.write(f"bench {__version__}\n")
        raise typer.Exit()


@app.callback()
def _global_options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                                 help="print the version and exit")) -> None:
    """Reproduce ten 2024 papers against their baselines, with honest labels."""


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
        except KeyboardInterrupt:  # outside a run (a run records it and raises RunInterrupted, a BenchError)
            err_console.print("interrupted", markup=False, highlight=False)
            raise typer.Exit(130)

    return wrapper


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def check_paper(slug: str) -> str:
    """The paper's registered slug, matched without case (U-DiT -> u-dit); unknown -> one line with close matches."""
    return papers.registries()["papers"].get(slug).name


# ---------------------------------------------------------------------------------------------- one grammar
# Every command names papers, entries and scales the same way; these helpers are that grammar.
def _split_list(values: Optional[list[str]] | str) -> list[str] | None:
    """A list option accepts commas or repeats: `--entry a,b` == `--entry a --entry b`. None when not given."""
    if not values:
        return None
    if isinstance(values, str):
        values = [values]
    out = [part.strip() for value in values for part in value.split(",") if part.strip()]
    return out or None


def _one_paper(arg: Optional[str], opt: Optional[str], required: bool = True) -> Optional[str]:
    """The paper given positionally or by --paper/-p (an alias), as its registered slug."""
    if arg and opt and check_paper(arg) != check_paper(opt):
        raise BenchError(f"two papers given ({arg!r} and --paper {opt!r}); give one")
    slug = arg or opt
    if not slug:
        if required:
            raise BenchError("give a paper, e.g. `u-dit` (or --paper u-dit); `bench list` shows them")
        return None
    return check_paper(slug)


def _some_papers(args: Optional[list[str]], opts: Optional[list[str]]) -> list[str] | None:
    """Papers given positionally and/or by --paper (commas or repeats), as registered slugs; None = all."""
    names = (_split_list(args) or []) + (_split_list(opts) or [])
    return list(dict.fromkeys(check_paper(n) for n in names)) or None


def _parse_seeds(seeds: Optional[list[str]] | str) -> list[int] | None:
    """`--seeds 0,1,2` == `--seeds 0 --seeds 1 --seeds 2`."""
    values = _split_list(seeds)
    if not values:
        return None
    try:
        return [int(s) for s in values]
    except ValueError:
        raise BenchError(f"--seeds takes integers, e.g. 0,1,2 (got {','.join(values)!r})") from None


def _entries(paper: Optional[str], values: Optional[list[str]]) -> list[str] | None:
    """Entry ids (commas or repeats), matched without case against the paper's card (all cards when None)."""
    names = _split_list(values)
    if not names:
        return None
    slugs = [paper] if paper else papers.registries()["papers"].names()
    known = list(dict.fromkeys(e.id for s in slugs for e in papers.card(s).entries))
    kind = f"entry of {paper}" if paper else "entry"
    return [resolve_name(kind, n, known) for n in names]


def _scales(values: Optional[list[str]] | str) -> list[str] | None:
    from bench.spec import SCALES

    names = _split_list(values)
    return [resolve_name("scale", n, SCALES) for n in names] if names else None


def _output_format(fmt: Fmt, as_json: bool, allowed: tuple[str, ...] = ("rich", "md", "csv", "latex", "json")
                   ) -> Fmt:
    """--json is an alias of --format json."""
    if as_json:
        if fmt not in (Fmt.rich, Fmt.json):
            raise BenchError(f"--json and --format {fmt.value} disagree; give one")
        return Fmt.json
    if fmt.value not in allowed:
        raise BenchError(f"this command prints {', '.join(allowed)} (not {fmt.value})")
    return fmt


def _format_option() -> Any:
    return typer.Option(Fmt.rich, "--format", "-f", case_sensitive=False, help="rich | md | csv | latex | json")


def _json_option() -> Any:
    return typer.Option(False, "--json", help="same as --format json")


# ---------------------------------------------------------------------------------------------- row output
# Commands build rows (dicts of plain values: numbers stay numbers, settings stay dicts) and name the columns
# to show; emit_rows prints them in the chosen format, so every command's md, csv, LaTeX and JSON agree.
Columns = list[tuple[str, str]]  # (row key, header)


def _cell(value: Any) -> str:
    """A value as a human reads it (rich, md, LaTeX)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ",".join(f"{k}={_cell(v)}" for k, v in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def _csv_cell(value: Any) -> Any:
    """A value for CSV: numbers at full precision, lists joined by ';', settings as k=v pairs."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    return str(value)


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                   "±": r"$\pm$", "Δ": r"$\Delta$", "→": r"$\to$", "×": r"$\times$", "≥": r"$\geq$",
                   "≤": r"$\leq$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "•": r"$\bullet$", "…": r"\ldots{}",
                   "—": "---", "–": "--", "≈": r"$\approx$", "≠": r"$\neq$", "μ": r"$\mu$", "µ": r"$\mu$",
                   "σ": r"$\sigma$", "∞": r"$\infty$", "²": r"$^2$", "<": r"\textless{}", ">": r"\textgreater{}",
                   "|": r"\textbar{}"}


def _latex_char(ch: str) -> str:
    if ch in _LATEX_SPECIALS:
        return _LATEX_SPECIALS[ch]
    if ch.isascii():
        return ch
    import unicodedata

    # pdflatex stops on a Unicode sign it has no glyph for; keep the letter of an accented character
    return unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode() or "?"


def latex_escape(text: str) -> str:
    """Text that pdflatex compiles: specials escaped, a few signs as math, other non-ASCII as plain ASCII."""
    return "".join(_latex_char(ch) for ch in text)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric_column(rows: list[dict[str, Any]], key: str) -> bool:
    """Right-align a column whose values are all numbers (blanks allowed, but not only blanks)."""
    values = [r.get(key) for r in rows if r.get(key) is not None]
    return bool(values) and all(_is_number(v) for v in values)


def render_rows(rows: list[dict[str, Any]], columns: Columns, fmt: Fmt, title: str = "",
                notes: tuple[str, ...] | list[str] = ()) -> str:
    """md, csv or LaTeX (booktabs) text of the rows' chosen columns."""
    import csv
    import io

    keys = [k for k, _ in columns]
    if fmt == Fmt.csv:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(keys)
        for row in rows:
            writer.writerow([_csv_cell(row.get(k)) for k in keys])
        return buf.getvalue()
    if fmt == Fmt.md:
        def md(v: Any) -> str:
            return _cell(v).replace("|", "\\|").replace("\n", " ")

        lines = ([f"## {title}", ""] if title else []) + ["| " + " | ".join(h for _, h in columns) + " |",
                                                          "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(md(row.get(k)) for k in keys) + " |" for row in rows]
        lines += [""] + [f"- {n}" for n in notes] if notes else []
        return "\n".join(lines) + "\n"
    if fmt == Fmt.latex:
        align = "".join("r" if _numeric_column(rows, k) else "l" for k in keys)
        lines = ([f"% {title}"] if title else []) + [f"\\begin{{tabular}}{{{align}}}", "\\toprule",
                                                      " & ".join(latex_escape(h) for _, h in columns) + r" \\",
                                                      "\\midrule"]
        lines += [" & ".join(latex_escape(_cell(row.get(k))) for k in keys) + r" \\" for row in rows]
        lines += ["\\bottomrule", "\\end{tabular}"] + [f"% {n}" for n in notes]
        return "\n".join(lines) + "\n"
    raise ValueError(fmt)


def emit_rows(rows: list[dict[str, Any]], columns: Columns, fmt: Fmt, title: str = "",
              notes: tuple[str, ...] | list[str] = (), json_obj: Any = None,
              styles: Optional[dict[str, dict[str, str]]] = None) -> None:
    """Print rows in the chosen format. JSON prints `json_obj` (default: the full rows, every key, not only the
    shown columns); rich prints a table of Text cells (names are never parsed as markup), styled per column
    value by `styles`, e.g. {"status": {"failed": "red"}}."""
    if fmt == Fmt.json:
        print_json(rows if json_obj is None else json_obj)
        return
    if fmt != Fmt.rich:
        sys.stdout.write(render_rows(rows, columns, fmt, title, notes))
        return
    styles = styles or {}
    t = Table(title=title or None, title_justify="left")
    for key, header in columns:
        t.add_column(header, overflow="fold", justify="right" if _numeric_column(rows, key) else "left")
    for row in rows:
        t.add_row(*(Text(_cell(row.get(k)), style=styles.get(k, {}).get(_cell(row.get(k)), "")) for k, _ in columns))
    console.print(t)
    for n in notes:
        console.print(f"• {n}", markup=False, highlight=False, soft_wrap=True)


def _find_run(store: Any, run_id: str) -> Path:
    """A run directory by id or unique prefix; none -> one line that points to `bench runs`."""
    root = store.root
    if not run_id or not root.exists() or not any(p.name.startswith(run_id) for p in root.glob("*/*") if p.is_dir()):
        raise BenchError(f"no run {run_id!r} in {root}; `bench runs` lists the recorded runs")
    return store.find(run_id)


def _store():
    from bench.store import Store

    return Store()


def _report_problems(problems: list[str]) -> None:
    for line in problems:
        err_console.print(f"warning: {line}", markup=False, highlight=False)


@app.command("list")
@handle_errors
def list_cmd(fmt: Fmt = _format_option(), as_json: bool = _json_option()) -> None:
    """The ten papers: methods, baselines, datasets, claims and whether `reproduce` can run them."""
    fmt = _output_format(fmt, as_json)
    rows = []
    for entry in papers.registries()["papers"]:
        card = papers.card(entry.name)
        rows.append({"paper": entry.name, "title": card.title, "family": card.family, "arxiv": card.arxiv,
                     "status": "implemented" if entry.target else "card only (not implemented)",
                     "methods": [e.id for e in card.entries if e.role == "method"],
                     "baselines": [e.id for e in card.entries if e.role == "baseline"],
                     "datasets": card.datasets, "reported_cells": len(card.reported), "claims": len(card.claims),
                     # why the card's other entries are not run (bench/cards.py CardEntry.not_run); JSON only
                     "not_run": [{"entry": e.id, "not_run": e.not_run} for e in card.entries if e.not_run]})
    columns = [("paper", "paper"), ("family", "family"), ("status", "status"), ("methods", "methods"),
               ("baselines", "baselines"), ("datasets", "datasets"), ("reported_cells", "cells"),
               ("claims", "claims")]
    emit_rows(rows, columns, fmt, title="bench: papers",
              styles={"status": {"implemented": "green", "card only (not implemented)": "dim"}})


@app.command()
@handle_errors
def reproduce(paper: str = typer.Argument(..., help="paper slug, e.g. u-dit"),
              entry: Optional[list[str]] = typer.Option(None, "--entry", "-e",
                                                        help="only these entries (commas or repeats)"),
              scale: str = typer.Option("smoke", help="smoke (CPU, minutes) | small (1 GPU) | paper"),
              seeds: Optional[list[str]] = typer.Option(None, help="seeds, e.g. 0,1,2 (commas or repeats)"),
              nproc: int = typer.Option(1, help="processes (torchrun/DDP) for this run"),
              data_root: Optional[Path] = typer.Option(None, help="root folder of the real datasets"),
              dry_run: bool = typer.Option(False, "--dry-run", help="print the resolved run specs and stop"),
              resume: bool = typer.Option(True, "--resume/--no-resume", help="reuse finished seeds and shards"),
              force: bool = typer.Option(False, help="recompute even if a complete run exists"),
              wait: bool = typer.Option(False, "--wait", help="if another process is writing a run, wait for it "
                                                              "(default: exit 2 naming its pid)"),
              device: str = typer.Option("auto", help="auto (CPU at smoke; CUDA at small and paper when there is "
                                                      "a GPU) | cpu | cuda[:N]"),
              max_steps: Optional[int] = typer.Option(None, "--max-steps",
                                                      help="rehearsal: cap every training run at N steps"),
              max_samples: Optional[int] = typer.Option(None, "--max-samples",
                                                        help="rehearsal: cap evaluated/generated items at M"),
              launcher: str = typer.Option("local", help="local (this machine) | slurm (entries x seeds as a "
                                                         "submitit job array; prints the job ids and logs)"),
              partition: Optional[str] = typer.Option(None, help="Slurm partition (--launcher slurm)"),
              gpus_per_node: Optional[int] = typer.Option(None, help="GPUs, one DDP process each, per node of a "
                                                                     "task (--launcher slurm; default 1)"),
              nodes: Optional[int] = typer.Option(None, help="nodes per task (--launcher slurm; default 1)"),
              timeout_min: Optional[int] = typer.Option(None, help="time limit per task in minutes "
                                                                   "(--launcher slurm; default 1440)"),
              slurm_folder: Optional[Path] = typer.Option(None, help="submitit logs and pickles (--launcher "
                                                                     "slurm; default: slurm/ beside the results)"),
              as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Train and evaluate a paper's method and its baselines at a scale, recording every run; ends with the
    headline comparison of what it ran.

    --max-steps/--max-samples rehearse the small or paper code path on a CPU: a run of its own (another id,
    badged "rehearsal"), never mixed with real runs, never evidence for a claim, never gated by bench check.
    They are refused at smoke scale, which is already the CPU scale and does not honour caps."""
    import time

    from bench import runner

    paper = check_paper(paper)  # the registered slug: names match without case, with close matches
    scale = (_scales(scale) or ["smoke"])[0]
    if nproc < 1:
        raise BenchError("--nproc must be >= 1")
    entries = _entries(paper, entry)
    seed_list = _parse_seeds(seeds)
    rehearsal = runner.rehearsal_caps(scale, max_steps, max_samples)
    # one local process resolves its device here; torchrun workers and cluster jobs resolve theirs where they run
    local = nproc == 1 and launcher == "local"
    chosen = runner.resolve_device(device, scale) if local else runner.device_name(device)
    specs = runner.plan(paper, scale, entries, seed_list, data_root, world_size=nproc, rehearsal=rehearsal)
    if dry_run:
        print_json([{"run_id": s.run_id(), **s.model_dump(mode="json")} for s in specs])
        return
    runner.check_data(specs, data_root)
    store = _store()
    if launcher != "local":  # entries x seeds fanned out as a job array (bench/launch.py)
        from bench import launch

        launch.reproduce_on_cluster(launcher, specs, store, data_root=data_root, device=device, nproc=nproc,
                                    resume=resume, force=force, nodes=nodes, gpus_per_node=gpus_per_node,
                                    partition=partition, timeout_min=timeout_min, folder=slurm_folder,
                                    log=lambda m: console.print(m, markup=False, highlight=False, soft_wrap=True))
        return
    if nproc > 1:
        store.check_writable()
        runner.launch(paper, scale, nproc, entries, seed_list, data_root, resume, force, device=device,
                      rehearsal=rehearsal)
        console.print(f"recorded the runs under {store.root / paper}; see `bench table {paper}`", markup=False)
        return
    store.check_writable()
    outcomes = []
    say = (lambda m: None) if as_json else (lambda m: console.print(m, markup=False, highlight=False))
    t_start = time.perf_counter()
    for k, spec in enumerate(specs, 1):
        say(f"[{k}/{len(specs)}] {spec.paper} {spec.entry} on {spec.dataset} "
            f"[{spec.scale}{', rehearsal' if spec.is_rehearsal else ''}], seeds {','.join(map(str, spec.seeds))}, "
            f"run {spec.run_id()} on {chosen}")
        t0 = time.perf_counter()
        out = runner.execute(spec, store, data_root=data_root, resume=resume, force=force, log=say,
                             show_progress=not as_json, wait=wait, device=chosen)
        outcomes.append(out)
        say(f"[{k}/{len(specs)}] {spec.entry}: " + _run_summary(out, time.perf_counter() - t0))
    # a recipe may summarise the runs it just made (u-dit: a PNG grid of samples and the sanity standing)
    after = getattr(papers.recipe(paper), "after_reproduce", None)
    notes = after(outcomes, store) if after is not None else []
    if as_json:
        print_json([o.result for o in outcomes])
        return
    for line in notes:
        say(line)
    from bench import headline as headline_mod

    console.print("")
    view = headline_mod.build_headline(paper, runs=[o.result for o in outcomes])
    for renderable in headline_mod.rich_renderables(view):
        console.print(renderable)
    say(f"recorded {len(outcomes)} runs under {store.root / paper} in {time.perf_counter() - t_start:.0f} s; "
        f"more: bench table {paper} --all, bench claims {paper}, bench report {paper}")


def _run_summary(out: Any, seconds: float) -> str:
    """One line per run: cached or done, the time, the sanity standing and the headline metrics."""
    from bench.sanity import is_sanity, run_sanity

    result = out.result
    quality = [m for m in result.get("metrics", []) if not is_sanity(m)]
    shown = ", ".join(f"{m['metric']}{' (' + _skey(m) + ')' if m.get('setting') else ''} {m['value']:.4g}"
                      for m in quality[:4])
    more = f" (+{len(quality) - 4} more)" if len(quality) > 4 else ""
    state = "cached" if out.cached else f"done in {seconds:.0f} s"
    return f"{state}; sanity floor: {run_sanity(result).status}; {shown}{more}"


def _skey(m: dict[str, Any]) -> str:
    from bench.store import setting_key

    return setting_key(m.get("setting", {}))


@app.command()
@handle_errors
def table(paper: Optional[str] = typer.Argument(None, help="paper slug, e.g. u-dit"),
          paper_opt: Optional[str] = typer.Option(None, "--paper", "-p", help="paper slug (same as the argument)"),
          fmt: Fmt = typer.Option(Fmt.rich, "--format", "-f", help="rich | md | csv | latex | json"),
          show_all: bool = typer.Option(False, "--all", help="also every number the paper reports, beside ours"),
          metric: Optional[list[str]] = typer.Option(None, "--metric", "-m",
                                                     help="only these metrics (commas or repeats)")) -> None:
    """Our headline comparison (method vs each baseline: mean ± std, Δ, cost ratios, claim verdict, the paper's
    numbers); with --all, the paper's full table beside ours."""
    from bench import headline as headline_mod

    paper = _one_paper(paper, paper_opt)
    metrics = _metrics_filter(metric)
    problems: list[str] = []
    store = _store()
    view = headline_mod.build_headline(paper, store, problems)
    if metrics:
        view.rows = [r for r in view.rows if r.metric in metrics or (r.paper or {}).get("metric") in metrics]
        view.scales = [s for s in view.scales if any(r.scale == s for r in view.rows)]
    frame = None
    if show_all or fmt == Fmt.json:
        from bench import table as table_mod

        frame = table_mod.build(paper, store, problems if show_all else None)
        if metrics:
            frame = frame[frame["metric"].isin(metrics)]
    _report_problems(sorted(set(problems)))
    title = papers.card(paper).title
    if fmt == Fmt.json:
        print_json({"paper": paper, "title": title, "headline": view.as_dicts(),
                    "cells": table_mod.records(frame) if show_all else None})
        return
    if show_all:
        from bench import table as table_mod

        if fmt == Fmt.csv:  # numbers in their own columns: value, spread, scale, delta
            sys.stdout.write(frame.to_csv(index=False))
            return
        if fmt == Fmt.latex:
            sys.stdout.write(table_mod.latex(frame))
            return
    if fmt == Fmt.csv:
        sys.stdout.write(view.csv())
    elif fmt == Fmt.latex:
        sys.stdout.write(view.latex())
    elif fmt == Fmt.md:
        sys.stdout.write(f"## {title}\n\n### Headline: ours, method vs baselines\n\n{view.markdown()}")
        if show_all:
            shown = table_mod.display_frame(frame)
            sys.stdout.write("\n### Every reported number beside ours\n\n" + shown.to_markdown(index=False) + "\n\n"
                             + "\n".join(f"- {n}" for n in table_mod.footnotes(paper)) + "\n")
    else:
        console.print(Text(title, style="bold"))
        for renderable in headline_mod.rich_renderables(view):
            console.print(renderable)
        if show_all:
            shown = table_mod.display_frame(frame)
            t = Table(title=f"{paper}: every reported number beside ours", title_justify="left")
            for col in shown.columns:
                t.add_column(col, overflow="fold")
            for _, row in shown.iterrows():  # Text cells: "[smoke, did not learn]" is a badge, not rich markup
                t.add_row(*[Text(str(v)) for v in row.values])
            console.print(t)
            for n in table_mod.footnotes(paper):
                console.print(f"• {n}", markup=False, highlight=False)
        else:
            console.print(f"{view.hidden_cells} numbers reported by the paper: bench table {paper} --all; "
                          f"verdicts in full: bench claims {paper}", markup=False, highlight=False, soft_wrap=True)


def _metrics_filter(values: Optional[list[str]]) -> list[str]:
    """--metric a,b or --metric a --metric b; an unknown dialect is one line with close matches."""
    names = _split_list(values) or []
    registry = papers.registries()["metrics"]
    return [registry.get(name).name for name in names]


def _claim_rows(verdicts: list[Any]) -> list[dict[str, Any]]:
    """One row per verdict and per sub-result of a Holm family (its setting names it)."""
    rows = []
    for v in verdicts:
        for part in [v, *v.results]:
            rows.append({"claim": v.claim, "source": v.source, "scale": v.scale, "metric": part.metric,
                         "setting": part.setting, "verdict": part.verdict, "reason": part.reason,
                         "evidence": part.evidence, "sub_result": part is not v})
    return rows


def _claims_markdown(title: str, verdicts: list[Any]) -> str:
    lines, shown = [f"## Claims: {title}"], None
    for v in verdicts:
        if v.claim != shown:
            shown = v.claim
            lines += ["", f"**{v.claim}**: {v.text}", ""]
        where = "paper" if v.source == "paper" else f"ours [{v.scale or 'no runs'}]"
        lines.append(f"- {where}: **{v.label}** - {v.evidence}")
        for sub in v.results:
            lines.append(f"  - {sub.metric} at {_cell(sub.setting)}: **{sub.label}** - {sub.evidence}")
    return "\n".join(lines) + "\n"


@app.command()
@handle_errors
def claims(paper: Optional[str] = typer.Argument(None, help="paper slug"),
           paper_opt: Optional[str] = typer.Option(None, "--paper", "-p", help="paper slug (same as the argument)"),
           fmt: Fmt = _format_option(),
           as_json: bool = typer.Option(False, "--json", help="same as --format json "
                                                              "(bench/schemas/claims.schema.json)"),
           strict: bool = typer.Option(False, help="exit 1 if one of our verdicts is 'not confirmed'")) -> None:
    """Each claim of the paper, decided only on evidence: on its reported numbers and on ours, per scale."""
    from rich.markup import escape

    from bench import claims as claims_mod

    fmt = _output_format(fmt, as_json)
    paper = _one_paper(paper, paper_opt)
    problems: list[str] = []
    verdicts = claims_mod.evaluate(paper, _store(), problems)
    _report_problems(problems)
    if fmt == Fmt.json:
        print_json([v.as_dict() for v in verdicts])
    elif fmt == Fmt.md:
        sys.stdout.write(_claims_markdown(papers.card(paper).title, verdicts))
    elif fmt in (Fmt.csv, Fmt.latex):
        columns = [(k, k) for k in ("claim", "source", "scale", "metric", "setting", "verdict", "reason",
                                    "evidence")]
        sys.stdout.write(render_rows(_claim_rows(verdicts), columns, fmt, title=f"claims of {paper}"))
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


RUN_STATUSES = ("complete", "partial", "failed", "running", "unfinished", "unreadable")


def _writer_alive(run_dir: Path) -> bool:
    """Whether the process named in the run's .lock (pid and host, written by bench.store.RunLock; emptied on a
    clean release) is alive on this host. Read only: taking the flock, even shared, could make a starting writer
    fail."""
    import socket

    try:
        fields = (run_dir / ".lock").read_text().split()
    except OSError:
        return False
    if not fields or not fields[0].isdigit() or (len(fields) > 1 and fields[1] != socket.gethostname()):
        return False
    try:
        os.kill(int(fields[0]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return True


def _read_run(store: Any, run_dir: Path) -> tuple[dict[str, Any], Optional[dict[str, Any]], str, str]:
    """(spec, result, status, problem) of one run directory. A record that cannot be read is reported with
    status "unreadable" (and why), never a crash; a run without result.json is "unfinished"."""
    spec: dict[str, Any] = {}
    try:
        spec = json.loads((run_dir / "spec.json").read_text())
        if not isinstance(spec, dict):
            raise ValueError("spec.json is not an object")
    except (OSError, ValueError) as exc:
        spec = {}
        problem = f"unreadable spec.json: {exc}"
    else:
        problem = ""
    try:
        result = store.read_result(run_dir)
        if result is not None and not isinstance(result, dict):
            raise ValueError("result.json is not an object")
    except (OSError, ValueError, BenchError) as exc:
        return spec, None, "unreadable", f"unreadable result.json: {exc}"
    if problem:
        return spec, result, "unreadable", problem
    if result:
        return spec, result, result.get("status", "unreadable"), ""
    return spec, result, "running" if _writer_alive(run_dir) else "unfinished", ""


def _metric_rows(result: Optional[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"metric": m.get("metric"), "setting": m.get("setting") or {}, "value": m.get("value"),
             "std": m.get("std"), "n": m.get("n"), "seeds": [int(k) for k in (m.get("per_seed") or {})],
             "floor": m.get("floor")} for m in (result or {}).get("metrics", [])]


@app.command()
@handle_errors
def show(run: str = typer.Argument(..., help="run id (or a unique prefix); `bench runs` lists them"),
         fmt: Fmt = _format_option(), as_json: bool = _json_option()) -> None:
    """One run record: spec, metrics, cost, provenance, status."""
    fmt = _output_format(fmt, as_json)
    store = _store()
    run_dir = _find_run(store, run)
    spec, result, status, problem = _read_run(store, run_dir)
    if fmt == Fmt.json:
        print_json({"spec": spec, "result": result, "status": status, **({"problem": problem} if problem else {})})
        return
    head = (f"{run_dir.name}  {spec.get('paper')} {spec.get('entry')} on {spec.get('dataset')} "
            f"[{spec.get('scale')}]  status: {status}" + (f" ({problem})" if problem else ""))
    rows = _metric_rows(result)
    columns = [(k, k) for k in ("metric", "setting", "value", "std", "n", "seeds", "floor")]
    if not any(r["floor"] is not None for r in rows):
        columns.pop()
    if fmt in (Fmt.csv, Fmt.latex):
        sys.stdout.write(render_rows(rows, columns, fmt, title=head))
        return
    extra = []
    if result:
        prov = result.get("provenance") or {}
        git = prov.get("git")
        if isinstance(git, dict):
            git = f"{str(git.get('commit'))[:12]}{' (dirty)' if git.get('dirty') else ''}"
        extra = [f"cost: {_cell(result.get('cost') or {})}",
                 f"git {git}, torch {(prov.get('libraries') or {}).get('torch')}, "
                 f"{(prov.get('hardware') or {}).get('cpu')}"]
        if result.get("error"):
            extra.append(f"error: {result['error']}")
    if fmt == Fmt.md:
        sys.stdout.write(render_rows(rows, columns, fmt, title=head, notes=extra) if rows else
                         "\n".join([f"## {head}", "", "no metrics"] + [f"- {n}" for n in extra]) + "\n")
        return
    console.print(head, markup=False, highlight=False, soft_wrap=True, style="bold")
    if rows:
        emit_rows(rows, columns, fmt)
    for line in extra:
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)


def _age(seconds: Optional[float]) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return ""  # pragma: no cover


def _run_rows(store: Any, paper: Optional[str], problems: list[str]) -> list[dict[str, Any]]:
    """Every run directory of the store (one paper or all), newest first. Read-only and torch-free."""
    from datetime import datetime, timezone

    def is_run_folder(path: Path) -> bool:  # the store keeps shared files in "_..." / "." folders
        return path.is_dir() and not path.name.startswith(("_", "."))

    root = store.root
    paper_dirs = [root / paper] if paper else sorted(filter(is_run_folder, root.glob("*"))) if root.exists() else []
    now = datetime.now(timezone.utc).timestamp()
    rows = []
    for paper_dir in paper_dirs:
        for run_dir in sorted(filter(is_run_folder, paper_dir.glob("*"))):
            if not ((run_dir / "spec.json").exists() or (run_dir / "result.json").exists()):
                continue  # not a run (e.g. a folder of plots)
            spec, result, status, problem = _read_run(store, run_dir)
            if problem:
                problems.append(f"{run_dir}: {problem}")
            res = result or {}
            finished = res.get("finished_at")
            try:
                when = datetime.fromisoformat(finished).timestamp() if finished else None
            except (TypeError, ValueError):
                when = None
            # an unfinished or unreadable run is dated by its last write
            stamp = when if when is not None else max(f.stat().st_mtime for f in run_dir.glob("*.json"))
            rows.append({"run_id": run_dir.name, "paper": res.get("paper") or spec.get("paper") or paper_dir.name,
                         "entry": res.get("entry") or spec.get("entry"),
                         "dataset": res.get("dataset") or spec.get("dataset"),
                         "setting": res.get("setting") or spec.get("setting") or {},
                         "scale": res.get("scale") or spec.get("scale"),
                         "rehearsal": (res if result else spec).get("rehearsal") or {},
                         "seeds": res.get("seeds") if result else spec.get("seeds"),
                         "status": status, "finished": finished, "age_s": round(now - stamp, 1),
                         "age": _age(now - stamp), "_stamp": stamp})
    rows.sort(key=lambda r: r["_stamp"], reverse=True)
    for r in rows:
        del r["_stamp"]
    return rows


@app.command()
@handle_errors
def runs(paper: Optional[str] = typer.Argument(None, help="paper slug (all papers when left out)"),
         paper_opt: Optional[str] = typer.Option(None, "--paper", "-p", help="paper slug (same as the argument)"),
         entry: Optional[list[str]] = typer.Option(None, "--entry", "-e", help="only these entries (a,b or repeat)"),
         scale: Optional[list[str]] = typer.Option(None, "--scale", help="only these scales: smoke, small, paper"),
         status: Optional[list[str]] = typer.Option(None, "--status",
                                                    help="only these: " + ", ".join(RUN_STATUSES)),
         fmt: Fmt = _format_option(), as_json: bool = _json_option()) -> None:
    """The recorded runs, newest first: id, entry, dataset, scale, seeds, status, when finished. Age is since
    finishing (since the last write for a run without a result). "running": no result yet and its writer is
    alive; "unfinished": no result and no live writer (resume it with bench reproduce).

    A rehearsal (--max-steps/--max-samples) shows its scale as "small, rehearsal".

    JSON: a list of {run_id, paper, entry, dataset, setting (object), scale, rehearsal (its caps, e.g.
    {"max_steps": 20}; {} for a real run), seeds (integers), status (complete | partial | failed | running |
    unfinished | unreadable), finished (ISO 8601 or null), age_s (number), age}."""
    fmt = _output_format(fmt, as_json)
    slug = _one_paper(paper, paper_opt, required=False)
    entries, scales = _entries(slug, entry), _scales(scale)
    statuses = [resolve_name("status", s, RUN_STATUSES) for s in _split_list(status) or []]
    store = _store()
    problems: list[str] = []
    rows = [r for r in _run_rows(store, slug, problems)
            if (not entries or r["entry"] in entries) and (not scales or r["scale"] in scales)
            and (not statuses or r["status"] in statuses)]
    _report_problems(problems)
    from bench.store import scale_badge

    shown = [{**r, "badge": scale_badge(r)} for r in rows]  # "small, rehearsal" for a rehearsal
    columns = [("run_id", "id"), ("paper", "paper"), ("entry", "entry"), ("dataset", "dataset"),
               ("setting", "setting"), ("badge", "scale"), ("seeds", "seeds"), ("status", "status"),
               ("finished", "finished"), ("age", "age")]
    if not any(r["setting"] for r in rows):
        columns.remove(("setting", "setting"))
    if fmt == Fmt.rich and not rows:
        console.print(f"no runs{' of ' + slug if slug else ''} in {store.root}"
                      f"{' matching the filters' if entries or scales or statuses else ''}",
                      markup=False, highlight=False, soft_wrap=True)
        return
    emit_rows(shown, columns, fmt, title=f"runs in {store.root}", json_obj=rows,
              styles={"status": {"complete": "green", "partial": "yellow", "failed": "red", "unreadable": "red",
                                 "running": "cyan", "unfinished": "dim"}})


@app.command()
@handle_errors
def diff(run_a: str = typer.Argument(..., help="run id (or a unique prefix)"),
         run_b: str = typer.Argument(..., help="run id (or a unique prefix)"),
         fmt: Fmt = _format_option(), as_json: bool = _json_option()) -> None:
    """Explain a delta between two runs: metrics, spec, library versions, hardware, seeds, dataset fingerprint.

    JSON: {a: {run_id, status}, b: {...}, metrics: [{metric, setting (object), a, b, delta (numbers; null where a
    run lacks the metric)}], notes: [text], spec | code | libraries | hardware | seeds | data: [{key, a, b}]}."""
    from bench.rundiff import SECTIONS, explain

    fmt = _output_format(fmt, as_json)
    store = _store()
    report = explain(_find_run(store, run_a), _find_run(store, run_b))
    if fmt == Fmt.json:
        print_json(report)
        return
    title = f"A = {report['a']['run_id']} ({report['a']['status']}), B = {report['b']['run_id']} " \
            f"({report['b']['status']})"
    metric_cols = [("metric", "metric"), ("setting", "setting"), ("a", "A"), ("b", "B"), ("delta", "Δ (B - A)")]
    if fmt in (Fmt.csv, Fmt.latex):  # one table: metrics first, then every other section's changes
        rows = [{"section": "metrics", "key": m["metric"], **m} for m in report["metrics"]]
        rows += [{"section": sec, **item} for sec in SECTIONS for item in report[sec]]
        columns = [("section", "section"), ("key", "key"), ("setting", "setting"), ("a", "A"), ("b", "B"),
                   ("delta", "Δ (B - A)")]
        sys.stdout.write(render_rows(rows, columns, fmt, title=title, notes=report["notes"]))
        return
    # a signed Δ reads better for people; JSON and CSV keep the number
    report["metrics"] = [{**m, "delta": None if m["delta"] is None else f"{m['delta']:+.6g}"}
                         for m in report["metrics"]]
    if fmt == Fmt.md:
        out = [f"## diff: {title}", ""]
        for sec in ("metrics", *SECTIONS):
            items = report[sec]
            out.append(f"### {sec}")
            out += [f"- {n}" for n in report["notes"]] if sec == "metrics" else []
            if items:
                cols = metric_cols if sec == "metrics" else [("key", "key"), ("a", "A"), ("b", "B")]
                out.append(render_rows(items, cols, fmt).rstrip("\n"))
            elif not (sec == "metrics" and report["notes"]):
                out.append("(same)")
            out.append("")
        sys.stdout.write("\n".join(out))
        return
    console.print(title, markup=False, highlight=False, soft_wrap=True)
    for sec in ("metrics", *SECTIONS):
        items = report[sec]
        notes = report["notes"] if sec == "metrics" else []
        if notes:
            for n in notes:
                console.print(f"{sec}: {n}", markup=False, highlight=False, soft_wrap=True, style="bold")
        else:
            console.print(sec + ("" if items else ": (same)"), markup=False, highlight=False, style="bold")
        if items:
            emit_rows(items, metric_cols if sec == "metrics" else [("key", "key"), ("a", "A"), ("b", "B")], fmt)


@app.command()
@handle_errors
def check(update: bool = typer.Option(False, "--update", help="merge the newest runs into results/reference and "
                                                            "print the diff (old -> new per metric)"),
          prune: bool = typer.Option(False, "--prune", help="with --update: drop reference entries and metrics "
                                                            "that no run reports any more"),
          allow_stale: bool = typer.Option(False, "--allow-stale", help="do not fail on stale results (spec "
                                                                        "changed since the reference)"),
          papers_arg: Optional[list[str]] = typer.Argument(None, metavar="[PAPER]...",
                                                           help="only these papers (all when left out)"),
          paper: Optional[list[str]] = typer.Option(None, "--paper", "-p", help="same as the arguments "
                                                                                "(a,b or repeat)"),
          reference_dir: Optional[Path] = typer.Option(None, "--reference-dir",
                                                       help="reference folder (default results/reference)"),
          fmt: Fmt = _format_option(), as_json: bool = _json_option(),
          summary: Optional[Path] = typer.Option(None, help="also write the Markdown summary to this file")) -> None:
    """CI gate: newest runs vs results/reference. Exit 1 on regressed, missing or stale (see README); exit 2 on an
    unreadable reference or run record."""
    from bench import check as check_mod

    fmt = _output_format(fmt, as_json)
    paper = _some_papers(papers_arg, paper)
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
        check_mod.write_summary(summary, findings, allow_stale)
    if fmt == Fmt.json:
        from bench.store import parse_setting_key

        print_json([{**f.as_dict(), "setting": parse_setting_key(f.setting)} for f in findings])
    elif fmt == Fmt.md:
        sys.stdout.write(check_mod.markdown(findings, allow_stale))
    elif fmt == Fmt.csv:
        sys.stdout.write(check_mod.csv_text(findings))
    elif fmt == Fmt.latex:
        columns = [(k, k) for k in ("paper", "entry", "dataset", "metric", "setting", "outcome", "reference",
                                    "current", "detail")]
        sys.stdout.write(render_rows([f.as_dict() for f in findings], columns, fmt, title="bench check",
                                     notes=[check_mod.summary_line(findings, allow_stale)]))
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
def assets(paper: Optional[str] = typer.Argument(None, help="only what this paper uses (all when left out)"),
           paper_opt: Optional[str] = typer.Option(None, "--paper", "-p", help="same as the argument"),
           missing: bool = typer.Option(False, "--missing", help="only what is not usable: missing, bad, partial"),
           data_root: Optional[Path] = typer.Option(None, help="check the datasets' files under this root"),
           count: bool = typer.Option(False, help="count every split's items against the cards (slow)"),
           verify: bool = typer.Option(False, help="hash the archives against the cards' checksums (slow)"),
           fmt: Fmt = _format_option(), as_json: bool = _json_option()) -> None:
    """Every external file (weights, reference statistics) and dataset: found? sha256 ok? how to get it."""
    from bench import assets as assets_mod

    fmt = _output_format(fmt, as_json)
    slug = _one_paper(paper, paper_opt, required=False)
    rows = assets_mod.inventory(slug, data_root, missing_only=missing, count_items=count, verify_checksums=verify)
    columns = [("name", "name"), ("kind", "kind"), ("state", "state"), ("file", "file"),
               ("detail", "how to get it / why")]
    scope = f" used by {slug}" if slug else ""
    no_root = data_root is None and not os.environ.get("BENCH_DATA_ROOT")
    notes = ["no data root given (--data-root or BENCH_DATA_ROOT): real datasets show as missing"] \
        if no_root and any(r["kind"] == "dataset" and r["state"] == "missing" for r in rows) else []
    emit_rows(rows, columns, fmt, title=f"assets{scope} (BENCH_ASSETS={assets_mod.assets_dir()})", notes=notes,
              styles={"state": {"found": "green", "embedded": "green", "missing": "red", "bad": "red",
                                "partial": "yellow"}})


@app.command()
@handle_errors
def profile(paper: Optional[str] = typer.Argument(None, help="paper slug"),
            paper_opt: Optional[str] = typer.Option(None, "--paper", "-p", help="paper slug (same as the argument)"),
            scale: str = typer.Option("smoke", help="which configs: smoke (tiny) or paper (official shapes)"),
            device: str = typer.Option("auto", help="auto (CPU at smoke; CUDA at small and paper when there is a "
                                                    "GPU) | cpu | cuda[:N]"),
            repeats: int = typer.Option(20, help="timed repeats after warm-up"),
            latency: Optional[bool] = typer.Option(None, "--latency/--no-latency",
                                                   help="time the forward (default: on CUDA always, on CPU only "
                                                        "at smoke scale)"),
            threads: Optional[int] = typer.Option(None, help="CPU threads for torch (default: torch's own)"),
            entry: Optional[list[str]] = typer.Option(None, "--entry", "-e", help="only these entries (a,b or repeat)"),
            fmt: Fmt = _format_option(), as_json: bool = _json_option()) -> None:
    """Params, MACs, latency (CUDA events on GPU) and NFE of every entry of a paper. Progress and warnings go
    to stderr, so --format json/csv output stays clean."""
    import inspect

    from bench import profile as profile_mod

    paper = _one_paper(paper, paper_opt)
    wanted = _entries(paper, entry)
    fmt = _output_format(fmt, as_json)
    scales = _scales(scale) or []
    if len(scales) != 1:
        raise BenchError(f"--scale takes one scale (smoke, small or paper), not {scale!r}")
    scale = scales[0]
    if threads is not None and threads < 1:
        raise BenchError(f"--threads must be at least 1 (got {threads})")
    from bench.recipe import torch_threads

    with torch_threads(threads):
        # bad --repeats / --device: one line before any model is built
        from bench.runner import resolve_device

        plan = profile_mod.latency_plan(scale, resolve_device(device, scale), repeats, latency)
        recipe = papers.recipe(paper)
        if not hasattr(recipe, "profile"):
            raise BenchError(f"the {paper} recipe has no profile yet")
        # a recipe that can profile some entries builds only those; the others profile all and are filtered
        only = {"entries": wanted} if wanted and "entries" in inspect.signature(recipe.profile).parameters else {}
        rows = recipe.profile(scale=scale, device=plan.device, repeats=repeats, measure_latency=latency,
                              progress=profile_mod.ProfileProgress(), **only)
    if wanted:
        profiled = list(dict.fromkeys(str(r.get("entry")) for r in rows))
        rows = [r for r in rows if r.get("entry") in wanted]
        if not rows:
            raise BenchError(f"{paper} profiles no entry among {', '.join(wanted)} at {scale} scale; it profiles: "
                             f"{', '.join(profiled)}")
    title = (f"profile of {paper} ({scale}, {plan.device}, {plan.threads} thread(s); latency: "
             + (f"{plan.warmup} warm-up + {plan.repeats} timed calls, median and IQR in ms)" if plan.measure
                else "not measured)"))
    if fmt in (Fmt.json, Fmt.csv):  # every field, numbers as numbers (latency_note says why one is missing)
        emit_rows(rows, [(c, c) for c in profile_mod.columns(rows, readable=False)], fmt, title)
    else:
        emit_rows(profile_mod.readable_rows(rows), [(c, c) for c in profile_mod.columns(rows)], fmt, title)


@app.command()
@handle_errors
def plot(paper: Optional[str] = typer.Argument(None, help="paper slug"),
         paper_opt: Optional[str] = typer.Option(None, "--paper", "-p", help="paper slug (same as the argument)"),
         out_dir: Optional[Path] = typer.Option(None, "--out-dir",
                                                help="where to write the PNGs (default: <results root>/PAPER/plots, "
                                                     "the results root being BENCH_RESULTS or results/runs)"),
         as_json: bool = typer.Option(False, "--json", help='print {"paper", "figures": [{"path", "family", '
                                                            '"claims", "kind"}]}')) -> None:
    """PNG figures, one per claim family (quality vs cost, paper and ours) plus quality-vs-NFE curves."""
    from bench.plot import plot_figures

    paper = _one_paper(paper, paper_opt)
    figures = plot_figures(paper, _store(), out_dir)
    if as_json:
        print_json({"paper": paper, "figures": [{"path": str(f.path), "family": f.family, "claims": f.claims,
                                                 "kind": f.kind} for f in figures]})
        return
    if not figures:
        err_console.print(f"no figures for {paper}: its card has no claims and there is no quality-vs-NFE data",
                          markup=False, highlight=False)
    for figure in figures:
        sys.stdout.write(f"{figure.path}\n")


@app.command()
@handle_errors
def score(dialect: str = typer.Argument(..., help="metric dialect, e.g. psnr_y@matlab (see bench/metrics/manifest.py)"),
          pred: Path = typer.Option(..., "--pred", help="image file/folder (or COCO detections JSON)"),
          ref: Optional[Path] = typer.Option(None, "--ref", help="reference image file/folder (or COCO GT JSON)"),
          crop: int = typer.Option(0, "--crop", help="border crop in pixels (= SR scale for psnr_y@matlab)"),
          fmt: Fmt = _format_option(), as_json: bool = _json_option()) -> None:
    """Score your own outputs with one metric dialect (images matched by file stem)."""
    fmt = _output_format(fmt, as_json)
    dialect = papers.registries()["metrics"].get(dialect).name  # case-insensitive, close matches when unknown
    for path in (pred, ref):
        if path is not None and not path.exists():
            raise BenchError(f"no such file or folder: {path}")
    from bench.metrics.score import score_files

    result = score_files(dialect, pred, ref, crop_border=crop)
    if fmt == Fmt.json:
        print_json(result.to_dict())
        return
    protocol = [f"{key}: {_cell(value)}" for key, value in sorted(result.protocol.items())]
    if fmt == Fmt.rich:
        console.print(f"{dialect}: {result.value:.6g} over {result.n} items", markup=False, highlight=False)
        for line in protocol:
            console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        return
    row = {"metric": result.name, "value": result.value, "n": result.n}
    emit_rows([row], [("metric", "metric"), ("value", "value"), ("n", "n")], fmt,
              notes=[] if fmt == Fmt.csv else protocol)


@app.command()
@handle_errors
def evaluate(paper: Optional[str] = typer.Argument(None, help="paper slug, e.g. u-dit"),
             paper_opt: Optional[str] = typer.Option(None, "--paper", "-p", help="paper slug (same as the argument)"),
             entry: str = typer.Option(..., "--entry", "-e", help="the card entry the checkpoint is, e.g. u-dit-b"),
             checkpoint: Path = typer.Option(..., "--checkpoint", "-c",
                                             help="the released file (or folder), untouched, in its official layout"),
             data_root: Optional[Path] = typer.Option(None, help="root folder of the real datasets"),
             dataset: Optional[str] = typer.Option(None, help="the test set, where the protocol has several "
                                                              "(e.g. urban100); default: the paper's main one"),
             scale: str = typer.Option("paper", help="paper (the paper's protocol) | small (a cheaper protocol, "
                                                     "recorded with its own setting: no Δ beside the paper)"),
             seeds: Optional[list[str]] = typer.Option(None, help="sampling seeds, e.g. 0,1,2 (default 0)"),
             max_samples: Optional[int] = typer.Option(None, "--max-samples",
                                                       help="a rehearsal: cap evaluated/generated items at M "
                                                            "(recorded; never mixes with a real run)"),
             device: str = typer.Option("auto", help="auto (CUDA when available) | cpu | cuda[:N]"),
             force: bool = typer.Option(False, help="recompute even if a complete run exists"),
             dry_run: bool = typer.Option(False, "--dry-run", help="print the layout expected and the run spec, "
                                                                    "and stop (the file need not exist yet)"),
             fmt: Fmt = _format_option(), as_json: bool = _json_option()) -> None:
    """Evaluate an official released checkpoint with the paper's protocol and record it as a run, so that
    `bench table PAPER --all` shows our number beside the paper's (same dialect, with Δ)."""
    from bench import evaluate as evaluate_mod

    slug = _one_paper(paper, paper_opt)
    fmt = _output_format(fmt, as_json)
    entry_id = (_entries(slug, [entry]) or [entry])[0]
    scale_name = (_scales(scale) or ["paper"])[0]
    if max_samples is not None and max_samples < 1:
        raise BenchError("--max-samples must be >= 1")
    if dry_run:  # the run id depends on the file's sha256: named only once the file is there
        import dataclasses

        layout = evaluate_mod.layout_for(slug, entry_id)
        sha = evaluate_mod.sha256_file(checkpoint) if checkpoint.is_file() else "0" * 64
        spec = evaluate_mod.build_spec(slug, entry_id, checkpoint, scale=scale_name, seeds=_parse_seeds(seeds),
                                       max_samples=max_samples, sha=sha, dataset=dataset)
        print_json({"layout": dataclasses.asdict(layout), "checkpoint_found": checkpoint.exists(),
                    "run_id": spec.run_id() if checkpoint.is_file() else None, "spec": spec.model_dump(mode="json")})
        return
    chosen = evaluate_mod.resolve_device(device, scale_name)
    quiet = fmt != Fmt.rich
    say = (lambda m: None) if quiet else (lambda m: console.print(m, markup=False, highlight=False, soft_wrap=True))
    result = evaluate_mod.run(slug, entry_id, checkpoint, scale=scale_name, data_root=data_root,
                              seeds=_parse_seeds(seeds), max_samples=max_samples, device=chosen, store=_store(),
                              force=force, log=say, dataset=dataset)
    rows = evaluate_mod.beside_paper(slug, result, _store())
    if fmt == Fmt.json:
        print_json({"run": result, "beside_paper": rows})
        return
    columns = [("metric", "metric"), ("setting", "setting"), ("ours", "ours"), ("paper_metric", "paper dialect"),
               ("paper", "paper"), ("delta", "Δ")]
    # parentheses, not brackets: rich would read "[paper]" in a table title as markup and drop it
    emit_rows(rows, columns, fmt, title=f"{slug} {entry_id}: released checkpoint {checkpoint.name} "
                                         f"({result['scale']} protocol{', rehearsal' if max_samples else ''}), "
                                         f"run {result['run_id']}",
              notes=[] if fmt == Fmt.csv else [f"recorded under {_store().root / slug}; bench table {slug} --all "
                                               f"shows it beside every reported number"])


@app.command()
@handle_errors
def report(paper: Optional[str] = typer.Argument(None, help="paper slug, e.g. u-dit"),
           paper_opt: Optional[str] = typer.Option(None, "--paper", "-p", help="paper slug (same as the argument)"),
           out: Optional[Path] = typer.Option(None, "--out", "-o",
                                              help="folder for report.html, report.md and plots/ "
                                                   "(default: <results root>/<paper>/report)"),
           shot: bool = typer.Option(False, "--screenshot", help="also render report.png with headless Chromium"),
           as_json: bool = typer.Option(False, "--json", help="print the written paths as JSON")) -> None:
    """A self-contained HTML page and its Markdown twin (headline, claims with evidence, plots, runs and
    provenance) to attach to an issue or a PR."""
    from bench import report as report_mod

    slug = _one_paper(paper, paper_opt)
    problems: list[str] = []
    files = report_mod.write_report(slug, _store(), out, problems)
    _report_problems(problems)
    written = report_mod.as_dict(files)
    if shot:
        written["screenshot"] = str(report_mod.screenshot(files.html, files.html.with_name("report.png")))
    if as_json:
        print_json(written)
        return
    for key in ("html", "markdown", "screenshot"):
        if key in written:
            console.print(f"wrote {written[key]}", markup=False, highlight=False, soft_wrap=True)


def main() -> None:  # pragma: no cover - console-script entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
