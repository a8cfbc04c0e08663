"""The three-step recovery of docs/pretrained.md through the command lines,
on a graph that defeats tensor discovery (`pretrained_tensors_test`):
`bin/download tensors` lists the candidates, `--tensors` names them, and the
Fig. 3 pipeline (`bin/evaluate iqa`, `bin/reproduce iqa --set tensors=...`)
then computes Din and Dr; the first-load check is stored beside the cached
models and read, not rerun, by later processes. The tools run in this process
(tool_in_process); a later process is a subprocess. No network."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import tool_in_process
from conftest import REPO_ROOT
from pretrained_tensors_test import NAMED_FLAG
from pretrained_tensors_test import write_graph
from tid_layout import make_tid_layout


def run(script, *args, cache=None, cwd=None):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", MPLBACKEND="Agg")
  if cache:
    env["TFC_PERCEPTION_CACHE"] = str(cache)
  return subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "bin", script), *map(str, args)],
      capture_output=True, text=True, env=env, timeout=600, check=False,
      cwd=cwd)


def errors(proc):
  return [line for line in proc.stderr.splitlines()
          if line.startswith("error:")]


def run_here(capsys, tool, *args):
  """bin/<tool> ARGS in this process, as a CompletedProcess."""
  status, out, err = tool_in_process.run_tool(capsys, tool, *args)
  return subprocess.CompletedProcess([tool, *args], status, out, err)


@pytest.fixture(scope="module")
def defeat(tmp_path_factory):
  return write_graph(tmp_path_factory.mktemp("g") / "defeat.metagraph",
                     "defeat")[0]


@pytest.mark.slow
def test_bin_download_tensors(defeat, capsys):
  out = run_here(capsys, "download", "tensors", defeat)
  assert out.returncode == 0, out.stderr[-2000:]
  lines = out.stdout.splitlines()
  assert any(line.startswith("# latent ") and "not found: found no rounding "
             "op" in line for line in lines)
  assert "# self-check: not run (a required tensor is missing)" in lines
  conv = [line.split() for line in lines
          if line.startswith("analysis/Conv2D:0 ")]
  assert conv == [["analysis/Conv2D:0", "Conv2D", "float32", "(1,", "?,",
                   "?,", "4)", "sender", "candidate:", "latent"]]
  # Every tensor is listed (as tfci.py tensors does), sorted by name.
  names = [line.split()[0] for line in lines if not line.startswith("#")]
  assert names == sorted(names) and "Cast:0" in names and len(names) > 100

  chosen = run_here(capsys, "download", "tensors", defeat, "--tensors",
                    NAMED_FLAG, "--candidates_only")
  assert chosen.returncode == 0, chosen.stderr[-2000:]
  text = chosen.stdout
  assert "# latent          analysis/Conv2D:0  (given)" in text
  assert "# latent_hat      add_2:0  (discovered)" in text
  assert ("# self-check: ok, max_abs_diff 0 (run; kept in memory)"
          in text.splitlines())
  assert "<- latent (given)" in text
  assert not any(line.startswith("Cast:0 ") for line in text.splitlines())

  bad = run_here(capsys, "download", "tensors", defeat, "--tensors",
                 "latent=analysis/x")
  assert bad.returncode == 1
  assert len(errors(bad)) == 1 and ("nearest candidates for latent: "
                                    in errors(bad)[0])


@pytest.fixture(scope="module")
def tid_root(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("tid") / "tid2013")
  make_tid_layout(root)
  return root


@pytest.mark.slow
def test_bin_evaluate_iqa_with_named_tensors(tmp_path, defeat, tid_root,
                                             capsys):
  from tfc_perception import induced, pretrained  # pylint: disable=g-import-not-at-top
  from tfc_perception.data import iqa as iqa_data  # pylint: disable=g-import-not-at-top
  args = ["iqa", "--root", tid_root, "--models", defeat, "--distances",
          "psnr,dr,din", "--bootstrap", "20", "--noprogress", "--output"]
  failed = run_here(capsys, "evaluate", *args, tmp_path / "a")
  assert failed.returncode == 1
  assert len(errors(failed)) == 1
  assert "bin/download tensors defeat" in errors(failed)[0]
  out = tmp_path / "b"
  proc = run_here(capsys, "evaluate", *args, out, "--tensors", NAMED_FLAG)
  assert proc.returncode == 0, proc.stderr[-3000:]
  pairs = pd.read_csv(out / "pairs.csv").set_index("name")
  assert len(pairs) == 30
  assert json.loads((out / "manifest.json").read_text())["config"][
      "tensors"] == NAMED_FLAG.split(",")
  # Din and Dr equal a direct computation with the named tensors (Din from
  # float16-cached latents: rtol 1e-2, as in evaluate_iqa_test).
  ds = iqa_data.load_tid2013(tid_root)
  x1 = np.stack([iqa_data.read_image(p) for p in ds.pairs.reference_path])
  x2 = np.stack([iqa_data.read_image(p) for p in ds.pairs.distorted_path])
  direct = induced.induced_distances(
      pretrained.load(defeat, tensors=NAMED_FLAG), x1, x2)
  np.testing.assert_allclose(pairs.loc[ds.pairs["name"], "din@defeat"],
                             direct["din"], rtol=1e-2)
  np.testing.assert_allclose(pairs.loc[ds.pairs["name"], "dr@defeat"],
                             direct["dr"], rtol=1e-4, atol=1e-7)
  assert (direct["din"] > 0).all() and (direct["dr"] > 0).all()


@pytest.mark.slow
def test_bin_reproduce_iqa_with_tensors_set(tmp_path, tid_root, capsys,
                                            monkeypatch):
  """The Fig. 3 experiment on a 'pretrained' family of four graphs that
  defeat discovery, named through --set tensors=..."""
  cache = tmp_path / "cache"
  os.makedirs(cache / "models")
  names = [f"bmshj2018-factorized-{d}-{q}" for d in ("mse", "msssim")
           for q in (1, 8)]
  for seed, name in enumerate(names):
    write_graph(cache / "models" / f"{name}.metagraph", "defeat", seed=seed)
  args = ["iqa", "--config", "tiny", "--output", tmp_path / "out", "--quiet",
          "--set", "models=pretrained", "--set", f"root={tid_root}",
          "--set", "distances=psnr,dr,din"]
  monkeypatch.setenv("TFC_PERCEPTION_CACHE", str(cache))
  proc = run_here(capsys, "reproduce", *args, "--set",
                  f"tensors={NAMED_FLAG}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads((tmp_path / "out" / "iqa" / "results.json").read_text())[
      "results"]
  assert res["models"] == "pretrained bmshj2018-factorized"
  assert res["n_pairs"] == 30
  for name in names:
    assert np.isfinite(res["srcc"][f"din@{name}"])
    assert np.isfinite(res["srcc"][f"dr@{name}"])
    assert res["rate_bpp"][name] > 0
  assert (tmp_path / "out" / "iqa" / "fig3_srcc.png").stat().st_size > 0
  records = [cache / "models" / f"{n}.metagraph.check.json" for n in names]
  stored = [json.loads(r.read_text())["checks"] for r in records]
  assert all(len(s) == 1 and s[0]["ok"] for s in stored)
  mtimes = [r.stat().st_mtime_ns for r in records]
  # A later process reads the stored check instead of running it.
  shown = run("download", "tensors", names[0], "--offline", "--tensors",
              NAMED_FLAG, "--candidates_only", cache=cache)
  assert shown.returncode == 0, shown.stderr[-2000:]
  assert (f"# self-check: ok, max_abs_diff 0 (stored; stored in "
          f"{records[0]})") in shown.stdout.splitlines()
  assert [r.stat().st_mtime_ns for r in records] == mtimes
