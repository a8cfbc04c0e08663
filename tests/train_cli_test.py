"""End-to-end tests of bin/train: training, resume, mirrored strategy over 2
logical CPUs, --helpfull, and one-line errors for bad input."""

import dataclasses
import json
import os
import signal
import time
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT

TRAIN = os.path.join(REPO_ROOT, "bin", "train")
TOY_FLAGS = ["--model=toy2d", "--data=student_t", "--lambda=10",
             "--batchsize=16", "--steps_per_epoch=3", "--learning_rate=1e-3",
             "--noprogress"]


def _run(*args, timeout=240):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, TRAIN] + list(args),
                        capture_output=True, text=True, timeout=timeout,
                        env=env, cwd=REPO_ROOT)


def _error_lines(stderr):
  return [l for l in stderr.splitlines() if l.startswith("error:")]


def test_train_export_manifest_and_resume(tmp_path):
  train_dir, export = str(tmp_path / "run"), str(tmp_path / "toy")
  first = _run(*TOY_FLAGS, "--epochs=2", "--validation_data=student_t",
               "--validation_steps=2", f"--train_dir={train_dir}",
               f"--export={export}")
  assert first.returncode == 0, first.stderr[-3000:]
  assert "trained toy2d to step 6" in first.stdout
  assert f"TensorBoard logs: {train_dir}/logs" in first.stdout
  assert f"curves: {train_dir}/curves.png" in first.stdout
  assert os.path.isfile(os.path.join(train_dir, "curves.png"))
  manifest = json.load(open(export + ".manifest.json"))
  assert manifest["config"]["model"] == "toy2d"
  assert manifest["config"]["lmbda"] == 10.0
  assert "--lambda=10" in manifest["argv"]
  assert manifest["global_step"] == 6
  assert set(manifest["final_metrics"]) >= {
      "loss", "rate", "distortion", "val_loss", "val_rate", "val_distortion"}
  assert manifest["rate_unit"] == "bits/sample"
  assert os.path.isfile(os.path.join(train_dir, "checkpoints", "checkpoint"))

  # More epochs with the same --train_dir: resumes at step 6.
  second = _run(*TOY_FLAGS, "--epochs=3", f"--train_dir={train_dir}",
                f"--export={export}")
  assert second.returncode == 0, second.stderr[-3000:]
  assert "resumed from step 6" in second.stdout
  manifest = json.load(open(export + ".manifest.json"))
  assert manifest["resumed_from_step"] == 6 and manifest["global_step"] == 9
  assert [h["epoch"] for h in manifest["history"]] == [1, 2, 3]

  # The export compresses and decompresses with no extra step.
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  model = models.load_model(export)
  x = np.random.default_rng(0).standard_t(3, size=[16, 2]).astype(np.float32)
  np.testing.assert_array_equal(model.decompress(*model.compress(x)).numpy(),
                                model.reconstruct(x).numpy())


def test_mirrored_strategy_over_two_logical_cpus(tmp_path):
  out = _run(*TOY_FLAGS, "--epochs=1", "--strategy=mirrored",
             "--logical_cpus=2", f"--train_dir={tmp_path / 'run'}")
  assert out.returncode == 0, out.stderr[-3000:]
  manifest = json.load(open(tmp_path / "run" / "export.manifest.json"))
  assert manifest["num_replicas"] == 2
  assert np.isfinite(manifest["final_metrics"]["loss"])
  # Each replica gets half of the global batch: an odd one is refused.
  odd = _run(*TOY_FLAGS, "--epochs=1", "--strategy=mirrored",
             "--logical_cpus=2", "--batchsize=15",
             f"--train_dir={tmp_path / 'odd'}")
  assert odd.returncode == 1
  assert _error_lines(odd.stderr) == [
      "error: batchsize 15 is not divisible by the 2 replicas "
      "of strategy mirrored."]


def test_helpfull_documents_every_field_of_the_spec():
  from tfc_perception import train_spec  # pylint: disable=g-import-not-at-top
  out = _run("--helpfull")  # absl exits with status 1 after the help.
  text = out.stdout + out.stderr
  section = text[text.index("tfc_perception.cli.train:"):]
  names = [f["name"] for f in train_spec.flag_specs()]
  # The flags are the TrainSpec's fields (lmbda is --lambda), help included.
  assert "lambda" in names and "lr_schedule" in names
  assert "checkpoint_every" in names and len(names) == len(
      dataclasses.fields(train_spec.TrainSpec))
  for flag in names:
    line = next(l for l in section.splitlines()
                if l.strip().startswith(f"--{flag}:")
                or l.strip().startswith(f"--[no]{flag}:"))
    assert len(line.split(":", 1)[1].strip()) > 10, line


@pytest.mark.parametrize("flags, message", [
    (["--distortion=ssim"], "error: Unknown distortion 'ssim'"),
    (["--lambda=0"], "error: --lambda must be finite and > 0"),
    (["--lr_floor=3"], "error: --lr_floor must be <= 1.0"),
    (["--data={nan_points}"], "error: {nan_points} contains 2 NaN"),
])
def test_bad_input_is_a_one_line_error(tmp_path, flags, message):
  nan_points = str(tmp_path / "points.npy")
  points = np.zeros([32, 2])
  points[[3, 7], 0] = np.nan
  np.save(nan_points, points)
  flags = [f.format(nan_points=nan_points) for f in flags]
  out = _run(*TOY_FLAGS, "--epochs=1", f"--train_dir={tmp_path / 'run'}",
             *flags)
  assert out.returncode == 1
  errors = _error_lines(out.stderr)
  assert len(errors) == 1 and errors[0].startswith(
      message.format(nan_points=nan_points)), out.stderr[-2000:]
  assert "Traceback" not in out.stderr


def test_ctrl_c_saves_a_checkpoint_and_prints_one_line(tmp_path):
  train_dir = str(tmp_path / "run")
  args = [sys.executable, TRAIN, *TOY_FLAGS, "--epochs=400",
          "--steps_per_epoch=50", f"--train_dir={train_dir}"]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env,
                          cwd=REPO_ROOT)
  # Wait until training has written its first epoch, then Ctrl-C.
  history = os.path.join(train_dir, "history.json")
  deadline = time.time() + 240
  while not os.path.exists(history) and time.time() < deadline:
    time.sleep(0.2)
  proc.send_signal(signal.SIGINT)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 130, err[-2000:]
  lines = [l for l in err.splitlines() if l.strip()]
  step = int(lines[-1].split("interrupted at step ")[1].split(";")[0])
  assert lines[-1] == (f"interrupted at step {step}; checkpoint saved; "
                       "rerun the same command to resume")
  assert "Traceback" not in err and 50 <= step < 20000, out
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  assert tf.train.latest_checkpoint(os.path.join(
      train_dir, "checkpoints")).endswith(f"ckpt-{step}")
