"""Normalized Laplacian Pyramid Distance (NLPD), in its two published forms.

NLPD (Laparra, Ballé, Berardino & Simoncelli 2016) transforms each image with
a Laplacian pyramid followed by a local divisive normalisation fitted to
human data, and measures the distance in the normalised domain. The paper
reproduced here (Hepburn et al., ICLR 2022, Sec. 4-5) uses it as a
perceptual distance and as a training distortion. Two variants exist, under
explicit names (results must say which one they used):

* "laparra2016": the original definition, the authors' MATLAB `NLP_dist`
  (HVEI 2016) on greyscale images in [0, 1]. See `nlpd` for the steps.
* "laparra2017": the variant of "Perceptually optimized image rendering"
  (JOSA A 2017) as in the TF2 reference google-research/perceptual-quality
  (nlpd/): display luminance model, a REFLECT-padded pyramid, one shared
  normalisation filter and power-0.6 pooling, per colour channel.

Both return one value per example; 0 for identical images; lower is better.
"""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tfc_perception import _validation
from tfc_perception.distances import _common

__all__ = [
    "nlpd", "nlpd_min_size", "nlpd_max_levels", "VARIANTS", "COLOR_MODES",
    "RGB2GRAY", "LAPARRA2016_SIGMAS", "laparra2016_filters",
    "LAPARRA2017_FILTER",
]

VARIANTS = ("laparra2016", "laparra2017")
COLOR_MODES = ("rgb2gray", "per_channel")

# MATLAB rgb2gray (first row of the inverse NTSC YIQ matrix); nlpd.md quotes
# them to 6 digits (0.298936, 0.587043, 0.114021).
RGB2GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)

# Burt-Adelson pyramid filter, K = f f^T.
_F = np.array([0.05, 0.25, 0.4, 0.25, 0.05])

# laparra2016: sigma per level (5 band-pass + low-pass residual).
LAPARRA2016_SIGMAS = (0.0248, 0.0185, 0.0179, 0.0191, 0.0220, 0.2782)
# laparra2016 normalisation filters: (up, left, right, down) neighbours of the
# centre of a 5x5 matrix, plus .0072 two pixels right of the centre for k=1.
_LAPARRA2016_TAPS = (
    (0.1011, 0.1493, 0.1460, 0.1015),
    (0.0757, 0.1986, 0.1846, 0.0837),
    (0.0477, 0.2138, 0.2243, 0.0467),
    (0.0, 0.2503, 0.2616, 0.0),
    (0.0, 0.2598, 0.2552, 0.0),
    (0.0, 0.2215, 0.0717, 0.0),
)

# laparra2017: one shared symmetric 5x5 normalisation filter and constants.
LAPARRA2017_FILTER = np.array([
    [.04, .04, .05, .04, .04],
    [.04, .03, .04, .03, .04],
    [.05, .04, .05, .04, .05],
    [.04, .03, .04, .03, .04],
    [.04, .04, .05, .04, .04]])
_LAPARRA2017_BAND_CONST = 0.17
_LAPARRA2017_RESIDUAL_CONST = 4.86
_LAPARRA2017_POOL_EXP = 0.6
_CDM_MIN, _CDM_MAX = 5.0, 180.0
_GAMMA, _PHOTORECEPTOR_EXP = 2.4, 1.0 / 2.6


def laparra2016_filters() -> np.ndarray:
  """The six 5x5 normalisation filters P_k of laparra2016, shape [6, 5, 5].

  Entry [k, 2 + dr, 2 + dc] is the weight of the row/column offset (dr, dc)
  from the centre as written in the MATLAB matrices; `nlpd` applies them
  with a true convolution (flipped kernel), like MATLAB's conv2.
  """
  p = np.zeros((6, 5, 5))
  for k, (up, left, right, down) in enumerate(_LAPARRA2016_TAPS):
    p[k, 1, 2], p[k, 2, 1], p[k, 2, 3], p[k, 3, 2] = up, left, right, down
  p[0, 2, 4] = 0.0072
  return p


def nlpd_min_size(num_levels: int = 6) -> int:
  """Smallest height/width `nlpd` accepts with `num_levels` levels.

  Every level that is filtered and downsampled (all but the residual) must
  be at least 5 px, the support of the pyramid filter (laparra2017's REFLECT
  padding by 4 needs exactly that); level k has ceil(size / 2^k) px, so the
  minimum is 2^num_levels + 1 (65 px for six levels) and 1 for one level.
  """
  num_levels = int(num_levels)
  return 1 if num_levels <= 1 else 2 ** num_levels + 1


def nlpd_max_levels(size: int, variant: str = "laparra2016") -> int:
  """Largest `num_levels` usable on images of `size` px (6 at most for
  laparra2016, whose parameters exist for six levels)."""
  limit = 6 if variant == "laparra2016" else 16
  n = 1
  while n < limit and size >= nlpd_min_size(n + 1):
    n += 1
  return n


# ---------------------------------------------------------------------------
# Colour handling.


def _to_planes(x: tf.Tensor, max_val: float, color: str,
               uint8_input: bool) -> tf.Tensor:
  """NHWC in input units -> greyscale planes [batch, H, W, planes] in [0, 1].

  rgb2gray on 3 channels: uint8 input follows MATLAB rgb2gray on uint8
  (weighted sum in float64, rounded half away from zero, then / 255); float
  input is not rounded (MATLAB rgb2gray on double images), so it stays
  differentiable: Y = (0.298936 R + 0.587043 G + 0.114021 B) / max_val.
  """
  channels = x.shape[-1]
  if color == "rgb2gray" and channels == 3:
    if uint8_input:
      y = tf.reduce_sum(tf.cast(x, tf.float64) * tf.constant(
          RGB2GRAY, tf.float64), axis=3, keepdims=True)
      return tf.cast(tf.floor(y + 0.5) / 255.0, tf.float32)
    return tf.reduce_sum(x * tf.constant(RGB2GRAY, tf.float32), axis=3,
                         keepdims=True) / max_val
  return x / max_val


def _to_channel_layout(planes_x: tf.Tensor, planes_y: tf.Tensor) -> tf.Tensor:
  """[B, H, W, P] x 2 -> [1, H, W, 2·B·P]: every greyscale plane of x and
  then of y becomes one channel of a single image, so that the pyramid runs
  as depthwise convolutions over many channels
  (`_common.to_channel_layout`)."""
  return _common.to_channel_layout(tf.concat([planes_x, planes_y], 0))


def _per_channel_mean_sq_diff(z: tf.Tensor) -> tf.Tensor:
  """Mean over space of (z_x - z_y)^2 per plane, [B·P], from the channel
  layout (x planes are the first half of the channels)."""
  zx, zy = tf.split(z, 2, axis=3)
  return tf.reduce_mean(tf.math.squared_difference(zx, zy), axis=[0, 1, 2])


def _safe_sqrt(v: tf.Tensor) -> tf.Tensor:
  """sqrt(v) for v >= 0, with gradient 0 (not inf/NaN) at v == 0."""
  positive = v > 0
  return tf.where(positive, tf.sqrt(tf.where(positive, v, tf.ones_like(v))),
                  tf.zeros_like(v))


def _safe_pow(v: tf.Tensor, p: float) -> tf.Tensor:
  """v ** p (p > 0) for v >= 0, as exp(p log v) (tf.pow is several times
  slower on CPU); 0 for v <= 0, with gradient 0 (not inf/NaN) there."""
  positive = v > 0
  safe = tf.where(positive, v, tf.ones_like(v))
  return tf.where(positive, tf.exp(tf.math.log(safe) * p), tf.zeros_like(v))


def _shifted_sum(a: tf.Tensor, taps) -> tf.Tensor:
  """sum_t w_t * a shifted by (dr_t, dc_t) with zero fill: out[i, j] =
  sum w a[i + dr, j + dc] for every channel of NHWC `a`; offsets are in
  [-2, 2]."""
  # tf.slice rather than strided slicing: its gradient (a Pad) is far
  # cheaper on CPU than StridedSliceGrad.
  size = tf.shape(a)
  padded = tf.pad(a, [[0, 0], [2, 2], [2, 2], [0, 0]])
  out = None
  for weight, dr, dc in taps:
    term = weight * tf.slice(padded, [0, 2 + dr, 2 + dc, 0], size)
    out = term if out is None else out + term
  return out


# ---------------------------------------------------------------------------
# laparra2016 (MATLAB NLP_dist).


def _depthwise_kernel(k2d: np.ndarray, x: tf.Tensor) -> tf.Tensor:
  """The 2-D filter `k2d` for every channel of `x` (depthwise layout)."""
  k = tf.constant(k2d[:, :, None, None], x.dtype)
  return tf.tile(k, tf.stack([1, 1, tf.shape(x)[3], 1]))


def _down_valid(padded: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
  """Correlation with K, VALID, stride 2 (keeps 0-based positions 0, 2, ...
  of the same-size filtered image when `padded` has 2 extra px per side)."""
  return tf.nn.depthwise_conv2d(padded, kernel, [1, 2, 2, 1], "VALID")


def _up_valid(c: tf.Tensor, kernel4: tf.Tensor) -> tf.Tensor:
  """Transposed convolution, stride 2, VALID: zero insertion (value at every
  other position) + correlation with the symmetric `kernel4`; output size
  2·m + 3 for m input samples."""
  shape = tf.shape(c)
  return tf.nn.depthwise_conv2d_backprop_input(
      tf.stack([shape[0], 2 * shape[1] + 3, 2 * shape[2] + 3, shape[3]]),
      kernel4, c, [1, 2, 2, 1], "VALID")


def _down2016(x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
  """Correlate with K (symmetric half-sample boundary extension), keep
  0-based rows/columns 0, 2, 4, ... (MATLAB 1, 3, 5, ...)."""
  padded = tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], "SYMMETRIC")
  return _down_valid(padded, kernel)


def _up2016(c: tf.Tensor, kernel4: tf.Tensor, fine_shape) -> tf.Tensor:
  """MATLAB `upsample`: pad the coarse image by 1 replicated pixel, place
  4 * value at every other position of an image twice that size, correlate
  with K (zero padding), crop 2 at the start and 2 + odd at the end
  (odd = 2 * coarse - fine). With the transposed convolution (which is zero
  insertion + correlation, VALID) the kept window starts at index 4."""
  padded = tf.pad(c, [[0, 0], [1, 1], [1, 1], [0, 0]], "SYMMETRIC")  # edge
  return tf.slice(_up_valid(padded, kernel4), [0, 4, 4, 0], fine_shape)


def _normalised_pyramid_2016(x: tf.Tensor, num_levels: int):
  """Laplacian pyramid + divisive normalisation of greyscale planes in
  [0, 1], one per channel of `x` ([1, H, W, planes])."""
  filters = laparra2016_filters()
  # Band-pass levels use (sigma_k, P_k), k = 1..num_levels-1; the low-pass
  # residual always uses the residual's (sigma_6, P_6).
  params = [(LAPARRA2016_SIGMAS[k], filters[k]) for k in range(num_levels - 1)]
  params.append((LAPARRA2016_SIGMAS[-1], filters[-1]))
  kernel = _depthwise_kernel(np.outer(_F, _F), x)
  kernel4 = 4.0 * kernel
  out = []
  for k in range(num_levels):
    if k < num_levels - 1:
      coarse = _down2016(x, kernel)
      band = x - _up2016(coarse, kernel4, tf.shape(x))
    else:
      band = x
    sigma, p = params[k]
    # True convolution: out[i, j] = sum_{dr, dc} P[2+dr, 2+dc] a[i-dr, j-dc].
    taps = [(float(p[r, c]), 2 - r, 2 - c)
            for r in range(5) for c in range(5) if p[r, c] != 0]
    out.append(band / (sigma + _shifted_sum(tf.abs(band), taps)))
    if k < num_levels - 1:
      x = coarse
  return out


def _nlpd_2016(planes_x, planes_y, num_levels):
  levels = _normalised_pyramid_2016(_to_channel_layout(planes_x, planes_y),
                                    num_levels)
  rms = [_safe_sqrt(_per_channel_mean_sq_diff(z)) for z in levels]
  return tf.add_n(rms) / float(num_levels)


# ---------------------------------------------------------------------------
# laparra2017 (google-research/perceptual-quality).


def _luminance_2017(x01: tf.Tensor) -> tf.Tensor:
  """Display luminance (cd/m^2) then the photoreceptor power law. Values
  below 0 are clipped to 0 (the display's black, cdm_min)."""
  # x^p as exp(p log x): tf.pow is several times slower on CPU.
  lum = _safe_pow(x01, _GAMMA) * (_CDM_MAX - _CDM_MIN) + _CDM_MIN
  return tf.exp(tf.math.log(lum) * _PHOTORECEPTOR_EXP)


def _normalised_pyramid_2017(x: tf.Tensor, num_levels: int):
  """Laplacian pyramid + normalisation of luminance planes, one per channel
  of `x` ([1, H, W, planes])."""
  pad4 = [[0, 0], [4, 4], [4, 4], [0, 0]]
  kernel = _depthwise_kernel(np.outer(_F, _F), x)
  kernel4 = 4.0 * kernel
  p = _depthwise_kernel(LAPARRA2017_FILTER, x)
  out = []
  for _ in range(num_levels - 1):
    # down = conv2d(REFLECT-pad(x, 4), K, stride 2, VALID).
    down = _down_valid(tf.pad(x, pad4, "REFLECT"), kernel)
    # up = conv2d_transpose(down, 4K, stride 2, padding 4) to x's shape,
    # i.e. the VALID transposed convolution cropped by 4 at the start.
    band = x - tf.slice(_up_valid(down, kernel4), [0, 4, 4, 0], tf.shape(x))
    out.append(band / (tf.nn.depthwise_conv2d(tf.abs(band), p, [1, 1, 1, 1],
                                              "SAME")
                       + _LAPARRA2017_BAND_CONST))
    x = tf.slice(down, [0, 1, 1, 0], tf.shape(down) - [0, 2, 2, 0])
  out.append(x / (tf.abs(x) + _LAPARRA2017_RESIDUAL_CONST))
  return out


def _nlpd_2017(planes_x, planes_y, num_levels):
  levels = _normalised_pyramid_2017(
      _luminance_2017(_to_channel_layout(planes_x, planes_y)), num_levels)
  e = _LAPARRA2017_POOL_EXP
  pooled = [_safe_pow(_per_channel_mean_sq_diff(z), 0.5 * e) for z in levels]
  return tf.pow(tf.add_n(pooled) / float(num_levels), 1.0 / e)


# ---------------------------------------------------------------------------


def nlpd(x, y, max_val: Optional[float] = None, variant: str = "laparra2016",
         num_levels: int = 6, color: Optional[str] = None) -> tf.Tensor:
  """Normalized Laplacian Pyramid Distance per example (lower is better).

  variant="laparra2016" (default; the authors' MATLAB NLP_dist):
    1. Greyscale image in [0, 1] (see `color`).
    2. Laplacian pyramid of `num_levels` levels (5 band-pass + low-pass
       residual for 6) with K = f f^T, f = [.05 .25 .4 .25 .05]. Down:
       correlate with K, symmetric half-sample boundary extension, keep
       0-based rows/columns 0, 2, 4, ... Up: pad by 1 replicated pixel,
       zero insertion with 4·value, correlate with K (zero padding), crop to
       the finer size. Band = finer - Up(coarser).
    3. z_k = b_k / (sigma_k + P_k * |b_k|), * a true 2-D convolution (flipped
       kernel) with zero padding; sigma and P_k per level (see
       `LAPARRA2016_SIGMAS`, `laparra2016_filters`).
    4. NLPD = mean over levels of the RMS difference of z_k.
  variant="laparra2017" (JOSA A 2017; google-research/perceptual-quality):
    luminance model L = (x/max_val)^2.4·175 + 5 cd/m², then L^(1/2.6); a
    pyramid with REFLECT padding by 4, VALID stride-2 down, transposed-conv
    up with 4K; bands / (P * |band| + 0.17) with one shared P; residual
    / (|residual| + 4.86); NLPD = (mean_k RMS_k^0.6)^(1/0.6) per channel.

  Colour (`color`): None selects the variant's convention, "rgb2gray" for
  laparra2016 and "per_channel" for laparra2017.
    * "rgb2gray" (3 channels): uint8 input is converted like MATLAB rgb2gray
      on uint8, Y = round(0.298936 R + 0.587043 G + 0.114021 B) / 255 (the
      convention of the authors' reference numbers). Float input is not
      rounded (MATLAB rgb2gray on double images): Y = (0.298936 R + ...) /
      max_val, so float and uint8 versions of one image differ by that
      rounding (<= 0.5/255 per pixel). 1-channel input is used as is.
    * "per_channel": every channel is treated as a greyscale image (divided
      by max_val) and the per-channel distances are averaged.

  Small images: level k has ceil(size / 2^k) px; every downsampled level
  must be at least 5 px, so `num_levels` levels need `nlpd_min_size(n)` =
  2^n + 1 px per side (65 for 6; `nlpd_max_levels(size)` is the largest n).
  laparra2016 has parameters for six levels; with fewer, the band-pass
  levels use the first sigma_k/P_k and the residual uses the residual's
  (sigma_6, P_6).

  Args:
    x: NHWC batch, uint8 or float (then `max_val` is required).
    y: NHWC batch of the same shape.
    max_val: nominal peak value of float input (1.0 for [0, 1] images).
    variant: "laparra2016" or "laparra2017".
    num_levels: pyramid levels including the residual (default 6; 1..6 for
      laparra2016).
    color: None, "rgb2gray" or "per_channel" (see above).

  Returns:
    float32 tensor [batch]; 0 for identical images. Gradients are finite
    everywhere (including identical images).

  Raises:
    ValueError: invalid images (rank, shape mismatch, dtype, NaN/Inf, missing
      max_val for float input), unknown variant or colour mode, rgb2gray on
      a channel count other than 1 or 3, bad num_levels, or images too small
      for num_levels.
  """
  uint8_x = getattr(x, "dtype", None) in (np.uint8, tf.uint8)
  uint8_y = getattr(y, "dtype", None) in (np.uint8, tf.uint8)
  _validation.check_choice(variant, "NLPD variant", VARIANTS)
  if color is None:
    color = "rgb2gray" if variant == "laparra2016" else "per_channel"
  _validation.check_choice(color, "NLPD colour mode", COLOR_MODES)
  max_levels = 6 if variant == "laparra2016" else None
  num_levels = _validation.check_int(num_levels, "num_levels", 1, max_levels)
  x, y, max_val = _common.prepare_pair(x, y, max_val)
  channels = x.shape[-1]
  if color == "rgb2gray" and channels not in (1, 3, None):
    raise ValueError(f"color='rgb2gray' needs 1 or 3 channels, got {channels}"
                     "; use color='per_channel'.")
  min_size = nlpd_min_size(num_levels)
  known = [d for d in _common.static_hw(x) if d is not None]
  if known and min(known) < min_size:
    fit = nlpd_max_levels(min(known), variant)
    raise ValueError(
        f"images of {known} px are too small for NLPD with {num_levels} "
        f"levels, which needs at least {min_size} px per side; pass "
        f"num_levels={fit} (or fewer) or use larger images.")
  x, y = _common.assert_min_size_dynamic(x, y, min_size,
                                         f"NLPD with {num_levels} levels")
  planes_x = _to_planes(x, max_val, color, uint8_x)
  planes_y = _to_planes(y, max_val, color, uint8_y)
  if variant == "laparra2016":
    per_plane = _nlpd_2016(planes_x, planes_y, int(num_levels))
  else:
    per_plane = _nlpd_2017(planes_x, planes_y, int(num_levels))
  batch = tf.shape(x)[0]
  return tf.reduce_mean(tf.reshape(per_plane, [batch, -1]), axis=1)
