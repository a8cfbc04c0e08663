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

At test time the symbols (indices of the nearest centres) are range coded,
with TF ops inside the traced codec (`coding.ImageCoding`), by tfc's range
coder under a per-channel pmf (a running average of the symbol frequencies
seen in training, kept as a non-trainable weight; `finalize()` turns it into
the integer table `coding_table`). Whenever that would take more bits than
the fallback, the image is stored with the fallback instead. For L a power of
two (the paper's L = 2) the fallback is fixed-length coding, log2(L) bits per
symbol, so a string never exceeds the bound plus one flag byte:

    len(string) <= 1 + ceil(ceil(H/16) * ceil(W/16) * M * log2(L) / 8) bytes.

For other L an exact fixed-length code of ceil(n log2 L) bits needs
big-integer arithmetic, which TF ops do not have; the fallback is then tfc's
range coder under the uniform integer CDF floor(j 2^16 / L), which costs at
most log2(2^16 / (floor(2^16 / L) - 1)) bits per symbol (log2 L + 1.3e-4 for
L = 3) plus 2 bytes (see `max_bytes`).

The logged `rate` is the bits of the hard symbols under that pmf (bpp).
"""

import math
from typing import Callable, Optional

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tfc_perception import _validation
from tfc_perception.models import base
from tfc_perception.models import coding
from tfc_perception.models import factorized

__all__ = ["SoftQuantizedAutoencoder", "unpack_symbols", "QUANTIZATION_MODES"]

# Training forward pass of quantize(): see the module docstring.
QUANTIZATION_MODES = ("straight_through", "soft")

# Flag byte in front of each bit-string.
_RANGE_CODED = 0
_FIXED_LENGTH = 1
_UNIFORM_RANGE_CODED = 2
_FLAG_BYTES = [bytes([i]) for i in range(3)]
_BYTE_STRINGS = [bytes([i]) for i in range(256)]
_PRECISION = 16
_PMF_FLOOR = 1e-6


class SoftQuantizedAutoencoder(coding.ImageCoding, coding.FinalizedCoding,
                               base.CompressionModel):
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
    self.coding_table = self.add_weight(
        name="coding_table", shape=(m, l + 2), dtype=tf.int32,
        trainable=False, initializer="zeros")
    self._init_coding_state()
    # Bits per symbol of the exact fixed-length code (0: L not a power of 2).
    self._bits_per_symbol = (l.bit_length() - 1) if l & (l - 1) == 0 else 0
    self.analysis_transform.build((None, None, None, 3))
    self.synthesis_transform.build((None, None, None, m))
    self.built = True  # All weights exist (summary(), checkpoints).

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
    """Largest bit-string compress() can produce for an H x W image, for
    n = ceil(H/16) ceil(W/16) M symbols: one flag byte + ceil(n log2(L) / 8)
    for L a power of two; for other L one flag byte + ceil(n c / 8) + 2 with
    c = log2(2^16 / (floor(2^16 / L) - 1)) (the uniform range code: each
    symbol narrows the coder's interval, at least 2^16 wide, by a factor of
    at most 2^16 / (f - 1) for a frequency f >= floor(2^16 / L); the coder
    writes 2 bytes per 16 bits of narrowing and at most 2 more at the end)."""
    n = (-(-height // 16)) * (-(-width // 16)) * self.latent_channels
    if self._bits_per_symbol:
      return 1 + _fixed_length_bytes(n, self.num_centers)
    f = (1 << _PRECISION) // self.num_centers
    bits = n * math.log2((1 << _PRECISION) / (f - 1))
    return 1 + math.ceil(bits / 8) + 2

  def coding_variables(self):
    return list(self.trainable_variables) + [self.symbol_pmf]

  # ------------------------------------------------------------ interface
  def analysis(self, x):
    """e(x): images [N, H, W, 3] (uint8 or float in [0, 1]) -> latent
    [N, ceil(H/16), ceil(W/16), M] float32 (edge-padded to a multiple of
    16)."""
    return self._latent(self._to_float_images(x))

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
    return self._synthesize(y_hat)

  def _coding_pmf(self):
    pmf = tf.maximum(self.symbol_pmf, _PMF_FLOOR)
    return pmf / tf.reduce_sum(pmf, axis=-1, keepdims=True)

  def _estimate(self, x, training, seed=None):
    del seed  # No noise: the soft assignment is deterministic.
    x = self._to_float_images(x)
    y = self._latent(x)
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
  def table_variables(self):
    return [self.coding_table]

  def _table_sources(self):
    return [self.symbol_pmf]

  @tf.function(input_signature=[], autograph=False)
  def _lookup_table(self):
    """Range coding table [M, L + 2]: precision, then the quantised CDF of
    each channel's pmf; uniform for every channel if some symbol would get
    zero frequency (it could not be coded)."""
    m, l = self.latent_channels, self.num_centers
    cdf = tfc.pmf_to_quantized_cdf(self._coding_pmf(), precision=_PRECISION)
    uniform = tfc.pmf_to_quantized_cdf(tf.fill([l], 1.0 / l),
                                       precision=_PRECISION)
    codable = tf.reduce_all(cdf[:, 1:] > cdf[:, :-1])
    cdf = tf.where(codable, cdf, tf.tile(uniform[None], [m, 1]))
    return tf.concat([tf.fill([m, 1], _PRECISION), cdf], axis=-1)

  def _assign_tables(self):
    self.coding_table.assign(self._lookup_table())

  def _uniform_lookup(self):
    """The uniform code of flag 2 (L not a power of two): integer CDF
    floor(j 2^16 / L), a constant (no float arithmetic to disagree on)."""
    l = self.num_centers
    row = [_PRECISION] + [(j << _PRECISION) // l for j in range(l + 1)]
    return tf.tile(tf.constant([row], tf.int32), [self.latent_channels, 1])

  def _hard_quantize(self, y):
    return tf.gather(self.centers, self.symbols(y))

  @staticmethod
  def _range_code(symbols, lookup):
    handle = tfc.create_range_encoder(tf.shape(symbols)[:1], lookup)
    handle = tfc.entropy_encode_channel(handle, symbols)
    return tfc.entropy_encode_finalize(handle)

  @staticmethod
  def _range_decode(payloads, lookup, shape):
    """Symbols [k, *shape] of k range-coded payloads (k may be 0)."""
    def decode():
      handle = tfc.create_range_decoder(payloads, lookup)
      handle, symbols = tfc.entropy_decode_channel(handle, shape, tf.int32)
      done = tfc.entropy_decode_finalize(handle)
      check = tf.debugging.Assert(tf.reduce_all(done), [
          "corrupted bit-string: range decoder sanity check failed"])
      with tf.control_dependencies([check]):
        return tf.identity(symbols)
    # tfc's decoder refuses an empty batch (a batch may code all or none of
    # its images with one method).
    return tf.cond(tf.size(payloads) > 0, decode,
                   lambda: tf.zeros(tf.concat([[0], shape], 0), tf.int32))

  def _pack_bits(self, symbols):
    """Fixed-length code for L = 2^b: b bits per symbol, least significant
    first (= the base-L integer sum_i s_i L^i, little endian)."""
    b = self._bits_per_symbol
    n = tf.shape(symbols)[0]
    flat = tf.reshape(symbols, [n, -1])
    bits = tf.bitwise.bitwise_and(
        tf.bitwise.right_shift(flat[..., None], tf.range(b)), 1)
    bits = tf.reshape(bits, [n, -1])
    bits = tf.pad(bits, [[0, 0], [0, (-tf.shape(bits)[1]) % 8]])
    values = tf.reduce_sum(tf.reshape(bits, [n, -1, 8])
                           * tf.bitwise.left_shift(1, tf.range(8)), -1)
    return tf.strings.reduce_join(tf.gather(_BYTE_STRINGS, values), axis=-1)

  def _unpack_bits(self, payloads, shape):
    """Inverse of _pack_bits for payloads of the right length."""
    b = self._bits_per_symbol
    count = tf.reduce_prod(shape)
    raw = tf.cast(tf.io.decode_raw(payloads, tf.uint8), tf.int32)
    k = tf.shape(payloads)[0]
    bits = tf.bitwise.bitwise_and(
        tf.bitwise.right_shift(raw[..., None], tf.range(8)), 1)
    bits = tf.reshape(bits, [k, -1])
    unused = tf.debugging.Assert(
        tf.reduce_all(tf.equal(bits[:, count * b:], 0)),
        ["corrupted bit-string: fixed-length value out of range"])
    with tf.control_dependencies([unused]):
      bits = tf.reshape(bits[:, :count * b], [k, count, b])
    symbols = tf.reduce_sum(bits * tf.bitwise.left_shift(1, tf.range(b)), -1)
    return tf.reshape(symbols, tf.concat([[k], shape], 0))

  def _encode(self, y):
    """Strings [N]: flag byte 0 + the range code under the learned pmf, or,
    if that is longer, the fallback: flag 1 + fixed-length bits (L a power
    of two) or flag 2 + the uniform range code (other L)."""
    symbols = self.symbols(y)
    learned = self._range_code(symbols, self.coding_table)
    if self._bits_per_symbol:
      fallback, flag = self._pack_bits(symbols), _FIXED_LENGTH
    else:
      fallback = self._range_code(symbols, self._uniform_lookup())
      flag = _UNIFORM_RANGE_CODED
    shorter = tf.strings.length(learned) <= tf.strings.length(fallback)
    return tf.where(shorter, tf.strings.join([_FLAG_BYTES[_RANGE_CODED],
                                              learned]),
                    tf.strings.join([_FLAG_BYTES[flag], fallback]))

  def _decode(self, strings, latent_shape):
    """Inverse of _encode -> y_hat [N, h, w, M] (centres)."""
    m = self.latent_channels
    lengths = tf.strings.length(strings)
    nonempty = tf.debugging.Assert(tf.reduce_all(lengths >= 1), [
        "corrupted bit-string: it is empty"])
    with tf.control_dependencies([nonempty]):
      flags = tf.strings.substr(strings, 0, 1)
    payloads = tf.strings.substr(strings, tf.ones_like(lengths), lengths - 1)
    fallback_flag = (_FIXED_LENGTH if self._bits_per_symbol
                     else _UNIFORM_RANGE_CODED)
    learned = tf.equal(flags, _FLAG_BYTES[_RANGE_CODED])
    fallback = tf.equal(flags, _FLAG_BYTES[fallback_flag])
    known = tf.debugging.Assert(tf.reduce_all(learned | fallback), [
        "corrupted bit-string: unknown coding flag"])
    shape = tf.concat([latent_shape, [m]], 0)
    with tf.control_dependencies([known]):
      i_learned = tf.cast(tf.where(learned)[:, 0], tf.int32)
      i_fallback = tf.cast(tf.where(fallback)[:, 0], tf.int32)
    parts = [self._range_decode(tf.gather(payloads, i_learned),
                                self.coding_table, shape)]
    fallback_payloads = tf.gather(payloads, i_fallback)
    if self._bits_per_symbol:
      size = (tf.reduce_prod(shape) * self._bits_per_symbol + 7) // 8
      right_size = tf.debugging.Assert(
          tf.reduce_all(tf.equal(tf.strings.length(fallback_payloads), size)),
          ["corrupted bit-string: fixed-length payload has the wrong size"])
      with tf.control_dependencies([right_size]):
        parts.append(self._unpack_bits(fallback_payloads, shape))
    else:
      parts.append(self._range_decode(fallback_payloads,
                                      self._uniform_lookup(), shape))
    symbols = tf.dynamic_stitch([i_learned, i_fallback], parts)
    in_range = tf.debugging.Assert(
        tf.reduce_all((symbols >= 0) & (symbols < self.num_centers)),
        ["corrupted bit-string: decoded symbols out of range"])
    with tf.control_dependencies([in_range]):
      return tf.gather(self.centers, symbols)

  def _legacy_strings(self, strings, y_shape):
    """Release 1 coded the fixed-length fallback of every L as one base-L
    integer (flag 1). For L a power of two that is exactly _pack_bits; for
    other L, TF ops cannot unpack it (big integers), so such strings are
    unpacked here, eagerly, and re-coded with the uniform range code of
    flag 2 for the traced decoder."""
    if self._bits_per_symbol:
      return strings
    values = strings.numpy().tolist()
    if not any(s[:1] == _FLAG_BYTES[_FIXED_LENGTH] for s in values):
      return strings
    m, l = self.latent_channels, self.num_centers
    n = y_shape[0] * y_shape[1] * m
    out = []
    for s in values:
      if s[:1] == _FLAG_BYTES[_FIXED_LENGTH]:
        if len(s) - 1 != _fixed_length_bytes(n, l):
          raise ValueError(
              f"corrupted bit-string: fixed-length payload has {len(s) - 1} "
              f"bytes, expected {_fixed_length_bytes(n, l)}.")
        symbols = unpack_symbols(s[1:], n, l).reshape(1, *y_shape, m)
        s = _FLAG_BYTES[_UNIFORM_RANGE_CODED] + self._range_code(
            tf.constant(symbols), self._uniform_lookup()).numpy()[0]
      out.append(s)
    return tf.constant(out)

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


def unpack_symbols(data: bytes, n: int, num_centers: int) -> np.ndarray:
  """Reads release 1's fixed-length code (the base-L integer
  sum_i s_i L^i in ceil(n log2 L) bits, little endian) -> int32 array [n];
  kept to decode release-1 strings of models with L not a power of two.

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
