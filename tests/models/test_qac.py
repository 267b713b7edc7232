"""QAC (design inferred from the abstract): FSQ straight-through gradients, how the code enters the denoiser,
the extra-parameter share (abstract: about 1%), the code prior, and training with the unchanged EDM loss."""
from __future__ import annotations

import functools
import math

import pytest
import torch

from baselines.edm.loss import EDMLoss, edm_reduce
from baselines.edm.networks import arch_kwargs
from baselines.edm.precond import build_precond
from bench.distributed import PerSampleRNG
from bench.registry import BenchError
from methods.qac.model import (
    CodePrior,
    FSQuantizer,
    QACConfig,
    build_qac,
    extra_parameter_share,
)
from methods.qac.recipe import (
    PAPER_QAC,
    SMOKE_NETWORK,
    SMOKE_QAC,
    build_denoiser,
    build_model,
)

TINY = {"model_channels": 8, "channel_mult": [1, 2], "num_blocks": 1, "attn_resolutions": [8], "dropout": 0.0}


def tiny_qac(**config):
    factory = functools.partial(build_precond, "edm", 16, 1, 0, **arch_kwargs("ddpmpp", **TINY))
    return build_qac(factory, QACConfig(**{"code_dim": 4, "encoder_widths": (4, 8), "norm_groups": 2, **config}))


def test_fsq_rounds_to_the_grid_and_passes_straight_through_gradients():
    fsq = FSQuantizer(levels=3)
    z = torch.tensor([0.0, 2.0, -0.3, -3.0, 0.4], requires_grad=True)
    q, idx = fsq(z)
    # tanh: 0, .964, -.291, -.995, .380 -> (u+1)/2*(L-1): 1, 1.96, .71, .005, 1.38 -> round: 1, 2, 1, 0, 1
    assert idx.tolist() == [1, 2, 1, 0, 1]
    assert q.tolist() == [0.0, 1.0, 0.0, -1.0, 0.0]
    w = torch.tensor([1.0, -2.0, 3.0, 0.5, 1.5])
    (q * w).sum().backward()
    # straight-through: the gradient of the un-rounded tanh path, w * (1 - tanh(z)^2)
    assert torch.allclose(z.grad, w * (1 - torch.tanh(z.detach()) ** 2))
    q5, idx5 = FSQuantizer(levels=5)(torch.tensor([10.0, -10.0, 0.0]))
    assert q5.tolist() == [1.0, -1.0, 0.0] and idx5.tolist() == [4, 0, 2]


def test_code_enters_the_denoiser_and_the_encoder_learns_through_the_edm_loss():
    torch.manual_seed(0)
    for inject in ("embedding", "channels"):
        model = tiny_qac(inject=inject)
        x, sigma = torch.randn(4, 1, 16, 16), torch.tensor([0.2, 0.5, 1.0, 3.0])
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        a = model(x, sigma, code=torch.zeros(4, 4))
        b = model(x, sigma, code=torch.ones(4, 4))
        assert not torch.allclose(a, b), inject
        # forward(code) is the denoiser fed the condition: nothing else changes
        expect = model.denoiser(x, sigma, None, **model.condition_kwargs(torch.ones(4, 4), x))
        assert torch.equal(b, expect)
        # training: the unchanged EDM loss with the code taken from the clean batch; gradients reach the encoder
        y = torch.rand(8, 1, 16, 16) * 2 - 1
        loss = edm_reduce(EDMLoss()(model, y, None, condition_fn=lambda clean: {"clean": clean}))
        loss.backward()
        grads = [p.grad.abs().sum().item() for p in model.encoder.parameters()]
        assert all(g > 0 for g in grads), (inject, grads)
    with pytest.raises(BenchError, match="needs a code"):
        tiny_qac()(x, sigma)


def _encoder_params_by_hand(channels, widths, code_dim):
    total, cin = 0, channels
    for w in widths:
        total += cin * w * 9 + w + 2 * w  # 3x3 conv with bias, GroupNorm affine
        cin = w
    return total + cin * code_dim + code_dim  # linear head


def test_extra_parameter_share_is_within_one_percent():
    torch.manual_seed(0)
    smoke = build_model({"network": dict(SMOKE_NETWORK), "qac": dict(SMOKE_QAC)})
    share = extra_parameter_share(smoke, build_denoiser(dict(SMOKE_NETWORK)))
    encoder = _encoder_params_by_hand(1, SMOKE_QAC["encoder_widths"], SMOKE_QAC["code_dim"])
    noise_channels = SMOKE_NETWORK["model_channels"]  # DDPM++: channel_mult_noise 1
    assert share["baseline_params"] == 47_985
    assert share["encoder_params"] == encoder == 396
    assert share["extra_params"] == encoder + SMOKE_QAC["code_dim"] * noise_channels == 428
    assert share["extra_share"] == pytest.approx(428 / 47_985) and share["extra_share"] <= 0.01
    # paper scale: CIFAR-10 DDPM++ (55.73 M) plus the default encoder
    network = {"precond": "edm", "arch": "ddpmpp", "img_resolution": 32, "img_channels": 3, "label_dim": 0,
                   "channel_mult": [2, 2, 2], "dropout": 0.13, "augment_dim": 9}
    with torch.device("meta"):
        paper = build_model({"network": network, "qac": dict(PAPER_QAC)})
        base = build_denoiser(network)
    share = extra_parameter_share(paper, base)
    assert share["baseline_params"] == 55_733_891
    assert share["encoder_params"] == _encoder_params_by_hand(3, PAPER_QAC["encoder_widths"], PAPER_QAC["code_dim"])
    assert share["extra_share"] <= 0.01


def test_empirical_prior_samples_the_training_code_histogram():
    idx = torch.tensor([[0, 1], [0, 1], [0, 1], [2, 2]])  # code (0,1) three times, (2,2) once
    prior = CodePrior.from_indices(idx, levels=3)
    assert prior.info["distinct_codes"] == 2 and prior.info["capacity_bits"] == pytest.approx(2 * math.log2(3))
    assert prior.info["entropy_bits"] == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))
    drawn = prior.sample_indices(PerSampleRNG(torch.arange(4000), base_seed=3))
    share = (drawn == torch.tensor([0, 1])).all(dim=1).float().mean().item()
    assert share == pytest.approx(0.75, abs=0.03)
    assert set(map(tuple, drawn.tolist())) == {(0, 1), (2, 2)}
    # per-sample: sample 7 gets the same code alone or in a batch
    again = prior.sample_indices(PerSampleRNG(torch.tensor([7]), base_seed=3))
    assert torch.equal(again[0], drawn[7])
    uniform = CodePrior(levels=3, code_dim=2, kind="uniform").sample_indices(PerSampleRNG(torch.arange(3000), 1))
    assert sorted(torch.unique(uniform).tolist()) == [0, 1, 2]


def test_fit_prior_and_sample_codes():
    torch.manual_seed(0)
    model = tiny_qac()
    images = torch.rand(20, 1, 16, 16) * 2 - 1
    prior = model.fit_prior(images, batch_size=8)
    assert prior.counts.sum().item() == 20
    _, idx = model.encode(images)
    assert {tuple(r) for r in idx.tolist()} == {tuple(r) for r in prior.codes.tolist()}
    codes = model.sample_codes(PerSampleRNG(torch.arange(5), 0))
    assert codes.shape == (5, 4) and set(codes.unique().tolist()) <= {-1.0, 0.0, 1.0}
    with pytest.raises(BenchError, match="fit_prior"):
        tiny_qac().sample_codes(PerSampleRNG(torch.arange(2), 0))


def test_config_errors_are_one_line():
    with pytest.raises(BenchError, match="inject 'cross-attention'"):
        QACConfig(inject="cross-attention")
    with pytest.raises(BenchError, match="unknown QAC option 'bits'"):
        QACConfig.from_dict({"bits": 3})


def test_channel_injection_needs_a_songunet():
    factory = functools.partial(build_precond, "edm", 16, 1, 0, **arch_kwargs("adm", model_channels=8,
                                                                                channel_mult=[1, 2], num_blocks=1))
    assert build_qac(factory, QACConfig(code_dim=2, encoder_widths=(4,))).denoiser.model.map_cond is not None
    with pytest.raises(BenchError, match="inject='channels' is not supported"):
        build_qac(factory, QACConfig(code_dim=2, encoder_widths=(4,), inject="channels"))


# ------------------------------------------------------------------------------------------------- sanity floor
def test_digits_inception_score_matches_scipy_kl():
    """IS = exp(mean KL(p(y|x) || p(y))): checked against scipy's KL and a hand calculation."""
    import numpy as np
    from scipy.stats import entropy

    from methods.qac.sanity import inception_score

    # Two confident samples of two different classes: KL = ln 2 each, IS = 2 (hand calculation).
    assert inception_score(np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(2.0)
    # Identical rows (the mean-image generator): the marginal equals every row, IS = 1.
    assert inception_score(np.tile([[0.1, 0.7, 0.2]], (5, 1))) == pytest.approx(1.0)
    # Hand: rows (0.8, 0.2), (0.2, 0.8), marginal (0.5, 0.5): KL = 0.8 ln 1.6 + 0.2 ln 0.4 = 0.192745.
    assert inception_score(np.array([[0.8, 0.2], [0.2, 0.8]])) == pytest.approx(math.exp(0.192745), abs=1e-6)
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(10, 0.3), size=50)
    p[0, 3] = 0.0  # a zero probability contributes 0 log 0 = 0
    p[0] /= p[0].sum()
    expected = math.exp(np.mean([entropy(row, p.mean(axis=0)) for row in p]))
    assert inception_score(p) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError):
        inception_score(np.zeros((0, 10)))


def test_floor_is_halfway_from_the_best_trivial_generator_to_the_data():
    """floor_reference with a stand-in classifier whose probabilities are hand-set per generator."""
    import numpy as np

    from methods.qac.sanity import floor_reference, halfway_floor, trivial_generators

    real = np.random.default_rng(1).integers(0, 256, (40, 1, 4, 4)).astype(np.uint8)
    gens = trivial_generators(real, 6, seed=3)
    assert set(gens) == {"mean-image", "pixel-gaussian", "shuffled-pixels", "uniform-noise"}
    assert all(g.shape == (6, 1, 4, 4) and g.dtype == np.uint8 for g in gens.values())
    assert (gens["mean-image"] == np.round(real.astype(float).mean(0))).all()
    # shuffled pixels keep each digit's ink: every sample's sorted pixels are some training image's
    sorted_real = {tuple(np.sort(r.ravel())) for r in real}
    assert all(tuple(np.sort(s.ravel())) in sorted_real for s in gens["shuffled-pixels"])

    def probabilities(images):
        # confident and spread over 2 classes (IS 2) for the data, half of that spread for noise, one class else
        n = len(images)
        if images is gens["uniform-noise"] or np.array_equal(images, gens["uniform-noise"]):
            return np.tile([[0.8, 0.2], [0.2, 0.8]], (n // 2, 1))
        if any(np.array_equal(images, g) for g in gens.values()):
            return np.tile([[1.0, 0.0]], (n, 1))
        return np.tile([[1.0, 0.0], [0.0, 1.0]], (n // 2, 1))

    ref = floor_reference(real, 6, seed=3, probabilities=probabilities)
    assert ref["best_trivial"] == "uniform-noise"
    assert ref["trivial_value"] == pytest.approx(math.exp(0.192745), abs=1e-6)
    assert ref["trivial"]["mean-image"] == pytest.approx(1.0)
    assert ref["data_value"] == pytest.approx(2.0)
    assert ref["floor"] == pytest.approx((math.exp(0.192745) + 2.0) / 2, abs=1e-6)
    assert halfway_floor(2.0, 8.0) == 5.0


def test_trivial_generators_stay_below_the_floor_on_the_real_classifier():
    """On bench's digits classifier, every trivial generator scores below the floor and the data above it."""
    from bench.data.smoke import digits
    from bench.metrics.offline_fd import digits_probabilities
    from methods.qac.sanity import floor_reference

    real, _ = digits("train")
    ref = floor_reference(real, 256, seed=0, probabilities=digits_probabilities)
    assert ref["trivial"]["mean-image"] == pytest.approx(1.0)
    assert max(ref["trivial"].values()) < ref["floor"] < ref["data_value"]
    assert ref["data_value"] > 7.0  # the training digits are recognised confidently and cover the classes
