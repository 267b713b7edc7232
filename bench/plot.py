"""`bench plot`: quality-versus-cost trade-offs with Pareto fronts, from the card and our run records."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import papers
from bench.metrics.manifest import DIALECTS
from bench.store import Store

COST_AXES = ("gmacs", "params_m", "latency_ms", "nfe")


def pareto_front(points: list[tuple[float, float]], lower_is_better: bool) -> list[tuple[float, float]]:
    """Points not dominated by another with lower-or-equal cost and better-or-equal quality."""
    front = []
    best = None
    for x, y in sorted(points, key=lambda p: (p[0], p[1] if lower_is_better else -p[1])):
        if best is None or (y < best if lower_is_better else y > best):
            front.append((x, y))
            best = y
    return front


def _series(slug: str, store: Store) -> dict[tuple[str, str], dict[str, dict[str, float]]]:
    """{(source, dataset|setting): {entry: {metric: value}}} for the paper's cells and our runs."""
    from bench.store import setting_key

    series: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    card = papers.card(slug)
    costs: dict[str, dict[str, float]] = {}
    for cell in card.reported:
        if DIALECTS[cell.metric]["family"] == "cost":
            costs.setdefault(cell.entry, {})[cell.metric] = cell.value
    for cell in card.reported:
        if DIALECTS[cell.metric]["family"] == "cost":
            continue
        group = series.setdefault(("paper", f"{cell.dataset} {setting_key(cell.setting)}".strip()), {})
        group.setdefault(cell.entry, dict(costs.get(cell.entry, {})))[cell.metric] = cell.value
    for run in store.latest(slug):
        for m in run["metrics"]:
            group = series.setdefault((f"ours [{run['scale']}]", f"{run['dataset']} {setting_key(m.get('setting', {}))}"
                                       .strip()), {})
            values = group.setdefault(run["entry"], {k: v for k, v in run.get("cost", {}).items()
                                                     if k in COST_AXES and isinstance(v, (int, float))})
            values[m["metric"]] = m["value"]
    return series


def _nfe_curves(slug: str, store: Store) -> dict[tuple[str, str, str], dict[str, list[tuple[float, float]]]]:
    """{(source, dataset, metric): {curve label: [(nfe, value)]}}: quality against sampling steps, one curve per
    entry and solver, from the card and our runs (any setting carrying 'nfe')."""
    curves: dict[tuple[str, str, str], dict[str, list[tuple[float, float]]]] = {}

    def add(source, dataset, metric, entry, setting, value):
        if "nfe" not in setting or DIALECTS[metric]["family"] == "cost":
            return
        solver = setting.get("solver") or setting.get("sampler") or ""
        label = f"{entry} {solver}".strip()
        curves.setdefault((source, dataset, metric), {}).setdefault(label, []).append((float(setting["nfe"]), value))

    for cell in papers.card(slug).reported:
        add("paper", cell.dataset, cell.metric, cell.entry, cell.setting, cell.value)
    for run in store.latest(slug):
        for m in run["metrics"]:
            add(f"ours [{run['scale']}]", run["dataset"], m["metric"], run["entry"], m.get("setting", {}), m["value"])
    return curves


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in name)


def plot_nfe_curves(slug: str, store: Store, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for (source, dataset, metric), lines in sorted(_nfe_curves(slug, store).items()):
        if sum(len(points) for points in lines.values()) < 2:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, points in sorted(lines.items()):
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=label)
        ax.set_xscale("log")
        ax.set_xlabel("NFE (network evaluations per sample)")
        ax.set_ylabel(f"{metric} ({DIALECTS[metric]['direction']} is better)")
        ax.set_title(f"{slug}: {source}, {dataset}", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"{_safe_name(f'{slug}-{source.split()[0]}-{dataset}-{metric}-vs-nfe')}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def plot_paper(slug: str, store: Store, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for (source, group_name), entries in sorted(_series(slug, store).items()):
        metrics = sorted({m for vals in entries.values() for m in vals if DIALECTS[m]["family"] != "cost"})
        for metric in metrics:
            for cost in COST_AXES:
                pts: list[tuple[float, float, str]] = [(v[cost], v[metric], e) for e, v in entries.items()
                                                       if cost in v and metric in v]
                if len(pts) < 2:
                    continue
                lower = DIALECTS[metric]["direction"] == "lower"
                fig, ax = plt.subplots(figsize=(6, 4))
                ax.scatter([p[0] for p in pts], [p[1] for p in pts])
                for x, y, label in pts:
                    ax.annotate(label, (x, y), fontsize=7)
                front = pareto_front([(p[0], p[1]) for p in pts], lower)
                ax.plot([p[0] for p in front], [p[1] for p in front], "--", label="Pareto front")
                ax.set_xlabel(f"{cost} ({DIALECTS[cost]['unit']})")
                ax.set_ylabel(f"{metric} ({'lower' if lower else 'higher'} is better)")
                ax.set_title(f"{slug}: {source}, {group_name}", fontsize=9)
                ax.legend(fontsize=7)
                path = out_dir / f"{_safe_name(f'{slug}-{source.split()[0]}-{group_name}-{metric}-vs-{cost}')}.png"
                fig.tight_layout()
                fig.savefig(path, dpi=110)
                plt.close(fig)
                written.append(path)
    return written + plot_nfe_curves(slug, store, out_dir)
