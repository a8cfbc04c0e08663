"""Benchmark of a loaded tfci graph (`pretrained.load`): what the parts of
the evaluation forward pass cost, and what the first-load check costs.

`TfciModel.quantize` runs the graph's own sender from the latent and its
receiver to latent_hat (quantiser, range coder, dequantiser), so y_hat is
exactly what the decoder computes. This measures that against analysis and
synthesis of the same model in the same run, on a bmshj2018-factorized-sized
graph (N = 128 hidden filters, M = 192 latent channels, stride 16, GDN;
random weights, exported here with `pretrained.export` like tfc's
metagraphs: no download needed):

  .venv/bin/python benchmarks/tfci_model.py                 # 384x512
  .venv/bin/python benchmarks/tfci_model.py --size 256x256 --repeats 3

Prints one JSON document (and writes it to --output if given):
seconds per call (median and best of --repeats, interleaved rounds after one
untimed warm-up call) of analysis, quantize, synthesis and reconstruct
(= decompress(compress(x)), the graph's own codec) for one image;
quantize_fraction = quantize / (analysis + quantize + synthesis); the time
of the self-check itself (`self_check()`, functions already built), and of
one load that runs the first-load check against one that reads a stored
check (both after an untimed load that pays TensorFlow's one-time costs).
"""

import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_compression as tfc  # noqa: E402

from tfc_perception import _io  # noqa: E402
from tfc_perception import pretrained  # noqa: E402
from tfc_perception.pretrained import checks  # noqa: E402
from tfc_perception.pretrained import export  # noqa: E402
from tfc_perception.pretrained import tfci  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("size", "384x512", "Image size HxW (TID2013: 384x512).")
flags.DEFINE_integer("num_filters", 128, "N (bmshj2018 q1-5: 128).")
flags.DEFINE_integer("latent_channels", 192, "M (bmshj2018 q1-5: 192).")
flags.DEFINE_integer("repeats", 5, "Timed calls per part (median, best).")
flags.DEFINE_string("output", None, "Also write the JSON here (atomically).")


class Bmshj2018Like(tf.Module):
  """bmshj2018-factorized's architecture (4 x 5x5 stride-2 convolutions with
  GDN, a factorized prior) with random weights; compress/decompress as in
  tfc's bmshj2018 example."""

  def __init__(self, n, m):
    super().__init__()
    tf.random.set_seed(0)

    def conv(filters, last, corr):
      kw = dict(corr=corr, padding="same_zeros", use_bias=True)
      if corr:
        kw["strides_down"] = 2
      else:
        kw["strides_up"] = 2
      act = None if last else tfc.GDN(inverse=not corr)
      return tfc.SignalConv2D(filters, (5, 5), activation=act, **kw)

    self.a = tf.keras.Sequential([conv(n, False, True) for _ in range(3)]
                                 + [conv(m, True, True)])
    self.s = tf.keras.Sequential([conv(n, False, False) for _ in range(3)]
                                 + [conv(3, True, False)])
    self.a(tf.zeros([1, 64, 64, 3]))
    self.s(tf.zeros([1, 4, 4, m]))
    self.em = tfc.ContinuousBatchedEntropyModel(
        tfc.NoisyLogistic(loc=0., scale=tf.fill([m], 2.)), coding_rank=3,
        compression=True)

  def compress(self, x):
    y = self.a(tf.cast(x, tf.float32) / 255.)
    return self.em.compress(y), tf.shape(x)[1:-1], tf.shape(y)[1:-1]

  def decompress(self, strings, x_shape, y_shape):
    y_hat = self.em.decompress(strings, y_shape)
    x_hat = self.s(y_hat)[:, :x_shape[0], :x_shape[1], :]
    return tf.saturate_cast(tf.round(x_hat * 255.), tf.uint8)


def _timed(fn):
  start = time.perf_counter()
  out = fn()
  _ = [t.numpy() for t in tf.nest.flatten(out) if hasattr(t, "numpy")]
  return time.perf_counter() - start, out


def main(argv):
  del argv
  h, w = (int(v) for v in FLAGS.size.lower().split("x"))
  start = time.time()
  load_before = os.getloadavg()
  with tempfile.TemporaryDirectory() as tmp:
    path = export.export_metagraph(
        Bmshj2018Like(FLAGS.num_filters, FLAGS.latent_channels),
        os.path.join(tmp, "bench.metagraph"))
    tfci.TfciModel(path, check=False)  # TF's one-time costs
    checks.clear_memory()
    t_load_check, model = _timed(lambda: pretrained.load(path))
    record = os.path.join(tmp, "record.json")
    checks.store(record, model.sha256, model.model_name,
                 model.tensors.roles(), model.tensors.reconstruction_scale,
                 model.check)
    checks.clear_memory()
    t_load_stored, _ = _timed(lambda: tfci.TfciModel(
        path, check_record=record))
    t_check, check = _timed(model.self_check)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w] / 16.
    x = np.clip(128 + 80 * np.stack(
        [np.sin(yy + c) * np.cos(xx / 2 + c) for c in range(3)], -1)
                + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)[None]
    y = model.analysis(x)
    y_hat = model.quantize(y)
    parts = {"analysis": lambda: model.analysis(x),
             "quantize": lambda: model.quantize(y),
             "synthesis": lambda: model.synthesis(y_hat),
             "reconstruct": lambda: model.reconstruct(x)}
    for fn in parts.values():  # warm-up (function building), not timed
      _timed(fn)
    times = {k: [] for k in parts}
    for _ in range(FLAGS.repeats):
      for k, fn in parts.items():
        times[k].append(_timed(fn)[0])
  med = {k: float(np.median(v)) for k, v in times.items()}
  doc = {
      "benchmark": "tfci_model",
      "image": [h, w], "N": FLAGS.num_filters, "M": FLAGS.latent_channels,
      "latent_shape": y.shape.as_list(),
      "seconds_per_call_median": med,
      "seconds_per_call_best": {k: float(np.min(v)) for k, v in times.items()},
      "quantize_fraction": med["quantize"] / (
          med["analysis"] + med["quantize"] + med["synthesis"]),
      "self_check": {"seconds": t_check, "ok": check["ok"],
                     "max_abs_diff": check["max_abs_diff"]},
      "load_seconds": {"running_the_check": t_load_check,
                       "reading_a_stored_check": t_load_stored},
      "machine": {"cpu_count": os.cpu_count(),
                  "loadavg_1min_before": load_before[0],
                  "loadavg_1min_after": os.getloadavg()[0]},
      "manifest": _io.make_manifest(
          {"size": FLAGS.size, "num_filters": FLAGS.num_filters,
           "latent_channels": FLAGS.latent_channels,
           "repeats": FLAGS.repeats}, wall_time_s=time.time() - start),
  }
  text = json.dumps(doc, indent=2, default=str)
  print(text)
  if FLAGS.output:
    _io.write_text(FLAGS.output, text + "\n")


if __name__ == "__main__":
  app.run(main)
