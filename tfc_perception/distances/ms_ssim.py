"""Multi-scale structural similarity (MS-SSIM), Wang, Simoncelli & Bovik 2003.

The default semantics are exactly those of `tf.image.ssim_multiscale` (the
function tensorflow-compression's MS-SSIM models were trained with): 11x11
Gaussian window of width 1.5, k1 = 0.01, k2 = 0.03, five scales with power
factors (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), SSIM computed per colour
channel and averaged over channels, negative per-scale means clipped to 0,
odd sizes padded symmetrically at the end before 2x2 average pooling.

Two differences from `tf.image.ssim_multiscale`, neither of which changes a
forward value:
  * gradients are finite everywhere: where a scale's (clipped) value is 0 the
    fractional power x^p is evaluated on a safe branch, so its gradient is 0
    instead of 0 * inf = NaN (tf.image.ssim_multiscale gives NaN gradients
    for every pixel of such an example);
  * a ValueError says which sizes are accepted when the image is too small
    for the scales asked (TF fails with an internal assertion).

It is computed in the channel layout (`_common.to_channel_layout`): the same
per-channel filtering, 3-8x faster on CPU (most without oneDNN, where TF's
depthwise kernel is slow on few channels); and the spatial means are
accumulated in float64, so values agree with tf.image.ssim_multiscale to its
float32 precision (tested rtol 2e-6) and are closer to an all-float64
computation at large sizes (at 512x384 within 1e-6, where tf.image's float32
sums are off by 1e-6 on smooth images and 2e-5 on white noise).
"""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tfc_perception import _validation
from tfc_perception.distances import _common

__all__ = ["ms_ssim", "DEFAULT_POWER_FACTORS", "ms_ssim_min_size",
           "ms_ssim_max_scales"]

# Wang et al. 2003, as in tf.image.ssim_multiscale.
DEFAULT_POWER_FACTORS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim_min_size(num_scales: int = 5, filter_size: int = 11) -> int:
  """Smallest height/width accepted by `ms_ssim` with `num_scales` scales.

  Scale k (0-based) has ceil(size / 2^k) pixels and needs at least
  `filter_size`, i.e. size >= (filter_size - 1) * 2^(num_scales - 1) + 1
  (161 px for the default five scales).
  """
  return (int(filter_size) - 1) * 2 ** (int(num_scales) - 1) + 1


def ms_ssim_max_scales(size: int, filter_size: int = 11) -> int:
  """Largest number of scales (at most 5) usable on images of `size` px."""
  n = 0
  while n < len(DEFAULT_POWER_FACTORS) and size >= ms_ssim_min_size(
      n + 1, filter_size):
    n += 1
  return n


def _power_factors(num_scales, power_factors):
  """Resolves (num_scales, power_factors) to a tuple of floats."""
  if power_factors is not None:
    factors = tuple(float(p) for p in np.ravel(power_factors))
    if not factors or not all(np.isfinite(factors)) or min(factors) < 0:
      raise ValueError("power_factors must be a non-empty sequence of finite "
                       f"non-negative numbers, got {power_factors!r}.")
    if num_scales is not None and int(num_scales) != len(factors):
      raise ValueError(f"num_scales={num_scales} disagrees with "
                       f"len(power_factors)={len(factors)}; pass one of them.")
    return factors
  if num_scales is None:
    return DEFAULT_POWER_FACTORS
  num_scales = _validation.check_int(num_scales, "num_scales", 1,
                                     len(DEFAULT_POWER_FACTORS))
  if num_scales == len(DEFAULT_POWER_FACTORS):
    return DEFAULT_POWER_FACTORS
  head = DEFAULT_POWER_FACTORS[:num_scales]
  scale = sum(DEFAULT_POWER_FACTORS) / sum(head)
  return tuple(p * scale for p in head)


def _fspecial_gauss(size: int, sigma: float) -> tf.Tensor:
  """The Gaussian window of tf.image.ssim (same ops, same float values)."""
  sigma = tf.constant(sigma, tf.float32)
  coords = tf.cast(tf.range(size), tf.float32)
  coords -= tf.cast(size - 1, tf.float32) / 2.0
  g = tf.square(coords)
  g *= -0.5 / tf.square(sigma)
  g = tf.reshape(g, [1, -1]) + tf.reshape(g, [-1, 1])
  g = tf.nn.softmax(tf.reshape(g, [1, -1]))
  return tf.reshape(g, [size, size, 1, 1])


def _safe_pow(v: tf.Tensor, p) -> tf.Tensor:
  """v ** p for v >= 0 with gradient 0 (not NaN/inf) where v == 0."""
  positive = v > 0
  safe = tf.where(positive, v, tf.ones_like(v))
  return tf.where(positive, tf.pow(safe, p), tf.zeros_like(v))


# Maps filtered per depthwise call: enough to give the kernel >= this many
# channels (see _common.to_channel_layout), and no more, since concatenating
# costs a copy (timings in docs/distances.md, "Speed").
_MIN_FILTER_CHANNELS = 48


def _filter_groups(planes: Optional[int]) -> int:
  """How many of the four SSIM moment maps to filter in one call."""
  if planes is None:
    return 2
  if planes >= _MIN_FILTER_CHANNELS:
    return 1
  return 2 if 2 * planes >= _MIN_FILTER_CHANNELS else 4


def _ssim_per_channel(x, y, kernel, max_val, k1, k2, planes=None):
  """SSIM and contrast-structure per channel of [1, H, W, K] planes, [K]
  each; the formulas of tf.image's helper, in the same order.

  The Gaussian window filters the four moment maps x, y, x·y, x² + y² as
  depthwise convolutions in the channel layout, grouped by
  `_filter_groups(planes)`, `planes` the static channel count K or None.
  """
  c1 = (k1 * max_val) ** 2
  c2 = (k2 * max_val) ** 2
  maps = [x, y, x * y, tf.square(x) + tf.square(y)]
  per_call = _filter_groups(planes)
  filtered = []
  for i in range(0, 4, per_call):
    group = maps[i:i + per_call]
    stacked = group[0] if per_call == 1 else tf.concat(group, axis=3)
    k = tf.tile(kernel, [1, 1, tf.shape(stacked)[3], 1])
    out = tf.nn.depthwise_conv2d(stacked, k, [1, 1, 1, 1], "VALID")
    filtered.extend([out] if per_call == 1 else tf.split(out, per_call, 3))
  mean0, mean1, mxy, mxx_yy = filtered
  num0 = mean0 * mean1 * 2.0
  den0 = tf.square(mean0) + tf.square(mean1)
  luminance = (num0 + c1) / (den0 + c1)
  num1 = mxy * 2.0
  cs = (num1 - num0 + c2) / (mxx_yy - den0 + c2)
  return _common.spatial_mean(luminance * cs), _common.spatial_mean(cs)


def ms_ssim(x, y, max_val: Optional[float] = None,
            num_scales: Optional[int] = None,
            power_factors: Optional[Sequence[float]] = None,
            filter_size: int = 11, filter_sigma: float = 1.5,
            k1: float = 0.01, k2: float = 0.03) -> tf.Tensor:
  """MS-SSIM per example; 1 for identical images, higher is more similar.

  With the defaults this equals `tf.image.ssim_multiscale(x, y, max_val)` to
  float precision (five scales; images of at least 161 px per side).

  Small images: pass `num_scales` (1..5). `num_scales=n < 5` uses the first n
  default power factors rescaled so that they sum to the same total as the
  five defaults (so identical images still give 1 and the range is
  comparable); pass `power_factors` for any other weights. The minimum size
  is `ms_ssim_min_size(n, filter_size)` = (filter_size - 1)·2^(n-1) + 1 px per
  side (161, 81, 41, 21, 11 for n = 5..1); `ms_ssim_max_scales(size)` gives
  the largest usable n. Nothing is chosen silently: too-small images raise.

  Args:
    x: NHWC batch, uint8 or float (then `max_val` is required). Colour
      channels are handled separately and the result averaged over them (no
      colour transform), like tf.image.ssim_multiscale.
    y: NHWC batch of the same shape.
    max_val: nominal peak value (dynamic range) of float input.
    num_scales: number of scales, 1..5 (default 5); see above.
    power_factors: explicit exponents per scale (finest first); overrides
      the defaults, and its length is the number of scales.
    filter_size: side of the Gaussian window (default 11).
    filter_sigma: width of the Gaussian window (default 1.5).
    k1, k2: SSIM stabilising constants (defaults 0.01, 0.03).

  Returns:
    float32 tensor [batch] in [0, 1].

  Raises:
    ValueError: invalid images (rank, shape mismatch, dtype, NaN/Inf,
      missing max_val for float input), invalid parameters, or images too
      small for the number of scales.
  """
  is_uint8 = getattr(x, "dtype", None) in (np.uint8, tf.uint8)
  x, y, max_val = _common.prepare_pair(x, y, max_val)
  factors = _power_factors(num_scales, power_factors)
  filter_size = _validation.check_int(filter_size, "filter_size", 1)
  filter_sigma = _validation.check_positive(filter_sigma, "filter_sigma")
  k1 = _validation.check_positive(k1, "k1")
  k2 = _validation.check_positive(k2, "k2")
  n = len(factors)
  min_size = ms_ssim_min_size(n, filter_size)
  known = [d for d in _common.static_hw(x) if d is not None]
  if known and min(known) < min_size:
    fit = ms_ssim_max_scales(min(known), filter_size)
    hint = (f"pass num_scales={fit} (or fewer)" if fit else
            "no number of scales fits; use larger images or a smaller "
            "filter_size")
    raise ValueError(
        f"images of {known} px are too small for MS-SSIM with {n} scale(s) "
        f"and a {filter_size}-px window, which needs at least {min_size} px "
        f"per side; {hint}.")
  x, y = _common.assert_min_size_dynamic(
      x, y, min_size, f"MS-SSIM with {n} scale(s) and a {filter_size}-px "
      "window")
  if is_uint8:
    # tf.image.ssim_multiscale converts uint8 with convert_image_dtype.
    x = x * (1.0 / 255.0)
    y = y * (1.0 / 255.0)
    max_val = 1.0
  max_val = tf.constant(max_val, tf.float32)
  kernel = _fspecial_gauss(int(filter_size), filter_sigma)
  batch, channels = tf.shape(x)[0], tf.shape(x)[3]
  planes = (None if None in (x.shape[0], x.shape[3])
            else int(x.shape[0]) * int(x.shape[3]))
  x = _common.to_channel_layout(x)
  y = _common.to_channel_layout(y)

  mcs = []
  for k in range(n):
    if k > 0:
      hw = tf.shape(x)[1:3] % 2
      paddings = [[0, 0], [0, hw[0]], [0, hw[1]], [0, 0]]
      x = tf.nn.avg_pool2d(tf.pad(x, paddings, "SYMMETRIC"), 2, 2, "VALID")
      y = tf.nn.avg_pool2d(tf.pad(y, paddings, "SYMMETRIC"), 2, 2, "VALID")
    ssim_val, cs = _ssim_per_channel(x, y, kernel, max_val, k1, k2,
                                     planes)
    mcs.append(tf.nn.relu(cs))
  mcs.pop()
  values = tf.stack(mcs + [tf.nn.relu(ssim_val)], axis=-1)
  per_channel = tf.reduce_prod(
      _safe_pow(values, tf.constant(factors, tf.float32)), [-1])
  return tf.reduce_mean(tf.reshape(per_channel, [batch, channels]), [-1])
