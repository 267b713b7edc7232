"""CPU rehearsal of U-DiT's small and paper code paths (issue 15): ImageNet's train folder, ADM's reference
batch, the SD VAE folder and torch-fidelity's Inception weights written in their official layouts
(tests/fixtures_official/), then a few training steps, a few samples, fid@ref-npz / the digits metrics, the
record and the table; the small scale also under `--nproc 2` (torchrun, gloo) through the CLI, the paper scale
under torchrun with 2 gloo workers.

The rehearsal caps (RunSpec.rehearsal, bench.diffusion.rehearsal) cut training steps and batch, samples and
solver steps. The paper test also keeps one of the paper's two sampler settings (cfg 1.5, the guided one; the
unguided DDPM path runs in the small tests): each fid@ref-npz costs a 2048 x 2048 matrix square root (scipy
sqrtm, 10-20 CPU seconds) whatever the sample count, and the code path is the same for both settings."""
from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from bench import assets, runner
from bench.cli import app
from bench.registry import BenchError
from bench.store import Store
from tests.fixtures_official.imagenet import write_adm_reference, write_imagenet
from tests.fixtures_official.inception import FILENAME as INCEPTION_FILE
from tests.fixtures_official.inception import write_inception_weights
from tests.fixtures_official.sd_vae import write_sd_vae
from tests.recipes.conftest import table_cells

CAPS = {"max_steps": 2, "max_samples": 4}
REFERENCE = "imagenet/VIRTUAL_imagenet256_labeled.npz"


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """data/ (ImageNet train + val folders, ADM's reference batch) and assets/ (SD VAE, Inception)."""
    root = tmp_path_factory.mktemp("udit-official")
    write_imagenet(root / "data")
    write_adm_reference(root / "data" / REFERENCE)
    write_sd_vae(root / "assets" / "sd-vae-ft-ema")
    write_inception_weights(root / "assets" / INCEPTION_FILE)
    return root


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """One torch and one BLAS thread for every test here (tests/conftest.py)."""


def _metrics(result):
    return list(result["metrics"])


def _table_cells(env, run_ids):
    return table_cells("u-dit", env, run_ids)


def _guided_only(spec):
    return spec.with_overrides(sampler={**spec.sampler,
                                        "settings": [s for s in spec.sampler["settings"] if s["cfg"] == 1.5]})


def paper_worker(argv):
    """One torchrun worker of the 2-process paper rehearsal (bench.distributed.launch calls it after
    init_distributed): the same spec as `bench reproduce --nproc 2` plans, with the guided setting only."""
    from pathlib import Path

    from bench import distributed as dist

    data = Path(argv[0])
    (spec,) = runner.plan("u-dit", "paper", ["u-dit-s"], data_root=data, world_size=dist.get_world_size(),
                          rehearsal=CAPS)
    out = runner.execute(_guided_only(spec), Store(), data_root=data, show_progress=False, device="cpu",
                         log=print if dist.is_main_process() else (lambda m: None))
    if dist.is_main_process():
        print(f"run {out.run_id} {out.result['status']}", flush=True)


# ------------------------------------------------------------------------------------------ fixtures' layouts
def test_fixture_imagenet_opens_through_its_card(official):
    """The ImageNet fixture is what the card and ImageNetFolder accept: 1000 wnid folders, sorted-wnid labels,
    the ADM centre crop to 256x256."""
    from bench.data.cards import check_layout, load_dataset_card
    from bench.data.formats import open_dataset

    assert check_layout(load_dataset_card("imagenet-256"), official / "data") == []
    train = open_dataset("imagenet-256", "train", official / "data")
    assert len(train) == 1000
    item = train[417]
    assert item["label"] == 417 and item["path"].startswith("n00000417/n00000417_")
    assert item["image"].shape == (256, 256, 3) and item["image"].dtype.name == "uint8"
    import numpy as np

    with np.load(official / "data" / REFERENCE) as ref:
        assert ref["mu"].shape == (2048,) and ref["sigma"].shape == (2048, 2048)
        assert ref["arr_0"].shape[1:] == (256, 256, 3)


def test_stand_in_asset_is_accepted_only_inside_a_rehearsal(official, monkeypatch, capfd):
    """The random Inception file has the official name but not the published sha256: a real run refuses it
    with one line; inside bench.assets.rehearsal_assets it is used with a warning."""
    monkeypatch.setenv("BENCH_ASSETS", str(official / "assets"))
    with pytest.raises(BenchError, match="wrong sha256") as err:
        assets.require("inception-v3-compat")
    assert "\n" not in str(err.value)
    with assets.rehearsal_assets(True):
        assert assets.require("inception-v3-compat") == official / "assets" / INCEPTION_FILE
    assert "rehearsal: using asset inception-v3-compat" in capfd.readouterr().err
    with assets.rehearsal_assets(False), pytest.raises(BenchError, match="wrong sha256"):
        assets.require("inception-v3-compat")


# ----------------------------------------------------------------------------------------------- small scale
@pytest.mark.slow
def test_udit_small_rehearsal_with_the_sd_vae(bench_env, store_root):
    """Small scale, DiT-S/2 on digits encoded by the SD VAE (found in BENCH_ASSETS, so the plan takes the VAE
    branch): 2 steps of batch 4, 4 samples in 2 shards at DDPM-250 and DDIM-50 (2 solver steps each), decoded by
    the VAE, fd_digits / kd_digits / class accuracy, the record and the table."""
    (spec,) = runner.plan("u-dit", "small", ["dit-s-2-retrained"], rehearsal=CAPS)
    assert spec.setting["latent"] == "sd-vae-ft-ema" and spec.rehearsal == CAPS
    out = runner.execute(spec, Store(store_root), show_progress=False, log=lambda m: None)
    result = out.result
    assert result["status"] == "complete" and result["rehearsal"]
    assert result["cost"]["train_steps"] == 2  # max_steps reached the training config
    assert result["cost"]["input_shape"] == [4, 32, 32]  # the paper's latent shape, from the VAE (256 / 8)
    metrics = _metrics(result)
    assert {m["metric"] for m in metrics} == {"fd_digits", "kd_digits", "class_acc@digits-cnn"}
    assert {(m["setting"]["sampler"], m["setting"]["nfe"]) for m in metrics} == {("ddpm", 250), ("ddim", 50)}
    for m in metrics:
        assert m["n"] == 4  # max_samples reached the sampler and the metrics
        assert m["protocol"]["rehearsal_nfe_run"] == 2 and m["protocol"]["setting_nfe"] == m["setting"]["nfe"]
    sampling = result["cost"]["sampling"]
    assert set(sampling) == {"ddpm-nfe250-cfg1.0", "ddim-nfe50-cfg1.0"}
    for info in sampling.values():  # per setting: two shards of two samples, 2 network calls per sample
        assert info["shards_generated"] == 2 and info["samples_generated"] == 4
        assert info["sampling_stats"]["nfe"] == 2
    assert result["provenance"]["latent"]["codec"] == "sd-vae-ft-ema"
    real = runner.plan("u-dit", "small", ["dit-s-2-retrained"])[0]
    assert real.run_id() != spec.run_id()  # a rehearsal never mixes with the real run
    cells = _table_cells(bench_env, {out.run_id})
    assert cells and all(c["rehearsal"] and c["paper"] is None for c in cells)


@pytest.mark.slow
def test_udit_small_rehearsal_cli_nproc2_gloo(official, tmp_path, store_root):
    """`bench reproduce u-dit --scale small --entry u-dit-s --max-steps 2 --max-samples 4 --nproc 2`: two gloo
    workers on the CPU (training DDP, sample shards dealt to ranks), without the VAE asset (the exact
    space-to-depth latents), then the table with the rehearsal badge."""
    no_vae = tmp_path / "assets"
    no_vae.mkdir()
    env = {"BENCH_RESULTS": str(store_root), "BENCH_ASSETS": str(no_vae), "BENCH_CACHE": str(tmp_path / "cache")}
    cli = CliRunner()
    res = cli.invoke(app, ["reproduce", "u-dit", "--scale", "small", "--entry", "u-dit-s", "--max-steps", "2",
                           "--max-samples", "4", "--nproc", "2", "--device", "cpu"], env=env)
    assert res.exit_code == 0, res.output
    (spec,) = runner.plan("u-dit", "small", ["u-dit-s"], world_size=2, rehearsal=CAPS)
    result = Store(store_root).read_result(Store(store_root).run_dir(spec))
    assert result is not None and result["status"] == "complete"
    assert spec.setting["latent"] == "space-to-depth-2"
    assert result["cost"]["train_steps"] == 2 and {m["n"] for m in result["metrics"]} == {4}
    table = cli.invoke(app, ["table", "u-dit", "--all", "--format", "md"], env=env)
    assert table.exit_code == 0 and "small, rehearsal" in table.output


# ----------------------------------------------------------------------------------------------- paper scale
@pytest.mark.slow
def test_udit_paper_rehearsal_two_gloo_processes(official, tmp_path, store_root):
    """Paper scale, U-DiT-S, under torchrun with 2 gloo workers on the CPU: ImageNet train folder -> ADM crop ->
    SD VAE latents of 4 evenly spaced images and their mirror images in the latent cache (filled under
    barriers), 2 DDP training steps over the cached latents (DataLoader workers), 4 samples with classifier-free
    guidance 1.5 on 3 channels (2 DDPM steps) in 2 shards dealt to the ranks, decoded, per-shard Inception
    statistics merged on every rank, fid@ref-npz against ADM's .npz, rank 0 writing the record; the table."""
    from bench.distributed import launch

    data = official / "data"
    env = {"BENCH_RESULTS": str(store_root), "BENCH_ASSETS": str(official / "assets"),
           "BENCH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    (spec,) = runner.plan("u-dit", "paper", ["u-dit-s"], data_root=data, world_size=2, rehearsal=CAPS)
    runner.check_data([spec], data)  # the card's layout check passes on the fixture
    proc = launch(2, "tests.recipes.test_rehearsal_udit:paper_worker", [str(data)], device="cpu", env=env,
                  timeout=600, capture=True)
    assert "rehearsal: using asset inception-v3-compat" in proc.stdout  # the stand-in, accepted with a warning
    result = Store(store_root).read_result(Store(store_root).run_dir(_guided_only(spec)))
    assert result is not None and result["status"] == "complete" and result["rehearsal"]
    assert result["cost"]["train_steps"] == 2 and result["cost"]["input_shape"] == [4, 32, 32]
    (fid,) = result["metrics"]
    assert fid["metric"] == "fid@ref-npz" and fid["n"] == 4 and fid["value"] > 0
    assert fid["setting"] == {"nfe": 250, "sampler": "ddpm", "cfg": 1.5}  # the record keeps the paper's setting
    assert fid["protocol"]["rehearsal_nfe_run"] == 2
    assert fid["protocol"]["reference"].endswith("VIRTUAL_imagenet256_labeled.npz")
    sampling = result["cost"]["sampling"]["ddpm-nfe250-cfg1.5"]["sampling_stats"]
    assert sampling["nfe"] == 2 and sampling["nfe_forward_passes"] == 4 and sampling["guided_channels"] == 3
    stats = sorted(p.name for p in (store_root / "u-dit").rglob("feature_stats/*/shard_*.npz"))
    assert stats == ["shard_000000.npz", "shard_000001.npz"]  # one per sample shard
    (manifest_file,) = (tmp_path / "cache" / "latents").glob("*/manifest.json")
    manifest = json.loads(manifest_file.read_text())
    assert manifest["count"] == 4 and manifest["flips"] == 2 and manifest["latent_shape"] == [4, 32, 32]
    cells = _table_cells({"BENCH_RESULTS": str(store_root)}, {result["run_id"]})
    assert cells and all(c["rehearsal"] and c["paper"] is None for c in cells)


# ------------------------------------------------------------------------------------- outside a rehearsal
@pytest.mark.slow
def test_udit_paper_names_each_missing_file_before_training(official, tmp_path, store_root):
    """A real paper run stops before any latent or training step, with one line naming the missing file and how
    to get it: the SD VAE folder, ADM's reference batch, the Inception weights, and Inception weights whose
    sha256 is not the published one (accepted only in a rehearsal)."""
    data = official / "data"
    cli = CliRunner()

    def reproduce(assets_dir, data_root):
        env = {"BENCH_RESULTS": str(store_root), "BENCH_ASSETS": str(assets_dir),
               "BENCH_CACHE": str(tmp_path / "cache"), "COLUMNS": "1000"}
        res = cli.invoke(app, ["reproduce", "u-dit", "--scale", "paper", "--entry", "u-dit-s", "--data-root",
                               str(data_root), "--device", "cpu"], env=env)
        assert res.exit_code != 0
        (line,) = [x for x in res.output.splitlines() if x.startswith("error:")]
        return line

    empty = tmp_path / "empty"
    empty.mkdir()
    line = reproduce(empty, data)  # the VAE is needed first (latents before anything else)
    assert "sd-vae-ft-ema" in line and "huggingface-cli download stabilityai/sd-vae-ft-ema" in line
    vae_only = tmp_path / "vae-only"
    shutil.copytree(official / "assets" / "sd-vae-ft-ema", vae_only / "sd-vae-ft-ema")
    no_reference = tmp_path / "no-reference"
    (no_reference / "imagenet").mkdir(parents=True)
    for split in ("train", "val"):
        (no_reference / "imagenet" / split).symlink_to(data / "imagenet" / split)
    line = reproduce(vae_only, no_reference)
    assert "VIRTUAL_imagenet256_labeled.npz" in line and "openaipublic" in line
    line = reproduce(vae_only, data)
    assert "weights-inception-2015-12-05-6726825d.pth" in line and "torch-fidelity" in line
    shutil.copy(official / "assets" / INCEPTION_FILE, vae_only / INCEPTION_FILE)
    line = reproduce(vae_only, data)  # present, but not the published file: refused outside a rehearsal
    assert "inception-v3-compat" in line and "wrong sha256" in line
    assert not (tmp_path / "cache" / "latents").exists()  # nothing was encoded, nothing trained
