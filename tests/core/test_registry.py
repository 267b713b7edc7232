"""The registry: every listed target resolves, unknown names get close matches."""
from __future__ import annotations

import pytest

from bench import papers
from bench.registry import Registry, UnknownName


@pytest.mark.parametrize("kind", ["papers", "methods", "baselines", "metrics"])
def test_every_registered_target_resolves(kind):
    for entry in papers.registries()[kind]:
        if entry.target is not None:
            assert callable(entry.load()) or hasattr(entry.load(), "run_seed"), entry


def test_unknown_name_lists_close_matches_and_all_names():
    reg: Registry[object] = Registry("widget")
    for name in ("alpha", "alpine", "beta"):
        reg.register(name, None)
    with pytest.raises(UnknownName) as err:
        reg.get("alpah")
    message = str(err.value)
    assert "unknown widget 'alpah'" in message and "'alpha'" in message and "Known: alpha, alpine, beta" in message
    with pytest.raises(ValueError, match="duplicate"):
        reg.register("beta", None)


def test_dataset_registry_is_the_folder_of_cards():
    names = papers.registries()["datasets"].names()
    assert {"digits", "photos", "div2k", "imagenet-256", "coco2017"} <= set(names)
