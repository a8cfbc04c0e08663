#!/usr/bin/env bash
# GPU check, ready to run whenever a GPU machine is available (at most 8
# minutes there). It measures, in one go:
#   1. the full-size factorized train step (N=128, M=192, batch 8, 256x256;
#      D = MSE, MS-SSIM, NLPD) in float32, mixed_float16 and mixed_bfloat16
#      (benchmarks/train_step.py);
#   2. the evaluation forward throughput at 512x384 (N=128/M=192 and
#      N=192/M=320, fused traced pass; benchmarks/evaluate.py --forward_only);
#   3. the Fig. 3 job time extrapolated from 2: 16 models (10 of N=128/M=192,
#      6 of N=192/M=320) x (3000 distorted + 25 reference) forward passes;
#   4. one quick experiment, bin/reproduce fig2 --config quick, timed;
# writes one JSON document to results/gpu_check-<UTC time>.json (or --output)
# and prints a summary.
#
# Without a GPU (or with --cpu) it runs the same steps at CPU sizes, one
# timing round each (N=16, M=16, 32x32 crops, D = MSE; forward at 128x128;
# fig11 --config tiny), which is how tests/gpu_check_test.py keeps it
# working in CI.
#
#   benchmarks/gpu_check.sh [--cpu] [--output FILE.json]
#
# Python: $PYTHON, else ./.venv/bin/python, else python3. Each step has a
# time limit (the sum stays under 8 minutes); a step that fails or runs out
# of time is recorded as such in the JSON and the others still run.
set -uo pipefail
cd "$(dirname "$0")/.."

mode=auto
output=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) mode=cpu ;;
    --output) output="$2"; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "error: unknown argument '$1' (accepted: --cpu, --output FILE)" >&2
       exit 2 ;;
  esac
  shift
done

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
export MPLBACKEND=Agg

start=$(date +%s)
if [ "$mode" = auto ]; then
  gpus=$("$PY" -c "import tfc_perception, tensorflow as tf; \
print(len(tf.config.list_physical_devices('GPU')))" 2>/dev/null | tail -1)
  if [ "${gpus:-0}" -gt 0 ] 2>/dev/null; then mode=gpu; else mode=cpu; fi
fi
stamp=$(date -u +%Y%m%dT%H%M%SZ)
output=${output:-results/gpu_check-$stamp.json}
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ "$mode" = gpu ]; then
  train_args=(--num_filters 128 --latent_channels 192 --batchsize 8
              --patchsize 256 --distortions mse,msssim,nlpd --rounds 3
              --steps 10 --warmup 3)
  eval_args=(--batch_size 8 --height 384 --width 512 --rounds 5)
  reproduce_args=(fig2 --config quick)
  limits=(240 90 120)
else
  train_args=(--num_filters 16 --latent_channels 16 --batchsize 2
              --patchsize 32 --distortions mse --rounds 1 --steps 1
              --warmup 0 --matmul_n 256)
  eval_args=(--batch_size 1 --height 128 --width 128 --rounds 1 --skip_large)
  reproduce_args=(fig11 --config tiny)
  limits=(240 90 120)
fi

status=()
run_step() {  # name limit command...
  local name=$1 limit=$2; shift 2
  local t0; t0=$(date +%s)
  echo "--- $name (limit ${limit} s): $*" >&2
  timeout "$limit" "$@" > "$work/$name.out" 2> "$work/$name.err"
  local rc=$?
  status+=("$name $rc $(( $(date +%s) - t0 ))")
  if [ $rc -ne 0 ]; then
    echo "    $name failed (status $rc; 124 = time limit); last lines:" >&2
    tail -5 "$work/$name.err" >&2
  fi
}

run_step train "${limits[0]}" "$PY" benchmarks/train_step.py "${train_args[@]}" \
  --precision_policies float32,mixed_float16,mixed_bfloat16 --nobaseline \
  --onednn= --output "$work/train.json"
run_step evaluate "${limits[1]}" "$PY" benchmarks/evaluate.py --forward_only \
  "${eval_args[@]}" --output "$work/evaluate.json"
run_step reproduce "${limits[2]}" "$PY" bin/reproduce "${reproduce_args[@]}" \
  --output "$work/reproduce"

printf '%s\n' "${status[@]}" > "$work/status.txt"
"$PY" - "$work" "$output" "$mode" "$start" "${reproduce_args[*]}" <<'EOF'
"""Merges the steps' JSON, extrapolates the Fig. 3 job, writes and prints."""
import json
import os
import sys
import time

from tfc_perception import _io

work, output, mode, start, reproduce = sys.argv[1:6]


def load(name):
  path = os.path.join(work, name + ".json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


steps = {}
with open(os.path.join(work, "status.txt")) as f:
  for line in f:
    name, rc, seconds = line.split()
    steps[name] = {"exit_status": int(rc), "seconds": int(seconds),
                   "timed_out": rc in ("124", "137")}
train, evaluate = load("train"), load("evaluate")
doc = {"check": "gpu_check", "mode": mode, "steps": steps}
lines = [f"gpu_check ({mode} sizes)"]

if train:
  run = train["runs"][0]
  doc["train_step"] = {"config": train["config"], "results": run["results"],
                       "gpus": run["gpus"]}
  for res in run["results"]:
    for name, st in res["steps"].items():
      lines.append(
          f"train {res['precision_policy']:15s} {name:16s} "
          f"{st['seconds_per_step_median']:8.4f} s/step "
          f"{st['gflops_per_s']:8.1f} GFLOP/s "
          f"({100 * st['fraction_of_matmul_peak']:.0f}% of the "
          f"{res['matmul_peak']['dtype']} matmul peak)")

if evaluate:
  fwd = evaluate["forward"]
  doc["evaluate_forward"] = fwd
  h, w = fwd["image_size_hw"]
  scale = (384 * 512) / (h * w)  # CPU sizes: per-pixel scaling to 512x384
  per_image = {}
  for label in ("N128_M192", "N192_M320"):
    if label in fwd:
      t = fwd[label]["fused"]["seconds_per_batch_median"] / fwd["batch_size"]
      per_image[label] = t * scale
      lines.append(f"forward {label} {h}x{w} batch {fwd['batch_size']}: "
                   f"{fwd[label]['fused']['images_per_s']:.2f} images/s, "
                   f"{100 * fwd[label]['fused']['fraction_of_matmul_peak']:.0f}"
                   "% of the matmul peak")
  if "N192_M320" not in per_image and "N128_M192" in per_image:
    per_image["N192_M320"] = per_image["N128_M192"] * (192 / 128) ** 2
  if per_image:
    seconds = 3025 * (10 * per_image["N128_M192"] + 6 * per_image["N192_M320"])
    doc["fig3_job_extrapolated"] = {
        "models": "10 x N128/M192 + 6 x N192/M320",
        "forward_passes_per_model": 3025,
        "seconds_per_image_512x384": per_image,
        "scaled_from": None if scale == 1 else f"{h}x{w} by pixel count",
        "large_model": ("measured" if "N192_M320" in fwd
                        else "scaled by (192/128)^2"),
        "minutes": seconds / 60,
        "excludes": "the model-free baselines, cache I/O and the rates"}
    lines.append(f"Fig. 3 job (16 models x 3025 forward passes), "
                 f"extrapolated: {seconds / 60:.1f} min")

rep = steps.get("reproduce", {})
doc["reproduce"] = {"command": "bin/reproduce " + reproduce, **rep}
lines.append(f"bin/reproduce {reproduce}: {rep.get('seconds')} s "
             f"(exit status {rep.get('exit_status')})")
doc["wall_time_s"] = time.time() - float(start)
doc["manifest"] = _io.make_manifest({"mode": mode})
_io.write_json(output, doc)
print("\n".join(lines))
print(f"wall time {doc['wall_time_s']:.0f} s; wrote {output}")
failed = [n for n, s in steps.items() if s["exit_status"] != 0]
sys.exit(1 if failed else 0)
EOF
