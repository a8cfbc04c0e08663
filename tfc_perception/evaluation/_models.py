"""Model specifications for the evaluators: names, paths, ranges, loading.

A model is given as
- a pretrained name known to `tfc_perception.pretrained`
  (e.g. "bmshj2018-factorized-mse-3"), or a range of them
  ("bmshj2018-factorized-mse-1..8" expands to -1 ... -8);
- a path: a folder written by `tfc_perception.models.save_model`, or a
  tfci .metagraph file (loaded by `tfc_perception.pretrained.load`).

Tensor names given for tfci models (`tensors`, the `--tensors` flag) are
passed to `pretrained.load` and are part of each model's cache key.
"""

import hashlib
import json
import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

__all__ = ["expand_model_specs", "LoadedModel", "load_models",
           "model_family"]

_RANGE = re.compile(r"^(?P<prefix>.*?)(?P<lo>\d+)\.\.(?P<hi>\d+)$")
_QUALITY = re.compile(r"^(?P<family>.+?)-(?P<q>\d+)$")


def expand_model_specs(specs: Union[str, Sequence[str]]) -> List[str]:
  """Splits a comma-separated list and expands ranges "name-1..8".

  Args:
    specs: "a,b-1..3" or a list of such strings.

  Returns:
    The list of model specs, ranges expanded in order, duplicates removed.

  Raises:
    ValueError: empty list, or a range whose end is below its start.
  """
  if isinstance(specs, str):
    specs = [specs]
  out: List[str] = []
  for item in specs:
    for spec in str(item).split(","):
      spec = spec.strip()
      if not spec:
        continue
      m = _RANGE.match(spec)
      if m and not os.path.exists(spec):
        lo, hi = int(m.group("lo")), int(m.group("hi"))
        if hi < lo:
          raise ValueError(f"model range {spec!r} ends ({hi}) before it starts "
                           f"({lo}); write e.g. name-1..8.")
        expanded = [f"{m.group('prefix')}{q}" for q in range(lo, hi + 1)]
      else:
        expanded = [spec]
      for e in expanded:
        if e not in out:
          out.append(e)
  if not out:
    raise ValueError("no model given: pass names or paths, e.g. "
                     "bmshj2018-factorized-mse-1..8 or a saved model folder.")
  return out


def model_family(name: str, model: Any = None) -> Tuple[str, str,
                                                        Optional[int]]:
  """(family, distortion, quality) of a model, for grouping curves.

  The family is the name without a trailing "-<quality>"; the distortion is
  the model's `distortion` attribute, else the metric named in the name (a
  name or alias of `tfc_perception.distances.registry` between "-"/"_"
  separators, e.g. "bmshj2018-factorized-msssim-3" -> "msssim"), else
  "unknown".
  """
  m = _QUALITY.match(name)
  family, quality = (m.group("family"), int(m.group("q"))) if m else (name,
                                                                      None)
  distortion = getattr(model, "distortion", None) if model is not None else None
  if not isinstance(distortion, str) or not distortion:
    distortion = _distortion_in_name(family)
  return family, distortion, quality


def _distortion_in_name(name: str) -> str:
  """The registered metric named by "-"/"_"-separated words of `name` (the
  longest match, so "nlpd_rgb" wins over "nlpd"), or "unknown"."""
  from tfc_perception.distances import registry  # pylint: disable=g-import-not-at-top
  words = re.split(r"[-_]", name.lower())
  best = None
  for i in range(len(words)):
    for j in range(len(words), i, -1):
      for sep in ("_", "-"):
        try:
          metric = registry.get(sep.join(words[i:j]))
        except ValueError:
          continue
        if best is None or j - i > best[0]:
          best = (j - i, metric.name)
  return best[1] if best else "unknown"


class LoadedModel:
  """A model spec, loaded on first use of `.model`, with its cache key.

  Attributes:
    spec: the spec as given (name or path).
    name: display name (file/folder name for paths).
    tensors: {role: tensor name} passed to `pretrained.load` for a tfci
      model ({} for none).
    key: cache key: readable name + hash of the model identity (the saved
      model's weight fingerprint, a file's path/size/mtime, or the
      pretrained name, and the tensor names) -- computed without loading
      the model, so a fully cached evaluation never builds it.
    family, distortion, quality: see `model_family`.
  """

  def __init__(self, spec: str, name: str, model: Any = None,
               tensors: Optional[Dict[str, str]] = None):
    self.spec = spec
    self.name = name
    self.tensors = dict(tensors or {})
    self._model = model
    info = _saved_info(spec) if model is None else None
    distortion = None
    if info is not None:
      distortion = info.get("config", {}).get("distortion")
    self.family, self.distortion, self.quality = model_family(
        name, model if model is not None else _Attr(distortion))
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60]
    self.key = f"{safe}-{_identity(spec, model, info, self.tensors)}"

  @property
  def model(self):
    if self._model is None:
      self._model = _load_one(self.spec, self.tensors)
    return self._model

  @property
  def loaded(self) -> bool:
    return self._model is not None

  def __repr__(self):
    return f"LoadedModel({self.name!r}, key={self.key!r})"


class _Attr:
  def __init__(self, distortion):
    self.distortion = distortion


def _saved_info(spec: str) -> Optional[dict]:
  """model.json of a folder written by models.save_model, else None."""
  if not (os.path.isdir(spec) and os.path.isfile(os.path.join(spec,
                                                              "model.json"))):
    return None
  try:
    with open(os.path.join(spec, "model.json"), "r", encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _registry_tensors(spec: str) -> Dict[str, str]:
  """The tensor names the shipped registry gives for a pretrained name."""
  try:
    from tfc_perception import pretrained  # pylint: disable=g-import-not-at-top
    reg = pretrained.default_registry()
    return reg.model_tensors(spec) if spec in reg else {}
  except (ImportError, KeyError):
    return {}


def _identity(spec: str, model: Any, info: Optional[dict],
              tensors: Optional[Dict[str, str]] = None) -> str:
  parts = [spec]
  names = dict(_registry_tensors(spec), **(tensors or {}))
  if names:  # other tensors give other latents and reconstructions
    parts.append(json.dumps(names, sort_keys=True))
  if info is not None:
    parts.append(json.dumps(info.get("config"), sort_keys=True, default=str))
    parts.append(str(info.get("fingerprint")))
    if not info.get("fingerprint"):  # fall back to the files' state
      for d, _, files in os.walk(spec):
        for f in sorted(files):
          st = os.stat(os.path.join(d, f))
          parts.append(f"{f}:{st.st_size}:{st.st_mtime_ns}")
  elif os.path.exists(spec):
    parts.append(os.path.abspath(spec))
    for d, _, files in (os.walk(spec) if os.path.isdir(spec) else
                        [(os.path.dirname(spec), None,
                          [os.path.basename(spec)])]):
      for f in sorted(files):
        st = os.stat(os.path.join(d, f))
        parts.append(f"{f}:{st.st_size}:{st.st_mtime_ns}")
  if model is not None:
    for getter in ("get_config", "fingerprint"):
      try:
        parts.append(json.dumps(getattr(model, getter)(), sort_keys=True,
                                default=str))
      except Exception:  # pylint: disable=broad-except
        pass
  return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:10]


def _load_one(spec: str, tensors: Optional[Dict[str, str]] = None):
  if os.path.exists(spec):
    if os.path.isfile(spec) and spec.endswith(".metagraph"):
      from tfc_perception import pretrained  # pylint: disable=g-import-not-at-top
      return pretrained.load(spec, tensors=tensors)
    from tfc_perception import models  # pylint: disable=g-import-not-at-top
    return models.load_model(spec)
  try:
    from tfc_perception import pretrained  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ValueError(f"{spec!r} is not an existing path, and pretrained models "
                     f"are not available ({e}).") from e
  return pretrained.load(spec, tensors=tensors)


def _check_names(names: Sequence[str]) -> None:
  """Fails early for names that are neither paths nor pretrained models."""
  if not names:
    return
  try:
    from tfc_perception import pretrained  # pylint: disable=g-import-not-at-top
    known = [m["name"] for m in pretrained.list_models()]
  except ImportError as e:
    raise ValueError(f"{names[0]!r} is not an existing path, and pretrained "
                     f"models are not available ({e}).") from e
  unknown = [n for n in names if n not in known]
  if unknown:
    raise ValueError(
        f"unknown model(s) {unknown}: not an existing path (a folder saved by "
        "tfc_perception.models.save_model or a .metagraph file) nor a "
        f"pretrained name ({', '.join(known[:4])}, ... ; see "
        "tfc_perception.pretrained.list_models()).")


def load_models(specs, models: Optional[Sequence[Tuple[str, Any]]] = None,
                tensors=None) -> List[LoadedModel]:
  """Model records from specs (names, ranges, paths); loaded lazily.

  Args:
    specs: as accepted by `expand_model_specs` (may be empty if `models` is
      given).
    models: already loaded (name, model) pairs to add (library use).
    tensors: internal tensor names for every tfci model among `specs`
      (registry names and .metagraph files): {role: name}, "role=name,..."
      or a list of "role=name" (see `tfc_perception.pretrained.load`).

  Returns:
    LoadedModel records, in order. A model is loaded (by
    `tfc_perception.models.load_model` for saved folders, or
    `tfc_perception.pretrained.load` for names and .metagraph files) the
    first time its `.model` is used.

  Raises:
    ValueError: no model, repeated names, malformed `tensors` or `tensors`
      given with a saved project model (they name tensors of tfci graphs);
      errors of the loaders on use.
  """
  out = []
  names = {}
  if tensors:
    from tfc_perception.pretrained import tensors as tensors_lib  # pylint: disable=g-import-not-at-top
    names = tensors_lib.parse_tensors(tensors)
  if specs:
    specs = expand_model_specs(specs)
    _check_names([s for s in specs if not os.path.exists(s)])
    saved = [s for s in specs if os.path.isdir(s)]
    if names and saved:
      raise ValueError(f"tensors name internal tensors of tfci .metagraph "
                       f"models; {', '.join(saved)} is a saved project model "
                       "(leave it out, or evaluate it without --tensors).")
    for spec in specs:
      name = os.path.basename(os.path.normpath(spec))
      if name.endswith(".metagraph"):
        name = name[:-len(".metagraph")]
      out.append(LoadedModel(spec, name, tensors=names))
  for name, model in (models or []):
    out.append(LoadedModel(name, name, model))
  if not out:
    raise ValueError("no model given.")
  names = [m.name for m in out]
  dup = sorted({n for n in names if names.count(n) > 1})
  if dup:
    raise ValueError(f"models must have distinct names; repeated: {dup}.")
  return out


def bitstream_bytes(compressed) -> int:
  """Size in bytes of the bit-strings a model's `compress` returned.

  Counts the bytes of every string tensor in the tuple (the range-coded
  bit-strings); the small integer shape tensors are side information of
  fixed size and are not counted, as in tfci's file sizes minus its header.

  Raises:
    ValueError: no string tensor in the output (not a compress() result).
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  total, found = 0, False
  for t in (compressed if isinstance(compressed, (tuple, list))
            else (compressed,)):
    a = np.asarray(t.numpy() if hasattr(t, "numpy") else t)
    if a.dtype.kind in ("S", "O", "U"):
      found = True
      total += sum(len(v) for v in a.reshape(-1))
  if not found:
    raise ValueError("compress() returned no bit-string (string) tensor; "
                     "cannot measure the actual bit-stream size.")
  return total
