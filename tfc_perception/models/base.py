"""The shared interface of the compressive autoencoders, and Eq. 3 training.

Every model of the paper (the 2-D autoencoder of Fig. 10, the factorized-prior
image model of Fig. 15, the soft-quantisation model of Fig. 17) is a
`CompressionModel`: a `tf.keras.Model` with

- `analysis(x) -> y`: the encoder e (latent before quantisation),
- `quantize(y, training=False) -> y_hat`: the quantiser Q (noise or soft
  assignment in training, hard at test time),
- `synthesis(y_hat) -> x_hat`: the decoder d,
- `call(x, training=False) -> (x_hat, bits)`: the reconstruction and the rate
  in bits per example estimated by the entropy model,
- `reconstruct(x)`: the test-time reconstruction, in the type `decompress`
  returns,
- `finalize()`: builds the range coding tables from the current weights
  (see `coding`; save_model, load_model and the tfci export call it),
- `compress(x)` / `decompress(*compressed)`: real range-coded bit-strings
  (tensorflow-compression range coder) through traced `tf.function`s, with
  `decompress(*compress(x)) == reconstruct(x)` exactly.

Training implements the rate-distortion Lagrangian of Eq. 3,
L = R + lambda * D(x, x_hat), in `train_step`/`test_step`, so that
`model.compile(optimizer=...)` followed by `model.fit(dataset)` trains the
model with Keras callbacks, TensorBoard and tf.distribute. The logged metrics
are `loss`, `rate` (in `rate_unit`: bits per pixel for images, bits per sample
for 2-D sources) and `distortion` (in the units of the chosen distortion, see
`distortion_loss`: the Keras loss of a metric of the one table,
`tfc_perception.distances.registry`).

Units (documented in docs/models.md): image models see images as floats in
[0, 1]; their "mse" distortion is 255^2 * MSE on [0, 1] (= MSE on the 0-255
scale) and "msssim" is 1 - MS-SSIM, so that lambda is the lambda of the
tensorflow-compression / CompressAI tables (reference/tfci.md).
"""

import hashlib
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from tfc_perception import _validation

__all__ = ["CompressionModel", "canonical_distortion", "distortion_fn",
           "global_batch_noise"]


def canonical_distortion(name) -> str:
  """The canonical name of a distortion (a metric of
  `tfc_perception.distances.registry`, aliases resolved).

  Raises:
    TypeError: name is not a string.
    ValueError: unknown name (listing the accepted ones).
  """
  from tfc_perception.distances import registry  # pylint: disable=g-import-not-at-top
  return registry.canonical(name, "distortion")


# Folded into the training-noise seeds, so that they never equal the
# (seed, step) keys of the data streams (tfc_perception.data): a Gaussian
# source sampled with key (s, i) and Gaussian noise drawn with the same key
# would be the same numbers.
_NOISE_SALT = 0x6E6F6973


def noise_seed(seed: int, step) -> tf.Tensor:
  """The stateless seed ([2] int64) of the training noise of step `step` of
  a run seeded `seed`, the same on every tf.distribute replica and worker:
  each draws the noise of the global batch and keeps its own rows
  (`global_batch_noise`)."""
  key = tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64)])
  key = tf.random.experimental.stateless_fold_in(key, _NOISE_SALT)
  return tf.random.experimental.stateless_fold_in(key, 0)


class _MissingDensity:
  """Stands in for `density_fn` on a model loaded without one: calling it
  (i.e. training/evaluating a density-weighted distortion) is a clear error."""

  def __call__(self, x):
    raise ValueError(
        "This model's distortion is density weighted, but it was loaded "
        "without a density: pass load_model(path, density_fn=...) (a callable "
        "x -> P(x), e.g. a tfp distribution's .prob) to train or evaluate it. "
        "compress/decompress do not need it.")


def distortion_loss(name: str, image: bool,
                    density_fn: Optional[Callable] = None):
  """The distortion D(x, x_hat) of Eq. 3: the Keras loss of the registered
  metric `name` (`tfc_perception.distances.registry`), in the models' units.

  Args:
    name: a metric name (e.g. "mse", "msssim", "nlpd", "nlpd_rgb",
      "nlpd2017", "density_mse"; aliases accepted).
    image: True for image models (x, x_hat NHWC floats, nominal range [0, 1]),
      False for vector sources (x, x_hat of shape [N, D]).
    density_fn: callable x -> P(x) of shape [N]; required for the density
      weighted distortions (Fig. 12: P(x)*||x - x_hat||^2 and its inverse).

  Returns:
    A `tf.keras.losses.Loss`; its `call(x, x_hat)` is float32 [N]. Units: for
    images "mse" is 255^2 * MSE on [0, 1] (i.e. MSE on the 0-255 scale),
    "msssim" is 1 - MS-SSIM, "psnr" is -PSNR (dB), the NLPDs are NLPD at
    max_val=1 ("nlpd": laparra2016 on grey levels, "nlpd_rgb" per RGB
    channel, "nlpd2017" laparra2017 per channel); for vectors "mse" is the
    squared Euclidean distance ||x - x_hat||^2 (sum over D), the density ones
    multiply / divide it by P(x).

  Raises:
    ValueError: unknown name, a metric that does not apply to this kind of
      model, or a density distortion without `density_fn`.
  """
  from tfc_perception.distances import registry  # pylint: disable=g-import-not-at-top
  metric = registry.get(name, "distortion")
  metric.check_applies(vectors=not image)
  kwargs = {}
  if metric.needs_density:
    if density_fn is None or not callable(density_fn):
      raise ValueError(
          f"distortion {metric.name!r} needs density_fn, a callable x -> P(x) "
          "(e.g. a tfp distribution's .prob); got "
          f"{type(density_fn).__name__}.")
    kwargs["density"] = density_fn
  elif metric.takes_max_val and image:
    kwargs["max_val"] = 1.0
  return metric.loss(vectors=not image, training=True, **kwargs)


def distortion_fn(name: str, image: bool,
                  density_fn: Optional[Callable] = None) -> Callable:
  """`distortion_loss(name, image, density_fn).call`: (x, x_hat) -> [N]."""
  return distortion_loss(name, image, density_fn).call


class CompressionModel(tf.keras.Model):
  """Base class: the shared interface and the Eq. 3 train/test steps.

  Subclasses implement `analysis`, `quantize`, `synthesis`, `_estimate`
  (forward pass returning the cropped reconstruction and bits) and
  `compressed_dtypes`; the codec part (`finalize`, `compress`, `decompress`,
  `reconstruct`) comes from the mixins of `tfc_perception.models.coding`.

  Args:
    lmbda: lambda of Eq. 3 (> 0), the weight of the distortion term.
    distortion: distortion name, a metric of tfc_perception.distances.
      registry (e.g. "mse", "msssim", "nlpd", "nlpd_rgb", "nlpd2017").
    density_fn: callable x -> P(x) for the density-weighted distortions.
    seed: if not None, `tf.keras.utils.set_random_seed(seed)` is called before
      the weights are created, so that construction is reproducible.
    **kwargs: passed to tf.keras.Model (e.g. name).
  """

  rate_unit = "bpp"
  registry_name = None  # Set by subclasses: the build_model name.
  is_image_model = True

  def __init__(self, lmbda: float = 0.01, distortion: str = "mse",
               density_fn: Optional[Callable] = None,
               seed: Optional[int] = None, **kwargs):
    super().__init__(**kwargs)
    self.lmbda = _validation.check_positive(lmbda, "lmbda")
    self.distortion = canonical_distortion(distortion)
    if density_fn is not None and not callable(density_fn):
      raise TypeError("density_fn must be a callable x -> P(x), got "
                      f"{type(density_fn).__name__}.")
    self.density_fn = density_fn
    # Fails now (not mid-training) for a missing density or a distortion
    # that does not apply to this kind of model.
    self._distortion_loss = distortion_loss(
        self.distortion, self.is_image_model, density_fn)
    if seed is not None:
      tf.keras.utils.set_random_seed(_validation.check_int(seed, "seed", 0))
    self.seed = None if seed is None else int(seed)
    # Seed of the training noise (see _step_seed); the trainer sets it to
    # the run's seed.
    self.training_seed = self.seed or 0
    self.loss_tracker = tf.keras.metrics.Mean(name="loss")
    self.rate_tracker = tf.keras.metrics.Mean(name="rate")
    self.distortion_tracker = tf.keras.metrics.Mean(name="distortion")

  # ---------------------------------------------------------------- config
  def get_config(self) -> dict:
    """Constructor arguments (JSON-serialisable; density_fn is not saved)."""
    return {"lmbda": self.lmbda, "distortion": self.distortion,
            "seed": self.seed}

  @classmethod
  def from_config(cls, config, custom_objects=None):
    del custom_objects
    return cls(**config)

  # --------------------------------------------------------------- training
  @property
  def metrics(self):
    return [self.loss_tracker, self.rate_tracker, self.distortion_tracker]

  def _rd_loss(self, rate, distortion):
    """Eq. 3: L = R + lambda * D (batch means)."""
    return rate + self.lmbda * distortion

  def _loss_terms(self, x, training, seed=None, sample_weight=None):
    """Returns (loss, rate, distortion), batch means, float32. `seed`: of
    the training noise (stateless), see `_step_seed`. `sample_weight` [N]
    (optional) weights the whole of Eq. 3 per example: the means become
    mean(w·R) and mean(w·D), so L = mean(w·(R + λ·D))."""
    x_float, x_hat, bits = self._estimate(x, training=training, seed=seed)
    rate = bits / self._rate_denominator(x_float)
    distortion = tf.cast(self._distortion_loss.call(
        x_float, tf.cast(x_hat, tf.float32)), tf.float32)
    if sample_weight is not None:
      w = tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
      rate, distortion = w * rate, w * distortion
    rate, distortion = tf.reduce_mean(rate), tf.reduce_mean(distortion)
    loss = self._rd_loss(rate, distortion)
    return loss, rate, distortion

  def _rate_denominator(self, x_float):
    """Number of pixels (images) or 1 (samples) that bits are divided by."""
    if not self.is_image_model:
      return tf.constant(1.0)
    shape = tf.shape(x_float)
    return tf.cast(shape[1] * shape[2], tf.float32)

  @staticmethod
  def _unpack_data(data):
    """(x, sample_weight or None) of a batch: x, (x,), (x, y) or (x, y, w),
    Keras' convention; the model is unsupervised, so y is ignored and w
    weights Eq. 3 per example."""
    if isinstance(data, (tuple, list)):
      if not data:
        raise ValueError("empty batch")
      return data[0], (data[2] if len(data) > 2 else None)
    if isinstance(data, dict):
      raise ValueError("datasets of dicts are not supported; give a dataset "
                       "of image (or sample) batches.")
    return data, None

  def _update_metrics(self, loss, rate, distortion):
    self.loss_tracker.update_state(loss)
    self.rate_tracker.update_state(rate)
    self.distortion_tracker.update_state(distortion)
    return {m.name: m.result() for m in self.metrics}

  def _step_seed(self):
    """The seed ([2] int64) of this training step's noise: a function of
    (training_seed, optimizer step). The noise is stateless, so a run
    resumed at any step draws exactly the noise of an uninterrupted run;
    under tf.distribute every replica draws the noise of the global batch
    and takes its rows (`global_batch_noise`), so a run on any number of
    replicas or workers draws the noise of one device."""
    return noise_seed(self.training_seed, self.optimizer.iterations)

  def train_step(self, data):
    """One optimizer step on Eq. 3, L = R + lambda * D (per-example weighted
    when the batch is (x, y, sample_weight))."""
    x, sample_weight = self._unpack_data(data)
    with tf.GradientTape() as tape:
      loss, rate, distortion = self._loss_terms(
          x, training=True, seed=self._step_seed(),
          sample_weight=sample_weight)
      # Under tf.distribute the replicas' gradients are summed; dividing by
      # the replica count makes the update that of the global-batch mean
      # (as Keras' own train_step does), whatever the optimizer.
      replicas = tf.distribute.get_strategy().num_replicas_in_sync
      scaled_loss = loss / tf.cast(replicas, loss.dtype)
    self.optimizer.minimize(scaled_loss, self.trainable_variables, tape=tape)
    return self._update_metrics(loss, rate, distortion)

  def test_step(self, data):
    """Evaluates Eq. 3 with hard quantisation (test time)."""
    x, sample_weight = self._unpack_data(data)
    loss, rate, distortion = self._loss_terms(x, training=False,
                                              sample_weight=sample_weight)
    return self._update_metrics(loss, rate, distortion)

  def call(self, x, training=False):
    """Returns (x_hat, bits): the reconstruction (float, nominal [0, 1] for
    images, not clipped; same size as x) and the estimated bits per example
    ([N] float32) under the entropy model (noisy/soft in training)."""
    _, x_hat, bits = self._estimate(x, training=training)
    return x_hat, bits

  # ------------------------------------------------------------ interface
  def _estimate(self, x, training, seed=None):
    """(x as float, x_hat cropped to x, bits per example); `seed` makes the
    training noise stateless."""
    raise NotImplementedError

  def compressed_dtypes(self):
    """dtypes of the tensors returned by `compress` (for file containers)."""
    raise NotImplementedError

  def coding_variables(self):
    """The variables that determine the bit-stream (transforms, entropy
    model); used for `fingerprint`. Subclasses may add non-trainable state."""
    return list(self.trainable_variables)

  def fingerprint(self) -> str:
    """A hex SHA-256 of the model class, config and coding variables: two
    models decode each other's bit-streams iff their fingerprints match."""
    h = hashlib.sha256()
    h.update(type(self).__name__.encode())
    config = {k: v for k, v in sorted(self.get_config().items())
              if k not in ("seed", "lmbda", "distortion")}
    h.update(repr(sorted(config.items())).encode())
    for v in self.coding_variables():
      a = np.ascontiguousarray(v.numpy())
      h.update(str(a.shape).encode() + a.dtype.str.encode())
      h.update(a.tobytes())
    return h.hexdigest()


def global_batch_noise(sample: Callable, shape) -> tf.Tensor:
  """This replica's rows of noise drawn for the whole global batch.

  Args:
    sample: shape -> noise tensor, a stateless function of its seed (e.g.
      `lambda s: tf.random.stateless_uniform(s, seed)`).
    shape: the shape of this replica's batch (batch first).

  Returns:
    `sample(shape)` on one device; under tf.distribute with R replicas of b
    examples each, rows [r*b, (r+1)*b) of `sample([R*b, ...])` for replica
    r, so every example gets the noise it would get on one device with the
    global batch (MirroredStrategy and MultiWorkerMirroredStrategy split a
    global batch in that order).
  """
  context = tf.distribute.get_replica_context()
  replicas = 1 if context is None else context.num_replicas_in_sync
  if replicas == 1:
    return sample(shape)
  shape = tf.convert_to_tensor(shape)
  b = shape[0]
  full = sample(tf.concat([[b * replicas], shape[1:]], 0))
  start = tf.cast(context.replica_id_in_sync_group, b.dtype) * b
  begin = tf.concat([[start], tf.zeros_like(shape[1:])], 0)
  return tf.slice(full, begin, shape)


class UniformNoiseBottleneck:
  """Mixin: the training bottleneck of the models with a factorized prior
  `self.prior` and coding rank `self._coding_rank` (toy2d, factorized).

  In training the latent gets additive uniform noise U(-0.5, 0.5) in place
  of rounding (Sec. 2) and its rate is the prior's log-likelihood of the
  noisy latent -- what tfc's ContinuousBatchedEntropyModel(training=True)
  computes (without expected gradients, as configured here), but with noise
  drawn statelessly from a seed, a function of (seed, step), so that
  training resumes exactly (`CompressionModel._step_seed`). At test time
  the entropy model rounds.
  """

  def _uniform_noise(self, y, seed=None):
    """y + U(-0.5, 0.5), stateless when `seed` ([2] ints) is given."""
    shape = tf.shape(y)
    if seed is None:
      return y + tf.random.uniform(shape, -0.5, 0.5)
    return y + global_batch_noise(
        lambda s: tf.random.stateless_uniform(s, seed, -0.5, 0.5), shape)

  def _bottleneck(self, y, training, seed=None):
    """(y_tilde, bits [batch]): noisy latent and its estimated bits in
    training; rounded latent and its information content at test time."""
    if not training:
      return self.entropy_model(y, training=False)
    y_tilde = self._uniform_noise(y, seed)
    log_probs = self.prior.log_prob(y_tilde)
    axes = tuple(range(-self._coding_rank, 0))
    bits = tf.reduce_sum(log_probs, axis=axes) / -tf.math.log(2.0)
    return y_tilde, bits
