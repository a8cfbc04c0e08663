"""A small dense denoising autoencoder (paper appendix, Fig. 9).

The DAE r is trained on corrupted inputs x̃ = x + σ·ε, ε ~ N(0, I), to minimise
the mean squared reconstruction error E||r(x̃) − x||². Its optimum is the
posterior mean r*(x̃) = E[x | x̃], so by Tweedie's formula
r*(x) − x = σ²·∂log p_σ(x)/∂x, with p_σ = p ∗ N(0, σ²); for small σ this is
σ²·∂log p(x)/∂x (Alain & Bengio, 2014), the relation Fig. 9 illustrates.

r is parametrised as x + f(x) (a residual dense network), so the small
deviation r(x) − x is what the layers learn directly. A density model (not a
codec): built, saved and loaded through `tfc_perception.models.density`
("dae").
"""

from typing import Optional, Sequence

import tensorflow as tf

from tfc_perception.models import base

__all__ = ["DenoisingAutoencoder"]


@tf.keras.utils.register_keras_serializable(package="tfc_perception")
class DenoisingAutoencoder(tf.keras.Model):
  """Dense DAE r(x) = x + f(x) for d-dimensional vectors (d = 1 or 2 here).

  Training (`fit`) corrupts each batch with N(0, σ²) noise and minimises the
  per-example squared error summed over dimensions, averaged over the batch.
  Logged metrics: loss (= MSE per example, in squared source units).
  """

  is_image_model = False  # It takes vectors [N, dims].

  def __init__(self, dims: int = 1, hidden: Sequence[int] = (64, 64),
               sigma: float = 0.25, activation: str = "softplus",
               seed: Optional[int] = 0, **kwargs):
    """Builds the network.

    Args:
      dims: input dimensionality (>= 1).
      hidden: widths of the hidden dense layers (each >= 1).
      sigma: standard deviation of the Gaussian corruption (> 0), in source
        units.
      activation: Keras activation of the hidden layers.
      seed: seed of the weight initialisers and of the corruption noise.
      **kwargs: passed to tf.keras.Model.

    Raises:
      ValueError: non-positive dims, widths or sigma.
    """
    super().__init__(**kwargs)
    if int(dims) < 1:
      raise ValueError(f"dims must be >= 1, got {dims}.")
    hidden = [int(h) for h in hidden]
    if not hidden or min(hidden) < 1:
      raise ValueError(f"hidden must be a non-empty list of widths >= 1, got "
                       f"{hidden}.")
    if not float(sigma) > 0:
      raise ValueError(f"sigma (noise standard deviation) must be > 0, got "
                       f"{sigma}.")
    self.dims = int(dims)
    self.hidden = hidden
    self.sigma = float(sigma)
    self.activation = activation
    self.seed = seed
    init = lambda i: tf.keras.initializers.GlorotUniform(  # noqa: E731
        seed=None if seed is None else seed * 97 + i)
    self.f = tf.keras.Sequential(
        [tf.keras.layers.Dense(h, activation=activation,
                               kernel_initializer=init(i))
         for i, h in enumerate(hidden)] +
        [tf.keras.layers.Dense(self.dims, kernel_initializer="zeros")],
        name="residual")
    self.training_seed = 0 if seed is None else int(seed)
    self.loss_tracker = tf.keras.metrics.Mean(name="loss")
    # Create the weights now (save/load, checkpoints). Building the
    # Sequential directly, not through Model.build: that traces `call` in a
    # graph, and under absl's app.run (bin/reproduce) the weights were then
    # created inside that graph, unusable afterwards.
    self.f.build((None, self.dims))
    self.built = True

  def call(self, x, training=False):
    """r(x) = x + f(x). x: float [N, dims]; returns [N, dims]."""
    x = tf.convert_to_tensor(x, tf.float32)
    return x + self.f(x, training=training)

  def deviation(self, x):
    """r(x) − x, the deviation the DAE introduces at clean points x [N, dims]."""
    x = tf.convert_to_tensor(x, tf.float32)
    if x.shape.rank != 2 or x.shape[-1] != self.dims:
      raise ValueError(f"x must have shape [N, {self.dims}], got {x.shape}.")
    return self.f(x)

  @property
  def metrics(self):
    return [self.loss_tracker]

  def _loss(self, x, training, seed=None):
    x = tf.convert_to_tensor(x, tf.float32)
    noise = (tf.random.normal(tf.shape(x)) if seed is None else
             base.global_batch_noise(
                 lambda s: tf.random.stateless_normal(s, seed), tf.shape(x)))
    noisy = x + self.sigma * noise
    return tf.reduce_mean(tf.reduce_sum(
        tf.square(self(noisy, training=training) - x), axis=-1))

  def train_step(self, data):
    # The corruption is stateless, a function of (training_seed, step): a
    # resumed run draws the noise of an uninterrupted one.
    seed = base.noise_seed(self.training_seed, self.optimizer.iterations)
    with tf.GradientTape() as tape:
      loss = self._loss(data, True, seed)
    grads = tape.gradient(loss, self.f.trainable_variables)
    self.optimizer.apply_gradients(zip(grads, self.f.trainable_variables))
    self.loss_tracker.update_state(loss)
    return {"loss": self.loss_tracker.result()}

  def test_step(self, data):
    # Evaluation draws fresh noise per batch (it is not part of the
    # training state).
    self.loss_tracker.update_state(self._loss(data, False))
    return {"loss": self.loss_tracker.result()}

  def get_config(self):
    return {"dims": self.dims, "hidden": list(self.hidden),
            "sigma": self.sigma, "activation": self.activation,
            "seed": self.seed}
