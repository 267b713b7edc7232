"""CPU rehearsal of QAC's small and paper code paths (issue 15): CIFAR-10's python batches, EDM's dataset zips,
fid-refs and pretrained network pickles, and torch-fidelity's Inception weights written in their official
layouts (tests/fixtures_official/), then a few training steps (or the official pickle), a few samples per EDM
seed range, fid@ref-npz, the record and the table; the small scale also under torchrun with 2 gloo workers (the
CLI's `--nproc 2` runs in test_rehearsal_udit.py).

The rehearsal caps (RunSpec.rehearsal, bench.diffusion.rehearsal) cut training steps and batch, samples and
solver steps, and run each solver of the grid at its first NFE only. The tests also narrow the grid to one
setting: each fid@ref-npz costs a 2048 x 2048 matrix square root (scipy sqrtm, 10-20 CPU seconds) whatever the
sample count, and every solver already runs end to end in the smoke reproduction."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bench import runner
from bench.cli import app
from bench.registry import BenchError
from bench.store import Store
from tests.fixtures_official.edm import PICKLES, write_edm_data_root
from tests.fixtures_official.inception import FILENAME as INCEPTION_FILE
from tests.fixtures_official.inception import write_inception_weights
from tests.recipes.conftest import table_cells

CAPS = {"max_steps": 2, "max_samples": 2}


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    root = tmp_path_factory.mktemp("qac-official")
    write_edm_data_root(root / "data")
    write_inception_weights(root / "assets" / INCEPTION_FILE)
    return root


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """One torch and one BLAS thread for every test here (tests/conftest.py)."""


def _spec(scale, entry, data_root, grid, seed_ranges, caps=CAPS):
    (spec,) = [s for s in runner.plan("qac", scale, [entry], data_root=data_root, rehearsal=caps)
               if s.dataset == "cifar10"]
    return spec.with_overrides(sampler={**spec.sampler, "grid": grid, "seed_ranges": seed_ranges})


def _table_cells(env, run_ids):
    return table_cells("qac", env, run_ids)


# ------------------------------------------------------------------------------------------ fixtures' layouts
def test_fixture_datasets_and_pickles_open_through_their_cards(official):
    """Every dataset QAC reads at small/paper scale opens through its card on the fixture (CIFAR-10 python
    batches and the EDM zip with labels; FFHQ and AFHQv2 zips at 64x64, AFHQv2 without labels), and every
    official pickle path loads as our VPPrecond without running pickled code."""
    from baselines.edm.pickles import load_network
    from baselines.edm.precond import VPPrecond
    from bench.data.cards import check_layout, load_dataset_card
    from bench.data.formats import open_dataset

    data = official / "data"
    for name in ("cifar10", "ffhq-64", "afhqv2-64"):
        assert check_layout(load_dataset_card(name), data) == [], name
    python = open_dataset("cifar10", "train", data)
    assert len(python) == 5 * 4 and python[0]["image"].shape == (32, 32, 3) and 0 <= python[0]["label"] < 10
    assert len(open_dataset("cifar10", "test", data)) == 4
    zipped = open_dataset("cifar10", "train-zip", data)
    assert zipped[3]["image"].shape == (32, 32, 3) and zipped[3]["path"] == "00000/img00000003.png"
    assert zipped[3]["label"] is not None
    ffhq = open_dataset("ffhq-64", "train", data)
    assert ffhq[0]["image"].shape == (64, 64, 3)
    assert open_dataset("afhqv2-64", "train", data)[0]["label"] is None
    for rel, (resolution, label_dim) in PICKLES.items():
        net = load_network(data / rel)
        assert isinstance(net, VPPrecond) and net.img_resolution == resolution and net.label_dim == label_dim


def test_rehearsal_caps_counts_and_keeps_a_real_spec_unchanged(official):
    """bench.diffusion.rehearsal on QAC's real paper spec: a real spec passes through unchanged; a rehearsal
    caps steps, batch (a multiple of the process count), samples (two shards), solver steps (Heun odd) and runs
    each solver at its first NFE."""
    from bench.diffusion import rehearsal
    from methods.qac.recipe import settings, spec_settings

    (real,) = [s for s in runner.plan("qac", "paper", ["qac"], data_root=official / "data")
               if s.dataset == "cifar10"]
    assert spec_settings(real) == settings(real.sampler) and len(spec_settings(real)) == 13
    assert rehearsal.sample_counts(real, 50_000, 1000, 500) == (50_000, 1000, 500)
    assert rehearsal.train_batch(real, 512) == 512 and rehearsal.solver_nfe(real, 35, "heun") == 35
    capped = real.with_overrides(rehearsal={"max_steps": 4, "max_samples": 5}, world_size=2)
    assert spec_settings(capped) == [{"nfe": 4, "solver": "dpmpp2m"}, {"nfe": 4, "solver": "ipndm"},
                                     {"nfe": 4, "solver": "euler"}, {"nfe": 35, "solver": "heun"}]
    assert rehearsal.sample_counts(capped, 50_000, 1000, 500) == (5, 3, 3)
    assert rehearsal.train_batch(capped, 512) == 4  # 5 rounded down to a multiple of the 2 processes
    assert rehearsal.solver_nfe(capped, 35, "heun") == 3 and rehearsal.solver_nfe(capped, 6, "dpmpp2m") == 4


# ----------------------------------------------------------------------------------------------- small scale
@pytest.mark.slow
def test_qac_small_rehearsal_trains_fits_the_prior_and_scores(bench_env, official, store_root, monkeypatch):
    """Small scale, QAC on the CIFAR-10 EDM zip: 2 steps of batch 2 (EDM's kimg schedule capped) through EDM's
    augmentation pipe (config F's transforms, here at p = 1 so that every one of them fires on CPU, with the 9
    labels fed to the network), the code prior fitted on 2 training images, 2 samples in 2 shards with 2
    DPM-Solver++ steps, fid@ref-npz against EDM's cifar10 fid-refs, the record and the table."""
    data = official / "data"
    spec = _spec("small", "qac", data, {"dpmpp2m": [4]}, 1)
    assert spec.train["augment"]["p"] == 0.12  # the plan's config F
    spec = spec.with_overrides(train={**spec.train, "augment": {**spec.train["augment"], "p": 1.0}})
    from baselines.edm.augment import AugmentPipe

    seen = []
    original = AugmentPipe.__call__

    def recording(self, images, generator=None):
        out, labels = original(self, images, generator)
        seen.append(labels)
        return out, labels

    monkeypatch.setattr(AugmentPipe, "__call__", recording)
    out = runner.execute(spec, Store(store_root), data_root=data, show_progress=False, log=lambda m: None)
    result = out.result
    assert result["status"] == "complete" and result["rehearsal"]
    assert result["provenance"]["train_steps"] == 2 and result["provenance"]["train_batch"] == 2
    assert result["provenance"]["code_prior"]  # fitted (on the rehearsal's 2 images)
    assert result["provenance"]["augment"] == spec.train["augment"]  # trained through the pipe
    assert len(seen) == 2 and all(x.shape == (2, 9) for x in seen)
    assert all((x[:, [2, 4, 5, 7, 8]] != 0).all() for x in seen)  # p = 1: scale, rotation, aniso, shift: all fire
    (fid,) = result["metrics"]
    assert fid["metric"] == "fid@ref-npz" and fid["n"] == 2 and fid["setting"] == {"nfe": 4, "solver": "dpmpp2m"}
    assert fid["protocol"]["rehearsal_nfe_run"] == 2 and fid["protocol"]["reference"].endswith("cifar10-32x32.npz")
    assert len(fid["protocol"]["per_range"]) == 1 and fid["value"] > 0
    cells = _table_cells(bench_env, {out.run_id})
    assert cells and all(c["rehearsal"] and c["paper"] is None for c in cells)


def small_worker(argv):
    """One torchrun worker of the 2-process small rehearsal (bench.distributed.launch calls it after
    init_distributed): the spec `bench reproduce --nproc 2` plans, narrowed to one setting and one seed range."""
    from pathlib import Path

    from bench import distributed as dist

    data = Path(argv[0])
    spec = _spec("small", "qac", data, {"dpmpp2m": [4]}, 1).with_overrides(world_size=dist.get_world_size())
    runner.execute(spec, Store(), data_root=data, show_progress=False, device="cpu", log=lambda m: None)


@pytest.mark.slow
def test_qac_small_rehearsal_two_gloo_processes(official, tmp_path, store_root):
    """Small scale under torchrun with 2 gloo workers: QAC's encoder runs inside the DDP-wrapped forward (one
    forward call per step, every parameter reached), the code prior is fitted on each rank, sample shards are
    dealt to the ranks, rank 0 scores and records."""
    from bench.distributed import launch

    data = official / "data"
    env = {"BENCH_RESULTS": str(store_root), "BENCH_ASSETS": str(official / "assets"),
           "BENCH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    launch(2, "tests.recipes.test_rehearsal_qac:small_worker", [str(data)], device="cpu", env=env, timeout=600)
    spec = _spec("small", "qac", data, {"dpmpp2m": [4]}, 1).with_overrides(world_size=2)
    result = Store(store_root).read_result(Store(store_root).run_dir(spec))
    assert result is not None and result["status"] == "complete" and result["rehearsal"]
    assert result["provenance"]["train_steps"] == 2 and result["provenance"]["train_batch"] == 2
    (fid,) = result["metrics"]
    assert fid["metric"] == "fid@ref-npz" and fid["n"] == 2 and fid["value"] > 0


# ----------------------------------------------------------------------------------------------- paper scale
@pytest.mark.slow
def test_qac_paper_rehearsal_official_edm_pickle_two_seed_ranges(bench_env, official, store_root):
    """Paper scale, the class-conditional EDM baseline from the official pretrained pickle (no training; random
    class labels per sample index): two of EDM's seed ranges of 2 samples each (the minimum over ranges is
    reported), 2 DPM-Solver++ steps, fid@ref-npz. (The unconditional pickle loads through the same code: see
    the layout test; unconditional sampling runs in the QAC tests.)"""
    data = official / "data"
    spec = _spec("paper", "edm-cond", data, {"dpmpp2m": [4]}, 2)
    assert spec.args["init"] == "pretrained" and spec.args["network"]["label_dim"] == 10
    out = runner.execute(spec, Store(store_root), data_root=data, show_progress=False, log=lambda m: None)
    result = out.result
    assert result["status"] == "complete" and result["rehearsal"]
    assert result["provenance"]["init"] == "official EDM pickle"
    assert result["provenance"]["checkpoint"].endswith("edm-cifar10-32x32-cond-vp.pkl")
    assert "train_steps" not in result["provenance"]
    (fid,) = result["metrics"]
    per_range = fid["protocol"]["per_range"]
    assert fid["n"] == 2 and fid["protocol"]["seed_ranges"] == [[0, 2], [2, 4]]
    assert len(per_range) == 2 and fid["value"] == min(per_range)
    cells = _table_cells(bench_env, {out.run_id})
    assert cells and all(c["rehearsal"] and c["paper"] is None for c in cells)


@pytest.mark.slow
def test_qac_paper_rehearsal_trains_config_f_from_scratch(bench_env, official, store_root):
    """Paper scale, QAC around EDM's config-F DDPM++ (56 M parameters, CIFAR-10), trained from scratch for 2
    steps of batch 2 through config F's augmentation pipe (p 0.12), then Heun (35 NFE capped to 1 call) into one
    seed range, fid@ref-npz."""
    data = official / "data"
    spec = _spec("paper", "qac", data, {"heun": [35]}, 1)
    out = runner.execute(spec, Store(store_root), data_root=data, show_progress=False, log=lambda m: None)
    result = out.result
    assert result["status"] == "complete" and result["rehearsal"]
    assert result["provenance"]["train_steps"] == 2 and result["provenance"]["train_batch"] == 2
    assert result["cost"]["params_m"] > 50  # config F, not a stand-in
    assert result["provenance"]["augment"] == spec.train["augment"] and spec.train["augment"]["p"] == 0.12
    (fid,) = result["metrics"]
    assert fid["setting"] == {"nfe": 35, "solver": "heun"} and fid["protocol"]["rehearsal_nfe_run"] == 1


# ------------------------------------------------------------------------------------- outside a rehearsal
def test_qac_paper_names_each_missing_file_before_training(official, tmp_path):
    """A real paper run of QAC stops before training with one line naming the missing file and where to get it:
    EDM's fid-refs (checked before training, not after it), the official pickle of the EDM baseline."""
    import shutil

    from methods.qac.recipe import _pretrained

    data = tmp_path / "data"
    shutil.copytree(official / "data", data)
    (spec,) = [s for s in runner.plan("qac", "paper", ["edm-official"], data_root=data) if s.dataset == "cifar10"]
    (data / "edm" / "fid-refs" / "cifar10-32x32.npz").unlink()
    res = CliRunner().invoke(app, ["reproduce", "qac", "--scale", "paper", "--entry", "qac", "--data-root", str(data),
                                   "--device", "cpu"],
                             env={"BENCH_RESULTS": str(tmp_path / "runs"), "BENCH_ASSETS": str(official / "assets"),
                                  "COLUMNS": "1000"})
    assert res.exit_code != 0
    (line,) = [x for x in res.output.splitlines() if x.startswith("error:")]
    assert "cifar10-32x32.npz" in line and "nvlabs-fi-cdn.nvidia.com/edm/fid-refs" in line
    assert not list((tmp_path / "runs").rglob("train_log.jsonl"))  # QAC trains from scratch: it never started
    (data / spec.args["checkpoint"]).unlink()
    with pytest.raises(BenchError) as err:
        _pretrained(spec, data)
    assert "edm-cifar10-32x32-uncond-vp.pkl" in str(err.value) and "nvlabs-fi-cdn.nvidia.com/edm/pretrained" \
        in str(err.value) and "\n" not in str(err.value)
