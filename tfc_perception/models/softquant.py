"""Soft-quantisation compressive autoencoder (Fig. 17, Sec. 5.2).

The bmshj2018 transforms (FactorizedPrior's analysis/synthesis) with
N = `num_filters` (default 128) and M = `latent_channels` (default 64), and a
quantiser to the nearest of L = `num_centers` learned centres c_1..c_L
(initialised evenly: c_j = j - (L - 1)/2, i.e. unit spacing centred on 0;
assumed, the paper does not say). In training the soft assignment of Eq. 15,

    y_soft_i = sum_j softmax_j(-s * (y_i - c_j)^2) * c_j,   s = `softness` = 1,

replaces the non-differentiable hard assignment y_hard_i = argmin_c |y_i - c|.
`quantization` selects how it is used in the training forward pass:

- "straight_through" (default), as in Mentzer et al. 2018 ("Conditional
  probability models for deep image compression", CVPR), where this soft
  quantiser comes from: the forward pass uses the hard centres and the
  gradient is that of the soft assignment,
  y_hat = y_soft + stop_gradient(y_hard - y_soft). Training then sees exactly
  the reconstruction that test time (and the decoder of a real bit-stream)
  produces.
- "soft": the literal Eq. 15 forward pass, y_hat = y_soft. With s = 1 the
  soft mixture carries information (how far y is from each centre) that the
  hard quantiser of test time destroys; MSE-trained models learn to rely on
  it, and their test-time distortion grows while the training loss falls
  (measured in docs/reproduce-images.md, Fig. 20). Kept for comparison.

At test time (training=False) both use the nearest centre. The loss is the
distortion alone (`lmbda` is accepted for a uniform interface but unused):
the rate is bounded by construction,
R <= (H/16)(W/16) * M * log2(L) bits, i.e. `max_bpp` = M * log2(L) / 256
(0.25 bpp for M = 64, L = 2).

At test time the symbols (indices of the nearest centres) are range coded
with tfc's range coder and a per-channel pmf (a running average of the symbol
frequencies seen in training, kept as a non-trainable weight). Whenever that
would take more bits than fixed-length coding, the image is stored
fixed-length instead (mixed-radix packing, ceil(n * log2 L) bits for n
symbols), so a file never exceeds the bound plus one flag byte:

    len(string) <= 1 + ceil(ceil(H/16) * ceil(W/16) * M * log2(L) / 8) bytes.

The logged `rate` is the bits of the hard symbols under that pmf (bpp).
"""

import math
from typing import Callable, Optional

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tfc_perception import _validation
from tfc_perception.models import base
from tfc_perception.models import factorized

__all__ = ["SoftQuantizedAutoencoder", "pack_symbols", "unpack_symbols",
           "QUANTIZATION_MODES"]

# Training forward pass of quantize(): see the module docstring.
QUANTIZATION_MODES = ("straight_through", "soft")

_RANGE_CODED = 0
_FIXED_LENGTH = 1
_PRECISION = 16
_PMF_FLOOR = 1e-6


class SoftQuantizedAutoencoder(base.ImageCoding, base.CompressionModel):
  """Compressive autoencoder with a bounded rate (Fig. 17, Sec. 5.2).

  Args:
    lmbda: accepted for interface uniformity; unused (the loss is D only).
    distortion: training distortion: "mse" (255^2 * MSE on [0, 1]),
      "msssim" (1 - MS-SSIM), "nlpd", or a density-weighted one.
    num_filters: N (default 128).
    latent_channels: M (default 64).
    num_centers: L >= 2 (default 2, giving 0.25 bpp with M = 64).
    softness: s of Eq. 15 (> 0, default 1).
    quantization: training forward pass, "straight_through" (default: hard
      centres forward, gradient of the Eq. 15 soft assignment; Mentzer et
      al. 2018) or "soft" (the Eq. 15 soft assignment itself). The default
      keeps training and test-time reconstructions identical; see the module
      docstring.
    pmf_decay: decay of the running symbol-frequency average used as the
      coding pmf (in [0, 1), default 0.99).
    density_fn: callable x -> P(x) for the density-weighted distortions.
    seed: construction seed.
    **kwargs: tf.keras.Model arguments (name).
  """

  registry_name = "softquant"

  def __init__(self, lmbda: float = 1.0, distortion: str = "mse",
               num_filters: int = 128, latent_channels: int = 64,
               num_centers: int = 2, softness: float = 1.0,
               quantization: str = "straight_through",
               pmf_decay: float = 0.99,
               density_fn: Optional[Callable] = None,
               seed: Optional[int] = None, **kwargs):
    super().__init__(lmbda=lmbda, distortion=distortion,
                     density_fn=density_fn, seed=seed, **kwargs)
    self.num_filters = _validation.check_int(num_filters, "num_filters", 1)
    self.latent_channels = _validation.check_int(latent_channels,
                                                 "latent_channels", 1)
    self.num_centers = _validation.check_int(num_centers, "num_centers", 2,
                                             2 ** 12)
    self.softness = _validation.check_positive(softness, "softness")
    self.quantization = _validation.check_choice(
        quantization, "quantization", QUANTIZATION_MODES)
    pmf_decay = _validation.check_positive(pmf_decay, "pmf_decay",
                                           allow_zero=True)
    if pmf_decay >= 1:
      raise ValueError(f"pmf_decay must be in [0, 1), got {pmf_decay}.")
    self.pmf_decay = pmf_decay
    n, m, l = self.num_filters, self.latent_channels, self.num_centers
    self.analysis_transform = factorized.analysis_transform(n, m)
    self.synthesis_transform = factorized.synthesis_transform(n)
    self.centers = self.add_weight(
        name="centers", shape=(l,), dtype=tf.float32, trainable=True,
        initializer=tf.constant_initializer(
            np.arange(l, dtype=np.float32) - (l - 1) / 2))
    self.symbol_pmf = self.add_weight(
        name="symbol_pmf", shape=(m, l), dtype=tf.float32, trainable=False,
        initializer=tf.constant_initializer(1.0 / l),
        aggregation=tf.VariableAggregation.MEAN)
    self.analysis_transform.build((None, None, None, 3))
    self.synthesis_transform.build((None, None, None, m))
    self.built = True  # All weights exist (summary(), checkpoints).
    self._table_cache = None

  def get_config(self) -> dict:
    config = super().get_config()
    config.update(num_filters=self.num_filters,
                  latent_channels=self.latent_channels,
                  num_centers=self.num_centers, softness=self.softness,
                  quantization=self.quantization, pmf_decay=self.pmf_decay)
    return config

  @property
  def max_bpp(self) -> float:
    """The rate bound M * log2(L) / 256 bits per pixel (for H, W multiples
    of 16; other sizes are padded, see max_bytes)."""
    return self.latent_channels * math.log2(self.num_centers) / 256.0

  def max_bytes(self, height: int, width: int) -> int:
    """Largest bit-string compress() can produce for an H x W image: one
    flag byte + ceil(ceil(H/16) ceil(W/16) M log2(L) / 8)."""
    n = (-(-height // 16)) * (-(-width // 16)) * self.latent_channels
    return 1 + _fixed_length_bytes(n, self.num_centers)

  def coding_variables(self):
    return list(self.trainable_variables) + [self.symbol_pmf]

  # ------------------------------------------------------------ interface
  def analysis(self, x):
    """e(x): images [N, H, W, 3] (uint8 or float in [0, 1]) -> latent
    [N, ceil(H/16), ceil(W/16), M] float32 (edge-padded to a multiple of
    16)."""
    x = self._to_float_images(x)
    return tf.cast(self.analysis_transform(self._pad(x)), tf.float32)

  def _sq_dist(self, y):
    return tf.math.squared_difference(y[..., None], self.centers)

  def symbols(self, y):
    """Index of the nearest centre for each latent value, int32."""
    return tf.argmin(self._sq_dist(tf.cast(y, tf.float32)), axis=-1,
                     output_type=tf.int32)

  def quantize(self, y, training=False):
    """Q(y), Sec. 5.2.

    Args:
      y: latent tensor (any shape), cast to float32.
      training: True: the Eq. 15 soft assignment provides the gradient; the
        value is the nearest centre ("straight_through", default) or the soft
        assignment itself ("soft"). False: the nearest centre.

    Returns:
      float32 tensor of the shape of y.
    """
    y = tf.cast(y, tf.float32)
    hard = tf.gather(self.centers, self.symbols(y))
    if not training:
      return hard
    weights = tf.nn.softmax(-self.softness * self._sq_dist(y), axis=-1)
    soft = tf.reduce_sum(weights * self.centers, axis=-1)
    if self.quantization == "soft":
      return soft
    return soft + tf.stop_gradient(hard - soft)

  def synthesis(self, y_hat):
    """d(y_hat): [N, h, w, M] -> float32 [N, 16h, 16w, 3], not clipped."""
    return tf.cast(self.synthesis_transform(tf.cast(y_hat, tf.float32)),
                   tf.float32)

  def _coding_pmf(self):
    pmf = tf.maximum(self.symbol_pmf, _PMF_FLOOR)
    return pmf / tf.reduce_sum(pmf, axis=-1, keepdims=True)

  def _estimate(self, x, training, seed=None):
    del seed  # No noise: the soft assignment is deterministic.
    x = self._to_float_images(x)
    y = tf.cast(self.analysis_transform(self._pad(x)), tf.float32)
    y_hat = self.quantize(y, training=training)
    symbols = self.symbols(tf.stop_gradient(y))
    log_pmf = tf.math.log(self._coding_pmf())  # [M, L]
    # log P(symbol) for each latent value of channel c: log_pmf[c, symbol].
    one_hot = tf.one_hot(symbols, self.num_centers)
    bits = -tf.reduce_sum(one_hot * log_pmf, axis=[1, 2, 3, 4]) / math.log(2)
    shape = tf.shape(x)
    x_hat = self._crop(self.synthesis(y_hat), shape[1], shape[2])
    if training:
      freq = tf.reduce_mean(one_hot, axis=[0, 1, 2])  # [M, L]
      self.symbol_pmf.assign(self.pmf_decay * self.symbol_pmf
                             + (1 - self.pmf_decay) * freq)
    return x, x_hat, bits

  def _rd_loss(self, rate, distortion):
    """Sec. 5.2: the rate is bounded by construction; the loss is D."""
    del rate
    return distortion

  # --------------------------------------------------------------- coding
  def _lookup(self):
    """Range coding table [M, L + 2]: precision, then the quantised CDF of
    each channel's pmf (cached until the pmf changes)."""
    key = self.symbol_pmf.numpy().tobytes()
    if self._table_cache is not None and self._table_cache[0] == key:
      return self._table_cache[1]
    pmf = self._coding_pmf()
    cdf = tf.stack([tfc.pmf_to_quantized_cdf(pmf[c], precision=_PRECISION)
                    for c in range(self.latent_channels)])
    if not np.all(np.diff(cdf.numpy(), axis=-1) > 0):
      # A symbol with zero frequency cannot be coded: use a uniform pmf.
      uniform = tf.fill([self.num_centers], 1.0 / self.num_centers)
      row = tfc.pmf_to_quantized_cdf(uniform, precision=_PRECISION)
      cdf = tf.tile(row[None], [self.latent_channels, 1])
    lookup = tf.concat([tf.fill([self.latent_channels, 1], _PRECISION), cdf],
                       axis=-1)
    object.__setattr__(self, "_table_cache", (key, lookup))
    return lookup

  def compress(self, x):
    """Codes images: returns (strings [N] tf.string, x_shape [2] int32,
    y_shape [2] int32). Each string is a flag byte (0: range coded, 1:
    fixed length) and the symbols; never longer than max_bytes(H, W)."""
    x = self._to_float_images(x)
    y = self.analysis(x)
    symbols = self.symbols(y)
    handle = tfc.create_range_encoder(tf.shape(symbols)[:1], self._lookup())
    handle = tfc.entropy_encode_channel(handle, symbols)
    coded = tfc.entropy_encode_finalize(handle).numpy()
    flat = symbols.numpy().reshape(symbols.shape[0], -1)
    strings = []
    for i, string in enumerate(coded):
      fixed_len = _fixed_length_bytes(flat.shape[1], self.num_centers)
      if len(string) <= fixed_len:
        strings.append(bytes([_RANGE_CODED]) + string)
      else:
        strings.append(bytes([_FIXED_LENGTH])
                       + pack_symbols(flat[i], self.num_centers))
    return (tf.constant(strings, tf.string), tf.shape(x)[1:3],
            tf.shape(y)[1:3])

  def decompress(self, strings, x_shape, y_shape):
    """Inverse of compress -> uint8 images [N, H, W, 3].

    Raises:
      ValueError: malformed arguments or a corrupted bit-string.
    """
    strings = self._string_tensor(strings)
    (h, w), (yh, yw) = self._check_shapes(x_shape, y_shape)
    m, l = self.latent_channels, self.num_centers
    n = yh * yw * m
    decoded = []
    for string in strings.numpy():
      if not string:
        raise ValueError("corrupted bit-string: it is empty.")
      flag, payload = string[0], string[1:]
      if flag == _FIXED_LENGTH:
        if len(payload) != _fixed_length_bytes(n, l):
          raise ValueError(
              f"corrupted bit-string: fixed-length payload has {len(payload)}"
              f" bytes, expected {_fixed_length_bytes(n, l)}.")
        sym = unpack_symbols(payload, n, l).reshape(yh, yw, m)
      elif flag == _RANGE_CODED:
        try:
          handle = tfc.create_range_decoder(payload, self._lookup())
          handle, sym = tfc.entropy_decode_channel(
              handle, tf.constant([yh, yw, m], tf.int32), tf.int32)
          ok = tfc.entropy_decode_finalize(handle)
        except tf.errors.OpError as e:
          raise ValueError("corrupted bit-string: range decoding failed ("
                           f"{e.message.splitlines()[0]}).") from None
        if not bool(ok):
          raise ValueError("corrupted bit-string: range decoder sanity check "
                           "failed.")
        sym = sym.numpy()
        if sym.min() < 0 or sym.max() >= l:
          raise ValueError("corrupted bit-string: decoded symbols out of "
                           "range.")
      else:
        raise ValueError(f"corrupted bit-string: unknown coding flag {flag}.")
      decoded.append(sym)
    symbols = tf.constant(np.stack(decoded).astype(np.int32))
    y_hat = tf.gather(self.centers, symbols)
    return self._to_uint8(self._crop(self.synthesis(y_hat), h, w))

  def compressed_dtypes(self):
    return (tf.string, tf.int32, tf.int32)


# ------------------------------------------------------ fixed-length coding
def _fixed_length_bytes(n: int, num_centers: int) -> int:
  """Bytes of the mixed-radix code of n symbols: ceil(ceil(n log2 L) / 8)."""
  if n == 0:
    return 0
  bits = (num_centers ** n - 1).bit_length() if num_centers & (
      num_centers - 1) else n * (num_centers.bit_length() - 1)
  return (bits + 7) // 8


def pack_symbols(symbols, num_centers: int) -> bytes:
  """Fixed-length code of symbols in [0, L): the integer sum_i s_i L^i in
  ceil(n log2 L) bits (little endian), i.e. exactly the bound of Sec. 5.2
  rounded up to whole bytes, for any L (not only powers of 2).

  Raises:
    ValueError: symbols out of range.
  """
  s = np.asarray(symbols, dtype=np.int64).reshape(-1)
  if s.size and (s.min() < 0 or s.max() >= num_centers):
    raise ValueError(f"symbols must be in [0, {num_centers}).")
  powers = {}

  def power(k):
    if k not in powers:
      powers[k] = num_centers ** k
    return powers[k]

  def to_int(a):
    if len(a) <= 64:
      v = 0
      for sym in reversed(a.tolist()):
        v = v * num_centers + sym
      return v
    mid = len(a) // 2
    return to_int(a[:mid]) + to_int(a[mid:]) * power(mid)

  value = to_int(s) if s.size else 0
  return value.to_bytes(_fixed_length_bytes(s.size, num_centers), "little")


def unpack_symbols(data: bytes, n: int, num_centers: int) -> np.ndarray:
  """Inverse of pack_symbols -> int32 array [n].

  Raises:
    ValueError: wrong length, or a value that no n symbols produce.
  """
  if len(data) != _fixed_length_bytes(n, num_centers):
    raise ValueError("corrupted bit-string: wrong fixed-length size.")
  value = int.from_bytes(data, "little")
  if value >= num_centers ** n:
    raise ValueError("corrupted bit-string: fixed-length value out of range.")
  out = np.empty(n, np.int32)
  powers = {}

  def power(k):
    if k not in powers:
      powers[k] = num_centers ** k
    return powers[k]

  def fill(v, start, count):
    if count <= 64:
      for i in range(count):
        v, out[start + i] = divmod(v, num_centers)
      return
    mid = count // 2
    hi, lo = divmod(v, power(mid))
    fill(lo, start, mid)
    fill(hi, start + mid, count - mid)

  if n:
    fill(value, 0, n)
  return out
