"""Tests of tfc_perception.training: the one trainer (fit), bin/train's
train(spec), step-granular bit-identical resume, Ctrl-C, bad input."""

import dataclasses
import json
import logging
import os
import signal

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf
from PIL import Image

from tfc_perception import models
from tfc_perception import training
from tfc_perception.data import sources
from tfc_perception.train_spec import TrainSpec

TOY = TrainSpec(model="toy2d", data="student_t", lmbda=10.0, batchsize=16,
                epochs=2, steps_per_epoch=4, learning_rate=1e-3, seed=3,
                progress=False)
# A tiny factorized-prior model (N = M = 8) on 32x32 crops.
TINY_FP = TrainSpec(model="factorized", lmbda=0.01, num_filters=8,
                    latent_channels=8, patchsize=32, batchsize=2, epochs=2,
                    steps_per_epoch=2, learning_rate=1e-3, seed=1,
                    progress=False)


def _with(spec, **changes):
  return dataclasses.replace(spec, **changes)


class _Crash(Exception):
  pass


class _At(tf.keras.callbacks.Callback):
  """Calls `action()` when the optimizer reaches `step` (in this run)."""

  def __init__(self, step, action):
    super().__init__()
    self.step, self.action = step, action

  def on_train_batch_end(self, batch, logs=None):
    if int(self.model.optimizer.iterations.numpy()) == self.step:
      self.action()


def _crash():
  raise _Crash("simulated crash")


def _sigint():
  signal.raise_signal(signal.SIGINT)


class _Snapshot(tf.keras.callbacks.Callback):
  """Keeps the trainable weights at the start of training."""

  def on_train_begin(self, logs=None):
    self.weights = [w.numpy().copy() for w in self.model.trainable_weights]


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


def _assert_same_state(a, b):
  for x, y in zip(a.model.get_weights(), b.model.get_weights()):
    np.testing.assert_array_equal(x, y)
  for x, y in zip(a.model.optimizer.variables, b.model.optimizer.variables):
    np.testing.assert_array_equal(x.numpy(), y.numpy())
  assert a.history == b.history


def test_ctrl_c_mid_epoch_resumes_bit_identically(tmp_path):
  handler_before = signal.getsignal(signal.SIGINT)
  full = training.train(_with(TOY, train_dir=str(tmp_path / "a")))
  assert [(h["epoch"], h["step"]) for h in full.history] == [(1, 4), (2, 8)]
  assert full.global_step == 8 and not full.resumed

  # SIGINT at step 6, in the middle of epoch 2: a checkpoint at step 6 and
  # the one-line message.
  run_b = _with(TOY, train_dir=str(tmp_path / "b"))
  with pytest.raises(training.TrainingInterrupted) as info:
    training.train(run_b, callbacks=[_At(6, _sigint)])
  assert str(info.value) == ("interrupted at step 6; checkpoint saved; rerun "
                             "the same command to resume")
  assert info.value.exit_code == 130 and info.value.step == 6
  assert tf.train.latest_checkpoint(str(tmp_path / "b" / "checkpoints")
                                    ).endswith("ckpt-6")
  # The trainer's handler is gone: the one from before the run is back
  # (Python's default, or SIG_IGN in a process started in the background).
  assert signal.getsignal(signal.SIGINT) is handler_before
  snapshot = _Snapshot()
  resumed = training.train(run_b, callbacks=[snapshot])
  assert resumed.initial_step == 6 and resumed.resumed
  # The restart trained (steps 7-8 moved the weights) ...
  moved = max(np.max(np.abs(a.numpy() - b)) for a, b in zip(
      resumed.model.trainable_weights, snapshot.weights))
  assert moved > 1e-4
  # ... and ends bit for bit where the uninterrupted run ended: weights,
  # optimizer moments, and every epoch's metrics (epoch 2's mean includes
  # the steps before the interruption).
  _assert_same_state(full, resumed)
  rows_a = open(tmp_path / "a" / "log.csv").read()
  rows_b = open(tmp_path / "b" / "log.csv").read()
  assert rows_a == rows_b and len(rows_a.splitlines()) == 9

  # Manifest next to the export, with the final metrics.
  manifest = json.load(open(resumed.manifest))
  assert resumed.manifest == str(tmp_path / "b" / "export") + ".manifest.json"
  assert manifest["resumed_from_step"] == 6
  assert manifest["global_step"] == 8
  assert manifest["config"]["lmbda"] == 10.0
  assert manifest["final_metrics"]["loss"] == pytest.approx(
      resumed.history[-1]["loss"])
  assert manifest["versions"]["tensorflow_compression"]
  assert manifest["curves"] == str(tmp_path / "b" / "curves.png")

  # Training a finished run again does nothing but export.
  again = training.train(run_b)
  assert again.initial_step == 8 and len(again.history) == 2


def test_crash_resumes_from_the_last_step_checkpoint(tmp_path):
  spec = _with(TOY, epochs=1, steps_per_epoch=8, checkpoint_every=3,
               lr_schedule="cosine", lr_floor=0.1)
  full = training.train(_with(spec, train_dir=str(tmp_path / "a")))
  run_b = _with(spec, train_dir=str(tmp_path / "b"))
  with pytest.raises(_Crash):
    training.train(run_b, callbacks=[_At(5, _crash)])
  assert tf.train.latest_checkpoint(str(tmp_path / "b" / "checkpoints")
                                    ).endswith("ckpt-3")
  resumed = training.train(run_b)
  assert resumed.initial_step == 3
  _assert_same_state(full, resumed)


def test_steps_per_execution_and_a_new_seed(tmp_path):
  # Several steps per traced call: resume still at the interruption step.
  spec = _with(TOY, steps_per_execution=2, steps_per_epoch=6, epochs=1)
  full = training.train(_with(spec, train_dir=str(tmp_path / "a")))
  run_b = _with(spec, train_dir=str(tmp_path / "b"))
  with pytest.raises(training.TrainingInterrupted, match="at step 4;"):
    training.train(run_b, callbacks=[_At(4, _sigint)])
  _assert_same_state(full, training.train(run_b))
  # The equality is not vacuous: the seed changes data, init, noise.
  other = training.train(_with(spec, seed=4, train_dir=str(tmp_path / "c")))
  assert other.history[-1]["loss"] != pytest.approx(
      full.history[-1]["loss"], rel=1e-3)


def test_fit_trains_any_model_on_any_data_and_draws_curves(tmp_path):
  dist = sources.get_source("student_t")
  points = sources.sample_points(dist, 64, seed=9)
  seen = []

  def test_error(model):
    seen.append(int(model.optimizer.iterations.numpy()))
    x_hat = model.reconstruct(points)
    return {"test_sse": float(np.mean(np.sum((x_hat - points) ** 2, 1)))}

  spec = TrainSpec(batchsize=32, epochs=3, steps_per_epoch=5,
                   learning_rate=3e-3, lr_schedule="exponential",
                   lr_floor=0.5, seed=2, progress=False,
                   train_dir=str(tmp_path / "run"))
  result = training.fit(
      lambda: models.build_model("toy2d", widths=16, depth=1, lmbda=4.0,
                                 seed=2),
      lambda start: sources.source_dataset(dist, 32, 2, start), spec,
      validation=sources.source_dataset(dist, 32, 77).take(2),
      metrics_fn=test_error)
  assert seen == [0, 5, 10, 15]
  assert [(h["epoch"], h["step"]) for h in result.history] == [
      (0, 0), (1, 5), (2, 10), (3, 15)]
  assert set(result.history[-1]) >= {"loss", "rate", "distortion",
                                     "val_loss", "val_rate", "test_sse"}
  assert result.history[-1]["test_sse"] < result.history[0]["test_sse"]
  # The schedule: lr * 0.5 ** (step / 15); the last step was step 14.
  lr = result.model.optimizer.learning_rate
  assert float(lr) == pytest.approx(3e-3 * 0.5 ** (14 / 15), rel=1e-5)
  with open(result.curves, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert os.path.isdir(tmp_path / "run" / "logs" / "train")
  # A model object and a Dataset work too (no train_dir: no files).
  model = models.build_model("toy2d", widths=4, depth=1, seed=0)
  plain = training.fit(model, sources.source_dataset(dist, 8, 0),
                       TrainSpec(epochs=1, steps_per_epoch=3, batchsize=8,
                                 progress=False))
  assert plain.model is model and plain.global_step == 3
  assert plain.train_dir is None and plain.curves is None


def test_fit_refuses_fields_that_describe_the_model(tmp_path):
  with pytest.raises(ValueError, match=r"fields that describe them "
                     r"\(model='toy2d', data='student_t'\)"):
    training.fit(lambda: None, lambda s: None,
                 TrainSpec(model="toy2d", data="student_t"))
  model = models.build_model("toy2d", widths=4, depth=1)
  with pytest.raises(ValueError, match="pass a function that builds it"):
    training.fit(model, lambda s: None,
                 TrainSpec(precision_policy="mixed_bfloat16"))


def test_stale_temporaries_of_a_crash_are_removed(tmp_path):
  run = tmp_path / "run"
  training.train(_with(TOY, epochs=1, steps_per_epoch=2, train_dir=str(run)))
  # What a crash while saving leaves behind, and a file of the user's.
  (run / "checkpoints" / "ckpt-7_temp").mkdir()
  (run / "checkpoints" / "ckpt-7_temp" / "part-00000-of-00001.index"
   ).write_bytes(b"half")
  (run / "checkpoints" / "checkpoint.tmp0a1b2c3d").write_text("half")
  (run / ".history.json.x1y2.tmp").write_text("half")
  (run / "checkpoints" / "notes.txt").write_text("mine")
  training.train(_with(TOY, epochs=2, steps_per_epoch=2, train_dir=str(run)))
  left = sorted(os.listdir(run / "checkpoints"))
  assert "ckpt-7_temp" not in left and "checkpoint.tmp0a1b2c3d" not in left
  assert not (run / ".history.json.x1y2.tmp").exists()
  assert (run / "checkpoints" / "notes.txt").read_text() == "mine"


def test_factorized_trains_on_an_image_folder(tmp_path, caplog):
  folder = _write_images(str(tmp_path / "imgs"),
                         [(40, 48, 3), (36, 36, 3), (20, 64, 3), (33, 40, 3)])
  with caplog.at_level(logging.WARNING):
    result = training.train(_with(
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
  noise = training.train(_with(TINY_FP, data="uniform_noise", epochs=1,
                               train_dir=str(tmp_path / "noise")))
  assert np.isfinite(noise.history[-1]["loss"])
  # Fig. 13: uniform data, D weighted by the Student-t density.
  fig13 = training.train(_with(TOY, data="uniform2d", epochs=1,
                               steps_per_epoch=2, distortion="density_mse",
                               weight_density="student_t",
                               train_dir=str(tmp_path / "fig13")))
  x = np.array([[0.0, 0.0], [1.0, 3.0]], np.float32)
  np.testing.assert_allclose(
      fig13.model.density_fn(x).numpy(),
      scipy.stats.multivariate_t(loc=[0, 0], shape=np.eye(2), df=3).pdf(x),
      rtol=1e-5)


@pytest.mark.parametrize("changes, message", [
    (dict(distortion="ssim"), "Unknown distortion 'ssim'; accepted: mse"),
    (dict(lmbda=0.0), "lmbda must be finite and > 0"),
    (dict(lmbda=-2.0), "lmbda must be finite and > 0"),
    (dict(model="vae"), "model: unknown 'vae'; accepted: factorized, "
     "softquant, toy2d"),
    (dict(model="pixelcnn"), "'pixelcnn' is a density model; train it with "
     "training.fit"),
    (dict(model="factorized", quality=3), "either lmbda or quality"),
    (dict(model="factorized", lmbda=None), "student_t is a 2-D source"),
    (dict(data="/some/folder"), "not data for a 2-D model"),
    (dict(distortion="mse", weight_density="student_t"),
     "weight_density is used only with"),
    (dict(distortion="density_mse", weight_density="cauchy"),
     "weight_density: unknown 'cauchy'"),
    (dict(model="factorized", lmbda=None, data="uniform_noise",
          distortion="density_mse"), "known only for the 2-D"),
    (dict(strategy="tpu"), "Unknown strategy 'tpu'"),
    (dict(precision_policy="float64"), "Unknown precision_policy"),
    (dict(batchsize=0), "batchsize must be an integer >= 1"),
    (dict(learning_rate=float("nan")), "learning_rate must be a number"),
    (dict(lr_floor=2.0), "lr_floor must be <= 1.0"),
    (dict(steps_per_epoch=2.5), "steps_per_epoch must be an integer"),
    (dict(train_dir=None), "train_dir: not given"),
    (dict(colour="red"), r"unknown key\(s\) \['colour'\]"),
])
def test_bad_spec_is_a_clear_error_naming_the_field(tmp_path, changes,
                                                    message):
  config = dict(TOY.to_dict(), train_dir=str(tmp_path / "run"))
  config.update(changes)
  with pytest.raises(ValueError, match=message):
    training.train(config)
  assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_bad_data_is_a_clear_error(tmp_path):
  points = np.random.default_rng(0).normal(size=[64, 2])
  points[5, 1] = np.nan
  np.save(tmp_path / "pts.npy", points)
  with pytest.raises(ValueError, match="1 NaN or Inf value"):
    training.train(_with(TOY, data=str(tmp_path / "pts.npy"),
                         train_dir=str(tmp_path / "r1")))
  with pytest.raises(ValueError, match="give weight_density"):
    training.train(_with(TOY, data=str(tmp_path / "pts.npy"),
                         distortion="density_mse",
                         train_dir=str(tmp_path / "r1")))
  small = _write_images(str(tmp_path / "small"), [(20, 20, 3), (24, 30, 3)])
  with pytest.raises(ValueError, match="all 2 images are smaller than the "
                     "32x32 crop"):
    training.train(_with(TINY_FP, data=small,
                         train_dir=str(tmp_path / "r2")))
  gray = _write_images(str(tmp_path / "gray"), [(40, 40, 1), (40, 40, 3)])
  with pytest.raises(ValueError, match="1 of 2 images do not have 3 channels"):
    training.train(_with(TINY_FP, data=gray, train_dir=str(tmp_path / "r3")))
  with pytest.raises(FileNotFoundError, match="no images found"):
    training.train(_with(TINY_FP, data=str(tmp_path / "none" / "*.png"),
                         train_dir=str(tmp_path / "r4")))


def test_resume_with_other_settings_is_refused(tmp_path):
  training.train(_with(TOY, epochs=1, steps_per_epoch=1,
                       train_dir=str(tmp_path / "run")))
  with pytest.raises(ValueError, match=r"other settings \(lmbda: 10.0 -> 5.0"):
    training.train(_with(TOY, epochs=2, steps_per_epoch=1, lmbda=5.0,
                         train_dir=str(tmp_path / "run")))


def test_mixed_bfloat16_policy(tmp_path):
  result = training.train(_with(TOY, epochs=1, steps_per_epoch=2,
                                precision_policy="mixed_bfloat16",
                                train_dir=str(tmp_path / "bf16")))
  dense = result.model.analysis_transform.layers[0]
  assert dense.compute_dtype == "bfloat16" and dense.dtype == "float32"
  # The entropy model takes float32 latents (the models set its dtype).
  assert result.model.entropy_model.bottleneck_dtype == tf.float32
  assert np.isfinite(result.history[-1]["loss"])
  # The process-wide policy is restored afterwards.
  assert tf.keras.mixed_precision.global_policy().name == "float32"


def test_divergence_is_an_error_and_keeps_no_bad_checkpoint(tmp_path):
  with pytest.raises(RuntimeError, match=r"(diverged|failed) at step \d+.*"
                     "NaN.*no checkpoint was written"):
    training.train(_with(TOY, epochs=1, steps_per_epoch=3,
                         learning_rate=1e30, train_dir=str(tmp_path / "run")))
  assert tf.train.latest_checkpoint(
      str(tmp_path / "run" / "checkpoints")) is None


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
      training.train(_with(TOY, epochs=1, train_dir=str(run),
                           export=str(export)))
    assert not run.exists()  # refused before anything was written
  (results / "other" / "notes.txt").write_text("mine")
  with pytest.raises(ValueError, match="not a model saved by tfc_perception"):
    training.train(_with(TOY, epochs=1, train_dir=str(run),
                         export=str(results / "other")))
  assert not run.exists()
  assert (results / "table.csv").read_text() == "keep me"
  assert (results / "other" / "notes.txt").read_text() == "mine"


def test_train_dir_inside_the_image_folder_is_refused(tmp_path):
  images = _write_images(str(tmp_path / "images"), [(40, 40, 3)] * 2)
  with pytest.raises(ValueError, match="inside the input --data folder"):
    training.train(_with(TINY_FP, data=images,
                         train_dir=os.path.join(images, "run")))


def test_another_runs_export_needs_overwrite_a_resumed_run_replaces_its_own(
    tmp_path):
  export = str(tmp_path / "model")
  first = training.train(_with(TOY, epochs=1, train_dir=str(tmp_path / "a"),
                               export=export))
  # The same run, resumed for one more epoch, replaces its own export.
  again = training.train(_with(TOY, epochs=2, train_dir=str(tmp_path / "a"),
                               export=export))
  assert again.initial_step == 4
  assert models.load_model(export).fingerprint() == again.model.fingerprint()
  assert again.model.fingerprint() != first.model.fingerprint()
  # Another run may not replace it (checked before training) ...
  with pytest.raises(ValueError, match="overwrite"):
    training.train(_with(TOY, epochs=1, seed=4, train_dir=str(tmp_path / "b"),
                         export=export))
  assert not (tmp_path / "b").exists()
  # ... unless asked to.
  other = training.train(_with(TOY, epochs=1, seed=4, overwrite=True,
                               train_dir=str(tmp_path / "b"), export=export))
  assert models.load_model(export).fingerprint() == other.model.fingerprint()


def test_crops_too_small_for_the_distortion_fail_before_tracing(tmp_path):
  """Issue 12: msssim on 32 px crops died after tracing with a huge dump and
  a hint (num_scales=2) that bin/train has no flag for."""
  with pytest.raises(ValueError, match=r"patchsize 32 is too small for "
                     r"distortion msssim: its crops need at least 161 px"):
    training.train(_with(TINY_FP, data="uniform_noise", distortion="ms-ssim",
                         train_dir=str(tmp_path / "run")))
  assert not (tmp_path / "run").exists()
  with pytest.raises(ValueError, match="patchsize 32 is too small for "
                     "distortion nlpd_rgb: its crops need at least 65 px"):
    training.train(_with(TINY_FP, data="uniform_noise", distortion="nlpd_rgb",
                         train_dir=str(tmp_path / "run")))


def test_a_foreign_non_empty_train_dir_is_refused(tmp_path):
  """The trainer writes run.json, history.json, ... into train_dir: a folder
  of the user's (here with a run.json of its own) is refused."""
  mine = tmp_path / "project"
  mine.mkdir()
  (mine / "run.json").write_text('{"my": "settings"}')
  with pytest.raises(ValueError, match="not a run of the trainer"):
    training.train(_with(TOY, epochs=1, train_dir=str(mine)))
  assert (mine / "run.json").read_text() == '{"my": "settings"}'
  assert sorted(os.listdir(mine)) == ["run.json"]

