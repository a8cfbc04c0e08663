"""Tests of tfc_perception.induced: De, Dr, Din, Ds and sensitivities."""

import numpy as np
import pytest
import tensorflow as tf

from tfc_perception import induced


class TinyImageModel(tf.keras.Model):
  """The common interface with one strided conv each way (stride 4)."""

  def __init__(self):
    super().__init__()
    self.enc = tf.keras.layers.Conv2D(6, 4, strides=4, padding="same",
                                      kernel_initializer=tf.keras.initializers
                                      .RandomNormal(stddev=2.0, seed=1))
    self.dec = tf.keras.layers.Conv2DTranspose(
        3, 4, strides=4, padding="same",
        kernel_initializer=tf.keras.initializers.RandomNormal(
            stddev=0.05, seed=2), bias_initializer="ones")
    self.dec.build([None, None, None, 6])
    self.enc.build([None, None, None, 3])

  def analysis(self, x):
    self.last_dtype = x.dtype
    if x.dtype == tf.uint8:
      x = tf.cast(x, tf.float32) / 255.0
    if x.shape[1] % 16 or x.shape[2] % 16:
      raise ValueError("needs multiples of 16")
    return self.enc(x)

  def quantize(self, y, training=False):
    return y + tf.random.uniform(tf.shape(y), -.5, .5) if training else (
        tf.round(y))

  def synthesis(self, y_hat):
    return 0.5 * self.dec(y_hat)

  def call(self, x, training=False):
    y_hat = self.quantize(self.analysis(x), training)
    return self.synthesis(y_hat), tf.reduce_sum(tf.abs(y_hat), [1, 2, 3])


class Tiny2D(tf.keras.Model):
  """A 2-D model (vectors [N, 2]) with the common interface."""

  def analysis(self, x):
    return tf.stack([2.0 * x[:, 0] + x[:, 1], x[:, 1] - x[:, 0]], -1)

  def quantize(self, y, training=False):
    return tf.round(y)

  def synthesis(self, y_hat):
    return tf.stack([(y_hat[:, 0] - y_hat[:, 1]) / 3.0,
                     (y_hat[:, 0] + 2.0 * y_hat[:, 1]) / 3.0], -1)


def _images(n=4, h=24, w=40, seed=0):
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_identical_inputs_give_zero_induced_distances():
  model = TinyImageModel()
  x = _images()
  r = induced.induced_distances(model, x, x.copy())
  for k in ("de", "dr", "din", "norm_dx", "sens_de", "sens_dr", "sens_din"):
    np.testing.assert_array_equal(r[k], 0.0, err_msg=k)
  np.testing.assert_allclose(r["ds1"], r["ds2"])
  assert np.all(r["ds1"] > 0)  # the model does not reproduce the images


def test_din_is_norm_of_analysis_difference_and_dr_of_reconstructions():
  model = TinyImageModel()
  x1, x2 = _images(seed=1), _images(seed=2)
  r = induced.induced_distances(model, x1, x2, base="mse")
  assert model.last_dtype == tf.uint8  # uint8 images reach the model as such
  # 24 x 40 is padded (symmetric) to 32 x 48 for the model.
  pad = lambda x: tf.pad(tf.cast(x, tf.float32) / 255.0,
                         [[0, 0], [0, 8], [0, 8], [0, 0]], "SYMMETRIC")
  y1, y2 = model.analysis(pad(x1)).numpy(), model.analysis(pad(x2)).numpy()
  din = np.sqrt(((y1 - y2) ** 2).reshape(4, -1).sum(1))
  np.testing.assert_allclose(r["din"], din, rtol=1e-5)
  assert np.all(din > 0)
  rq = induced.induced_distances(model, x1, x2, latent="quantized")
  np.testing.assert_allclose(
      rq["din"], np.sqrt(((np.round(y1) - np.round(y2)) ** 2).reshape(
          4, -1).sum(1)), rtol=1e-6)
  # Dr: MSE between the 8-bit reconstructions, cropped back to 24 x 40.
  def rec(x):
    x_hat = model.synthesis(tf.round(model.analysis(pad(x))))[:, :24, :40]
    return np.round(np.clip(x_hat.numpy(), 0, 1) * 255) / 255
  dr = ((rec(x1) - rec(x2)) ** 2).reshape(4, -1).mean(1)
  np.testing.assert_allclose(r["dr"], dr, rtol=1e-5)
  d = (x1.astype(np.float64) - x2) / 255.0
  np.testing.assert_allclose(r["de"], (d ** 2).reshape(4, -1).mean(1),
                             rtol=1e-5)
  norm = np.sqrt((d ** 2).reshape(4, -1).sum(1))
  np.testing.assert_allclose(r["norm_dx"], norm, rtol=1e-6)
  np.testing.assert_allclose(r["sens_din"], r["din"] / norm, rtol=1e-6)
  np.testing.assert_allclose(r["sens_dr"], r["dr"] / norm, rtol=1e-6)
  # Float input with max_val gives the same numbers as uint8.
  rf = induced.induced_distances(model, x1.astype(np.float32),
                                 x2.astype(np.float32), max_val=255.0)
  assert model.last_dtype == tf.float32
  np.testing.assert_allclose(rf["din"], r["din"], rtol=1e-5)


def test_results_do_not_depend_on_batch_composition():
  model = TinyImageModel()
  x1, x2 = _images(5, 32, 32, seed=3), _images(5, 32, 32, seed=4)
  whole = induced.induced_distances(model, x1, x2)
  single = induced.induced_distances(model, x1, x2, batch_size=1)
  pairs = induced.induced_distances(model, x1, x2, batch_size=2)
  reversed_ = induced.induced_distances(model, x1[::-1], x2[::-1])
  for k in whole:
    np.testing.assert_allclose(single[k], whole[k], rtol=1e-5, err_msg=k)
    np.testing.assert_allclose(pairs[k], whole[k], rtol=1e-5, err_msg=k)
    np.testing.assert_allclose(reversed_[k][::-1], whole[k], rtol=1e-5,
                               err_msg=k)


def test_two_dimensional_model():
  model = Tiny2D()
  rng = np.random.default_rng(5)
  x1 = rng.normal(size=(1000, 2)).astype(np.float32) * 3
  x2 = x1 + rng.normal(size=(1000, 2)).astype(np.float32) * 0.5
  r = induced.induced_distances(model, x1, x2, base="euclidean")
  y1, y2 = model.analysis(x1).numpy(), model.analysis(x2).numpy()
  np.testing.assert_allclose(r["din"], np.linalg.norm(y1 - y2, axis=1),
                             rtol=1e-5)
  np.testing.assert_allclose(r["de"], np.linalg.norm(x1 - x2, axis=1),
                             rtol=1e-5)
  np.testing.assert_allclose(r["sens_de"], 1.0, rtol=1e-5)
  h1 = model.synthesis(np.round(y1)).numpy()
  np.testing.assert_allclose(r["ds1"], np.linalg.norm(x1 - h1, axis=1),
                             rtol=1e-5, atol=1e-6)
  sq = induced.induced_distances(model, x1, x2, base="squared_error")
  np.testing.assert_allclose(sq["de"], r["de"] ** 2, rtol=1e-4)
  custom = induced.induced_distances(
      model, x1, x2, base=lambda a, b: tf.reduce_sum(tf.abs(a - b), -1))
  np.testing.assert_allclose(custom["de"], np.abs(x1 - x2).sum(1), rtol=1e-5)


def test_input_validation():
  model = TinyImageModel()
  x = _images()
  with pytest.raises(ValueError, match="same shape"):
    induced.induced_distances(model, x, x[:2])
  with pytest.raises(ValueError, match="latent"):
    induced.induced_distances(model, x, x, latent="soft")
  with pytest.raises(ValueError, match="base"):
    induced.induced_distances(model, x, x, base="nope")
  with pytest.raises(ValueError, match="max_val"):
    induced.induced_distances(model, x.astype(np.float32), x.astype(
        np.float32))
  with pytest.raises(ValueError, match="rank|shape"):
    induced.induced_distances(model, x[0], x[0])
  with pytest.raises(TypeError, match="common interface"):
    induced.induced_distances(object(), x, x)
  with pytest.raises(ValueError, match="vectors"):
    induced.induced_distances(Tiny2D(), np.ones((3, 2), np.int32),
                              np.ones((3, 2), np.int32))
