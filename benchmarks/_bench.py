"""Shared pieces of the benchmarks: the machine's description, the tf.matmul
peak of the same run, FLOPs of a traced function, and running a benchmark
once per oneDNN setting in subprocesses.

TensorFlow reads TF_ENABLE_ONEDNN_OPTS when it is imported, so "oneDNN on"
and "oneDNN off" need separate processes: a benchmark called with
`--onednn on,off` re-runs itself once per setting (`run_per_onednn`) and
merges the children's JSON documents. Only ratios measured inside one child
(same process, interleaved rounds) are comparable on a shared machine.
"""

import json
import os
import platform
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD_ENV = "TFC_PERCEPTION_BENCH_CHILD"
ONEDNN_SETTINGS = {"on": "1", "off": "0", "default": None}

# The /proc/cpuinfo flags that decide TF's kernels (oneDNN default, AVX).
_CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni",
              "avx512_bf16", "amx_bf16", "amx_tile")


def machine() -> dict:
  """CPU model and relevant flags, core count and load averages."""
  model, flags = platform.processor() or platform.machine(), []
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model in ("", platform.machine()):
          model = value.strip()
        elif key.strip() == "flags":
          present = set(value.split())
          flags = [fl for fl in _CPU_FLAGS if fl in present]
          break
  except OSError:
    pass
  return {"cpu": model, "cpu_flags": flags, "cpu_count": os.cpu_count(),
          "loadavg": [round(v, 2) for v in os.getloadavg()],
          "platform": platform.platform()}


def onednn_state() -> dict:
  """TF_ENABLE_ONEDNN_OPTS and whether the imported TensorFlow runs oneDNN."""
  from tfc_perception import _onednn  # pylint: disable=g-import-not-at-top
  return {"TF_ENABLE_ONEDNN_OPTS": os.environ.get(_onednn.ENV),
          "onednn_enabled": _onednn._mkl_enabled()}  # pylint: disable=protected-access


def matmul_seconds(n: int = 2048, dtype: str = "float32"):
  """A timer for one n x n tf.matmul (2 n^3 flops): returns (flops,
  callable returning the seconds of one call, excluding tracing)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  a = tf.random.stateless_uniform([n, n], seed=[0, 1], dtype=tf.float32)
  a = tf.cast(a, dtype)
  f = tf.function(lambda m: tf.reduce_sum(tf.cast(tf.matmul(m, m),
                                                  tf.float32)))
  f(a).numpy()

  def timed():
    start = time.perf_counter()
    f(a).numpy()
    return time.perf_counter() - start

  return 2.0 * n**3, timed


def graph_flops(concrete_function) -> float:
  """Floating-point operations of one call of a traced function, counted by
  TensorFlow's profiler from the graph (convolutions, their gradients,
  matmuls, element-wise ops; needs static shapes)."""
  from tensorflow.python.profiler import model_analyzer  # pylint: disable=g-import-not-at-top
  from tensorflow.python.profiler import option_builder  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  builder = option_builder.ProfileOptionBuilder
  opts = builder(builder.float_operation()).with_empty_output().build()
  verbosity = tf.compat.v1.logging.get_verbosity()
  tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
  try:  # (the profiler warns about its TF1 API on every call)
    return float(model_analyzer.profile(concrete_function.graph,
                                        options=opts).total_float_ops)
  finally:
    tf.compat.v1.logging.set_verbosity(verbosity)


def is_child() -> bool:
  return bool(os.environ.get(CHILD_ENV))


def run_per_onednn(settings, timeout_s: float = 3600.0) -> list:
  """Runs this script (same argv) once per oneDNN setting in a subprocess
  and returns the children's JSON documents, each with "onednn" added.

  Args:
    settings: names from ONEDNN_SETTINGS ("on", "off", "default").
    timeout_s: limit per child.
  """
  docs = []
  for name in settings:
    if name not in ONEDNN_SETTINGS:
      raise ValueError(f"unknown oneDNN setting {name!r}; accepted: "
                       f"{', '.join(ONEDNN_SETTINGS)}")
    env = dict(os.environ, **{CHILD_ENV: "1"})
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    if ONEDNN_SETTINGS[name] is not None:
      env["TF_ENABLE_ONEDNN_OPTS"] = ONEDNN_SETTINGS[name]
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(f"--- oneDNN {name}: {' '.join(sys.argv)}", file=sys.stderr,
          flush=True)
    proc = subprocess.run([sys.executable] + sys.argv, env=env,
                          stdout=subprocess.PIPE, timeout=timeout_s,
                          check=False, text=True)
    if proc.returncode != 0:
      raise RuntimeError(f"benchmark child (oneDNN {name}) failed with "
                         f"status {proc.returncode}; see its stderr above")
    doc = json.loads(proc.stdout)
    doc["onednn"] = name
    docs.append(doc)
  return docs
