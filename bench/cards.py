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
    margin: float = Field(0.0, ge=0.0, description="lhs must beat rhs by at least this much, in metric units")
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


def load_card(path: Path) -> PaperCard:
    """Read and validate one paper.yaml; a bad file raises BenchError naming the file and the field.

    Every dataset it names must have a card in datasets/: a typo ("urban10") would otherwise only surface
    when a run needs the data, or never (a reported cell on an unknown dataset is silently unmatched)."""
    card = load_yaml_model(path, PaperCard, "paper card")
    known = known_datasets()
    for name in card.datasets:
        if name not in known:
            from bench.registry import unknown_name_message

            raise BenchError(f"paper card {path}: {unknown_name_message('dataset', name, known)}")
    return card
