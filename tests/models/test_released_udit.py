"""`bench evaluate u-dit`: official DiT and U-DiT checkpoints (the files facebookresearch/DiT and YuchuanTian/U-DiT
publish) load strictly into bench's models with equal outputs, and the CLI evaluates one end to end.

The checkpoints are written here the official way with random weights: DiT's release is a plain EMA state dict
(torch.save(state_dict)), U-DiT's train.py saves {"model", "ema", "opt", "args": argparse.Namespace}. Models are
the smoke-size configurations; the VAE (an asset) is replaced by the identity pixel codec and the Inception FID by
bench's offline digits extractor, so the run needs no download.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from bench.cli import app
from bench.evaluate import CheckpointError
from methods.u_dit import released
from methods.u_dit.recipe import SMOKE_MODELS
from tests.models.test_dit import official_layout

runner = CliRunner()
# 16x16x1, 10 classes, width 8; label dropout on, as the official models train (their tables hold the null class)
UDIT_TINY = {**SMOKE_MODELS["u-dit-s"]["overrides"], "class_dropout_prob": 0.1}
DIT_TINY = {"input_size": 16, "in_channels": 1, "num_classes": 10, "hidden_size": 32, "depth": 2, "num_heads": 4}


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """One torch and one BLAS thread for every test here (tests/conftest.py)."""


def tiny_layouts(monkeypatch):
    """The real layouts, with the architecture shrunk to the tiny configs (file names and sources unchanged)."""
    layouts = {}
    for entry, layout in released.LAYOUTS.items():
        tiny = DIT_TINY if layout.extra["arch"] == "dit" else UDIT_TINY
        config = "DiT-S/2" if layout.extra["arch"] == "dit" else layout.extra["config"]
        layouts[entry] = dataclasses.replace(layout, extra={**layout.extra, "config": config, "overrides": tiny})
    monkeypatch.setattr(released, "LAYOUTS", layouts)


def spec_for(entry: str, path: Path):
    from bench.evaluate import build_spec

    return build_spec("u-dit", entry, path, sha="0" * 64)


def perturbed(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: v + 0.05 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v.clone()
            for k, v in state.items()}


def save_udit_train_checkpoint(path: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """YuchuanTian/U-DiT train.py: torch.save({"model", "ema", "opt", "args"}, f"{step:07d}.pt"); returns ema."""
    from methods.u_dit.model import udit

    torch.manual_seed(seed)
    model = udit("U-DiT-S", **UDIT_TINY)
    ema = perturbed(model.state_dict(), seed + 1)  # EMA differs from the live model: the loader must take it
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0)
    args = argparse.Namespace(model="U-DiT-S", image_size=256, num_classes=1000, global_batch_size=256,
                              ckpt_every=50_000, vae="ema")
    torch.save({"model": model.state_dict(), "ema": ema, "opt": opt.state_dict(), "args": args}, path)
    return ema


def test_udit_train_checkpoint_loads_its_ema_strictly_with_equal_outputs(tmp_path, monkeypatch):
    tiny_layouts(monkeypatch)
    path = tmp_path / "U-DiT-S-400k.pt"
    ema = save_udit_train_checkpoint(path)
    assert {"t_embedder_1.mlp.0.weight", "y_embedder_3.embedding_table.weight", "down1_2.body.0.weight",
            "encoder_level_1.0.attn1.to_qkv.weight", "final_layer.out_proj.weight"} <= set(ema)  # official names
    loaded = released.load_released(spec_for("u-dit-s", path), path).eval()
    from methods.u_dit.model import udit

    reference = udit("U-DiT-S", **UDIT_TINY)
    reference.load_state_dict(ema, strict=True)
    reference.eval()
    x, t, y = torch.randn(3, 1, 16, 16), torch.tensor([0, 500, 999]), torch.tensor([0, 4, 10])
    with torch.no_grad():
        assert torch.equal(loaded(x, t, y), reference(x, t, y))
    assert all(torch.equal(v, ema[k]) for k, v in loaded.state_dict().items())  # ema, not the live "model"
    assert released.train_iters(path, released.LAYOUTS["u-dit-s"]) == 400_000
    assert released.train_iters(tmp_path / "U-DiT-L-1000k.pt", released.LAYOUTS["u-dit-l"]) == 1_000_000


def test_dit_release_is_a_plain_state_dict_with_the_official_keys(tmp_path, monkeypatch):
    from baselines.dit.model import dit

    tiny_layouts(monkeypatch)
    layout = official_layout(depth=2, hidden=32, patch=2, in_channels=1, classes=10, input_size=16)
    gen = torch.Generator().manual_seed(3)
    state = {k: torch.randn(shape, generator=gen) for k, shape in layout.items()}
    path = tmp_path / "DiT-XL-2-256x256.pt"
    torch.save(state, path)  # download.py's file: the EMA state dict itself
    loaded = released.load_released(spec_for("dit-xl-2", path), path).eval()
    reference = dit("DiT-S/2", **DIT_TINY)
    reference.load_state_dict(state, strict=True)
    reference.eval()
    x, t, y = torch.randn(2, 1, 16, 16), torch.tensor([3, 700]), torch.tensor([1, 10])
    with torch.no_grad():
        assert torch.equal(loaded(x, t, y), reference(x, t, y))
    assert released.train_iters(path, released.LAYOUTS["dit-xl-2"]) == 7_000_000


def test_a_checkpoint_in_another_layout_is_one_line_naming_the_keys(tmp_path, monkeypatch):
    tiny_layouts(monkeypatch)
    path = tmp_path / "U-DiT-S-400k.pt"
    ema = save_udit_train_checkpoint(path)
    wrapped = tmp_path / "ddp.pt"  # a DDP-wrapped state dict: every key prefixed "module."
    torch.save({"ema": {f"module.{k}": v for k, v in ema.items()}}, wrapped)
    with pytest.raises(CheckpointError) as err:
        released.load_released(spec_for("u-dit-s", wrapped), wrapped)
    message = str(err.value)
    assert "\n" not in message and "missing keys x_embedder.proj.weight" in message
    assert "unexpected keys module.x_embedder.proj.weight" in message and "more)" in message
    optimizer_only = tmp_path / "opt.pt"
    torch.save({"opt": {"state": {}}}, optimizer_only)
    with pytest.raises(CheckpointError, match=r"neither a state dict nor a train\.py dict with 'ema' .*'opt'"):
        released.load_released(spec_for("u-dit-s", optimizer_only), optimizer_only)


@pytest.fixture()
def offline_protocol(tmp_path, monkeypatch, store_root):
    """Pixel codec instead of the SD VAE, digits features instead of Inception, and a reference .npz (mu/sigma of
    the digits test split's features) where the ImageNet dataset card puts ADM's."""
    from bench.data.smoke import digits
    from bench.diffusion.latents import unit_to_uint8
    from bench.metrics import generative, offline_fd

    tiny_layouts(monkeypatch)
    monkeypatch.setattr(released, "latent_decoder", lambda ctx: (unit_to_uint8, {"codec": "pixels (test)"}))
    from methods.u_dit import generate

    def digits_fid(store, reference):  # the same sharded Fréchet distance, in the digits CNN's feature space;
        # the record keeps the protocol's dialect name so that the plumbing to the paper's cell is what is tested
        return dataclasses.replace(generate.sharded_fid(store, reference, extractor=offline_fd.EXTRACTOR_NAME),
                                   name="fid@ref-npz")

    monkeypatch.setattr(released, "fid_against_reference", digits_fid)
    images, _ = digits("test")
    mu, sigma, _ = generative.reference_statistics(torch.from_numpy(images[:200]), offline_fd.EXTRACTOR_NAME,
                                                   use_cache=False)
    data_root = tmp_path / "data"
    (data_root / "imagenet").mkdir(parents=True)
    np.savez(data_root / "imagenet" / "VIRTUAL_imagenet256_labeled.npz", mu=mu, sigma=sigma)
    monkeypatch.setenv("BENCH_ASSETS", str(tmp_path / "no-assets"))
    return data_root


def test_cli_evaluates_a_released_udit_beside_the_paper_cell(tmp_path, offline_protocol, store_root, monkeypatch):
    from bench.metrics import generative, offline_fd

    path = tmp_path / "U-DiT-S-400k.pt"
    save_udit_train_checkpoint(path)
    # a real (not rehearsal) run of the paper protocol, its sample count shrunk: only a real run fills a paper cell
    monkeypatch.setitem(released.NUM_SAMPLES, "paper", 6)
    args = ["evaluate", "u-dit", "--entry", "u-dit-s", "--checkpoint", str(path), "--data-root",
            str(offline_protocol), "--device", "cpu", "--format", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    run = out["run"]
    assert run["status"] == "complete" and run["scale"] == "paper"
    assert run["setting"]["checkpoint"].startswith("U-DiT-S-400k.pt@")
    (fid,) = [m for m in run["metrics"] if m["metric"] == "fid@ref-npz"]
    assert fid["setting"] == {"cfg": 1.0, "sampler": "ddpm-250", "train_iters": 400_000} and fid["n"] == 6
    # the recorded FID is the Fréchet distance of the stored samples to the reference, computed independently
    run_dir = store_root / "u-dit" / run["run_id"]
    spec = json.loads((run_dir / "spec.json").read_text())
    assert spec["rehearsal"] == {} and spec["sampler"]["num_samples"] == 6
    shards = sorted((run_dir / "work" / "0" / "samples").glob("*/shard_*"))
    samples = np.concatenate([np.load(p)["samples"] for p in shards])
    assert samples.shape == (6, 1, 16, 16) and samples.dtype == np.uint8
    want = generative.fid_ref_npz(torch.from_numpy(samples), offline_protocol / "imagenet" /
                                  "VIRTUAL_imagenet256_labeled.npz", feature_extractor=offline_fd.EXTRACTOR_NAME)
    assert fid["value"] == pytest.approx(want.value, rel=1e-6)
    # beside Table 2's U-DiT-S cell (fid@adm 31.51, a comparable dialect) with Δ = ours - paper
    (row,) = out["beside_paper"]
    assert row["paper"] == 31.51 and row["paper_metric"] == "fid@adm"
    assert row["delta"] == pytest.approx(fid["value"] - 31.51)
    table = runner.invoke(app, ["table", "u-dit", "--all", "--format", "json"])
    cells = [c for c in json.loads(table.stdout)["cells"] if c["run_id"] == run["run_id"] and c["paper"]]
    assert [(c["entry"], c["metric"]) for c in cells] == [("u-dit-s", "fid@adm")]
    assert cells[0]["ours"] == pytest.approx(fid["value"]) and cells[0]["delta"] == pytest.approx(row["delta"])
    again = runner.invoke(app, args)  # the same checkpoint again is the same run, cached
    assert json.loads(again.stdout)["run"]["run_id"] == run["run_id"]


def test_cli_dit_release_at_7m_steps_records_its_own_setting_without_a_delta(tmp_path, offline_protocol, store_root):
    layout = official_layout(depth=2, hidden=32, patch=2, in_channels=1, classes=10, input_size=16)
    gen = torch.Generator().manual_seed(5)
    path = tmp_path / "DiT-XL-2-256x256.pt"
    torch.save({k: 0.02 * torch.randn(shape, generator=gen) for k, shape in layout.items()}, path)
    result = runner.invoke(app, ["evaluate", "u-dit", "-e", "DiT-XL-2", "-c", str(path), "--data-root",
                                 str(offline_protocol), "--max-samples", "4", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    (row,) = out["beside_paper"]
    assert row["setting"] == "cfg=1.0,sampler=ddpm-250,train_iters=7000000"
    assert row["paper"] is None and row["delta"] is None  # the paper's DiT-XL/2 cell is at 400K steps
    assert out["run"]["metrics"][0]["n"] == 4  # --max-samples: a rehearsal of the 50K-sample protocol
    spec = json.loads((store_root / "u-dit" / out["run"]["run_id"] / "spec.json").read_text())
    assert spec["rehearsal"] == {"max_samples": 4} and spec["sampler"]["num_samples"] == 50_000


def test_missing_checkpoint_and_missing_reference_are_one_line_each(tmp_path, monkeypatch, store_root):
    tiny_layouts(monkeypatch)
    result = runner.invoke(app, ["evaluate", "u-dit", "-e", "u-dit-b", "-c", str(tmp_path / "U-DiT-B-400k.pt"),
                                 "--device", "cpu"])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and "U-DiT-B-400k.pt" in line and "huggingface.co/yuchuantian/U-DiT" in line
    nothing = runner.invoke(app, ["evaluate", "u-dit", "-e", "dit-b-2-retrained", "-c", str(tmp_path / "x.pt")])
    assert nothing.exit_code == 2 and "has no released checkpoint" in nothing.stderr
    path = tmp_path / "U-DiT-S-400k.pt"
    save_udit_train_checkpoint(path)
    monkeypatch.setenv("BENCH_ASSETS", str(tmp_path / "empty-assets"))
    result = runner.invoke(app, ["evaluate", "u-dit", "-e", "u-dit-s", "-c", str(path), "--device", "cpu"])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and "VIRTUAL_imagenet256_labeled.npz" in line
    reference = tmp_path / "data" / "imagenet" / "VIRTUAL_imagenet256_labeled.npz"
    reference.parent.mkdir(parents=True)
    np.savez(reference, mu=np.zeros(2), sigma=np.eye(2))
    result = runner.invoke(app, ["evaluate", "u-dit", "-e", "u-dit-s", "-c", str(path), "--device", "cpu",
                                 "--data-root", str(tmp_path / "data")])
    assert result.exit_code == 2
    line = result.stderr.strip()  # the VAE is checked before any sampling
    assert "\n" not in line and "sd-vae-ft-ema" in line and "huggingface.co/stabilityai/sd-vae-ft-ema" in line
