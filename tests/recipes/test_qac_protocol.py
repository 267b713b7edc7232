"""QAC's fairness rule (issue 22): at small and paper scale QAC and the EDM baseline it is judged against are
trained under one protocol (the same train dict, EDM config F's augmentation pipe included, and the same
sampler dict); the released EDM pickles are extra reported checkpoints, never a claim's rhs; smoke trains both
sides without augmentation (a documented knob, its reference stays as it is)."""
from __future__ import annotations

import pytest
import torch

from baselines.edm.augment import AugmentPipe
from bench import papers, runner
from bench.registry import BenchError
from methods.qac import recipe


def _pairs(scale):
    """(edm spec, qac spec) per dataset of a scale's plan."""
    specs = runner.plan("qac", scale)
    by_key = {(s.entry, s.dataset): s for s in specs}
    return [(by_key[("edm", d)], by_key[("qac", d)]) for d in sorted({s.dataset for s in specs})]


@pytest.mark.parametrize("scale", ["small", "paper"])
def test_edm_and_qac_share_train_and_sampler_and_differ_only_in_qac_options(scale):
    pairs = _pairs(scale)
    assert len(pairs) == (1 if scale == "small" else 3)
    for edm, qac in pairs:
        assert edm.train == qac.train and edm.sampler == qac.sampler and edm.metrics == qac.metrics
        assert edm.setting == qac.setting and edm.seeds == qac.seeds and edm.split == qac.split
        # the method's own fields: QAC's encoder options; both train from scratch
        assert {k: v for k, v in qac.args.items() if k != "qac"} == edm.args
        assert edm.args["init"] == "scratch"
        # EDM config F's augmentation (train.py: p 0.12 on CIFAR-10; README: 0.15 at 64x64) on both sides, and
        # its 9 labels fill the network's augment embedding
        p = 0.12 if edm.dataset == "cifar10" else 0.15
        assert edm.train["augment"] == {"p": p, "xflip": 1e8, "yflip": 1.0, "scale": 1.0, "rotate_frac": 1.0,
                                        "aniso": 1.0, "translate_frac": 1.0}
        assert AugmentPipe.from_config(edm.train["augment"]).label_dim == edm.args["network"]["augment_dim"] == 9


def test_released_pickles_are_reported_checkpoints_never_a_claims_rhs():
    specs = runner.plan("qac", "paper")
    official = [s for s in specs if s.entry == "edm-official"]
    assert {s.dataset for s in official} == set(recipe.PAPER_DATASETS)
    for spec in official:
        (edm,) = [s for s in specs if s.entry == "edm" and s.dataset == spec.dataset]
        assert spec.args["init"] == "pretrained" and spec.args["checkpoint"].endswith("-uncond-vp.pkl")
        assert spec.train == {}  # not trained here
        assert spec.sampler == edm.sampler and spec.metrics == edm.metrics  # the same FID path
    card = papers.card("qac")
    assert {c.rhs for c in card.claims} == {"edm"} and {c.lhs for c in card.claims} == {"qac"}
    labels = {e.id: e.label for e in card.entries}
    assert "released config-F pickle" in labels["edm-official"] and "retrained here" in labels["edm"]


def test_smoke_trains_both_sides_without_augmentation():
    edm, qac = runner.plan("qac", "smoke")
    assert "augment" not in edm.train and edm.train == qac.train
    assert "augment_dim" not in edm.args["network"]  # the tiny U-Net has no augment embedding
    assert recipe.augment_pipe(edm.train.get("augment"), 0) is None


def test_augment_pipe_for_a_spec():
    pipe = recipe.augment_pipe(recipe.edm_augment("ffhq-64"), 9)
    assert isinstance(pipe, AugmentPipe) and pipe.p == 0.15
    with pytest.raises(BenchError, match="augment_dim is 4"):
        recipe.augment_pipe(recipe.edm_augment("cifar10"), 4)
    # no augmentation with a 9-value embedding: the image untouched, zero labels (EDM's pipe at p = 0)
    y = torch.randn(3, 3, 8, 8)
    out, labels = recipe.augment_pipe(None, 9)(y)
    assert out is y and torch.equal(labels, torch.zeros(3, 9))
