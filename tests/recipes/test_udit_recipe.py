"""The U-DiT recipe: plans (matched compute, specs, stands_for), profile, latent cache, sharded FID, and (slow) the
smoke reproduction end to end through bench.runner with reuse and shard-level resume."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import papers, runner
from bench.registry import BenchError
from bench.spec import RunSpec
from bench.store import Store
from methods.u_dit import recipe


@pytest.fixture(scope="module", autouse=True)
def private_bench_dirs(tmp_path_factory):
    """Private $BENCH_ASSETS / $BENCH_CACHE: the digits classifier is trained once into them for this module."""
    root = tmp_path_factory.mktemp("udit-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENCH_ASSETS", str(root / "assets"))
        patch.setenv("BENCH_CACHE", str(root / "cache"))
        yield root


@pytest.fixture(scope="module")
def card():
    return papers.card("u-dit")


def dit_macs_by_hand(tokens: int, width: int, depth: int, patch: int, channels: int, freq_dim: int = 256,
                     mlp_ratio: float = 4.0) -> int:
    """MACs of one DiT forward, counted layer by layer from the architecture (DiT paper / models.py)."""
    hidden = int(width * mlp_ratio)
    block = (3 * width * width * tokens          # qkv projection
             + width * width * tokens            # attention output projection
             + 2 * tokens * tokens * width       # q k^T and attn v
             + 2 * hidden * width * tokens       # MLP (two linears through `hidden`)
             + 6 * width * width)                # adaLN modulation (per sample)
    embed = tokens * patch * patch * channels * width             # patchify conv
    t_embed = freq_dim * width + width * width                    # timestep MLP
    final = 2 * width * width + tokens * width * patch * patch * 2 * channels  # adaLN + linear (learned sigma)
    return depth * block + embed + t_embed + final


# ------------------------------------------------------------------------------------------------ plans
def test_smoke_plan_is_the_matched_compute_pair(card):
    specs = recipe.plan(card, "smoke", None)
    assert [s.entry for s in specs] == ["u-dit-s", "dit-s-2-retrained"]
    regs = papers.registries()
    assert specs[0].impl == "u-dit" and specs[0].impl in regs["methods"]
    assert specs[1].impl == "dit" and specs[1].impl in regs["baselines"]
    entries = {e.id: e for e in card.entries}
    for spec in specs:
        assert entries[spec.entry].impl == spec.impl  # the card names the same implementation
        assert RunSpec.model_validate(spec.model_dump()) == spec
        assert spec.dataset == "digits" and spec.split == "test" and spec.scale == "smoke"
        assert spec.stands_for["dataset"] == "imagenet-256" and spec.stands_for["metrics"] == {"fd_digits": "fid@adm"}
        assert spec.metrics == ["fd_digits", "kd_digits"]
        assert [(s["sampler"], s["nfe"], s["cfg"]) for s in spec.sampler["settings"]] == [("ddim", 10, 1.0), ("ddim", 25, 1.0)]
        assert spec.train["ema_decay"] is not None
        # no label dropout: the smoke runs never guide (every setting has cfg 1.0), so no null class is trained
        assert spec.args["overrides"]["class_dropout_prob"] == 0.0
        assert all(s["cfg"] == 1.0 for s in spec.sampler["settings"])
    # both entries train under the same budget: the same steps, batch, schedule and samples
    assert specs[0].train == specs[1].train and specs[0].sampler == specs[1].sampler
    # the two models' MACs per forward, recounted with the profiler, equal the spec args and match within 10%
    counted = {s.entry: recipe.forward_macs(recipe.build_model(s), (1, 16, 16)) for s in specs}
    assert {s.entry: s.args["macs"] for s in specs} == counted
    assert specs[0].args["matched_with"] == {"entry": "dit-s-2-retrained", "macs": counted["dit-s-2-retrained"]}
    # U-DiT at most DiT's MACs (the claims' cost condition, ratio_max 1.0) and within 3% of it
    assert 0.97 < counted["u-dit-s"] / counted["dit-s-2-retrained"] <= 1.0
    # and DiT's count equals a layer-by-layer hand count (64 tokens of width 48, 3 blocks, patch 2, 1 channel,
    # MLP hidden 204); the ratio-4 count checks the hand formula against DiT's published shape rule
    assert counted["dit-s-2-retrained"] == dit_macs_by_hand(tokens=64, width=48, depth=3, patch=2, channels=1,
                                                            mlp_ratio=4.25) == 6_806_784
    assert dit_macs_by_hand(tokens=64, width=48, depth=3, patch=2, channels=1) == 6_585_600


def test_smoke_stands_in_for_the_unguided_claims_only(card):
    """DDIM 25 without guidance stands in for the paper's cfg-1.0 DDPM-250 setting, so the cfg-1.0 claims (among
    them u-dit-s-beats-dit-s-2) can be decided on smoke records at nfe 25, and the cfg-1.5 claims cannot."""
    from bench.claims import match_setting

    spec = recipe.plan(card, "smoke", None)[0]
    mappings = spec.stands_for["settings"]
    nfe25, nfe10 = ({"nfe": n, "sampler": "ddim", "cfg": 1.0} for n in (25, 10))
    claims = {c.id: c for c in card.claims}
    main = claims["u-dit-s-beats-dit-s-2"].setting
    assert match_setting(main, nfe25, mappings)[0] and not match_setting(main, nfe10, mappings)[0]
    guided = [c.setting for c in claims.values() if float(c.setting.get("cfg", 1.0)) != 1.0]
    assert guided and not any(match_setting(g, ours, mappings)[0] for g in guided for ours in (nfe25, nfe10))


def test_paper_and_small_plans_follow_the_paper(card):
    paper = recipe.plan(card, "paper", Path("/data"))
    assert [s.entry for s in paper] == ["u-dit-s", "u-dit-b", "u-dit-l", "dit-s-2-retrained", "dit-b-2-retrained",
                                        "dit-l-2-retrained", "dit-xl-2-retrained"]
    for spec in paper:
        assert spec.dataset == "imagenet-256" and spec.metrics == ["fid@ref-npz"] and spec.stands_for == {}
        t = spec.train
        assert (t["steps"], t["batch_size"], t["lr"], t["ema_decay"], t["weight_decay"]) == (400_000, 256, 1e-4, 0.9999, 0.0)
        assert spec.sampler["num_samples"] == 50_000
        assert [(s["sampler"], s["nfe"], s["cfg"]) for s in spec.sampler["settings"]] == [("ddpm", 250, 1.0), ("ddpm", 250, 1.5)]
    small = recipe.plan(card, "small", None)
    assert [s.entry for s in small] == ["u-dit-s", "dit-s-2-retrained"]
    assert small[0].setting["latent"] == "space-to-depth-2"  # no VAE in this module's private assets
    # the official S configs at the paper's 32x32x4 input (their MACs vs Table 2 are checked in tests/models)
    for spec in small:
        assert spec.args["config"] == {"u-dit-s": "U-DiT-S", "dit-s-2-retrained": "DiT-S/2"}[spec.entry]
        assert spec.args["overrides"] == {"input_size": 32, "in_channels": 4, "num_classes": 10}
        model = recipe.build_model(spec)
        assert (model.input_size, model.in_channels, model.num_classes) == (32, 4, 10)


def test_bad_scale_and_missing_assets_give_one_line_errors(card, tmp_path):
    with pytest.raises(BenchError, match="scales smoke, small and paper"):
        recipe.plan(card, "huge", None)
    ctx = type("Ctx", (), {"data_root": tmp_path})()
    with pytest.raises(BenchError) as err:
        recipe.reference_npz(ctx)
    assert "VIRTUAL_imagenet256_labeled.npz" in str(err.value) and "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------------ profile
def test_profile_of_the_smoke_configs():
    rows = recipe.profile("smoke", "cpu", repeats=2)
    assert [r["entry"] for r in rows] == ["u-dit-s", "dit-s-2-retrained"]
    by = {r["entry"]: r for r in rows}
    dit_model = recipe.build_model(recipe.plan(papers.card("u-dit"), "smoke", None)[1])
    assert by["dit-s-2-retrained"]["params_m"] == by["dit-s-2-retrained"]["params_train_m"] == \
        sum(p.numel() for p in dit_model.parameters()) / 1e6
    # U-DiT deploys fewer parameters than it trains (re-parameterised FFNs; counted by hand in the next test)
    u = by["u-dit-s"]
    assert u["params_m"] < u["params_train_m"]
    assert u["gmacs"] * 1e9 == pytest.approx(recipe.SMOKE_MODELS["u-dit-s"]["macs"])
    assert by["dit-s-2-retrained"]["gmacs"] * 1e9 == pytest.approx(6_806_784)
    for r in rows:
        assert r["input"] == "1x16x16" and r["latency_ms"] > 0
        assert r["nfe"] == "ddim10@cfg1.0=10, ddim25@cfg1.0=25"


def test_udit_deployed_parameter_count_by_hand():
    """Training-form FFN: 1x1 d->h/2, 1x1 h/2->h, DW5/DW3/DW1 on h, 1x1 h->h/2, 1x1 h/2->d (all with bias);
    deployed: 1x1 d->h, DW5 on h, 1x1 h->d. The difference summed over every FFN is the train/deploy gap."""
    spec = recipe.plan(papers.card("u-dit"), "smoke", None)[0]
    model = recipe.build_model(spec)
    widths = []
    for stage, width in (("encoder_level_1", 8), ("encoder_level_2", 16), ("latent", 32), ("decoder_level_2", 16),
                         ("decoder_level_1", 16)):
        widths += [width] * (2 * len(getattr(model, stage)))  # two FFNs per block
    gap = 0
    for d in widths:
        h = 2 * d
        train = (d * h // 2 + h // 2) + (h // 2 * h + h) + (25 * h + h) + (9 * h + h) + (h + h) + (h * h // 2 + h // 2) + (h // 2 * d + d)
        deploy = (d * h + h) + (25 * h + h) + (h * d + d)
        gap += train - deploy
    deployed, trained = recipe.deployed_params(model)
    assert trained - deployed == gap


def test_nfe_is_counted_from_the_sampler():
    assert recipe.count_nfe({"sampler": "ddpm", "nfe": 250, "cfg": 1.0}, (4, 8, 8), 1000) == 250
    assert recipe.count_nfe({"sampler": "ddim", "nfe": 7, "cfg": 1.5}, (4, 8, 8), 1000) == 7  # CFG: one doubled call


# ------------------------------------------------------------------------------------------------ latents
def test_latent_cache_fills_by_chunk_and_refills_only_missing_ones(tmp_path):
    from bench.data.base import InMemoryDataset
    from bench.diffusion.latents import (
        CacheLayout,
        LatentCache,
        SpaceToDepthCodec,
        sample_latents,
    )

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(10, 8, 8, 3), dtype=np.uint8)
    data = InMemoryDataset("toy", [{"image": im, "label": i % 3} for i, im in enumerate(images)])
    layout = CacheLayout(count=10, flips=2, latent_shape=(12, 4, 4), chunk=4)
    cache = LatentCache(tmp_path / "cache", layout, meta={"dataset": "toy"})
    assert cache.fill(data, SpaceToDepthCodec(2), image_size=8, batch_size=3, num_workers=0) == [0, 1, 2]
    ds = cache.dataset()
    moments, label = ds[7]
    x = torch.from_numpy(images[7].transpose(2, 0, 1)).float()[None] / 127.5 - 1
    expected = torch.nn.functional.pixel_unshuffle(x, 2)[0]
    torch.testing.assert_close(moments[0, 0].float(), expected.half().float())
    torch.testing.assert_close(moments[1, 0].float(), torch.nn.functional.pixel_unshuffle(torch.flip(x, [3]), 2)[0].half().float())
    assert float(moments[:, 1].abs().max()) == 0.0 and int(label) == 7 % 3
    # drop chunk 1 (items 4..7): a refill computes only it, and restores the same values
    cache.marker(1).unlink()
    mm = np.load(cache.moments_path, mmap_mode="r+")
    mm[4:8] = 0
    mm.flush()
    with pytest.raises(BenchError, match="incomplete"):
        cache.dataset()
    assert LatentCache(tmp_path / "cache", layout, meta={"dataset": "toy"}).fill(
        data, SpaceToDepthCodec(2), image_size=8, num_workers=0) == [1]
    torch.testing.assert_close(cache.dataset()[7][0], moments)
    with pytest.raises(BenchError, match="another plan"):
        LatentCache(tmp_path / "cache", CacheLayout(10, 1, (12, 4, 4), 4), meta={"dataset": "toy"})
    # training latents: the chosen flip's mean (+ std * eps, here std 0), times the codec scale
    batch = torch.stack([ds[i][0] for i in range(4)])
    z = sample_latents(batch, scale=0.5, stochastic=True)
    assert all(torch.equal(z[i], batch[i, 0, 0].float() * 0.5) or torch.equal(z[i], batch[i, 1, 0].float() * 0.5)
               for i in range(4))


def test_sharded_fid_equals_fid_on_the_union(tmp_path):
    """Per-shard float64 feature sums merged in shard order give fid_ref_npz's value on all samples."""
    from bench.data.smoke import digits
    from bench.metrics.generative import fid_ref_npz
    from bench.metrics.offline_fd import EXTRACTOR_NAME
    from bench.train import ShardStore
    from methods.u_dit.generate import sharded_fid

    train, labels = digits("train")
    real, _ = digits("test")
    fake = train[:70]
    store = ShardStore(tmp_path / "samples", total=70, shard_size=25)
    for s in range(store.num_shards):
        a, b = store.shard_range(s)
        store.write_shard(s, {"samples": fake[a:b], "label": labels[a:b]})
    got = sharded_fid(store, real, extractor=EXTRACTOR_NAME, batch_size=16)
    want = fid_ref_npz(fake, real, feature_extractor=EXTRACTOR_NAME, batch_size=50)
    assert got.name == want.name == f"fd@ref:{EXTRACTOR_NAME}"
    assert got.n == 70 and got.value == pytest.approx(want.value, rel=1e-9)
    assert sorted(p.name for p in (store.root / "feature_stats" / EXTRACTOR_NAME).glob("*.npz")) == \
        [f"shard_{s:06d}.npz" for s in range(3)]


# ------------------------------------------------------------------------------------------------ end to end
REDUCED = {"steps": 6, "num_samples": 20, "shard_size": 10}


def reduced(spec: RunSpec) -> RunSpec:
    return spec.with_overrides(train={**spec.train, "steps": REDUCED["steps"], "ckpt_every": 3},
                               sampler={**spec.sampler, "num_samples": REDUCED["num_samples"],
                                        "shard_size": REDUCED["shard_size"], "batch_size": REDUCED["shard_size"]})


@pytest.fixture(scope="module")
def udit_registered():
    """Point the u-dit paper at this recipe for the module (the manifest may still say 'not implemented')."""
    reg = papers.registries()["papers"]
    before = reg.get("u-dit")
    reg.unregister("u-dit")
    reg.register("u-dit", "methods.u_dit.recipe", **before.meta)
    yield "u-dit"
    reg.unregister("u-dit")
    reg.register("u-dit", before.target, **before.meta)


@pytest.fixture(scope="module")
def smoke_runs(udit_registered, tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("runs"))
    specs = [reduced(s) for s in runner.plan("u-dit", "smoke")]
    outcomes = [runner.execute(s, store, log=lambda m: None, show_progress=False) for s in specs]
    return store, specs, outcomes


@pytest.mark.slow
def test_smoke_reproduction_records(smoke_runs):
    store, specs, outcomes = smoke_runs
    for spec, out in zip(specs, outcomes, strict=True):
        result = out.result
        assert result["status"] == "complete" and not out.cached and result["seeds"] == [0]
        by_key = {(m["metric"], m["setting"]["nfe"]): m for m in result["metrics"]}
        assert sorted(by_key) == [("class_acc@digits-cnn", 10), ("class_acc@digits-cnn", 25), ("fd_digits", 10),
                                  ("fd_digits", 25), ("kd_digits", 10), ("kd_digits", 25)]
        for m in result["metrics"]:
            assert m["setting"] == {"nfe": m["setting"]["nfe"], "sampler": "ddim", "cfg": 1.0}
            assert math.isfinite(m["value"]) and m["n"] == REDUCED["num_samples"]
        assert by_key[("fd_digits", 10)]["value"] > 0
        cost, prov = result["cost"], result["provenance"]
        assert cost["gmacs"] * 1e9 == spec.args["macs"] and cost["train_steps"] == REDUCED["steps"]
        assert cost["nfe"] == {"ddim-nfe10-cfg1.0": 10, "ddim-nfe25-cfg1.0": 25}
        assert all(v["sampling_stats"]["nfe"] in (10, 25) for v in cost["sampling"].values())
        assert len(prov["checkpoint_sha256"]) == 64 and prov["dataset_fingerprint"]
        assert prov["feature_extractor"]["classifier"] == "bench-digits-cnn"
        rows = store.handle(spec).read_items(0)
        for key in cost["nfe"]:
            mine = sorted((r for r in rows if r["setting"] == key), key=lambda r: r["index"])
            assert [r["index"] for r in mine] == list(range(REDUCED["num_samples"]))
            assert [r["label"] for r in mine] == [i % 10 for i in range(REDUCED["num_samples"])]
            assert all(0 <= r["classifier_label"] < 10 for r in mine)
            # the sanity record: its value is the share of per-sample rows whose classifier label is the
            # requested one (recounted here from the rows), with the recipe's floor against chance
            sanity = by_key[("class_acc@digits-cnn", cost["nfe"][key])]
            assert sanity["value"] == pytest.approx(np.mean([r["classifier_label"] == r["label"] for r in mine]))
            assert sanity["n"] == REDUCED["num_samples"]
            assert sanity["floor"]["value"] == recipe.CLASS_ACC_FLOOR == 0.5
            assert sanity["floor"]["trivial_value"] == 0.1 and sanity["floor"]["note"]
    assert outcomes[0].result["cost"]["params_m"] < outcomes[0].result["cost"]["params_train_m"]


@pytest.mark.slow
def test_reduced_runs_did_not_learn_and_the_grid_says_so(smoke_runs):
    """6 training steps (the reduced config of this module) cannot draw the requested digits: both runs are
    "did not learn", and the after-reproduce summary says so beside a PNG grid of real digits and samples."""
    from PIL import Image

    from bench.sanity import run_sanity
    from methods.u_dit import grid

    store, _, outcomes = smoke_runs
    assert [run_sanity(o.result).status for o in outcomes] == ["did not learn", "did not learn"]
    lines = recipe.after_reproduce(outcomes, store)
    assert lines[0].startswith("u-dit-s: did not learn") and lines[1].startswith("dit-s-2-retrained: did not learn")
    assert lines[2].startswith("NOT every entry cleared its sanity floor")
    path = Path(lines[-1].rsplit(": ", 1)[1])
    assert path.parent == store.root / "u-dit" and path.name == "samples-smoke-ddim-nfe25-cfg1.0.png"
    with Image.open(path) as image:  # three sources (real, two entries) of 8 digits at 3x, 10 class rows
        cell = 16 * grid.SCALE + grid.PAD
        assert image.size == (grid.LABEL_WIDTH + 3 * grid.PER_CLASS * cell + 2 * grid.GAP, grid.HEADER + 10 * cell)
        pixels = np.asarray(image)
    # the real block shows the test split's first zero where it belongs (row 0, column 0)
    from bench.data.smoke import digits

    real, labels = digits("test")
    first_zero = real[labels == 0][0].reshape(16, 16)
    top, left = grid.HEADER, grid.LABEL_WIDTH
    assert np.array_equal(pixels[top:top + 48:grid.SCALE, left:left + 48:grid.SCALE], first_zero)


@pytest.mark.slow
def test_rerun_reuses_finished_runs_and_seeds(smoke_runs):
    store, specs, outcomes = smoke_runs
    again = runner.execute(specs[1], store, log=lambda m: None)
    assert again.cached and again.result == outcomes[1].result
    (store.run_dir(specs[1]) / "result.json").unlink()  # killed after the seed finished, before the record
    logs: list[str] = []
    redone = runner.execute(specs[1], store, log=logs.append)
    assert any("already finished" in line for line in logs)
    assert redone.result["metrics"] == outcomes[1].result["metrics"]


@pytest.mark.slow
def test_resume_regenerates_only_the_missing_sample_shard(smoke_runs):
    store, specs, outcomes = smoke_runs
    spec = specs[1]
    run_dir = store.run_dir(spec)
    sample_dir = run_dir / "work" / "0" / "samples" / "ddim-nfe25-cfg1.0"
    shards = sorted(sample_dir.glob("shard_*.npz"))
    assert len(shards) == 2
    kept = shards[0].stat().st_mtime_ns
    checkpoint = max((run_dir / "work" / "0" / "train" / "checkpoints").glob("*.pt"))
    ckpt_time = checkpoint.stat().st_mtime_ns
    shards[1].unlink()
    (run_dir / "items" / "0" / "ddim-nfe25-cfg1.0-000001.jsonl").unlink()
    for name in ("seeds/0.json", "result.json"):
        (run_dir / name).unlink(missing_ok=True)
    resumed = runner.execute(spec, store, log=lambda m: None)
    sampling = resumed.result["cost"]["sampling"]["ddim-nfe25-cfg1.0"]
    assert sampling["shards_missing_before"] == 1 and sampling["shards_generated"] == 1
    assert sampling["samples_generated"] == REDUCED["shard_size"]
    assert resumed.result["cost"]["sampling"]["ddim-nfe10-cfg1.0"]["shards_generated"] == 0
    assert shards[0].stat().st_mtime_ns == kept and shards[1].exists()
    assert checkpoint.stat().st_mtime_ns == ckpt_time  # training was not redone
    # deterministic: the regenerated shard gives the same metric values as the first run
    assert [m["value"] for m in resumed.result["metrics"]] == pytest.approx(
        [m["value"] for m in outcomes[1].result["metrics"]], rel=1e-12)
    assert len([r for r in store.handle(spec).read_items(0) if r["setting"] == "ddim-nfe25-cfg1.0"]) == 20


@pytest.mark.slow
def test_sd_vae_codec_from_a_local_folder(tmp_path):
    from diffusers import AutoencoderKL

    from bench.diffusion.latents import VaeCodec, load_sd_vae

    with pytest.raises(BenchError, match="no config.json"):
        load_sd_vae(tmp_path / "missing")
    torch.manual_seed(0)
    AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(4, 8), latent_channels=4,
                  layers_per_block=1, norm_num_groups=2, sample_size=16).save_pretrained(tmp_path / "vae")
    codec = VaeCodec(load_sd_vae(tmp_path / "vae"))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    mean, std = codec.moments(x)
    assert mean.shape == std.shape == (2, 4, 8, 8) and codec.factor == 2 and bool((std > 0).all())
    direct = codec.vae.encode(x).latent_dist
    torch.testing.assert_close(mean, direct.mean)
    decoded = codec.decode(mean * codec.scale)
    torch.testing.assert_close(decoded, codec.vae.decode(mean).sample)
    assert json.loads(json.dumps(codec.info()))["scale"] == 0.18215
