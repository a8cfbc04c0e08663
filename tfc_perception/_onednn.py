"""oneDNN on by default, on every x86 CPU.

TensorFlow 2.14 turns its oneDNN (MKL) kernels on by default only on CPUs
with AVX512-VNNI/BF16 or AMX. Without them, depthwise convolutions (MS-SSIM,
NLPD) and several training ops use slower Eigen kernels: measured on one CPU
with oneDNN on and off (benchmarks/train_step.py and benchmarks/distances.py;
numbers in docs/training.md and docs/distances.md). `enable()` runs when
`tfc_perception` is imported, i.e. first thing in every bin/ script and
console script, and sets TF_ENABLE_ONEDNN_OPTS=1 when TensorFlow is not yet
imported and the user has not set the variable. It never overrides a value
the user set (TF_ENABLE_ONEDNN_OPTS=0 keeps oneDNN off, e.g. to emulate an
AVX2-only machine on a newer CPU).
"""

import logging
import os
import sys
from typing import Mapping, Optional

ENV = "TF_ENABLE_ONEDNN_OPTS"

# The measured consequence of running with oneDNN off (docs/training.md,
# "Speed"; docs/distances.md, "oneDNN on and off"), logged once when
# TensorFlow was imported first.
CONSEQUENCE = ("measured with it off on the benchmark machine of "
               "docs/training.md: the factorized N=128 train step 2.5-2.7x, "
               "MS-SSIM 6x and tf.image.ssim_multiscale 9x slower than with "
               "it on")

_logger = logging.getLogger("tfc_perception")


def _mkl_enabled() -> Optional[bool]:
  """Whether the imported TensorFlow runs its oneDNN kernels (None if this
  TensorFlow build does not say)."""
  try:
    from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top
    return bool(_pywrap_util_port.IsMklEnabled())
  except (ImportError, AttributeError):  # pragma: no cover (other TF builds)
    return None


def decide(tf_imported: bool, environ: Mapping[str, str],
           mkl_enabled: Optional[bool]) -> Optional[str]:
  """What `enable` does: "set" (export TF_ENABLE_ONEDNN_OPTS=1), "warn"
  (TensorFlow is imported, running without oneDNN that nobody asked to
  turn off), or None (leave everything as it is).

  Args:
    tf_imported: whether `tensorflow` is in sys.modules.
    environ: the environment (os.environ).
    mkl_enabled: whether the imported TensorFlow runs oneDNN (None: unknown
      or not imported).
  """
  if ENV in environ:
    return None  # The user's choice, whatever it is.
  if not tf_imported:
    return "set"
  return "warn" if mkl_enabled is False else None


def enable() -> Optional[str]:
  """Sets TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow is imported, or logs one
  warning line when TensorFlow was imported first without oneDNN. Returns
  what it did ("set", "warn" or None); a no-op after the first call."""
  global _done
  if _done:
    return None
  _done = True
  tf_imported = "tensorflow" in sys.modules
  action = decide(tf_imported, os.environ,
                  _mkl_enabled() if tf_imported else None)
  if action == "set":
    os.environ[ENV] = "1"
  elif action == "warn":
    _logger.warning(
        "TensorFlow was imported before tfc_perception and runs without "
        "oneDNN (%s unset, this CPU's default); %s. Import tfc_perception "
        "first or set %s=1.", ENV, CONSEQUENCE, ENV)
  return action


_done = False
