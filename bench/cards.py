"""Paper cards (methods/<pkg>/paper.yaml): schema, loading and cross-reference validation.

A card holds the paper's identity, the entries it compares, the datasets and metric dialects it uses, the
numbers the paper reports (each with its source and a provenance tag) and its claims in structured form.
Only numbers with a source go in; unknown cells stay absent.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bench.registry import BenchError

# Provenance tags of ../shared/papers: P paper text, F transcribed figure, R official repository,
# V verified by us, S third-party, M memory (must be checked), B blog/figure, I our inference.
Tag = Literal["P", "F", "R", "V", "S", "M", "B", "I"]
Setting = dict[str, str | int | float | bool]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(Strict):
    ref: str = Field(description="where in the source: 'Table 2', 'Fig. 4', 'README', 'abstract'")
    tag: Tag
    how: str = Field("", description="how the value was obtained, e.g. 'transcribed from figs/light.png'")


class CardEntry(Strict):
    id: str = Field(description="the entry's id inside this paper, e.g. 'lipt-small' or 'dit-xl-2'")
    role: Literal["method", "baseline"]
    impl: str | None = Field(None, description="registered method/baseline implementing it; null = reported only")
    args: dict[str, Any] = Field(default_factory=dict)
    label: str = ""
    not_run: str | None = Field(None, description=(
        "why bench does not run this entry, in one sentence a reader can check: no official code, reported only "
        "in another paper, superseded by another entry (name it), needs assets we cannot ship, or out of scope "
        "(say why). Required on a baseline with impl null in an implemented paper's card; a baseline that a "
        "recipe plans at some scale must not carry one (tests/core/test_cards_audit.py)"))

    @field_validator("not_run")
    @classmethod
    def _reason_not_blank(cls, reason: str | None) -> str | None:
        if reason is not None and not reason.strip():
            raise ValueError("not_run must say why the entry is not run (or be left out)")
        return reason


class ReportedCell(Strict):
    entry: str
    dataset: str
    metric: str
    value: float
    split: str = "test"
    setting: Setting = Field(default_factory=dict,
                             description="what else fixes the cell: sr_scale, nfe, cfg, iters, label_ratio, ...")
    source: Source
    note: str = ""


Relation = Literal["lt", "le", "gt", "ge"]


class Claim(Strict):
    id: str
    text: str
    lhs: str
    rhs: str
    metric: str
    dataset: str
    relation: Relation = Field(description="lhs <relation> rhs on the metric value, after the margin")
    margin: float = Field(0.0, description="lhs must beat rhs by at least this much, in metric units; a negative "
                                           "margin is a non-inferiority bound (\"within m of\"): lhs may trail rhs "
                                           "by at most |margin|")
    setting: Setting = Field(default_factory=dict)
    rhs_setting: Setting | None = Field(None, description="the rhs's own setting when it differs (e.g. other "
                                                          "training length); defaults to `setting`")
    # A cost condition on the same pair: {"metric": "gmacs", "ratio_max": 0.2} means lhs cost <= 0.2 x rhs cost.
    cost: dict[str, Any] | None = None
    source: Source


class PaperCard(Strict):
    slug: str
    title: str
    arxiv: str | None
    venue: str | None
    year: int
    code: str | None = Field(description="official code URL, null when there is none")
    family: Literal["diffusion", "restoration", "super-resolution", "detection", "forensics", "llm-distillation"]
    summary: str
    entries: list[CardEntry]
    datasets: list[str]
    metrics: list[str]
    reported: list[ReportedCell] = Field(default_factory=list)
    claims: list[Claim] = Field(default_factory=list)
    limits: list[str] = Field(default_factory=list, description="hard limits, printed as table footnotes")

    @field_validator("entries")
    @classmethod
    def _unique_entries(cls, entries: list[CardEntry]) -> list[CardEntry]:
        ids = [e.id for e in entries]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"duplicate entry ids: {sorted(dup)}")
        return entries

    @model_validator(mode="after")
    def _cells_use_declared_names(self) -> "PaperCard":
        ids = {e.id for e in self.entries}
        for i, cell in enumerate(self.reported):
            if cell.entry not in ids:
                raise ValueError(f"reported[{i}].entry {cell.entry!r} is not one of the card's entries")
            if cell.dataset not in self.datasets:
                raise ValueError(f"reported[{i}].dataset {cell.dataset!r} is not in the card's datasets")
            if cell.metric not in self.metrics:
                raise ValueError(f"reported[{i}].metric {cell.metric!r} is not in the card's metrics")
        for claim in self.claims:
            for side in (claim.lhs, claim.rhs):
                if side not in ids:
                    raise ValueError(f"claim {claim.id!r} names unknown entry {side!r}")
            if claim.metric not in self.metrics:
                raise ValueError(f"claim {claim.id!r} uses metric {claim.metric!r} not in the card's metrics")
        return self

    def entry(self, entry_id: str) -> CardEntry:
        for e in self.entries:
            if e.id == entry_id:
                return e
        from bench.registry import UnknownName, unknown_name_message

        raise UnknownName(unknown_name_message(f"entry of {self.slug}", entry_id, [e.id for e in self.entries]))


ModelT = TypeVar("ModelT", bound=BaseModel)


# libyaml's safe loader when PyYAML was built with it: the pure-Python one spent ~2 s of `bench list` on the ten
# cards (lipt's alone has 672 cells); both build the same data (tests/core/test_cards.py compares them).
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(text: str):
    return yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 - a safe loader


def load_yaml_model(path: Path, model: type[ModelT], kind: str) -> ModelT:
    """Read one YAML card and validate it; a bad file raises one BenchError line naming the file and field."""
    try:
        raw = read_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"{kind} not found: {path}") from None
    except yaml.YAMLError as exc:
        raise BenchError(f"malformed {kind} {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise BenchError(f"malformed {kind} {path}: top level must be a mapping")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "<root>"
        raise BenchError(f"malformed {kind} {path}: field {where}: {err['msg']}") from None


def known_datasets() -> list[str]:
    """The dataset names with a card in datasets/ (what the dataset registry lists), without importing it."""
    from bench.papers import DATASET_CARDS_DIR

    return sorted(p.stem for p in DATASET_CARDS_DIR.glob("*.yaml"))


def has_recipe(slug: str) -> bool:
    """Whether one of the ten papers (methods/manifest.py) has a recipe, i.e. `bench reproduce` runs it."""
    from methods.manifest import PAPERS

    return (PAPERS.get(slug) or {}).get("recipe") is not None


def baselines_without_reason(card: PaperCard) -> list[str]:
    """Baselines that nothing implements (impl null) and whose card does not say why bench does not run them."""
    return [e.id for e in card.entries if e.role == "baseline" and e.impl is None and not e.not_run]


def planned_entries(slug: str, scales: tuple[str, ...] = ("smoke", "small", "paper")) -> set[str]:
    """The entries the paper's recipe plans at any of ``scales`` (no data root: the plans read no data).

    A scale the recipe does not have (its plan raises BenchError, e.g. mgsr's "small") plans nothing."""
    from bench import papers

    card, recipe = papers.card(slug), papers.recipe(slug)
    planned: set[str] = set()
    for scale in scales:
        try:
            planned |= {spec.entry for spec in recipe.plan(card, scale, None)}
        except BenchError:
            continue
    return planned


def not_run_problems(card: PaperCard, planned: set[str]) -> list[str]:
    """One line per entry whose not_run disagrees with the recipe's plans: a baseline that runs at no scale and
    gives no reason, or an implemented entry that some scale runs but that claims not to run."""
    problems = []
    for e in card.entries:
        if e.role == "baseline" and e.id not in planned and not e.not_run:
            problems.append(f"{card.slug}: baseline {e.id!r} runs at no scale and has no not_run reason")
        if e.impl is not None and e.id in planned and e.not_run:
            problems.append(f"{card.slug}: entry {e.id!r} is run by the recipe but says not_run: {e.not_run!r}")
    return problems


def load_card(path: Path, require_not_run: bool | None = None) -> PaperCard:
    """Read and validate one paper.yaml; a bad file raises BenchError naming the file and the field.

    Every dataset it names must have a card in datasets/: a typo ("urban10") would otherwise only surface
    when a run needs the data, or never (a reported cell on an unknown dataset is silently unmatched).
    In an implemented paper's card (``require_not_run`` None: decided by has_recipe) every baseline with
    impl null must say in ``not_run`` why bench does not run it; a card-only paper runs nothing at all."""
    card = load_yaml_model(path, PaperCard, "paper card")
    if require_not_run is None:
        require_not_run = has_recipe(card.slug)
    missing = baselines_without_reason(card) if require_not_run else []
    if missing:
        raise BenchError(f"malformed paper card {path}: baseline {', '.join(map(repr, missing))} has impl null "
                         f"and no not_run (say why bench does not run it)")
    known = known_datasets()
    for name in card.datasets:
        if name not in known:
            from bench.registry import unknown_name_message

            raise BenchError(f"paper card {path}: {unknown_name_message('dataset', name, known)}")
    return card
