"""Tests of tfc_perception.pretrained downloads against a local HTTP server
(no internet): verified, atomic, locked, retried, offline-aware.

Every fault must leave no file (and no .part leftover) in the cache, and a
later good download must succeed.
"""

import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from conftest import REPO_ROOT, shared_path
from tfc_perception import pretrained
from tfc_perception.pretrained import downloader as dl


class LocalServer:
  """http.server on 127.0.0.1 (a thread) serving `routes`: path -> (mode,
  bytes). Modes: ok, 404, 503 (transient), truncate (Content-Length larger
  than the body), stall (no answer until released), slow / slower (body in
  8 chunks, 0.03 / 0.15 s apart).
  Counts the GET requests per path."""

  def __init__(self, directory=None):
    self.routes = {}
    self.counts = {}
    self.directory = directory
    self.release = threading.Event()
    server = self

    class Handler(http.server.BaseHTTPRequestHandler):

      def log_message(self, *args):
        pass

      def do_GET(self):  # noqa: N802
        path = self.path.split("?")[0]
        server.counts[path] = server.counts.get(path, 0) + 1
        mode, body = server.routes.get(path, (None, None))
        if mode is None and server.directory:
          file = os.path.join(server.directory, os.path.basename(path))
          if os.path.isfile(file):
            with open(file, "rb") as f:
              mode, body = "ok", f.read()
        if mode is None or mode == "404":
          self.send_error(404, "Not Found")
          return
        if mode == "503":
          self.send_error(503, "Service Unavailable")
          return
        if mode == "stall":
          server.release.wait(10)
          return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        extra = 1000 if mode == "truncate" else 0
        self.send_header("Content-Length", str(len(body) + extra))
        self.end_headers()
        if mode in ("slow", "slower"):
          step = max(1, len(body) // 8)
          for i in range(0, len(body), step):
            self.wfile.write(body[i:i + step])
            self.wfile.flush()
            time.sleep(0.03 if mode == "slow" else 0.15)
        else:
          self.wfile.write(body)
        self.wfile.flush()
        if mode == "truncate":
          self.close_connection = True

    self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    self.httpd.daemon_threads = True
    self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
    self.thread = threading.Thread(target=self.httpd.serve_forever,
                                   kwargs={"poll_interval": 0.05},
                                   daemon=True)
    self.thread.start()

  def close(self):
    self.release.set()
    self.httpd.shutdown()
    self.httpd.server_close()


@pytest.fixture
def server():
  s = LocalServer()
  yield s
  s.close()


def make_registry(tmp_path, items, models=()):
  """A registry file with dataset "blobs" (items) and models."""
  data = {"format_version": 1,
          "models": {"items": [dict(m) for m in models]},
          "datasets": {"blobs": {"items": [dict(i) for i in items]}}}
  path = tmp_path / "registry.json"
  path.write_text(json.dumps(data))
  return pretrained.Registry(str(path))


def blob(name, data=None, pinned=True):
  return {"name": name, "file": name, "url": f"https://example.invalid/{name}",
          "sha256": hashlib.sha256(data).hexdigest() if pinned else None}


GOOD = os.urandom(200_000)
FAST = dict(timeout=0.5, retries=1, backoff=0.01, progress=False)


def cache_files(cache):
  """Every file in the cache except lock files and the manifest."""
  out = []
  for root, _, files in os.walk(cache):
    out += [os.path.relpath(os.path.join(root, f), cache) for f in files
            if not f.endswith(".lock") and f != "manifest.json"]
  return sorted(out)


def fault_then_good(tmp_path, server, mode, error, pinned=True, body=None):
  cache = tmp_path / "cache"
  reg = make_registry(tmp_path, [blob("a.bin", GOOD, pinned)])
  server.routes["/a.bin"] = (mode, GOOD if body is None else body)
  with pytest.raises(error) as info:
    pretrained.download("a.bin", cache, server.url, registry=reg, **FAST)
  assert cache_files(cache) == [], f"{mode} left files behind"
  server.routes["/a.bin"] = ("ok", GOOD)
  path = pretrained.download("a.bin", cache, server.url, registry=reg, **FAST)
  assert open(path, "rb").read() == GOOD
  assert cache_files(cache) == ["blobs/a.bin"]
  return info.value


def test_good_download_verifies_and_is_cached(tmp_path, server):
  reg = make_registry(tmp_path, [blob("a.bin", GOOD)])
  server.routes["/a.bin"] = ("ok", GOOD)
  path = pretrained.download("a.bin", tmp_path / "c", server.url,
                             registry=reg, **FAST)
  assert path == str(tmp_path / "c" / "blobs" / "a.bin")
  assert dl.sha256_file(path) == hashlib.sha256(GOOD).hexdigest()
  again = pretrained.download("a.bin", tmp_path / "c", server.url,
                              registry=reg, **FAST)
  assert again == path and server.counts["/a.bin"] == 1  # served from cache


def test_http_404_is_not_retried(tmp_path, server):
  e = fault_then_good(tmp_path, server, "404", pretrained.DownloadError)
  assert "404" in str(e)
  assert server.counts["/a.bin"] == 2  # one failing attempt, one good


def test_transient_503_is_retried_then_fails(tmp_path, server):
  e = fault_then_good(tmp_path, server, "503", pretrained.DownloadError)
  assert "2 attempt(s)" in str(e) and "503" in str(e)
  assert server.counts["/a.bin"] == 3


def test_truncated_body(tmp_path, server):
  e = fault_then_good(tmp_path, server, "truncate", pretrained.DownloadError)
  assert "200000 of 201000" in str(e) or "IncompleteRead" in str(e), str(e)


def test_wrong_sha256(tmp_path, server):
  e = fault_then_good(tmp_path, server, "ok", pretrained.ChecksumError,
                      body=GOOD[:-1] + b"x")
  assert hashlib.sha256(GOOD).hexdigest() in str(e)


def test_stalled_server_times_out(tmp_path, server):
  t0 = time.time()
  e = fault_then_good(tmp_path, server, "stall", pretrained.DownloadError)
  assert "timed out" in str(e).lower(), str(e)
  assert time.time() - t0 < 5


def test_connection_refused(tmp_path):
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  reg = make_registry(tmp_path, [blob("a.bin", GOOD)])
  cache = tmp_path / "cache"
  with pytest.raises(pretrained.DownloadError, match="refused"):
    pretrained.download("a.bin", cache, f"http://127.0.0.1:{port}",
                        registry=reg, **FAST)
  assert cache_files(cache) == []
  good = LocalServer()
  try:
    good.routes["/a.bin"] = ("ok", GOOD)
    path = pretrained.download("a.bin", cache, good.url, registry=reg, **FAST)
    assert open(path, "rb").read() == GOOD
  finally:
    good.close()


def tiny_metagraph_bytes():
  """A minimal MetaGraphDef with sender/receiver signatures (content check
  only; tests/pretrained_tfci_test.py exports real models)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  mg = tf.compat.v1.MetaGraphDef()
  node = mg.graph_def.node.add()
  node.name, node.op = "x", "Placeholder"
  node.attr["dtype"].type = tf.uint8.as_datatype_enum
  for key in ("sender", "receiver"):
    mg.signature_def[key].inputs["image"].name = "x:0"
    mg.signature_def[key].outputs["image"].name = "x:0"
  return mg.SerializeToString()


def test_garbage_metagraph_is_rejected_before_caching(tmp_path, server):
  model = {"name": "m", "file": "m.metagraph",
           "url": "https://example.invalid/m.metagraph", "sha256": None}
  reg = make_registry(tmp_path, [], models=[model])
  cache = tmp_path / "cache"
  server.routes["/m.metagraph"] = ("ok", b"<html>Not a model</html>" * 50)
  with pytest.raises(ValueError, match="not a tfci MetaGraphDef"):
    pretrained.download("m", cache, server.url, registry=reg, **FAST)
  assert cache_files(cache) == []
  assert pretrained.read_manifest(cache)["files"] == {}  # nothing recorded
  good = tiny_metagraph_bytes()
  server.routes["/m.metagraph"] = ("ok", good)
  path = pretrained.download("m", cache, server.url, registry=reg, **FAST)
  assert open(path, "rb").read() == good


def test_unpinned_hash_is_recorded_and_enforced(tmp_path, server):
  reg = make_registry(tmp_path, [blob("u.bin", GOOD, pinned=False)])
  cache = tmp_path / "cache"
  server.routes["/u.bin"] = ("ok", GOOD)
  path = pretrained.download("u.bin", cache, server.url, registry=reg, **FAST)
  entry = pretrained.read_manifest(cache)["files"]["blobs/u.bin"]
  assert entry["sha256"] == hashlib.sha256(GOOD).hexdigest()
  assert entry["size"] == len(GOOD)
  os.remove(path)
  server.routes["/u.bin"] = ("ok", GOOD[::-1])  # upstream changed
  with pytest.raises(pretrained.ChecksumError, match="first seen"):
    pretrained.download("u.bin", cache, server.url, registry=reg, **FAST)
  assert cache_files(cache) == []
  server.routes["/u.bin"] = ("ok", GOOD)
  pretrained.download("u.bin", cache, server.url, registry=reg, **FAST)
  # A cached copy corrupted on disk is fetched again, not trusted.
  with open(path, "r+b") as f:
    f.write(b"corrupt")
  pretrained.download("u.bin", cache, server.url, registry=reg, **FAST)
  assert open(path, "rb").read() == GOOD
  assert server.counts["/u.bin"] == 4


def test_concurrent_downloads_of_the_same_file(tmp_path, server):
  reg = make_registry(tmp_path, [blob("a.bin", GOOD)])
  cache = tmp_path / "cache"
  server.routes["/a.bin"] = ("slow", GOOD)
  results, errors = [], []

  def worker():
    try:
      results.append(pretrained.download("a.bin", cache, server.url,
                                         registry=reg, **dict(FAST, timeout=5)))
    except Exception as e:  # pylint: disable=broad-except
      errors.append(e)

  threads = [threading.Thread(target=worker) for _ in range(3)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert not errors and len(set(results)) == 1
  assert open(results[0], "rb").read() == GOOD
  assert server.counts["/a.bin"] == 1  # the others waited on the lock
  assert cache_files(cache) == ["blobs/a.bin"]


def test_concurrent_downloads_in_two_processes(tmp_path, server):
  reg = make_registry(tmp_path, [blob("a.bin", GOOD)])
  cache = tmp_path / "cache"
  # Slow enough (~1.2 s) that the two interpreters' downloads overlap.
  server.routes["/a.bin"] = ("slower", GOOD)
  # The download module alone (no TensorFlow), loaded by file path.
  code = (
      "import importlib.util, sys, types\n"
      f"sys.path.insert(0, {REPO_ROOT!r})\n"
      "pkg = types.ModuleType('tfc_perception'); pkg.__path__ = "
      f"[{os.path.join(REPO_ROOT, 'tfc_perception')!r}]\n"
      "pkg.__version__ = 'test'; sys.modules['tfc_perception'] = pkg\n"
      "from tfc_perception.pretrained import downloader as dl, registry as r\n"
      f"reg = r.Registry({str(tmp_path / 'registry.json')!r})\n"
      f"print(dl.download('a.bin', {str(cache)!r}, {server.url!r}, "
      "registry=reg, timeout=5, retries=0, progress=False))\n")
  procs = [subprocess.Popen([sys.executable, "-c", code],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
           for _ in range(2)]
  outs = [p.communicate(timeout=60) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err.decode()[-2000:]
  assert outs[0][0] == outs[1][0]
  assert open(cache / "blobs" / "a.bin", "rb").read() == GOOD
  assert server.counts["/a.bin"] == 1
  assert cache_files(cache) == ["blobs/a.bin"]


def test_offline_never_connects_and_names_what_is_missing(
    tmp_path, server, monkeypatch):
  reg = make_registry(tmp_path, [blob("a.bin", GOOD), blob("b.bin", GOOD)])
  cache = tmp_path / "cache"

  def no_network(*args, **kwargs):
    raise AssertionError("offline mode opened a connection")

  monkeypatch.setattr(urllib.request, "urlopen", no_network)
  monkeypatch.setattr(socket, "create_connection", no_network)
  with pytest.raises(pretrained.OfflineError) as info:
    pretrained.download("a.bin", cache, server.url, offline=True,
                        registry=reg)
  msg = str(info.value)
  assert "blobs/a.bin" in msg and str(cache) in msg and "bin/download" in msg
  with pytest.raises(pretrained.OfflineError, match="2 of 2 blobs files"):
    pretrained.download("blobs", cache, offline=True, registry=reg)
  monkeypatch.undo()
  server.routes["/a.bin"] = ("ok", GOOD)
  pretrained.download("a.bin", cache, server.url, registry=reg, **FAST)
  monkeypatch.setattr(urllib.request, "urlopen", no_network)
  path = pretrained.download("a.bin", cache, offline=True, registry=reg)
  assert open(path, "rb").read() == GOOD
  assert server.counts["/a.bin"] == 1


def test_cache_dir_from_environment(tmp_path, monkeypatch):
  monkeypatch.setenv("TFC_PERCEPTION_CACHE", str(tmp_path / "envcache"))
  assert pretrained.resolve_cache_dir() == str(tmp_path / "envcache")
  monkeypatch.delenv("TFC_PERCEPTION_CACHE")
  assert pretrained.resolve_cache_dir() == os.path.join(
      os.path.expanduser("~"), ".cache", "tfc_perception")
  assert pretrained.resolve_cache_dir(tmp_path) == str(tmp_path)


def test_bad_arguments(tmp_path):
  with pytest.raises(KeyError, match="bmshj2018-factorized-mse-1"):
    pretrained.download("no-such-model", tmp_path)
  with pytest.raises(KeyError, match="tid2013.rar"):
    pretrained.download("tid2013", tmp_path)
  with pytest.raises(ValueError, match="retries"):
    pretrained.download("kodim01", tmp_path, retries=-1)


def test_kodak_from_local_server_matches_pinned_hashes(tmp_path):
  kodak = shared_path("kodak")
  sums = {}
  with open(os.path.join(kodak, "SHA256SUMS")) as f:
    for line in f:
      digest, name = line.split()
      sums[os.path.basename(name)] = digest
  local = LocalServer(directory=kodak)
  try:
    folder = pretrained.download("kodak", tmp_path, local.url, progress=False)
  finally:
    local.close()
  files = sorted(f for f in os.listdir(folder) if f.endswith(".png"))
  assert files == [f"kodim{i:02d}.png" for i in range(1, 25)]
  for f in files:
    assert dl.sha256_file(os.path.join(folder, f)) == sums[f]
  assert len(local.counts) == 24


def _read_only_runner(cache):
  """A command prefix under which `cache` is read-only: a read-only bind
  mount in a private mount namespace when running as root (root ignores
  file modes), else the files' write bits removed. None if impossible."""
  import shutil  # pylint: disable=g-import-not-at-top
  if os.geteuid() != 0:
    for root, dirs, files in os.walk(cache):
      for name in dirs + files:
        path = os.path.join(root, name)
        os.chmod(path, os.stat(path).st_mode & ~0o222)
    os.chmod(cache, os.stat(cache).st_mode & ~0o222)
    return lambda argv: argv
  if not shutil.which("unshare"):
    return None
  probe = subprocess.run(
      ["unshare", "-m", "sh", "-c", f"mount --bind {cache} {cache} && mount "
       f"-o remount,bind,ro {cache} && ! touch {cache}/probe 2>/dev/null"],
      capture_output=True)
  if probe.returncode != 0:
    return None
  return lambda argv: ["unshare", "-m", "sh", "-c", (
      f'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && '
      'exec "$@"'), str(cache)] + argv


def test_a_verified_cache_works_read_only(tmp_path, server):
  """Issue 12: a populated cache on a read-only filesystem (or copied there)
  serves verified files with no lock and no write, online or offline."""
  reg = make_registry(tmp_path, [blob("a.bin", GOOD),
                                 blob("u.bin", GOOD[::-1], pinned=False)])
  cache = tmp_path / "cache"
  server.routes["/a.bin"] = ("ok", GOOD)
  server.routes["/u.bin"] = ("ok", GOOD[::-1])
  pretrained.download("blobs", cache, server.url, registry=reg, **FAST)
  before = sorted(os.listdir(cache / "blobs"))
  runner = _read_only_runner(cache)
  if runner is None:
    pytest.skip("cannot make a read-only directory here (root without "
                "mount namespaces)")
  code = (
      "import sys\n"
      "from tfc_perception import pretrained\n"
      f"reg = pretrained.Registry({str(tmp_path / 'registry.json')!r})\n"
      f"cache = {str(cache)!r}\n"
      "for name in ('a.bin', 'u.bin'):\n"
      "  print(pretrained.download(name, cache, offline=True, registry=reg))\n"
      # Online too: verified files are served without a lock or a connection
      # (the URL prefix points nowhere).
      "  print(pretrained.download(name, cache, 'http://127.0.0.1:9', "
      "registry=reg, retries=0, progress=False))\n"
      "print(pretrained.download('blobs', cache, offline=True, registry=reg,"
      " progress=False))\n")
  env = dict(os.environ, PYTHONPATH=REPO_ROOT)
  out = subprocess.run(runner([sys.executable, "-c", code]),
                       capture_output=True, text=True, env=env, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  lines = out.stdout.split()
  assert lines == [str(cache / "blobs" / "a.bin")] * 2 + [
      str(cache / "blobs" / "u.bin")] * 2 + [str(cache / "blobs")]
  assert sorted(os.listdir(cache / "blobs")) == before


def test_cache_files_follow_the_umask(tmp_path, server):
  """Issue 12: downloads are 0644 under umask 022 (not mkstemp's 0600), so
  other users can read a shared cache."""
  import stat  # pylint: disable=g-import-not-at-top
  reg = make_registry(tmp_path, [blob("a.bin", GOOD, pinned=False)])
  server.routes["/a.bin"] = ("ok", GOOD)
  old = os.umask(0o022)
  try:
    path = pretrained.download("a.bin", tmp_path / "c", server.url,
                               registry=reg, **FAST)
  finally:
    os.umask(old)
  modes = {os.path.relpath(os.path.join(r, n), tmp_path / "c"):
           stat.S_IMODE(os.stat(os.path.join(r, n)).st_mode)
           for r, dirs, files in os.walk(tmp_path / "c") for n in dirs + files}
  assert modes == {"blobs": 0o755, "blobs/a.bin": 0o644,
                   "blobs/a.bin.lock": 0o644, "manifest.json": 0o644,
                   "manifest.json.lock": 0o644}, modes
  assert os.path.basename(path) == "a.bin"


def test_offline_message_for_a_corrupted_cached_file(tmp_path, server):
  reg = make_registry(tmp_path, [blob("a.bin", GOOD)])
  server.routes["/a.bin"] = ("ok", GOOD)
  path = pretrained.download("a.bin", tmp_path / "c", server.url,
                             registry=reg, **FAST)
  with open(path, "r+b") as f:
    f.write(b"corrupt")
  with pytest.raises(pretrained.ChecksumError) as info:
    pretrained.download("a.bin", tmp_path / "c", offline=True, registry=reg)
  msg = str(info.value)
  assert "is cached but its sha256" in msg
  assert f"(at {path}); delete it, then run `bin/download blobs" in msg, msg
  assert "delete it and" not in msg


def test_garbage_metagraph_names_the_url_it_came_from(tmp_path, server):
  model = {"name": "m", "file": "m.metagraph",
           "url": "https://example.invalid/m.metagraph", "sha256": None}
  reg = make_registry(tmp_path, [], models=[model])
  server.routes["/m.metagraph"] = ("ok", b"<html>Not a model</html>" * 50)
  with pytest.raises(ValueError) as info:
    pretrained.download("m", tmp_path / "c", server.url, registry=reg, **FAST)
  assert f"(from {server.url}/m.metagraph)" in str(info.value)
  assert "example.invalid" not in str(info.value)
