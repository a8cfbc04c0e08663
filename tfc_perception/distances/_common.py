"""Input handling shared by the distances (validation of image pairs)."""

from typing import Optional, Tuple

import tensorflow as tf

from tfc_perception import _validation


def prepare_pair(x, y, max_val: Optional[float] = None,
                 channels=None) -> Tuple[tf.Tensor, tf.Tensor, float]:
  """Validates two NHWC image batches and returns them as float32.

  Args:
    x: reference batch, uint8 (range [0, 255]) or float with `max_val`.
    y: distorted batch, same shape as `x`.
    max_val: nominal peak of float input (e.g. 1.0 or 255.0); None or 255 for
      uint8.
    channels: accepted channel counts, or None for any.

  Returns:
    (x, y, max_val): float32 tensors in the input units and the peak value.

  Raises:
    ValueError: see `tfc_perception._validation.as_image_batch`, and if the
      shapes of `x` and `y` differ.
  """
  x, mx = _validation.as_image_batch(x, "x", max_val, channels)
  y, my = _validation.as_image_batch(y, "y", max_val, channels)
  _validation.check_same_shape(x, y)
  if mx != my:  # pragma: no cover  (as_image_batch makes them equal)
    raise ValueError(f"x and y imply different peak values {mx} and {my}.")
  return x, y, mx


def static_hw(x: tf.Tensor):
  """(height, width) of an NHWC tensor, as Python ints or None if unknown."""
  return tuple(x.shape.as_list()[1:3])


def assert_min_size_dynamic(x: tf.Tensor, y: tf.Tensor, min_size: int,
                            what: str):
  """When height or width is not known statically (tf.function with None
  dimensions), adds a graph assertion with a clear message (raised as
  tf.errors.InvalidArgumentError at run time). Static sizes are checked by
  the callers with a ValueError. Returns (x, y) carrying the dependency."""
  if None not in static_hw(x) or min_size <= 1:
    return x, y
  check = tf.debugging.assert_greater_equal(
      tf.reduce_min(tf.shape(x)[1:3]), tf.constant(min_size, tf.int32),
      message=f"images are too small for {what}, which needs at least "
      f"{min_size} px per side")
  with tf.control_dependencies([check]):
    return tf.identity(x), tf.identity(y)


def to_channel_layout(x: tf.Tensor) -> tf.Tensor:
  """[B, H, W, C] -> [1, H, W, B·C]: every channel of every example becomes
  one channel of a single image (channel index b·C + c).

  Depthwise convolutions over many channels of one image run several times
  faster on CPU than over a few channels of a batch (TF's kernels vectorise
  over channels; without oneDNN, the Eigen kernels are 5-10x slower on 3
  channels), and per-channel filtering does not mix channels, so the values
  are the same. Undo with `from_channel_values` after reducing over space.
  """
  shape = tf.shape(x)
  x = tf.transpose(x, [1, 2, 0, 3])
  return tf.reshape(x, [1, shape[1], shape[2], shape[0] * shape[3]])


def spatial_mean(z: tf.Tensor) -> tf.Tensor:
  """Mean over space of every channel of a [1, H, W, K] tensor, [K],
  accumulated in float64 and returned as float32.

  Summing H·W float32 values along the outer axes (as TF does for this
  layout, and as tf.image.ssim does over NHWC) loses about 1e-5 relative
  precision at 512x384; the float64 sum is exact to float32 precision.
  """
  return tf.cast(tf.reduce_mean(tf.cast(z, tf.float64), axis=[0, 1, 2]),
                 z.dtype)
