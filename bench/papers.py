"""The five registry instances, filled from the explicit manifests, and paper-card access."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from bench.registry import BenchError, Registry

REPO_ROOT = Path(__file__).resolve().parent.parent
METHODS_DIR = REPO_ROOT / "methods"
DATASET_CARDS_DIR = REPO_ROOT / "datasets"


@lru_cache(maxsize=None)
def registries() -> dict[str, Registry[Any]]:
    from baselines.manifest import BASELINES
    from bench.metrics.manifest import DIALECTS
    from methods.manifest import METHODS, PAPERS

    papers: Registry[Any] = Registry("paper")
    for slug, info in PAPERS.items():
        papers.register(slug, info["recipe"], package=info["package"])
    methods: Registry[Any] = Registry("method")
    for name, info in METHODS.items():
        methods.register(name, info["target"], **{k: v for k, v in info.items() if k != "target"})
    baselines: Registry[Any] = Registry("baseline")
    for name, info in BASELINES.items():
        baselines.register(name, info["target"], **{k: v for k, v in info.items() if k != "target"})
    metrics: Registry[Any] = Registry("metric")
    for name, info in DIALECTS.items():
        metrics.register(name, info.get("target"), **{k: v for k, v in info.items() if k != "target"})
    datasets: Registry[Any] = Registry("dataset")
    for path in sorted(DATASET_CARDS_DIR.glob("*.yaml")):
        datasets.register(path.stem, None, card=str(path))
    return {"papers": papers, "methods": methods, "baselines": baselines, "metrics": metrics, "datasets": datasets}


def paper_card_path(slug: str) -> Path:
    entry = registries()["papers"].get(slug)
    if "card" in entry.meta:  # an explicit card path (used for papers registered by tests)
        return Path(entry.meta["card"])
    return METHODS_DIR / entry.meta["package"] / "paper.yaml"


@lru_cache(maxsize=None)
def card(slug: str):
    from bench.cards import load_card

    slug = registries()["papers"].get(slug).name  # `card("U-DiT")` is u-dit's card, as on the command line
    path = paper_card_path(slug)
    loaded = load_card(path)
    if loaded.slug != slug:
        raise BenchError(f"malformed paper card {path}: field slug: {loaded.slug!r} should be {slug!r}")
    return loaded


def is_implemented(slug: str) -> bool:
    return registries()["papers"].get(slug).target is not None


def implemented_papers() -> list[str]:
    """The papers `bench list` shows as "implemented": those with a recipe."""
    return sorted(e.name for e in registries()["papers"] if e.target is not None)


def recipe(slug: str):
    entry = registries()["papers"].get(slug)
    if entry.target is None:
        raise BenchError(f"paper {slug!r} is not implemented yet: its card, reported numbers and claims are "
                         f"available (bench table --paper {slug}, bench claims {slug}), but there is no recipe "
                         f"to reproduce it")
    return entry.load()


def cross_reference_errors(slug: str) -> list[str]:
    """Names a card uses that no registry knows: entries' impl, datasets, metrics."""
    regs = registries()
    c = card(slug)
    errors = []
    for e in c.entries:
        if e.impl is not None and e.impl not in regs["methods"] and e.impl not in regs["baselines"]:
            errors.append(f"{slug}: entry {e.id} impl {e.impl!r} is not a registered method or baseline")
    for d in c.datasets:
        if d not in regs["datasets"]:
            errors.append(f"{slug}: dataset {d!r} has no card in datasets/")
    for m in c.metrics:
        if m not in regs["metrics"]:
            errors.append(f"{slug}: metric {m!r} is not a registered dialect")
    return errors
