"""Storage of a model's weights in the one model format: a TensorFlow
SavedModel beside the model.json that rebuilds the model.

The SavedModel's root object has `weights` (`model.weights`, in order) and,
for codecs, the traced `compress` / `decompress` functions, also as serving
signatures (see `tfc_perception.models.save_model`). Weights are restored by
position into a model rebuilt from its config, with shape checks. The
model.json + weights.npz directories of release 1 are read by `read_npz`.
Used by `save_model` / `load_model` (codecs) and `density.save` /
`density.load` (density models).
"""

import os
from typing import Mapping, Optional, Sequence

__all__ = ["FILES", "write", "restore", "read_npz"]

# What `write` puts into a directory.
FILES = ("saved_model.pb", "variables", "assets", "fingerprint.pb")
_VARIABLES = os.path.join("variables", "variables")


def write(directory, weights: Sequence, functions: Optional[Mapping] = None,
          signatures: Optional[Mapping] = None) -> None:
  """Writes a SavedModel of `weights` (and `functions`, `signatures`) into
  `directory` (an existing, empty temporary folder)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  root = tf.Module()
  root.weights = list(weights)
  for name, fn in (functions or {}).items():
    setattr(root, name, fn)
  tf.saved_model.save(root, os.fspath(directory),
                      signatures=dict(signatures) if signatures else None)


def restore(weights: Sequence, directory, count) -> None:
  """Restores `weights` (a rebuilt model's, in order) from a SavedModel
  written by `write`.

  Args:
    weights: the variables to fill.
    directory: the model directory.
    count: the number of weights its model.json records.

  Raises:
    FileNotFoundError: the SavedModel's variables are missing.
    ValueError: another number of weights, or shapes that do not match.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  prefix = os.path.join(os.fspath(directory), _VARIABLES)
  if not os.path.isfile(prefix + ".index"):
    raise FileNotFoundError(f"{prefix}.index is missing: the model directory "
                            "is incomplete.")
  weights = list(weights)
  if count != len(weights):
    raise ValueError(f"{directory} holds {count} weights but the model built "
                     f"from its config has {len(weights)}; the directory does "
                     "not match this library version/config.")
  try:
    status = tf.train.Checkpoint(weights=weights).read(prefix)
    status.assert_existing_objects_matched().expect_partial()
  except (tf.errors.OpError, AssertionError, ValueError) as e:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e)
    raise ValueError(f"{directory}: the saved weights could not be restored "
                     f"into the model built from its config: {text}") from None


def read_npz(weights: Sequence, path) -> None:
  """Loads a release-1 weights.npz (arrays w0000, w0001, ... in the order of
  the weights) into `weights`.

  Raises:
    FileNotFoundError: no such file.
    ValueError: unreadable, another number of arrays, or other shapes.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} is missing: the model directory is "
                            "incomplete.")
  try:
    with np.load(path, allow_pickle=False) as data:
      count = sum(1 for k in data.files if k.startswith("w"))
      arrays = [data[f"w{i:04d}"] for i in range(count)]
  except (OSError, ValueError, KeyError) as e:
    raise ValueError(f"{path} is not a readable weights file: {e}") from None
  weights = list(weights)
  if len(arrays) != len(weights):
    raise ValueError(f"{path} holds {len(arrays)} arrays but the model built "
                     f"from its config has {len(weights)} weights; the "
                     "directory does not match this library version/config.")
  for v, a in zip(weights, arrays):
    if tuple(v.shape) != a.shape:
      raise ValueError(f"{path}: weight {v.name} has shape {tuple(v.shape)} "
                       f"in the model but {a.shape} in the file.")
  tf.keras.backend.batch_set_value(zip(weights, arrays))
