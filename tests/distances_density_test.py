"""Tests of the density-weighted squared errors (paper Fig. 12)."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfc_perception import distances


class DensityWeightedTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.dist = tfp.distributions.MultivariateNormalDiag(
        loc=[0.0, 0.0], scale_diag=[1.0, 2.0])
    rng = np.random.default_rng(0)
    self.x = rng.normal(size=(5, 2)).astype(np.float32)
    self.y = self.x + rng.normal(scale=0.1, size=(5, 2)).astype(np.float32)

  def test_values_against_scipy(self):
    from scipy import stats  # pylint: disable=g-import-not-at-top
    p = stats.multivariate_normal([0, 0], np.diag([1.0, 4.0])).pdf(self.x)
    err = ((self.x.astype(np.float64) - self.y) ** 2).sum(axis=1)
    self.assertAllClose(
        distances.density_weighted_mse(self.x, self.y, self.dist.prob),
        p * err, rtol=1e-5)
    self.assertAllClose(
        distances.inverse_density_weighted_mse(self.x, self.y, p),
        err / p, rtol=1e-5)

  def test_tensor_and_callable_agree_and_gradient(self):
    p = self.dist.prob(self.x)
    self.assertAllClose(distances.density_weighted_mse(self.x, self.y, p),
                        distances.density_weighted_mse(self.x, self.y,
                                                       self.dist.prob))
    y = tf.Variable(self.y)
    with tf.GradientTape() as tape:
      v = tf.reduce_sum(distances.inverse_density_weighted_mse(
          self.x, y, self.dist.prob))
    g = tape.gradient(v, y)
    self.assertTrue(np.all(np.isfinite(g.numpy())))
    self.assertAllClose(g, 2 * (self.y - self.x) / p.numpy()[:, None],
                        rtol=1e-4)

  def test_identity_is_zero(self):
    self.assertAllEqual(
        distances.density_weighted_mse(self.x, self.x, self.dist.prob),
        np.zeros(5))

  def test_bad_density(self):
    with self.assertRaisesRegex(ValueError, "one value per example"):
      distances.density_weighted_mse(self.x, self.y, np.ones((5, 1)))
    with self.assertRaisesRegex(ValueError, "3 values for 5"):
      distances.density_weighted_mse(self.x, self.y, np.ones(3))
    with self.assertRaisesRegex(ValueError, "> 0"):
      distances.inverse_density_weighted_mse(self.x, self.y, np.zeros(5))
    with self.assertRaisesRegex(ValueError, ">= 0"):
      distances.density_weighted_mse(self.x, self.y, -np.ones(5))
    with self.assertRaisesRegex(ValueError, "NaN or Inf"):
      distances.density_weighted_mse(self.x, self.y, np.full(5, np.nan))
    with self.assertRaises(TypeError):
      distances.density_weighted_mse(self.x, self.y, "gauss")


if __name__ == "__main__":
  tf.test.main()
