"""Finalised range coding tables and traced codecs.

tensorflow-compression's models (models/bmshj2018.py) build their range coding
tables once, after training, as variables of a compression-enabled entropy
model (`compression=True`), and compress/decompress with `tf.function`s that
have an `input_signature`. The tables then travel with the model (checkpoint,
SavedModel), so sender and receiver use the identical integer tables instead
of recomputing them from floats on two machines. The project's codecs follow
that pattern:

1. `model.finalize()` computes the tables from the current weights and assigns
   them to non-trainable variables (part of `model.weights`, checkpoints and
   the SavedModel), together with `tables_digest`, a 63-bit hash (FarmHash
   Fingerprint64 of the serialized tensors, `tf.strings.to_hash_bucket_fast`)
   of the variables the tables are derived from (the prior, or the symbol pmf).
2. `traced_compress` / `traced_decompress` / `traced_reconstruct` are
   `tf.function`s with an input_signature: any image size, any batch >= 1.
   The two coding functions start with a graph assertion that the digest
   still matches, so a model whose prior changed since `finalize()` (trained
   further, weights set) refuses to code instead of silently using stale
   tables: "call model.finalize() again".
3. `compress` / `decompress` / `reconstruct` are the validating Python entry
   points: they check their arguments eagerly (one-line ValueErrors saying
   what is accepted, including the `max_pixels` limit on the image size a
   bit-stream claims) and call the traced functions. Inside your own
   tf.function, call the traced functions directly.

`save_model`, `pretrained.export.export_metagraph` and `load_model` (for
models saved in the npz format of release 1) call `finalize()`; `load_model`
of a SavedModel restores the saved tables instead of recomputing them.
"""

import re
from typing import List

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tfc_perception import _validation

__all__ = ["FinalizedCoding", "ContinuousEntropyCoding", "ImageCoding",
           "MAX_PIXELS", "NotFinalizedError", "op_error_text"]

MAX_PIXELS = _validation.MAX_PIXELS
_NOT_FINALIZED = -1
_DIGEST_BUCKETS = 2 ** 63 - 1
_NOT_FINALIZED_MSG = (
    "this model has no range coding tables yet: call model.finalize() "
    "(save_model, load_model and export_metagraph do it) before compress/"
    "decompress")
_STALE_MSG = (
    "the model changed since finalize(): the parameters its range coding "
    "tables were built from are different now (e.g. after more training or "
    "set_weights); call model.finalize() again before compress/decompress")

_IMAGE_SPEC = tf.TensorSpec([None, None, None, 3], tf.uint8, name="image")
_FLOAT_IMAGE_SPEC = tf.TensorSpec([None, None, None, 3], tf.float32,
                                  name="image")
_STRINGS_SPEC = tf.TensorSpec([None], tf.string, name="strings")
_SHAPE_SPEC = tf.TensorSpec([2], tf.int32)


class NotFinalizedError(ValueError):
  """compress/decompress on a model without current range coding tables."""


def _as_tensor(x, name, accepted):
  if isinstance(x, (str, bytes)) or x is None:
    raise TypeError(f"{name} must be {accepted}, got {type(x).__name__}.")
  if not isinstance(x, (tf.Tensor, tf.Variable)):
    x = tf.convert_to_tensor(np.asarray(x) if not hasattr(x, "dtype") else x)
  return x


def op_error_text(error: tf.errors.OpError) -> str:
  """The first line of an op error, with a graph assertion's message
  unwrapped ("assertion failed: [msg]" -> "msg")."""
  text = (error.message or str(error)).split("\n\t [[")[0]
  text = re.sub(r"\s*\[Op:[^\]]*\]\s*$", "", text)
  # Graph errors start with "Graph execution error:" and a Python traceback
  # of where the failing op was defined; the message is the last line.
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  text = lines[-1] if lines else type(error).__name__
  if "assertion failed: [" in text:
    text = text.split("assertion failed: [", 1)[1]
    text = text.split("]", 1)[0]
  return text.strip()


class FinalizedCoding:
  """Mixin: range coding tables as variables, built by `finalize()`.

  A subclass creates its table variables, calls `_init_coding_state()` in its
  constructor, and implements `table_variables()`, `_table_sources()` and
  `_assign_tables()`.
  """

  def _init_coding_state(self):
    self.tables_digest = tf.Variable(
        tf.constant(_NOT_FINALIZED, tf.int64), trainable=False,
        name="tables_digest")

  def table_variables(self) -> List[tf.Variable]:
    """The range coding tables (non-trainable variables)."""
    raise NotImplementedError

  def _table_sources(self) -> List[tf.Variable]:
    """The variables the tables are computed from."""
    raise NotImplementedError

  def _assign_tables(self) -> None:
    """Computes the tables from `_table_sources()` and assigns them."""
    raise NotImplementedError

  def coding_state_variables(self) -> List[tf.Variable]:
    """What `finalize()` writes: the tables and `tables_digest`."""
    return list(self.table_variables()) + [self.tables_digest]

  def _source_digest(self) -> tf.Tensor:
    parts = [tf.io.serialize_tensor(tf.convert_to_tensor(v))
             for v in self._table_sources()]
    return tf.strings.to_hash_bucket_fast(
        tf.strings.reduce_join(tf.stack(parts)), _DIGEST_BUCKETS)

  def finalize(self):
    """Builds the range coding tables from the current weights.

    Call it after training (save_model, load_model and export_metagraph do
    it); compress/decompress refuse to run on a model whose tables are
    missing or older than its prior.

    Returns:
      The model (for chaining).
    """
    self._assign_tables()
    self.tables_digest.assign(self._source_digest())
    return self

  def is_finalized(self) -> bool:
    """True if the tables were built from the current weights."""
    digest = int(self.tables_digest.numpy())
    return digest != _NOT_FINALIZED and digest == int(
        self._source_digest().numpy())

  def _require_finalized(self) -> None:
    """Eager check with a clear error (the traced functions assert the same
    in the graph)."""
    if not tf.executing_eagerly():
      return
    digest = int(self.tables_digest.numpy())
    if digest == _NOT_FINALIZED:
      raise NotFinalizedError(_NOT_FINALIZED_MSG + ".")
    if digest != int(self._source_digest().numpy()):
      raise NotFinalizedError(_STALE_MSG + ".")

  def _tables_check(self) -> tf.Operation:
    """Graph assertions: tables exist and match the current weights."""
    digest = tf.convert_to_tensor(self.tables_digest)
    built = tf.debugging.Assert(tf.not_equal(digest, _NOT_FINALIZED),
                                [_NOT_FINALIZED_MSG])
    with tf.control_dependencies([built]):
      return tf.debugging.Assert(tf.equal(digest, self._source_digest()),
                                 [_STALE_MSG])

  def _codec_input(self, x):
    """Validates compress's input (eagerly); returns it as a tensor."""
    raise NotImplementedError

  def compress(self, x):
    """Range codes x: images uint8 [N, H, W, 3] (N >= 1, any H, W >= 1) ->
    (strings [N] tf.string, x_shape [2] int32 (H, W), y_shape [2] int32
    (latent h, w)); 2-D samples float [N, D] -> (strings [N],).
    `decompress(*compress(x)) == reconstruct(x)` exactly.

    Raises:
      ValueError: invalid input, or a model without current tables (see
        `finalize`).
    """
    x = self._codec_input(x)
    self._require_finalized()
    return self.traced_compress(x)

  @staticmethod
  def _string_tensor(strings, name="strings"):
    strings = tf.convert_to_tensor(strings)
    if strings.dtype != tf.string or strings.shape.rank != 1:
      raise ValueError(f"{name} must be a rank-1 tf.string tensor (one "
                       f"bit-string per example); got dtype "
                       f"{strings.dtype.name}, shape {strings.shape}.")
    if strings.shape[0] == 0:
      raise ValueError(f"{name} is empty; give one bit-string per example.")
    return strings


class ContinuousEntropyCoding(FinalizedCoding):
  """Mixin for models with a factorized prior coded by tfc's
  `ContinuousBatchedEntropyModel` (coding rank `self._coding_rank`).

  Quantisation is rounding to the nearest integer (offset_heuristic=False,
  as in the paper), identical in `quantize`, `call(training=False)`,
  `compress` and `decompress`. Training uses `self.entropy_model`
  (compression=False); coding uses `self.coding_model`, the same entropy
  model with compression=True whose `cdf` / `cdf_offset` variables are
  filled by `finalize()` (empty until then).
  """

  _coding_rank = None  # Set by subclasses.

  def _init_entropy_coding(self, prior):
    self.prior = prior
    self.entropy_model = tfc.ContinuousBatchedEntropyModel(
        prior, coding_rank=self._coding_rank, compression=False,
        offset_heuristic=False, bottleneck_dtype=tf.float32)
    channels = prior.batch_shape.num_elements()
    self.coding_model = tfc.ContinuousBatchedEntropyModel(
        prior_shape=prior.batch_shape, coding_rank=self._coding_rank,
        compression=True, stateless=False, cdf_shapes=(0, channels),
        offset_heuristic=False, quantization_offset=False,
        bottleneck_dtype=tf.float32)
    self._init_coding_state()

  def table_variables(self):
    return list(self.coding_model.variables)  # cdf, cdf_offset

  def _table_sources(self):
    return list(self.prior.variables)

  @tf.function(input_signature=[], autograph=False)
  def _entropy_tables(self):
    # tfc's table construction (tail estimation, pmf sampling, quantised
    # CDFs) from the current prior; ~10x faster as a graph than eagerly.
    em = tfc.ContinuousBatchedEntropyModel(
        self.prior, coding_rank=self._coding_rank, compression=True,
        stateless=True, offset_heuristic=False, bottleneck_dtype=tf.float32)
    return em.cdf, em.cdf_offset

  def _assign_tables(self):
    self.coding_model.set_weights([t.numpy() for t in self._entropy_tables()])

  def _hard_quantize(self, y):
    return self.entropy_model.quantize(y)

  def _encode(self, y):
    return self.coding_model.compress(y)

  def _decode(self, strings, latent_shape):
    return self.coding_model.decompress(strings, latent_shape)


class ImageCoding:
  """Mixin with the image conventions and the traced image codec.

  Images enter as uint8 [N, H, W, 3] (divided by 255) or, where the method
  says so, float in [0, 1]. The transforms downsample by 16, so the analysis
  pads H and W up to a multiple of 16 by replicating the last row/column
  (edge padding: no artificial edges to code, and any size >= 1 px works);
  `call`, `reconstruct` and `decompress` crop the output back to H x W.
  Rates are bits / (H * W) of the *original* image.

  The class using it provides `analysis_transform`, `synthesis_transform`,
  `_hard_quantize(y)`, `_encode(y) -> strings [N]` and
  `_decode(strings, latent_shape [2]) -> y_hat`.
  """

  _factor = 16

  def _to_float_images(self, x, name="x"):
    """Validated float32 [N, H, W, 3] in [0, 1]."""
    x = _as_tensor(x, name, "an image batch [N, H, W, 3] (uint8 or float in "
                   "[0, 1])")
    max_val = 255.0 if x.dtype == tf.uint8 else 1.0
    x, max_val = _validation.as_image_batch(x, name, max_val, channels=(3,))
    return x / max_val if max_val != 1.0 else x

  def _codec_input(self, x, name="x"):
    """Validated uint8 [N, H, W, 3] for the traced functions."""
    x = _as_tensor(x, name, "a uint8 image batch [N, H, W, 3]")
    if x.dtype != tf.uint8:
      raise ValueError(
          f"{name} has dtype {x.dtype.name}; compress codes 8-bit images: give "
          "uint8 [N, H, W, 3] (e.g. tf.image.convert_image_dtype(x, tf.uint8,"
          " saturate=True) for floats in [0, 1]).")
    self._to_float_images(x, name)  # Rank, channels and sizes.
    return x

  def _pad(self, x):
    f = self._factor
    h, w = x.shape[1], x.shape[2]
    if h is not None and w is not None and h % f == 0 and w % f == 0:
      return x
    shape = tf.shape(x)
    ph = (-shape[1]) % f
    pw = (-shape[2]) % f
    x = tf.concat([x, tf.repeat(x[:, -1:], ph, axis=1)], axis=1)
    return tf.concat([x, tf.repeat(x[:, :, -1:], pw, axis=2)], axis=2)

  @staticmethod
  def _crop(x_hat, height, width):
    return x_hat[:, :height, :width, :]

  @staticmethod
  def _to_uint8(x_hat):
    """Test-time output: round(clip(x_hat, 0, 1) * 255) as uint8."""
    return tf.cast(tf.round(tf.clip_by_value(
        tf.cast(x_hat, tf.float32), 0.0, 1.0) * 255.0), tf.uint8)

  def _latent(self, x):
    return tf.cast(self.analysis_transform(self._pad(x)), tf.float32)

  def _synthesize(self, y_hat):
    return tf.cast(self.synthesis_transform(tf.cast(y_hat, tf.float32)),
                   tf.float32)

  def _reconstruct_graph(self, x):
    shape = tf.shape(x)
    y_hat = self._hard_quantize(self._latent(x))
    return self._to_uint8(self._crop(self._synthesize(y_hat), shape[1],
                                     shape[2]))

  # ------------------------------------------------------ traced functions
  @tf.function(input_signature=[_IMAGE_SPEC])
  def traced_compress(self, image):
    """compress as a graph: uint8 [N, H, W, 3] -> (strings [N], x_shape [2],
    y_shape [2]) int32. Asserts that the tables are current."""
    with tf.control_dependencies([self._tables_check()]):
      x = tf.cast(image, tf.float32) / 255.0
    y = self._latent(x)
    return self._encode(y), tf.shape(image)[1:3], tf.shape(y)[1:3]

  @tf.function(input_signature=[_STRINGS_SPEC, _SHAPE_SPEC, _SHAPE_SPEC])
  def traced_decompress(self, strings, x_shape, y_shape):
    """decompress as a graph: (strings [N], x_shape [2], y_shape [2]) ->
    uint8 [N, H, W, 3]. Asserts that the tables are current and the shapes
    consistent (y_shape = ceil(x_shape / 16))."""
    f = self._factor
    with tf.control_dependencies([self._tables_check()]):
      strings = tf.identity(strings)
    x_hat = self._synthesize(self._decode(strings, y_shape))
    # Checked on the output only, so that the decoded latent depends on the
    # strings and y_shape alone (tfci tools prune the graph to it).
    consistent = tf.debugging.Assert(
        tf.reduce_all(x_shape >= 1) & tf.reduce_all(
            tf.equal(y_shape, (x_shape + f - 1) // f)),
        ["corrupted bit-stream: inconsistent x_shape / y_shape"])
    with tf.control_dependencies([consistent]):
      return self._to_uint8(self._crop(x_hat, x_shape[0], x_shape[1]))

  @tf.function(input_signature=[_IMAGE_SPEC])
  def traced_reconstruct(self, image):
    """reconstruct as a graph (uint8 in and out); needs no tables."""
    return self._reconstruct_graph(tf.cast(image, tf.float32) / 255.0)

  @tf.function(input_signature=[_FLOAT_IMAGE_SPEC])
  def _traced_reconstruct_float(self, x):
    return self._reconstruct_graph(x)

  # ----------------------------------------------------- public interface
  def reconstruct(self, x):
    """Test-time reconstruction, uint8 [N, H, W, 3]: round(clip(d(Q(e(x))),
    0, 1) * 255) cropped to H x W. x: uint8 [N, H, W, 3] (then equal to
    decompress(*compress(x)), bit for bit) or float in [0, 1]."""
    if isinstance(x, (tf.Tensor, tf.Variable, np.ndarray)) and (
        x.dtype == tf.uint8 or x.dtype == np.uint8):
      return self.traced_reconstruct(self._codec_input(x))
    return self._traced_reconstruct_float(self._to_float_images(x))

  def decompress(self, strings, x_shape, y_shape, max_pixels=MAX_PIXELS):
    """Inverse of compress -> uint8 images [N, H, W, 3].

    Args:
      strings, x_shape, y_shape: what `compress` returned.
      max_pixels: largest H * W accepted; checked before anything is
        allocated, so a bit-stream claiming a huge image fails at once.

    Raises:
      ValueError: malformed arguments, an image larger than `max_pixels`, a
        corrupted bit-string, or a model without current tables.
    """
    strings = self._string_tensor(strings)
    (h, w), y_shape = self._check_shapes(x_shape, y_shape, max_pixels)
    self._require_finalized()
    strings = self._legacy_strings(strings, y_shape)
    try:
      return self.traced_decompress(strings, tf.constant([h, w], tf.int32),
                                    tf.constant(y_shape, tf.int32))
    except tf.errors.OpError as e:
      text = op_error_text(e)
      if not text.startswith("corrupted"):
        text = f"corrupted bit-string(s): range decoding failed ({text})"
      raise ValueError(text + ".") from None

  def _legacy_strings(self, strings, y_shape):  # pylint: disable=unused-argument
    """Hook: converts bit-strings of an older layout (none here)."""
    return strings

  def _check_shapes(self, x_shape, y_shape, max_pixels=MAX_PIXELS):
    """Validates decompress's shape tensors; returns them as Python ints."""
    max_pixels = _validation.check_max_pixels(max_pixels)
    try:
      x_shape = [int(v) for v in np.asarray(x_shape).reshape(-1)]
      y_shape = [int(v) for v in np.asarray(y_shape).reshape(-1)]
    except (TypeError, ValueError):
      raise ValueError("x_shape and y_shape must be integer vectors [2] "
                       "(as returned by compress).") from None
    f = self._factor
    if (len(x_shape) != 2 or len(y_shape) != 2 or min(x_shape) < 1
        or y_shape != [-(-x_shape[0] // f), -(-x_shape[1] // f)]):
      raise ValueError(f"inconsistent shapes x_shape={x_shape}, y_shape="
                       f"{y_shape}: expected y_shape = ceil(x_shape / {f}); "
                       "the compressed data is corrupted or not from compress.")
    if x_shape[0] * x_shape[1] > max_pixels:
      raise ValueError(
          f"the bit-stream claims a {x_shape[1]}x{x_shape[0]} image "
          f"({x_shape[0] * x_shape[1]} pixels), more than max_pixels="
          f"{max_pixels}; refusing to allocate it (raise max_pixels if the "
          "file is trusted).")
    if max(x_shape) >= 2 ** 31:
      raise ValueError(f"x_shape {x_shape} does not fit int32.")
    return x_shape, y_shape
