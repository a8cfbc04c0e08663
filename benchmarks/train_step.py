"""Benchmark of one Eq. 3 training step of the factorized-prior model.

Compares, in the same process and on the same input batch, train steps/s of

- "project": `tfc_perception.models.build_model("factorized", ...)` trained
  as `bin/train` does: `model.compile(Adam)` and the Keras train function
  (`model.make_train_function()`, i.e. the model's `train_step` inside
  `tf.function`, fed by a `tf.data` iterator, as `model.fit` runs it);
- "baseline": a plain `tf.GradientTape` step of the same architecture
  written inline with tensorflow-compression layers (4 SignalConv2D + GDN
  down, 4 SignalConv2D + IGDN up, NoisyDeepFactorized +
  ContinuousBatchedEntropyModel), `tf.function`-compiled, loss
  bpp + lambda * 255^2 * MSE.

For each precision policy (float32, mixed_bfloat16 by default), both steps
are timed in interleaved rounds (project round, baseline round, ...) so that
load changes on a shared machine hit both alike; steps/s is the median over
rounds. Defaults are the issue's configuration: N=128, M=192, batch 8,
256x256 (about 1 s per step on a 2-core CPU); use smaller sizes for quick
checks:

  .venv/bin/python benchmarks/train_step.py
  .venv/bin/python benchmarks/train_step.py --num_filters 32 \
      --latent_channels 48 --patchsize 64 --rounds 3 --steps 3

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
import tensorflow as tf  # noqa: E402
import tensorflow_compression as tfc  # noqa: E402

from tfc_perception import _io  # noqa: E402
from tfc_perception import models  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_filters", 128, "N.")
flags.DEFINE_integer("latent_channels", 192, "M.")
flags.DEFINE_integer("batchsize", 8, "Images per step.")
flags.DEFINE_integer("patchsize", 256, "Image side (pixels).")
flags.DEFINE_list("precision_policies", ["float32", "mixed_bfloat16"],
                  "Keras precision policies to time.")
flags.DEFINE_integer("warmup", 2, "Untimed steps (after tracing) per step "
                     "function and policy.")
flags.DEFINE_integer("rounds", 5, "Interleaved timing rounds.")
flags.DEFINE_integer("steps", 3, "Steps per round and step function.")
flags.DEFINE_float("lmbda", 0.01, "lambda of Eq. 3.")
flags.DEFINE_string("output", None, "Also write the JSON here (atomically).")


def _baseline(n, m, lmbda):
  """An inline bmshj2018-factorized train step with tfc layers."""
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

  return lambda x, _: step(x)


def _project(n, m, lmbda):
  model = models.build_model("factorized", num_filters=n, latent_channels=m,
                             lmbda=lmbda, seed=0)
  # The models build their entropy models with float32 bottlenecks, so the
  # rate is computed in float32 under a mixed policy too.
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-4))
  train_function = model.make_train_function()
  return lambda _, iterator: train_function(iterator)["loss"]


def _run_steps(fn, x, iterator, steps):
  start = time.perf_counter()
  for _ in range(steps):
    loss = fn(x, iterator)
  float(loss)  # Wait for the last step.
  return (time.perf_counter() - start) / steps


def _measure(policy):
  tf.keras.mixed_precision.set_global_policy(policy)
  try:
    shape = [FLAGS.batchsize, FLAGS.patchsize, FLAGS.patchsize, 3]
    x = tf.random.stateless_uniform(shape, seed=[1, 2])
    iterator = iter(tf.data.Dataset.from_tensors(x).repeat())
    fns = {"project": _project(FLAGS.num_filters, FLAGS.latent_channels,
                               FLAGS.lmbda),
           "baseline": _baseline(FLAGS.num_filters, FLAGS.latent_channels,
                                 FLAGS.lmbda)}
    for fn in fns.values():  # Trace + warm up.
      _run_steps(fn, x, iterator, 1 + FLAGS.warmup)
    seconds = {k: [] for k in fns}
    for r in range(FLAGS.rounds):
      for name, fn in fns.items():
        seconds[name].append(_run_steps(fn, x, iterator, FLAGS.steps))
        print(f"[{policy}] round {r + 1}/{FLAGS.rounds} {name}: "
              f"{seconds[name][-1]:.3f} s/step", file=sys.stderr, flush=True)
    result = {"precision_policy": policy}
    for name in fns:
      median = statistics.median(seconds[name])
      result[name] = {"steps_per_s": 1.0 / median,
                      "seconds_per_step_median": median,
                      "seconds_per_step_rounds": seconds[name]}
    result["ratio_to_baseline"] = (result["project"]["steps_per_s"]
                                   / result["baseline"]["steps_per_s"])
    return result
  finally:
    tf.keras.mixed_precision.set_global_policy("float32")


def main(argv):
  del argv
  t0 = time.time()
  results = [_measure(p) for p in FLAGS.precision_policies]
  doc = {
      "benchmark": "train_step",
      "model": "factorized (bmshj2018, Fig. 15)",
      "config": {"num_filters": FLAGS.num_filters,
                 "latent_channels": FLAGS.latent_channels,
                 "batchsize": FLAGS.batchsize, "patchsize": FLAGS.patchsize,
                 "rounds": FLAGS.rounds, "steps_per_round": FLAGS.steps,
                 "warmup": FLAGS.warmup},
      "results": results,
      "device": {"cpu_count": os.cpu_count(), "machine": platform.machine(),
                 "gpus": [d.name for d in tf.config.list_logical_devices(
                     "GPU")]},
      "manifest": _io.make_manifest(wall_time_s=time.time() - t0),
  }
  text = json.dumps(doc, indent=2, default=str)
  print(text)
  if FLAGS.output:
    _io.write_text(FLAGS.output, text + "\n")


if __name__ == "__main__":
  app.run(main)
