"""Tests of tfc_perception.losses: values, serialisation, model.fit."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfc_perception import distances
from tfc_perception import losses


def _images(n=4, size=20, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.random((n, size, size, 3)).astype(np.float32)
  return x, np.clip(x + 0.1 * rng.normal(size=x.shape), 0, 1).astype(
      np.float32)


class LossValuesTest(tf.test.TestCase):

  def test_values_are_the_distances(self):
    x, y = _images(size=70)
    self.assertAllClose(losses.MSE()(x, y), np.mean(distances.mse(x, y, 1.0)))
    self.assertAllClose(losses.MSE(scale=255.0 ** 2)(x, y),
                        255.0 ** 2 * np.mean(distances.mse(x, y, 1.0)),
                        rtol=1e-5)
    self.assertAllClose(losses.MSSSIM(num_scales=3)(x, y),
                        np.mean(1 - distances.ms_ssim(x, y, 1.0,
                                                      num_scales=3)))
    self.assertAllClose(losses.NLPD()(x, y),
                        np.mean(distances.nlpd(x, y, 1.0)))
    self.assertAllClose(
        losses.NLPD(variant="laparra2017", num_levels=3)(x, y),
        np.mean(distances.nlpd(x, y, 1.0, variant="laparra2017",
                               num_levels=3)))
    # uint8 targets are converted to [0, max_val].
    x8 = np.round(x * 255).astype(np.uint8)
    self.assertAllClose(losses.MSE()(x8, y),
                        np.mean(distances.mse(x8 / 255.0, y, 1.0)))
    # Per-example values without reduction.
    per = losses.NLPD(reduction="none")(x, y)
    self.assertEqual(per.shape, (4,))

  def test_density_weighted(self):
    dist = tfp.distributions.MultivariateNormalDiag([0.0, 0.0], [1.0, 1.0])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 2)).astype(np.float32)
    y = x + 0.1
    loss = losses.DensityWeightedMSE(dist.prob, reduction="none")
    self.assertAllClose(loss(x, y), distances.density_weighted_mse(
        x, y, dist.prob))
    inv = losses.get("inverse_density_mse", density=dist.prob,
                     reduction="none")
    self.assertAllClose(inv(x, y), distances.inverse_density_weighted_mse(
        x, y, dist.prob))
    named = losses.DensityWeightedMSE("student_t", reduction="none")
    from tfc_perception.data import sources  # pylint: disable=g-import-not-at-top
    self.assertAllClose(named(x, y), distances.density_weighted_mse(
        x, y, sources.get_source("student_t").prob), rtol=1e-5)

  def test_bad_parameters(self):
    with self.assertRaisesRegex(ValueError, "needs a density"):
      losses.DensityWeightedMSE()
    with self.assertRaisesRegex(ValueError, "Unknown NLPD variant"):
      losses.NLPD(variant="x")
    with self.assertRaisesRegex(ValueError, "num_scales must be"):
      losses.MSSSIM(num_scales=9)
    with self.assertRaisesRegex(ValueError, "max_val"):
      losses.MSE(max_val=0.0)
    with self.assertRaisesRegex(ValueError, "Unknown loss"):
      losses.get("l1")


class LossSerialisationTest(tf.test.TestCase):

  def test_round_trip(self):
    x, y = _images(size=70)
    objs = [losses.MSE(scale=3.0), losses.MSSSIM(num_scales=2, k2=0.05),
            losses.NLPD(variant="laparra2017", num_levels=4,
                        color="rgb2gray"),
            losses.DensityWeightedMSE("uniform2d", inverse=True)]
    custom = {c.__name__: c for c in (losses.MSE, losses.MSSSIM,
                                      losses.NLPD, losses.DensityWeightedMSE)}
    for loss in objs:
      config = loss.get_config()
      clone = type(loss).from_config(config)
      self.assertEqual(clone.get_config(), config)
      ser = tf.keras.losses.serialize(loss)
      restored = tf.keras.losses.deserialize(ser, custom_objects=custom)
      self.assertIsInstance(restored, type(loss))
      self.assertEqual(restored.get_config(), config)
      if not isinstance(loss, losses.DensityWeightedMSE):
        self.assertAllClose(restored(x, y), loss(x, y))
    # Registered: deserialize works without custom_objects too.
    restored = tf.keras.losses.deserialize(
        tf.keras.losses.serialize(losses.NLPD(num_levels=3)))
    self.assertEqual(restored.num_levels, 3)

  def test_callable_density_needs_to_be_passed_again(self):
    dist = tfp.distributions.MultivariateNormalDiag([0.0, 0.0], [1.0, 1.0])
    density = dist.prob
    config = losses.DensityWeightedMSE(density).get_config()
    self.assertIsNone(config["density"])
    with self.assertRaisesRegex(ValueError, "pass the callable again"):
      losses.DensityWeightedMSE.from_config(config)
    clone = losses.DensityWeightedMSE.from_config({**config,
                                                   "density": density})
    self.assertIs(clone.density, density)


class LossFitTest(tf.test.TestCase):

  def test_model_fit_reduces_each_loss(self):
    x, y = _images(n=8, size=16, seed=1)
    # The NLPD loss goes through serialize/deserialize first, as a model
    # restored from its config would.
    restored_nlpd = tf.keras.losses.deserialize(
        tf.keras.losses.serialize(losses.NLPD(num_levels=3)))
    for loss in (losses.MSE(), losses.MSSSIM(num_scales=1), restored_nlpd):
      tf.keras.utils.set_random_seed(0)
      model = tf.keras.Sequential([
          tf.keras.Input((16, 16, 3)),
          tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
          tf.keras.layers.Conv2D(3, 3, padding="same")])
      model.compile(optimizer=tf.keras.optimizers.Adam(1e-2), loss=loss)
      # One step per epoch: the first logged loss is that of the initial
      # weights.
      history = model.fit(x, y, epochs=10, batch_size=8, verbose=0)
      values = history.history["loss"]
      self.assertTrue(np.all(np.isfinite(values)))
      self.assertLess(values[-1], 0.7 * values[0], loss.name)

  def test_density_loss_fit(self):
    dist = tfp.distributions.MultivariateNormalDiag([0.0, 0.0], [1.0, 1.0])
    x = dist.sample(64, seed=0).numpy()
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.Input((2,)),
                                 tf.keras.layers.Dense(2)])
    model.compile(optimizer=tf.keras.optimizers.Adam(5e-2),
                  loss=losses.DensityWeightedMSE(dist.prob))
    values = model.fit(x, x, epochs=20, batch_size=64,
                       verbose=0).history["loss"]
    self.assertLess(values[-1], 0.5 * values[0])


if __name__ == "__main__":
  tf.test.main()
