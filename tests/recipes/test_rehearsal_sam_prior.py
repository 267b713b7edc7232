"""CPU rehearsal of sam-prior's small code path: GoPro written in its official paired-folder layout, the
official NAFNet-width32 (GoPro config) trained plain and with SPF+SPD+SGR for two steps, two test images, the
record and the table. SAM ViT-B (375 MB) and the VGG16 analyzer (528 MB) are too big to fake in a test: the
rehearsal swaps in the SLIC labeller and the weight-free analyzer (the same call sites), and a separate test shows
that without them the missing SAM checkpoint is one line naming the file."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bench import runner
from bench.registry import BenchError
from bench.store import Store
from tests.recipes.conftest import table_cells

pytestmark = pytest.mark.slow

CAPS = {"max_steps": 2, "max_samples": 2}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """deblurring/{train,test}/GoPro/{input,target}/*.png: blurred/sharp pairs of the embedded photos."""
    from bench.data.smoke import degraded_pairs

    root = tmp_path_factory.mktemp("gopro")
    for split, size in (("train", 48), ("test", 40)):
        for i, (clean, blurred) in enumerate(degraded_pairs("train", "blur", 1.5, seed=0, size=size)[:3]):
            for folder, image in (("input", blurred), ("target", clean)):
                path = root / "deblurring" / split / "GoPro" / folder / f"GOPR0{i}_{i:06d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(path)
    return root


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """One torch and one BLAS thread for every test here (tests/conftest.py)."""


def _specs(entries, data_root):
    specs = [s for s in runner.plan("sam-prior", "small", entries, data_root=data_root, rehearsal=CAPS)
             if s.dataset == "gopro"]
    # 2 crops of 32x32 per step: the official 17M-parameter network, the same code path, ~1 CPU second a step
    return [s.with_overrides(train={**s.train, "batch_size": 2, "patch": 32}) for s in specs]


def test_small_rehearsal_trains_both_arms_and_records(store_root, data_root, monkeypatch, tmp_path):
    from methods.sam_prior import model, segmenter

    monkeypatch.setattr(segmenter, "make_labeler",
                        lambda prior, device: lambda im: segmenter.slic_labels(im, n_segments=8))
    monkeypatch.setattr(model, "build_analyzer", lambda name: model.RandomConvAnalyzer())
    monkeypatch.setenv("BENCH_RESULTS", str(store_root))
    specs = _specs(["nafnet-w32", "sam-prior-nafnet-w32"], data_root)
    assert [s.entry for s in specs] == ["nafnet-w32", "sam-prior-nafnet-w32"]
    assert specs[1].train["prior"]["source"] == "sam" and specs[1].train["method"]["analyzer"] == "vgg16"
    store = Store(store_root)
    outs = [runner.execute(s, store, data_root=data_root, show_progress=False, log=lambda m: None) for s in specs]
    for out in outs:
        result = out.result
        assert result["status"] == "complete" and result["rehearsal"]
        metrics = {m["metric"]: m for m in result["metrics"]}
        assert metrics["psnr_rgb"]["n"] == 2 and metrics["psnr_gain@degraded"]["n"] == 2
        assert result["cost"]["train_steps"] == 2
        assert result["cost"]["params_m"] == pytest.approx(17.111907)  # official NAFNet-width32 GoPro config
    assert outs[1].result["provenance"]["prior_source"] == "sam"
    # the masks were cached once in the store's shared work area
    cached = list((store_root / "sam-prior" / "_shared" / "masks").glob("sam-*/*.npy"))
    assert len(cached) == 2  # max_samples capped the training pairs too
    cells = table_cells("sam-prior", {"BENCH_RESULTS": str(store_root)}, {o.run_id for o in outs})
    assert cells and all(c["rehearsal"] for c in cells)


def test_missing_sam_checkpoint_stops_the_small_run_in_one_line(store_root, data_root, tmp_path, monkeypatch):
    pytest.importorskip("segment_anything")
    monkeypatch.setenv("BENCH_ASSETS", str(tmp_path / "no-assets"))
    (spec,) = _specs(["sam-prior-nafnet-w32"], data_root)
    with pytest.raises(BenchError) as err:
        runner.execute(spec, Store(store_root), data_root=data_root, show_progress=False, log=lambda m: None)
    assert "\n" not in str(err.value) and "sam_vit_b_01ec64.pth" in str(err.value)
