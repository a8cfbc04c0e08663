"""Verified, resumable-by-retry, concurrency-safe downloads into a local cache.

Cache layout (directory from `cache_dir`, else `$TFC_PERCEPTION_CACHE`, else
`~/.cache/tfc_perception`):

    models/<name>.metagraph        tfc pretrained models
    kodak/kodimNN.png              dataset files (one folder per dataset)
    manifest.json                  sha256 first seen for artefacts whose
                                   registry hash is null (trust on first use)
    <file>.lock, manifest.json.lock  advisory lock files (fcntl.flock)

A file appears under its final name only after it was completely received, its
length matched Content-Length, its sha256 matched the pinned (registry) or
first-seen (manifest) hash and, for models, it parsed as a tfci MetaGraphDef:
it is written to a temporary `.<file>.*.part` in the same folder and renamed
(atomic on POSIX). Two processes fetching the same file serialise on
`<file>.lock`; the second finds the verified file and does not download it
again. Reading a cached file whose sha256 matches the pinned or recorded hash
takes no lock and writes nothing, so a populated cache works on a read-only
filesystem (or copied from another machine). Files and folders get the usual
permissions (0666/0777 minus the umask), so a cache can be shared. Only the
standard library (urllib) is used for HTTP.
"""

import contextlib
import datetime
import hashlib
import http.client
import logging
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
from typing import Callable, List, Optional

from tfc_perception import _io
from tfc_perception.pretrained import registry as registry_lib

try:  # POSIX advisory locks; on platforms without fcntl locking is skipped.
  import fcntl
except ImportError:  # pragma: no cover
  fcntl = None

__all__ = [
    "DownloadError", "ChecksumError", "OfflineError", "resolve_cache_dir",
    "download", "download_dataset", "fetch", "read_manifest", "sha256_file",
]

MANIFEST = "manifest.json"
_TRANSIENT_HTTP = (408, 425, 429, 500, 502, 503, 504)


class DownloadError(RuntimeError):
  """A download failed (HTTP error, network error after all retries, ...)."""


class ChecksumError(DownloadError):
  """The received bytes do not have the expected sha256."""


class OfflineError(FileNotFoundError):
  """Offline mode and the requested file is not in the cache."""


class _Transient(Exception):
  """An error worth retrying (timeouts, resets, truncation, HTTP 5xx)."""


def resolve_cache_dir(cache_dir: Optional[str] = None) -> str:
  """The cache directory: `cache_dir`, $TFC_PERCEPTION_CACHE, or the default.

  Args:
    cache_dir: explicit directory or None.

  Returns:
    An absolute path (not created here).
  """
  if cache_dir is None or cache_dir == "":
    cache_dir = os.environ.get("TFC_PERCEPTION_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "tfc_perception")
  return os.path.abspath(os.path.expanduser(os.fspath(cache_dir)))


@contextlib.contextmanager
def _file_lock(path):
  """Exclusive advisory lock on `path` (flock: works across processes and
  across threads that open the file separately)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # minus the umask
  try:
    if fcntl is not None:
      fcntl.flock(fd, fcntl.LOCK_EX)
    yield
  finally:
    if fcntl is not None:
      fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


sha256_file = _io.sha256_file


def read_manifest(cache_dir: Optional[str] = None) -> dict:
  """The cache manifest {"files": {relpath: {"sha256", "size", "url", ...}}}."""
  path = os.path.join(resolve_cache_dir(cache_dir), MANIFEST)
  if not os.path.exists(path):
    return {"files": {}}
  data = _io.read_json(path)
  if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
    raise ValueError(f"cache manifest {path} is malformed; delete it to start "
                     "a fresh record of first-seen hashes.")
  return data


def _record(root: str, relpath: str, digest: str, size: int, url: str):
  with _file_lock(os.path.join(root, MANIFEST + ".lock")):
    data = read_manifest(root)
    data["files"][relpath] = {
        "sha256": digest, "size": size, "url": url,
        "first_seen": datetime.datetime.now(
            datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    _io.write_json(os.path.join(root, MANIFEST), data)


def _forget(root: str, relpath: str):
  with _file_lock(os.path.join(root, MANIFEST + ".lock")):
    data = read_manifest(root)
    if data["files"].pop(relpath, None) is not None:
      _io.write_json(os.path.join(root, MANIFEST), data)


def _download_once(url, directory, file, timeout, progress):
  """One attempt: streams `url` to a temp file. Returns (tmp, sha256, size)."""
  from tfc_perception import __version__  # pylint: disable=g-import-not-at-top
  request = urllib.request.Request(
      url, headers={"User-Agent": f"tfc_perception/{__version__}"})
  try:
    response = urllib.request.urlopen(request, timeout=timeout)
  except urllib.error.HTTPError as e:
    if e.code in _TRANSIENT_HTTP:
      raise _Transient(f"HTTP {e.code} {e.reason}") from e
    raise DownloadError(f"HTTP {e.code} {e.reason} for {url}") from e
  except urllib.error.URLError as e:
    raise _Transient(f"{e.reason}") from e
  except (TimeoutError, socket.timeout, ConnectionError,
          http.client.HTTPException) as e:
    raise _Transient(f"{type(e).__name__}: {e}") from e
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  with response:
    length = response.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{file}.",
                               suffix=".part")
    h = hashlib.sha256()
    size = 0
    try:
      _io.chmod_as_created(fd)
      with os.fdopen(fd, "wb") as f, tqdm(
          total=length, unit="B", unit_scale=True, desc=file, leave=False,
          disable=not progress) as bar:
        while True:
          try:
            chunk = response.read(1 << 16)
          except (TimeoutError, socket.timeout, ConnectionError,
                  http.client.HTTPException, OSError) as e:
            raise _Transient(f"reading the body failed after {size} bytes: "
                             f"{type(e).__name__}: {e}") from e
          if not chunk:
            break
          f.write(chunk)
          h.update(chunk)
          size += len(chunk)
          bar.update(len(chunk))
        f.flush()
        os.fsync(f.fileno())
      if length is not None and size != length:
        raise _Transient(f"truncated body: received {size} of {length} bytes")
    except BaseException:
      with contextlib.suppress(FileNotFoundError):
        os.remove(tmp)
      raise
  return tmp, h.hexdigest(), size


def _offline_message(art, dest, root, problem, delete_first=False):
  how = (f"{'delete it, then ' if delete_first else ''}run `bin/download "
         f"{'models' if art.kind == 'model' else art.kind}"
         f"{' ' + art.name if art.kind == 'model' else ''} --cache_dir {root}` "
         f"while online, or copy {art.url} to {dest}")
  return f"offline mode: {art.relpath} {problem} (at {dest}); {how}."


def _expected_hash(art, root):
  """(sha256 the cached file must have or None, where that hash comes from).
  Reads the manifest without a lock: it is only ever replaced atomically."""
  if art.sha256:
    return art.sha256, "pinned in the registry"
  recorded = read_manifest(root)["files"].get(art.relpath) or {}
  return recorded.get("sha256"), "first seen, recorded in the cache manifest"


def _cached_mismatch(art, dest, root, digest, expected, source):
  return ChecksumError(_offline_message(
      art, dest, root, f"is cached but its sha256 {digest} differs from "
      f"{expected} ({source})", delete_first=True))


def fetch(art: registry_lib.Artifact, cache_dir: Optional[str] = None,
          url_prefix: Optional[str] = None, offline: bool = False, *,
          timeout: float = 60.0, retries: int = 3, backoff: float = 1.0,
          progress: bool = True,
          validate: Optional[Callable[[str], None]] = None) -> str:
  """Makes sure the verified artefact `art` is in the cache; returns its path.

  Args:
    art: a registry artefact.
    cache_dir: cache directory (see `resolve_cache_dir`).
    url_prefix: replaces the directory part of the artefact's URL (mirrors,
      local servers).
    offline: never open a connection; fail if the file is not cached.
    timeout: seconds for connecting and for each read.
    retries: extra attempts after a transient failure (timeouts, resets,
      truncated bodies, connection refused, HTTP 408/425/429/5xx). HTTP 4xx
      and checksum mismatches are not retried.
    backoff: first wait in seconds between attempts (doubles each time).
    progress: show a tqdm progress bar.
    validate: called with the temporary file before it is renamed into place;
      raises ValueError if the content is unusable (garbage).

  Returns:
    Absolute path of the cached, verified file.

  Raises:
    OfflineError: offline and missing (the message says how to get it).
    ChecksumError: sha256 differs from the pinned or first-seen hash.
    DownloadError: HTTP error or all attempts failed.
    ValueError: `validate` rejected the content, or bad arguments.
  """
  if retries < 0 or timeout <= 0 or backoff < 0:
    raise ValueError(f"need retries >= 0, timeout > 0, backoff >= 0; got "
                     f"{retries}, {timeout}, {backoff}.")
  root = resolve_cache_dir(cache_dir)
  dest = os.path.join(root, art.subdir, art.file)
  directory = os.path.dirname(dest)
  # Checked before any lock or directory is created: reading a verified
  # file, and offline mode, never write (read-only caches work).
  if offline and not os.path.exists(dest):
    raise OfflineError(_offline_message(art, dest, root, "is not in the cache"))
  expected, source = _expected_hash(art, root)
  if expected is not None and os.path.exists(dest):
    digest = sha256_file(dest)
    if digest == expected:
      return dest
    if offline:
      raise _cached_mismatch(art, dest, root, digest, expected, source)
  os.makedirs(directory, exist_ok=True)
  with _file_lock(dest + ".lock"):
    expected, source = _expected_hash(art, root)
    if os.path.exists(dest):
      digest = sha256_file(dest)
      if expected is None:
        _record(root, art.relpath, digest, os.path.getsize(dest), art.url)
        return dest
      if digest == expected:
        return dest
      if offline:
        raise _cached_mismatch(art, dest, root, digest, expected, source)
      logging.warning("cached %s has sha256 %s, expected %s (%s): fetching "
                      "it again", dest, digest, expected, source)
      os.remove(dest)
    url = art.url_with_prefix(url_prefix)
    last = None
    for attempt in range(retries + 1):
      try:
        tmp, digest, size = _download_once(url, directory, art.file, timeout,
                                           progress)
        break
      except _Transient as e:
        last = e
        logging.warning("download of %s failed (attempt %d of %d): %s", url,
                        attempt + 1, retries + 1, e)
        if attempt < retries:
          time.sleep(backoff * 2 ** attempt)
    else:
      raise DownloadError(f"could not download {url} after {retries + 1} "
                          f"attempt(s): {last}")
    try:
      if expected is not None and digest != expected:
        raise ChecksumError(
            f"{url}: sha256 {digest} differs from {expected} ({source}); the "
            "file was not installed. If the upstream file really changed, "
            f"remove the entry {art.relpath!r} from {root}/{MANIFEST}.")
      if validate is not None:
        validate(tmp)
      os.replace(tmp, dest)
    finally:
      with contextlib.suppress(FileNotFoundError):
        os.remove(tmp)
    if expected is None:
      _record(root, art.relpath, digest, size, url)
  return dest


def _validator(art, url):
  """Checks a downloaded model parses; errors name `url`, where it came
  from (the registry URL, or the one --url_prefix made)."""
  if art.kind == "model" and art.file.endswith(".metagraph"):
    from tfc_perception.pretrained import tfci  # pylint: disable=g-import-not-at-top
    return lambda path: tfci.read_metagraph(path, source=url)
  return None


def download(name: str, cache_dir: Optional[str] = None,
             url_prefix: Optional[str] = None, offline: bool = False, *,
             registry: Optional[registry_lib.Registry] = None,
             **kwargs) -> str:
  """Downloads (once) and verifies a registry artefact or a whole dataset.

  Used for the pretrained bmshj2018-factorized models of the paper's
  human-opinion and contrast experiments (Fig. 3, Fig. 4 right, Fig. 16) and the
  Kodak images.

  Args:
    name: a model name ("bmshj2018-factorized-msssim-4"), a dataset file name
      ("kodim07"), or a dataset name ("kodak": all its files).
    cache_dir: cache directory; default $TFC_PERCEPTION_CACHE, else
      ~/.cache/tfc_perception.
    url_prefix: replaces the directory of the registry URL (mirror/local
      server).
    offline: never open a network connection.
    registry: a `Registry` (default: the one shipped with the package).
    **kwargs: timeout, retries, backoff, progress (see `fetch`).

  Returns:
    The path of the cached file (or of the dataset folder).

  Raises:
    KeyError: unknown name (message lists the accepted names) or a
      manual-download dataset (message says how to get it).
    OfflineError, ChecksumError, DownloadError, ValueError: see `fetch`.
  """
  if not isinstance(name, str) or not name:
    raise ValueError(f"name must be a non-empty string, got {name!r}.")
  reg = registry or registry_lib.default_registry()
  if name in reg.datasets:
    return download_dataset(name, cache_dir, url_prefix, offline,
                            registry=reg, **kwargs)
  art = reg.get(name)
  return fetch(art, cache_dir, url_prefix, offline,
               validate=_validator(art, art.url_with_prefix(url_prefix)),
               **kwargs)


def download_dataset(name: str, cache_dir: Optional[str] = None,
                     url_prefix: Optional[str] = None, offline: bool = False,
                     *, registry: Optional[registry_lib.Registry] = None,
                     progress: bool = True, **kwargs) -> str:
  """Downloads every file of a registry dataset (e.g. "kodak").

  Args: as `download`.

  Returns:
    The dataset folder in the cache.

  Raises:
    OfflineError: offline, listing every missing file in one message.
    See `fetch` for the others.
  """
  reg = registry or registry_lib.default_registry()
  if name not in reg.datasets:
    reg.get(name)  # raises KeyError with instructions / accepted names
    raise KeyError(f"{name!r} is not a dataset; accepted: "
                   f"{', '.join(reg.datasets)}")
  items = reg.datasets[name]
  root = resolve_cache_dir(cache_dir)
  if offline:
    missing: List[str] = [a.file for a in items
                          if not os.path.exists(os.path.join(root, a.relpath))]
    if missing:
      raise OfflineError(
          f"offline mode: {len(missing)} of {len(items)} {name} files are not "
          f"in {os.path.join(root, name)}: {', '.join(missing)}; run "
          f"`bin/download {name} --cache_dir {root}` while online, or copy "
          f"them from {os.path.dirname(items[0].url)}/.")
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  for art in tqdm(items, desc=name, unit="file", disable=not progress):
    fetch(art, root, url_prefix, offline, progress=False, **kwargs)
  return os.path.join(root, name)
