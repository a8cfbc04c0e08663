"""Tests of tfc_perception.distances.ms_ssim (default ==
tf.image.ssim_multiscale, finite gradients, clear size errors)."""

import numpy as np
from PIL import Image
import tensorflow as tf

from tfc_perception import distances


def _pair(seed=0, shape=(2, 170, 181, 3), sigma=12.0):
  rng = np.random.default_rng(seed)
  # Smooth random images (more natural than white noise) in [0, 255].
  base = rng.normal(size=(shape[0], shape[1] // 8 + 2, shape[2] // 8 + 2,
                          shape[3]))
  base = tf.image.resize(base, shape[1:3], "bicubic").numpy()
  x = np.clip(128 + 60 * base, 0, 255).astype(np.uint8)
  y = np.clip(x + rng.normal(0, sigma, shape), 0, 255).astype(np.uint8)
  return x, y


def _ms_ssim_float64(x, y):
  """MS-SSIM (five default scales, [0, 1] images) with every operation in
  float64: the reference for the float32 precision of the sums."""
  x, y = tf.constant(x, tf.float64), tf.constant(y, tf.float64)
  g = np.exp(-0.5 * ((np.arange(11) - 5.0) / 1.5) ** 2)
  k = np.outer(g, g) / np.outer(g, g).sum()
  kernel = tf.constant(np.tile(k[:, :, None, None], [1, 1, x.shape[3], 1]))
  values = []
  for scale in range(5):
    if scale:
      pad = [[0, 0], [0, x.shape[1] % 2], [0, x.shape[2] % 2], [0, 0]]
      x = tf.nn.avg_pool2d(tf.pad(x, pad, "SYMMETRIC"), 2, 2, "VALID")
      y = tf.nn.avg_pool2d(tf.pad(y, pad, "SYMMETRIC"), 2, 2, "VALID")
    f = lambda t: tf.nn.depthwise_conv2d(t, kernel, [1] * 4, "VALID")
    m0, m1, mxy, mxxyy = f(x), f(y), f(x * y), f(x * x + y * y)
    lum = (2 * m0 * m1 + 1e-4) / (m0**2 + m1**2 + 1e-4)
    cs = (2 * mxy - 2 * m0 * m1 + 9e-4) / (mxxyy - m0**2 - m1**2 + 9e-4)
    values.append(tf.reduce_mean(lum * cs if scale == 4 else cs, [1, 2]))
  p = np.array(distances.ms_ssim_module.DEFAULT_POWER_FACTORS)
  return np.mean(np.prod(np.maximum(np.stack(values, -1), 0) ** p, -1), -1)


class MSSSIMTest(tf.test.TestCase):

  def test_default_equals_tf_image_ssim_multiscale(self):
    for shape in ((2, 170, 181, 3), (1, 161, 162, 1)):
      x, y = _pair(shape=shape)
      self.assertAllClose(distances.ms_ssim(x, y),
                          tf.image.ssim_multiscale(x, y, 255),
                          rtol=2e-6, atol=0)
      xf = (x / 255.0).astype(np.float32)
      yf = (y / 255.0).astype(np.float32)
      self.assertAllClose(distances.ms_ssim(xf, yf, 1.0),
                          tf.image.ssim_multiscale(xf, yf, 1.0),
                          rtol=2e-6, atol=0)
    # Other power factors / window settings are passed through unchanged.
    kw = dict(power_factors=(0.3, 0.3, 0.4), filter_size=7, filter_sigma=1.0,
              k1=0.02, k2=0.05)
    self.assertAllClose(distances.ms_ssim(x, y, **kw),
                        tf.image.ssim_multiscale(x, y, 255, **kw), rtol=2e-6)

  def test_every_filter_grouping_equals_tf_image(self):
    # The four moment maps are filtered in 4, 2 or 1 depthwise call(s)
    # depending on the static number of planes (batch x channels), and in 2
    # when the batch size is not known when tracing.
    x, y = _pair(shape=(16, 161, 161, 3))
    xf, yf = (x / 255.0).astype(np.float32), (y / 255.0).astype(np.float32)
    expected = tf.image.ssim_multiscale(xf, yf, 1.0)
    for n in (1, 8, 16):
      self.assertEqual(distances.ms_ssim_module._filter_groups(3 * n),
                       {1: 4, 8: 2, 16: 1}[n])
      self.assertAllClose(distances.ms_ssim(xf[:n], yf[:n], 1.0),
                          expected[:n], rtol=2e-6, atol=0)
    f = tf.function(lambda a, b: distances.ms_ssim(a, b, 1.0),
                    input_signature=[tf.TensorSpec([None, 161, 161, 3])] * 2)
    self.assertAllClose(f(xf, yf), expected, rtol=2e-6, atol=0)

  def test_float32_precision_at_tid2013_size(self):
    # ms_ssim accumulates its spatial means in float64: at 512x384 it is
    # within 1e-6 of an all-float64 computation, and tf.image (float32
    # sums, 1.4e-6 off on this pair) within the usual 2e-6 of it.
    x, y = _pair(shape=(2, 384, 512, 3))
    xf, yf = (x / 255.0).astype(np.float32), (y / 255.0).astype(np.float32)
    value = distances.ms_ssim(xf, yf, 1.0)
    self.assertAllClose(value, _ms_ssim_float64(xf, yf), rtol=1e-6, atol=0)
    self.assertAllClose(value, tf.image.ssim_multiscale(xf, yf, 1.0),
                        rtol=2e-6, atol=0)

  def test_identity_symmetry_batch_independence(self):
    x, y = _pair(shape=(3, 161, 165, 3))
    self.assertAllClose(distances.ms_ssim(x, x), np.ones(3), atol=1e-6)
    self.assertAllClose(distances.ms_ssim(x, y), distances.ms_ssim(y, x),
                        rtol=1e-6)
    one_by_one = [distances.ms_ssim(x[i:i + 1], y[i:i + 1])[0]
                  for i in range(3)]
    self.assertAllClose(distances.ms_ssim(x, y), one_by_one, rtol=1e-6)

  def test_monotone_in_noise(self):
    x, _ = _pair(shape=(1, 161, 161, 3))
    xf = x.astype(np.float32) / 255.0
    noise = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
    values = [distances.ms_ssim(xf, xf + s * noise, 1.0)[0].numpy()
              for s in (0.01, 0.03, 0.1)]
    self.assertAllLess(np.diff(values), 0)

  def test_fewer_scales_for_small_images(self):
    x, y = _pair(shape=(2, 32, 32, 3))
    self.assertEqual(distances.ms_ssim_max_scales(32), 2)
    self.assertEqual(distances.ms_ssim_min_size(5), 161)
    v = distances.ms_ssim(x, y, num_scales=2)
    # First two default factors, rescaled to the default total.
    w = np.array([0.0448, 0.2856]) * (1.0001 / (0.0448 + 0.2856))
    self.assertAllClose(v, tf.image.ssim_multiscale(x, y, 255,
                                                    power_factors=w),
                        rtol=2e-6)
    self.assertAllClose(distances.ms_ssim(x, x, num_scales=2), np.ones(2),
                        atol=1e-6)

  def test_too_small_is_a_clear_error(self):
    x, y = _pair(shape=(1, 160, 200, 3))
    with self.assertRaisesRegex(ValueError, r"at least 161 px.*num_scales=4"):
      distances.ms_ssim(x, y)
    with self.assertRaisesRegex(ValueError, "at least 11 px"):
      distances.ms_ssim(x[:, :10, :10], y[:, :10, :10], num_scales=1)
    with self.assertRaisesRegex(ValueError, "num_scales must be"):
      distances.ms_ssim(x, y, num_scales=6)
    with self.assertRaisesRegex(ValueError, "disagrees"):
      distances.ms_ssim(x, y, num_scales=2, power_factors=(1.0,))

  def test_finite_gradients_real_and_degenerate(self):
    x, y = _pair(shape=(2, 161, 161, 3))
    xf = tf.constant(x / 255.0, tf.float32)
    cases = {
        "noisy": tf.constant(y / 255.0, tf.float32),
        "identical": xf,
        # Anti-correlated: 1 - x has negative contrast-structure at every
        # scale, so the clipped values are 0 (tf.image gives NaN gradients).
        "anti_correlated": 1.0 - xf,
    }
    for name, other in cases.items():
      yv = tf.Variable(other)
      with tf.GradientTape() as tape:
        v = distances.ms_ssim(xf, yv, 1.0)
      g = tape.gradient(v, yv).numpy()
      self.assertTrue(np.all(np.isfinite(g)), name)
      self.assertAllClose(v, tf.image.ssim_multiscale(xf, other, 1.0),
                          rtol=2e-6, atol=1e-7)
    # The case really is degenerate: TF's own gradient is NaN there.
    with tf.GradientTape() as tape:
      yv = tf.Variable(1.0 - xf)
      v = tf.image.ssim_multiscale(xf, yv, 1.0)
    self.assertAllEqual(v, np.zeros(2))
    self.assertTrue(np.any(np.isnan(tape.gradient(v, yv).numpy())))

  def test_finite_gradients_on_real_images(self):
    from conftest import shared_path  # pylint: disable=g-import-not-at-top
    img = np.array(Image.open(shared_path("kodak", "kodim23.png")).convert(
        "RGB"))[100:300, 200:400]
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 10, img.shape),
                    0, 255)
    yv = tf.Variable(noisy[None] / 255.0, dtype=tf.float32)
    with tf.GradientTape() as tape:
      v = distances.ms_ssim(img[None] / 255.0, yv, 1.0)
    g = tape.gradient(v, yv).numpy()
    self.assertTrue(np.all(np.isfinite(g)))
    self.assertGreater(np.abs(g).max(), 0.0)
    self.assertAllClose(v, tf.image.ssim_multiscale(
        (img[None] / 255.0).astype(np.float32), yv, 1.0), rtol=2e-6)

  def test_dynamic_size_too_small_is_reported(self):
    f = tf.function(lambda a: distances.ms_ssim(a, a, 1.0),
                    input_signature=[tf.TensorSpec([1, None, None, 1])])
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                "needs at least 161 px"):
      f(tf.zeros([1, 100, 170, 1]))

  def test_in_tf_function(self):
    x, y = _pair(shape=(2, 161, 161, 3))
    f = tf.function(lambda a, b: distances.ms_ssim(a, b, 1.0))
    self.assertAllClose(f(x / 255.0, y / 255.0), distances.ms_ssim(x, y),
                        rtol=1e-5)

  def test_bad_input(self):
    x, y = _pair(shape=(1, 161, 161, 3))
    with self.assertRaisesRegex(ValueError, "rank 4"):
      distances.ms_ssim(x[0], y[0])
    with self.assertRaisesRegex(ValueError, "same shape"):
      distances.ms_ssim(x, y[..., :1])
    with self.assertRaisesRegex(ValueError, "max_val"):
      distances.ms_ssim(x / 255.0, y / 255.0)
    with self.assertRaisesRegex(ValueError, "dtype"):
      distances.ms_ssim(x.astype(np.int64), y.astype(np.int64))
    with self.assertRaisesRegex(ValueError, "NaN or Inf"):
      distances.ms_ssim(np.full(x.shape, np.nan, np.float32), y / 255.0, 1.0)
    with self.assertRaisesRegex(ValueError, "filter_sigma"):
      distances.ms_ssim(x, y, filter_sigma=0.0)


if __name__ == "__main__":
  tf.test.main()
