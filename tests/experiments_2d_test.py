"""Tests of the 2-D experiments (issue 6): a tiny config of each figure runs,
its outputs exist and parse, and the paper's direction holds where it is
robust at small scale.

The whole group runs once (module fixture, `bin/reproduce all --config tiny`
equivalent): 7 small models of ~600 steps; the per-figure tests then read the
files it wrote. Those tests and the Ctrl-C test are slow; the config and CLI
tests are not.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from conftest import REPO_ROOT
from tfc_perception.experiments import runner
from tfc_perception.experiments import student_t

FIGURES = {
    "fig2": ["fig2.png", "fig2_perturbations.png", "fig2_correlations.csv"],
    "fig11": ["fig11.png", "fig11_code_vectors.csv"],
    "fig12": ["fig12.png", "fig12_metrics.csv", "fig12_code_vectors.csv"],
    "fig13": ["fig13.png", "fig13_metrics.csv", "fig13_code_vectors.csv"],
    "fig14": ["fig14.png", "fig4_left.png", "fig14_ratio.csv"],
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  out = tmp_path_factory.mktemp("repro2d")
  res = runner.run_experiments("all", "tiny", str(out), verbose=False)
  return out, {r["name"]: r for r in res["experiments"]}


def _cached_2d_model(out, lmbda, distortion):
  """The model of the tiny run's cache trained with (λ, distortion) on the
  Student-t source, unweighted."""
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  cache = out / "_cache" / "models"
  found = [d for d in cache.iterdir() if (d / "done.json").exists()
           and (lambda c: c.get("source") == "student_t"
                and c.get("distortion") == distortion
                and c.get("lmbda") == lmbda and not c.get("weight"))(
                    json.loads((d / "config.json").read_text()))]
  assert len(found) == 1, found
  return models.load_model(str(found[0] / "model"))


def _results(out, name):
  return json.loads((out / name / "results.json").read_text())["results"]


def test_all_group_is_issue6_experiments():
  assert runner.resolve_names("all") == list(FIGURES)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FIGURES))
def test_outputs_exist_and_parse(tiny, name):
  out, runs = tiny
  d = out / name
  for f in FIGURES[name] + ["results.json", "report.md", "manifest.json",
                            "models.csv"]:
    assert (d / f).exists(), f
  for f in FIGURES[name]:
    if f.endswith(".png"):
      assert (d / f).read_bytes()[:4] == b"\x89PNG"
      assert f"![{f}]({f})" in (d / "report.md").read_text()
    else:
      table = pd.read_csv(d / f)
      assert len(table) > 0
  manifest = json.loads((d / "manifest.json").read_text())
  assert manifest["config"]["_preset"] == "tiny"
  assert manifest["wall_time_s"] > 0
  models = pd.read_csv(d / "models.csv")
  assert (models["train_time_s"] > 0).all()


@pytest.mark.slow
def test_models_are_shared_through_the_cache(tiny):
  _, runs = tiny
  # fig11 uses the plain λ=4 model trained by fig2; fig14's pair at λ=4
  # reuses fig2's plain and fig12's P(x)-weighted model.
  assert [m["source"] for m in runs["fig11"]["models"]] == ["cache"]
  assert [m["source"] for m in runs["fig14"]["models"]] == ["cache", "cache"]
  assert runs["fig12"]["models"][0]["source"] == "cache"


@pytest.mark.slow
def test_fig2_sweep_and_self_distance_direction(tiny):
  out, _ = tiny
  r = _results(out, "fig2")
  table = pd.read_csv(out / "fig2" / "fig2_correlations.csv")
  assert len(table) == 3 * 2  # 3 models x 2 perturbation sizes
  table = table[table["perturbation_std"] == r["main_perturbation_std"]]
  # Higher λ, higher rate, lower distortion.
  by_l = table.sort_values("lmbda")
  assert by_l["bits_per_sample"].is_monotonic_increasing
  assert by_l["sse_per_sample"].is_monotonic_decreasing
  # Obs. 4 at low rate: likely points are reconstructed better (Ds negatively
  # rank-correlated with p(x1)); at these rates ρ < -0.5 in every run we made.
  assert r["rho_ds_lowest_rate"] < -0.5
  # De of a random perturbation carries no information about p(x1).
  assert abs(r["rho_de_mean"]) < 0.1
  # The lowest-rate ρ(Ds, p) recomputed independently: the cached model on a
  # fresh SciPy sample of the isotropic Student-t (df 3: p(x) falls with
  # ||x||), Ds = ||x − x̂||², Spearman by SciPy.
  low = table[table.lmbda == table.lmbda.min()].iloc[0]
  model = _cached_2d_model(out, float(low.lmbda), "mse")
  x = sps.multivariate_t(loc=[0.0, 0.0], shape=np.eye(2), df=3.0,
                         seed=7).rvs(20000).astype(np.float32)
  x_hat, _ = model(x, training=False)
  ds = np.sum((np.asarray(x_hat, np.float64) - x) ** 2, axis=1)
  rho = sps.spearmanr(ds, -np.linalg.norm(x, axis=1))[0]
  assert rho == pytest.approx(low.rho_ds, abs=0.03)


@pytest.mark.slow
def test_fig2_reports_crossing_fraction_for_every_model_and_perturbation(
    tiny):
  out, _ = tiny
  r = _results(out, "fig2")
  table = pd.read_csv(out / "fig2" / "fig2_correlations.csv")
  # tiny: σ = 4 is cell-sized for its low-rate models (0.2-2.6 bits).
  assert sorted(set(table["perturbation_std"])) == [0.05, 4.0]
  assert table.groupby("perturbation_std")["lmbda"].nunique().eq(3).all()
  f = table["fraction_codes_differ"]
  assert f.between(0, 1).all()
  by_std = table.groupby("perturbation_std")["fraction_codes_differ"].median()
  # Larger steps cross more cell boundaries; σ = 0.05 stays in its cell for
  # most pairs (the degenerate Dr of the first version).
  assert by_std[0.05] < 0.5 < by_std[4.0]
  # The main figure uses the smallest σ where most pairs cross, and says so.
  assert r["main_perturbation_std"] == 4.0
  assert r["median_fraction_codes_differ"]["4"] == pytest.approx(by_std[4.0])
  assert len(r["by_perturbation"]["0.05"]["fraction_codes_differ"]) == 3
  assert [m["fraction_codes_differ"] for m in r["models"]] == list(
      table[table["perturbation_std"] == 4.0]["fraction_codes_differ"])
  assert "pairs whose codes differ" in (out / "fig2" / "report.md").read_text()


@pytest.mark.slow
def test_fig11_cells_grow_away_from_the_mode(tiny):
  out, _ = tiny
  r = _results(out, "fig11")
  assert r["cells_with_mass"] >= 3
  codes = pd.read_csv(out / "fig11" / "fig11_code_vectors.csv")
  assert np.isclose(codes["mass"].sum(), 1.0, atol=0.05)


@pytest.mark.slow
def test_fig12_density_weighting_moves_accuracy_to_the_core(tiny):
  out, _ = tiny
  r = _results(out, "fig12")
  plain, weighted = r["mse"], r["density_mse"]
  # P(x)·||·||²: better near the mode, worse in the tails than ||·||².
  assert weighted["sse_per_sample_core"] < plain["sse_per_sample_core"]
  assert weighted["sse_per_sample_tail"] > plain["sse_per_sample_tail"]
  for d in ("mse", "density_mse", "inverse_density_mse"):
    assert r[d]["bits_per_sample"] > 0 and r[d]["sse_total"] > 0


@pytest.mark.slow
def test_fig13_weighting_concentrates_code_vectors(tiny):
  out, _ = tiny
  r = _results(out, "fig13")
  plain, weighted = r["plain"], r["weighted_distortion"]
  assert (weighted["code_density_core_per_unit2"]
          > plain["code_density_core_per_unit2"])
  assert weighted["sse_per_sample_core"] < plain["sse_per_sample_core"]
  # Finer cells where the Student-t weight is high.
  assert (weighted["mean_local_cell_area_core"]
          < plain["mean_local_cell_area_core"])
  assert weighted["spearman_local_area_vs_p"] < 0


@pytest.mark.slow
def test_fig13_reports_both_readings_of_the_weighting(tiny):
  out, runs = tiny
  r = _results(out, "fig13")
  table = pd.read_csv(out / "fig13" / "fig13_metrics.csv")
  assert list(table["model"]) == ["plain", "weighted_distortion",
                                  "weighted_eq3"]
  eq3 = r["weighted_eq3"]
  # Weighting all of Eq. 3 by P_t trains on (in effect) the Student-t inside
  # the box: more accuracy in the core than the plain model.
  assert eq3["sse_per_sample_core"] < r["plain"]["sse_per_sample_core"]
  assert eq3["lmbda_effective"] == runs["fig13"]["results"]["plain"][
      "lmbda_effective"]


@pytest.mark.slow
def test_fig14_ratio_below_one_at_mode_above_in_tails(tiny):
  out, _ = tiny
  r = _results(out, "fig14")
  pair = r["pairs"][0]
  for q in ("eq13", "sse"):
    assert pair[f"{q}_geomean_ratio_core"] < 1.0 < pair[
        f"{q}_geomean_ratio_tail"]
  table = pd.read_csv(out / "fig14" / "fig14_ratio.csv")
  for q in ("eq13", "sse"):
    assert np.all(np.isfinite(table[f"ratio_{q}_polyfit"]))
  # The Eq. 13 column is P = SSE / bits of each model, per bin.
  floor = runner.get_experiment("fig14").configs["tiny"].error_floor
  np.testing.assert_allclose(
      table["ratio_eq13"],
      ((table["sse_weighted"] + floor) / table["bits_weighted"])
      / ((table["sse_plain"] + floor) / table["bits_plain"]), rtol=1e-6)


def test_model_spec_normalises_weighted_lambda():
  cfg = dataclasses.replace(runner.get_experiment("fig12").configs["tiny"],
                            inverse_density_floor=0.0)
  plain = student_t.model_spec(cfg, 2.0)
  weighted = student_t.model_spec(cfg, 2.0, "density_mse")
  inverse = student_t.model_spec(cfg, 2.0, "inverse_density_mse")
  assert plain["lmbda"] == 2.0 and "weight" not in plain
  # λ / geometric mean of P(x) under the Student-t, which lies below its
  # maximum P(0) = 1/(2π) ≈ 0.159 (and, heavy tails, well below the median).
  assert weighted["lmbda"] > 2.0 / 0.159
  # The weight of the inverse model is 1/P: its geometric mean is 1/g.
  assert weighted["lmbda"] * inverse["lmbda"] == pytest.approx(4.0, rel=1e-3)
  assert runner.config_hash(plain) != runner.config_hash(weighted)
  floored = student_t.model_spec(
      runner.get_experiment("fig12").configs["tiny"], 2.0,
      "inverse_density_mse")
  assert floored["density_floor"] == 1e-3
  assert runner.config_hash(floored) != runner.config_hash(inverse)


def test_cli_list_and_unknown_experiment():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  ok = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "bin",
                                                    "reproduce"), "list"],
                      capture_output=True, text=True, env=env, timeout=120)
  assert ok.returncode == 0, ok.stderr
  for name in list(FIGURES) + ["dae"]:
    assert name in ok.stdout
  bad = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "bin",
                                                     "reproduce"), "fig99"],
                       capture_output=True, text=True, env=env, timeout=120)
  assert bad.returncode == 1
  assert "unknown experiment" in bad.stderr and "fig2" in bad.stderr


@pytest.mark.slow
def test_ctrl_c_then_rerun_resumes_the_interrupted_model(tmp_path):
  """Issue 13: bin/reproduce interrupted by SIGINT mid-training prints one
  line; the same command resumes that model from its checkpoint."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", MPLBACKEND="Agg")
  command = [sys.executable, os.path.join(REPO_ROOT, "bin", "reproduce"),
             "fig2", "--config", "tiny", "--output", str(tmp_path / "out"),
             "--set", "lambdas=[0.5, 1]", "--set", "n_pairs=500",
             "--set", "n_val=500"]
  proc = subprocess.Popen(command, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env)
  for line in proc.stdout:  # wait until the first model trains
    if "training ..." in line:
      break
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 130, err[-3000:]
  lines = [l for l in err.splitlines() if l.strip()]
  assert "Traceback" not in err
  assert lines[-1].startswith("interrupted at step ") and lines[-1].endswith(
      "; checkpoint saved; rerun the same command to resume"), lines[-3:]
  step = int(lines[-1].split()[3].rstrip(";"))
  assert 0 < step < 600  # tiny trains 600 steps: stopped mid-training

  again = subprocess.run(command, capture_output=True, text=True, env=env,
                         timeout=900)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "resuming from" in again.stdout
  models = pd.read_csv(tmp_path / "out" / "fig2" / "models.csv")
  assert list(models.source) == ["resumed", "trained"]
  # The finished model keeps its training curves in the cache entry.
  key = models.key[0]
  entry = tmp_path / "out" / "_cache" / "models" / key
  assert (entry / "train" / "curves.png").is_file()
  assert not (entry / "train" / "checkpoints").exists()
  assert not (tmp_path / "out" / "_cache" / "models" / f"{key}.train").exists()
