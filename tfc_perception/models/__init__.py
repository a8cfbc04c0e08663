"""Compressive autoencoders trained with Eq. 3, L = R + lambda * D.

Two registries. The codecs (`build_model`, `save_model`, `load_model`)
share one interface, the `protocol.Codec` protocol (see
`base.CompressionModel` and docs/models.md): analysis / quantize /
synthesis / call / reconstruct / compress / decompress, `rate_unit`, plus
`lmbda`, `distortion`, `get_config()` and Eq. 3 in `train_step`/`test_step`.
The density models (PixelCNN++, the DAE) are not codecs; they have their own
registry, `density` (`build_density_model`, `save_density_model`,
`load_density_model`). Both are trained by `tfc_perception.training.fit`.

    result = training.fit(
        lambda: build_model("factorized", quality=3, distortion="mse"),
        lambda start: images.random_crops(files, 256, 8, 0, start),
        TrainSpec(epochs=10, steps_per_epoch=1000, train_dir="runs/fp3"))
    save_model(result.model, "runs/fp3-model")
    model = load_model("runs/fp3")          # compresses immediately
    strings, x_shape, y_shape = model.compress(images_uint8)
    images = model.decompress(strings, x_shape, y_shape)

Codec names: "toy2d" (Fig. 10), "factorized" (Fig. 15), "softquant"
(Fig. 17); other codecs register with one line in `_REGISTRY` (the value is
"module:Class", imported on first use). Density model names: "pixelcnn",
"dae" (`density.names()`).
"""

import importlib
import json
import os
from typing import Any, Optional

from tfc_perception import _io

__all__ = ["build_model", "save_model", "load_model", "registered_models",
           "model_class", "is_saved_model", "check_save_path", "Codec",
           "build_density_model", "save_density_model", "load_density_model",
           "density_models"]

from tfc_perception.models import _saved
from tfc_perception.models import density as _density
from tfc_perception.models.protocol import Codec

# The codecs: name -> "module:Class" (imported lazily, so registering costs
# nothing).
_REGISTRY = {
    "toy2d": "tfc_perception.models.toy2d:Toy2DCompressor",
    "factorized": "tfc_perception.models.factorized:FactorizedPrior",
    "softquant": "tfc_perception.models.softquant:SoftQuantizedAutoencoder",
}

build_density_model = _density.build
save_density_model = _density.save
load_density_model = _density.load
density_models = _density.names

_FORMAT = "tfc_perception.model"
# 1: model.json + weights.npz (release 1; still read). 2: a SavedModel.
_FORMAT_VERSION = 2
_READ_VERSIONS = (1, 2)
_CONFIG_FILE = "model.json"
_WEIGHTS_FILE = "weights.npz"  # Format 1.
# Everything save_model writes into a model directory (either format): a
# saved model holding anything else is not replaced (those files would be
# lost).
_MODEL_FILES = (_CONFIG_FILE, _WEIGHTS_FILE) + _saved.FILES


def registered_models():
  """Codec names accepted by build_model, sorted."""
  return sorted(_REGISTRY)


def model_class(name: str):
  """The codec class registered under `name`.

  Raises:
    ValueError: unknown name (the message lists the registered names and
      points density models to their registry).
  """
  if not isinstance(name, str) or name not in _REGISTRY:
    hint = (f" ({name!r} is a density model: use build_density_model)"
            if name in _density.names() else "")
    raise ValueError(f"Unknown model {name!r}; accepted: "
                     f"{', '.join(registered_models())}{hint}.")
  target = _REGISTRY[name]
  if not isinstance(target, str):  # A class registered directly.
    return target
  module, _, attr = target.partition(":")
  return getattr(importlib.import_module(module), attr)


def build_model(name: str, **kwargs):
  """Builds a registered model with its constructor keyword arguments.

  Args:
    name: "toy2d", "factorized", "softquant" (or another registered name).
    **kwargs: the class's arguments, e.g. distortion (str), lmbda (float > 0),
      quality (int 1..8; "factorized" only: picks N, M and lambda from the
      table of `distortion`, see FactorizedPrior.from_quality), num_filters,
      latent_channels, num_centers, density_fn (callable x -> P(x)), seed,
      and model options (toy2d: widths, depth, activation, latent_dims).
      Arguments that are None are dropped (the class default applies).

  Returns:
    A `CompressionModel` with all weights created.

  Raises:
    TypeError: an argument the model does not take (e.g. a typo such as
      num_filter), naming it and the accepted ones.
    ValueError: unknown name, invalid values, or contradictory arguments
      (e.g. both quality and lmbda).
  """
  import inspect  # pylint: disable=g-import-not-at-top
  cls = model_class(name)
  kwargs = {k: v for k, v in kwargs.items() if v is not None}
  accepted = {"name", "dtype", "trainable"}
  accepted.update(
      n for n, p in inspect.signature(cls.__init__).parameters.items()
      if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
  quality = kwargs.pop("quality", None)
  unknown = sorted(k for k in kwargs if k not in accepted)
  if unknown:
    raise TypeError(
        f"build_model({name!r}) got unexpected argument(s) "
        f"{', '.join(unknown)}; accepted: {', '.join(sorted(accepted))}.")
  if quality is not None:
    from_quality = getattr(cls, "from_quality", None)
    if from_quality is None:
      raise ValueError(f"model {name!r} has no quality levels; give lmbda "
                       "instead of quality (quality applies to factorized).")
    if "lmbda" in kwargs:
      raise ValueError("give either quality or lmbda, not both: quality sets "
                       "lambda from the table (docs/models.md).")
    metric = kwargs.pop("distortion", "mse")
    return from_quality(quality, metric, **kwargs)
  return cls(**kwargs)


def _registry_name(model) -> str:
  for name in _REGISTRY:
    try:
      if type(model) is model_class(name):  # pylint: disable=unidiomatic-typecheck
        return name
    except (ImportError, AttributeError):
      continue
  try:
    density_name = _density.registry_name(model)
  except ValueError:
    density_name = None
  if density_name is not None:
    raise ValueError(f"{type(model).__name__} ({density_name!r}) is a density "
                     "model, not a codec; save it with save_density_model.")
  raise ValueError(f"{type(model).__name__} is not a registered codec; "
                   f"registered: {', '.join(registered_models())}.")


def is_saved_model(path) -> bool:
  """True if `path` is a directory written by `save_model` (its model.json
  names this package's model format)."""
  try:
    read_model_info(path)
  except (OSError, ValueError):
    return False
  return os.path.isdir(path)


def check_save_path(path, overwrite: bool = False) -> bool:
  """Checks that `save_model(..., path, overwrite)` may write `path`.

  save_model never deletes or replaces what this package did not write:
  `path` must not exist, be an empty folder, or (with `overwrite=True`) hold
  a model saved by `save_model` and nothing else.

  Args:
    path: the destination directory.
    overwrite: whether an existing saved model may be replaced.

  Returns:
    True if `path` holds a saved model that will be replaced.

  Raises:
    ValueError: `path` is a file or a link, a non-empty folder that is not a
      saved model, a saved model with files save_model did not write, or a
      saved model and `overwrite` is False.
  """
  path = os.fspath(path)
  if os.path.islink(path):
    raise ValueError(f"{path} is a symbolic link; give the folder it points "
                     "to (or a new path) to save a model.")
  if not os.path.lexists(path):
    return False
  if not os.path.isdir(path):
    raise ValueError(f"{path} is a file; save_model writes a directory and "
                     "never replaces a file: choose another path.")
  entries = sorted(os.listdir(path))
  if not entries:
    return False
  if not is_saved_model(path):
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise ValueError(
        f"{path} is a non-empty folder ({len(entries)} entries: {shown}) that "
        "is not a model saved by tfc_perception; save_model never deletes "
        "what it did not write: choose a new or empty folder.")
  extra = [e for e in entries if e not in _MODEL_FILES]
  if extra:
    raise ValueError(
        f"{path} holds a saved model but also files save_model did not write "
        f"({', '.join(extra[:3])}{', ...' if len(extra) > 3 else ''}); move "
        "them out or choose another path: they would be deleted with the "
        "old model.")
  if not overwrite:
    raise ValueError(
        f"{path} already holds a saved model; pass overwrite=True (bin/train "
        "--overwrite) to replace it, or choose another path.")
  return True


def save_model(model, path, overwrite: bool = False) -> str:
  """Saves a model as a SavedModel directory that tfc_perception and plain
  TensorFlow both read.

  The directory holds:
    - model.json: format ("tfc_perception.model", version 2), registry name,
      class, Keras config (`get_config()`), fingerprint, rate unit, library
      versions: what `load_model` needs to rebuild the model;
    - saved_model.pb + variables/: a SavedModel whose root object has
      `weights` (`model.weights`, in order: the trainable weights, the
      symbol pmf and the range coding tables) and the traced `compress` /
      `decompress` functions, also as signatures. So
      `m = tf.saved_model.load(path)` in a process that imports
      tensorflow_compression (for the range coder ops) but not tfc_perception
      codes images: `strings, x_shape, y_shape = m.compress(uint8_images)`,
      `m.decompress(strings, x_shape, y_shape)`.
  Optimizer state is not included (bin/train's checkpoints hold it).

  The model is finalized first (`model.finalize()`: range coding tables
  built from the current weights), so the saved tables are those of the
  saved weights. The directory is written next to `path` and renamed into place,
  so an interrupted save never leaves a half-written model. What is at
  `path` is never deleted unless it is a model written by save_model (either
  format) and `overwrite` is True (see `check_save_path`); the old model is
  then swapped out by two renames and removed only after the new one is in
  place.

  Args:
    model: a codec built by `build_model` (or a registered codec class);
      density models are saved with `save_density_model`.
    path: destination directory: new, empty, or (with `overwrite`) a saved
      model.
    overwrite: replace a model saved at `path`.

  Returns:
    The model's fingerprint (hex SHA-256, also recorded in compressed files).

  Raises:
    ValueError: not a registered codec (e.g. a density model), or `path`
      may not be written (see `check_save_path`).
  """
  name = _registry_name(model)
  path = os.path.abspath(os.fspath(path))
  check_save_path(path, overwrite)
  model.finalize()
  # Checked again just before the swap (the folder may have changed).
  with _io.atomic_directory(
      path, lambda: check_save_path(path, overwrite)) as tmp:
    signatures = {"compress": model.traced_compress.get_concrete_function(),
                  "decompress": model.traced_decompress.get_concrete_function()}
    _saved.write(tmp, model.weights,
                 {"compress": model.traced_compress,
                  "decompress": model.traced_decompress}, signatures)
    fingerprint = model.fingerprint()
    _io.write_json(os.path.join(tmp, _CONFIG_FILE), {
        "format": _FORMAT, "format_version": _FORMAT_VERSION,
        "model": name, "class": type(model).__name__,
        "config": model.get_config(), "fingerprint": fingerprint,
        "rate_unit": model.rate_unit, "num_weights": len(model.weights),
        "signatures": sorted(signatures),
        "versions": _io.library_versions()})
  return fingerprint


def read_model_info(path) -> dict:
  """Reads and checks model.json of a saved model directory.

  Raises:
    FileNotFoundError: no saved model at `path`.
    ValueError: not a tfc_perception model directory / unknown version.
  """
  path = os.fspath(path)
  config_path = os.path.join(path, _CONFIG_FILE)
  if not os.path.isfile(config_path):
    raise FileNotFoundError(
        f"no saved model at {path} ({_CONFIG_FILE} is missing); give a "
        "directory written by tfc_perception.models.save_model or bin/train "
        "--export.")
  try:
    info = _io.read_json(config_path)
  except (ValueError, UnicodeDecodeError) as e:
    raise ValueError(f"{config_path} is not valid JSON: {e}") from None
  if not isinstance(info, dict) or info.get("format") != _FORMAT:
    raise ValueError(f"{config_path} is not a tfc_perception model file.")
  if info.get("format_version") not in _READ_VERSIONS:
    raise ValueError(f"{config_path} has format version "
                     f"{info.get('format_version')}; this library reads "
                     f"versions {', '.join(map(str, _READ_VERSIONS))}.")
  return info


def load_model(path, density_fn=None, **overrides: Any):
  """Loads a model saved by `save_model`, ready to compress/decompress.

  Reads both formats: the SavedModel directories of `save_model` (format 2:
  the weights and the saved range coding tables are restored, and the tables
  are checked against the restored prior) and the model.json + weights.npz
  directories of release 1 (format 1: the weights are loaded and
  `finalize()` builds the tables; the bit-streams are those of release 1).

  Args:
    path: directory written by `save_model`.
    density_fn: callable x -> P(x), needed only to train/evaluate a model
      whose distortion is density weighted (it is not saved).
    **overrides: config entries to override (e.g. lmbda for fine-tuning);
      entries that change the architecture are rejected by the weight check.

  Returns:
    The model.

  Raises:
    FileNotFoundError / ValueError: missing, malformed or inconsistent model
      directory (e.g. weights not matching the config).
  """
  from tfc_perception.distances import registry  # pylint: disable=g-import-not-at-top
  from tfc_perception.models import base  # pylint: disable=g-import-not-at-top
  info = read_model_info(path)
  cls = model_class(info["model"])
  config = dict(info["config"])
  config.update(overrides)
  config.pop("seed", None)  # Weights come from the checkpoint.
  if registry.get(config.get("distortion", "mse"),
                  "distortion").needs_density:
    config["density_fn"] = density_fn if density_fn is not None else (
        base._MissingDensity())  # pylint: disable=protected-access
  elif density_fn is not None:
    config["density_fn"] = density_fn
  model = cls(**config)
  if info["format_version"] == 1:
    state = model.coding_state_variables()
    _saved.read_npz(
        [v for v in model.weights if not any(v is s for s in state)],
        os.path.join(os.fspath(path), _WEIGHTS_FILE))
    model.finalize()
  else:
    _saved.restore(model.weights, path, info.get("num_weights"))
    if not model.is_finalized():
      raise ValueError(f"{path}: the saved range coding tables do not belong "
                       "to the saved prior (the directory is corrupted or was "
                       "edited).")
  if not overrides and model.fingerprint() != info.get("fingerprint"):
    raise ValueError(f"{path}: the loaded weights do not match the recorded "
                     "fingerprint (the directory is corrupted or was edited).")
  return model
