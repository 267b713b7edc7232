"""Instruct-IPT's pieces: task biases start at the plain backbone and merge exactly, the toy procedure's rank
analysis agrees with numpy's SVD, the instruction path routes held-out phrasings, and the smoke plan gives every
entry the same budget."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.allinone import ipt
from bench.registry import BenchError
from methods.instruct_ipt import recipe
from methods.instruct_ipt.allinone import TASK_NAMES, batch_loss
from methods.instruct_ipt.model import InstructIPT
from methods.instruct_ipt.selection import (
    candidate_weights,
    effective_rank,
    rank_by_mean_change,
)
from methods.instruct_ipt.text import HashedNgramEncoder, phrasings

TINY = {"n_feats": 4, "patch_size": 12, "patch_dim": 3, "num_heads": 2, "num_layers": 1, "rgb_range": 1.0,
        "scales": (1,) * len(TASK_NAMES)}


def _model(rank: int = 2) -> InstructIPT:
    torch.manual_seed(0)
    backbone = ipt.build("tiny", **TINY).eval()
    chosen = dict(list(candidate_weights(backbone).items())[:3])
    return InstructIPT(backbone, chosen, len(TASK_NAMES), rank).eval()


def test_biases_start_at_the_backbone_and_merge_exactly():
    model = _model()
    x = torch.rand(2, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(model(x, 3), model.backbone(x, 3))  # B = 0 at initialisation
        for b in model.biases.B:
            b.normal_()
        modulated = model(x, 3)
        assert not torch.allclose(modulated, model.backbone(x, 3))
        torch.testing.assert_close(modulated, model.merged_backbone(3)(x, 3), rtol=1e-5, atol=1e-5)
        # a one-hot probability vector is the known-task case
        torch.testing.assert_close(model(x, torch.nn.functional.one_hot(torch.tensor(3), len(TASK_NAMES)).float()),
                                   modulated)
    # parameter overhead: (out + in) * rank per task and selected weight
    expected = sum((o + i) * 2 * len(TASK_NAMES) for o, i in list(candidate_weights(model.backbone).values())[:3])
    assert model.overhead_params() == expected


def test_task_loss_trains_backbone_and_biases_together():
    model = _model()
    model.train()
    batch = {t: (torch.rand(1, 3, 12, 12), torch.rand(1, 3, 12, 12), torch.rand(1, 3, 12, 12)) for t in TASK_NAMES}
    with torch.no_grad():
        for a in model.biases.A:
            a.normal_()
    batch_loss("task", model, batch).backward()
    assert all(b.grad is not None and b.grad.abs().sum() > 0 for b in model.biases.B)
    assert model.backbone.body.linear_encoding.weight.grad.abs().sum() > 0


def test_effective_rank_matches_numpy_svd():
    rng = np.random.default_rng(0)
    low = rng.normal(size=(20, 3)) @ rng.normal(size=(3, 16))
    s2 = np.linalg.svd(low, compute_uv=False) ** 2
    expected = int(np.searchsorted(np.cumsum(s2) / s2.sum(), 0.9) + 1)
    assert effective_rank(torch.from_numpy(low), 0.9) == expected <= 3
    assert effective_rank(torch.from_numpy(low), 1.0 - 1e-12) == 3
    assert effective_rank(torch.zeros(4, 4)) == 0


def test_ranking_is_by_mean_change_over_tasks():
    ranking = rank_by_mean_change([{"a": 0.1, "b": 0.5, "c": 0.2}, {"a": 0.5, "b": 0.0, "c": 0.2}])
    assert [n for n, _ in ranking] == ["a", "b", "c"]  # means 0.3, 0.25, 0.2


def test_instruction_phrasings_are_split_and_the_encoder_is_stable():
    for task in TASK_NAMES:
        train, test = set(phrasings(task, "train")), set(phrasings(task, "test"))
        assert train and test and not train & test
    enc = HashedNgramEncoder(64)
    a, b = enc(["remove the rain"]), enc(["remove the rain"])
    torch.testing.assert_close(a, b)
    assert float(a.norm()) == pytest.approx(1.0)
    assert not torch.allclose(enc(["remove the rain"]), enc(["remove the snow"]))


@pytest.mark.parametrize("scale", ["smoke", "small", "paper"])
def test_every_scale_gives_every_entry_the_same_budget(scale):
    specs = recipe.plan(None, scale, None)
    assert sorted(s.entry for s in specs) == ["airnet", "instruct-ipt", "ipt", "promptir"]
    shared = {k: v for k, v in specs[0].train.items() if k not in ("knobs", "contrastive_weight")}
    for s in specs:
        assert {k: v for k, v in s.train.items() if k not in ("knobs", "contrastive_weight")} == shared
    if scale == "smoke":
        assert all(s.seeds == [0, 1, 2] and s.dataset == "photos" for s in specs)
    else:  # the official architectures on the all-in-one sets
        assert all(s.dataset == "allinone-avg" for s in specs)
        assert {s.entry: s.args.get("variant", s.args.get("backbone", {}).get("variant")) for s in specs} == \
            dict.fromkeys(["airnet", "instruct-ipt", "ipt", "promptir"], "official")
    with pytest.raises(BenchError, match="unknown scale"):
        recipe.plan(None, "huge", None)
