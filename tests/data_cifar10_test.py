"""CIFAR-10 from the official python batches (tfc_perception.data.cifar10),
on tiny batches written here in the official format (a protocol-2 pickle of a
dict with bytes keys, 'data' a uint8 array [N, 3072] of R, G, B planes)."""

import os
import pickle

import numpy as np
import pytest

from tfc_perception.data import cifar10


def _planes(n, seed):
  """n images [n, 32, 32, 3] whose R, G and B planes all differ."""
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def write_batch(path, images, labels):
  """The official layout: each row the 1024 red values (row-major), then the
  green, then the blue ones."""
  rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
  batch = {b"batch_label": b"testing batch 1 of 1", b"labels": list(labels),
           b"data": np.ascontiguousarray(rows),
           b"filenames": [f"img_{i}.png".encode() for i in range(len(images))]}
  with open(path, "wb") as f:
    pickle.dump(batch, f, protocol=2)


def write_folder(folder, n_per_batch=3):
  """A cifar-10-batches-py folder: 5 training batches and a test batch."""
  os.makedirs(folder, exist_ok=True)
  out = {}
  for i, name in enumerate(cifar10.TRAIN_BATCHES + cifar10.TEST_BATCHES):
    images = _planes(n_per_batch, i)
    labels = [(i + k) % 10 for k in range(n_per_batch)]
    write_batch(os.path.join(folder, name), images, labels)
    out[name] = (images, labels)
  return out


def test_read_batch_restores_the_pixels_of_the_official_layout(tmp_path):
  images = np.zeros((2, 32, 32, 3), np.uint8)
  images[0, :, :, 0], images[0, :, :, 1], images[0, :, :, 2] = 10, 20, 30
  images[1, 5, 7] = (200, 100, 50)
  write_batch(tmp_path / "b", images, [3, 9])
  got, labels = cifar10.read_batch(str(tmp_path / "b"))
  assert got.dtype == np.uint8 and got.shape == (2, 32, 32, 3)
  assert tuple(got[0, 31, 0]) == (10, 20, 30)
  assert tuple(got[1, 5, 7]) == (200, 100, 50)
  assert tuple(got[1, 7, 5]) == (0, 0, 0)  # Rows and columns not swapped.
  np.testing.assert_array_equal(labels, [3, 9])
  # By hand: pixel (5, 7) of image 1 is entry 5*32+7 of each plane.
  with open(tmp_path / "b", "rb") as f:
    raw = pickle.load(f, encoding="bytes")[b"data"]
  assert (raw[1, 5 * 32 + 7], raw[1, 1024 + 5 * 32 + 7],
          raw[1, 2048 + 5 * 32 + 7]) == (200, 100, 50)


def test_load_concatenates_the_batches_of_a_split(tmp_path):
  written = write_folder(tmp_path / "cifar-10-batches-py")
  folder = str(tmp_path / "cifar-10-batches-py")
  assert cifar10.is_batches_folder(folder)
  train, train_labels = cifar10.load(folder, "train")
  assert train.shape == (15, 32, 32, 3)
  np.testing.assert_array_equal(train[3:6], written["data_batch_2"][0])
  assert list(train_labels[:3]) == written["data_batch_1"][1]
  test, _ = cifar10.load(folder, "test")
  np.testing.assert_array_equal(test, written["test_batch"][0])
  with pytest.raises(ValueError, match="split must be"):
    cifar10.load(folder, "validation")
  os.remove(os.path.join(folder, "data_batch_4"))
  assert not cifar10.is_batches_folder(folder)
  with pytest.raises(FileNotFoundError, match="data_batch_4"):
    cifar10.load(folder, "train")


class _Payload:
  def __reduce__(self):
    return (os.system, ("echo should-not-run",))


def test_a_pickle_naming_other_code_is_refused(tmp_path):
  path = tmp_path / "data_batch_1"
  with open(path, "wb") as f:
    pickle.dump({b"data": _Payload(), b"labels": []}, f, protocol=2)
  with pytest.raises(ValueError, match="refusing to load"):
    cifar10.read_batch(str(path))


def test_files_that_are_not_batches_are_named(tmp_path):
  bad = tmp_path / "x"
  bad.write_bytes(b"not a pickle")
  with pytest.raises(ValueError, match="not a CIFAR-10 python batch"):
    cifar10.read_batch(str(bad))
  with open(bad, "wb") as f:
    pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]},
                f, protocol=2)
  with pytest.raises(ValueError, match=r"uint8 array \[N, 3072\]"):
    cifar10.read_batch(str(bad))
  with open(bad, "wb") as f:
    pickle.dump({b"labels": [0]}, f, protocol=2)
  with pytest.raises(ValueError, match="no 'data' entry"):
    cifar10.read_batch(str(bad))
  with pytest.raises(FileNotFoundError):
    cifar10.read_batch(str(tmp_path / "missing"))
