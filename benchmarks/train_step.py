"""Benchmark of one Eq. 3 training step of the factorized-prior model
(bmshj2018, Fig. 15), per distortion D, with oneDNN on and off.

In one process (one per oneDNN setting, see below), on the same input batch,
in interleaved rounds (one round = a few steps of every step function, then
a few tf.matmul calls), it times

- "project-D" for every D of --distortions (default mse, msssim, nlpd):
  `build_model("factorized", distortion=D, ...)` trained as `bin/train`
  does: `model.compile(Adam)` and the Keras train function (the model's
  `train_step` inside `tf.function`, fed by a `tf.data` iterator);
- "baseline": a plain `tf.GradientTape` step of the same architecture with
  D = MSE written inline with tensorflow-compression layers (4
  SignalConv2D + GDN down, 4 SignalConv2D + IGDN up, NoisyDeepFactorized +
  ContinuousBatchedEntropyModel), loss bpp + lambda * 255^2 * MSE;
- "matmul": an n x n tf.matmul in the policy's compute dtype, the machine's
  peak for dense float work measured in the same rounds.

- "loss-D": the distortion D alone, forward and backward (gradient with
  respect to the reconstruction) on the batch, as the train step computes it
  (`models.base.distortion_fn`); a few calls per round, the fastest kept.

and reports seconds per step (median and best of the rounds), the ratio of
every step to the project MSE step (median of the per-round ratios: the two
are measured back to back, so this is the number that survives a shared
machine's load), GFLOP per step (counted by TensorFlow's profiler on the
traced graph), GFLOP/s and the fraction of the matmul peak, and per D the
loss overhead: (fastest loss-D - fastest loss-mse) / fastest MSE step, i.e.
what D adds to a step, from short calls that a loaded machine disturbs
least.

--onednn on,off (the default) runs the measurement once with
TF_ENABLE_ONEDNN_OPTS=1 and once with =0, each in a fresh subprocess (TF
reads the variable at import), and adds the off/on ratio of each step
(measured in two processes, so less robust than the ratios above);
--onednn default uses the environment as it is; --onednn '' measures in
this process. The defaults are the issue's configuration: N=128, M=192,
batch 8, 256x256. For quick checks use smaller sizes (MS-SSIM needs a
patch of at least 161 px):

  .venv/bin/python benchmarks/train_step.py --output results/train_step.json
  .venv/bin/python benchmarks/train_step.py --num_filters 32 \
      --latent_channels 48 --patchsize 176 --rounds 3 --steps 2

Prints one JSON document (and writes it to --output if given) and a summary
table on stderr.
"""

import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import _bench  # noqa: E402
from tfc_perception import _io  # noqa: E402  (sets the oneDNN default first)

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_filters", 128, "N.")
flags.DEFINE_integer("latent_channels", 192, "M.")
flags.DEFINE_integer("batchsize", 8, "Images per step.")
flags.DEFINE_integer("patchsize", 256, "Image side (pixels).")
flags.DEFINE_list("distortions", ["mse", "msssim", "nlpd"],
                  "D of the project steps (models.DISTORTIONS for images).")
flags.DEFINE_bool("baseline", True, "Also time the inline tfc MSE step.")
flags.DEFINE_list("precision_policies", ["float32"],
                  "Keras precision policies to time (float32, "
                  "mixed_float16, mixed_bfloat16).")
flags.DEFINE_list("onednn", ["on", "off"],
                  "oneDNN settings, one subprocess each (on, off, default); "
                  "empty: measure in this process.")
flags.DEFINE_integer("warmup", 2, "Untimed steps (after tracing) per step "
                     "function and policy.")
flags.DEFINE_integer("rounds", 5, "Interleaved timing rounds.")
flags.DEFINE_integer("steps", 3, "Steps per round and step function.")
flags.DEFINE_integer("matmul_n", 2048, "Side of the tf.matmul of the peak.")
flags.DEFINE_float("lmbda", 0.01, "lambda of Eq. 3.")
flags.DEFINE_string("output", None, "Also write the JSON here (atomically).")

_PEAK_DTYPE = {"float32": "float32", "mixed_float16": "float16",
               "mixed_bfloat16": "bfloat16"}


def _baseline(n, m, lmbda):
  """An inline bmshj2018-factorized train step with tfc layers, and its
  graph."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_compression as tfc  # pylint: disable=g-import-not-at-top

  def down(f, gdn, i):
    return tfc.SignalConv2D(f, (5, 5), corr=True, strides_down=2,
                            padding="same_zeros", use_bias=True,
                            activation=tfc.GDN(name=f"gdn{i}") if gdn else None)

  def up(f, igdn, i):
    return tfc.SignalConv2D(
        f, (5, 5), corr=False, strides_up=2, padding="same_zeros",
        use_bias=True,
        activation=tfc.GDN(inverse=True, name=f"igdn{i}") if igdn else None)

  analysis = tf.keras.Sequential([down(n, True, 0), down(n, True, 1),
                                  down(n, True, 2), down(m, False, 3)])
  synthesis = tf.keras.Sequential([up(n, True, 0), up(n, True, 1),
                                   up(n, True, 2), up(3, False, 3)])
  prior = tfc.NoisyDeepFactorized(batch_shape=(m,))
  entropy_model = tfc.ContinuousBatchedEntropyModel(
      prior, coding_rank=3, compression=False, bottleneck_dtype=tf.float32)
  optimizer = tf.keras.optimizers.Adam(1e-4)
  analysis.build((None, None, None, 3))
  synthesis.build((None, None, None, m))
  variables = (analysis.trainable_variables + synthesis.trainable_variables
               + list(prior.trainable_variables))
  optimizer.build(variables)

  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      y = tf.cast(analysis(x), tf.float32)
      y_tilde, bits = entropy_model(y, training=True)
      x_hat = tf.cast(synthesis(y_tilde), tf.float32)
      pixels = tf.cast(tf.reduce_prod(tf.shape(x)[1:3]), tf.float32)
      rate = tf.reduce_mean(bits) / pixels
      distortion = 255.0**2 * tf.reduce_mean(tf.math.squared_difference(
          x, x_hat))
      loss = rate + lmbda * distortion
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return loss

  return (lambda x, _: step(x),
          lambda x, _: step.get_concrete_function(x))


def _project(distortion, n, m, lmbda):
  """The Keras train function of the project's model, and its graph."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  model = models.build_model("factorized", num_filters=n, latent_channels=m,
                             lmbda=lmbda, distortion=distortion, seed=0)
  # The models build their entropy models with float32 bottlenecks, so the
  # rate is computed in float32 under a mixed policy too.
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-4))
  # Adam's slots before tracing, as the trainer does (tfc_perception.training).
  model.optimizer.build(model.trainable_variables)
  train_function = model.make_train_function()
  return (lambda _, iterator: train_function(iterator)["loss"],
          lambda _, iterator: model.train_tf_function.get_concrete_function(
              iterator))


def _loss_function(distortion):
  """Forward + backward of D(x, x_hat) averaged over the batch."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfc_perception.models import base  # pylint: disable=g-import-not-at-top
  fn = base.distortion_fn(distortion, image=True)

  @tf.function
  def loss(x, x_hat):
    with tf.GradientTape() as tape:
      tape.watch(x_hat)
      value = tf.reduce_mean(fn(x, x_hat))
    return value, tape.gradient(value, x_hat)

  return loss


def _best_call(fn, args, calls=3):
  best = float("inf")
  for _ in range(calls):
    start = time.perf_counter()
    _ = [float(tf_value.numpy().ravel()[0]) for tf_value in fn(*args)]
    best = min(best, time.perf_counter() - start)
  return best


def _run_steps(fn, x, iterator, steps):
  start = time.perf_counter()
  for _ in range(steps):
    loss = fn(x, iterator)
  float(loss)  # Wait for the last step.
  return (time.perf_counter() - start) / steps


def _median_ratio(a, b):
  return statistics.median(x / y for x, y in zip(a, b))


def measure(policy):
  """Times every step function and the matmul peak under one policy."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.keras.mixed_precision.set_global_policy(policy)
  try:
    shape = [FLAGS.batchsize, FLAGS.patchsize, FLAGS.patchsize, 3]
    x = tf.random.stateless_uniform(shape, seed=[1, 2])
    iterator = iter(tf.data.Dataset.from_tensors(x).repeat())
    fns, graphs = {}, {}
    for d in FLAGS.distortions:
      fns[f"project-{d}"], graphs[f"project-{d}"] = _project(
          d, FLAGS.num_filters, FLAGS.latent_channels, FLAGS.lmbda)
    if FLAGS.baseline:
      fns["baseline"], graphs["baseline"] = _baseline(
          FLAGS.num_filters, FLAGS.latent_channels, FLAGS.lmbda)
    x_hat = tf.clip_by_value(
        x + tf.random.stateless_normal(shape, seed=[3, 4], stddev=0.05), 0, 1)
    losses = {d: _loss_function(d) for d in FLAGS.distortions}
    for fn in fns.values():  # Trace + warm up.
      _run_steps(fn, x, iterator, 1 + FLAGS.warmup)
    for fn in losses.values():
      _best_call(fn, (x, x_hat), 2)
    gflop = {k: _bench.graph_flops(g(x, iterator)) / 1e9
             for k, g in graphs.items()}
    mm_flops, mm_timer = _bench.matmul_seconds(FLAGS.matmul_n,
                                               _PEAK_DTYPE[policy])
    seconds = {k: [] for k in fns}
    loss_seconds = {d: [] for d in losses}
    matmul = []
    for r in range(FLAGS.rounds):
      for name, fn in fns.items():
        seconds[name].append(_run_steps(fn, x, iterator, FLAGS.steps))
        print(f"[{policy}] round {r + 1}/{FLAGS.rounds} {name}: "
              f"{seconds[name][-1]:.3f} s/step", file=sys.stderr, flush=True)
      for d, fn in losses.items():
        loss_seconds[d].append(_best_call(fn, (x, x_hat)))
      matmul.append(min(mm_timer() for _ in range(3)))
    peak = mm_flops / statistics.median(matmul) / 1e9
    result = {"precision_policy": policy,
              "matmul_peak": {"n": FLAGS.matmul_n,
                              "dtype": _PEAK_DTYPE[policy],
                              "gflops_per_s_median": peak,
                              "gflops_per_s_best": mm_flops / min(matmul) / 1e9,
                              "seconds_rounds": matmul},
              "steps": {}}
    reference = f"project-{FLAGS.distortions[0]}"
    for name in fns:
      median = statistics.median(seconds[name])
      rate = gflop[name] / median
      result["steps"][name] = {
          "seconds_per_step_median": median,
          "seconds_per_step_best": min(seconds[name]),
          "seconds_per_step_rounds": seconds[name],
          "gflop_per_step": gflop[name],
          "gflops_per_s": rate,
          "fraction_of_matmul_peak": rate / peak,
          f"ratio_to_{reference}": _median_ratio(seconds[name],
                                                 seconds[reference]),
      }
    step_best = min(seconds[reference])
    result["losses"] = {
        d: {"seconds_fwd_bwd_best": min(t), "seconds_fwd_bwd_rounds": t,
            f"overhead_vs_{reference}_step": (
                min(t) - min(loss_seconds[FLAGS.distortions[0]])) / step_best}
        for d, t in loss_seconds.items()}
    return result
  finally:
    tf.keras.mixed_precision.set_global_policy("float32")


def _config():
  return {"num_filters": FLAGS.num_filters,
          "latent_channels": FLAGS.latent_channels,
          "batchsize": FLAGS.batchsize, "patchsize": FLAGS.patchsize,
          "distortions": FLAGS.distortions, "baseline": FLAGS.baseline,
          "precision_policies": FLAGS.precision_policies,
          "rounds": FLAGS.rounds, "steps_per_round": FLAGS.steps,
          "warmup": FLAGS.warmup, "matmul_n": FLAGS.matmul_n}


def _measure_here():
  t0 = time.time()
  before = _bench.machine()
  results = [measure(p) for p in FLAGS.precision_policies]
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return {"results": results, "oneDNN": _bench.onednn_state(),
          "loadavg_before": before["loadavg"],
          "loadavg_after": _bench.machine()["loadavg"],
          "gpus": [d.name for d in tf.config.list_logical_devices("GPU")],
          "wall_time_s": time.time() - t0}


def _off_on_ratios(runs):
  """seconds(off) / seconds(on) per policy and step (two processes)."""
  by = {r.get("onednn"): r for r in runs}
  if not {"on", "off"} <= set(by):
    return None
  out = {}
  for on, off in zip(by["on"]["results"], by["off"]["results"]):
    out[on["precision_policy"]] = {
        k: off["steps"][k]["seconds_per_step_median"]
        / v["seconds_per_step_median"] for k, v in on["steps"].items()}
  return out


def _summary(doc):
  lines = []
  for run in doc["runs"]:
    for res in run["results"]:
      peak = res["matmul_peak"]["gflops_per_s_median"]
      lines.append(f"oneDNN {run.get('onednn', '-')} "
                   f"({run['oneDNN']['onednn_enabled']}), "
                   f"{res['precision_policy']}, matmul peak {peak:.1f} "
                   f"GFLOP/s, load {run['loadavg_before'][0]:.1f}->"
                   f"{run['loadavg_after'][0]:.1f}")
      for name, st in res["steps"].items():
        ratio = [v for k, v in st.items() if k.startswith("ratio_to_")][0]
        lines.append(f"  {name:18s} {st['seconds_per_step_median']:7.3f} "
                     f"s/step  x{ratio:5.3f}  {st['gflop_per_step']:6.1f} "
                     f"GFLOP  {st['gflops_per_s']:6.1f} GFLOP/s "
                     f"({100 * st['fraction_of_matmul_peak']:.0f}% of peak)")
      for d, ls in res.get("losses", {}).items():
        over = [v for k, v in ls.items() if k.startswith("overhead_vs_")][0]
        lines.append(f"  loss-{d:13s} {ls['seconds_fwd_bwd_best']:7.3f} "
                     f"s fwd+bwd (best)  adds {100 * over:+.1f}% to the step")
  return "\n".join(lines)


def main(argv):
  del argv
  if FLAGS.onednn and not _bench.is_child():
    t0 = time.time()
    runs = _bench.run_per_onednn(FLAGS.onednn)
  else:
    runs = [_measure_here()]
    if _bench.is_child():
      print(json.dumps(runs[0], default=str))
      return
    t0 = time.time() - runs[0]["wall_time_s"]
  doc = {
      "benchmark": "train_step",
      "model": "factorized (bmshj2018, Fig. 15)",
      "config": _config(),
      "runs": runs,
      "off_over_on": _off_on_ratios(runs),
      "machine": _bench.machine(),
      "manifest": _io.make_manifest(_config(), wall_time_s=time.time() - t0),
  }
  text = json.dumps(doc, indent=2, default=str)
  print(_summary(doc), file=sys.stderr)
  print(text)
  if FLAGS.output:
    _io.write_text(FLAGS.output, text + "\n")


if __name__ == "__main__":
  app.run(main)
