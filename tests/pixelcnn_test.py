"""Tests of the PixelCNN++ density model (Obs. 1): a normalised discrete
likelihood, the input conventions, Keras training and save/load."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfc_perception import models
from tfc_perception.models import pixelcnn

_TINY = dict(num_resnet=1, num_hierarchies=1, num_filters=8,
             num_logistic_mix=2, dropout_p=0.0, use_weight_norm=False)


def _tiny(shape=(8, 8, 3), **kw):
  return pixelcnn.PixelCNN(image_shape=shape, seed=0, **dict(_TINY, **kw))


def test_single_pixel_distribution_sums_to_one():
  # With one pixel there is no context: p is a distribution over 0..255.
  model = _tiny(shape=(1, 1, 1))
  values = np.arange(256, dtype=np.uint8).reshape(256, 1, 1, 1)
  p = np.exp(model.log_prob(values).numpy().astype(np.float64))
  assert p.shape == (256,)
  assert np.all(p > 0)
  assert abs(p.sum() - 1.0) < 1e-3


def test_log_prob_conventions():
  model = _tiny()
  x = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
  lp = model.log_prob(x).numpy()
  assert lp.shape == (3,) and np.all(np.isfinite(lp)) and np.all(lp < 0)
  # float input in [0, 1] is the same image.
  np.testing.assert_allclose(model.log_prob(x.astype(np.float32) / 255).numpy(),
                             lp, rtol=1e-5)
  np.testing.assert_allclose(model.bits_per_dim(x).numpy(),
                             -lp / (8 * 8 * 3 * math.log(2)), rtol=1e-5)
  np.testing.assert_allclose(model(x).numpy(), lp, rtol=1e-5)
  # An untrained model is close to uniform: ~8 bits per sub-pixel.
  assert 6 < float(np.mean(model.bits_per_dim(x))) < 11


@pytest.mark.parametrize("bad,match", [
    (np.zeros((2, 4, 8, 3), np.uint8), "shape"),
    (np.zeros((2, 8, 8, 1), np.uint8), "channels"),
    (np.zeros((8, 8, 3), np.uint8), "rank 4"),
    (np.full((2, 8, 8, 3), 300.0, np.float32), "outside"),
])
def test_log_prob_rejects_bad_input(bad, match):
  with pytest.raises(ValueError, match=match):
    _tiny().log_prob(bad)


@pytest.mark.parametrize("kwargs,match", [
    ({"image_shape": (8, 8)}, "image_shape"),
    ({"num_filters": 0}, "num_filters"),
    ({"dropout_p": 1.0}, "dropout_p"),
    ({"receptive_field_dims": (3, 2)}, "odd"),
    ({"resnet_activation": "tanh"}, "resnet_activation"),
    ({"image_shape": (6, 6, 3), "num_hierarchies": 3}, "divisible"),
])
def test_constructor_validates(kwargs, match):
  args = dict(_TINY, image_shape=(8, 8, 3))
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    pixelcnn.PixelCNN(**args)


def _smooth_images(n, seed):
  # Nearly constant images: easy to model, so training must reduce bits/dim.
  rng = np.random.default_rng(seed)
  base = rng.integers(60, 200, (n, 1, 1, 3))
  x = base + rng.integers(-2, 3, (n, 8, 8, 3))
  return np.clip(x, 0, 255).astype(np.uint8)


def test_fit_lowers_heldout_bits_per_dim_and_save_load(tmp_path):
  model = _tiny()
  train = _smooth_images(64, 0)
  heldout = _smooth_images(16, 1)
  before = float(np.mean(model.bits_per_dim(heldout)))
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-2))
  hist = model.fit(tf.data.Dataset.from_tensor_slices(train).batch(16).repeat(),
                   steps_per_epoch=25, epochs=1, verbose=0)
  assert set(hist.history) == {"loss", "bits_per_dim"}
  after = model.evaluate(tf.data.Dataset.from_tensor_slices(heldout).batch(16),
                         verbose=0, return_dict=True)["bits_per_dim"]
  assert after < before - 1.0, (before, after)
  # Through the density registry: build / save / load (not a codec).
  assert "pixelcnn" in models.density_models()
  assert "pixelcnn" not in models.registered_models()
  path = str(tmp_path / "pcnn")
  with pytest.raises(ValueError, match="density model, not a codec"):
    models.save_model(model, path)
  models.save_density_model(model, path)
  loaded = models.load_density_model(path)
  assert isinstance(loaded, pixelcnn.PixelCNN)
  np.testing.assert_allclose(loaded.log_prob(heldout).numpy(),
                             model.log_prob(heldout).numpy(), rtol=1e-5)
  assert loaded.get_config() == model.get_config()
  built = models.build_density_model("pixelcnn", image_shape=(8, 8, 3),
                                     **_TINY)
  assert isinstance(built, pixelcnn.PixelCNN)
