"""Density models: the registry, and saving/loading them.

The models here estimate (or, for the DAE, follow the gradient of) a density;
they are trained by the same trainer (`tfc_perception.training.fit`) but are
not codecs (no analysis/synthesis, no bit-streams), so they have their own
registry, apart from `tfc_perception.models.build_model`:

  "pixelcnn": `pixelcnn.PixelCNN`, a PixelCNN++ over 8-bit images (Obs. 1,
              Figs. 6-8);
  "dae":      `dae.DenoisingAutoencoder`, a dense denoising autoencoder
              (Fig. 9).

    model = build("pixelcnn", image_shape=(32, 32, 3), num_filters=32)
    save(model, "runs/pixelcnn")        # model.json + SavedModel, atomically
    model = load("runs/pixelcnn")
"""

import importlib
import os
from typing import Any, List

from tfc_perception import _io
from tfc_perception.models import _saved

__all__ = ["names", "model_class", "build", "save", "load"]

_REGISTRY = {
    "pixelcnn": "tfc_perception.models.pixelcnn:PixelCNN",
    "dae": "tfc_perception.models.dae:DenoisingAutoencoder",
}

_FORMAT = "tfc_perception.density_model"
# 1: model.json + weights.npz; 2: model.json + a SavedModel of the weights
# (the codecs' storage, `_saved`). Both are read.
_FORMAT_VERSION = 2
_READ_VERSIONS = (1, 2)
_CONFIG_FILE = "model.json"
_WEIGHTS_FILE = "weights.npz"


def names() -> List[str]:
  """Registered density model names, sorted."""
  return sorted(_REGISTRY)


def model_class(name: str):
  """The class registered under `name`.

  Raises:
    ValueError: unknown name (listing the registered ones).
  """
  if not isinstance(name, str) or name not in _REGISTRY:
    raise ValueError(f"Unknown density model {name!r}; accepted: "
                     f"{', '.join(names())}.")
  module, _, attr = _REGISTRY[name].partition(":")
  return getattr(importlib.import_module(module), attr)


def build(name: str, **kwargs):
  """Builds a registered density model with its constructor arguments
  (None values dropped: the class default applies).

  Raises:
    ValueError / TypeError: unknown name or invalid arguments.
  """
  cls = model_class(name)
  return cls(**{k: v for k, v in kwargs.items() if v is not None})


def registry_name(model) -> str:
  """The registry name of a density model instance.

  Raises:
    ValueError: not a registered density model.
  """
  for name in _REGISTRY:
    if type(model) is model_class(name):  # pylint: disable=unidiomatic-typecheck
      return name
  raise ValueError(f"{type(model).__name__} is not a registered density "
                   f"model; registered: {', '.join(names())}.")


def _is_ours(path: str) -> bool:
  config = os.path.join(path, _CONFIG_FILE)
  if not os.path.isfile(config):
    return False
  try:
    return _io.read_json(config).get("format") == _FORMAT
  except (ValueError, OSError, AttributeError):
    return False


def save(model, path) -> str:
  """Saves a density model as a directory in the codecs' model format
  (`tfc_perception.models._saved`): model.json (format
  "tfc_perception.density_model" version 2, registry name, config, number of
  weights) + a SavedModel of `model.weights` (no functions). Version-1
  directories (model.json + weights.npz) are still read by `load`.

  The directory is written next to `path` and renamed into place, so an
  interrupted save leaves no half-written model. An existing density model
  at `path` is replaced; anything else there is left alone (ValueError).

  Returns:
    The absolute path.

  Raises:
    ValueError: not a registered density model, or `path` holds something
      this function did not write.
  """
  name = registry_name(model)
  path = os.path.abspath(os.fspath(path))
  if os.path.exists(path) and not _is_ours(path):
    raise ValueError(f"{path} exists and is not a density model saved by "
                     "tfc_perception; refusing to replace it. Choose another "
                     "path or remove it yourself.")
  with _io.atomic_directory(path, lambda: os.path.exists(path)) as tmp:
    _saved.write(tmp, model.weights)
    _io.write_json(os.path.join(tmp, _CONFIG_FILE), {
        "format": _FORMAT, "format_version": _FORMAT_VERSION, "model": name,
        "class": type(model).__name__, "config": model.get_config(),
        "num_weights": len(model.weights),
        "versions": _io.library_versions()})
  return path


def load(path, **overrides: Any):
  """Loads a density model saved by `save`.

  Args:
    path: the directory.
    **overrides: constructor arguments to override.

  Raises:
    FileNotFoundError: nothing saved at `path`.
    ValueError: not a density model directory, or weights that do not match
      the config.
  """
  path = os.fspath(path)
  config_path = os.path.join(path, _CONFIG_FILE)
  if not os.path.isfile(config_path):
    raise FileNotFoundError(f"no saved density model at {path} "
                            f"({_CONFIG_FILE} is missing).")
  info = _io.read_json(config_path)
  if not isinstance(info, dict) or info.get("format") != _FORMAT:
    raise ValueError(f"{config_path} is not a tfc_perception density model "
                     "(codecs are loaded with models.load_model).")
  if info.get("format_version") not in _READ_VERSIONS:
    raise ValueError(f"{config_path} has format version "
                     f"{info.get('format_version')}; this library reads "
                     f"versions {', '.join(map(str, _READ_VERSIONS))}.")
  config = dict(info["config"])
  config.update(overrides)
  # The weights come from the file: building with the seed would only reseed
  # TensorFlow's global generator as a side effect. The seed stays part of
  # the config (it seeds training noise).
  seed = config.pop("seed", None)
  model = model_class(info["model"])(**config)
  if hasattr(model, "seed"):
    model.seed = seed
  if info["format_version"] == 1:
    _saved.read_npz(model.weights, os.path.join(path, _WEIGHTS_FILE))
  else:
    _saved.restore(model.weights, path, info.get("num_weights"))
  return model
