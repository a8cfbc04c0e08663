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


def _smooth(n, h, w, seed):
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  out = [np.stack([128 + 100 * np.sin(xx / rng.uniform(5, 20) + c)
                   * np.cos(yy / rng.uniform(5, 20)) for c in range(3)], -1)
         for _ in range(n)]
  return np.clip(np.stack(out), 0, 255).astype(np.uint8)


class BlockModel(tf.keras.Model):
  """The common interface with reconstructions NumPy reproduces exactly:
  y = 10.3 * (4x4 block means), Q = rounding, and x_hat = the 8-bit level
  (37 * y_hat mod 256) / 255 repeated over each block (exact in float32, so
  8-bit rounding of the output cannot flip a level)."""

  def analysis(self, x):
    if x.dtype == tf.uint8:
      x = tf.cast(x, tf.float32) / 255.0
    return 10.3 * tf.nn.avg_pool2d(x, 4, 4, "VALID")

  def quantize(self, y, training=False):
    del training
    return tf.round(y)

  def synthesis(self, y_hat):
    levels = tf.math.floormod(37.0 * y_hat, 256.0) / 255.0
    return tf.repeat(tf.repeat(levels, 4, axis=1), 4, axis=2)


def _numpy_reconstruction(x_uint8):
  """BlockModel's x_hat in NumPy, with induced's symmetric padding to a
  multiple of 16 and the crop back."""
  n, h, w, _ = x_uint8.shape
  x = np.pad(x_uint8.astype(np.float64) / 255.0,
             ((0, 0), (0, -h % 16), (0, -w % 16), (0, 0)), mode="symmetric")
  hh, ww = x.shape[1] // 4, x.shape[2] // 4
  y_hat = np.round(10.3 * x.reshape(n, hh, 4, ww, 4, 3).mean(axis=(2, 4)))
  x_hat = np.mod(37.0 * y_hat, 256.0) / 255.0
  return np.repeat(np.repeat(x_hat, 4, axis=1), 4, axis=2)[:, :h, :w]


def _reference(base, a, b):
  """Independent per-image references of the base distances (float64
  images in [0, 1])."""
  # pylint: disable=g-import-not-at-top
  from distances_nlpd_test import ref_nlpd2016, ref_nlpd2017
  mse = ((a - b) ** 2).reshape(len(a), -1).mean(1)
  if base == "mse":
    return mse
  if base == "psnr":
    return 10 * np.log10(1.0 / mse)
  if base == "msssim":
    return tf.image.ssim_multiscale(tf.constant(a, tf.float32),
                                    tf.constant(b, tf.float32), 1.0).numpy()
  grey = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
  if base == "nlpd":
    return np.array([ref_nlpd2016(u @ grey, v @ grey) for u, v in zip(a, b)])
  if base == "nlpd_rgb":
    return np.array([np.mean([ref_nlpd2016(u[..., c], v[..., c])
                              for c in range(3)]) for u, v in zip(a, b)])
  assert base == "nlpd2017"
  return np.array([np.mean([ref_nlpd2017(255 * u[..., c], 255 * v[..., c])
                            for c in range(3)]) for u, v in zip(a, b)])


@pytest.mark.parametrize("base, rtol", [
    ("mse", 1e-5), ("psnr", 1e-5), ("msssim", 1e-4), ("nlpd", 2e-4),
    ("nlpd_rgb", 2e-4), ("nlpd2017", 2e-4)])
def test_dr_and_ds_equal_numpy_reconstructions_under_each_base(base, rtol):
  # Dr = base(x_hat1, x_hat2) and Ds = base(x, x_hat) with x_hat rebuilt in
  # NumPy (padding, latent, rounding, crop) and the base distances from
  # independent references: NumPy MSE/PSNR, tf.image.ssim_multiscale and the
  # SciPy NLPD implementations of distances_nlpd_test.
  x1 = _smooth(2, 170, 180, seed=11)
  x2 = np.clip(x1.astype(np.int16) + np.random.default_rng(12).integers(
      -40, 41, x1.shape), 0, 255).astype(np.uint8)
  r = induced.induced_distances(BlockModel(), x1, x2, base=base)
  h1, h2 = _numpy_reconstruction(x1), _numpy_reconstruction(x2)
  f1, f2 = x1 / 255.0, x2 / 255.0
  assert np.abs(h1 - h2).max() > 0.1  # the reconstructions differ
  np.testing.assert_allclose(r["dr"], _reference(base, h1, h2), rtol=rtol)
  np.testing.assert_allclose(r["ds1"], _reference(base, f1, h1), rtol=rtol)
  np.testing.assert_allclose(r["ds2"], _reference(base, f2, h2), rtol=rtol)
  np.testing.assert_allclose(r["de"], _reference(base, f1, f2), rtol=rtol)


def test_forward_pass_is_one_traced_function_per_input_shape():
  model = TinyImageModel()
  x = np.random.default_rng(0).integers(0, 256, (2, 40, 48, 3), np.uint8)
  a = induced.model_outputs(model, x)
  induced.model_outputs(model, x[:, :, :32])
  b = induced.model_outputs(model, x)
  traced = induced._TRACED[model]  # pylint: disable=protected-access
  assert sorted(k[0] for k in traced) == [(2, 40, 32, 3), (2, 40, 48, 3)]
  assert all(f.experimental_get_tracing_count() == 1
             for f in traced.values())
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  # The numbers of the stages called eagerly one by one, to float
  # precision (the graph may order sums differently); an 8-bit level may
  # flip where a value sits on a rounding boundary.
  padded = tf.pad(x, [[0, 0], [0, 8], [0, 0], [0, 0]], "SYMMETRIC")
  y = model.analysis(padded)
  x_hat = model.synthesis(model.quantize(y))[:, :40]
  np.testing.assert_allclose(a["y"], y, rtol=1e-5, atol=1e-5)
  levels = np.round(a["x_hat"] * 255)
  eager = np.round(np.clip(x_hat, 0, 1) * 255)
  assert np.max(np.abs(levels - eager)) <= 1
  assert np.mean(levels == eager) > 0.99


_MIRRORED = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tfc_perception import induced, models
model = models.build_model("factorized", num_filters=8, latent_channels=8,
                           seed=1)
x = np.random.default_rng(0).integers(0, 256, (3, 48, 64, 3), np.uint8)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
a = induced.model_outputs(model, x)
b = induced.model_outputs(model, x, strategy=strategy)
for k in a:
  assert a[k].shape == b[k].shape, k
  np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-6, err_msg=k)
print("replicas", strategy.num_replicas_in_sync)
"""


def test_forward_pass_split_over_mirrored_replicas():
  # Two logical CPUs stand in for two GPUs; a batch of 3 is padded to 4.
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run([sys.executable, "-c", _MIRRORED], cwd=root,
                        env=dict(os.environ, PYTHONPATH=root),
                        capture_output=True, text=True, timeout=180)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "replicas 2" in proc.stdout
