"""Tests of finalize() and the traced codecs (tfc_perception.models.coding),
and of the SavedModel format of save_model: plain TensorFlow with
tensorflow_compression, without tfc_perception, codes images with it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO_ROOT
from conftest import shared_path
from tfc_perception import models
from tfc_perception.models import factorized


def _images(n, h, w, seed=0):
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  base = np.stack([128 + 90 * np.sin(xx / 4.0 + c) * np.cos(yy / 6.0)
                   for c in range(3)], -1)
  return np.clip(base + rng.normal(0, 10, (n, h, w, 3)), 0,
                 255).astype(np.uint8)


def _factorized(seed=1):
  model = models.build_model("factorized", num_filters=8, latent_channels=8,
                             seed=seed)
  for v in model.analysis_transform.trainable_variables:
    if "layer_3" in v.name and "kernel" in v.name:
      v.assign(v * 6.0)  # Latents spanning several quantisation bins.
  return model


def test_traced_functions_take_any_size_and_batch_without_retracing():
  model = _factorized().finalize()
  assert model.traced_compress.input_signature == (
      tf.TensorSpec([None, None, None, 3], tf.uint8, name="image"),)
  assert [s.shape.as_list() for s in
          model.traced_decompress.input_signature] == [[None], [2], [2]]
  for n, h, w in ((1, 17, 23), (3, 40, 33), (2, 1, 1), (1, 64, 48)):
    x = _images(n, h, w, seed=h)
    strings, x_shape, y_shape = model.compress(x)
    assert strings.shape == (n,)
    assert x_shape.numpy().tolist() == [h, w]
    decoded = model.decompress(strings, x_shape, y_shape)
    np.testing.assert_array_equal(decoded.numpy(),
                                  model.reconstruct(x).numpy())
    # Each example of a batch is its own bit-string.
    single = model.compress(x[-1:])[0].numpy()[0]
    assert single == strings.numpy()[-1]
  for fn in (model.traced_compress, model.traced_decompress,
             model.traced_reconstruct):
    assert fn.experimental_get_tracing_count() == 1, fn


def test_finalize_builds_tables_that_travel_with_the_weights():
  a = _factorized().finalize()
  b = _factorized(seed=7)
  assert not b.is_finalized()
  with pytest.raises(ValueError, match="no range coding tables"):
    b.compress(_images(1, 16, 16))
  b.set_weights(a.get_weights())  # Tables and digest come along.
  assert b.is_finalized()
  x = _images(2, 30, 20)
  assert (a.compress(x)[0].numpy() == b.compress(x)[0].numpy()).all()
  # Changing the prior (not the transforms) makes the tables stale.
  b.prior.trainable_variables[0].assign_add(
      tf.ones_like(b.prior.trainable_variables[0]) * 0.1)
  assert not b.is_finalized()
  with pytest.raises(ValueError, match="changed since finalize"):
    b.compress(x)


def test_load_restores_the_saved_tables(tmp_path, monkeypatch):
  """load_model of a SavedModel restores the tables saved with the weights
  (no recomputation); a release-1 model gets them from finalize()."""
  model = _factorized()
  models.save_model(model, tmp_path / "m")
  info = json.load(open(tmp_path / "m" / "model.json"))
  assert info["format_version"] == 2
  assert info["signatures"] == ["compress", "decompress"]
  for entry in ("saved_model.pb", "variables", "model.json"):
    assert os.path.exists(tmp_path / "m" / entry)
  x = _images(1, 45, 38)
  expected = model.compress(x)[0].numpy()

  def refuse(self):
    raise AssertionError("load_model must not rebuild saved tables")

  monkeypatch.setattr(factorized.FactorizedPrior, "finalize", refuse)
  loaded = models.load_model(tmp_path / "m")
  assert loaded.is_finalized()
  assert (loaded.compress(x)[0].numpy() == expected).all()
  for v, w in zip(loaded.table_variables(), model.table_variables()):
    np.testing.assert_array_equal(v.numpy(), w.numpy())


_NO_PROJECT = r"""
import sys


class _Refuse:
  # tfc_perception may be installed in this environment: make any import of
  # it fail, so that nothing in the SavedModel can depend on it.
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] == "tfc_perception":
      raise ImportError("tfc_perception must not be needed here")


sys.meta_path.insert(0, _Refuse())
"""

_PLAIN_TF = _NO_PROJECT + r"""
import sys
import numpy as np
import tensorflow as tf
import tensorflow_compression  # the range coder ops
root = sys.argv[1]
for name in sys.argv[2:]:
  m = tf.saved_model.load(f"{root}/{name}")
  for key in ("a", "b"):
    x = np.load(f"{root}/{key}.npy")
    strings, x_shape, y_shape = m.compress(x)
    out = m.decompress(strings, x_shape, y_shape).numpy()
    assert out.dtype == np.uint8 and out.shape == x.shape
    np.testing.assert_array_equal(
        out, np.load(f"{root}/{name}-{key}-reconstruct.npy"))
    # The same through the signatures (what serving tools call).
    sig = m.signatures["decompress"](strings=strings, x_shape=x_shape,
                                     y_shape=y_shape)
    np.testing.assert_array_equal(sig["output_0"].numpy(), out)
  print(name, "ok")
assert not any(k.startswith("tfc_perception") for k in sys.modules)
print("without tfc_perception")
"""


@pytest.mark.slow
def test_saved_models_code_images_in_plain_tensorflow(tmp_path):
  """tf.saved_model.load in a process that imports tensorflow_compression
  but not tfc_perception compresses and decompresses images (a batch of 2 of
  an odd size, and one image), identically to the project's reconstruct."""
  inputs = {"a": _images(2, 37, 29), "b": _images(1, 80, 65, seed=1)}
  for key, x in inputs.items():
    np.save(tmp_path / f"{key}.npy", x)
  for name, model in (
      ("factorized", _factorized()),
      ("softquant", models.build_model("softquant", num_filters=8,
                                       latent_channels=8, num_centers=2,
                                       seed=3))):
    models.save_model(model, tmp_path / name)
    for key, x in inputs.items():
      np.save(tmp_path / f"{name}-{key}-reconstruct.npy",
              model.reconstruct(x).numpy())
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("PYTHONPATH", None)
  out = subprocess.run([sys.executable, "-c", _PLAIN_TF, str(tmp_path),
                        "factorized", "softquant"], capture_output=True,
                       text=True, env=env, timeout=600, cwd=str(tmp_path))
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.split() == ["factorized", "ok", "softquant", "ok",
                                "without", "tfc_perception"]


_KODIM23 = _NO_PROJECT + r"""
import sys
import numpy as np
import tensorflow as tf
import tensorflow_compression
m = tf.saved_model.load(sys.argv[1])
x = tf.io.decode_png(tf.io.read_file(sys.argv[2]), channels=3)[None]
strings, x_shape, y_shape = m.compress(x)
out = m.decompress(strings, x_shape, y_shape)
tf.io.write_file(sys.argv[3], tf.io.encode_png(out[0]))
assert not any(k.startswith("tfc_perception") for k in sys.modules)
print(len(strings.numpy()[0]))
"""


@pytest.mark.slow
def test_bin_train_export_round_trips_kodim23_in_plain_tensorflow(tmp_path):
  """The issue's acceptance test: a model trained with bin/train is saved as
  a SavedModel, and plain TensorFlow (no tfc_perception) compresses and
  decompresses kodim23 with it, identically to load_model's reconstruct."""
  kodim23 = shared_path("kodak", "kodim23.png")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  train = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "bin", "train"),
       "--model=factorized", "--num_filters=8", "--latent_channels=8",
       f"--data={os.path.dirname(kodim23)}", "--patchsize=64",
       "--batchsize=4", "--epochs=1", "--steps_per_epoch=5", "--lambda=0.01",
       f"--train_dir={tmp_path / 'run'}", f"--export={tmp_path / 'model'}",
       "--noprogress"],
      capture_output=True, text=True, env=env, timeout=600)
  assert train.returncode == 0, train.stderr[-3000:]
  env.pop("PYTHONPATH", None)
  plain = subprocess.run(
      [sys.executable, "-c", _KODIM23, str(tmp_path / "model"), kodim23,
       str(tmp_path / "out.png")],
      capture_output=True, text=True, env=env, timeout=600, cwd=str(tmp_path))
  assert plain.returncode == 0, plain.stderr[-3000:]
  model = models.load_model(tmp_path / "model")
  image = tf.io.decode_png(tf.io.read_file(kodim23), channels=3).numpy()
  decoded = tf.io.decode_png(tf.io.read_file(str(tmp_path / "out.png")))
  np.testing.assert_array_equal(decoded.numpy(),
                                model.reconstruct(image[None]).numpy()[0])
  assert int(plain.stdout) == len(model.compress(image[None])[0].numpy()[0])


def test_density_models_use_the_same_storage_and_read_version_1(tmp_path):
  """One model format: density models are a model.json beside a SavedModel
  of their weights too; the model.json + weights.npz directories that
  save_density_model wrote before are still read."""
  dae = models.build_density_model("dae", dims=2, hidden=[4], seed=1)
  path = models.save_density_model(dae, str(tmp_path / "dae"))
  assert sorted(os.listdir(path)) == ["assets", "fingerprint.pb", "model.json",
                                      "saved_model.pb", "variables"]
  assert json.load(open(os.path.join(path, "model.json")))[
      "format_version"] == 2
  x = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
  np.testing.assert_array_equal(models.load_density_model(path)(x), dae(x))
  old = tmp_path / "v1"
  old.mkdir()
  np.savez(old / "weights.npz",
           **{f"w{i:04d}": v.numpy() for i, v in enumerate(dae.weights)})
  (old / "model.json").write_text(json.dumps({
      "format": "tfc_perception.density_model", "format_version": 1,
      "model": "dae", "class": "DenoisingAutoencoder",
      "config": dae.get_config()}))
  np.testing.assert_array_equal(models.load_density_model(str(old))(x),
                                dae(x))
