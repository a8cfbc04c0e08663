"""The 2-D compressive autoencoder of Fig. 10 (Sec. 4 of the paper).

Dense analysis transform e, rounding to the nearest integer (replaced by
additive uniform noise U(-0.5, 0.5) in training), a learned factorized prior
(tfc.NoisyDeepFactorized) coded by tfc.ContinuousBatchedEntropyModel, and a
dense synthesis transform d. Defaults (assumed, as in tensorflow-compression's
toy-source models): 3 hidden layers of 100 softplus units on each side and a
2-D latent.

Rate is in bits per sample; the distortion is the squared Euclidean distance
||x - x_hat||^2 (or its density-weighted versions, Fig. 12), so that
L = bits + lambda * D (Eq. 3).
"""

import numbers
from typing import Callable, Optional, Sequence, Union

import tensorflow as tf
import tensorflow_compression as tfc

from tfc_perception import _validation
from tfc_perception.models import base
from tfc_perception.models import coding

__all__ = ["Toy2DCompressor"]

_SAMPLES_SPEC = tf.TensorSpec([None, None], tf.float32, name="x")
_STRINGS_SPEC = tf.TensorSpec([None], tf.string, name="strings")
_ACTIVATIONS = ("softplus", "relu", "elu", "tanh", "leaky_relu", "gelu",
                "swish", "sigmoid")


class Toy2DCompressor(base.UniformNoiseBottleneck,
                      coding.ContinuousEntropyCoding, base.CompressionModel):
  """Compressive autoencoder for 2-D (or D-dimensional) sources (Fig. 10).

  Args:
    lmbda: lambda of Eq. 3 (> 0). Default 1.0 (bits + 1.0 * squared error).
    distortion: "mse" (= squared Euclidean distance), "density_mse"
      (P(x)*||x - x_hat||^2) or "inverse_density_mse" (||x - x_hat||^2/P(x)).
    widths: hidden layer width (int, used `depth` times) or a list of widths,
      one per hidden layer, mirrored in the synthesis transform. Default 100.
    depth: number of hidden layers when `widths` is an int. Default 3.
    activation: hidden activation, one of softplus (default), relu, elu, tanh,
      leaky_relu, gelu, swish, sigmoid.
    latent_dims: latent size (default 2).
    source_dims: input size D (default 2).
    density_fn: callable x -> P(x) [N] for the density-weighted distortions.
    seed: construction seed (see CompressionModel).
    **kwargs: tf.keras.Model arguments (name).

  Raises:
    ValueError / TypeError: invalid argument, with what is accepted.
  """

  rate_unit = "bits/sample"
  registry_name = "toy2d"
  is_image_model = False
  _coding_rank = 1

  def __init__(self, lmbda: float = 1.0, distortion: str = "mse",
               widths: Union[int, Sequence[int]] = 100, depth: int = 3,
               activation: str = "softplus", latent_dims: int = 2,
               source_dims: int = 2, density_fn: Optional[Callable] = None,
               seed: Optional[int] = None, **kwargs):
    super().__init__(lmbda=lmbda, distortion=distortion,
                     density_fn=density_fn, seed=seed, **kwargs)
    depth = _validation.check_int(depth, "depth", 0)
    if isinstance(widths, numbers.Integral) and not isinstance(widths, bool):
      widths = [_validation.check_int(widths, "widths", 1)] * depth
    else:
      try:
        widths = [_validation.check_int(w, "widths entry", 1) for w in widths]
      except TypeError as e:
        raise TypeError("widths must be an int or a list of ints, got "
                        f"{widths!r}.") from e
      if depth not in (3, len(widths)):  # 3 is the default: ignore it.
        raise ValueError(f"widths has {len(widths)} entries but depth="
                         f"{depth}; give depth=len(widths) or an int width.")
    self.widths = list(widths)
    self.depth = len(self.widths)
    self.activation = _validation.check_choice(activation, "activation",
                                               _ACTIVATIONS)
    self.latent_dims = _validation.check_int(latent_dims, "latent_dims", 1)
    self.source_dims = _validation.check_int(source_dims, "source_dims", 1)

    self.analysis_transform = tf.keras.Sequential(
        [tf.keras.layers.Dense(w, activation=self.activation,
                               name=f"analysis_{i}")
         for i, w in enumerate(self.widths)]
        + [tf.keras.layers.Dense(self.latent_dims, name="analysis_out")],
        name="analysis")
    self.synthesis_transform = tf.keras.Sequential(
        [tf.keras.layers.Dense(w, activation=self.activation,
                               name=f"synthesis_{i}")
         for i, w in enumerate(reversed(self.widths))]
        + [tf.keras.layers.Dense(self.source_dims, name="synthesis_out")],
        name="synthesis")
    self._init_entropy_coding(
        tfc.NoisyDeepFactorized(batch_shape=(self.latent_dims,)))
    # Create all weights now, so checkpoints/optimizers see them at once.
    self.analysis_transform.build((None, self.source_dims))
    self.synthesis_transform.build((None, self.latent_dims))
    self.built = True  # All weights exist (summary(), checkpoints).

  def get_config(self) -> dict:
    config = super().get_config()
    config.update(widths=list(self.widths), depth=self.depth,
                  activation=self.activation, latent_dims=self.latent_dims,
                  source_dims=self.source_dims)
    return config

  # ------------------------------------------------------------ interface
  def _check_samples(self, x, name="x"):
    if isinstance(x, (str, bytes)) or x is None:
      raise TypeError(f"{name} must be a float array [N, {self.source_dims}], "
                      f"got {type(x).__name__}.")
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
      raise ValueError(f"{name} must be floating point [N, {self.source_dims}]"
                       f", got dtype {x.dtype.name}.")
    if x.shape.rank != 2 or (x.shape[-1] is not None
                             and x.shape[-1] != self.source_dims):
      raise ValueError(f"{name} must have shape [N, {self.source_dims}], got "
                       f"{x.shape.as_list() if x.shape.rank is not None else '?'}"
                       ".")
    x = tf.cast(x, tf.float32)
    return _validation.check_finite(x, name)

  def analysis(self, x):
    """e(x): [N, source_dims] float -> latent [N, latent_dims] float32."""
    x = self._check_samples(x)
    return tf.cast(self.analysis_transform(x), tf.float32)

  def quantize(self, y, training=False, seed=None):
    """Q(y): y + U(-0.5, 0.5) in training (stateless with `seed`); rounding
    to the nearest integer at test time (exactly what the range coder
    codes)."""
    y = tf.cast(y, tf.float32)
    if training:
      return self._uniform_noise(y, seed)
    return self._hard_quantize(y)

  def synthesis(self, y_hat):
    """d(y_hat): latent [N, latent_dims] -> [N, source_dims] float32."""
    return tf.cast(self.synthesis_transform(tf.cast(y_hat, tf.float32)),
                   tf.float32)

  def _estimate(self, x, training, seed=None):
    x = self._check_samples(x)
    y = tf.cast(self.analysis_transform(x), tf.float32)
    y_tilde, bits = self._bottleneck(y, training, seed)
    return x, self.synthesis(y_tilde), bits

  def _check_dims(self, x):
    return tf.debugging.assert_equal(
        tf.shape(x)[1], self.source_dims,
        message=f"x must have shape [N, {self.source_dims}]")

  # ------------------------------------------------------ traced functions
  @tf.function(input_signature=[_SAMPLES_SPEC])
  def traced_compress(self, x):
    """compress as a graph: float32 [N, source_dims] -> (strings [N],)."""
    with tf.control_dependencies([self._tables_check(), self._check_dims(x)]):
      y = tf.cast(self.analysis_transform(x), tf.float32)
    return (self._encode(y),)

  @tf.function(input_signature=[_STRINGS_SPEC])
  def traced_decompress(self, strings):
    """decompress as a graph: strings [N] -> float32 [N, source_dims]."""
    with tf.control_dependencies([self._tables_check()]):
      strings = tf.identity(strings)
    return self.synthesis(self._decode(strings, []))

  @tf.function(input_signature=[_SAMPLES_SPEC])
  def traced_reconstruct(self, x):
    """reconstruct as a graph (needs no tables)."""
    with tf.control_dependencies([self._check_dims(x)]):
      y = tf.cast(self.analysis_transform(x), tf.float32)
    return self.synthesis(self._hard_quantize(y))

  # ----------------------------------------------------- public interface
  def reconstruct(self, x):
    """Test-time reconstruction d(Q(e(x))) [N, source_dims] float32, equal to
    decompress(*compress(x))."""
    return self.traced_reconstruct(self._check_samples(x))

  def _codec_input(self, x):
    return self._check_samples(x)

  def decompress(self, strings):
    """Inverse of compress: (strings [N]) -> x_hat [N, source_dims] float32.

    Raises:
      ValueError: strings not a rank-1 string tensor, a corrupted string, or
        a model without current tables.
    """
    strings = self._string_tensor(strings)
    self._require_finalized()
    try:
      return self.traced_decompress(strings)
    except tf.errors.OpError as e:
      raise ValueError("corrupted bit-string(s): range decoding failed "
                       f"({coding.op_error_text(e)}).") from None

  def compressed_dtypes(self):
    return (tf.string,)

