"""The image experiments' model cache keys follow the bytes of the data
files, not their names (issue 18): other images under the same names must
train other models, and the same images must find the cached ones."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from tfc_perception.experiments import _images
from tfc_perception.experiments import runner


class _Stop(Exception):
  """Raised by the recording cache in place of training."""


@pytest.fixture
def first_key(monkeypatch):
  """Runs a tiny experiment up to its first model: returns that model's
  cache key config, without training anything."""
  keys = []

  def record(self, key_config, *args, **kwargs):
    del self, args, kwargs
    keys.append(key_config)
    raise _Stop()
  monkeypatch.setattr(runner.RunContext, "cached_model", record)
  monkeypatch.setattr(runner.RunContext, "run_training", record)

  def run(name, out, **overrides):
    with pytest.raises(_Stop):
      runner.run_experiment(name, "tiny", str(out), overrides=overrides,
                            verbose=False)
    return keys[-1]
  return run


def _rewrite(path, seed):
  """Other pixels in the same file (name and format kept)."""
  rng = np.random.default_rng(seed)
  im = np.asarray(Image.open(path).convert("RGB")).astype(np.int16)
  im = np.clip(im + rng.integers(-40, 41, im.shape), 0, 255).astype(np.uint8)
  Image.fromarray(im).save(path)


def _small_images(folder, n):
  os.makedirs(folder)
  rng = np.random.default_rng(1)
  for i in range(n):
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
        os.path.join(folder, f"{i:03d}.png"))
  return str(folder)


@pytest.mark.parametrize("name,changed,overrides", [
    ("contrast", "kodim02.png", {}),  # a training image of the family
    ("scarce_data", "kodim03.png", {"data": ["natural"]}),  # training image
    ("nlpd_vs_mse", "kodim02.png", {}),  # a training image
    ("nlpd_vs_mse", "kodim01.png", {}),  # the test image of its MSE curve
])
def test_kodak_experiments_key_on_contents(tmp_path, kodak_like, first_key,
                                           name, changed, overrides):
  images = str(tmp_path / "kodak")
  shutil.copytree(kodak_like, images)
  overrides = dict(overrides,
                   test_images=os.path.join(images, "kodim01.png"),
                   train_images=os.path.join(images, "kodim0[23].png"))
  key = first_key(name, tmp_path / "a", **overrides)
  assert first_key(name, tmp_path / "b", **overrides) == key
  _rewrite(os.path.join(images, changed), seed=7)
  other = first_key(name, tmp_path / "c", **overrides)
  assert sorted(os.listdir(images)) == sorted(os.listdir(kodak_like))
  assert runner.config_hash(other) != runner.config_hash(key)


def test_sensitivity_keys_on_contents(tmp_path, first_key):
  cfg = runner.get_experiment("sensitivity").configs["tiny"]
  images = _small_images(tmp_path / "imgs", cfg.num_train + cfg.num_eval)
  key = first_key("sensitivity", tmp_path / "a", images=images)
  assert first_key("sensitivity", tmp_path / "b", images=images) == key
  # Rewrite every image: whichever the split trains on has other bytes.
  for f in sorted(os.listdir(images)):
    _rewrite(os.path.join(images, f), seed=3)
  other = first_key("sensitivity", tmp_path / "c", images=images)
  assert runner.config_hash(other) != runner.config_hash(key)


def test_trained_family_retrains_on_other_images_under_the_same_names(
    tmp_path, kodak_like, monkeypatch):
  # The real cache path of the factorized family (trained_family ->
  # RunContext.cached_model, done.json, reload); training and the
  # SavedModel are replaced by a record of what was trained, to keep this
  # test at a second (the models' own tests cover training and saving).
  trained = []

  def fake_train(spec, train_files, *args, **kwargs):
    del args, kwargs
    trained.append(spec["lmbda"])
    return {"lmbda": spec["lmbda"], "files": len(train_files)}, {}

  def save(model, path):
    os.makedirs(path)
    with open(os.path.join(path, "model.txt"), "w") as f:
      f.write(repr(model))

  def load(path):
    with open(os.path.join(path, "model.txt")) as f:
      return eval(f.read())  # pylint: disable=eval-used
  monkeypatch.setattr(_images, "train_compression_model", fake_train)
  monkeypatch.setattr(runner, "_default_save", save)
  monkeypatch.setattr(runner, "_default_load", load)
  images = str(tmp_path / "kodak")
  shutil.copytree(kodak_like, images)
  files = [os.path.join(images, f) for f in ("kodim02.png", "kodim03.png")]
  train = _images.ImageTrain(num_filters=4, latent_channels=4, patchsize=32,
                             batch_size=1, steps=1, learning_rate=1e-3,
                             run_eagerly=True)
  exp = runner.Experiment("cache_keys_test", lambda ctx: {}, {})

  def family_source():
    ctx = runner.RunContext(exp, None, str(tmp_path / "out"),
                            str(tmp_path / "models"), verbose=False)
    family = _images.trained_family(ctx, train, [3], ["mse"], files)
    assert family[("mse", 3)]["files"] == 2
    return ctx.model_records[0]["source"]
  assert family_source() == "trained"
  assert family_source() == "cache"
  _rewrite(files[0], seed=11)
  assert family_source() == "trained"
  assert family_source() == "cache"
  assert len(trained) == 2
  assert len(os.listdir(tmp_path / "models")) == 2
