"""External files (checkpoints, feature-extractor weights, reference statistics) and where they live.

Each component declares its assets in an `assets.yaml` beside its code (bench/**, methods/**, baselines/**):
a list of {name, filename, sha256 (null if unknown), source_url, how, used_by}. They are looked up in
$BENCH_ASSETS (default ~/.cache/bench/assets). Found -> used (sha256 checked once and remembered by size and
mtime); missing or wrong -> one line naming the file, its sha256 and how to get it. Nothing downloads.
"""
from __future__ import annotations

import contextvars
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from bench.cards import read_yaml
from bench.papers import REPO_ROOT
from bench.registry import BenchError, UnknownName, unknown_name_message


def cache_dir() -> Path:
    """Local cache for things bench builds itself (e.g. the offline digits classifier)."""
    path = Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "bench"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def assets_dir() -> Path:
    return Path(os.environ.get("BENCH_ASSETS", Path.home() / ".cache" / "bench" / "assets"))


@dataclass(frozen=True)
class Asset:
    name: str
    filename: str
    sha256: str | None
    source_url: str | None
    how: str
    used_by: tuple[str, ...] = field(default_factory=tuple)
    declared_in: str = ""
    # torch.hub-style weights publish only a digest prefix in their file name (e.g. alexnet-owt-7be5be79.pth)
    sha256_prefix: str | None = None

    @property
    def path(self) -> Path:
        return assets_dir() / self.filename


@cache
def declared() -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for top in ("bench", "methods", "baselines"):
        for path in sorted((REPO_ROOT / top).rglob("assets.yaml")):
            for item in read_yaml(path.read_text()) or []:
                asset = Asset(name=item["name"], filename=item["filename"], sha256=item.get("sha256"),
                              source_url=item.get("source_url"), how=item.get("how", ""),
                              used_by=tuple(item.get("used_by", [])),
                              declared_in=str(path.relative_to(REPO_ROOT)),
                              sha256_prefix=item.get("sha256_prefix"))
                if asset.name in found:
                    raise BenchError(f"asset {asset.name!r} declared twice ({found[asset.name].declared_in}, "
                                     f"{asset.declared_in})")
                found[asset.name] = asset
    return found


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


def sha256_file(path: Path) -> str:
    return file_digest(path, "sha256")


def verified_sha256(path: Path) -> str:
    """sha256 of a file, remembered beside it by (size, mtime) so large weights are hashed once."""
    stat = path.stat()
    memo = path.with_name(f".{path.name}.sha256.json")
    try:
        data = json.loads(memo.read_text())
        if data["size"] == stat.st_size and data["mtime_ns"] == stat.st_mtime_ns:
            return data["sha256"]
    except (OSError, ValueError, KeyError):
        pass
    value = sha256_file(path)
    try:
        memo.write_text(json.dumps({"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": value}))
    except OSError:
        pass
    return value


def status(asset: Asset) -> dict[str, Any]:
    path = asset.path
    row: dict[str, Any] = {"name": asset.name, "file": str(path), "found": path.exists(), "sha256_ok": None,
                           "sha256": asset.sha256, "how": asset.how, "source_url": asset.source_url,
                           "used_by": list(asset.used_by)}
    if path.exists() and (asset.sha256 or asset.sha256_prefix):
        row["sha256_ok"] = _digest_ok(asset, verified_sha256(path))
    return row


def _file_row(asset: Asset) -> dict[str, Any]:
    row = status(asset)
    state = "missing" if not row["found"] else "bad" if row["sha256_ok"] is False else "found"
    expected = asset.sha256 or (f"{asset.sha256_prefix}..." if asset.sha256_prefix else None)
    detail = {"missing": asset.how, "bad": f"wrong sha256 (expected {expected}); replace it: {asset.how}",
              "found": ""}[state]
    return {"name": asset.name, "kind": "file", "state": state, **row, "detail": detail}


def _dataset_row(card: Any, data_root: str | Path | None, count_items: bool, verify_checksums: bool
                 ) -> dict[str, Any]:
    from bench.data.cards import dataset_status

    st = dataset_status(card, data_root, count_items=count_items, verify_checksums=verify_checksums)
    root = data_root or os.environ.get("BENCH_DATA_ROOT")
    # a dataset lives under the data root at its card's layout (e.g. benchmark/Set5/HR/), so the root is its "file"
    file = "embedded" if st.state == "embedded" else str(Path(root).expanduser()) if root else ""
    # missing: how to get it (the detail names the first absent path when a root was given);
    # bad / partial: why (e.g. "split 'test' has 4 items, expected 5")
    detail = st.detail if st.state != "missing" or root else card.get
    if st.state == "found" and detail == file:
        detail = ""
    return {"name": card.name, "kind": "dataset", "state": st.state,
            "file": file, "found": st.state in ("embedded", "found"),
            "sha256_ok": False if st.state == "bad" else None, "sha256": None, "how": card.get,
            "source_url": card.source, "used_by": list(card.papers), "detail": detail}


def inventory(paper: str | None = None, data_root: str | Path | None = None, missing_only: bool = False,
              count_items: bool = False, verify_checksums: bool = False) -> list[dict[str, Any]]:
    """Every external file and dataset with its state (found | missing | bad | embedded | partial), for `bench
    assets`. `paper` keeps what that paper uses: files declared for it or for one of its metric dialects, and the
    datasets its card names. `missing_only` keeps what is not usable as is (missing, bad, partial)."""
    from bench.data.cards import all_dataset_cards

    files = list(declared().values())
    cards = all_dataset_cards()
    if paper is not None:
        from bench import papers

        card = papers.card(paper)
        users = {paper, *card.metrics}
        files = [a for a in files if users & set(a.used_by)]
        cards = [c for c in cards if paper in c.papers or c.name in card.datasets]
    rows = [_file_row(a) for a in files] + [_dataset_row(c, data_root, count_items, verify_checksums) for c in cards]
    if missing_only:
        rows = [r for r in rows if r["state"] not in ("found", "embedded")]
    return rows


def _digest_ok(asset: Asset, digest: str) -> bool:
    if asset.sha256:
        return digest == asset.sha256
    return digest.startswith(asset.sha256_prefix or "")


def require(name: str) -> Path:
    """The local path of a declared asset, or one clear line saying what is missing and how to get it."""
    assets = declared()
    if name not in assets:
        raise UnknownName(unknown_name_message("asset", name, list(assets)))
    asset = assets[name]
    path = asset.path
    sha = asset.sha256 or "unknown"
    if not path.exists():
        raise BenchError(f"missing asset {asset.name}: {path} (sha256 {sha}); get it from "
                         f"{asset.source_url or 'the official release'}: {asset.how} (or set BENCH_ASSETS)")
    if (asset.sha256 or asset.sha256_prefix) and not _digest_ok(asset, verified_sha256(path)):
        expected = asset.sha256 or f"one starting with {asset.sha256_prefix}"
        if _REHEARSAL.get():
            print(f"warning: rehearsal: using asset {asset.name} at {path} although its sha256 is not the "
                  f"published one (expected {expected}); a real run refuses it", file=sys.stderr, flush=True)
            return path
        raise BenchError(f"asset {asset.name} at {path} has the wrong sha256 (expected {expected}); "
                         f"replace it: {asset.how}")
    return path


# True only while a rehearsal run (RunSpec.rehearsal non-empty) computes: see rehearsal_assets.
_REHEARSAL: contextvars.ContextVar[bool] = contextvars.ContextVar("bench_rehearsal_assets", default=False)


@contextmanager
def rehearsal_assets(active: bool = True) -> Iterator[None]:
    """While a CPU rehearsal of a small/paper code path runs (and only then), `require` accepts an asset whose
    sha256 differs from the published one, with a warning on stderr, instead of refusing it: a rehearsal runs
    on stand-in files in the official layout with random weights (tests/fixtures_official/), whose numbers mean
    nothing anyway. A missing file is still an error. A recipe enters this with ``spec.is_rehearsal``, so a
    real run (empty rehearsal) keeps the strict check."""
    token = _REHEARSAL.set(bool(active))
    try:
        yield
    finally:
        _REHEARSAL.reset(token)
