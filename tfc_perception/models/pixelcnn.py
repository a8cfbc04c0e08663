"""A PixelCNN++ density model of small natural images (Observation 1).

Observation 1 of Hepburn et al. (ICLR 2022, Sec. 3, Figs. 6-8) relates the
sensitivity of perceptual distances at an image x to log p(x), where p is
estimated with a PixelCNN++ (Salimans et al., 2017). This module wraps
tensorflow-probability's `tfp.distributions.PixelCNN` (a discretised mixture of
logistics over 8-bit pixel values) as a Keras model:

  * `train_step` / `test_step` minimise the negative log-likelihood, so
    `model.compile(optimizer=...)` + `model.fit(dataset)` trains it; the logged
    metrics are `loss` and `bits_per_dim` (both the NLL in bits per sub-pixel,
    -log2 p(x) / (H·W·C)).
  * `log_prob(x)` returns log p(x) in nats for uint8 images (one value per
    image), `bits_per_dim(x)` the per-image NLL in bits/dim.

Unlike the compressive autoencoders this is a density model, not a codec: it
has no analysis/synthesis transforms. For the trainer's benefit it exposes the
same bookkeeping attributes (`rate_unit` = "bits/dim", `lmbda` = None,
`distortion` = None) and `get_config()`.
"""

import hashlib
import math
from typing import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfc_perception import _validation

__all__ = ["PixelCNN"]

_ACTIVATIONS = ("concat_elu", "elu", "relu")


@tf.keras.utils.register_keras_serializable(package="tfc_perception")
class PixelCNN(tf.keras.Model):
  """PixelCNN++ density model over 8-bit images, trained by maximum likelihood.

  The defaults of tfp (num_resnet=5, num_hierarchies=3, num_filters=160,
  num_logistic_mix=10, dropout 0.5) are the CIFAR-10 model of Salimans et al.
  (2017), which the paper used pretrained; the experiment configs choose much
  smaller networks for CPU runs (see docs/reproduce-images.md).

  Args:
    image_shape: (height, width, channels) of the modelled images.
    num_resnet: residual layers per block.
    num_hierarchies: number of down/up-sampling levels.
    num_filters: convolution filters.
    num_logistic_mix: components of the logistic mixture per pixel.
    receptive_field_dims: (height, width) of the masked receptive field; the
      width must be odd.
    dropout_p: dropout probability in [0, 1) used in training.
    resnet_activation: "concat_elu", "elu" or "relu".
    use_weight_norm: weight normalisation (with data-dependent initialisation
      on the first batch seen, as in PixelCNN++).
    seed: if not None, `tf.keras.utils.set_random_seed(seed)` is called before
      the weights are created (reproducible construction and training).
    name: Keras model name.
    **kwargs: passed to `tf.keras.Model`.

  Raises:
    ValueError / TypeError: for invalid hyper-parameters.
  """

  rate_unit = "bits/dim"
  registry_name = "pixelcnn"
  is_image_model = True

  def __init__(self,
               image_shape: Sequence[int] = (32, 32, 3),
               num_resnet: int = 5,
               num_hierarchies: int = 3,
               num_filters: int = 160,
               num_logistic_mix: int = 10,
               receptive_field_dims: Sequence[int] = (3, 3),
               dropout_p: float = 0.5,
               resnet_activation: str = "concat_elu",
               use_weight_norm: bool = True,
               seed=None,
               name: str = "pixelcnn",
               **kwargs):
    super().__init__(name=name, **kwargs)
    image_shape = tuple(image_shape)
    if len(image_shape) != 3:
      raise ValueError("image_shape must be (height, width, channels), got "
                       f"{image_shape}.")
    for i, d in enumerate(image_shape):
      _validation.check_int(d, f"image_shape[{i}]", 1)
    num_resnet = _validation.check_int(num_resnet, "num_resnet", 1)
    num_hierarchies = _validation.check_int(num_hierarchies,
                                            "num_hierarchies", 1)
    num_filters = _validation.check_int(num_filters, "num_filters", 1)
    num_logistic_mix = _validation.check_int(num_logistic_mix,
                                             "num_logistic_mix", 1)
    receptive_field_dims = tuple(receptive_field_dims)
    if (len(receptive_field_dims) != 2 or
        not all(isinstance(d, (int, np.integer)) and d >= 1
                for d in receptive_field_dims) or
        receptive_field_dims[1] % 2 != 1):
      raise ValueError("receptive_field_dims must be (height, odd width) of "
                       f"positive integers, got {receptive_field_dims}.")
    dropout_p = float(dropout_p)
    if not 0.0 <= dropout_p < 1.0:
      raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}.")
    _validation.check_choice(resnet_activation, "resnet_activation",
                             _ACTIVATIONS)
    # PixelCNN++ halves the spatial size num_hierarchies - 1 times.
    factor = 2 ** (num_hierarchies - 1)
    if image_shape[0] % factor or image_shape[1] % factor:
      raise ValueError(
          f"image height and width ({image_shape[0]}x{image_shape[1]}) must be "
          f"divisible by 2**(num_hierarchies - 1) = {factor}.")

    if seed is not None:
      tf.keras.utils.set_random_seed(_validation.check_int(seed, "seed", 0))
    self.seed = None if seed is None else int(seed)
    self._config = dict(
        image_shape=list(image_shape), num_resnet=num_resnet,
        num_hierarchies=num_hierarchies, num_filters=num_filters,
        num_logistic_mix=num_logistic_mix,
        receptive_field_dims=list(receptive_field_dims), dropout_p=dropout_p,
        resnet_activation=resnet_activation,
        use_weight_norm=bool(use_weight_norm))
    self.image_shape = image_shape
    self.num_dims = int(np.prod(image_shape))
    self.lmbda = None
    self.distortion = None
    self.distribution = tfp.distributions.PixelCNN(
        image_shape=image_shape, num_resnet=num_resnet,
        num_hierarchies=num_hierarchies, num_filters=num_filters,
        num_logistic_mix=num_logistic_mix,
        receptive_field_dims=receptive_field_dims, dropout_p=dropout_p,
        resnet_activation=resnet_activation,
        use_weight_norm=bool(use_weight_norm),
        use_data_init=bool(use_weight_norm), high=255, low=0)
    # Attribute assignment makes Keras track the network's variables.
    self.network = self.distribution.network
    self._bits_per_dim = tf.keras.metrics.Mean(name="bits_per_dim")
    self._loss = tf.keras.metrics.Mean(name="loss")

  # -- inputs ---------------------------------------------------------------

  def _as_pixels(self, x, name="x"):
    """Validates an image batch; returns float32 integer values in [0, 255].

    uint8 images are used as they are; float images are taken to be in [0, 1]
    (the models' convention) and are scaled by 255 and rounded, since the
    PixelCNN++ likelihood is over the 256 discrete pixel values.
    """
    values, max_val = _validation.as_image_batch(
        x, name=name, max_val=None if _is_uint8(x) else 1.0,
        channels=(self.image_shape[-1],))
    self._check_shape(values, name)
    if max_val == 1.0:
      values = tf.round(tf.clip_by_value(values, 0.0, 1.0) * 255.0)
    return values

  def _check_shape(self, values, name):
    got = values.shape.as_list()[1:]
    if any(g is not None and g != e for g, e in zip(got, self.image_shape)):
      raise ValueError(
          f"{name} has images of shape {got}; this PixelCNN models images of "
          f"shape {list(self.image_shape)} (set image_shape when building it).")

  # -- densities ------------------------------------------------------------

  def log_prob(self, x, training: bool = False) -> tf.Tensor:
    """log p(x) in nats, one value per image.

    Args:
      x: uint8 images [N, H, W, C] (values 0..255), or float images in [0, 1]
        (scaled by 255 and rounded to the nearest pixel value).
      training: whether dropout is active.

    Returns:
      float32 tensor [N] of log-probabilities (nats) of the discrete images.

    Raises:
      ValueError: wrong rank, shape, dtype or values (see
        `_validation.as_image_batch`).
    """
    values = self._as_pixels(x)
    return self.distribution.log_prob(values, training=training)

  def bits_per_dim(self, x, training: bool = False) -> tf.Tensor:
    """Negative log-likelihood in bits per sub-pixel, -log2 p(x) / (H·W·C).

    Args / Raises: as `log_prob`.

    Returns:
      float32 tensor [N].
    """
    return -self.log_prob(x, training=training) / (self.num_dims * math.log(2.))

  def call(self, x, training=False):
    """Same as `log_prob` (so `model(x)` and `model.predict` give log p(x))."""
    return self.log_prob(x, training=training)

  # -- Keras training -------------------------------------------------------

  @staticmethod
  def _images(data):
    """The image tensor of a dataset element (x, (x,), (x, y) or {"image"})."""
    if isinstance(data, dict):
      return data["image"]
    if isinstance(data, (tuple, list)):
      return data[0]
    return data

  def initialize(self, x) -> None:
    """Runs the data-dependent (weight-norm) initialisation on a batch `x`.

    Weight normalisation initialises its scales from the statistics of the
    first batch it sees. Call this eagerly on a representative batch before
    `fit` (the trainer's first `train_step` does it otherwise, inside the
    graph, which also works).
    """
    self.log_prob(x, training=False)

  @property
  def metrics(self):
    return [self._loss, self._bits_per_dim]

  def train_step(self, data):
    """One step of maximum likelihood: minimises mean NLL in bits/dim."""
    x = self._images(data)
    with tf.GradientTape() as tape:
      bpd = tf.reduce_mean(self.bits_per_dim(x, training=True))
      loss = bpd + (tf.add_n(self.losses) if self.losses else 0.0)
    variables = self.trainable_variables
    grads = tape.gradient(loss, variables)
    self.optimizer.apply_gradients(zip(grads, variables))
    self._loss.update_state(loss)
    self._bits_per_dim.update_state(bpd)
    return {m.name: m.result() for m in self.metrics}

  def test_step(self, data):
    """Evaluates the mean NLL in bits/dim (no dropout)."""
    x = self._images(data)
    bpd = tf.reduce_mean(self.bits_per_dim(x, training=False))
    self._loss.update_state(bpd)
    self._bits_per_dim.update_state(bpd)
    return {m.name: m.result() for m in self.metrics}

  def get_config(self):
    """Constructor arguments (JSON-serialisable)."""
    return dict(self._config, seed=self.seed)

  def fingerprint(self) -> str:
    """Hex SHA-256 of the class, architecture and weights (recorded by
    `tfc_perception.models.save_model` and checked on load)."""
    h = hashlib.sha256()
    h.update(type(self).__name__.encode())
    config = {k: v for k, v in sorted(self._config.items())}
    h.update(repr(sorted(config.items())).encode())
    for v in self.weights:
      a = np.ascontiguousarray(v.numpy())
      h.update(str(a.shape).encode() + a.dtype.str.encode())
      h.update(a.tobytes())
    return h.hexdigest()

  @classmethod
  def from_config(cls, config):
    return cls(**config)


def _is_uint8(x) -> bool:
  dtype = getattr(x, "dtype", None)
  if dtype is None:
    dtype = np.asarray(x).dtype
  return tf.as_dtype(dtype) == tf.uint8

