"""Learning-rate schedules against torch's own schedulers and closed forms; EMA against a float64 reference."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.registry import BenchError
from bench.train import EMA, Hook, LRSchedule, TrainConfig, build_optimizer, build_scheduler, train

from ._fixtures import make_loss, tiny_net, toy_data


def _lrs(scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(scheduler.get_last_lr()[0])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def _sgd(lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_step_schedule_matches_torch_multisteplr():
    cfg = TrainConfig(steps=30, batch_size=1, lr=0.4, optimizer="sgd", schedule="step", milestones=(5, 12, 20), gamma=0.5)
    ours = _lrs(build_scheduler(build_optimizer([torch.nn.Parameter(torch.zeros(1))], cfg), cfg), 30)
    ref_opt = _sgd(0.4)
    ref = _lrs(torch.optim.lr_scheduler.MultiStepLR(ref_opt, milestones=[5, 12, 20], gamma=0.5), 30)
    assert ours == pytest.approx(ref, rel=1e-12)
    assert ours[4] == 0.4 and ours[5] == 0.2 and ours[29] == 0.05


def test_warmup_cosine_matches_torch_linear_then_cosine():
    steps, warm, lr, min_lr = 40, 5, 1e-3, 1e-5
    cfg = TrainConfig(steps=steps, batch_size=1, lr=lr, schedule="cosine", warmup_steps=warm, min_lr=min_lr)
    ours = _lrs(build_scheduler(build_optimizer([torch.nn.Parameter(torch.zeros(1))], cfg), cfg), steps)
    ref_opt = _sgd(lr)
    sched = torch.optim.lr_scheduler
    ref = _lrs(sched.SequentialLR(ref_opt, [
        sched.LinearLR(ref_opt, start_factor=1 / warm, end_factor=1.0, total_iters=warm - 1),
        sched.CosineAnnealingLR(ref_opt, T_max=steps - warm, eta_min=min_lr)], milestones=[warm]), steps)
    assert ours == pytest.approx(ref, rel=1e-9, abs=1e-15)
    assert ours[0] == pytest.approx(lr / warm)  # warm-up starts at lr / warmup (warmup_offset=1)


def test_linear_decay_and_hf_style_warmup_by_hand():
    # warmup_offset=0 is Hugging Face's convention: factor t / warmup, then (T - t) / (T - warmup).
    f = LRSchedule("linear", total_steps=10, warmup_steps=4, warmup_offset=0)
    assert [f(t) for t in range(10)] == pytest.approx([0, .25, .5, .75, 1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
    g = LRSchedule("cosine", total_steps=9, warmup_steps=0, min_ratio=0.1)
    assert g(0) == 1.0 and g(9) == pytest.approx(0.1)
    assert g(3) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 3)))
    assert LRSchedule("constant", 10, warmup_steps=2)(0) == 0.5


def test_edm_rampup_matches_edm_formula():
    # EDM training_loop: ema_nimg = min(halflife_kimg * 1000, cur_nimg * rampup); beta = 0.5 ** (batch / ema_nimg)
    batch, halflife_kimg, rampup = 512, 500, 0.05
    halflife_steps = halflife_kimg * 1000 / batch
    ema = EMA(torch.nn.Linear(1, 1), decay=0.5 ** (1 / halflife_steps), rampup_ratio=rampup)
    for step in (1, 10, 1000, 20_000, 10**6):
        edm = 0.5 ** (batch / max(min(halflife_kimg * 1000, step * batch * rampup), 1e-8))
        assert ema.decay_at(step) == pytest.approx(edm, rel=1e-12)
    warm = EMA(torch.nn.Linear(1, 1), decay=0.99, warmup_steps=3)
    assert [warm.decay_at(s) for s in (1, 3, 4)] == [0.0, 0.0, 0.99]


def test_ema_of_training_run_matches_float64_reference(tmp_path):
    decay, warmup = 0.8, 2
    x, y = toy_data(64)
    seen: list[list[np.ndarray]] = []

    def record(state):  # runs after each update: the weights the EMA just absorbed
        seen.append([p.detach().double().numpy().copy() for p in state.model.parameters()])

    model = tiny_net(dropout=0.0)
    initial = [p.detach().double().numpy().copy() for p in model.parameters()]
    cfg = TrainConfig(steps=8, batch_size=16, lr=1e-2, ema_decay=decay, ema_warmup_steps=warmup, progress=False)
    result = train(model, make_loss(noise=0.0), (x, y), cfg, tmp_path, hooks=[Hook(every=1, fn=record)])
    ref = initial
    for step, weights in enumerate(seen, start=1):
        d = 0.0 if step <= warmup else decay
        ref = [d * e + (1 - d) * w for e, w in zip(ref, weights)]
    got = [p.detach().double().numpy() for p in result.ema_model.parameters()]
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-7)
    assert not np.allclose(got[0], seen[-1][0])  # the EMA really lags behind the weights
    assert not result.ema_model.training and not any(p.requires_grad for p in result.ema_model.parameters())


@pytest.mark.parametrize("kwargs, words", [
    (dict(optimizer="lamb"), "optimizer 'lamb'"),
    (dict(schedule="step"), "needs milestones"),
    (dict(warmup_steps=10), "warmup_steps"),
    (dict(ema_decay=1.0), "ema_decay"),
    (dict(precision="fp8"), "precision 'fp8'"),
])
def test_bad_config_is_one_line_bench_error(kwargs, words):
    with pytest.raises(BenchError) as err:
        TrainConfig(steps=10, batch_size=8, lr=1e-3, **kwargs)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_batch_must_split_over_ranks_and_accumulation():
    cfg = TrainConfig(steps=1, batch_size=12, lr=1e-3, grad_accum=2)
    assert cfg.micro_batch(3) == 2
    with pytest.raises(BenchError, match="does not split over 4 process"):
        cfg.micro_batch(4)
