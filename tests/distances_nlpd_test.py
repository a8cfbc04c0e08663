"""Tests of tfc_perception.distances.nlpd.

Calibration: both variants are compared with slow, independent NumPy/SciPy
implementations written here straight from the published definitions
(../shared/reference/nlpd.md): 2-D (not separable) filtering with
scipy.ndimage.correlate / scipy.signal, literal zero insertion for
upsampling, np.pad for boundaries. Those share no code with the TF version.
"""

import os

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy import signal
import tensorflow as tf

from conftest import shared_path
from tfc_perception import distances

_F = np.array([.05, .25, .4, .25, .05])
_K = np.outer(_F, _F)


# --------------------------- laparra2016 reference (MATLAB NLP_dist) ------

_SIGMAS = [0.0248, 0.0185, 0.0179, 0.0191, 0.0220, 0.2782]
_TAPS = [(.1011, .1493, .1460, .1015), (.0757, .1986, .1846, .0837),
         (.0477, .2138, .2243, .0467), (0, .2503, .2616, 0),
         (0, .2598, .2552, 0), (0, .2215, .0717, 0)]


def _p2016(k):
  m = np.zeros((5, 5))
  m[1, 2], m[2, 1], m[2, 3], m[3, 2] = _TAPS[k]  # up, left, right, down
  if k == 0:
    m[2, 4] = .0072  # row 0, col +2 from the centre
  return m


def _down2016(im):
  # scipy's "reflect" is the half-sample symmetric extension (edge repeated),
  # MATLAB's "symmetric"; keep MATLAB rows/columns 1, 3, 5, ...
  return ndimage.correlate(im, _K, mode="reflect")[::2, ::2]


def _up2016(im, fine_shape):
  padded = np.pad(im, 1, mode="edge")
  r = np.zeros((2 * padded.shape[0], 2 * padded.shape[1]))
  r[::2, ::2] = 4 * padded
  r = ndimage.correlate(r, _K, mode="constant")
  odd = 2 * np.array(im.shape) - np.array(fine_shape)
  return r[2:r.shape[0] - 2 - odd[0], 2:r.shape[1] - 2 - odd[1]]


def ref_nlpd2016(a, b, num_levels=6):
  """NLP_dist on two greyscale float64 images in [0, 1]."""
  def normalised(im):
    out = []
    for k in range(num_levels):
      if k < num_levels - 1:
        coarse = _down2016(im)
        band = im - _up2016(coarse, im.shape)
        sigma, p = _SIGMAS[k], _p2016(k)
      else:
        band, sigma, p = im, _SIGMAS[5], _p2016(5)
      out.append(band / (sigma + signal.convolve2d(np.abs(band), p, "same")))
      if k < num_levels - 1:
        im = coarse
    return out
  return np.mean([np.sqrt(np.mean((u - v) ** 2))
                  for u, v in zip(normalised(a), normalised(b))])


def ref_rgb2gray(rgb_uint8):
  y = rgb_uint8.astype(np.float64) @ np.array([0.298936, 0.587043, 0.114021])
  return np.floor(y + 0.5) / 255.0  # MATLAB round (half away from zero)


# --------------------------- laparra2017 reference ------------------------

_P2017 = np.array([[.04, .04, .05, .04, .04], [.04, .03, .04, .03, .04],
                   [.05, .04, .05, .04, .05], [.04, .03, .04, .03, .04],
                   [.04, .04, .05, .04, .04]])


def ref_nlpd2017(a, b, num_levels=6):
  """One channel, values in [0, 255] (float64)."""
  def normalised(im):
    im = ((im / 255.0) ** 2.4 * 175.0 + 5.0) ** (1 / 2.6)
    out = []
    for _ in range(num_levels - 1):
      n = np.array(im.shape)
      padded = np.pad(im, 4, mode="reflect")  # edge not repeated
      down = signal.correlate2d(padded, _K, "valid")[::2, ::2]
      # Transposed strided convolution: scatter 4K * down[o] at 2o.
      z = np.zeros((2 * down.shape[0] - 1, 2 * down.shape[1] - 1))
      z[::2, ::2] = down
      up = signal.convolve2d(z, 4 * _K, "full")[4:4 + n[0], 4:4 + n[1]]
      band = im - up
      out.append(band / (signal.convolve2d(np.abs(band), _P2017, "same")
                         + 0.17))
      im = down[1:-1, 1:-1]
    out.append(im / (np.abs(im) + 4.86))
    return out
  rms = [np.mean((u - v) ** 2) ** 0.3
         for u, v in zip(normalised(a), normalised(b))]
  return np.mean(rms) ** (1 / 0.6)


# --------------------------------------------------------------------------


def _noisy(x, sigma, seed=0):
  rng = np.random.default_rng(seed)
  return np.clip(x + rng.normal(0, sigma, x.shape), 0, 255).astype(np.uint8)


def _smooth_images(shape, seed=0):
  rng = np.random.default_rng(seed)
  base = rng.normal(size=(shape[0], shape[1] // 6 + 2, shape[2] // 6 + 2,
                          shape[3]))
  base = tf.image.resize(base, shape[1:3], "bicubic").numpy()
  return np.clip(128 + 60 * base, 0, 255).astype(np.uint8)


def _kodak_crops():
  """Real crops of Kodak images, odd and even sizes, with real distortions
  (JPEG, blur, noise)."""
  pairs = []
  crops = [("kodim01.png", 100, 200, 97, 130), ("kodim05.png", 0, 0, 128, 128),
           ("kodim08.png", 300, 301, 81, 66), ("kodim03.png", 50, 400, 150,
                                               201)]
  for i, (name, r, c, h, w) in enumerate(crops):
    img = np.array(Image.open(shared_path("kodak", name)).convert("RGB"))
    x = img[r:r + h, c:c + w]
    if i % 3 == 0:
      import io  # pylint: disable=g-import-not-at-top
      buf = io.BytesIO()
      Image.fromarray(x).save(buf, format="JPEG", quality=10)
      y = np.array(Image.open(buf))
    elif i % 3 == 1:
      y = ndimage.gaussian_filter(x, (1.5, 1.5, 0))
    else:
      y = _noisy(x, 15.0, seed=i)
    pairs.append((x, y))
  return pairs


class NLPD2016CalibrationTest(tf.test.TestCase):

  def test_rgb2gray_is_matlab_convention(self):
    x = _smooth_images((1, 40, 50, 3))
    planes = distances.nlpd_module._to_planes(  # pylint: disable=protected-access
        tf.constant(x, tf.float32), 255.0, "rgb2gray", True)
    self.assertAllEqual(planes.numpy()[0, ..., 0] * 255.0,
                        ref_rgb2gray(x[0]) * 255.0)

  def test_equals_numpy_reference_on_kodak_crops(self):
    for x, y in _kodak_crops():
      want = ref_nlpd2016(ref_rgb2gray(x), ref_rgb2gray(y))
      got = distances.nlpd(x[None], y[None])[0]
      self.assertAllClose(got, want, rtol=2e-5, atol=0, msg=str(x.shape))

  def test_equals_numpy_reference_on_generated_sizes(self):
    rng = np.random.default_rng(3)
    for h, w in [(65, 65), (66, 91), (128, 96), (101, 77), (70, 200)]:
      a = rng.random((h, w))
      b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
      got = distances.nlpd(a[None, ..., None], b[None, ..., None], 1.0)
      self.assertAllClose(got, [ref_nlpd2016(a, b)], rtol=2e-5, atol=0,
                          msg=f"{h}x{w}")
    # Fewer levels: the residual uses the residual's parameters.
    a, b = rng.random((40, 33)), rng.random((40, 33))
    self.assertAllClose(
        distances.nlpd(a[None, ..., None], b[None, ..., None], 1.0,
                       num_levels=4), [ref_nlpd2016(a, b, 4)], rtol=2e-5)

  def test_per_channel_mode_averages_channels(self):
    x, y = _kodak_crops()[1]
    want = np.mean([ref_nlpd2016(x[..., c] / 255.0, y[..., c] / 255.0)
                    for c in range(3)])
    self.assertAllClose(
        distances.nlpd(x[None], y[None], color="per_channel"), [want],
        rtol=2e-5)

  def test_float_rgb_is_not_rounded(self):
    x, y = _kodak_crops()[2]
    coef = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
    want = ref_nlpd2016(x @ coef / 255.0, y @ coef / 255.0)
    got = distances.nlpd(x[None] / 255.0, y[None] / 255.0, max_val=1.0)
    self.assertAllClose(got, [want], rtol=2e-5)

  def test_tid2013_sample_pair(self):
    root = shared_path("tid2013-sample")
    x = np.array(Image.open(os.path.join(root, "reference_images", "I01.BMP")))
    y = np.array(Image.open(os.path.join(root, "distorted_images",
                                         "i01_01_5.bmp")))
    want = ref_nlpd2016(ref_rgb2gray(x), ref_rgb2gray(y))
    self.assertAllClose(distances.nlpd(x[None], y[None]), [want], rtol=2e-5)


class NLPD2017CalibrationTest(tf.test.TestCase):

  def test_equals_numpy_reference(self):
    for x, y in _kodak_crops()[:2]:
      want = np.mean([ref_nlpd2017(x[..., c].astype(float),
                                   y[..., c].astype(float))
                      for c in range(3)])
      got = distances.nlpd(x[None], y[None], variant="laparra2017")
      self.assertAllClose(got, [want], rtol=5e-5, msg=str(x.shape))
    rng = np.random.default_rng(5)
    for h, w in [(65, 66), (99, 80)]:
      a = rng.random((h, w)) * 255
      b = np.clip(a + rng.normal(0, 10, a.shape), 0, 255)
      got = distances.nlpd(a[None, ..., None], b[None, ..., None], 255.0,
                           variant="laparra2017")
      self.assertAllClose(got, [ref_nlpd2017(a, b)], rtol=5e-5)


class NLPDPropertiesTest(tf.test.TestCase):

  def test_identity_symmetry_batch_independence(self):
    for variant in ("laparra2016", "laparra2017"):
      x = _smooth_images((3, 70, 81, 3))
      y = _noisy(x, 10.0)
      self.assertAllEqual(distances.nlpd(x, x, variant=variant), np.zeros(3))
      v = distances.nlpd(x, y, variant=variant)
      self.assertAllGreater(v, 0.0)
      self.assertAllClose(v, distances.nlpd(y, x, variant=variant),
                          rtol=1e-6)
      one_by_one = [distances.nlpd(x[i:i + 1], y[i:i + 1],
                                   variant=variant)[0] for i in range(3)]
      self.assertAllClose(v, one_by_one, rtol=1e-6)

  def test_monotone_in_noise(self):
    x = _smooth_images((1, 80, 80, 3)).astype(np.float32) / 255.0
    noise = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
    for variant in ("laparra2016", "laparra2017"):
      values = [distances.nlpd(x, x + s * noise, 1.0, variant=variant)[0]
                for s in (0.005, 0.02, 0.05, 0.1)]
      self.assertAllGreater(np.diff(values), 0.0)

  def test_finite_gradients(self):
    x = tf.constant(_smooth_images((2, 72, 67, 3)) / 255.0, tf.float32)
    noisy = tf.constant(_noisy(x.numpy() * 255.0, 8.0) / 255.0, tf.float32)
    for variant in ("laparra2016", "laparra2017"):
      for name, other in (("noisy", noisy), ("identical", x),
                          ("flat", tf.fill(x.shape, 0.5)),
                          ("black", tf.zeros_like(x))):
        yv = tf.Variable(other)
        with tf.GradientTape() as tape:
          v = distances.nlpd(x, yv, 1.0, variant=variant)
        g = tape.gradient(v, yv).numpy()
        self.assertTrue(np.all(np.isfinite(g)), (variant, name))
        if name == "identical":
          self.assertAllEqual(g, np.zeros_like(g))
        elif name != "black":  # laparra2017: d(x^2.4)/dx = 0 at black
          self.assertGreater(np.abs(g).max(), 0.0, (variant, name))

  def test_finite_gradients_on_real_images(self):
    x, y = _kodak_crops()[0]
    xf = tf.constant(x[None] / 255.0, tf.float32)
    for variant in ("laparra2016", "laparra2017"):
      for color in ("rgb2gray", "per_channel"):
        yv = tf.Variable(y[None] / 255.0, dtype=tf.float32)
        with tf.GradientTape() as tape:
          v = distances.nlpd(xf, yv, 1.0, variant=variant, color=color)
        g = tape.gradient(v, yv).numpy()
        self.assertTrue(np.all(np.isfinite(g)), (variant, color))
        self.assertGreater(np.abs(g).max(), 0.0)

  def test_mixed_uint8_and_float_inputs(self):
    x, y = _kodak_crops()[1]
    # uint8 reference, float distorted image on the 0-255 scale: only the
    # uint8 one is rounded by rgb2gray; the float one stays differentiable.
    yv = tf.Variable(y[None].astype(np.float32))
    with tf.GradientTape() as tape:
      v = distances.nlpd(x[None], yv, 255.0)
    self.assertIsNotNone(tape.gradient(v, yv))
    coef = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
    self.assertAllClose(v, [ref_nlpd2016(ref_rgb2gray(x), y @ coef / 255.0)],
                        rtol=2e-5)

  def test_dynamic_size_too_small_is_reported(self):
    f = tf.function(lambda a: distances.nlpd(a, a, 1.0),
                    input_signature=[tf.TensorSpec([1, None, None, 1])])
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                "too small for NLPD with 6 levels"):
      f(tf.zeros([1, 40, 70, 1]))
    self.assertAllEqual(f(tf.zeros([1, 70, 70, 1])), [0.0])

  def test_gradient_matches_finite_difference(self):
    rng = np.random.default_rng(2)
    a = rng.random((1, 66, 66, 1)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    yv = tf.Variable(b, dtype=tf.float32)
    with tf.GradientTape() as tape:
      v = distances.nlpd(a.astype(np.float32), yv, 1.0)
    g = tape.gradient(v, yv).numpy()
    d = rng.normal(size=a.shape)
    d /= np.linalg.norm(d)
    eps = 1e-3
    numeric = (ref_nlpd2016(a[0, ..., 0], b[0, ..., 0] + eps * d[0, ..., 0])
               - ref_nlpd2016(a[0, ..., 0], b[0, ..., 0] - eps * d[0, ..., 0])
               ) / (2 * eps)
    self.assertAllClose(np.sum(g * d), numeric, rtol=2e-2)

  def test_in_tf_function_with_unknown_batch(self):
    x = _smooth_images((2, 70, 70, 3))
    y = _noisy(x, 10.0)
    f = tf.function(lambda a, b: distances.nlpd(a, b, 255.0),
                    input_signature=[tf.TensorSpec([None, 70, 70, 3])] * 2)
    self.assertAllClose(f(x.astype(np.float32), y.astype(np.float32)),
                        distances.nlpd(x.astype(np.float32),
                                       y.astype(np.float32), 255.0),
                        rtol=1e-6)

  def test_sizes(self):
    self.assertEqual(distances.nlpd_min_size(6), 65)
    self.assertEqual(distances.nlpd_max_levels(32), 4)
    self.assertEqual(distances.nlpd_max_levels(512), 6)
    x = _smooth_images((1, 65, 65, 3))
    for variant in ("laparra2016", "laparra2017"):
      self.assertEqual(distances.nlpd(x, x, variant=variant).shape, (1,))
      small = x[:, :64]
      with self.assertRaisesRegex(ValueError,
                                  r"too small.*at least 65 px.*num_levels=5"):
        distances.nlpd(small, small, variant=variant)
      v = distances.nlpd(x[:, :32, :32], _noisy(x[:, :32, :32], 5.0),
                         variant=variant, num_levels=4)
      self.assertAllGreater(v, 0.0)

  def test_bad_input(self):
    x = _smooth_images((1, 70, 70, 3))
    y = _noisy(x, 5.0)
    with self.assertRaisesRegex(ValueError, "rank 4"):
      distances.nlpd(x[0], y[0])
    with self.assertRaisesRegex(ValueError, "same shape"):
      distances.nlpd(x, y[:, 1:])
    with self.assertRaisesRegex(ValueError, "max_val"):
      distances.nlpd(x / 255.0, y / 255.0)
    with self.assertRaisesRegex(ValueError, "dtype"):
      distances.nlpd(x.astype(np.uint16), y.astype(np.uint16))
    with self.assertRaisesRegex(ValueError, "NaN or Inf"):
      distances.nlpd(np.full(x.shape, np.inf, np.float32), y / 255.0, 1.0)
    with self.assertRaisesRegex(ValueError, "Unknown NLPD variant"):
      distances.nlpd(x, y, variant="laparra2015")
    with self.assertRaisesRegex(ValueError, "Unknown NLPD colour mode"):
      distances.nlpd(x, y, color="yuv")
    with self.assertRaisesRegex(ValueError, "num_levels must be"):
      distances.nlpd(x, y, num_levels=7)
    with self.assertRaisesRegex(ValueError, "num_levels must be"):
      distances.nlpd(x, y, num_levels=0)
    with self.assertRaisesRegex(ValueError, "1 or 3 channels"):
      distances.nlpd(x[..., :2], y[..., :2])


if __name__ == "__main__":
  tf.test.main()
