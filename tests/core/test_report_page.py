"""`bench report`: one self-contained HTML page and a Markdown twin, on the toy paper whose numbers are known.

The toy card is copied with a hostile claim text ("<b>", "&", "[...]") so escaping is tested on what a real card
contains; bench.plot.plot_paper is replaced by a writer of known PNGs so the embedding is checked byte for byte.
"""
from __future__ import annotations

import base64
import html
import json
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from typer.testing import CliRunner

from bench import papers, report, runner
from bench.cli import app
from bench.store import Store

TOY_CARD = Path(__file__).with_name("toy_paper.yaml")
HOSTILE = "method beats <b>baseline</b> & [psnr_rgb as proxy] by *1 dB*"


@pytest.fixture()
def hostile_toy(tmp_path):
    """The toy paper with a claim text full of markup, registered for one test."""
    card = yaml.safe_load(TOY_CARD.read_text())
    card["claims"][0]["text"] = HOSTILE
    path = tmp_path / "toy_paper.yaml"
    path.write_text(yaml.safe_dump(card))
    reg = papers.registries()["papers"]
    reg.register("toy", "tests.core.toy_recipe", package="toy", card=str(path))
    papers.card.cache_clear()
    yield "toy"
    reg.unregister("toy")
    papers.card.cache_clear()


def _png(path: Path, shade: int) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (shade, 100, 200)).save(path)
    return path


@pytest.fixture()
def fake_plots(monkeypatch):
    """Two known PNGs instead of the real plots (bench/plot.py has its own tests)."""
    import bench.plot

    def plot_paper(slug, store, out_dir):
        return [_png(out_dir / f"{slug}-a.png", 10), _png(out_dir / f"{slug}-b=2.png", 240)]

    monkeypatch.setattr(bench.plot, "plot_paper", plot_paper)


@pytest.fixture()
def toy_store(hostile_toy, store_root, fake_plots):
    store = Store(store_root)
    for spec in runner.plan(hostile_toy, "smoke"):
        runner.execute(spec, store, log=lambda m: None)
    return store


class _Page(HTMLParser):
    """Collects what a self-containment and escaping check needs: resource URLs, headings, text, tags seen."""

    RESOURCE_ATTRS: ClassVar[set[str]] = {"src", "href", "srcset", "data", "poster", "background"}

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.resources: list[tuple[str, str, str]] = []
        self.h2: list[str] = []
        self.text: list[str] = []
        self.tags: list[str] = []
        self.styles: list[str] = []
        self._in: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._in = tag
        for name, value in attrs:
            # a hyperlink (<a href>) is navigation, not a resource the page loads
            if name in self.RESOURCE_ATTRS and tag != "a" and value:
                self.resources.append((tag, name, value))

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        self.text.append(data)
        if self._in == "h2":
            self.h2.append(data.strip())
        if self._in == "style":
            self.styles.append(data)


def test_report_writes_both_files_under_the_store_with_every_section_and_claim(toy_store, hostile_toy):
    files = report.write_report(hostile_toy, toy_store)
    assert files.html == toy_store.root / "toy" / "report" / "report.html"
    assert files.markdown == files.html.with_name("report.md")
    page = _Page(files.html.read_text())
    markdown = files.markdown.read_text()
    assert page.h2 == list(report.SECTIONS)
    assert re.findall(r"^## (.+)$", markdown, flags=re.MULTILINE) == list(report.SECTIONS)
    for claim in papers.card(hostile_toy).claims:
        assert f'id="claim-{claim.id}"' in files.html.read_text()
        assert f"### `{claim.id}`" in markdown
    # the toy recipe records no sanity floor, so our smoke verdicts are inconclusive (tests/core/test_report.py)
    assert "no sanity floor recorded" in " ".join(page.text) and "no sanity floor recorded" in markdown


def test_html_is_self_contained_and_embeds_the_plots_byte_for_byte(toy_store, hostile_toy):
    files = report.write_report(hostile_toy, toy_store)
    page = _Page(files.html.read_text())
    remote = [r for r in page.resources if re.match(r"(https?:)?//", r[2], flags=re.IGNORECASE)]
    assert remote == []
    assert not any(re.search(r"url\(|@import", css, flags=re.IGNORECASE) for css in page.styles)
    assert "script" not in page.tags and "link" not in page.tags
    images = [value for tag, name, value in page.resources if tag == "img"]
    assert len(images) == len(files.plots) == 2
    for src, plot in zip(images, files.plots):
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]) == plot.read_bytes()
    # the Markdown twin references the same PNGs as files beside it (the "=" survives URL quoting)
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", files.markdown.read_text())
    assert links == ["plots/toy-a.png", "plots/toy-b%3D2.png"]
    assert all((files.markdown.parent / "plots" / p.name).exists() for p in files.plots)


def test_claim_text_is_escaped_in_html_and_markdown(toy_store, hostile_toy):
    files = report.write_report(hostile_toy, toy_store)
    source = files.html.read_text()
    assert "<b>baseline</b>" not in source
    assert "method beats &lt;b&gt;baseline&lt;/b&gt; &amp; [psnr_rgb as proxy]" in source
    assert HOSTILE in "".join(_Page(source).text)  # a browser shows the text exactly as the card wrote it
    markdown = files.markdown.read_text()
    assert r"method beats \<b\>baseline\</b\> & \[psnr_rgb as proxy\] by \*1 dB\*" in markdown


def test_a_corrupt_run_record_is_reported_once_on_the_page(toy_store, hostile_toy):
    bad = toy_store.root / hostile_toy / "0123456789abcdef" / "result.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    problems: list[str] = []
    files = report.write_report(hostile_toy, toy_store, problems=problems)
    assert len(problems) == 1 and str(bad) in problems[0]
    assert files.html.read_text().count(html.escape(problems[0])) == 1
    assert len(toy_store.latest(hostile_toy)) == 2  # the readable runs are still reported


def test_markdown_escape():
    assert report.md_escape("fd_digits [x](y) <i> a|b") == r"fd_digits \[x\](y) \<i\> a\|b"
    assert report.md_escape("_em_ and *strong*") == r"\_em\_ and \*strong\*"


def test_runs_and_provenance_come_from_the_records(toy_store, hostile_toy):
    from bench.provenance import git_state

    files = report.write_report(hostile_toy, toy_store)
    source, markdown = files.html.read_text(), files.markdown.read_text()
    runs = toy_store.latest(hostile_toy)
    assert len(runs) == 2
    for run in runs:
        assert run["run_id"] in source and run["run_id"] in markdown
    recorded = runs[0]["provenance"]
    cpu = recorded["hardware"]["cpu"]
    assert cpu in source and cpu in markdown
    assert f"numpy {recorded['libraries']['numpy']}" in source
    if git_state()["commit"]:
        assert git_state()["commit"][:12] in source


def test_provenance_lists_each_value_with_its_runs_when_runs_disagree():
    def run(rid, torch_version):
        return {"run_id": rid, "provenance": {"git": {"commit": "a" * 40, "dirty": False}, "bench_version": "0.1.0",
                                              "hardware": {"cpu": "EPYC", "cpu_count": 2},
                                              "libraries": {"torch": torch_version, "numpy": "2.0"}}}

    rows = {r.field: r.values for r in report.provenance_rows([run("r1", "2.1"), run("r2", "2.2")])}
    assert rows["library torch"] == [("2.1", ["r1"]), ("2.2", ["r2"])]
    assert rows["libraries"] == [("numpy 2.0", ["r1", "r2"])]
    assert rows["commit"] == [("aaaaaaaaaaaa", ["r1", "r2"])]


def test_headline_falls_back_when_bench_headline_is_missing(toy_store, hostile_toy, monkeypatch):
    real = report.load_headline(hostile_toy, toy_store, [])
    assert real.html() in report.write_report(hostile_toy, toy_store).html.read_text()
    monkeypatch.setitem(sys.modules, "bench.headline", None)  # makes `from bench.headline import` fail
    files = report.write_report(hostile_toy, toy_store)
    assert "headline not available" in files.html.read_text()
    assert "headline not available" in files.markdown.read_text()


def test_cli_report_prints_both_paths_and_rejects_an_unknown_paper(toy_store, hostile_toy, tmp_path):
    out = tmp_path / "elsewhere"
    result = CliRunner().invoke(app, ["report", "TOY", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"wrote {out / 'report.html'}", f"wrote {out / 'report.md'}"]
    assert (out / "report.html").exists() and (out / "report.md").exists()
    as_json = CliRunner().invoke(app, ["report", "--paper", "toy", "--out", str(out), "--json"])
    assert as_json.exit_code == 0, as_json.output
    written = json.loads(as_json.output)
    assert written["html"] == str(out / "report.html") and written["plots"] == [
        str(out / "plots" / "toy-a.png"), str(out / "plots" / "toy-b=2.png")]
    bad = CliRunner().invoke(app, ["report", "toyy"])
    assert bad.exit_code == 2 and "unknown paper 'toyy'" in bad.output and len(bad.output.strip().splitlines()) == 1


def _grey_std(png: Path) -> float:
    import numpy as np
    from PIL import Image

    return float(np.asarray(Image.open(png).convert("L"), dtype=float).std())


@pytest.mark.skipif(report.find_chromium() is None,
                    reason="Chromium is not installed (Debian: apt-get install chromium); CI has none")
def test_page_renders_in_headless_chromium(toy_store, hostile_toy, tmp_path):
    files = report.write_report(hostile_toy, toy_store)
    png = report.screenshot(files.html, tmp_path / "page.png", width=1200, height=1600)
    from PIL import Image

    assert Image.open(png).size == (1200, 1600)
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    # a blank page is one flat colour; the report has text, tables and coloured badges
    assert _grey_std(report.screenshot(blank, tmp_path / "blank.png", width=1200, height=1600)) < 1.0
    assert _grey_std(png) > 10.0


def test_screenshot_without_chromium_is_one_clear_error(monkeypatch, tmp_path):
    from bench.registry import BenchError

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(BenchError, match="no Chromium found"):
        report.screenshot(tmp_path / "x.html", tmp_path / "x.png")
