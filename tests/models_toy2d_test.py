"""Tests of the 2-D compressive autoencoder (Fig. 10), the registry and
save/load (tfc_perception.models)."""

import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfc_perception import models
from tfc_perception.models import toy2d


def _samples(n=512, seed=0):
  # Heavy-tailed 2-D samples (Student-t like: normal / sqrt(chi2/nu)).
  rng = np.random.default_rng(seed)
  z = rng.standard_normal((n, 2))
  w = np.sqrt(rng.chisquare(3, size=(n, 1)) / 3)
  return (z / w).astype(np.float32)


def _small(**kwargs):
  kwargs.setdefault("widths", 16)
  kwargs.setdefault("depth", 2)
  kwargs.setdefault("seed", 1)
  return models.build_model("toy2d", **kwargs)


@pytest.fixture(scope="module")
def trained():
  x = _samples()
  model = _small(lmbda=2.0)
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-2))
  before = model.evaluate(x, batch_size=512, verbose=0, return_dict=True)
  ds = tf.data.Dataset.from_tensor_slices(x).shuffle(512, seed=0).batch(
      64).repeat()
  history = model.fit(ds, epochs=2, steps_per_epoch=60, verbose=0)
  after = model.evaluate(x, batch_size=512, verbose=0, return_dict=True)
  return model, x, before, after, history


def test_training_lowers_the_loss_and_logs_rate_and_distortion(trained):
  model, _, before, after, history = trained
  assert set(history.history) == {"loss", "rate", "distortion"}
  assert after["loss"] < 0.7 * before["loss"], (before, after)
  # Eq. 3 holds for the logged metrics (test-time, hard quantisation).
  assert after["loss"] == pytest.approx(
      after["rate"] + model.lmbda * after["distortion"], rel=1e-4)
  assert model.rate_unit == "bits/sample"
  assert after["rate"] > 0


def test_compress_decompress_equals_reconstruct(trained):
  model, x, _, _, _ = trained
  model.finalize()
  (strings,) = model.compress(x[:64])
  assert strings.dtype == tf.string and strings.shape == (64,)
  decoded = model.decompress(strings)
  np.testing.assert_array_equal(decoded.numpy(),
                                model.reconstruct(x[:64]).numpy())
  # The test-time quantiser is rounding to integers.
  y_hat = model.quantize(model.analysis(x[:64]))
  np.testing.assert_array_equal(y_hat.numpy(), np.round(y_hat.numpy()))
  # The real code lengths follow the estimated rate (within range coder
  # overhead: at most a few bytes per sample for these tiny strings).
  _, bits = model(x[:64], training=False)
  actual = sum(len(s) for s in strings.numpy()) * 8
  assert actual >= 0.9 * float(tf.reduce_sum(bits))
  assert actual <= float(tf.reduce_sum(bits)) + 64 * 24


def test_save_load_gives_identical_bitstreams(trained, tmp_path):
  model, x, _, _, _ = trained
  fingerprint = models.save_model(model, tmp_path / "toy")
  loaded = models.load_model(tmp_path / "toy")
  assert isinstance(loaded, toy2d.Toy2DCompressor)
  assert loaded.fingerprint() == fingerprint == model.fingerprint()
  assert loaded.get_config()["widths"] == [16, 16]
  (a,) = model.compress(x[:32])
  (b,) = loaded.compress(x[:32])  # No extra step after loading.
  assert a.numpy().tolist() == b.numpy().tolist()
  np.testing.assert_array_equal(loaded.decompress(a).numpy(),
                                model.reconstruct(x[:32]).numpy())
  # Replacing an existing export (overwrite=True) stays loadable.
  models.save_model(loaded, tmp_path / "toy", overwrite=True)
  assert models.load_model(tmp_path / "toy").fingerprint() == fingerprint


def test_load_rejects_missing_or_tampered_directories(trained, tmp_path):
  model, _, _, _, _ = trained
  with pytest.raises(FileNotFoundError, match="no saved model"):
    models.load_model(tmp_path / "nothing")
  models.save_model(model, tmp_path / "m")
  models.save_model(_small(lmbda=2.0, seed=7), tmp_path / "other")
  # The other model's weights under this model's model.json.
  shutil.rmtree(tmp_path / "m" / "variables")
  shutil.copytree(tmp_path / "other" / "variables", tmp_path / "m" / "variables")
  with pytest.raises(ValueError, match="fingerprint"):
    models.load_model(tmp_path / "m")


def test_density_weighted_distortion_trains_with_density_fn():
  density = lambda x: tf.exp(-tf.reduce_sum(x ** 2, axis=-1) / 2) / (2 * np.pi)
  model = _small(distortion="density_mse", density_fn=density, lmbda=50.0)
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-2))
  x = _samples(256)
  history = model.fit(x, batch_size=64, epochs=2, verbose=0)
  assert np.isfinite(history.history["loss"]).all()
  assert history.history["loss"][-1] < history.history["loss"][0]
  with pytest.raises(ValueError, match="density_fn"):
    _small(distortion="inverse_density_mse")


def test_config_options_and_registry():
  model = models.build_model("toy2d", widths=[8, 12], activation="relu",
                             latent_dims=3, seed=0)
  assert model.get_config()["widths"] == [8, 12]
  assert model.analysis(_samples(4)).shape == (4, 3)
  assert model.synthesis(tf.zeros([4, 3])).shape == (4, 2)
  assert set(models.registered_models()) >= {"toy2d", "factorized",
                                             "softquant"}
  # None means "the default": such arguments of other models are dropped;
  # a value for one the model does not take is a TypeError (test below).
  assert models.build_model("toy2d", num_filters=None, widths=4,
                            depth=1).depth == 1
  # Same seed, same weights.
  a, b = _small(seed=3), _small(seed=3)
  for va, vb in zip(a.weights, b.weights):
    np.testing.assert_array_equal(va.numpy(), vb.numpy())


@pytest.mark.parametrize("kwargs, error, match", [
    ({"distortion": "nope"}, ValueError, "Unknown distortion"),
    ({"distortion": "msssim"}, ValueError, "images only"),
    ({"lmbda": 0.0}, ValueError, "lmbda"),
    ({"lmbda": -1.0}, ValueError, "lmbda"),
    ({"activation": "cubic"}, ValueError, "activation"),
    ({"widths": [4, 4], "depth": 5}, ValueError, "depth"),
    ({"quality": 3}, ValueError, "quality"),
])
def test_bad_arguments(kwargs, error, match):
  with pytest.raises(error, match=match):
    models.build_model("toy2d", **kwargs)


def test_unknown_model_name():
  with pytest.raises(ValueError, match="Unknown model 'nope'.*toy2d"):
    models.build_model("nope")


def test_a_typo_in_an_argument_is_a_type_error():
  """Issue 12: build_model(num_filter=8) warned and built N=128."""
  with pytest.raises(TypeError, match=r"build_model\('factorized'\) got "
                     r"unexpected argument\(s\) num_filter; accepted: .*"
                     r"latent_channels, .*num_filters"):
    models.build_model("factorized", num_filter=8)
  with pytest.raises(TypeError, match="num_filters; accepted: activation"):
    models.build_model("toy2d", num_filters=8)


def test_bad_inputs():
  model = _small()
  with pytest.raises(ValueError, match=r"shape \[N, 2\]"):
    model.analysis(np.zeros((4, 3), np.float32))
  model.finalize()
  with pytest.raises(ValueError, match="NaN"):
    model.compress(np.array([[0.0, np.nan]], np.float32))
  with pytest.raises(ValueError, match="floating point"):
    model.reconstruct(np.zeros((4, 2), np.int32))
  with pytest.raises(ValueError, match="tf.string"):
    model.decompress(tf.zeros([3]))
