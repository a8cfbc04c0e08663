"""Which images the image experiments use (issue 16, item 8): folders, globs
and lists as training and test images, the paper presets' refusal to run on
substitute data without --allow_substitute_data, the substitute where it is
allowed (and what the results then say), and CIFAR-10's python batches for
Obs. 1. All on small generated files; nothing is trained here except in the
one slow end-to-end test."""

import dataclasses
import os
import subprocess
import sys
import types

import numpy as np
import pytest
from PIL import Image

from conftest import REPO_ROOT
from data_cifar10_test import write_folder
from tfc_perception._typed import Checked
from tfc_perception.experiments import _images
from tfc_perception.experiments import runner
from tfc_perception.experiments import sensitivity


def _png(path, size=8, value=0):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)
  return str(path)


@pytest.fixture(name="shared")
def _shared(tmp_path, monkeypatch):
  """A shared-data folder with 24 tiny kodimNN.png files, as
  $TFC_PERCEPTION_SHARED_DATA."""
  root = tmp_path / "shared"
  for i in range(1, 25):
    _png(root / "kodak" / f"kodim{i:02d}.png", value=i)
  monkeypatch.setenv("TFC_PERCEPTION_SHARED_DATA", str(root))
  return root


def _ctx(messages=None):
  log = (messages.append if messages is not None else (lambda m: None))
  return types.SimpleNamespace(name="exp", log=log)


def test_image_specs_are_folders_globs_files_or_lists(tmp_path, shared):
  a = _png(tmp_path / "d" / "a.png")
  b = _png(tmp_path / "d" / "sub" / "b.jpg")
  _png(tmp_path / "d" / "c.png")
  (tmp_path / "d" / "notes.txt").write_text("not an image")
  assert len(_images.image_files(str(tmp_path / "d"))) == 3  # recursive
  assert _images.image_files(str(tmp_path / "d" / "[ab].png")) == [a]
  assert _images.image_files([a, b, a]) == sorted([a, b])  # de-duplicated
  assert [os.path.basename(f) for f in _images.image_files(
      _images.SUBSTITUTE_TRAIN)] == [f"kodim{i}.png" for i in range(13, 25)]
  assert len(_images.image_files(_images.KODAK_TEST)) == 12
  with pytest.raises(FileNotFoundError, match="test_images 'nowhere/"):
    _images.image_files("nowhere/*.png", "test_images")
  with pytest.raises(ValueError, match="at least one"):
    _images.image_files((), "train_images")


def test_given_training_and_test_images_are_used_as_they_are(tmp_path):
  train = [_png(tmp_path / "train" / f"{i}.png") for i in range(3)]
  test = _png(tmp_path / "test" / "t.png")
  files, tests, info = _images.train_test_files(
      _ctx(), str(tmp_path / "train"), test, allow_substitute=False)
  assert files == train and tests == [test]
  assert info["substitute"] is False and info["num_train_images"] == 3
  assert info["train_images"] == str(tmp_path / "train")
  with pytest.raises(ValueError, match="also training images"):
    _images.train_test_files(_ctx(), [train[0], test], test, False)


def test_the_paper_data_is_refused_without_substitution(tmp_path):
  with pytest.raises(ValueError) as e:
    _images.train_test_files(_ctx(), None, str(tmp_path), False)
  message = str(e.value)
  assert "OpenImages" in message and "--set train_images=PATH" in message
  assert "--allow_substitute_data" in message
  # Nothing to train (pretrained models): no training data needed.
  _, _, info = _images.train_test_files(
      _ctx(), None, _png(tmp_path / "t.png"), False, need_train=False)
  assert info["num_train_images"] == 0 and not info["substitute"]


def test_the_substitute_is_named_and_its_images_leave_the_test_set(shared):
  messages = []
  files, tests, info = _images.train_test_files(
      _ctx(messages), None, "shared:kodak", allow_substitute=True)
  assert [os.path.basename(f) for f in files] == [
      f"kodim{i}.png" for i in range(13, 25)]
  assert [os.path.basename(f) for f in tests] == [
      f"kodim{i:02d}.png" for i in range(1, 13)]
  assert info["substitute"] is True
  assert info["train_images"] == _images.SUBSTITUTE_TRAIN_NOTE
  assert info["test_images_dropped"] == [f"kodim{i}.png"
                                         for i in range(13, 25)]
  assert info["num_test_images"] == 12
  assert any("substitute" in m for m in messages)


@pytest.mark.parametrize("name, overrides", [
    ("scarce_data", {}),
    ("nlpd_vs_mse", {}),
    ("contrast", {"models": "trained"}),  # paper: pretrained, no training
    ("sensitivity", {}),
])
def test_paper_presets_refuse_substitute_data(tmp_path, shared, name,
                                              overrides):
  with pytest.raises(ValueError, match="--allow_substitute_data"):
    runner.run_experiment(name, "paper", str(tmp_path), overrides=overrides,
                          verbose=False)
  assert not os.path.exists(tmp_path / "_cache")  # Nothing was trained.


@dataclasses.dataclass(frozen=True)
class _WithFlag(Checked):
  allow_substitute_data: bool = False


@dataclasses.dataclass(frozen=True)
class _WithoutFlag(Checked):
  steps: int = 1


def test_allow_substitute_data_reaches_the_experiments_that_have_it(
    tmp_path, monkeypatch):
  # Registered into a copy of the registry (built-ins loaded first), so no
  # other test lists them.
  runner.list_experiments()
  monkeypatch.setattr(runner, "_REGISTRY", dict(runner._REGISTRY))  # pylint: disable=protected-access
  runner.register_experiment(
      "_test_with_flag", lambda ctx: {"allowed": ctx.config.
                                      allow_substitute_data},
      configs={"paper": _WithFlag()}, groups=("_test_flag",))
  runner.register_experiment(
      "_test_without_flag", lambda ctx: {"steps": ctx.config.steps},
      configs={"paper": _WithoutFlag()}, groups=("_test_flag",))
  for target in ("_test_with_flag", "_test_flag"):
    out = runner.run_experiments(target, "paper", str(tmp_path / target),
                                 verbose=False)
    assert out["experiments"][0]["results"] == {"allowed": False}
    out = runner.run_experiments(target, "paper", str(tmp_path / target),
                                 verbose=False, allow_substitute_data=True)
    assert out["experiments"][0]["results"] == {"allowed": True}
  # An experiment without the field runs as it is.
  out = runner.run_experiments("_test_without_flag", "paper",
                               str(tmp_path / "w"), verbose=False,
                               allow_substitute_data=True)
  assert out["experiments"][0]["results"] == {"steps": 1}


def test_bin_reproduce_refuses_in_one_line_and_names_the_flag(tmp_path,
                                                              shared):
  out = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "bin", "reproduce"),
       "nlpd_vs_mse", "--config", "paper", "--output", str(tmp_path)],
      capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
      env=dict(os.environ, PYTHONPATH=REPO_ROOT))
  assert out.returncode == 1
  errors = [l for l in out.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and "--allow_substitute_data" in errors[0]
  assert "Traceback" not in out.stderr


def test_sensitivity_reads_cifar10_batches_losslessly(tmp_path):
  written = write_folder(tmp_path / "cifar-10-batches-py", n_per_batch=12)
  cfg = dataclasses.replace(
      runner.get_experiment("sensitivity").configs["tiny"],
      images=str(tmp_path / "cifar-10-batches-py"), num_train=20, num_eval=5)
  data = sensitivity.load_data(_ctx(), cfg)
  assert data.kind == "cifar10-python-batches" and not data.substitute
  assert data.num_train == 20 and data.train.shape == (20, 32, 32, 3)
  assert "lossless" in data.note
  test = written["test_batch"][0]
  held = [int(n[len("test_batch["):-1]) for n in data.eval_names]
  assert len(held) == 5 and held == sorted(set(held))
  np.testing.assert_array_equal(data.eval_images, test[held])
  # Seeded: the same split again, another with another split_seed.
  again = sensitivity.load_data(_ctx(), cfg)
  assert again.eval_names == data.eval_names
  other = sensitivity.load_data(_ctx(), dataclasses.replace(cfg,
                                                            split_seed=7))
  assert other.eval_names != data.eval_names
  # Image files are split as before, and say they are not the paper's data.
  folder = tmp_path / "files"
  for i in range(10):
    _png(folder / f"{i}.png", size=32, value=i)
  files = sensitivity.load_data(_ctx(), dataclasses.replace(
      cfg, images=str(folder), num_train=0, num_eval=3))
  assert files.kind == "image-files" and files.num_train == 7
  assert "not the paper's" in files.note


def test_sensitivity_substitute_is_the_jpeg_test_set_and_says_so(
    tmp_path, monkeypatch):
  root = tmp_path / "shared"
  for i in range(8):
    im = Image.fromarray(np.full((32, 32, 3), 10 * i, np.uint8))
    os.makedirs(root / "cifar10-test-jpeg" / "test" / "cat", exist_ok=True)
    im.save(root / "cifar10-test-jpeg" / "test" / "cat" / f"{i:04d}.jpg")
  monkeypatch.setenv("TFC_PERCEPTION_SHARED_DATA", str(root))
  cfg = dataclasses.replace(
      runner.get_experiment("sensitivity").configs["tiny"], num_train=0,
      num_eval=2)
  data = sensitivity.load_data(_ctx(), cfg)
  assert data.substitute and data.spec == sensitivity.JPEG_SUBSTITUTE
  assert "JPEG" in data.note and "substitute" in data.note
  with pytest.raises(ValueError, match="python batches"):
    sensitivity.load_data(_ctx(), dataclasses.replace(
        cfg, allow_substitute_data=False))


@pytest.mark.slow
def test_sensitivity_tiny_on_cifar10_batches_end_to_end(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  import pandas as pd  # pylint: disable=g-import-not-at-top
  write_folder(tmp_path / "cifar-10-batches-py", n_per_batch=12)
  runner.run_experiment(
      "sensitivity", "tiny", str(tmp_path / "out"),
      overrides={"images": str(tmp_path / "cifar-10-batches-py")},
      verbose=False)
  folder = tmp_path / "out" / "sensitivity"
  results = json.loads((folder / "results.json").read_text())["results"]
  assert results["data_kind"] == "cifar10-python-batches"
  assert results["substitute_data"] is False
  assert "48 training images" in results["data"]
  samples = pd.read_csv(folder / "samples.csv")
  assert samples.file.str.startswith("test_batch[").all()
  assert 0 < results["heldout_bits_per_dim"] < 16
  assert "## Data" in (folder / "report.md").read_text()
