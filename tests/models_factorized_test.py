"""Tests of the factorized-prior image model (Fig. 15)."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import kodak_image
from tfc_perception import codec
from tfc_perception import models
from tfc_perception.models import factorized


def _kodak():
  """kodim01, or a synthetic photo of its size without ../shared."""
  return kodak_image("kodim01.png")


def _crops(image, size, count, seed=0):
  rng = np.random.default_rng(seed)
  h, w = image.shape[:2]
  out = []
  for _ in range(count):
    i, j = rng.integers(0, h - size), rng.integers(0, w - size)
    out.append(image[i:i + size, j:j + size])
  return np.stack(out)


@pytest.fixture(scope="module")
def trained():
  """N=16, M=16 model trained briefly (120 steps, 8 x 64x64 Kodak crops)."""
  image = _kodak()
  train = _crops(image, 64, 64, seed=0)
  held_out = _crops(image, 64, 8, seed=1)
  model = models.build_model("factorized", lmbda=0.01, num_filters=16,
                             latent_channels=16, seed=0)
  model.compile(optimizer=tf.keras.optimizers.Adam(3e-3))
  before = model.evaluate(held_out, batch_size=8, verbose=0, return_dict=True)
  ds = tf.data.Dataset.from_tensor_slices(train).shuffle(64, seed=0).batch(
      8).repeat()
  model.fit(ds, epochs=3, steps_per_epoch=40, verbose=0)
  after = model.evaluate(held_out, batch_size=8, verbose=0, return_dict=True)
  model.finalize()  # Range coding tables of the trained prior.
  return model, image, held_out, before, after


def test_training_lowers_the_loss(trained):
  model, _, _, before, after = trained
  assert after["loss"] < 0.7 * before["loss"], (before, after)
  assert after["loss"] == pytest.approx(
      after["rate"] + model.lmbda * after["distortion"], rel=1e-4)
  assert model.rate_unit == "bpp"


def test_logged_distortion_is_mse_on_the_255_scale(trained):
  model, _, held_out, _, _ = trained
  x_hat, bits = model(held_out, training=False)
  expected = np.mean((held_out.astype(np.float64)
                      - 255.0 * x_hat.numpy().astype(np.float64)) ** 2)
  metrics = model.evaluate(held_out, batch_size=8, verbose=0,
                           return_dict=True)
  assert metrics["distortion"] == pytest.approx(expected, rel=1e-4)
  assert metrics["rate"] == pytest.approx(
      float(tf.reduce_mean(bits)) / (64 * 64), rel=1e-4)


def test_actual_file_size_matches_estimated_rate_on_kodak(trained):
  model, image, _, _, _ = trained
  crop = image[:256, :256]
  _, bits = model(crop[None], training=False)
  estimated_bytes = float(bits[0]) / 8
  data = codec.encode(model, crop)
  (string,), _, _ = model.compress(crop[None])
  # The range-coded string is within 1% of the entropy model's estimate...
  assert abs(len(string.numpy()) - estimated_bytes) <= 0.01 * estimated_bytes
  # ... and the .tfci file adds a container of about 120 bytes: model name
  # (19 bytes), shapes, fingerprint (16), checksum (4) and the protobuf
  # framing of each (123 bytes here; 0.0025 bpp on a Kodak image).
  header = len(data) - len(string.numpy())
  assert 100 <= header <= 140, header
  assert len(data) - header <= 1.01 * estimated_bytes


@pytest.mark.parametrize("height, width", [(27, 19), (1, 1), (33, 64)])
def test_decompress_equals_reconstruct_for_odd_sizes(trained, height, width):
  model, image, _, _, _ = trained
  x = np.stack([image[5:5 + height, 7:7 + width],
                image[100:100 + height, 3:3 + width]])
  strings, x_shape, y_shape = model.compress(x)
  assert x_shape.numpy().tolist() == [height, width]
  assert y_shape.numpy().tolist() == [-(-height // 16), -(-width // 16)]
  decoded = model.decompress(strings, x_shape, y_shape)
  assert decoded.dtype == tf.uint8 and decoded.shape == x.shape
  np.testing.assert_array_equal(decoded.numpy(), model.reconstruct(x).numpy())
  # Float input in [0, 1] is the same image.
  np.testing.assert_array_equal(
      model.reconstruct(x.astype(np.float32) / 255).numpy(),
      decoded.numpy())


def test_save_load_compress_is_identical(trained, tmp_path):
  model, image, _, _, _ = trained
  x = image[None, 40:90, 60:121]
  models.save_model(model, tmp_path / "fp")
  loaded = models.load_model(tmp_path / "fp")
  assert isinstance(loaded, factorized.FactorizedPrior)
  a = model.compress(x)
  b = loaded.compress(x)  # First call after loading: no table update step.
  assert a[0].numpy().tolist() == b[0].numpy().tolist()
  np.testing.assert_array_equal(loaded.decompress(*a).numpy(),
                                model.reconstruct(x).numpy())


def test_stale_tables_are_refused_until_finalize(trained):
  """Tables are built by finalize() only: after more training compress and
  decompress refuse to run (never silently with the old tables), in Python
  and in the traced functions, until finalize() is called again."""
  model, image, held_out, _, _ = trained
  clone = models.build_model("factorized", lmbda=0.01, num_filters=16,
                             latent_channels=16)
  clone.set_weights(model.get_weights())  # Tables and digest included.
  assert clone.is_finalized()
  x = image[None, :48, :48]
  before = clone.compress(x)
  assert before[0].numpy().tolist() == model.compress(x)[0].numpy().tolist()
  clone.compile(optimizer=tf.keras.optimizers.Adam(1e-2))
  clone.fit(held_out[:4, :32, :32], batch_size=4, epochs=1, verbose=0)
  assert not clone.is_finalized()
  with pytest.raises(ValueError, match=r"changed since finalize\(\)"):
    clone.compress(x)
  with pytest.raises(ValueError, match=r"changed since finalize\(\)"):
    clone.decompress(*before)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"changed since finalize\(\)"):
    clone.traced_compress(tf.constant(x))
  clone.finalize()
  after = clone.compress(x)
  assert after[0].numpy().tolist() != before[0].numpy().tolist()
  np.testing.assert_array_equal(clone.decompress(*after).numpy(),
                                clone.reconstruct(x).numpy())


def test_quality_levels_follow_the_paper():
  assert factorized.quality_config(1, "mse") == dict(
      num_filters=128, latent_channels=192, quality=1, lmbda=0.0018,
      distortion="mse")
  assert factorized.quality_config(5, "msssim")["lmbda"] == 31.73
  assert factorized.quality_config(6, "ms_ssim")["latent_channels"] == 320
  assert factorized.quality_config(8, "mse")["lmbda"] == 0.18
  small = models.build_model("factorized", quality=7, distortion="msssim",
                             num_filters=8, latent_channels=8)
  assert (small.lmbda, small.distortion, small.quality) == (115.37, "msssim",
                                                           7)
  assert small.num_filters == 8  # Explicit N/M override the table's.


@pytest.mark.parametrize("kwargs, match", [
    ({"quality": 0}, "quality must be an integer in 1..8"),
    ({"quality": 9}, "quality must be an integer in 1..8"),
    ({"quality": 3, "lmbda": 0.1}, "either quality or lmbda"),
    ({"quality": 3, "distortion": "nlpd"}, "no lambda table"),
    ({"lmbda": 0}, "lmbda"),
    ({"distortion": "l1"}, "Unknown distortion 'l1'; accepted: mse, psnr"),
    ({"distortion": "density_mse"}, "vectors .2-D sources. only"),
    ({"num_filters": 0}, "num_filters"),
])
def test_bad_arguments(kwargs, match):
  kwargs.setdefault("num_filters", 8)
  kwargs.setdefault("latent_channels", 8)
  with pytest.raises(ValueError, match=match):
    models.build_model("factorized", **kwargs)


def test_bad_inputs():
  model = models.build_model("factorized", num_filters=4, latent_channels=4)
  with pytest.raises(ValueError, match="4 channels; accepted: 3"):
    model.compress(np.zeros((1, 16, 16, 4), np.uint8))
  with pytest.raises(ValueError, match="rank 4"):
    model.reconstruct(np.zeros((16, 16, 3), np.uint8))
  with pytest.raises(ValueError, match="NaN"):
    bad = np.zeros((1, 16, 16, 3), np.float32)
    bad[0, 3, 3, 1] = np.nan
    model.analysis(bad)
  with pytest.raises(ValueError, match="compress codes 8-bit images"):
    model.compress(np.full((1, 16, 16, 3), 0.5, np.float32))
  with pytest.raises(ValueError, match="no range coding tables.*finalize"):
    model.compress(np.zeros((1, 20, 20, 3), np.uint8))
  model.finalize()
  strings, x_shape, y_shape = model.compress(np.zeros((1, 20, 20, 3),
                                                      np.uint8))
  with pytest.raises(ValueError, match="inconsistent shapes"):
    model.decompress(strings, [20, 40], y_shape)
  with pytest.raises(ValueError, match="tf.string"):
    model.decompress(tf.zeros([1]), x_shape, y_shape)
  with pytest.raises(ValueError, match="more than max_pixels=399"):
    model.decompress(strings, x_shape, y_shape, max_pixels=399)
  with pytest.raises(ValueError, match="not an image compression model"):
    codec.encode(models.build_model("toy2d", widths=4), np.zeros((8, 8, 3),
                                                                 np.uint8))


def test_nan_in_training_data_is_a_clear_error():
  model = models.build_model("factorized", num_filters=4, latent_channels=4)
  bad = np.zeros((2, 16, 16, 3), np.float32)
  bad[1, 0, 0, 0] = np.nan
  model.compile(optimizer="adam", run_eagerly=True)
  with pytest.raises(ValueError, match="NaN"):
    model.fit(bad, batch_size=2, epochs=1, verbose=0)
