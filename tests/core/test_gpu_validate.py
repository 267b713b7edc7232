"""tools/gpu_validate.py on the CPU: the plan and the record skeletons of --dry-run, the MFU arithmetic by hand,
the peak table, and the driver's records for stages that die or cannot run. The GPU run itself needs an
H100/H200 (issue 15)."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "gpu_validate.py"
DIT_XL2_GMACS = 118.64  # DiT paper Table 4 ("Gflops" are MACs of one 256x256 forward; tests/models/test_dit.py)


def _module():
    spec = importlib.util.spec_from_file_location("gpu_validate", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_validate"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gv = _module()


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=REPO, timeout=300,
                          check=False)


def test_mfu_by_hand():
    # 1 TFLOP forward -> 3 TFLOPs per step; in 10 ms that is 300 TFLOP/s, 30% of a 1000-TFLOPs GPU
    assert gv.flops_per_train_step(1e12) == 3e12
    assert gv.mfu(1e12, 0.010, 1000.0) == pytest.approx(0.30, rel=1e-12)
    # DiT-XL/2 at batch 32 (2 x 118.64 GMACs x 32 = 7.593 TFLOPs forward), a 50 ms step on an H100 SXM (989):
    # 3 x 7.59296e12 / 0.05 s = 455.58 TFLOP/s -> 0.4606 of the peak
    assert gv.mfu(2 * 118.64e9 * 32, 0.050, 989.0) == pytest.approx(0.460645, abs=1e-6)
    with pytest.raises(ValueError):
        gv.mfu(1e12, 0.0, 989.0)


@pytest.mark.parametrize("name, peak", [("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0),
                                        ("NVIDIA H100 NVL", 835.0), ("NVIDIA H200", 989.0), ("NVIDIA H200 NVL", 835.0),
                                        ("NVIDIA GH200 480GB", 989.0), ("NVIDIA A100-SXM4-80GB", 312.0),
                                        ("NVIDIA L40S", 362.0), ("NVIDIA GeForce RTX 4090", None)])
def test_peak_bf16_by_device_name(name, peak):
    assert gv.peak_bf16_tflops(name) == peak


def test_dry_run_prints_the_plan_and_writes_the_record_skeletons(tmp_path):
    out = tmp_path / "gpu"
    proc = _run("--dry-run", "--out", str(out), "--batch", "4")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "bench profile lipt --device cuda --scale paper --repeats 50 --format json" in text
    assert "bench reproduce u-dit --scale small --max-steps 300 --json" in text
    records = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert sorted(records) == ["dit-xl-2-train", "lipt-profile", "u-dit-b-train", "u-dit-small"]
    for name, rec in records.items():
        assert rec["schema"] == "bench.gpu_validate/1" and rec["stage"] == name and rec["status"] == "planned"
        assert {"gpu", "driver", "cuda", "torch", "bench_git"} <= set(rec["hardware"])
        assert rec["hardware"]["gpu"] is None  # no CUDA was touched
    assert sum(rec["timeout_s"] for rec in records.values()) <= 8 * 60  # the budget
    profile_cmd = records["lipt-profile"]["command"]
    assert profile_cmd[-10:] == ["profile", "lipt", "--device", "cuda", "--scale", "paper", "--repeats", "50",
                                 "--format", "json"]
    dit = records["dit-xl-2-train"]["results"]
    assert {(r["compile"], r["attention"]) for r in dit} == {(False, "fused"), (False, "plain"), (True, "fused")}
    for row in dit:  # model FLOPs: 3 x 2 x DiT's own MAC count, per image, times the batch
        assert row["precision"] == "bf16-autocast" and row["batch"] == 4 and row["mfu"] is None
        assert row["flops_per_step"] == pytest.approx(3 * 2 * DIT_XL2_GMACS * 1e9 * 4, rel=0.01)
    (udit,) = records["u-dit-b-train"]["results"]
    assert udit["model"] == "U-DiT-B" and 0 < udit["flops_per_step"] < dit[0]["flops_per_step"]


def test_bad_arguments_and_no_cuda_are_one_line(tmp_path):
    proc = _run("--dry-run", "--stages", "dit-xl-2-train,nope", "--out", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: unknown stage 'nope'; stages: lipt-profile, dit-xl-2-train, u-dit-b-train, u-dit-small"]
    import torch

    if not torch.cuda.is_available():
        proc = _run("--out", str(tmp_path))
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
        assert "no CUDA device" in proc.stderr and "--dry-run" in proc.stderr


def test_a_command_stage_keeps_its_json_output_and_its_private_run_store(tmp_path):
    probe = "import json, os; print(json.dumps({'results': os.environ['BENCH_RESULTS']}))"
    stage = gv.Stage("probe", "a command that prints JSON", 30, command=(sys.executable, "-c", probe))
    result = gv.run_command_stage(stage, tmp_path, timeout_s=30)
    assert result["status"] == "ok" and result["output"] == {"results": str(tmp_path / "runs")}
    slow = gv.Stage("slow", "a command that overruns", 1, command=(sys.executable, "-c", "import time; time.sleep(5)"))
    assert gv.run_command_stage(slow, tmp_path, timeout_s=0.5)["status"] == "timeout"


def test_a_stage_that_dies_before_writing_gets_a_record_saying_so(tmp_path):
    """The driver runs each stage in a child process; here the child cannot run (no CUDA: exit 2), which stands
    for a crash, and the driver writes the stage's record and a failed summary."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA machine would run the stage")
    args = gv.parse(["--stages", "u-dit-b-train", "--out", str(tmp_path)])
    stages = [s for s in gv.plan(args.batch) if s.name == "u-dit-b-train"]
    assert gv.run_all(args, stages, tmp_path, {"gpu": None}) == 1
    rec = json.loads((tmp_path / "u-dit-b-train.json").read_text())
    assert rec["status"] == "failed" and "ended with 2 before writing its record" in rec["error"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["stages"] == {"u-dit-b-train": "failed"}
