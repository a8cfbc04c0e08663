"""CIFAR-10 from its official python batches (lossless, as the paper used).

The dataset's "CIFAR-10 python version" (cifar-10-python.tar.gz, from
https://www.cs.toronto.edu/~kriz/cifar.html) unpacks to a folder
`cifar-10-batches-py/` holding five training batches `data_batch_1` ...
`data_batch_5` (10,000 images each) and `test_batch` (10,000). Each batch is
a Python pickle of a dict with

  b"data"     uint8 array [10000, 3072]: each row one 32x32 image, the 1024
              red values first, then green, then blue, each plane in row-
              major order;
  b"labels"   10000 integers in 0..9;
  b"filenames", b"batch_label"   (not needed here).

Observation 1 of Hepburn et al. (ICLR 2022) uses a PixelCNN++ trained on the
training batches and evaluated on test images: `load` returns those images as
uint8 arrays [N, 32, 32, 3] without any lossy step (unlike the JPEG copy of
the test set in ../shared/data, which stays the offline default of the
experiment).

Pickles can run code when they are loaded. The batches are read with an
unpickler that accepts only what the official files contain (numpy arrays,
dtypes, bytes); anything else is refused with an error naming the file.
"""

import os
import pickle
from typing import List, Sequence, Tuple

import numpy as np

__all__ = ["TRAIN_BATCHES", "TEST_BATCHES", "is_batches_folder", "read_batch",
           "load"]

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
_SPLITS = {"train": TRAIN_BATCHES, "test": TEST_BATCHES}

# The globals the official batches (and numpy arrays pickled with protocol 2)
# need; nothing else is ever looked up.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
  """An unpickler that resolves only `_ALLOWED_GLOBALS`."""

  def find_class(self, module, name):
    if (module, name) in _ALLOWED_GLOBALS:
      return super().find_class(module, name)
    raise pickle.UnpicklingError(
        f"refusing to load {module}.{name}: not part of a CIFAR-10 batch")


def is_batches_folder(path: str) -> bool:
  """Whether `path` is a folder holding the official python batches (all of
  data_batch_1..5 and test_batch)."""
  return isinstance(path, (str, os.PathLike)) and os.path.isdir(path) and all(
      os.path.isfile(os.path.join(path, b)) for b in TRAIN_BATCHES
      + TEST_BATCHES)


def _field(batch: dict, key: str, path: str):
  for k in (key.encode("ascii"), key):
    if k in batch:
      return batch[k]
  raise ValueError(f"{path} is not a CIFAR-10 python batch: it has no "
                   f"{key!r} entry (keys: {sorted(map(str, batch))}).")


def read_batch(path: str) -> Tuple[np.ndarray, np.ndarray]:
  """One official batch file -> (images uint8 [N, 32, 32, 3], labels int64 [N]).

  Args:
    path: a batch file (e.g. cifar-10-batches-py/test_batch).

  Returns:
    (images, labels), in the order of the file.

  Raises:
    FileNotFoundError: no such file.
    ValueError: the file is not a CIFAR-10 batch (not a pickle of the
      official layout, or it names anything but numpy arrays).
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"CIFAR-10 batch {path!r} does not exist.")
  try:
    with open(path, "rb") as f:
      batch = _BatchUnpickler(f, encoding="bytes").load()
  except (pickle.UnpicklingError, EOFError, AttributeError, ImportError,
          IndexError, TypeError, ValueError) as e:
    raise ValueError(f"{path} is not a CIFAR-10 python batch ({e}).") from e
  if not isinstance(batch, dict):
    raise ValueError(f"{path} is not a CIFAR-10 python batch: it holds a "
                     f"{type(batch).__name__}, not a dict.")
  data = _field(batch, "data", path)
  labels = np.asarray(_field(batch, "labels", path))
  if (not isinstance(data, np.ndarray) or data.dtype != np.uint8
      or data.ndim != 2 or data.shape[1] != 3 * 32 * 32):
    raise ValueError(
        f"{path}: 'data' must be a uint8 array [N, 3072] (32x32 RGB planes), "
        f"got {getattr(data, 'dtype', type(data).__name__)} "
        f"{getattr(data, 'shape', '')}.")
  if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype,
                                                           np.integer):
    raise ValueError(f"{path}: 'labels' must hold one integer per image "
                     f"({data.shape[0]}), got shape {labels.shape}.")
  images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), labels.astype(np.int64)


def load(folder: str, split: str) -> Tuple[np.ndarray, np.ndarray]:
  """The images and labels of one split, from the official batches.

  Args:
    folder: the cifar-10-batches-py folder.
    split: "train" (data_batch_1..5, 50,000 images) or "test" (test_batch,
      10,000).

  Returns:
    (images uint8 [N, 32, 32, 3], labels int64 [N]), batches in order.

  Raises:
    ValueError: unknown split, or a batch that is not in the official
      format.
    FileNotFoundError: the folder lacks a batch of the split.
  """
  if split not in _SPLITS:
    raise ValueError(f"split must be one of {', '.join(_SPLITS)}, got "
                     f"{split!r}.")
  names: Sequence[str] = _SPLITS[split]
  missing = [n for n in names if not os.path.isfile(os.path.join(folder, n))]
  if missing:
    raise FileNotFoundError(
        f"{folder!r} is not a CIFAR-10 python-batches folder: missing "
        f"{', '.join(missing)} (expected data_batch_1..5 and test_batch, as "
        "unpacked from cifar-10-python.tar.gz).")
  parts: List[Tuple[np.ndarray, np.ndarray]] = [
      read_batch(os.path.join(folder, n)) for n in names]
  return (np.concatenate([p[0] for p in parts]),
          np.concatenate([p[1] for p in parts]))
