"""TAD-SR's distillation pieces: the time-aware discriminator at the official layout, the teacher-encoder taps it
reads, the HSD gradient and the hinge losses against hand calculations, and SinSR's loss on a perfect student."""
from __future__ import annotations

import copy

import pytest
import torch

from baselines.resshift.schedule import ResShiftSchedule
from baselines.resshift.sinsr import sinsr_loss, student_forward
from baselines.resshift.unet import UNetModelSwin, build
from methods.tad_sr import distill as D
from tests.fixtures_official.resshift import (
    projected_discriminator_layout,
    random_state_dict,
)

TINY = dict(image_size=16, model_channels=16, channel_mult=(1, 2), num_res_blocks=(1, 1), attention_resolutions=(8,),
            num_head_channels=8, swin_embed_dim=16, window_size=4, mlp_ratio=2.0, lq_size=16, norm_groups=8)


def test_official_discriminator_layout_loads_strictly():
    disc = D.TimeAwareDiscriminator(**D.OFFICIAL_D)
    layout = projected_discriminator_layout(c_dim=64, embed_dim=160)
    assert {k: tuple(v.shape) for k, v in disc.state_dict().items()} == layout
    missing, unexpected = disc.load_state_dict(random_state_dict(layout), strict=True)
    assert not missing and not unexpected


def test_the_official_teacher_taps_give_the_discriminator_its_five_feature_maps():
    teacher = build().eval()
    taps = D.discriminator_taps(teacher)
    assert taps == (3, 6, 9, 11)
    x = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        feats = teacher.encoder_features(x, torch.tensor([5]), x, taps)
    # dossier 6.3 / 10: (160, 32, 32), (320, 16, 16), (320, 8, 8), (640, 8, 8), (640, 8, 8)
    assert [tuple(f.shape[1:]) for f in feats] == [(160, 32, 32), (320, 16, 16), (320, 8, 8), (640, 8, 8), (640, 8, 8)]
    disc = D.TimeAwareDiscriminator(**D.OFFICIAL_D).eval()
    with torch.no_grad():
        logits = disc(feats, torch.tensor([5]))
    # every head emits c_dim = 64 logits per spatial position
    assert logits.shape == (1, 64 * (32 * 32 + 16 * 16 + 3 * 8 * 8))


def test_hinge_losses_by_hand():
    real = torch.tensor([[2.0, 0.5, -1.0]])
    fake = torch.tensor([[-2.0, 0.0, 0.5]])
    # relu(1 - real) = [0, 0.5, 2] -> 5/6 ; relu(1 + fake) = [0, 1, 1.5] -> 5/6
    assert D.hinge_d_loss(real, fake).item() == pytest.approx(5 / 6 + 5 / 6)


class _Affine(torch.nn.Module):
    """A fixed denoiser x0 = a * x_in + b * lq: enough to check the HSD arithmetic by hand."""

    def __init__(self, a: float, b: float):
        super().__init__()
        self.a, self.b, self.w = a, b, torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, lq):
        return self.a * x + self.b * lq + 0 * self.w


@pytest.mark.parametrize("distill,uniform,double", [("hsd", True, True), ("hsd", False, False), ("sds", True, False)])
def test_score_distillation_gradient_is_the_noise_difference_over_chw(distill, uniform, double):
    s = ResShiftSchedule(clip_denoised=False)
    teacher = _Affine(0.7, 0.2)
    gen = torch.Generator().manual_seed(3)
    y = torch.randn(2, 3, 4, 4, generator=gen)
    t_out = torch.randn(2, 3, 4, 4, generator=gen)
    out = torch.randn(2, 3, 4, 4, generator=gen, requires_grad=True)
    opts = D.TadOptions(distill=distill, uniform_noise=uniform, double_scale=double)
    loss = D.score_distillation(s, teacher, y, out, t_out, opts, torch.Generator().manual_seed(9))
    loss.backward()
    # redo the draws: k in {0, 1, 2}, then the perturbation noise
    g2 = torch.Generator().manual_seed(9)
    k = torch.randint(0, 3, (2,), generator=g2)
    xi = torch.rand(out.shape, generator=g2) if uniform else torch.randn(out.shape, generator=g2)

    def implied(x0):
        eta = torch.tensor(s.etas)[k].view(-1, 1, 1, 1).float()
        x_k = x0 + eta * (y - x0) + 2.0 * eta.sqrt() * xi
        x_in = x_k / torch.sqrt(4 * eta + 1) if double else x_k
        x_in = x_in / torch.sqrt(4 * eta + 1)
        pred = 0.7 * x_in + 0.2 * y
        return (x_k - pred - eta * (y - pred)) / (2.0 * eta.sqrt())

    g = implied(out.detach()) - (implied(t_out) if distill == "hsd" else xi)
    assert torch.allclose(out.grad, g / (3 * 4 * 4) / 2, atol=1e-4)  # per-sample mean, then batch mean of 2


def test_sinsr_loss_is_zero_for_a_student_that_is_exact_in_both_directions():
    """A student whose forward map sends x_T to the teacher's sample and whose t = 0 map inverts it has zero
    regression and learn_xT terms; the consistency term then compares GT with the map's round trip."""
    s = ResShiftSchedule()
    y = torch.zeros(1, 3, 4, 4)
    noise = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    x_T = s.prior_sample(y, noise)
    scale = 1 / (4 * s.etas[-1] + 1) ** 0.5

    class Exact(torch.nn.Module):  # forward: x_in / scale * 0.5 ; inverse (t = 0): x_in / scale * 2
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x_in, t, lq):
            factor = 0.5 if int(t[0]) == s.steps - 1 else 2.0
            return x_in / scale * factor + 0 * self.w

    student = Exact()
    teacher_out = 0.5 * x_T
    gt = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    loss, out = sinsr_loss(s, student, y, noise, teacher_out, gt)
    assert torch.allclose(out, teacher_out, atol=1e-5)
    assert loss.item() == pytest.approx(0.0, abs=1e-8)  # the round trip 0.5 * 2 is the identity on GT too


def test_a_tad_sr_step_updates_the_student_and_not_the_teacher(one_torch_thread):
    from methods.tad_sr import pipeline as P

    torch.manual_seed(0)
    teacher = UNetModelSwin(**TINY).eval()
    before = copy.deepcopy(teacher.state_dict())
    s = P.make_schedule({"steps": 15, "kappa": 2.0, "min_noise_level": 0.04, "etas_end": 0.99, "power": 0.3,
                         "space": "pixel"})
    hr = torch.rand(4, 3, 16, 16) * 2 - 1
    data = P.Pairs(hr, torch.nn.functional.avg_pool2d(hr, 4), 4)
    pool = (torch.randn(4, 3, 16, 16), hr.clone())
    student, info = P.distill_student("tad-sr", teacher, s, data, pool, {"steps": 2, "batch_size": 2, "lr": 1e-3},
                                      D.TadOptions(), 0, {"c_dim": 4, "embed_dim": 8, "norm_groups": 8},
                                      log=lambda _: None)
    assert set(info["last"]) == {"mse", "hsd", "d", "adv"}
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    changed = [k for k, v in student.state_dict().items() if not torch.equal(v, before[k])]
    assert changed  # the student moved
    with torch.no_grad():
        assert student_forward(s, student, data.y[:1], torch.zeros(1, 3, 16, 16)).shape == (1, 3, 16, 16)


def test_whole_photo_pairs_crop_the_lr_where_the_hr_was_cropped(monkeypatch):
    """With the degradation replaced by a 4x4 box mean (computed here by hand with numpy), every LR crop must
    be exactly the box mean of its HR crop: the crops of a whole-photo draw are aligned at x4."""
    import numpy as np

    from bench.data import realesrgan_degrade
    from methods.tad_sr import pipeline as P

    def box_mean(hr, rng, cfg):
        h, w, c = hr.shape
        return hr.reshape(h // 4, 4, w // 4, 4, c).astype(np.float64).mean(axis=(1, 3)).round().astype(np.uint8)

    monkeypatch.setattr(realesrgan_degrade, "degrade", box_mean)
    pairs = P.smoke_whole_photo_pairs(draws=3, crops_per_draw=2, hr_patch=16, photo_size=64, sf=4, seed=0)
    assert pairs.hr.shape == (6, 3, 16, 16) and pairs.lr.shape == (6, 3, 4, 4)
    hr, lr = P.to_uint8(pairs.hr), P.to_uint8(pairs.lr)
    for h, low in zip(hr, lr):
        assert np.array_equal(box_mean(h, None, None), low)
