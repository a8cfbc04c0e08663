"""The README's "First five minutes" tour, run command by command (issue 12):
the block is taken from README.md itself, so the docs cannot drift."""

import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO_ROOT, shared_path


def tour_commands():
  """The shell lines of the tour's code block (continuations joined), without
  the venv activation, which the test replaces by its own PATH."""
  text = open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8").read()
  section = text[text.index("## First five minutes"):]
  block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
  lines = block.replace("\\\n", " ").splitlines()
  return [l for l in lines if l.strip() and not l.startswith(". .venv/")]


def test_the_tour_has_the_promised_steps():
  text = " ".join(tour_commands())
  for step in ("tfcp-download kodak", "tfcp-train", "tfcp-codec compress",
               "tfcp-codec decompress", "tfcp-evaluate distances",
               "--distances psnr,msssim,nlpd", "tfcp-evaluate iqa"):
    assert step in text, step


@pytest.mark.slow
def test_every_tour_command_runs(tmp_path):
  kodak = shared_path("kodak")
  tid2013 = shared_path("tid2013-sample")
  cache = tmp_path / "cache"
  (cache / "kodak").mkdir(parents=True)
  for name in os.listdir(kodak):  # a populated cache: no network needed
    if name.endswith(".png"):
      shutil.copy(os.path.join(kodak, name), cache / "kodak" / name)
  path = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
  if shutil.which("tfcp-train", path=path) is None:
    pytest.fail("tfcp-train is not on PATH next to the test's Python: the "
                "package is not installed (pip install -e .)")
  env = dict(os.environ, PATH=path, TFC_PERCEPTION_CACHE=str(cache),
             TID2013=tid2013, PYTHONPATH=REPO_ROOT)
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the tools' own quiet default
  work = tmp_path / "work"
  work.mkdir()
  script = "set -euo pipefail\n" + "\n".join(tour_commands()) + "\n"
  out = subprocess.run(["bash", "-c", script], cwd=work, env=env,
                       capture_output=True, text=True, timeout=900)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  assert "trained factorized to step 100" in out.stdout
  assert "tour/kodim23.png: 768x512 PNG" in out.stdout
  assert "nlpd_laparra2016" in out.stdout
  assert "Unable to register" not in out.stderr  # quiet TF by default
  tour = work / "tour"
  assert (tour / "model").is_dir() and (tour / "kodim23.tfci").is_file()
  pairs = pd.read_csv(tour / "iqa" / "pairs.csv")
  assert list(pairs["name"]) == ["i01_01_5.bmp"]
  # The sample pair's NLPD as in docs (laparra2016 0.320926, issue 2).
  assert pairs["nlpd"][0] == pytest.approx(0.320926, abs=2e-6)
  assert pairs["dr@model"][0] > 0
