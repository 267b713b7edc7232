"""The Python API (README "Python API"): the CLI's work, returned as data, on the toy paper."""
from __future__ import annotations

import statistics
import subprocess
import sys

import numpy as np
import pytest

import bench
from tests.core.test_headline import per_seed_means


def test_reproduce_table_claims_check_in_five_lines(toy_paper, store_root, tmp_path):
    runs = bench.reproduce("TOY")
    assert sorted(r["entry"] for r in runs) == ["toy-baseline", "toy-method"]
    assert all(r["status"] == "complete" and r["seeds"] == [0, 1] for r in runs)
    frame = bench.table("toy")
    row = frame.iloc[0]
    assert row["method"] == "toy-method" and row["baseline"] == "toy-baseline"
    assert row["delta"] == pytest.approx(statistics.fmean(per_seed_means(1.0)) - statistics.fmean(per_seed_means(0.0)))
    assert bool(row["better"]) and row["verdict"] == "inconclusive"
    full = bench.table("toy", all=True)
    assert {"paper", "ours", "spread", "scale", "delta"} <= set(full.columns)
    verdicts = bench.claims("toy")
    assert [(v.claim, v.source) for v in verdicts][:2] == [("better", "paper"), ("better", "ours")]
    assert verdicts[1].as_dict()["verdict"] == "inconclusive"
    assert {f.outcome for f in bench.check(papers=["toy"], reference_dir=tmp_path)} == {"missing"}
    bench.check.update(bench.check.Store(), tmp_path, papers=["toy"])  # what `bench check --update -p toy` does
    findings = bench.check(papers=["toy"], reference_dir=tmp_path)
    assert findings and {f.outcome for f in findings} == {"pass"}


def test_reproduce_reuses_finished_runs(toy_paper, store_root):
    first = bench.reproduce("toy")
    again = bench.reproduce("toy")
    assert [r["run_id"] for r in first] == [r["run_id"] for r in again]
    assert [r["finished_at"] for r in first] == [r["finished_at"] for r in again]


def test_score_matches_scikit_image(tmp_path):
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio

    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    pred = np.clip(ref.astype(int) + rng.integers(-6, 7, ref.shape), 0, 255).astype(np.uint8)
    Image.fromarray(ref).save(tmp_path / "ref.png")
    Image.fromarray(pred).save(tmp_path / "pred.png")
    result = bench.score("psnr_rgb", tmp_path / "pred.png", tmp_path / "ref.png")
    assert result.value == pytest.approx(peak_signal_noise_ratio(ref, pred, data_range=255), abs=1e-6)


def test_bad_names_raise_the_cli_message(toy_paper):
    from bench.registry import BenchError

    with pytest.raises(BenchError, match="(?i)did you mean .toy."):
        bench.table("tyo")


def test_import_stays_light():
    code = "import bench, sys; print('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_reproduce_refuses_cuda_without_cuda_like_the_cli(toy_paper, store_root, monkeypatch):
    import torch

    from bench.registry import BenchError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BenchError, match="(?i)cuda"):
        bench.reproduce("toy", device="cuda")
    assert not store_root.exists() or not any(store_root.rglob("result.json"))
