#!/usr/bin/env python3
"""Benchmark of bin/evaluate iqa: forward-pass throughput against the matmul
peak, and pairs/s on TID2013-sized pairs.

Forward pass (the part that scales with models x images): an untrained
FactorizedPrior (N=128/M=192, and N=192/M=320 unless --skip_large) on a
batch of --batch_size 512x384 images, timed in interleaved rounds with

  fused      `induced.model_outputs`, as bin/evaluate iqa runs it: one traced
             function per image size (pad, analysis, quantize, synthesis,
             crop, rounding);
  eager      the same stages called eagerly one after the other (the
             baseline: what the evaluation did before);
  matmul     a 2048 x 2048 tf.matmul, the machine's dense float32 peak;

with GFLOP per batch counted by TensorFlow's profiler on the traced graph,
GFLOP/s and the fraction of the matmul peak (median over rounds).

Then, in the same run, on a subset of 512x384 pairs laid out like TID2013
(references from ../shared/data/tid2013-sample when present, otherwise
synthetic; distorted = reference + Gaussian noise):

  baseline   PSNR, MS-SSIM, NLPD between reference and distorted (no model):
             the reference point ("the baseline distances alone").
  model      Dr, Din, Ds of an untrained FactorizedPrior (N=128/M=192, and
             N=192/M=320 as used for qualities 6-8), cold cache: forward
             passes of every image + distances + cache writes.
  cached     the same again from the cache (a resumed run / added distance).

and extrapolates the full Fig. 3 job: 3000 pairs of baselines once, plus 16
models (10 of N=128/M=192, 6 of N=192/M=320) x (3000 distorted + 25
reference forward passes), against the 60-minute target. Prints JSON.

  .venv/bin/python benchmarks/evaluate.py --pairs 8
  .venv/bin/python benchmarks/evaluate.py --forward_only --rounds 5

--onednn on,off runs everything once per oneDNN setting in subprocesses
(see benchmarks/_bench.py); by default it runs in this process.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import _bench  # noqa: E402
import tfc_perception  # noqa: E402,F401  (its oneDNN default, before TF)

SHARED_TID = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "..", "shared", "data", "tid2013-sample", "reference_images")


def make_dataset(root, n_pairs, seed=0):
  """TID2013 layout with n_pairs distorted images (AWGN, 5 levels per
  reference) of 512x384. Returns the reference source."""
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(root, "reference_images"))
  os.makedirs(os.path.join(root, "distorted_images"))
  refs = []
  if os.path.isdir(SHARED_TID):
    for f in sorted(os.listdir(SHARED_TID)):
      with Image.open(os.path.join(SHARED_TID, f)) as im:
        refs.append(np.asarray(im.convert("RGB")))
    source = "tid2013-sample reference images"
  else:
    for _ in range(6):
      small = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
      refs.append(np.asarray(Image.fromarray(small).resize(
          (512, 384), Image.BICUBIC)))
    source = "synthetic 512x384 images"
  lines = []
  for k in range(n_pairs):
    r, level = k // 5 % len(refs), k % 5 + 1
    ref = refs[r]
    Image.fromarray(ref).save(os.path.join(root, "reference_images",
                                           f"I{r + 1:02d}.BMP"))
    sigma = 3.0 * level
    dist = np.clip(np.round(ref + rng.normal(0, sigma, ref.shape)), 0,
                   255).astype(np.uint8)
    name = f"i{r + 1:02d}_01_{level}.bmp"
    Image.fromarray(dist).save(os.path.join(root, "distorted_images", name))
    lines.append(f"{7 - 0.2 * sigma:.5f} {name}")
  with open(os.path.join(root, "mos_with_names.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
  return source


def forward_throughput(configs, batch_size, height, width, rounds):
  """Fused vs eager forward passes and the matmul peak, interleaved.

  Args:
    configs: [(label, N, M)] of FactorizedPriors to time.
    batch_size, height, width: the input batch (uint8 images).
    rounds: timing rounds (median reported).

  Returns:
    {"matmul_peak_gflops_per_s": ..., label: {...}} (see the module doc).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfc_perception import induced  # pylint: disable=g-import-not-at-top
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  x = np.random.default_rng(0).integers(
      0, 256, (batch_size, height, width, 3), dtype=np.uint8)
  inp = tf.constant(x)
  pad = ((-height) % 16, (-width) % 16, "SYMMETRIC")
  runs, gflop = {}, {}
  for label, nf, m in configs:
    tf.keras.utils.set_random_seed(0)
    model = models.build_model("factorized", num_filters=nf,
                               latent_channels=m)
    fused = induced.forward_function(model, inp.shape, inp.dtype, pad)
    runs[(label, "fused")] = lambda model=model: induced.model_outputs(
        model, x)
    runs[(label, "eager")] = lambda model=model: [
        t.numpy() for t in induced._forward(model, inp, pad, True)]  # pylint: disable=protected-access
    gflop[label] = _bench.graph_flops(fused.get_concrete_function()) / 1e9
  mm_flops, mm_timer = _bench.matmul_seconds()
  for f in runs.values():  # tracing + warm-up
    f()
  seconds = {k: [] for k in runs}
  matmul = []
  for r in range(rounds):
    for k, f in runs.items():
      t = time.perf_counter()
      f()
      seconds[k].append(time.perf_counter() - t)
      print(f"forward round {r + 1}/{rounds} {k[0]} {k[1]}: "
            f"{seconds[k][-1]:.3f} s", file=sys.stderr, flush=True)
    matmul.append(min(mm_timer() for _ in range(3)))
  peak = mm_flops / statistics.median(matmul) / 1e9
  out = {"batch_size": batch_size, "image_size_hw": [height, width],
         "matmul_peak_gflops_per_s": peak, "matmul_seconds_rounds": matmul}
  for label, _, _ in configs:
    entry = {"gflop_per_batch": gflop[label]}
    for mode in ("fused", "eager"):
      t = statistics.median(seconds[(label, mode)])
      entry[mode] = {"seconds_per_batch_median": t,
                     "seconds_rounds": seconds[(label, mode)],
                     "images_per_s": batch_size / t,
                     "gflops_per_s": gflop[label] / t,
                     "fraction_of_matmul_peak": gflop[label] / t / peak}
    entry["fused_speedup_over_eager"] = statistics.median(
        e / f for e, f in zip(seconds[(label, "eager")],
                              seconds[(label, "fused")]))
    out[label] = entry
  return out


class _Timer:
  """Wall and process CPU time of a block (the machine may be shared: CPU
  seconds / cores bounds what an idle machine would take)."""

  def __enter__(self):
    self.w, self.c = time.perf_counter(), time.process_time()
    return self

  def __exit__(self, *exc):
    self.wall = time.perf_counter() - self.w
    self.cpu = time.process_time() - self.c


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--pairs", type=int, default=8,
                      help="pairs in the subset (>= 3)")
  parser.add_argument("--batch_size", type=int, default=4)
  parser.add_argument("--skip_large", action="store_true",
                      help="do not time the N=192/M=320 model")
  parser.add_argument("--forward_only", action="store_true",
                      help="only the forward-pass throughput, no pairs")
  parser.add_argument("--rounds", type=int, default=5,
                      help="timing rounds of the forward passes")
  parser.add_argument("--height", type=int, default=384)
  parser.add_argument("--width", type=int, default=512)
  parser.add_argument("--onednn", default="",
                      help="comma-separated oneDNN settings (on, off, "
                      "default), one subprocess each; empty: this process")
  parser.add_argument("--output", default=None,
                      help="also write the JSON here (atomically)")
  args = parser.parse_args()
  if args.onednn and not _bench.is_child():
    runs = _bench.run_per_onednn(args.onednn.split(","))
    doc = {"benchmark": "evaluate_iqa", "runs": runs,
           "machine": _bench.machine()}
    _emit(doc, args.output)
    return

  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  from tfc_perception.evaluation import iqa  # pylint: disable=g-import-not-at-top

  configs = [("N128_M192", 128, 192)] + (
      [] if args.skip_large else [("N192_M320", 192, 320)])
  load_before = _bench.machine()["loadavg"]
  forward = forward_throughput(configs, args.batch_size, args.height,
                               args.width, args.rounds)
  if args.forward_only:
    _emit({"benchmark": "evaluate_iqa", "forward": forward,
           "oneDNN": _bench.onednn_state(), "loadavg_before": load_before,
           "machine": _bench.machine()}, args.output)
    return
  work = tempfile.mkdtemp(prefix="bench_evaluate_")
  try:
    root = os.path.join(work, "tid")
    source = make_dataset(root, args.pairs)
    ds = iqa.load_dataset("tid2013", root)
    n = len(ds)
    common = dict(n_bootstrap=0, progress=False, batch_size=args.batch_size)

    # Warm-up of the distance graphs (not timed).
    iqa.evaluate_iqa(ds, os.path.join(work, "warm"), cache_dir="",
                     distances="psnr,msssim,nlpd", limit=3, **common)
    with _Timer() as tb:
      iqa.evaluate_iqa(ds, os.path.join(work, "base"), cache_dir="",
                       distances="psnr,msssim,nlpd", **common)
    baseline_s, baseline_cpu = tb.wall, tb.cpu

    per_model = {}
    for label, nf, m in configs:
      tf.keras.utils.set_random_seed(0)
      model = models.build_model("factorized", num_filters=nf,
                                 latent_channels=m)
      # Warm-up: coding tables and tracing (not timed; once per model).
      t = time.perf_counter()
      iqa.evaluate_iqa(ds, os.path.join(work, f"warm-{label}"), cache_dir="",
                       distances="dr,din,ds", loaded_models=[(label, model)],
                       limit=3, **common)
      warm_s = time.perf_counter() - t
      cache = os.path.join(work, f"cache-{label}")
      with _Timer() as tc:
        iqa.evaluate_iqa(ds, os.path.join(work, label), cache_dir=cache,
                         distances="dr,din,ds", loaded_models=[(label, model)],
                         **common)
      cold_s, cold_cpu = tc.wall, tc.cpu
      t = time.perf_counter()
      iqa.evaluate_iqa(ds, os.path.join(work, label + "-again"),
                       cache_dir=cache, distances="dr,din,ds",
                       loaded_models=[(label, model)], **common)
      cached_s = time.perf_counter() - t
      n_images = n + len(ds.references)
      cache_bytes = sum(os.path.getsize(os.path.join(d, f))
                        for d, _, fs in os.walk(cache) for f in fs
                        if f.endswith(".npz"))
      per_model[label] = {
          "first_call_warmup_s": round(warm_s, 2),
          "cold_s": round(cold_s, 2),
          "cold_pairs_per_s": round(n / cold_s, 3),
          "cold_cpu_s": round(cold_cpu, 2),
          "cached_s": round(cached_s, 2),
          "cached_pairs_per_s": round(n / cached_s, 3),
          "cache_mb_per_image": round(cache_bytes / n_images / 1e6, 3),
      }

    # Extrapolation of the full Fig. 3 job. Per model, the cold time of the
    # subset covers its n distorted + len(references) reference passes; TID2013
    # has 3000 distorted + 25 references per model.
    def full_job_s(key, base_s):
      def per_model_s(label):
        per_image = per_model[label][key] / (n + len(ds.references))
        return per_image * (3000 + 25)
      small = per_model_s("N128_M192")
      large = per_model_s("N192_M320") if "N192_M320" in per_model else (
          small * (192 * 192) / (128 * 128))
      return 3000 * base_s / n + 10 * small + 6 * large

    full_s = full_job_s("cold_s", baseline_s)
    cores = os.cpu_count() or 1
    full_cpu_bound_s = full_job_s("cold_cpu_s", baseline_cpu) / cores
    result = {
        "benchmark": "evaluate_iqa",
        "subset_pairs": n, "image_size_hw": [384, 512],
        "references": len(ds.references), "source": source,
        "batch_size": args.batch_size,
        "baseline": {"distances": ["psnr", "msssim", "nlpd"],
                     "seconds": round(baseline_s, 2),
                     "cpu_s": round(baseline_cpu, 2),
                     "pairs_per_s": round(n / baseline_s, 3)},
        "models": per_model,
        "all_distances_pairs_per_s_N128_M192": round(
            n / (baseline_s + per_model["N128_M192"]["cold_s"]), 3),
        "full_fig3_job": {
            "pairs": 3000, "models": "10 x N128/M192 + 6 x N192/M320",
            "estimated_minutes": round(full_s / 60, 1),
            "estimated_minutes_idle_lower_bound": round(
                full_cpu_bound_s / 60, 1),
            "idle_lower_bound": "CPU seconds / cores: what this machine "
                                "would take unshared with perfect use of "
                                "all cores",
            "large_model_estimate": ("measured" if "N192_M320" in per_model
                                     else "scaled by (192/128)^2"),
            "target_minutes": 60,
            "meets_target": bool(full_s / 60 <= 60),
            "meets_target_idle_lower_bound": bool(
                full_cpu_bound_s / 60 <= 60),
            "cache_gb": round(
                (3000 + 25) * 16 * per_model["N128_M192"][
                    "cache_mb_per_image"] / 1e3, 1),
        },
        "forward": forward,
        "oneDNN": _bench.onednn_state(),
        "loadavg_before": load_before,
        "machine": dict(_bench.machine(), gpu=[
            d.name for d in tf.config.list_physical_devices("GPU")]),
    }
    _emit(result, args.output)
  finally:
    shutil.rmtree(work, ignore_errors=True)


def _emit(doc, output):
  from tfc_perception import _io  # pylint: disable=g-import-not-at-top
  doc["manifest"] = _io.make_manifest()
  text = json.dumps(doc, indent=2, default=str)
  print(text)
  if output:
    _io.write_text(output, text + "\n")


if __name__ == "__main__":
  main()
