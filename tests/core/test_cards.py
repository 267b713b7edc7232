"""Paper cards: all ten load and validate, every name they use is registered, bad cards fail clearly."""
from __future__ import annotations

import pytest

from bench import papers
from bench.cards import load_card
from bench.registry import BenchError

SLUGS = ["ctf", "gim", "instruct-ipt", "lipt", "mgsr", "mipkd", "qac", "sam-prior", "tad-sr", "u-dit"]


def test_ten_papers_are_registered_and_their_cards_validate():
    assert papers.registries()["papers"].names() == SLUGS
    for slug in SLUGS:
        card = papers.card(slug)
        assert card.slug == slug
        assert any(e.role == "method" for e in card.entries)


@pytest.mark.parametrize("slug", SLUGS)
def test_card_names_only_registered_entries_datasets_and_metrics(slug):
    assert papers.cross_reference_errors(slug) == []


def test_every_reported_cell_has_a_source_and_a_known_tag():
    for slug in SLUGS:
        for cell in papers.card(slug).reported:
            assert cell.source.ref.strip(), (slug, cell)


def test_official_numbers_transcribed_from_the_dossiers():
    """Spot checks against ../shared/papers (U-DiT Table 2, LIPT light-SR table, CTF abstract)."""
    udit = papers.card("u-dit")

    def cell(card, entry, metric, **setting):
        hits = [c for c in card.reported if c.entry == entry and c.metric == metric
                and all(c.setting.get(k) == v for k, v in setting.items())]
        return hits[0].value if hits else None

    fids = {c.value for c in udit.reported if c.entry == "u-dit-b" and c.metric == "fid@adm"}
    assert 16.64 in fids and 4.26 in fids  # no guidance and cfg = 1.5 (Tables 2 and 4)
    assert cell(udit, "u-dit-l", "gmacs") == 85.00
    ctf = papers.card("ctf")
    assert any(c.margin == pytest.approx(0.71) for c in ctf.claims)


def test_malformed_card_names_file_and_field(tmp_path):
    bad = tmp_path / "paper.yaml"
    bad.write_text((papers.paper_card_path("lipt")).read_text().replace("family: super-resolution",
                                                                         "family: astrology", 1))
    with pytest.raises(BenchError) as err:
        load_card(bad)
    assert str(bad) in str(err.value) and "family" in str(err.value)
    bad.write_text("slug: [unclosed")
    with pytest.raises(BenchError, match="malformed paper card"):
        load_card(bad)


def test_cell_naming_an_undeclared_entry_is_rejected(tmp_path):
    import yaml

    data = yaml.safe_load(papers.paper_card_path("lipt").read_text())
    data["reported"][0]["entry"] = "no-such-entry"
    bad = tmp_path / "paper.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(BenchError, match="reported.*no-such-entry"):
        load_card(bad)


def test_fast_yaml_loader_reads_every_card_as_the_reference_loader_does():
    """bench reads cards with libyaml's safe loader for speed; PyYAML's pure-Python safe loader is the reference."""
    import yaml

    from bench.cards import SAFE_LOADER, read_yaml
    from bench.papers import REPO_ROOT

    paths = [p for pattern in ("methods/*/paper.yaml", "datasets/*.yaml", "bench/**/assets.yaml",
                               "methods/**/assets.yaml", "baselines/**/assets.yaml")
             for p in sorted(REPO_ROOT.glob(pattern))]
    assert len(paths) > 20
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert read_yaml(text) == yaml.load(text, Loader=yaml.SafeLoader), path  # noqa: S506
    assert SAFE_LOADER.__name__ in ("CSafeLoader", "SafeLoader")
