"""Benchmark of compress / decompress of the factorized-prior model: traced
(tf.function, the codecs since finalize()) against eager execution.

On one image (kodim23, 768x512, by default), in the same process, it times

- "traced": `model.compress(x)` and `model.decompress(*compressed)`, the
  validating entry points that call the traced functions `traced_compress`
  / `traced_decompress` (tf.functions with an input_signature);
- "eager": the same calls with `tf.config.run_functions_eagerly(True)`, so
  that the very same Python code runs op by op, as every compress/decompress
  did before the codecs were traced (release 1 also hashed the prior's
  weights on every call to find its cached tables; that cost is not
  included here, so "eager" is, if anything, faster than release 1 was).

Both variants are timed in interleaved rounds (traced, eager, traced, ...)
so that load changes on a shared machine hit both alike; MP/s is computed
from the median time. To show where a call's time goes, the range coding
alone (the traced entropy coder on the latent, and its decoder) and the
transforms alone (analysis of the padded image; synthesis of the rounded
latent), traced and eager, are timed in the same rounds. It also checks
that the image decoded from the traced bit-stream is bit-identical to
`model.reconstruct(x)`, and reports whether the eager variant produced the
same bit-string and image.

Defaults are the issue's configuration: N = 128, M = 192, seed 0 (untrained
weights: the bit-stream's size is reported; give --model DIR to time a
trained model saved by save_model / bin/train):

  .venv/bin/python benchmarks/codec.py
  .venv/bin/python benchmarks/codec.py --rounds 3 --output codec.json

Prints one JSON document (and writes it to --output if given).
"""

import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfc_perception import _io  # noqa: E402
from tfc_perception import models  # noqa: E402
from tfc_perception.experiments import _images  # noqa: E402


FLAGS = flags.FLAGS
flags.DEFINE_string("image", os.path.join(_images.shared_data_dir(), "kodak",
                                          "kodim23.png"),
                    "The image to code (PNG; default: kodim23 under "
                    "$TFC_PERCEPTION_SHARED_DATA or ../shared/data).")
flags.DEFINE_string("model", None, "A model directory written by save_model "
                    "(default: an untrained factorized model, see below).")
flags.DEFINE_integer("num_filters", 128, "N (without --model).")
flags.DEFINE_integer("latent_channels", 192, "M (without --model).")
flags.DEFINE_integer("warmup", 1, "Untimed calls per variant (after "
                     "tracing).")
flags.DEFINE_integer("rounds", 5, "Interleaved timing rounds.")
flags.DEFINE_integer("calls", 2, "Calls per round and variant.")
flags.DEFINE_string("output", None, "Also write the JSON here (atomically).")


def _time(fn, calls):
  start = time.perf_counter()
  for _ in range(calls):
    out = fn()
  tf.nest.map_structure(lambda t: t.numpy(), out)  # Wait for the result.
  return (time.perf_counter() - start) / calls, out


def _variant(eager, fn):
  def run():
    tf.config.run_functions_eagerly(eager)
    try:
      return fn()
    finally:
      tf.config.run_functions_eagerly(False)
  return run


def main(argv):
  del argv
  t0 = time.time()
  load_before = os.getloadavg()
  if not os.path.isfile(FLAGS.image):
    sys.exit(f"no image at {FLAGS.image}: give --image, or set "
             "TFC_PERCEPTION_SHARED_DATA to the shared/data folder.")
  if FLAGS.model:
    model = models.load_model(FLAGS.model)
    source = FLAGS.model
  else:
    model = models.build_model("factorized", num_filters=FLAGS.num_filters,
                               latent_channels=FLAGS.latent_channels, seed=0)
    model.finalize()
    source = (f"build_model('factorized', num_filters={FLAGS.num_filters}, "
              f"latent_channels={FLAGS.latent_channels}, seed=0) (untrained)")
  x = tf.io.decode_png(tf.io.read_file(FLAGS.image), channels=3)[None]
  height, width = int(x.shape[1]), int(x.shape[2])
  megapixels = height * width / 1e6
  compressed = model.compress(x)
  # The range coding alone (traced) and the transforms alone (traced and
  # eager), to see their shares of a call.
  x_float = tf.cast(x, tf.float32) / 255.0
  y = model._latent(x_float)  # pylint: disable=protected-access
  y_hat = tf.round(y)
  analysis = tf.function(lambda: model._latent(x_float))  # pylint: disable=protected-access
  synthesis = tf.function(lambda: model._synthesize(y_hat))  # pylint: disable=protected-access
  fns = {
      "traced": {"compress": _variant(False, lambda: model.compress(x)),
                 "decompress": _variant(
                     False, lambda: model.decompress(*compressed))},
      "eager": {"compress": _variant(True, lambda: model.compress(x)),
                "decompress": _variant(
                    True, lambda: model.decompress(*compressed))},
      "range_coding_only": {
          "compress": tf.function(lambda: model._encode(y)),  # pylint: disable=protected-access
          "decompress": tf.function(lambda: model._decode(  # pylint: disable=protected-access
              compressed[0], compressed[2]))},
      "transforms_only_traced": {"compress": _variant(False, analysis),
                                 "decompress": _variant(False, synthesis)},
      "transforms_only_eager": {"compress": _variant(True, analysis),
                                "decompress": _variant(True, synthesis)},
  }
  outputs = {}
  for name, pair in fns.items():  # Trace and warm up.
    for op, fn in pair.items():
      for _ in range(1 + FLAGS.warmup):
        _, outputs[(name, op)] = _time(fn, 1)
  seconds = {(name, op): [] for name in fns for op in fns[name]}
  for r in range(FLAGS.rounds):
    for name, pair in fns.items():
      for op, fn in pair.items():
        s, _ = _time(fn, FLAGS.calls)
        seconds[(name, op)].append(s)
        print(f"round {r + 1}/{FLAGS.rounds} {name} {op}: {s:.3f} s",
              file=sys.stderr, flush=True)
  results = {}
  for name in fns:
    results[name] = {}
    for op in fns[name]:
      median = statistics.median(seconds[(name, op)])
      results[name][op] = {"megapixels_per_s": megapixels / median,
                           "seconds_median": median,
                           "seconds_rounds": seconds[(name, op)]}
  speedup = {op: results["traced"][op]["megapixels_per_s"]
             / results["eager"][op]["megapixels_per_s"]
             for op in ("compress", "decompress")}
  reconstruction = model.reconstruct(x).numpy()
  traced_image = outputs[("traced", "decompress")].numpy()
  eager_image = outputs[("eager", "decompress")].numpy()
  strings = compressed[0].numpy()[0]
  checks = {
      "traced_decompress_equals_reconstruct": bool(np.array_equal(
          traced_image, reconstruction)),
      "eager_bitstring_equals_traced": bool(
          outputs[("eager", "compress")][0].numpy()[0] == strings),
      "eager_image_equals_traced": bool(np.array_equal(eager_image,
                                                       traced_image)),
      "eager_image_max_abs_diff": int(np.max(np.abs(
          eager_image.astype(int) - traced_image.astype(int)))),
  }
  doc = {
      "benchmark": "codec",
      "model": source,
      "image": {"path": FLAGS.image, "height": height, "width": width,
                "bytes": len(strings), "bpp": 8 * len(strings) / (
                    height * width)},
      "config": {"rounds": FLAGS.rounds, "calls_per_round": FLAGS.calls,
                 "warmup": FLAGS.warmup},
      "results": results,
      "speedup_traced_over_eager": speedup,
      "target_speedup": 1.5,
      "target_met": {op: s >= 1.5 for op, s in speedup.items()},
      "checks": checks,
      "load_average": {"before": load_before, "after": os.getloadavg()},
      "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
      "command": " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]),
      "device": {"cpu_count": os.cpu_count(), "machine": platform.machine()},
      "manifest": _io.make_manifest(wall_time_s=time.time() - t0),
  }
  text = json.dumps(doc, indent=2, default=str)
  print(text)
  if FLAGS.output:
    _io.write_text(FLAGS.output, text + "\n")
  if not checks["traced_decompress_equals_reconstruct"]:
    sys.exit("decompress(compress(x)) != reconstruct(x)")


if __name__ == "__main__":
  app.run(main)
