"""instruct-docs: an embedded instruction set of real English, built from the docstrings of Python's standard
library (no download, no generated text).

Each item asks what a standard-library function does and is answered by the first sentence of its docstring,
in Dolly's fields (instruction, context, response, category):

* no Input block: "What does `json.dumps` do?" -> "Serialize ``obj`` to a JSON formatted ``str``."
* with an Input block (about a third of the items, chosen by a hash of the name, so both of the Alpaca
  templates the MGSR protocol uses are exercised): "Explain in one sentence what the Python function in the
  input does." + "json.dumps(obj, *, skipkeys=False, ...)".

Held-out splits are by module: every function of a module lands in the same split, so the test questions are
about modules the model never saw in training (as Dolly's evaluation prompts are unseen ones). Modules are
ordered by a sha256 of their name and dealt to test, then valid, until each holds enough items; the rest
are train. Everything is deterministic for one Python version; the docstrings change between Python
releases, so `fingerprint()` (a sha256 of the records) and the Python version go into every run record.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import re
import sys
import warnings
from functools import lru_cache
from typing import Any

from bench.registry import BenchError

# Pure-Python or C standard-library modules that import without side effects on every platform CPython
# supports (no GUI, no network at import, no deprecation warnings in 3.11-3.13). Fixed and sorted: the set
# must not depend on what else is installed.
MODULES: tuple[str, ...] = (
    "abc", "argparse", "array", "ast", "base64", "binascii", "bisect", "builtins", "bz2", "calendar", "cmath", "codecs",
    "collections", "colorsys", "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime",
    "decimal", "difflib", "dis", "email.utils", "enum", "filecmp", "fnmatch", "fractions", "functools",
    "gc", "getopt", "gettext", "glob", "gzip", "hashlib", "heapq", "hmac", "html", "http.cookies", "importlib",
    "inspect", "io", "ipaddress", "itertools", "json", "keyword", "linecache", "locale", "logging", "lzma",
    "math", "mimetypes", "numbers", "operator", "os", "os.path", "pathlib", "pickle", "pkgutil", "platform",
    "plistlib", "pprint", "queue", "quopri", "random", "re", "reprlib", "sched", "secrets", "shlex", "shutil",
    "signal", "statistics", "string", "struct", "sysconfig", "tarfile", "tempfile", "textwrap", "threading",
    "time", "timeit", "tokenize", "traceback", "types", "typing", "unicodedata", "urllib.parse", "uuid",
    "warnings", "weakref", "xml.sax.saxutils", "zipfile", "zlib",
)
SPLIT_SIZES = {"test": 96, "valid": 64}   # exact sizes of the held-out splits; train takes every other module
SPLITS = ("train", "valid", "test")
INPUT_SHARE = 1 / 3                          # share of items phrased with an Input block (the second template)
MAX_WORDS = 40                               # longer first sentences are skipped (few; keeps answers short)
MIN_WORDS = 3

_SIGNATURE = re.compile(r"^[\w.]+\(.*\)(\s*-+>.*)?$")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "approx.")


def _sha(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def first_sentence(doc: str) -> str | None:
    """The first sentence of a docstring's first prose paragraph, whitespace collapsed.

    A first paragraph that is a signature line (C functions' ``name(args) -> result``) is skipped. The
    sentence ends at the first '.', '!' or '?' followed by a space or the end, unless the dot ends a common
    abbreviation (e.g., i.e.). Returns None when nothing usable is left.
    """
    lines = inspect.cleandoc(doc).splitlines()
    while lines and (not lines[0].strip() or _SIGNATURE.match(lines[0].strip())):
        lines.pop(0)  # C functions start with signature lines such as "log(x, [base=math.e])"
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", "\n".join(lines)) if p.strip()]
    for para in paragraphs[:1]:
        end = len(para)
        for match in re.finditer(r"[.!?](?=\s|$)", para):
            head = para[: match.end()]
            if not any(head.lower().endswith(a) for a in _ABBREVIATIONS):
                end = match.end()
                break
        sentence = para[:end].strip()
        words = len(sentence.split())
        if not sentence[:1].isalpha() or not MIN_WORDS <= words <= MAX_WORDS:
            return None
        return sentence
    return None


def _signature(name: str, obj: Any) -> str:
    try:
        text = f"{name}{inspect.signature(obj)}"
    except (TypeError, ValueError):  # some C functions carry no signature
        return f"{name}(...)"
    # default values such as <function copy2 at 0x7f...> carry memory addresses: drop them (determinism)
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


def _defined_here(obj: Any, module: Any, module_name: str) -> bool:
    """Defined by this module (or its C accelerator, e.g. _json for json), not re-exported from another."""
    home = getattr(obj, "__module__", None) or ""
    return home == module_name or home.lstrip("_") == module.__name__.lstrip("_")


def _public_members(module: Any, module_name: str) -> list[tuple[str, Any]]:
    """(qualified name, object) of the module's public functions, classes and the classes' own methods."""
    out = []
    for attr in sorted(vars(module)):
        obj = getattr(module, attr)
        if attr.startswith("_") or not _defined_here(obj, module, module_name):
            continue
        if inspect.isfunction(obj) or inspect.isbuiltin(obj):
            out.append((f"{module_name}.{attr}", obj))
        elif inspect.isclass(obj) and not issubclass(obj, BaseException):
            out.append((f"{module_name}.{attr}", obj))
            for meth in sorted(vars(obj)):  # methods the class defines itself, not inherited ones
                member = vars(obj)[meth]
                if meth.startswith("_") or not (inspect.isfunction(member) or inspect.ismethoddescriptor(member)
                                               or isinstance(member, (classmethod, staticmethod))):
                    continue
                out.append((f"{module_name}.{attr}.{meth}", getattr(obj, meth)))
    return out


def _module_items(module_name: str) -> list[dict[str, str]]:
    with warnings.catch_warnings():  # importing/inspecting deprecated names (typing.io ...) warns
        warnings.simplefilter("ignore")
        return _collect(module_name)


def _collect(module_name: str) -> list[dict[str, str]]:
    module = importlib.import_module(module_name)
    items = []
    for qualified, obj in _public_members(module, module_name):
        doc = inspect.getdoc(obj)
        sentence = first_sentence(doc) if doc else None
        if sentence is None:
            continue
        with_input = (_sha("input:" + qualified) % 1000) < INPUT_SHARE * 1000
        if with_input:
            what = "class" if inspect.isclass(obj) else "function"
            record = {"instruction": f"Explain in one sentence what the Python {what} in the input does.",
                      "context": _signature(qualified, obj)}
        else:
            record = {"instruction": f"What does `{qualified}` do?", "context": ""}
        items.append({**record, "response": sentence, "category": module_name, "name": qualified})
    return items


def _per_module() -> dict[str, list[dict[str, str]]]:
    return {name: _module_items(name) for name in MODULES}


def _per_module_pristine() -> dict[str, list[dict[str, str]]]:
    """The items as a fresh interpreter sees the standard library. Importing other libraries first changes what
    the modules hold: transformers adds `logging.Logger.warning_once` and friends, torch.package replaces
    `inspect.getfile`. In-process, the set (and every model trained on it) then depended on what had been
    imported before; a child process (`python -I`, only this module imported) reads the same set every time."""
    import json
    import subprocess

    from bench.papers import REPO_ROOT

    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); "
            "from bench.data.instructions_docs import _per_module; json.dump(_per_module(), sys.stdout)")
    proc = subprocess.run([sys.executable, "-I", "-c", code, str(REPO_ROOT)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"instruct-docs: building the set in a fresh interpreter failed: "
                         f"{(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(proc.stdout)


@lru_cache(maxsize=None)
def _build() -> dict[str, tuple[dict[str, str], ...]]:
    per_module = _per_module_pristine()
    order = sorted((m for m in MODULES if per_module[m]), key=lambda m: (_sha("module:" + m), m))
    splits: dict[str, list[dict[str, str]]] = {s: [] for s in SPLITS}
    target = "test"
    for module_name in order:
        if target in SPLIT_SIZES and len(splits[target]) >= SPLIT_SIZES[target]:
            target = "valid" if target == "test" else "train"
            if target in SPLIT_SIZES and len(splits[target]) >= SPLIT_SIZES[target]:
                target = "train"
        splits[target].extend(per_module[module_name])
    out: dict[str, tuple[dict[str, str], ...]] = {}
    for split, records in splits.items():
        records = sorted(records, key=lambda r: (_sha("item:" + r["name"]), r["name"]))
        if split in SPLIT_SIZES:
            if len(records) < SPLIT_SIZES[split]:
                raise BenchError(f"instruct-docs: only {len(records)} {split} items could be built (need "
                                 f"{SPLIT_SIZES[split]}); this Python ({sys.version.split()[0]}) lacks docstrings")
            records = records[: SPLIT_SIZES[split]]
        out[split] = tuple(records)
    return out


def instruct_docs(split: str = "train") -> list[dict[str, str]]:
    """The records of one split (train / valid / test), in a fixed order."""
    if split not in SPLITS:
        raise BenchError(f"instruct-docs has splits {', '.join(SPLITS)}; got {split!r}")
    return [dict(r) for r in _build()[split]]


def split_modules(split: str) -> list[str]:
    """The modules whose functions make up a split (disjoint across splits)."""
    return sorted({r["category"] for r in instruct_docs(split)})


def fingerprint() -> str:
    """sha256 over every record of every split: changes whenever the Python release changes a docstring."""
    digest = hashlib.sha256()
    for split in SPLITS:
        for r in _build()[split]:
            digest.update("\x1f".join((split, r["instruction"], r["context"], r["response"])).encode() + b"\x1e")
    return "sha256:" + digest.hexdigest()


def instruct_docs_dataset(split: str = "train"):
    """`instruct_docs` as an IndexedDataset with the fields InstructionJsonl produces (+ references)."""
    from bench.data.base import InMemoryDataset

    items = [dict(r, references=[r["response"]]) for r in instruct_docs(split)]
    return InMemoryDataset(f"instruct-docs-{split}", items)
