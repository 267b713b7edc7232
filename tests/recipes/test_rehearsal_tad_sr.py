"""CPU rehearsal of TAD-SR's small/paper code path in the VQGAN f4 latent: ResShift's test sets and ImageNet train
images in their official layouts (tests/fixtures_official/resshift.py), the two assets written in their official
layouts (``autoencoder_vq_f4.pth``: a VQModelTorch state dict; ``resshift_realsrx4_s15_v1.pth``: a UNetModelSwin
state dict under ``state_dict`` with DDP's ``module.`` prefix, which ResShift's loader accepts), 2 distillation
steps, 2 test images.

Shrunk in the spec, code path unchanged: both networks (a 32-channel f4 VQGAN with a 64-code book, a 16-channel
two-level Swin-UNet; the real ones cost minutes per CPU step), the discriminator's widths, the GT crop (64) and
the batch (2).
Metrics: the pyiqa metrics (lpips_alex, clipiqa, musiq) need weights that a test cannot write at a useful size, so
the rehearsal shows that a missing one stops the run in one line, and then runs with psnr/ssim only (the
test overrides spec.metrics; `bench reproduce tad-sr --scale small --max-steps/--max-samples` with the pyiqa
weights in $BENCH_ASSETS computes them all)."""
from __future__ import annotations

import math

import pytest
import torch

from bench import runner
from bench.registry import BenchError
from bench.store import Store
from tests.fixtures_official.resshift import (
    unet_swin_layout,
    vqmodel_torch_layout,
    write_tad_sr_data_root,
    write_vqgan_checkpoint,
)

pytestmark = pytest.mark.slow

CAPS = {"max_steps": 2, "max_samples": 2}
TINY_UNET = dict(image_size=16, in_channels=3, model_channels=16, out_channels=3, attention_resolutions=[8],
                 channel_mult=[1, 2], num_res_blocks=[1, 1], num_head_channels=8, swin_depth=2, swin_embed_dim=16,
                 window_size=4, mlp_ratio=2.0, lq_size=16, norm_groups=8)
TINY_VQ = dict(embed_dim=3, n_embed=64, ddconfig=dict(double_z=False, z_channels=3, resolution=64, in_channels=3,
                                                      out_ch=3, ch=32, ch_mult=[1, 2, 4], num_res_blocks=2,
                                                      attn_resolutions=[], dropout=0.0))
PSNR_SSIM = ["psnr_y@matlab", "ssim_y@matlab"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_tad_sr_data_root(tmp_path_factory.mktemp("tad-sr-data"))


@pytest.fixture(autouse=True)
def assets(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_ASSETS", str(tmp_path / "assets"))
    (tmp_path / "assets").mkdir()
    return tmp_path / "assets"


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """One torch and one BLAS thread (tests/conftest.py)."""


def _write_assets(folder):
    from baselines.resshift.unet import UNetModelSwin

    write_vqgan_checkpoint(folder / "autoencoder_vq_f4.pth", seed=1, ch=32, n_embed=64)
    torch.manual_seed(0)
    state = UNetModelSwin(**TINY_UNET).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == unet_swin_layout(**TINY_UNET)  # the official names
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, folder / "resshift_realsrx4_s15_v1.pth")


def _specs(scale, dataset, data_root, metrics=None):
    specs = [s for s in runner.plan("tad-sr", scale, data_root=data_root, rehearsal=CAPS) if s.dataset == dataset]
    return {s.entry: s.with_overrides(train={**s.train, "model": TINY_UNET, "autoencoder_config": TINY_VQ,
                                             "gt_size": 64, "batch_size": 2,
                                             "discriminator": {"c_dim": 8, "embed_dim": 16, "norm_groups": 8}},
                                      sampler={**s.sampler, "padding_offset": 16, "chop_size": 16,
                                               "chop_stride": 12},
                                      metrics=metrics)
            for s in specs}


def _run(spec, store, data_root, logs=None):
    return runner.execute(spec, store, data_root=data_root, show_progress=False,
                          log=(logs.append if logs is not None else lambda m: None)).result


def test_small_rehearsal_runs_teacher_and_both_students_in_the_latent(store_root, data_root, assets):
    store = Store(store_root)
    full = _specs("small", "resshift-imagenet-test", data_root)
    with pytest.raises(BenchError, match=r"missing asset resshift-vqgan-f4") as err:
        _run(full["tad-sr"], store, data_root)
    assert "\n" not in str(err.value)
    _write_assets(assets)
    with pytest.raises(BenchError, match=r"missing asset (lpips|clip|musiq)") as err:  # pyiqa weights: one line
        _run(full["tad-sr"], store, data_root)
    assert "\n" not in str(err.value)

    specs = _specs("small", "resshift-imagenet-test", data_root, metrics=PSNR_SSIM)
    logs: list[str] = []
    results = {entry: _run(spec, store, data_root, logs) for entry, spec in specs.items()}
    for entry, result in results.items():
        assert result["status"] == "complete" and result["rehearsal"] == CAPS, entry
        metrics = {m["metric"]: m for m in result["metrics"]}
        assert set(metrics) == {*PSNR_SSIM, "psnr_gain_y@untrained"}
        assert {m["n"] for m in metrics.values()} == {2}
        assert 5 < metrics["psnr_y@matlab"]["value"] < 60
    assert results["resshift"]["cost"]["nfe"] == 15 and "train_steps" not in results["resshift"]["cost"]
    assert results["sinsr"]["cost"]["nfe"] == results["tad-sr"]["cost"]["nfe"] == 1
    assert results["sinsr"]["cost"]["train_steps"] == results["tad-sr"]["cost"]["train_steps"] == 2
    assert results["tad-sr"]["provenance"]["student"]["last_losses"].keys() >= {"mse", "hsd", "d", "adv"}
    # the student is a copy of the teacher; the autoencoder's count is its official layout's
    vq_params = sum(math.prod(shape) for shape in vqmodel_torch_layout(ch=32, n_embed=64).values()) / 1e6
    for result in results.values():
        assert result["cost"]["params_m"] == results["resshift"]["cost"]["params_m"] > 0
        assert result["cost"]["autoencoder_params_m"] == pytest.approx(vq_params)

    # another evaluation of the same student (here: another metric list) reuses its training
    again = _specs("small", "resshift-imagenet-test", data_root, metrics=["psnr_y@matlab"])["tad-sr"]
    logs.clear()
    assert _run(again, store, data_root, logs)["provenance"]["student"]["reused"]
    assert any("reusing the finished training" in line for line in logs)


def test_paper_rehearsal_names_missing_training_images_and_tiles_large_inputs(store_root, data_root, assets,
                                                                               tmp_path):
    import shutil

    from methods.tad_sr import latent
    from methods.tad_sr import pipeline as P

    _write_assets(assets)
    bare = tmp_path / "bare"
    shutil.copytree(data_root, bare, ignore=shutil.ignore_patterns("imagenet"))
    spec = _specs("paper", "resshift-imagenet-test", bare, metrics=PSNR_SSIM)["sinsr"]
    with pytest.raises(BenchError, match=r"no images under .*imagenet/train") as err:
        _run(spec, Store(store_root), bare)
    assert "\n" not in str(err.value)

    # RealSR's image is larger than a tile (16): tiles with stride 12, averaged; RealSet65's is padded to 16
    vq = latent.load_autoencoder(assets / "autoencoder_vq_f4.pth", TINY_VQ)
    net = latent.load_teacher(assets / "resshift_realsrx4_s15_v1.pth", TINY_UNET)
    space = latent.LatentSpace(vq, 4)
    schedule = P.make_schedule({**spec.sampler, "space": "latent"})
    from bench.data.images import list_images, read_image

    for folder, shape in (("realsr/testdata/RealSR", (20, 24)), ("realset65/testdata/RealSet65", (12, 14))):
        lr = P.to_tensor([read_image(list_images(data_root / folder)[0])])
        assert tuple(lr.shape[-2:]) == shape
        sr = latent.super_resolve(net, space, schedule, lr, 1, 0, chop_size=16, chop_stride=12, offset=16)
        assert sr.shape == (1, 3, 4 * shape[0], 4 * shape[1]) and torch.isfinite(sr).all()
        assert sr.abs().max() <= 1


def test_cli_rehearsal_stops_in_one_line_on_the_first_missing_asset(store_root, data_root, assets):
    from typer.testing import CliRunner

    from bench.cli import app

    env = {"BENCH_ASSETS": str(assets), "BENCH_RESULTS": str(store_root)}
    result = CliRunner().invoke(app, ["reproduce", "tad-sr", "--scale", "small", "--data-root", str(data_root),
                                      "--max-steps", "2", "--max-samples", "2"], env=env)
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "missing asset resshift-vqgan-f4" in errors[0], result.output
