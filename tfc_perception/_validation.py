"""Input validation shared by every public function.

Each check raises ValueError (or TypeError for wrong Python types) with a
message that says what was wrong and what is accepted. Static checks (rank,
shape, dtype) happen at trace time; value checks (NaN/Inf, range) are run
eagerly when the input is eager, and as graph assertions inside tf.function
(those raise tf.errors.InvalidArgumentError with the same message).
"""

import numbers
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

# The checks of plain values (one copy, TensorFlow-free).
from tfc_perception._checks import check_choice  # pylint: disable=unused-import
from tfc_perception._checks import check_int  # pylint: disable=unused-import
from tfc_perception._checks import check_positive  # pylint: disable=unused-import

__all__ = [
    "MAX_PIXELS", "check_max_pixels", "as_image_batch", "check_same_shape",
    "check_positive", "check_choice", "check_int", "check_finite",
    "check_min_spatial_size",
]

_FLOAT_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)

# Default limit on the pixels (H * W) a compressed file or bit-stream may
# claim: decoders check it before allocating anything (2^28 = 16384^2).
MAX_PIXELS = 2 ** 28


def check_max_pixels(max_pixels) -> int:
  """Validates a `max_pixels` argument (an int >= 1)."""
  if isinstance(max_pixels, bool) or not isinstance(
      max_pixels, (int, np.integer)) or max_pixels < 1:
    raise ValueError(f"max_pixels must be an int >= 1, got {max_pixels!r}.")
  return int(max_pixels)


def _is_eager(t) -> bool:
  return tf.executing_eagerly() and not isinstance(t, tf.Variable) and hasattr(
      t, "numpy")


def check_finite(x: tf.Tensor, name: str) -> tf.Tensor:
  """Fails if `x` contains NaN or Inf. Returns `x` (with a control dependency
  on the check in graph mode)."""
  if not x.dtype.is_floating:
    return x
  if _is_eager(x):
    if not np.all(np.isfinite(x.numpy())):
      n_bad = int(np.sum(~np.isfinite(x.numpy())))
      raise ValueError(
          f"{name} contains {n_bad} NaN or Inf value(s); finite values are "
          "required.")
    return x
  return tf.debugging.assert_all_finite(
      x, f"{name} contains NaN or Inf values; finite values are required.")


def as_image_batch(x, name: str = "x", max_val: Optional[float] = None,
                   channels: Optional[Tuple[int, ...]] = None,
                   check_values: bool = True) -> Tuple[tf.Tensor, float]:
  """Validates an NHWC image batch and converts it to float32.

  Args:
    x: array-like of rank 4 [batch, height, width, channels]. uint8 images are
      taken to be in [0, 255]; float images need `max_val` (their nominal peak,
      e.g. 1.0 or 255.0).
    name: the argument's name, used in error messages.
    max_val: nominal peak value for float input; for uint8 it must be None or
      255.
    channels: allowed channel counts (e.g. (1, 3)); None allows any.
    check_values: whether to check for NaN/Inf and (for float) values outside
      [-0.5 * max_val, 1.5 * max_val], which would mean `max_val` is wrong.

  Returns:
    (float32 tensor, max_val as a float).

  Raises:
    ValueError: wrong rank, empty dimensions, wrong channel count, unsupported
      dtype, missing or non-positive max_val, NaN/Inf values.
  """
  if isinstance(x, (str, bytes)) or x is None:
    raise TypeError(f"{name} must be an image batch (array or tensor), got "
                    f"{type(x).__name__}.")
  if not isinstance(x, (tf.Tensor, tf.Variable)):
    x = tf.convert_to_tensor(np.asarray(x) if not hasattr(x, "dtype") else x)
  if x.shape.rank != 4:
    raise ValueError(
        f"{name} must have rank 4 [batch, height, width, channels] (NHWC); got "
        f"shape {x.shape.as_list() if x.shape.rank is not None else 'unknown'}"
        ". Add a batch axis with x[None] for a single image.")
  static = x.shape.as_list()
  if any(d == 0 for d in static):
    raise ValueError(f"{name} has an empty dimension: shape {static}.")
  if channels is not None and static[-1] is not None and static[-1] not in channels:
    raise ValueError(f"{name} has {static[-1]} channels; accepted: "
                     f"{', '.join(map(str, channels))}.")
  if x.dtype == tf.uint8:
    if max_val is not None and float(max_val) != 255.0:
      raise ValueError(f"{name} is uint8, whose range is [0, 255]; max_val must "
                       f"be None or 255, got {max_val}.")
    return tf.cast(x, tf.float32), 255.0
  if x.dtype not in _FLOAT_DTYPES:
    raise ValueError(f"{name} has dtype {x.dtype.name}; accepted: uint8 (range "
                     "[0, 255]) or float16/bfloat16/float32/float64 with an "
                     "explicit max_val.")
  if max_val is None:
    raise ValueError(f"{name} is floating point ({x.dtype.name}): pass max_val "
                     "(the nominal peak value, e.g. 1.0 or 255.0), or give "
                     "uint8 images.")
  if not isinstance(max_val, numbers.Real) or not np.isfinite(max_val) or max_val <= 0:
    raise ValueError(f"max_val must be a positive finite number, got {max_val!r}.")
  x = tf.cast(x, tf.float32)
  if check_values:
    x = check_finite(x, name)
    lo, hi = -0.5 * float(max_val), 1.5 * float(max_val)
    if _is_eager(x):
      v = x.numpy()
      if v.min() < lo or v.max() > hi:
        raise ValueError(
            f"{name} has values in [{v.min():.4g}, {v.max():.4g}], far outside "
            f"[0, max_val={max_val}]; check max_val (1.0 for [0, 1] images, "
            "255.0 for [0, 255]).")
  return x, float(max_val)


def check_same_shape(x: tf.Tensor, y: tf.Tensor, names=("x", "y")) -> None:
  """Fails unless `x` and `y` have compatible static shapes."""
  if not x.shape.is_compatible_with(y.shape):
    raise ValueError(f"{names[0]} and {names[1]} must have the same shape; got "
                     f"{x.shape.as_list()} and {y.shape.as_list()}.")


def check_min_spatial_size(x: tf.Tensor, min_size: int, what: str,
                           name: str = "x") -> None:
  """Fails if height or width of NHWC `x` is (statically) below `min_size`."""
  h, w = x.shape.as_list()[1:3]
  for dim, label in ((h, "height"), (w, "width")):
    if dim is not None and dim < min_size:
      raise ValueError(f"{name} {label} is {dim} px, but {what} needs at least "
                       f"{min_size} px per side.")
