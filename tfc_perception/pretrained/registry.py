"""The registry of downloadable artefacts (pretrained models, Kodak, TID2013).

The canonical, human-readable registry is `pretrained/registry.json` at the
repository root; an identical copy ships inside the package
(`tfc_perception/pretrained/registry.json`, listed in setup.cfg package_data)
so that an installed package finds it too. `tests/pretrained_registry_test.py`
asserts the two files are byte-identical.

An artefact is one file: a model (`models.items`) or a dataset file
(`datasets.<name>.items`). A dataset without `items` but with
`manual_download: true` (TID2013) is only described, never fetched.

A model entry may name its internal tensors where structure discovery
fails or picks a wrong one (`"tensors": {"latent": "analysis/...:0"}`), and
`models.tensors_by_family` names them for every model of a family
(`{"bmshj2018-factorized": {...}}`, the entries' `family`); an entry's own
names win. See `tensors.py` for the roles.
"""

import dataclasses
import json
import os
import re
from typing import Dict, List, Optional, Tuple

from tfc_perception.pretrained import tensors as tensors_lib

__all__ = ["Artifact", "Registry", "default_registry", "REGISTRY_PATH"]

REGISTRY_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             "registry.json")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclasses.dataclass(frozen=True)
class Artifact:
  """One downloadable file.

  Attributes:
    name: unique name (e.g. "bmshj2018-factorized-mse-1", "kodim01").
    kind: "model" or the dataset name (e.g. "kodak").
    file: file name in the cache and on the server.
    url: canonical URL.
    sha256: pinned hex digest, or None where upstream publishes none.
    subdir: cache sub-directory ("models" or the dataset name).
    info: the other registry fields (metric, quality, N, M, ...).
  """
  name: str
  kind: str
  file: str
  url: str
  sha256: Optional[str]
  subdir: str
  info: Tuple[Tuple[str, object], ...] = ()

  def url_with_prefix(self, url_prefix: Optional[str]) -> str:
    """The URL, with its directory replaced by `url_prefix` if given."""
    if not url_prefix:
      return self.url
    return url_prefix.rstrip("/") + "/" + self.file

  @property
  def relpath(self) -> str:
    """Path relative to the cache directory."""
    return f"{self.subdir}/{self.file}"

  def get(self, key, default=None):
    return dict(self.info).get(key, default)


class Registry:
  """Parsed and validated registry.

  Args:
    path: a registry JSON file (default: the one shipped with the package).

  Raises:
    ValueError: if the file is not a valid registry (the message names the
      offending entry).
    FileNotFoundError: if `path` does not exist.
  """

  def __init__(self, path: Optional[str] = None):
    self.path = os.fspath(path) if path is not None else REGISTRY_PATH
    if not os.path.isfile(self.path):
      raise FileNotFoundError(f"registry file not found: {self.path}")
    try:
      with open(self.path, encoding="utf-8") as f:
        self.data = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"registry {self.path} is not valid JSON: {e}") from e
    self._artifacts: Dict[str, Artifact] = {}
    self.models: List[Artifact] = []
    self.datasets: Dict[str, List[Artifact]] = {}
    self.manual: Dict[str, dict] = {}
    models = self.data.get("models", {}).get("items", [])
    for item in models:
      self.models.append(self._add(item, "model", "models"))
      self._tensors(item.get("tensors"), item["name"])
    by_family = self.data.get("models", {}).get("tensors_by_family") or {}
    if not isinstance(by_family, dict):
      raise ValueError(f"registry {self.path}: models.tensors_by_family must "
                       "map a family name to {role: tensor name}.")
    self._family_tensors = {f: self._tensors(t, f"family {f}")
                            for f, t in by_family.items()}
    for dname, dset in self.data.get("datasets", {}).items():
      if dset.get("manual_download"):
        self.manual[dname] = dset
        continue
      self.datasets[dname] = [self._add(item, dname, dname)
                              for item in dset.get("items", [])]

  def _add(self, item: dict, kind: str, subdir: str) -> Artifact:
    for key in ("name", "file", "url"):
      if not isinstance(item.get(key), str) or not item[key]:
        raise ValueError(f"registry {self.path}: entry {item!r} lacks a "
                         f"non-empty string {key!r}.")
    sha = item.get("sha256")
    if sha is not None and not _SHA256.match(str(sha)):
      raise ValueError(f"registry {self.path}: {item['name']}: sha256 must be "
                       f"64 lower-case hex digits or null, got {sha!r}.")
    if "/" in item["file"] or item["file"].startswith("."):
      raise ValueError(f"registry {self.path}: {item['name']}: file must be a "
                       f"plain file name, got {item['file']!r}.")
    if item["name"] in self._artifacts:
      raise ValueError(f"registry {self.path}: duplicate name {item['name']!r}")
    info = tuple((k, v) for k, v in item.items()
                 if k not in ("name", "file", "url", "sha256"))
    art = Artifact(item["name"], kind, item["file"], item["url"], sha, subdir,
                   info)
    self._artifacts[art.name] = art
    return art

  def _tensors(self, spec, where: str) -> Dict[str, str]:
    if spec is not None and not isinstance(spec, dict):
      raise ValueError(f"registry {self.path}: {where}: tensors must be an "
                       f"object {{role: tensor name}}, got {spec!r}.")
    try:
      return tensors_lib.parse_tensors(spec)
    except ValueError as e:
      raise ValueError(f"registry {self.path}: {where}: {e}") from e

  def model_tensors(self, name: str) -> Dict[str, str]:
    """{role: tensor name} the registry gives for model `name`: its
    family's `tensors_by_family` entry, overridden by its own `tensors`."""
    art = self.get(name)
    out = dict(self._family_tensors.get(art.get("family"), {}))
    out.update(tensors_lib.parse_tensors(art.get("tensors")))
    return out

  def model_names(self) -> List[str]:
    return [m.name for m in self.models]

  def get(self, name: str) -> Artifact:
    """The artefact called `name`.

    Raises:
      KeyError: with the accepted names if `name` is unknown (and the manual
        download instructions if it names a manual dataset).
    """
    if name in self._artifacts:
      return self._artifacts[name]
    if name in self.manual:
      raise KeyError(manual_instructions(name, self.manual[name]))
    raise KeyError(
        f"unknown artefact {name!r}; accepted: models "
        f"{', '.join(self.model_names())}; datasets "
        f"{', '.join(list(self.datasets) + list(self.manual))}; or a dataset "
        "file name such as kodim01.")

  def __contains__(self, name) -> bool:
    return name in self._artifacts


def manual_instructions(name: str, entry: dict) -> str:
  """One paragraph telling how to get a manual-download dataset."""
  layout = "; ".join(entry.get("expected_layout", []))
  return (f"{name} is not downloaded automatically: {entry.get('description', '')}"
          f" Get {entry.get('archive_url', entry.get('homepage', ''))} "
          f"(see {entry.get('homepage', '')}), unpack it and check the layout: "
          f"{layout}. Then {entry.get('use', '')}.")


_DEFAULT = None


def default_registry() -> Registry:
  """The registry shipped with the package (parsed once)."""
  global _DEFAULT
  if _DEFAULT is None:
    _DEFAULT = Registry()
  return _DEFAULT
