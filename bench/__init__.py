"""bench: a benchmark and reproduction harness for ten 2024 papers.

Importing this package stays light (no torch): `bench list` must answer instantly. The Python API (bench/api.py)
is loaded on first use: bench.reproduce, bench.table, bench.claims, bench.check, bench.score.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "check", "claims", "reproduce", "score", "table"]

# bench.table, bench.claims and bench.check are modules (the CLI's implementation) and, for notebooks, API
# functions. Python binds a package attribute to its submodule once that submodule is imported, so a plain
# function of the same name would be replaced; instead those modules are made callable and call the API.
_CALLABLE_MODULES = {"table", "claims", "check"}
_FUNCTIONS = {"reproduce", "score"}


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from bench import api

        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


def make_callable(module_name: str) -> None:
    """Called at the end of bench/table.py, claims.py and check.py."""
    sys.modules[module_name].__class__ = _CallableModule


def __getattr__(name: str) -> Any:
    if name in _CALLABLE_MODULES:
        return importlib.import_module(f"bench.{name}")  # the module makes itself callable when imported
    if name in _FUNCTIONS:
        from bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
