"""Atomic file writing, safe output paths and run manifests.

Nothing the project writes (checkpoints, caches, results) may be left
half-written: every writer here writes to a temporary file in the destination
directory and renames it into place (`os.replace` is atomic on POSIX). The
temporary files and folders get the permissions a plain `open`/`mkdir` would
give (0666/0777 minus the umask), not `tempfile`'s private 0600/0700, so
other users can read a shared cache, models and results as usual.
"""

import contextlib
import csv
import datetime
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

__all__ = [
    "current_umask", "chmod_as_created", "make_temp_dir", "atomic_directory",
    "is_within",
    "check_output_path", "atomic_open", "write_bytes", "write_text", "write_json", "write_csv",
    "read_json", "library_versions", "git_commit", "make_manifest",
    "sha256_file", "FileHashes",
]


def current_umask() -> int:
  """The process umask (read from /proc where possible: setting and
  restoring it with os.umask would race with other threads)."""
  try:
    with open("/proc/self/status", encoding="ascii") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except (OSError, ValueError, IndexError):
    pass
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def chmod_as_created(path_or_fd, directory: bool = False) -> None:
  """Gives a file (path or descriptor) or folder made by `tempfile` the mode
  a plain open()/mkdir() would have given it: 0666 (0777 for folders) minus
  the umask."""
  mode = (0o777 if directory else 0o666) & ~current_umask()
  if isinstance(path_or_fd, int):
    os.fchmod(path_or_fd, mode)
  else:
    os.chmod(path_or_fd, mode)


def make_temp_dir(parent, prefix: str) -> str:
  """`tempfile.mkdtemp` in `parent`, with the umask's permissions."""
  path = tempfile.mkdtemp(dir=parent, prefix=prefix)
  chmod_as_created(path, directory=True)
  return path


@contextlib.contextmanager
def atomic_directory(path, may_replace: Callable[[], bool]):
  """Builds a directory next to `path` and renames it onto `path`.

  Args:
    path: the destination directory.
    may_replace: called just before the rename; returns True if something
      at `path` is to be replaced (it is then renamed away first and deleted
      only after the new directory is in place), False if `path` is absent
      or an empty folder, and raises if `path` may not be written.

  Yields:
    The temporary directory to fill (umask permissions). If the body raises,
    it is removed and `path` is left untouched.
  """
  path = os.path.abspath(os.fspath(path))
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  prefix = "." + os.path.basename(path) + "."
  tmp = make_temp_dir(parent, prefix)
  try:
    yield tmp
    old = None
    if may_replace():
      old = make_temp_dir(parent, prefix + "old.")
      os.replace(path, os.path.join(old, "m"))
    os.replace(tmp, path)  # Onto an empty folder too (fails if not empty).
    if old is not None:
      shutil.rmtree(old, ignore_errors=True)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def is_within(path, folder) -> bool:
  """True if `path` is `folder` or lies inside it (symlinks resolved)."""
  path = os.path.realpath(os.fspath(path))
  folder = os.path.realpath(os.fspath(folder))
  return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_output_path(output, inputs: Mapping[str, Any],
                      output_name: str = "output",
                      overwrite: Optional[bool] = None) -> None:
  """Refuses an output path that would overwrite or write into an input, or
  replace an existing file without permission.

  Args:
    output: the path about to be written (file or folder).
    inputs: {name for messages: input path (file or folder) or None}.
    output_name: how the output is called in messages (e.g. "--output").
    overwrite: for a single output file: whether an existing file may be
      replaced (False refuses it); None skips that check (folders).

  Raises:
    ValueError: `output` is one of the inputs (the same file, also through
      links), lies inside an input folder, or exists and `overwrite` is
      False.
  """
  if output is None:
    return
  output = os.fspath(output)
  for name, path in inputs.items():
    if path is None or path == "" or not isinstance(path, (str, os.PathLike)):
      continue
    path = os.fspath(path)
    same = False
    if os.path.exists(output) and os.path.exists(path):
      same = os.path.samefile(output, path)
    if same or os.path.realpath(output) == os.path.realpath(path):
      raise ValueError(f"{output_name} {output} is the input {name} "
                       f"{path}; writing it would destroy the input: choose "
                       "another path.")
    if os.path.isdir(path) and is_within(output, path):
      raise ValueError(f"{output_name} {output} lies inside the input "
                       f"{name} folder {path}; choose a path outside it.")
  if overwrite is False and os.path.lexists(output):
    kind = "a folder" if os.path.isdir(output) else "a file"
    raise ValueError(f"{output_name} {output} exists ({kind}); pass "
                     "--overwrite (overwrite=True) to replace it, or choose "
                     "another path.")


@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
  """Opens a temporary file next to `path`, renamed onto `path` on success.

  Args:
    path: destination path. Its parent directory is created if needed.
    mode: "w" (text) or "wb" (binary).
    **kwargs: passed to `open` (e.g. `newline=""` for csv).

  Yields:
    The open file object. If the body raises, the temporary file is removed
    and `path` is left untouched.
  """
  if mode not in ("w", "wb"):
    raise ValueError(f"atomic_open supports mode 'w' or 'wb', got {mode!r}.")
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(
      dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
  try:
    with os.fdopen(fd, mode, **kwargs) as f:
      chmod_as_created(f.fileno())
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


def write_bytes(path, data: bytes) -> None:
  """Atomically writes `data` to `path`."""
  with atomic_open(path, "wb") as f:
    f.write(data)


def write_text(path, text: str) -> None:
  """Atomically writes `text` (UTF-8) to `path`."""
  with atomic_open(path, "w", encoding="utf-8") as f:
    f.write(text)


def _json_default(obj):
  try:
    import numpy as np  # pylint: disable=g-import-not-at-top
    if isinstance(obj, np.generic):
      return obj.item()
    if isinstance(obj, np.ndarray):
      return obj.tolist()
  except ImportError:  # pragma: no cover
    pass
  if isinstance(obj, (datetime.datetime, datetime.date)):
    return obj.isoformat()
  if isinstance(obj, os.PathLike):
    return os.fspath(obj)
  raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable")


def write_json(path, obj: Any, indent: int = 2) -> None:
  """Atomically writes `obj` as JSON (numpy scalars/arrays are converted)."""
  text = json.dumps(obj, indent=indent, sort_keys=False, default=_json_default,
                    allow_nan=True)
  write_text(path, text + "\n")


def read_json(path) -> Any:
  with open(path, "r", encoding="utf-8") as f:
    return json.load(f)


def sha256_file(path) -> str:
  """Hex sha256 of a file, read in 1 MiB blocks."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


class FileHashes:
  """Content hashes of files, each file read once per instance (one per run).

  A file is hashed again only if its size or modification time changed since
  it was hashed, so a cache key built from `manifest` follows the bytes of
  the files, not their names, at the cost of reading each file once.
  """

  def __init__(self):
    self._memo = {}

  def sha256(self, path) -> str:
    """Hex sha256 of the file at `path`.

    Raises:
      FileNotFoundError: `path` does not exist.
    """
    path = os.path.realpath(os.fspath(path))
    st = os.stat(path)
    stamp = (path, st.st_size, st.st_mtime_ns, st.st_ino)
    if stamp not in self._memo:
      self._memo[stamp] = sha256_file(path)
    return self._memo[stamp]

  def manifest(self, paths: Iterable[Any]) -> list:
    """[[file name, size in bytes, sha256], ...] of `paths`, in their order:
    what a model trained on these files depends on (a cache key part).

    Raises:
      FileNotFoundError: a path does not exist.
    """
    return [[os.path.basename(os.fspath(p)), os.path.getsize(p),
             self.sha256(p)] for p in paths]


def write_csv(path, rows: Iterable[Mapping[str, Any]],
              fieldnames: Optional[Sequence[str]] = None) -> None:
  """Atomically writes dict rows as CSV. A pandas DataFrame is accepted too."""
  if hasattr(rows, "to_csv"):  # pandas.DataFrame
    buf = io.StringIO()
    rows.to_csv(buf, index=False)
    write_text(path, buf.getvalue())
    return
  rows = list(rows)
  if fieldnames is None:
    fieldnames = []
    for row in rows:
      for key in row:
        if key not in fieldnames:
          fieldnames.append(key)
  with atomic_open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=list(fieldnames))
    writer.writeheader()
    for row in rows:
      writer.writerow(row)


def library_versions() -> dict:
  """Versions of Python and the main libraries (those importable)."""
  versions = {"python": platform.python_version()}
  for name, module in [("tfc_perception", "tfc_perception"),
                       ("tensorflow", "tensorflow"),
                       ("tensorflow_compression", "tensorflow_compression"),
                       ("tensorflow_probability", "tensorflow_probability"),
                       ("numpy", "numpy"), ("scipy", "scipy"),
                       ("pandas", "pandas")]:
    try:
      from importlib import metadata  # pylint: disable=g-import-not-at-top
      versions[name] = metadata.version(name.replace("_", "-"))
    except Exception:  # pylint: disable=broad-except
      mod = sys.modules.get(module)
      versions[name] = getattr(mod, "__version__", None) if mod else None
  return versions


def git_commit(path: Optional[str] = None) -> Optional[str]:
  """The git commit of the checkout containing this package (None if not a
  checkout), with a "-dirty" suffix when there are uncommitted changes."""
  path = path or os.path.dirname(os.path.abspath(__file__))
  try:
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True,
        text=True, timeout=10, check=True).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=path,
        capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    return commit + ("-dirty" if dirty else "")
  except Exception:  # pylint: disable=broad-except
    return None


def make_manifest(config: Optional[Mapping[str, Any]] = None,
                  wall_time_s: Optional[float] = None,
                  **extra) -> dict:
  """A run manifest: command line, config, library versions, git commit, time.

  Args:
    config: the run's configuration (flags or experiment config).
    wall_time_s: wall time of the run in seconds, if known.
    **extra: more entries (e.g. final metrics).

  Returns:
    A JSON-serialisable dict.
  """
  manifest = {
      "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])
                 if sys.argv else None,
      "argv": list(sys.argv),
      "cwd": os.getcwd(),
      "config": dict(config) if config is not None else None,
      "versions": library_versions(),
      "git_commit": git_commit(),
      "host": platform.node(),
      "finished_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
      "wall_time_s": wall_time_s,
  }
  manifest.update(extra)
  return manifest
