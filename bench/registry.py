"""One small typed registry, five instances (papers, methods, baselines, datasets, metrics).

Entries are listed explicitly in manifests and their targets are lazy ``"module:attr"`` strings, so that
listing never imports torch. Unknown names answer with close matches and the full list.
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any, Generic, Iterator, TypeVar

T = TypeVar("T")


class BenchError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits with ``exit_code``."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UnknownName(BenchError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


def close_matches(name: str, known: list[str], n: int = 3) -> list[str]:
    """Known names close to `name`, compared without case ("UDiT" is close to "u-dit")."""
    by_folded: dict[str, str] = {}
    for k in known:
        by_folded.setdefault(k.casefold(), k)
    return [by_folded[c] for c in difflib.get_close_matches(name.casefold(), list(by_folded), n=n, cutoff=0.5)]


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    close = close_matches(name, known)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {kind} {name!r}.{hint} Known: {', '.join(sorted(known))}"


def resolve_name(kind: str, name: str, known: list[str] | tuple[str, ...]) -> str:
    """The known spelling of `name`, matched without case (`U-DiT` -> `u-dit`); an exact match wins, so two names
    that differ only in case stay distinct. Unknown -> UnknownName with close matches."""
    if name in known:
        return name
    folded = [k for k in known if k.casefold() == name.casefold()]
    if len(folded) == 1:
        return folded[0]
    if folded:
        raise UnknownName(f"{kind} {name!r} is ambiguous without case: {', '.join(folded)}")
    raise UnknownName(unknown_name_message(kind, name, list(known)))


def load_target(target: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute."""
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Entry:
    """A registered name: a lazy target plus plain metadata (no imports needed to list it)."""

    name: str
    target: str | None
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        if self.target is None:
            raise BenchError(f"{self.name!r} is registered but not implemented yet")
        return load_target(self.target)


@dataclass
class Registry(Generic[T]):
    kind: str
    _entries: dict[str, Entry] = field(default_factory=dict)

    def register(self, name: str, target: str | None = None, **meta: Any) -> Entry:
        if name in self._entries:
            raise ValueError(f"duplicate {self.kind} {name!r}")
        entry = Entry(name, target, dict(meta))
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries[k] for k in sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> Entry:
        """The entry named `name`, matched without case (`bench claims U-DiT` finds u-dit)."""
        entry = self._entries.get(name)
        if entry is not None:
            return entry
        return self._entries[resolve_name(self.kind, name, self.names())]

    def load(self, name: str) -> Any:
        return self.get(name).load()
