"""Helpers shared by the image experiments (sensitivity, contrast, scarce_data,
nlpd_vs_mse): where the data is, train/held-out splits, image loading.

Config values naming image data may be a path (folder, glob or file) or
"shared:<sub/path>", which resolves under the shared data folder: the
environment variable TFC_PERCEPTION_SHARED_DATA if set, else ../shared/data
next to the repository (the layout of the development machines).
"""

import os
from typing import List, Sequence, Tuple

import numpy as np

__all__ = ["shared_data_dir", "resolve_data", "split_files", "load_images"]

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def shared_data_dir() -> str:
  """The shared data folder (TFC_PERCEPTION_SHARED_DATA or ../shared/data)."""
  return os.environ.get(
      "TFC_PERCEPTION_SHARED_DATA",
      os.path.join(os.path.dirname(_REPO_ROOT), "shared", "data"))


def resolve_data(spec: str) -> str:
  """A data spec from a config -> a path that exists.

  Args:
    spec: a path (folder, glob pattern or file) or "shared:<sub/path>".

  Returns:
    The path (globs are returned as they are, unchecked).

  Raises:
    FileNotFoundError: the path does not exist, with the accepted forms.
  """
  if not isinstance(spec, str) or not spec:
    raise ValueError(f"image data must be a non-empty path string, got "
                     f"{spec!r}.")
  path = spec
  if spec.startswith("shared:"):
    path = os.path.join(shared_data_dir(), spec[len("shared:"):])
  if any(c in path for c in "*?["):
    return path
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"image data {spec!r} not found (looked at {path}). Give a folder, a "
        "glob or 'shared:<sub/path>' (resolved under $TFC_PERCEPTION_SHARED_DATA"
        " or ../shared/data); with bin/reproduce, pass --set images=PATH.")
  return path


def split_files(files: Sequence[str], num_eval: int, num_train: int,
                seed: int) -> Tuple[List[str], List[str]]:
  """A seeded split of `files` into disjoint (train, held-out) lists.

  Args:
    files: image files (order does not matter: they are sorted first).
    num_eval: number of held-out files (>= 1).
    num_train: number of training files (0 = all the others).
    seed: permutation seed.

  Returns:
    (train_files, eval_files), each sorted.

  Raises:
    ValueError: not enough files.
  """
  files = sorted(files)
  if num_eval < 1:
    raise ValueError(f"num_eval must be >= 1, got {num_eval}.")
  if num_train < 0:
    raise ValueError(f"num_train must be >= 0 (0 = all others), got "
                     f"{num_train}.")
  if len(files) < num_eval + max(num_train, 1):
    raise ValueError(f"need at least {num_eval + max(num_train, 1)} images "
                     f"({num_eval} held out + {max(num_train, 1)} for "
                     f"training), found {len(files)}.")
  order = np.random.default_rng(seed).permutation(len(files))
  held = [files[i] for i in order[:num_eval]]
  rest = [files[i] for i in order[num_eval:]]
  if num_train:
    rest = rest[:num_train]
  return sorted(rest), sorted(held)


def load_images(files: Sequence[str]) -> List[np.ndarray]:
  """Reads images as uint8 RGB arrays [H, W, 3] (Pillow).

  Raises:
    FileNotFoundError / ValueError: unreadable files (naming them).
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  out = []
  for f in files:
    try:
      with Image.open(f) as im:
        out.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
    except OSError as e:
      raise ValueError(f"cannot read image {f}: {e}") from None
  return out
