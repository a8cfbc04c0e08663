"""benchmarks/gpu_check.sh keeps working: its CPU-size run (what CI can run)
measures every step and writes the JSON the GPU run will write."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT


@pytest.mark.slow
def test_gpu_check_runs_at_cpu_sizes(tmp_path):
  out = tmp_path / "result.json"
  proc = subprocess.run(
      ["bash", os.path.join(REPO_ROOT, "benchmarks", "gpu_check.sh"), "--cpu",
       "--output", str(out)],
      env=dict(os.environ, PYTHON=sys.executable, TMPDIR=str(tmp_path)),
      capture_output=True, text=True, timeout=480)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "gpu_check (cpu sizes)" in proc.stdout
  doc = json.loads(out.read_text())
  assert doc["mode"] == "cpu"
  assert set(doc["steps"]) == {"train", "evaluate", "reproduce"}
  assert all(s["exit_status"] == 0 for s in doc["steps"].values())
  # The train step in the three precision policies, against a peak.
  results = doc["train_step"]["results"]
  assert [r["precision_policy"] for r in results] == [
      "float32", "mixed_float16", "mixed_bfloat16"]
  for r in results:
    st = r["steps"]["project-mse"]
    assert st["seconds_per_step_median"] > 0 and st["gflop_per_step"] > 0
    assert r["matmul_peak"]["gflops_per_s_median"] > 0
  # Forward throughput and the Fig. 3 extrapolation from it.
  fwd = doc["evaluate_forward"]["N128_M192"]["fused"]
  assert fwd["images_per_s"] > 0 and 0 < fwd["fraction_of_matmul_peak"] < 2
  job = doc["fig3_job_extrapolated"]
  per = job["seconds_per_image_512x384"]
  assert job["minutes"] == pytest.approx(
      3025 * (10 * per["N128_M192"] + 6 * per["N192_M320"]) / 60)
  assert job["scaled_from"] == "128x128 by pixel count"
  assert doc["reproduce"]["command"] == "bin/reproduce fig11 --config tiny"
  # Leaves no work folder behind.
  assert not [p for p in os.listdir(tmp_path) if p.startswith("gpu_check.")]
