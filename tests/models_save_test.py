"""save_model never deletes what it did not write (issue 12): refusals,
--overwrite semantics, atomic replacement and file modes under the umask.

Everything goes through the public API (save_model, load_model,
is_saved_model, check_save_path), not through the file names of the format.
"""

import contextlib
import os
import stat

import pytest

from tfc_perception import models


def _toy(seed=1):
  return models.build_model("toy2d", widths=8, depth=1, seed=seed)


@contextlib.contextmanager
def _umask(mask):
  old = os.umask(mask)
  try:
    yield
  finally:
    os.umask(old)


def _modes(root):
  """{relative path: permission bits} of root and everything under it."""
  out = {".": stat.S_IMODE(os.stat(root).st_mode)}
  for folder, dirs, files in os.walk(root):
    for name in dirs + files:
      path = os.path.join(folder, name)
      out[os.path.relpath(path, root)] = stat.S_IMODE(os.stat(path).st_mode)
  return out


def test_a_folder_that_is_not_a_saved_model_is_never_touched(tmp_path):
  results = tmp_path / "results"
  (results / "run").mkdir(parents=True)
  (results / "table.csv").write_text("a,b\n1,2\n")
  (results / "run" / "ckpt").write_text("weights")
  with pytest.raises(ValueError, match="not a model saved by tfc_perception"):
    models.save_model(_toy(), results)
  with pytest.raises(ValueError, match="not a model saved by tfc_perception"):
    models.save_model(_toy(), results, overwrite=True)
  assert (results / "table.csv").read_text() == "a,b\n1,2\n"
  assert (results / "run" / "ckpt").read_text() == "weights"
  assert sorted(os.listdir(tmp_path)) == ["results"]  # no temp left over
  # A file is not replaced either.
  (tmp_path / "notes.txt").write_text("mine")
  with pytest.raises(ValueError, match="is a file"):
    models.save_model(_toy(), tmp_path / "notes.txt", overwrite=True)
  assert (tmp_path / "notes.txt").read_text() == "mine"


def test_replacing_a_saved_model_needs_overwrite(tmp_path):
  path = tmp_path / "m"
  first = models.save_model(_toy(seed=1), path)
  assert models.is_saved_model(path)
  assert models.check_save_path(tmp_path / "new") is False
  with pytest.raises(ValueError, match="overwrite=True"):
    models.save_model(_toy(seed=2), path)
  assert models.load_model(path).fingerprint() == first
  assert models.check_save_path(path, overwrite=True) is True
  second = models.save_model(_toy(seed=2), path, overwrite=True)
  assert second != first
  assert models.load_model(path).fingerprint() == second
  assert sorted(os.listdir(tmp_path)) == ["m"]  # old copy removed


def test_an_empty_folder_is_used(tmp_path):
  (tmp_path / "empty").mkdir()
  fingerprint = models.save_model(_toy(), tmp_path / "empty")
  assert models.load_model(tmp_path / "empty").fingerprint() == fingerprint


def test_a_saved_model_with_foreign_files_is_not_replaced(tmp_path):
  path = tmp_path / "m"
  first = models.save_model(_toy(seed=1), path)
  (path / "README.txt").write_text("my notes about this model")
  with pytest.raises(ValueError, match="README.txt"):
    models.save_model(_toy(seed=2), path, overwrite=True)
  assert (path / "README.txt").read_text() == "my notes about this model"
  assert models.load_model(path).fingerprint() == first


def test_a_failed_replacement_keeps_the_old_model(tmp_path, monkeypatch):
  path = tmp_path / "m"
  first = models.save_model(_toy(seed=1), path)
  newer = _toy(seed=2)

  def broken():
    raise RuntimeError("disk full")
  monkeypatch.setattr(newer, "fingerprint", broken)
  with pytest.raises(RuntimeError, match="disk full"):
    models.save_model(newer, path, overwrite=True)
  assert models.load_model(path).fingerprint() == first
  assert sorted(os.listdir(tmp_path)) == ["m"]


@pytest.mark.parametrize("mask,file_mode,dir_mode",
                         [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_saved_models_follow_the_umask(tmp_path, mask, file_mode, dir_mode):
  def check():
    modes = _modes(tmp_path / "m")
    assert len(modes) >= 2
    for name, mode in modes.items():
      is_dir = os.path.isdir(tmp_path / "m" / name)
      assert mode == (dir_mode if is_dir else file_mode), (name, oct(mode))
  with _umask(mask):
    models.save_model(_toy(), tmp_path / "m")
    check()
    models.save_model(_toy(seed=3), tmp_path / "m", overwrite=True)
    check()


def test_saved_density_models_follow_the_umask_and_replace_their_own(
    tmp_path):
  dae = models.build_density_model("dae", dims=2, hidden=[4], seed=0)
  with _umask(0o022):
    models.save_density_model(dae, tmp_path / "d")
    models.save_density_model(dae, tmp_path / "d")  # its own: replaced
  modes = _modes(tmp_path / "d")
  assert len(modes) >= 2
  for name, mode in modes.items():
    is_dir = os.path.isdir(tmp_path / "d" / name)
    assert mode == (0o755 if is_dir else 0o644), (name, oct(mode))
  assert sorted(os.listdir(tmp_path)) == ["d"]
  loaded = models.load_density_model(tmp_path / "d")
  for a, b in zip(loaded.weights, dae.weights):
    assert (a.numpy() == b.numpy()).all()
