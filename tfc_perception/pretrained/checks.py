"""First-load self-check results of tfci models: run once, then remembered.

`TfciModel` checks on load that the internal tensors it uses (found by
structure or named by the user, see `tensors.py`) reproduce the graph's own
codec (`TfciModel.self_check`). For a model in the download cache the result
is stored beside the cached file, `models/<name>.metagraph.check.json`:

    {"format": 1, "model": NAME, "sha256": <metagraph sha256>,
     "checks": [{"tensors": {role: name}, "reconstruction_scale": 1.0,
                 "package_version": "0.1.0", "check_version": 2,
                 "ok": true, "max_abs_diff": 0, "image_max_abs_diff": 0.0,
                 "latent_shape": [1, 16, 16, 192], "reason": null,
                 "checked_at": "2025-01-01T00:00:00+00:00"}, ...]}

one entry per set of tensors checked. A later load with the same metagraph
(sha256), the same tensors, package version and check version reads the
entry instead of running the check again. Results are also kept in memory
for the process (so a model loaded from a path outside the cache, or from a
read-only cache where nothing can be stored, is checked once per process).
The file is written atomically; two processes storing different entries at
the same moment may lose one, which is then recomputed on its next load.
"""

import datetime
import json
import logging
import os
from typing import Dict, Mapping, Optional, Tuple

from tfc_perception import _io

__all__ = ["CHECK_VERSION", "SUFFIX", "lookup", "store", "clear_memory"]

# Bumped when what the check computes changes (then stored results are
# recomputed).
CHECK_VERSION = 2
SUFFIX = ".check.json"
_FORMAT = 1
_MEMORY: Dict[Tuple[str, str], dict] = {}
_WARNED = set()


def _version() -> str:
  from tfc_perception import __version__  # pylint: disable=g-import-not-at-top
  return __version__


def _key(tensors: Mapping[str, Optional[str]], scale: float) -> str:
  return json.dumps({"tensors": dict(sorted(tensors.items())),
                     "reconstruction_scale": float(scale),
                     "package_version": _version(),
                     "check_version": CHECK_VERSION}, sort_keys=True)


def _matches(entry: dict, key: str) -> bool:
  try:
    return _key(entry["tensors"], entry["reconstruction_scale"]) == key and (
        entry["package_version"] == _version()
        and entry["check_version"] == CHECK_VERSION)
  except (KeyError, TypeError, ValueError):
    return False


def _read(path: str, sha256: str) -> list:
  """The stored entries for this metagraph ([] if none or unreadable)."""
  if not path or not os.path.isfile(path):
    return []
  try:
    data = _io.read_json(path)
  except (OSError, ValueError) as e:
    logging.warning("ignoring unreadable self-check record %s (%s)", path, e)
    return []
  if not isinstance(data, dict) or data.get("sha256") != sha256 or (
      not isinstance(data.get("checks"), list)):
    return []  # another file version, or not ours: recomputed and replaced
  return [e for e in data["checks"] if isinstance(e, dict)]


def lookup(path: Optional[str], sha256: str,
           tensors: Mapping[str, Optional[str]], scale: float
           ) -> Optional[dict]:
  """The remembered check of these tensors, or None.

  Args:
    path: the record file (None: memory only).
    sha256: the metagraph's hash.
    tensors: {role: name} the check used.
    scale: the reconstruction scale the check used.

  Returns:
    The stored result with "source" = "stored" (read from `path`) or
    "memory" (checked earlier in this process), or None.
  """
  key = _key(tensors, scale)
  if (sha256, key) in _MEMORY:
    return dict(_MEMORY[(sha256, key)], source="memory")
  for entry in _read(path, sha256):
    if _matches(entry, key):
      _MEMORY[(sha256, key)] = dict(entry, stored_in=path)
      return dict(entry, source="stored", stored_in=path)
  return None


def store(path: Optional[str], sha256: str, model: str,
          tensors: Mapping[str, Optional[str]], scale: float,
          result: Mapping) -> dict:
  """Remembers a check result in memory and, if `path`, in the record file.

  A record that cannot be written (read-only cache, permissions) leaves the
  result in memory only, with one warning per file and process.

  Returns:
    The entry, with "stored_in" (the path, or None) and "source" = "run".
  """
  entry = dict(result)
  entry.update(
      tensors=dict(sorted(tensors.items())), reconstruction_scale=float(scale),
      package_version=_version(), check_version=CHECK_VERSION,
      checked_at=datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"))
  entry.pop("source", None)
  key = _key(tensors, scale)
  stored_in = None
  if path:
    others = [e for e in _read(path, sha256) if not _matches(e, key)]
    try:
      _io.write_json(path, {"format": _FORMAT, "model": model,
                            "sha256": sha256, "checks": others + [entry]})
      stored_in = path
    except OSError as e:
      if path not in _WARNED:
        _WARNED.add(path)
        logging.warning(
            "%s: cannot store the self-check result beside the cached model "
            "(%s: %s); it is kept in memory, and the check runs again in "
            "the next process.", model, type(e).__name__, e)
  entry["stored_in"] = stored_in
  _MEMORY[(sha256, key)] = dict(entry)
  return dict(entry, source="run")


def clear_memory() -> None:
  """Forgets the results kept in memory (the stored records stay)."""
  _MEMORY.clear()
  _WARNED.clear()
