"""Tests of tfc_perception.training: resume, image training, bad input."""

import json
import logging
import os

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf
from PIL import Image

from tfc_perception import models
from tfc_perception import training

TOY = dict(model="toy2d", data="student_t", lmbda=10.0, batchsize=16,
           epochs=2, steps_per_epoch=4, learning_rate=1e-3, seed=3,
           progress=False)
# A tiny factorized-prior model (N = M = 8) on 32x32 crops.
TINY_FP = dict(model="factorized", lmbda=0.01, num_filters=8,
               latent_channels=8, patchsize=32, batchsize=2, epochs=2,
               steps_per_epoch=2, learning_rate=1e-3, seed=1, progress=False)


class _Interrupted(Exception):
  pass


class _InterruptAfter(tf.keras.callbacks.Callback):
  """Simulates a crash after `steps` optimizer steps of this invocation."""

  def __init__(self, steps):
    super().__init__()
    self.steps, self.done = steps, 0

  def on_train_batch_end(self, batch, logs=None):
    self.done += 1
    if self.done == self.steps:
      raise _Interrupted(f"simulated interruption after {self.steps} steps")


class _Snapshot(tf.keras.callbacks.Callback):
  """Keeps the weights at the start of training."""

  def on_train_begin(self, logs=None):
    self.weights = [w.copy() for w in self.model.get_weights()]


def _write_images(folder, shapes, seed=0):
  rng = np.random.default_rng(seed)
  os.makedirs(folder, exist_ok=True)
  for i, shape in enumerate(shapes):
    # Smooth images (low-pass noise), so that the model can learn them.
    base = rng.normal(size=[s // 4 + 1 for s in shape[:2]] + [shape[2]])
    img = np.kron(base, np.ones([4, 4, 1]))[:shape[0], :shape[1]]
    img = np.clip(128 + 40 * img, 0, 255).astype(np.uint8)
    Image.fromarray(img.squeeze()).save(os.path.join(folder, f"{i:02d}.png"))
  return folder


def test_resume_after_interruption_ends_in_the_uninterrupted_state(tmp_path):
  full = training.train(dict(TOY, train_dir=str(tmp_path / "a")))
  assert [h["epoch"] for h in full.history] == [1, 2]
  assert int(full.model.optimizer.iterations.numpy()) == 8

  # Interrupted during epoch 2 (after 6 steps): the last checkpoint is the
  # end of epoch 1, step 4.
  with pytest.raises(_Interrupted):
    training.train(dict(TOY, train_dir=str(tmp_path / "b")),
                   callbacks=[_InterruptAfter(6)])
  assert tf.train.latest_checkpoint(str(tmp_path / "b" / "checkpoints")
                                    ).endswith("ckpt-1")
  snapshot = _Snapshot()
  resumed = training.train(dict(TOY, train_dir=str(tmp_path / "b")),
                           callbacks=[snapshot])
  assert resumed.initial_epoch == 1
  assert int(resumed.model.optimizer.iterations.numpy()) == 8
  assert [h["epoch"] for h in resumed.history] == [1, 2]

  # The restart did train (epoch 2 moved the weights) ...
  moved = max(np.max(np.abs(a - b)) for a, b in zip(
      resumed.model.get_weights(), snapshot.weights))
  assert moved > 1e-4
  # ... and ends where the uninterrupted run ended: weights, optimizer
  # moments and the logged metrics of every epoch.
  for a, b in zip(full.model.get_weights(), resumed.model.get_weights()):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  for a, b in zip(full.model.optimizer.variables,
                  resumed.model.optimizer.variables):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-8)
  for h_full, h_resumed in zip(full.history, resumed.history):
    for key in ("loss", "rate", "distortion"):
      np.testing.assert_allclose(h_full[key], h_resumed[key], rtol=1e-5)

  # Manifest next to the export, with the final metrics.
  manifest = json.load(open(resumed.manifest))
  assert resumed.manifest == str(tmp_path / "b" / "export") + ".manifest.json"
  assert manifest["resumed_from_epoch"] == 1
  assert manifest["global_step"] == 8
  assert manifest["config"]["lmbda"] == 10.0
  assert manifest["final_metrics"]["loss"] == pytest.approx(
      resumed.history[-1]["loss"])
  assert manifest["versions"]["tensorflow_compression"]

  # Training a finished run again does nothing but export.
  again = training.train(dict(TOY, train_dir=str(tmp_path / "b")))
  assert again.initial_epoch == 2 and len(again.history) == 2


def test_different_seed_gives_a_different_run(tmp_path):
  # The equality above is not vacuous: the seed changes data, init, noise.
  a = training.train(dict(TOY, epochs=1, steps_per_epoch=1,
                          train_dir=str(tmp_path / "a")))
  b = training.train(dict(TOY, epochs=1, steps_per_epoch=1, seed=4,
                          train_dir=str(tmp_path / "b")))
  assert a.history[0]["loss"] != pytest.approx(b.history[0]["loss"],
                                               rel=1e-3)


def test_factorized_trains_on_an_image_folder(tmp_path, caplog):
  folder = _write_images(str(tmp_path / "imgs"),
                         [(40, 48, 3), (36, 36, 3), (20, 64, 3), (33, 40, 3)])
  with caplog.at_level(logging.WARNING):
    result = training.train(dict(
        TINY_FP, data=folder, validation_data=folder,
        train_dir=str(tmp_path / "run"), export=str(tmp_path / "model")))
  skipped = [r.getMessage() for r in caplog.records
             if "smaller than the 32x32 crop" in r.getMessage()]
  # One warning per dataset (training crops, validation crops).
  assert len(skipped) == 2 and "skipped 1 of 4" in skipped[0]
  last = result.history[-1]
  for key in ("loss", "rate", "distortion", "val_loss", "val_rate",
              "val_distortion"):
    assert np.isfinite(last[key]), key
  assert last["rate"] > 0
  # The export is a model ready to compress.
  model = models.load_model(str(tmp_path / "model"))
  image = np.asarray(Image.open(os.path.join(folder, "00.png")))[None]
  decoded = model.decompress(*model.compress(image))
  np.testing.assert_array_equal(decoded.numpy(),
                                model.reconstruct(image).numpy())
  assert os.path.isdir(tmp_path / "run" / "logs" / "train")
  assert json.load(open(tmp_path / "run" / "history.json"))[-1]["epoch"] == 2


def test_uniform_noise_training_and_weight_density(tmp_path):
  # Image model on uniform noise (Sec. 5.2).
  noise = training.train(dict(TINY_FP, data="uniform_noise", epochs=1,
                              train_dir=str(tmp_path / "noise")))
  assert np.isfinite(noise.history[-1]["loss"])
  # Fig. 13: uniform data, D weighted by the Student-t density.
  fig13 = training.train(dict(TOY, data="uniform2d", epochs=1,
                              steps_per_epoch=2, distortion="density_mse",
                              weight_density="student_t",
                              train_dir=str(tmp_path / "fig13")))
  x = np.array([[0.0, 0.0], [1.0, 3.0]], np.float32)
  np.testing.assert_allclose(
      fig13.model.density_fn(x).numpy(),
      scipy.stats.multivariate_t(loc=[0, 0], shape=np.eye(2), df=3).pdf(x),
      rtol=1e-5)


@pytest.mark.parametrize("changes, error, message", [
    (dict(distortion="ssim"), ValueError, "Unknown distortion 'ssim'"),
    (dict(lmbda=0.0), ValueError, "--lambda must be a finite number > 0"),
    (dict(lmbda=-2.0), ValueError, "--lambda must be a finite number > 0"),
    (dict(model="vae"), ValueError, "Unknown model 'vae'"),
    (dict(model="factorized", quality=3), ValueError,
     "either --lambda or --quality"),
    (dict(model="factorized", lmbda=None), ValueError,
     "student_t is a 2-D source"),
    (dict(data="/some/folder"), ValueError, "not data for a 2-D model"),
    (dict(distortion="mse", weight_density="student_t"), ValueError,
     "--weight_density is used only with"),
    (dict(distortion="density_mse", weight_density="cauchy"), ValueError,
     "Unknown --weight_density"),
    (dict(model="factorized", lmbda=None, data="uniform_noise",
          distortion="density_mse"), ValueError, "known only for the 2-D"),
    (dict(strategy="tpu"), ValueError, "Unknown --strategy"),
    (dict(precision_policy="float64"), ValueError, "--precision_policy"),
    (dict(batchsize=0), ValueError, "--batchsize must be an integer >= 1"),
    (dict(learning_rate=float("nan")), ValueError, "--learning_rate"),
    (dict(train_dir=None), ValueError, "no --train_dir"),
    (dict(colour="red"), ValueError, "unknown training config key"),
])
def test_bad_config_is_a_clear_error(tmp_path, changes, error, message):
  config = dict(TOY, train_dir=str(tmp_path / "run"))
  config.update(changes)
  with pytest.raises(error, match=message):
    training.train(config)
  assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_bad_data_is_a_clear_error(tmp_path):
  points = np.random.default_rng(0).normal(size=[64, 2])
  points[5, 1] = np.nan
  np.save(tmp_path / "pts.npy", points)
  with pytest.raises(ValueError, match="1 NaN or Inf value"):
    training.train(dict(TOY, data=str(tmp_path / "pts.npy"),
                        train_dir=str(tmp_path / "r1")))
  with pytest.raises(ValueError, match="give --weight_density"):
    training.train(dict(TOY, data=str(tmp_path / "pts.npy"),
                        distortion="density_mse",
                        train_dir=str(tmp_path / "r1")))
  small = _write_images(str(tmp_path / "small"), [(20, 20, 3), (24, 30, 3)])
  with pytest.raises(ValueError, match="all 2 images are smaller than the "
                     "32x32 crop"):
    training.train(dict(TINY_FP, data=small, train_dir=str(tmp_path / "r2")))
  gray = _write_images(str(tmp_path / "gray"), [(40, 40, 1), (40, 40, 3)])
  with pytest.raises(ValueError, match="1 of 2 images do not have 3 channels"):
    training.train(dict(TINY_FP, data=gray, train_dir=str(tmp_path / "r3")))
  with pytest.raises(FileNotFoundError, match="no images found"):
    training.train(dict(TINY_FP, data=str(tmp_path / "none" / "*.png"),
                        train_dir=str(tmp_path / "r4")))


def test_resume_with_other_settings_is_refused(tmp_path):
  training.train(dict(TOY, epochs=1, steps_per_epoch=1,
                      train_dir=str(tmp_path / "run")))
  with pytest.raises(ValueError, match=r"other settings \(lmbda: 10.0 -> 5.0"):
    training.train(dict(TOY, epochs=2, steps_per_epoch=1, lmbda=5.0,
                        train_dir=str(tmp_path / "run")))


def test_mixed_bfloat16_policy(tmp_path):
  result = training.train(dict(TOY, epochs=1, steps_per_epoch=2,
                               precision_policy="mixed_bfloat16",
                               train_dir=str(tmp_path / "bf16")))
  dense = result.model.analysis_transform.layers[0]
  assert dense.compute_dtype == "bfloat16" and dense.dtype == "float32"
  assert np.isfinite(result.history[-1]["loss"])
  # The process-wide policy is restored afterwards.
  assert tf.keras.mixed_precision.global_policy().name == "float32"


def test_divergence_is_an_error_and_keeps_no_bad_checkpoint(tmp_path):
  with pytest.raises(RuntimeError, match=r"in epoch 1.*NaN"):
    training.train(dict(TOY, epochs=1, steps_per_epoch=3,
                        learning_rate=1e30, train_dir=str(tmp_path / "run")))
  assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")) is None


def test_export_paths_that_would_lose_files_are_refused_before_training(
    tmp_path):
  """Issue 12: --export pointing at the parent of the train_dir (with other
  results), into the train_dir, or at a foreign folder deletes nothing."""
  results = tmp_path / "results"
  (results / "other").mkdir(parents=True)
  (results / "table.csv").write_text("keep me")
  run = results / "run"
  for export, message in [(results, "contains --train_dir"),
                          (run, "contains --train_dir"),
                          (run / "checkpoints", "lies inside --train_dir")]:
    with pytest.raises(ValueError, match=message):
      training.train(dict(TOY, epochs=1, train_dir=str(run),
                          export=str(export)))
    assert not run.exists()  # refused before anything was written
  (results / "other" / "notes.txt").write_text("mine")
  with pytest.raises(ValueError, match="not a model saved by tfc_perception"):
    training.train(dict(TOY, epochs=1, train_dir=str(run),
                        export=str(results / "other")))
  assert not run.exists()
  assert (results / "table.csv").read_text() == "keep me"
  assert (results / "other" / "notes.txt").read_text() == "mine"


def test_train_dir_inside_the_image_folder_is_refused(tmp_path):
  images = _write_images(str(tmp_path / "images"), [(40, 40, 3)] * 2)
  with pytest.raises(ValueError, match="inside the input --data folder"):
    training.train(dict(TINY_FP, data=images,
                        train_dir=os.path.join(images, "run")))


def test_another_runs_export_needs_overwrite_a_resumed_run_replaces_its_own(
    tmp_path):
  export = str(tmp_path / "model")
  first = training.train(dict(TOY, epochs=1, train_dir=str(tmp_path / "a"),
                              export=export))
  # The same run, resumed for one more epoch, replaces its own export.
  again = training.train(dict(TOY, epochs=2, train_dir=str(tmp_path / "a"),
                              export=export))
  assert again.initial_epoch == 1
  assert models.load_model(export).fingerprint() == again.model.fingerprint()
  assert again.model.fingerprint() != first.model.fingerprint()
  # Another run may not replace it (checked before training) ...
  with pytest.raises(ValueError, match="overwrite"):
    training.train(dict(TOY, epochs=1, seed=4, train_dir=str(tmp_path / "b"),
                        export=export))
  assert not (tmp_path / "b").exists()
  # ... unless asked to.
  other = training.train(dict(TOY, epochs=1, seed=4, overwrite=True,
                              train_dir=str(tmp_path / "b"), export=export))
  assert models.load_model(export).fingerprint() == other.model.fingerprint()
