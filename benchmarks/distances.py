"""Benchmark of tfc_perception.distances: images/s, forward and
forward+backward, float32, with tf.image.ssim_multiscale as the baseline
measured in the same run.

  .venv/bin/python benchmarks/distances.py                     # full run
  .venv/bin/python benchmarks/distances.py --shapes 8x256x256x3 --repeats 5
  .venv/bin/python benchmarks/distances.py --onednn on,off --modes forward

--onednn on,off runs the whole measurement once with TF_ENABLE_ONEDNN_OPTS=1
and once with =0, in fresh subprocesses (benchmarks/_bench.py), and reports
both plus the on/off speed ratio of every entry.
"depthwise_conv_11x11" (one 11x11 depthwise convolution of the distorted
batch, the filter size of tf.image.ssim_multiscale) is timed as a reference
op.

Prints one JSON document (and writes it to --output if given). Each entry:
distance, shape, mode ("forward" | "forward_backward"), images_per_s (batch /
median seconds per call) and images_per_s_best (batch / fastest call; on a
shared machine the least disturbed call), the seconds per call, and
ratio_to_baseline(_best) = images_per_s(_best) / that of
tf.image.ssim_multiscale for the same shape and mode. The backward pass is
the gradient with respect to the distorted batch (as in training). Functions
are wrapped in tf.function; the first two calls (tracing, warm-up) are not
timed; the timed calls of all functions are interleaved round by round.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tfc_perception import _io  # noqa: E402  (oneDNN default before TF)
from tfc_perception import distances  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import _bench  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("shapes", ["8x256x256x3", "8x384x512x3"],
                  "Batch shapes NxHxWxC (512x384 is TID2013's size).")
flags.DEFINE_list("distances", ["tf.image.ssim_multiscale", "mse", "psnr",
                                "ms_ssim", "nlpd_laparra2016",
                                "nlpd_laparra2017", "depthwise_conv_11x11"],
                  "Distances to time.")
flags.DEFINE_list("modes", ["forward", "forward_backward"], "What to time.")
flags.DEFINE_list("onednn", [], "oneDNN settings (on, off, default), one "
                  "subprocess each; empty: measure in this process.")
flags.DEFINE_integer("repeats", 10, "Timed calls per measurement (median).")
flags.DEFINE_string("output", None, "Also write the JSON here (atomically).")

BASELINE = "tf.image.ssim_multiscale"

FUNCTIONS = {
    BASELINE: lambda x, y: tf.image.ssim_multiscale(x, y, 1.0),
    "mse": lambda x, y: distances.mse(x, y, 1.0),
    "psnr": lambda x, y: distances.psnr(x, y, 1.0),
    "ms_ssim": lambda x, y: distances.ms_ssim(x, y, 1.0),
    "nlpd_laparra2016": lambda x, y: distances.nlpd(x, y, 1.0),
    "nlpd_laparra2017": lambda x, y: distances.nlpd(
        x, y, 1.0, variant="laparra2017"),
    "depthwise_conv_11x11": lambda x, y: tf.nn.depthwise_conv2d(
        y, tf.ones([11, 11, y.shape[-1], 1]) / 121.0, [1, 1, 1, 1], "VALID"),
}


def _call(fn, args):
  start = time.perf_counter()
  _ = [t.numpy() for t in tf.nest.flatten(fn(*args))]
  return time.perf_counter() - start


def benchmark(shapes, names, repeats, modes=("forward", "forward_backward")):
  """Runs the measurements; returns the list of result dicts.

  For each shape, all functions are traced and warmed up first, then timed
  in interleaved rounds (one call of each per round), so that the baseline
  and the distances see the same background load on a shared machine.
  """
  results = []
  for shape_str in shapes:
    shape = tuple(int(s) for s in shape_str.lower().split("x"))
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random(shape, np.float32))
    y = tf.constant(np.clip(x.numpy() + rng.normal(
        0, 0.05, shape).astype(np.float32), 0, 1))
    runs = {}
    for name in names:
      fn = FUNCTIONS[name]

      @tf.function
      def forward_backward(a, b, fn=fn):
        with tf.GradientTape() as tape:
          tape.watch(b)
          value = tf.reduce_sum(fn(a, b))
        return value, tape.gradient(value, b)

      if "forward" in modes:
        runs[(name, "forward")] = tf.function(fn)
      if "forward_backward" in modes:
        runs[(name, "forward_backward")] = forward_backward
    for f in runs.values():  # tracing and warm-up, not timed
      _call(f, (x, y))
      _call(f, (x, y))
    times = {key: [] for key in runs}
    for _ in range(repeats):
      for key, f in runs.items():
        times[key].append(_call(f, (x, y)))
    for (name, mode), t in times.items():
      median, best = float(np.median(t)), float(np.min(t))
      results.append({"distance": name, "shape": list(shape), "mode": mode,
                      "seconds_per_call_median": median,
                      "seconds_per_call_best": best,
                      "images_per_s": shape[0] / median,
                      "images_per_s_best": shape[0] / best})
      print(f"{name:26s} {shape_str:14s} {mode:17s} "
            f"{shape[0] / median:9.1f} img/s (best {shape[0] / best:9.1f})",
            file=sys.stderr)
  for r in results:
    base = [b for b in results if b["distance"] == BASELINE
            and b["shape"] == r["shape"] and b["mode"] == r["mode"]]
    if base:
      r["ratio_to_baseline"] = r["images_per_s"] / base[0]["images_per_s"]
      r["ratio_to_baseline_best"] = (r["images_per_s_best"]
                                     / base[0]["images_per_s_best"])
  return results


def main(argv):
  del argv
  for name in FLAGS.distances:
    if name not in FUNCTIONS:
      raise app.UsageError(f"unknown distance {name!r}; accepted: "
                           f"{', '.join(FUNCTIONS)}")
  for mode in FLAGS.modes:
    if mode not in ("forward", "forward_backward"):
      raise app.UsageError(f"unknown mode {mode!r}; accepted: forward, "
                           "forward_backward")
  start = time.time()
  if FLAGS.onednn and not _bench.is_child():
    runs = _bench.run_per_onednn(FLAGS.onednn)
    doc = {"benchmark": "distances", "baseline": BASELINE, "runs": runs,
           "machine": _bench.machine(),
           "manifest": _io.make_manifest(wall_time_s=time.time() - start)}
    by = {r["onednn"]: r for r in runs}
    if {"on", "off"} <= set(by):
      off = {(r["distance"], tuple(r["shape"]), r["mode"]): r
             for r in by["off"]["results"]}
      doc["on_over_off_speed"] = [
          {"distance": r["distance"], "shape": r["shape"], "mode": r["mode"],
           "images_per_s_on": r["images_per_s"],
           "images_per_s_off": off[k]["images_per_s"],
           "ratio": r["images_per_s"] / off[k]["images_per_s"]}
          for r in by["on"]["results"]
          for k in [(r["distance"], tuple(r["shape"]), r["mode"])]]
    _emit(doc)
    return
  load_before = os.getloadavg()
  results = benchmark(FLAGS.shapes, FLAGS.distances, FLAGS.repeats,
                      FLAGS.modes)
  doc = {
      "benchmark": "distances",
      "baseline": BASELINE,
      "results": results,
      "oneDNN": _bench.onednn_state(),
      "machine": dict(_bench.machine(), loadavg_1min_before=load_before[0]),
      "manifest": _io.make_manifest(
          {"shapes": FLAGS.shapes, "distances": FLAGS.distances,
           "repeats": FLAGS.repeats}, wall_time_s=time.time() - start),
  }
  _emit(doc)


def _emit(doc):
  text = json.dumps(doc, indent=2, default=str)
  print(text)
  if FLAGS.output and not _bench.is_child():
    _io.write_text(FLAGS.output, text + "\n")


if __name__ == "__main__":
  app.run(main)
