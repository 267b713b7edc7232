"""The Python API for notebooks: the same work as the CLI, returning data instead of printing it.

    import bench
    bench.reproduce("u-dit")                       # trains and evaluates at smoke scale, returns the run records
    bench.table("u-dit")                           # pandas DataFrame: method vs baseline, delta, cost, verdict
    [v.verdict for v in bench.claims("u-dit")]     # structured verdicts (pydantic; .as_dict() for JSON)
    bench.check(papers=["u-dit"])                  # regression findings against results/reference
    bench.score("psnr_y@matlab", "out/", "HR/", crop=4).value

`bench.table`, `bench.claims` and `bench.check` are also the modules that implement them: the package makes
those modules callable (see bench/__init__.py), so `bench.table("u-dit")` and `bench.table.build(...)` both work.
Paper names are matched without case, like on the command line; a bad name raises bench.registry.BenchError
with the same one-line message.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import papers


def _paper(name: str) -> str:
    return papers.registries()["papers"].get(name).name


def _store(store: Any = None) -> Any:
    from bench.store import Store

    if store is None or isinstance(store, Store):
        return store or Store()
    return Store(Path(store))  # a path to a run store


def reproduce(paper: str, scale: str = "smoke", entries: list[str] | None = None, seeds: list[int] | None = None,
              data_root: str | Path | None = None, resume: bool = True, force: bool = False, store: Any = None,
              log: Callable[[str], None] | None = None, device: str = "auto", max_steps: int | None = None,
              max_samples: int | None = None) -> list[dict[str, Any]]:
    """Run (or reuse) every planned run of a paper at a scale; returns their result records (as in result.json).
    `device` and the rehearsal caps mean what `bench reproduce --device/--max-steps/--max-samples` mean."""
    from bench import runner
    from bench.registry import BenchError
    from bench.spec import SCALES

    slug = _paper(paper)
    if scale not in SCALES:
        raise BenchError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    root = Path(data_root) if data_root else None
    specs = runner.plan(slug, scale, entries, seeds, root,
                        rehearsal=runner.rehearsal_caps(scale, max_steps, max_samples))
    runner.check_data(specs, root)
    st = _store(store)
    st.check_writable()
    quiet = log or (lambda message: None)
    on = runner.resolve_device(device, scale)
    return [runner.execute(spec, st, data_root=root, resume=resume, force=force, log=quiet, show_progress=False,
                           device=on).result for spec in specs]


def headline(paper: str, store: Any = None) -> Any:
    """The headline view object (bench.headline.Headline): rows, markdown(), html(), latex(), csv()."""
    from bench.headline import build_headline

    return build_headline(_paper(paper), _store(store))


def table(paper: str, all: bool = False, store: Any = None) -> Any:
    """A pandas DataFrame: the headline rows (one column per number), or with all=True every number the paper
    reports beside ours (columns paper, ours, spread, scale, delta, ...)."""
    if all:
        from bench.table import build

        return build(_paper(paper), _store(store))
    return headline(paper, store).to_frame()


def claims(paper: str, store: Any = None) -> list[Any]:
    """The verdicts of every claim of the paper (bench.claims.Verdict), on its numbers and on ours per scale."""
    from bench.claims import evaluate

    return evaluate(_paper(paper), _store(store))


def check(papers: list[str] | None = None, reference_dir: str | Path | None = None, allow_stale: bool = False,
          store: Any = None) -> list[Any]:
    """The regression findings (bench.check.Finding: outcome pass | regressed | improved | stale | missing | new)."""
    from bench.check import REFERENCE_DIR
    from bench.check import check as run_check

    return run_check(_store(store), Path(reference_dir) if reference_dir else REFERENCE_DIR,
                     papers=[_paper(p) for p in papers] if papers else None, allow_stale=allow_stale)


def score(dialect: str, pred: str | Path, ref: str | Path | None = None, crop: int = 0) -> Any:
    """Score your own outputs with one metric dialect (bench.metrics.base.MetricResult: value, n, per_item)."""
    from bench.metrics.score import score_files

    papers.registries()["metrics"].get(dialect)
    return score_files(dialect, Path(pred), Path(ref) if ref is not None else None, crop_border=crop)
