"""Mean squared error, PSNR and the squared Euclidean error of vectors.

The paper (Hepburn et al., ICLR 2022, Sec. 2 and Eq. 3) uses MSE both as a
distortion for training compressive autoencoders and as the baseline
"non-perceptual" distance; the 2-D experiments (Sec. 3) use the squared
Euclidean error ||x - y||^2 of samples.
"""

from typing import Optional

import tensorflow as tf

from tfc_perception import _validation
from tfc_perception.distances import _common

__all__ = ["mse", "psnr", "squared_error", "euclidean"]


def _mse(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
  return tf.reduce_mean(tf.math.squared_difference(x, y), axis=[1, 2, 3])


def mse(x, y, max_val: Optional[float] = None) -> tf.Tensor:
  """Mean squared error per example.

  Units are those of the input values: uint8 images give [0, 255]^2 units;
  float images give the squared units of the values passed (so images in
  [0, 1] give MSE in [0, 1]^2 units; `max_val` is only used to validate the
  value range).

  Args:
    x: NHWC batch, uint8 or float (then `max_val` is required).
    y: NHWC batch of the same shape.
    max_val: nominal peak value of float input (e.g. 1.0 or 255.0).

  Returns:
    float32 tensor of shape [batch]: mean over height, width and channels of
    (x - y)^2.

  Raises:
    ValueError: wrong rank, mismatching shapes, unsupported dtype, missing
      max_val for float input, NaN/Inf values, values far outside
      [0, max_val].
  """
  x, y, _ = _common.prepare_pair(x, y, max_val)
  return _mse(x, y)


def psnr(x, y, max_val: Optional[float] = None) -> tf.Tensor:
  """Peak signal-to-noise ratio per example, 10·log10(max_val² / MSE), in dB.

  Identical images give +inf; the gradient there is 0 (not NaN), so PSNR can
  be used in training code without guards.

  Args:
    x: NHWC batch, uint8 (max_val 255) or float (then `max_val` is required).
    y: NHWC batch of the same shape.
    max_val: nominal peak value of float input.

  Returns:
    float32 tensor of shape [batch], dB (same values as tf.image.psnr).

  Raises:
    ValueError: as for `mse`.
  """
  x, y, max_val = _common.prepare_pair(x, y, max_val)
  err = _mse(x, y)
  positive = err > 0
  safe = tf.where(positive, err, tf.ones_like(err))
  value = 10.0 * (tf.math.log(max_val ** 2 / safe) / tf.math.log(10.0))
  return tf.where(positive, value, tf.fill(tf.shape(err), float("inf")))


def squared_error(x, y) -> tf.Tensor:
  """Squared Euclidean error ||x - y||^2 per example (2-D sources, Sec. 3).

  Args:
    x: float tensor [N, D] (or [N, ...]: all axes but the first are summed).
    y: float tensor of the same shape.

  Returns:
    float32 tensor [N].

  Raises:
    ValueError: rank below 2, mismatching shapes, non-float dtype, NaN/Inf.
  """
  x = as_vectors(x, "x")
  y = as_vectors(y, "y")
  _validation.check_same_shape(x, y)
  return tf.reduce_sum(tf.math.squared_difference(x, y),
                       axis=list(range(1, x.shape.rank)))


def euclidean(x, y) -> tf.Tensor:
  """Euclidean distance ||x - y||_2 per example (the paper's De, Fig. 1).

  Args:
    x: float tensor [N, D] (or [N, ...]: all axes but the first are summed).
    y: float tensor of the same shape.

  Returns:
    float32 tensor [N], in the units of the input. The gradient at x == y is
    0 (not NaN).

  Raises:
    ValueError: as for `squared_error`.
  """
  err = squared_error(x, y)
  positive = err > 0
  safe = tf.where(positive, err, tf.ones_like(err))
  return tf.where(positive, tf.sqrt(safe), tf.zeros_like(err))


def as_vectors(x, name: str) -> tf.Tensor:
  """Validates a float batch of vectors [N, D] (or [N, ...]) -> float32."""
  if isinstance(x, (str, bytes)) or x is None:
    raise TypeError(f"{name} must be a tensor or array, got "
                    f"{type(x).__name__}.")
  x = tf.convert_to_tensor(x)
  if x.shape.rank is None or x.shape.rank < 2:
    raise ValueError(f"{name} must have rank >= 2 [batch, dims...], got shape "
                     f"{x.shape}.")
  if not x.dtype.is_floating:
    raise ValueError(f"{name} has dtype {x.dtype.name}; vectors must be float "
                     "(float16/bfloat16/float32/float64).")
  x = tf.cast(x, tf.float32)
  return _validation.check_finite(x, name)
