"""EDM baseline: preconditioning and loss against hand values, official parameter/MAC counts, samplers against an
exact Gaussian solution and EDM's NFE rules, and loading a pickle written in the official persistence layout."""
from __future__ import annotations

import math
import pickle
import sys

import pytest
import torch
from torch import nn

from baselines.edm import pickles, samplers
from baselines.edm.loss import EDMLoss, VELoss, VPLoss, edm_reduce
from baselines.edm.networks import arch_kwargs
from baselines.edm.pipeline import edm_train_config, generate_batch, seed_ranges
from baselines.edm.precond import EDMPrecond, VEPrecond, VPPrecond, build_precond
from bench.profile import count_macs
from bench.registry import BenchError
from tests.fixtures_official.edm import write_persistence_pickle

TINY = {"model_channels": 8, "channel_mult": [1, 2], "num_blocks": 1, "attn_resolutions": [8], "dropout": 0.0}


# ----------------------------------------------------------------------------------------- preconditioning
class RecordingUNet(nn.Module):
    """Stands in for the U-Net: returns ones and records what the wrapper fed it."""

    def __init__(self):
        super().__init__()
        self.seen = {}

    def forward(self, x, noise_labels, class_labels=None, **kwargs):
        self.seen = {"x": x.clone(), "noise": noise_labels.clone()}
        return torch.ones_like(x)


def test_edm_coefficients_at_sigma_half_match_hand_values():
    net = EDMPrecond(16, 1, **arch_kwargs("ddpmpp", **TINY))
    c_skip, c_out, c_in, c_noise = net.coefficients(torch.tensor(0.5))
    # sigma = sigma_data = 0.5: c_skip = 1/2, c_out = 0.25 sqrt 2, c_in = sqrt 2, c_noise = ln(0.5)/4
    assert float(c_skip) == pytest.approx(0.5)
    assert float(c_out) == pytest.approx(0.25 * math.sqrt(2))
    assert float(c_in) == pytest.approx(math.sqrt(2))
    assert float(c_noise) == pytest.approx(math.log(0.5) / 4)
    assert float(EDMLoss().weight(torch.tensor(0.5))) == pytest.approx(8.0)  # (0.25+0.25)/(0.25*0.25)
    c_out_2 = float(net.coefficients(torch.tensor(2.0))[1])
    assert float(EDMLoss().weight(torch.tensor(2.0))) == pytest.approx(1 / c_out_2 ** 2)  # lambda = 1 / c_out^2


def test_precond_forward_composes_c_skip_c_out_c_in_c_noise():
    x = torch.full((2, 1, 4, 4), 3.0)
    sigma = torch.tensor([0.5, 2.0])
    for net, expect in (
        (EDMPrecond(16, 1, **arch_kwargs("ddpmpp", **TINY)),
         lambda s: (0.25 / (s * s + 0.25), s * 0.5 / math.sqrt(s * s + 0.25), 1 / math.sqrt(s * s + 0.25),
                    math.log(s) / 4)),
        (VEPrecond(16, 1, **arch_kwargs("ddpmpp", **TINY)), lambda s: (1.0, s, 1.0, math.log(s / 2))),
    ):
        net.model = RecordingUNet()
        out = net(x, sigma)
        for row, s in enumerate(sigma.tolist()):
            c_skip, c_out, c_in, c_noise = expect(s)
            assert out[row].flatten()[0].item() == pytest.approx(c_skip * 3.0 + c_out, rel=1e-6)
            assert net.model.seen["x"][row].flatten()[0].item() == pytest.approx(c_in * 3.0, rel=1e-6)
            assert net.model.seen["noise"][row].item() == pytest.approx(c_noise, rel=1e-6, abs=1e-7)


def test_vp_schedule_and_coefficients():
    net = VPPrecond(16, 1, **arch_kwargs("ddpmpp", **TINY))
    # sigma(1) = sqrt(exp(19.9/2 + 0.1) - 1) = sqrt(e^10.05 - 1)
    assert net.sigma_max == pytest.approx(math.sqrt(math.exp(10.05) - 1), rel=1e-5)
    assert net.sigma_max == pytest.approx(152.16698, rel=1e-5)
    for s in (0.01, 0.5, 3.0, 80.0):
        t = float(net.sigma_inv(torch.tensor(s, dtype=torch.float64)))
        assert float(net.sigma(torch.tensor(t, dtype=torch.float64))) == pytest.approx(s, rel=1e-9)
    c_skip, c_out, c_in, c_noise = net.coefficients(torch.tensor(3.0, dtype=torch.float64))
    assert (c_skip, float(c_out), float(c_in)) == (1.0, -3.0, pytest.approx(1 / math.sqrt(10)))
    assert float(c_noise) == pytest.approx(999 * float(net.sigma_inv(torch.tensor(3.0, dtype=torch.float64))))


def test_losses_draw_sigma_from_their_distributions():
    torch.manual_seed(0)
    log_sigma = EDMLoss().draw_sigma(40_000, torch.device("cpu")).log().flatten()
    assert log_sigma.mean().item() == pytest.approx(-1.2, abs=0.03)  # ln sigma ~ N(-1.2, 1.2^2)
    assert log_sigma.std().item() == pytest.approx(1.2, abs=0.03)
    ve = VELoss().draw_sigma(40_000, torch.device("cpu")).flatten()
    assert ve.min() >= 0.02 and ve.max() <= 100  # log-uniform on [0.02, 100]
    assert ve.log().mean().item() == pytest.approx((math.log(0.02) + math.log(100)) / 2, abs=0.05)
    vp = VPLoss()
    drawn = vp.draw_sigma(10_000, torch.device("cpu")).flatten()
    assert drawn.min() >= float(vp.sigma(1e-5)) and drawn.max() <= float(vp.sigma(1.0)) * (1 + 1e-6)


def test_edm_loss_value_by_hand():
    y = torch.randn(3, 1, 4, 4)
    loss = EDMLoss()
    torch.manual_seed(1)
    sigma = loss.draw_sigma(3, y.device)
    torch.manual_seed(1)
    # a network that always answers 0: loss = lambda(sigma) y^2, EDM's reduction = sum / batch
    elementwise = loss(lambda x, s, labels, augment_labels=None: torch.zeros_like(x), y)
    assert torch.allclose(elementwise, loss.weight(sigma) * y ** 2)
    assert edm_reduce(elementwise).item() == pytest.approx((loss.weight(sigma) * y ** 2).sum().item() / 3, rel=1e-6)
    exact = loss(lambda x, s, labels, augment_labels=None: y, y)  # the oracle denoiser costs nothing
    assert exact.abs().max().item() == 0.0


# ----------------------------------------------------------------------------------------- official counts
# [V] parameters, state-dict tensors and MACs (batch 1, FlopCounter, MACs = FLOPs/2) of NVlabs/edm's own
# training/networks.py (EDMPrecond) run on CPU; the dossier gives 55.74 M / 55.73 M / 61.81 M for DDPM++.
OFFICIAL = {  # name: (config, parameters, state-dict tensors, MACs)
    "ddpmpp-cifar10-cond": ({"arch": "ddpmpp", "res": 32, "label_dim": 10, "augment_dim": 9},
                            55_735_299, 427, 21_191_525_632),
    "ddpmpp-cifar10-uncond": ({"arch": "ddpmpp", "res": 32, "label_dim": 0, "augment_dim": 9},
                              55_733_891, 425, 21_191_524_352),
    "ncsnpp-cifar10-cond": ({"arch": "ncsnpp", "res": 32, "label_dim": 10, "augment_dim": 9},
                            56_400_643, 434, 21_395_928_576),
    "ddpmpp-64-uncond": ({"arch": "ddpmpp", "res": 64, "label_dim": 0, "augment_dim": 9, "channel_mult": [1, 2, 2, 2]},
                         61_805_571, 553, 41_865_904_128),
    "ncsnpp-64-uncond": ({"arch": "ncsnpp", "res": 64, "label_dim": 0, "augment_dim": 9, "channel_mult": [1, 2, 2, 2]},
                         62_761_091, 563, 42_429_822_464),
    "adm-imagenet64-cond": ({"arch": "adm", "res": 64, "label_dim": 1000, "augment_dim": 0},
                            295_899_267, 553, 109_664_925_696),
}


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_official_configurations_have_official_counts(name):
    cfg, params, tensors, macs = OFFICIAL[name]
    cfg = dict(cfg)
    arch, res, label_dim = cfg.pop("arch"), cfg.pop("res"), cfg.pop("label_dim")
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        net = build_precond("edm", res, 3, label_dim, **arch_kwargs(arch, **cfg))
        x, sigma = torch.zeros(1, 3, res, res), torch.ones(1)
        labels = torch.zeros(1, label_dim) if label_dim else None
    assert sum(p.numel() for p in net.parameters()) == params
    assert len(net.state_dict()) == tensors
    assert count_macs(net.eval(), x, sigma, labels) == macs
    if name == "ddpmpp-cifar10-uncond":
        assert round(params / 1e6, 2) == 55.73  # dossier section 2.4
    if name == "ddpmpp-64-uncond":
        assert round(params / 1e6, 2) == 61.81


def test_conditioning_extension_is_off_by_default_and_adds_the_stated_weights():
    base = build_precond("edm", 16, 1, **arch_kwargs("ddpmpp", **TINY))
    with_cond = build_precond("edm", 16, 1, **arch_kwargs("ddpmpp", cond_dim=4, **TINY))
    with_planes = build_precond("edm", 16, 1, **arch_kwargs("ddpmpp", cond_channels=4, **TINY))
    def count(m):
        return sum(p.numel() for p in m.parameters())

    assert count(with_cond) - count(base) == 4 * 8  # bias-free code_dim x noise_channels
    assert count(with_planes) - count(base) == 4 * 8 * 9  # 4 more input channels of the 3x3 stem
    x, sigma = torch.randn(2, 1, 16, 16), torch.tensor([0.5, 2.0])
    with pytest.raises(BenchError, match="cond_dim=4"):
        with_cond(x, sigma)
    with torch.no_grad():  # EDM zero-initialises output layers; perturb them so the condition shows
        for p in with_cond.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    a = with_cond(x, sigma, cond=torch.zeros(2, 4))
    b = with_cond(x, sigma, cond=torch.ones(2, 4))
    assert not torch.allclose(a, b)


# ----------------------------------------------------------------------------------------- samplers
class GaussianDenoiser:
    """Exact denoiser for data ~ N(0, s^2 I): D(x; sigma) = x s^2 / (s^2 + sigma^2). Its probability-flow ODE
    has the closed-form solution x(sigma) = x(sigma_0) sqrt((s^2 + sigma^2) / (s^2 + sigma_0^2))."""

    sigma_min, sigma_max = 0.0, math.inf

    def __init__(self, s=0.5):
        self.s2 = s * s
        self.calls = 0

    def round_sigma(self, sigma):
        return torch.as_tensor(sigma)

    def __call__(self, x, sigma, class_labels=None, **kwargs):
        self.calls += 1
        return x * self.s2 / (self.s2 + torch.as_tensor(sigma, dtype=x.dtype) ** 2)


def exact_endpoint(latents, s=0.5, sigma_max=80.0):
    return latents.double() * sigma_max * s / math.sqrt(s * s + sigma_max ** 2)


def test_schedule_matches_the_rho_formula():
    sigmas = samplers.karras_sigmas(18)
    assert len(sigmas) == 19 and sigmas[0].item() == pytest.approx(80.0) and sigmas[-1].item() == 0.0
    assert sigmas[-2].item() == pytest.approx(0.002)
    i = 5  # hand formula in numpy
    expect = (80 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert sigmas[i].item() == pytest.approx(expect, rel=1e-12)
    assert bool((sigmas[:-1][1:] < sigmas[:-1][:-1]).all())


@pytest.mark.parametrize("solver,nfe,steps", [("heun", 35, 18), ("heun", 79, 40), ("heun", 5, 3), ("euler", 6, 6),
                                              ("dpmpp2m", 4, 4), ("ipndm", 10, 10)])
def test_nfe_counts(solver, nfe, steps):
    net = GaussianDenoiser()
    result = samplers.sample(net, torch.randn(2, 1, 4, 4), solver, nfe=nfe)
    assert result.nfe == net.calls == nfe and result.num_steps == steps
    assert samplers.nfe_for_steps(solver, steps) == nfe


def test_heun_cannot_make_an_even_nfe():
    with pytest.raises(BenchError, match="2N-1"):
        samplers.sample(GaussianDenoiser(), torch.randn(1, 1, 2, 2), "heun", nfe=6)


def test_solvers_converge_to_the_exact_ode_solution_at_their_order():
    torch.manual_seed(0)
    latents = torch.randn(4, 1, 4, 4)
    exact = exact_endpoint(latents)

    def error(solver, nfe):
        x = samplers.sample(GaussianDenoiser(), latents, solver, nfe=nfe).images
        return (x - exact).abs().max().item() / exact.abs().max().item()

    # Doubling the steps divides the error by ~2^order (measured: Euler 2.0, DPM-Solver++(2M) 4.5, iPNDM 4.6,
    # Heun 4.1 between these step counts).
    euler = [error("euler", n) for n in (32, 64, 128)]
    assert all(1.8 < a / b < 2.2 for a, b in zip(euler[:-1], euler[1:], strict=True)), euler
    for solver in ("dpmpp2m", "ipndm"):
        errs = [error(solver, n) for n in (32, 64, 128)]
        assert all(a / b > 3.5 for a, b in zip(errs[:-1], errs[1:], strict=True)), (solver, errs)
        assert errs[1] < euler[1] / 10
    heun = [error("heun", n) for n in (33, 65, 129)]
    assert all(a / b > 3.5 for a, b in zip(heun[:-1], heun[1:], strict=True)), heun


def test_dpmpp2m_first_steps_are_euler():
    """With 2 steps both updates of DPM-Solver++(2M) are first order, i.e. identical to Euler (= DDIM)."""
    latents = torch.randn(3, 1, 4, 4)
    a = samplers.sample(GaussianDenoiser(), latents, "dpmpp2m", nfe=2).images
    b = samplers.sample(GaussianDenoiser(), latents, "euler", nfe=2).images
    assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_stochastic_sampler_is_per_sample_deterministic():
    net = build_precond("edm", 16, 1, **arch_kwargs("ddpmpp", **TINY)).eval()
    churn = {"S_churn": 40, "S_min": 0.05, "S_max": 50, "S_noise": 1.003}
    whole = generate_batch(net, torch.arange(3), 7, solver="heun", nfe=5, sampler_kwargs=churn)["images"]
    alone = generate_batch(net, torch.tensor([2]), 7, solver="heun", nfe=5, sampler_kwargs=churn)["images"]
    deterministic = generate_batch(net, torch.arange(3), 7, solver="heun", nfe=5)["images"]
    assert torch.equal(whole[2], alone[0])
    assert not torch.equal(whole, deterministic)  # churn changes the trajectory
    with pytest.raises(BenchError, match="heun sampler only"):
        samplers.sample(net, torch.randn(1, 1, 16, 16), "euler", nfe=4, S_churn=10)


def test_edm_schedule_in_images_and_seed_ranges():
    cfg = edm_train_config(batch_size=512, total_kimg=200_000, lr=1e-3)
    assert cfg.steps == 390_625 and cfg.warmup_steps == 19_531 and cfg.warmup_offset == 0
    assert cfg.ema_decay == pytest.approx(0.5 ** (512 / 500_000)) and cfg.ema_rampup_ratio == 0.05
    assert seed_ranges(3, 50_000) == [(0, 50_000), (50_000, 100_000), (100_000, 150_000)]


# ----------------------------------------------------------------------------------------- official pickles
def _write_official_layout(net: nn.Module, init_kwargs: dict, handle, protocol: int = 4) -> None:
    """Pickle `net` as torch_utils.persistence does (tests/fixtures_official/edm.py)."""
    write_persistence_pickle(net, init_kwargs, handle, protocol, dataset_path="x.zip")


@pytest.mark.parametrize("protocol", [2, 4])
def test_official_pickle_layout_loads_without_running_its_code(tmp_path, protocol):
    init_kwargs = dict(img_resolution=16, img_channels=1, label_dim=3,
                       **arch_kwargs("ncsnpp", model_channels=8, channel_mult=[1, 2], num_blocks=1,
                                     attn_resolutions=[8], dropout=0.0, augment_dim=9))
    torch.manual_seed(0)
    net = VPPrecond(**init_kwargs).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # zero-initialised layers would hide a missing weight
    path = tmp_path / "network-snapshot.pkl"
    with open(path, "wb") as handle:
        _write_official_layout(net, init_kwargs, handle, protocol)
    assert b"torch_utils.persistence" in path.read_bytes() and b"edm_pickle_code_ran" in path.read_bytes()
    sys.modules.pop("torch_utils", None)
    loaded = pickles.load_network(path)
    assert "edm_pickle_code_ran" not in sys.modules and "torch_utils" not in sys.modules
    assert isinstance(loaded, VPPrecond) and loaded.sigma_max == pytest.approx(net.sigma_max)
    x, sigma, labels = torch.randn(2, 1, 16, 16), torch.tensor([0.3, 4.0]), torch.eye(3)[[0, 2]]
    assert torch.equal(loaded(x, sigma, labels), net(x, sigma, labels))


def test_pickle_with_foreign_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"ema": Evil()}))
    with pytest.raises(BenchError, match="refusing to load builtins.print") as err:
        pickles.load_network(path)
    assert "\n" not in str(err.value)


def test_pickle_with_wrong_shapes_names_the_key(tmp_path):
    init_kwargs = dict(img_resolution=16, img_channels=1, label_dim=0,
                       **arch_kwargs("ddpmpp", **TINY))
    net = EDMPrecond(**init_kwargs)
    path = tmp_path / "net.pkl"
    with open(path, "wb") as handle:
        _write_official_layout(net, dict(init_kwargs, model_channels=16), handle)  # kwargs disagree with weights
    with pytest.raises(BenchError, match="shape mismatch for 'model.map_layer0.weight'"):
        pickles.load_network(path)
    with pytest.raises(BenchError, match="does not exist"):
        pickles.load_network(tmp_path / "missing.pkl")


# ----------------------------------------------------------------------------------------- ideal denoiser
class IdealDigitsDenoiser:
    """The exact denoiser of the empirical digits distribution: D(x; sigma) = E[y | y + sigma n = x], a softmax over
    the training digits y_i of -||x - y_i||^2 / (2 sigma^2). No training: it pins the samplers on their own."""

    def __init__(self, images_uint8):
        self.y = torch.as_tensor(images_uint8, dtype=torch.float64).flatten(1) / 127.5 - 1

    def __call__(self, x, sigma, class_labels=None, **kwargs):
        sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1)
        flat = x.to(torch.float64).flatten(1)
        logits = -torch.cdist(flat, self.y).square() / (2 * sigma.square())
        return (torch.softmax(logits, dim=1) @ self.y).reshape(x.shape)


@pytest.mark.parametrize("solver, nfe", [("heun", 35), ("dpmpp2m", 6), ("ipndm", 6)])
def test_ideal_denoiser_through_the_samplers_gives_digits_above_the_qac_floor(solver, nfe):
    """EDM's samplers with the ideal denoiser draw recognisable, varied digits: their digits Inception Score clears
    the QAC smoke floor (halfway from the best trivial generator to the data) with the same classifier and count.
    A sampler that mixed up sigmas, steps or signs would give blurred averages (IS near 1) or noise (near 2)."""
    from bench.data.smoke import digits
    from bench.metrics.offline_fd import digits_probabilities
    from methods.qac.sanity import floor_reference, inception_score

    real, _ = digits("train")
    n = 128
    latents = torch.randn(n, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    out = samplers.sample(IdealDigitsDenoiser(real), latents, solver, nfe=nfe)
    assert out.nfe == nfe
    images = samplers.to_uint8(out.images).numpy()
    ref = floor_reference(real, n, seed=0, probabilities=digits_probabilities)
    score = inception_score(digits_probabilities(images))
    assert score > ref["floor"], (score, ref)
    assert len({im.tobytes() for im in images}) > n // 2  # varied samples, not one digit over and over
