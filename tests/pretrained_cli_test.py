"""End-to-end tests of bin/download (subprocesses, local server only)."""

import os
import subprocess
import sys

from conftest import REPO_ROOT
from pretrained_download_test import LocalServer
from pretrained_download_test import tiny_metagraph_bytes

NAME = "bmshj2018-factorized-msssim-2"


def run(*args, env_cache=None):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  if env_cache:
    env["TFC_PERCEPTION_CACHE"] = str(env_cache)
  return subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "bin", "download"), *args],
      capture_output=True, text=True, env=env, timeout=300, check=False)


def test_download_list_and_offline_failure(tmp_path):
  out = run("--list", env_cache=tmp_path / "c")
  assert out.returncode == 0, out.stderr[-2000:]
  lines = out.stdout.strip().splitlines()
  assert sum(line.startswith("model") for line in lines) == 16
  assert any(line.startswith("dataset  kodak") and "0/24" in line
             for line in lines)
  assert any(line.startswith("manual   tid2013") for line in lines)
  out = run("models", NAME, "--offline", "--cache_dir", str(tmp_path / "c"))
  assert out.returncode == 1
  err = [line for line in out.stderr.splitlines() if line.startswith("error:")]
  assert len(err) == 1 and "offline mode" in err[0] and NAME in err[0]
  assert not os.path.exists(tmp_path / "c")  # offline wrote nothing


def test_download_models_from_local_server(tmp_path):
  server = LocalServer()
  data = tiny_metagraph_bytes()
  server.routes[f"/{NAME}.metagraph"] = ("ok", data)
  try:
    out = run("models", NAME, "--url_prefix", server.url, "--cache_dir",
              str(tmp_path))
  finally:
    server.close()
  assert out.returncode == 0, out.stderr[-2000:]
  path = os.path.join(str(tmp_path), "models", f"{NAME}.metagraph")
  assert out.stdout.strip() == path
  assert open(path, "rb").read() == data
