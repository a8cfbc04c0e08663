"""Tests of tfc_perception.distances: mse, psnr, squared_error, get."""

import numpy as np
import tensorflow as tf

from tfc_perception import distances


def _pair(seed=0, shape=(3, 32, 40, 3), sigma=10.0):
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 256, shape, dtype=np.uint8)
  y = np.clip(x + rng.normal(0, sigma, shape), 0, 255).astype(np.uint8)
  return x, y


class MSETest(tf.test.TestCase):

  def test_matches_numpy_in_input_units(self):
    x, y = _pair()
    want = ((x.astype(np.float64) - y) ** 2).mean(axis=(1, 2, 3))
    self.assertAllClose(distances.mse(x, y), want, rtol=1e-5)
    # Float input in [0, 1]: units of the values given.
    got = distances.mse(x / 255.0, y / 255.0, max_val=1.0)
    self.assertAllClose(got, want / 255.0 ** 2, rtol=1e-5)
    self.assertEqual(got.shape, (3,))
    self.assertEqual(got.dtype, tf.float32)

  def test_identity_symmetry_batch_independence(self):
    x, y = _pair()
    self.assertAllEqual(distances.mse(x, x), np.zeros(3))
    self.assertAllClose(distances.mse(x, y), distances.mse(y, x))
    one_by_one = [distances.mse(x[i:i + 1], y[i:i + 1])[0] for i in range(3)]
    self.assertAllClose(distances.mse(x, y), one_by_one, rtol=1e-6)

  def test_monotone_in_noise(self):
    x, _ = _pair(shape=(1, 32, 32, 3))
    xf = x.astype(np.float32) / 255.0
    noise = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
    values = [distances.mse(xf, xf + s * noise, 1.0)[0].numpy()
              for s in (0.01, 0.02, 0.05)]
    self.assertAllGreater(np.diff(values), 0)

  def test_psnr_matches_tf_and_identity(self):
    x, y = _pair()
    self.assertAllClose(distances.psnr(x, y), tf.image.psnr(x, y, 255),
                        rtol=1e-5)
    xf, yf = x / 255.0, y / 255.0
    self.assertAllClose(distances.psnr(xf, yf, 1.0),
                        tf.image.psnr(xf, yf, 1.0), rtol=1e-5)
    self.assertAllEqual(distances.psnr(x, x), np.full(3, np.inf))

  def test_psnr_finite_gradient_on_identical_images(self):
    x, y = _pair()
    grads = []
    for other in (x, y):
      xv = tf.constant(x / 255.0, tf.float32)
      with tf.GradientTape() as tape:
        tape.watch(xv)
        v = distances.psnr(xv, tf.constant(other / 255.0, tf.float32), 1.0)
      grads.append(tape.gradient(v, xv).numpy())
    self.assertAllEqual(grads[0], np.zeros_like(grads[0]))  # identical
    self.assertTrue(np.all(np.isfinite(grads[1])))
    self.assertGreater(np.abs(grads[1]).max(), 0)

  def test_in_tf_function(self):
    x, y = _pair()
    f = tf.function(lambda a, b: distances.psnr(a, b, 1.0))
    self.assertAllClose(f(tf.constant(x / 255.0, tf.float32),
                          tf.constant(y / 255.0, tf.float32)),
                        distances.psnr(x, y), rtol=1e-5)

  def test_squared_error(self):
    x = np.array([[0.0, 1.0], [2.0, -1.0]], np.float32)
    y = np.array([[1.0, 1.0], [0.0, 1.0]], np.float32)
    self.assertAllClose(distances.squared_error(x, y), [1.0, 8.0])

  def test_bad_input(self):
    x, y = _pair()
    with self.assertRaisesRegex(ValueError, "rank 4"):
      distances.mse(x[0], y[0])
    with self.assertRaisesRegex(ValueError, "same shape"):
      distances.mse(x, y[:, :-1])
    with self.assertRaisesRegex(ValueError, "max_val"):
      distances.mse(x / 255.0, y / 255.0)
    with self.assertRaisesRegex(ValueError, "dtype int32"):
      distances.psnr(x.astype(np.int32), y.astype(np.int32))
    bad = (x / 255.0).astype(np.float32)
    bad[0, 0, 0, 0] = np.nan
    with self.assertRaisesRegex(ValueError, "NaN or Inf"):
      distances.psnr(bad, y / 255.0, 1.0)
    bad[0, 0, 0, 0] = np.inf
    with self.assertRaisesRegex(ValueError, "NaN or Inf"):
      distances.mse(bad, y / 255.0, 1.0)
    with self.assertRaisesRegex(ValueError, "outside"):
      distances.mse(x.astype(np.float32), y.astype(np.float32), 1.0)
    with self.assertRaisesRegex(ValueError, "uint8"):
      distances.mse(x, y, max_val=1.0)
    with self.assertRaisesRegex(ValueError, "rank >= 2"):
      distances.squared_error(np.zeros(3, np.float32), np.zeros(3, np.float32))
    with self.assertRaisesRegex(ValueError, "must be float"):
      distances.squared_error(np.zeros((3, 2), np.int32),
                              np.zeros((3, 2), np.int32))
    with self.assertRaisesRegex(ValueError, "same shape"):
      distances.squared_error(np.zeros((3, 2), np.float32),
                              np.zeros((3, 3), np.float32))


class GetTest(tf.test.TestCase):

  def test_names(self):
    self.assertIs(distances.get("mse"), distances.mse)
    self.assertIs(distances.get("MS-SSIM"), distances.ms_ssim)
    self.assertIs(distances.get("msssim"), distances.ms_ssim)
    self.assertIs(distances.get("nlpd"), distances.nlpd)
    self.assertIs(distances.get("inverse_density_mse"),
                  distances.inverse_density_weighted_mse)
    self.assertIs(distances.get("density_mse"), distances.density_weighted_mse)
    with self.assertRaisesRegex(ValueError, "accepted: .*mse"):
      distances.get("l7")


if __name__ == "__main__":
  tf.test.main()
