"""The training loop: hand-computed updates, logs, determinism, hooks, progress, non-finite loss."""
from __future__ import annotations

import io
import json

import pytest
import torch
from torch import nn

from bench.registry import BenchError
from bench.train import Hook, LRSchedule, TrainConfig, load_for_eval, read_log, train
from bench.train.progress import ProgressBar, progress_enabled

from ._fixtures import make_loss, resume_config, tiny_net, toy_data


def _linear_probe(w0: list[float]) -> nn.Linear:
    model = nn.Linear(len(w0), 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([w0]))
    return model


@pytest.mark.parametrize("clip, expected_step", [(None, [-3.0, -4.0, 0.0]), (1.0, [-0.6, -0.8, 0.0])])
def test_sgd_step_with_and_without_clipping_by_hand(tmp_path, clip, expected_step):
    # loss = w . a has gradient a = (3, 4, 0), |a| = 5; SGD with lr 1 moves w by -a * min(1, clip / 5).
    a = torch.tensor([3.0, 4.0, 0.0])
    model = _linear_probe([1.0, 1.0, 1.0])
    cfg = TrainConfig(steps=1, batch_size=2, lr=1.0, optimizer="sgd", momentum=0.0, grad_clip=clip, progress=False)
    result = train(model, lambda m, batch: (m.weight[0] * a).sum(), torch.zeros(4, 1), cfg, tmp_path)
    assert (model.weight[0] - 1.0).tolist() == pytest.approx(expected_step)
    assert read_log(result.log_path)[0]["grad_norm"] == pytest.approx(5.0)


def test_gradient_accumulation_equals_one_big_batch(tmp_path):
    # Reference: one SGD step on the mean-squared error of the first 8 items, computed with autograd.
    torch.manual_seed(0)
    x, y = torch.randn(8, 3), torch.randn(8)
    w0 = [0.5, -0.2, 0.1]
    reference = _linear_probe(w0)
    nn.functional.mse_loss(reference(x).squeeze(-1), y).backward()
    expected = torch.tensor([w0]) - 0.1 * reference.weight.grad

    def loss_fn(m, batch):
        xb, yb = batch
        return nn.functional.mse_loss(m(xb).squeeze(-1), yb)

    model = _linear_probe(w0)
    cfg = TrainConfig(steps=1, batch_size=8, grad_accum=2, lr=0.1, optimizer="sgd", momentum=0.0, shuffle=False,
                      progress=False)
    train(model, loss_fn, (x, y), cfg, tmp_path)
    torch.testing.assert_close(model.weight.detach(), expected, rtol=1e-6, atol=1e-7)


def test_jsonl_log_records_loss_lr_grad_norm_and_time(tmp_path):
    x, y = toy_data(64)
    model = tiny_net(dropout=0.0)
    # Loss of the first step, by hand: the untrained model on the first 16 items (shuffle off).
    first_loss = nn.functional.cross_entropy(model(x[:16]), y[:16]).item()
    cfg = TrainConfig(steps=6, batch_size=16, lr=1e-2, schedule="cosine", warmup_steps=2, log_every=2,
                      shuffle=False, progress=False)
    train(model, make_loss(noise=0.0), (x, y), cfg, tmp_path)
    records = read_log(tmp_path / "train_log.jsonl")
    assert [r["step"] for r in records] == [2, 4, 6]
    schedule = LRSchedule.from_config(cfg)
    assert [r["lr"] for r in records] == pytest.approx([1e-2 * schedule(s - 1) for s in (2, 4, 6)])
    assert all(r["grad_norm"] > 0 and r["step_time_s"] > 0 for r in records)
    assert json.loads((tmp_path / "train_config.json").read_text())["warmup_steps"] == 2

    again = tiny_net(dropout=0.0)
    cfg1 = TrainConfig(steps=1, batch_size=16, lr=1e-2, shuffle=False, progress=False)
    train(again, make_loss(noise=0.0), (x, y), cfg1, tmp_path / "one")
    assert read_log(tmp_path / "one" / "train_log.jsonl")[0]["loss"] == pytest.approx(first_loss, rel=1e-6)


def test_same_seed_is_bitwise_deterministic_and_seed_matters(tmp_path):
    x, y = toy_data(64)
    runs = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        model = tiny_net()
        train(model, make_loss(), (x, y), resume_config(steps=6, seed=seed), tmp_path / name)
        runs.append(model.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not torch.equal(runs[0]["0.weight"], runs[2]["0.weight"])


def test_hooks_are_logged_and_do_not_change_training(tmp_path):
    x, y = toy_data(64)
    calls = []

    def noisy_eval(state):  # draws random numbers, like a sampler would
        calls.append(state.step)
        return {"probe": float(torch.randn(3).sum()), "ema_is_eval": not state.ema_model.training}

    plain, hooked = tiny_net(), tiny_net()
    train(plain, make_loss(), (x, y), resume_config(steps=7), tmp_path / "plain")
    train(hooked, make_loss(), (x, y), resume_config(steps=7), tmp_path / "hooked", hooks=[Hook(every=3, fn=noisy_eval)])
    assert calls == [3, 6, 7]  # every 3 steps and at the end
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), hooked.state_dict().values()))
    events = [r for r in read_log(tmp_path / "hooked" / "train_log.jsonl") if r.get("event") == "eval"]
    assert [e["step"] for e in events] == [3, 6, 7] and events[0]["ema_is_eval"] is True


def test_non_finite_loss_stops_with_step_and_last_checkpoint(tmp_path):
    x, y = toy_data(64)
    base = make_loss()
    calls = {"n": 0}

    def exploding(model, batch):
        calls["n"] += 1
        loss = base(model, batch)
        return loss * float("nan") if calls["n"] == 7 else loss

    with pytest.raises(BenchError) as err:
        train(tiny_net(), exploding, (x, y), resume_config(steps=10, ckpt_every=5), tmp_path)
    message = str(err.value)
    assert "non-finite loss" in message and "step 7" in message and "step_00000005.pt" in message
    assert "\n" not in message
    saved = torch.load(tmp_path / "checkpoints" / "step_00000005.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


def test_existing_checkpoints_need_resume_and_an_unchanged_config(tmp_path):
    x, y = toy_data(64)
    train(tiny_net(), make_loss(), (x, y), resume_config(steps=4), tmp_path)
    with pytest.raises(BenchError, match="already holds checkpoints"):
        train(tiny_net(), make_loss(), (x, y), resume_config(steps=4), tmp_path)
    with pytest.raises(BenchError, match="config field 'lr' changed"):
        train(tiny_net(), make_loss(), (x, y), resume_config(steps=4, lr=1.0), tmp_path, resume=True)
    done = train(tiny_net(), make_loss(), (x, y), resume_config(steps=4, log_every=2), tmp_path, resume=True)
    assert done.step == 4  # a finished run resumes to "nothing left to do"


def test_load_for_eval_gives_the_ema_weights(tmp_path):
    x, y = toy_data(64)
    result = train(tiny_net(), make_loss(), (x, y), resume_config(steps=4), tmp_path)
    fresh = load_for_eval(tiny_net(seed=123), result.last_checkpoint)
    assert not fresh.training
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), result.ema_model.state_dict().values()))


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal_and_shows_loss_rate_eta():
    assert progress_enabled(None, io.StringIO()) is False
    assert progress_enabled(None, _Tty()) is True
    assert progress_enabled(False, _Tty()) is False
    assert progress_enabled(True, io.StringIO(), rank=1) is False
    from rich.console import Console

    out = io.StringIO()
    bar = ProgressBar(10, enabled=True, console=Console(file=out, force_terminal=True, width=120))
    bar.update(5, 0.1234)
    bar.close()
    text = out.getvalue()
    assert "5/10" in text and "loss 0.1234" in text and "steps/s" in text and "ETA" in text


@pytest.mark.parametrize("precision, dtype", [("auto", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_precision_autocasts_the_forward_and_keeps_fp32_weights(tmp_path, precision, dtype):
    x, y = toy_data(64)
    seen = set()

    def loss_fn(model, batch):
        logits = model(batch[0])
        seen.add(logits.dtype)
        return nn.functional.cross_entropy(logits.float(), batch[1])

    model = tiny_net()
    cfg = TrainConfig(steps=2, batch_size=16, lr=1e-3, precision=precision, progress=False)
    result = train(model, loss_fn, (x, y), cfg, tmp_path)
    assert seen == {dtype}  # auto on CPU is exact fp32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    scaler = torch.load(result.last_checkpoint, weights_only=True)["scaler"]
    assert (scaler is not None) == (precision == "fp16")  # fp16 needs a loss scaler, saved for resume


class _PairDataset(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


@pytest.mark.parametrize("workers", [0, 1])
def test_map_style_dataset_trains_exactly_like_tensor_data(tmp_path, workers):
    x, y = toy_data(64)
    from_tensors, from_dataset = tiny_net(), tiny_net()
    train(from_tensors, make_loss(), (x, y), resume_config(steps=6), tmp_path / "t")
    cfg = resume_config(steps=6, num_workers=workers)
    train(from_dataset, make_loss(), _PairDataset(x, y), cfg, tmp_path / "d")  # collated by default_collate
    assert all(torch.equal(a, b) for a, b in zip(from_tensors.state_dict().values(), from_dataset.state_dict().values()))
