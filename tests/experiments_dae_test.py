"""Tests of the Fig. 9 DAE experiment and model (tiny config, ~10 s)."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
import tensorflow as tf

from tfc_perception import models
from tfc_perception.experiments import dae as dae_exp
from tfc_perception.experiments import runner
from tfc_perception.models import dae as dae_lib


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("dae")
  res = runner.run_experiment("dae", "tiny", str(out), verbose=False)
  return out / "dae", res


def test_outputs_exist_and_parse(tiny_run):
  d, res = tiny_run
  for f in ("fig9_dae.png", "dae_curves.csv", "dae_correlations.csv",
            "results.json", "report.md", "manifest.json", "models.csv"):
    assert (d / f).exists(), f
  assert (d / "fig9_dae.png").read_bytes()[:4] == b"\x89PNG"
  curves = pd.read_csv(d / "dae_curves.csv")
  assert set(curves["pdf"]) == {"gaussian", "laplace"}
  assert curves[["x", "p", "deviation", "scaled_score"]].notna().all().all()
  corr = pd.read_csv(d / "dae_correlations.csv")
  assert set(corr["region"]) == {"near_mode", "overall"}
  assert set(corr["versus"]) == {"sigma2_abs_score", "p(x)",
                                 "abs_bayes_deviation"}
  assert "fig9_dae.png" in (d / "report.md").read_text()
  del res


def test_curves_and_correlations_recomputed_independently(tiny_run):
  # Every Gaussian row of dae_correlations.csv and the curves behind it,
  # from the cached DAE and closed forms for N(0, 1) (no tfp, no code of
  # the experiment): σ²·score = −σ²x, the Bayes (Tweedie) deviation
  # −σ²/(1+σ²)·x, Spearman by SciPy. Laplace(0, 1): p and σ²·score.
  d, res = tiny_run
  sigma = res["results"]["gaussian"]["sigma"]
  curves = pd.read_csv(d / "dae_curves.csv")
  corr = pd.read_csv(d / "dae_correlations.csv")
  g = curves[curves.pdf == "gaussian"]
  x = g.x.to_numpy()
  np.testing.assert_allclose(g.p, sps.norm.pdf(x), rtol=1e-5)
  np.testing.assert_allclose(g.scaled_score, -sigma ** 2 * x, rtol=1e-4,
                             atol=1e-7)
  np.testing.assert_allclose(g.bayes_deviation,
                             -sigma ** 2 / (1 + sigma ** 2) * x, atol=1e-4)
  entry = [e for e in (d.parent / "_cache" / "models").iterdir()
           if (e / "done.json").exists() and json.loads(
               (e / "config.json").read_text())["pdf"]["family"] == "Normal"]
  assert len(entry) == 1
  dae = models.load_density_model(str(entry[0] / "model"))
  dev = dae.deviation(x[:, None].astype(np.float32)).numpy()[:, 0]
  np.testing.assert_allclose(g.deviation, dev, rtol=1e-5, atol=1e-6)
  for region, sel in (("overall", np.ones(len(x), bool)),
                      ("near_mode", g.near_mode.to_numpy() == 1)):
    rows = corr[(corr.pdf == "gaussian") & (corr.region == region)]
    row = rows.set_index("versus")
    a = np.abs(dev[sel])
    # The grid in float32, as the model sees it: its ties (|x| equal on both
    # sides of the mode) are the ties of the ranks.
    x32 = np.abs(x[sel].astype(np.float32)).astype(np.float64)
    assert row.loc["sigma2_abs_score", "spearman"] == pytest.approx(
        sps.spearmanr(a, sigma ** 2 * x32)[0], abs=1e-9)
    assert row.loc["p(x)", "spearman"] == pytest.approx(
        sps.spearmanr(a, sps.norm.pdf(x32))[0], abs=1e-9)
    assert row.loc["sigma2_abs_score", "pearson"] == pytest.approx(
        sps.pearsonr(a, sigma ** 2 * np.abs(x[sel]))[0], abs=1e-6)
    assert row.loc["p(x)", "pearson"] == pytest.approx(
        sps.pearsonr(a, sps.norm.pdf(x[sel]))[0], abs=1e-6)
    assert row.loc["sigma2_abs_score", "n_points"] == sel.sum()
  lap = curves[curves.pdf == "laplace"]
  xl = lap.x.to_numpy()
  np.testing.assert_allclose(lap.p, sps.laplace.pdf(xl), rtol=1e-5)
  off = np.abs(xl) > 1e-6
  np.testing.assert_allclose(lap.scaled_score[off],
                             -sigma ** 2 * np.sign(xl[off]), rtol=1e-5)


def test_gaussian_deviation_matches_scaled_score(tiny_run):
  # For p = N(0, s²) the MSE-optimal DAE is linear: r(x) − x = −σ²/(s²+σ²)·x
  # (Tweedie), and the small-noise score term is σ²·∂log p/∂x = −σ²/s²·x.
  # With σ = 0.25, s = 1 they differ by the factor s²/(s²+σ²) = 0.94, so the
  # learned slope must be within 5% of the Bayes slope (training error: we
  # measure < 1% with 1500 steps) and hence within 6% + 5% of the score's.
  _, res = tiny_run
  g = res["results"]["gaussian"]
  assert g["slope_bayes"] == pytest.approx(-0.25 ** 2 / (1 + 0.25 ** 2))
  assert g["slope_scaled_score"] == pytest.approx(-0.25 ** 2)
  assert g["slope_learned"] == pytest.approx(g["slope_bayes"], rel=0.05)
  assert g["slope_learned"] == pytest.approx(g["slope_scaled_score"], rel=0.11)
  # |r(x) − x| is V-shaped like σ²|score|: rank correlation ~1.
  assert g["spearman_absdev_score_overall"] > 0.98
  assert g["spearman_absdev_score_near_mode"] > 0.95
  # RMS error relative to the curve it should follow.
  assert (g["rms_dev_minus_scaled_score_overall"]
          < 0.12 * g["rms_scaled_score_overall"])


def test_scaled_score_and_bayes_deviation_are_exact():
  dist = dae_exp.make_pdf(dae_exp.PDFS["laplace"])
  x = np.array([-2.0, -0.5, 0.5, 2.0])
  # Laplace(0, 1): ∂log p/∂x = −sign(x).
  np.testing.assert_allclose(dae_exp.scaled_score(dist, x, 0.5),
                             -0.25 * np.sign(x), rtol=1e-6)
  g = dae_exp.make_pdf(dae_exp.PDFS["gaussian"])
  np.testing.assert_allclose(
      dae_exp.bayes_deviation(g, x, 0.5, -10, 10),
      -0.25 / 1.25 * x, rtol=1e-4)


def test_dae_model_validation_and_save_load(tmp_path):
  with pytest.raises(ValueError, match="sigma"):
    dae_lib.DenoisingAutoencoder(sigma=0.0)
  with pytest.raises(ValueError, match="hidden"):
    dae_lib.DenoisingAutoencoder(hidden=[])
  m = dae_lib.DenoisingAutoencoder(dims=2, hidden=[8], sigma=0.1, seed=3)
  m.f.layers[-1].set_weights([np.ones((8, 2), np.float32),
                              np.ones(2, np.float32)])
  with pytest.raises(ValueError, match=r"shape \[N, 2\]"):
    m.deviation(np.zeros((4, 3), np.float32))
  models.save_density_model(m, str(tmp_path / "m"))
  m2 = models.load_density_model(str(tmp_path / "m"))
  assert isinstance(m2, dae_lib.DenoisingAutoencoder)
  x = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
  np.testing.assert_allclose(m2(x).numpy(), m(x).numpy(), rtol=1e-6)
  assert m2.get_config() == m.get_config()
  with pytest.raises(FileNotFoundError):
    models.load_density_model(str(tmp_path / "missing"))


def test_dae_training_reduces_denoising_error():
  m = dae_lib.DenoisingAutoencoder(dims=1, hidden=[16], sigma=0.5, seed=0)
  x = tf.random.stateless_normal([4096, 1], seed=[1, 2])
  m.compile(optimizer=tf.keras.optimizers.Adam(1e-2))
  before = m.evaluate(x, batch_size=512, verbose=0)
  m.fit(x, batch_size=256, epochs=3, verbose=0)
  after = m.evaluate(x, batch_size=512, verbose=0)
  # Identity has error σ² = 0.25; the optimum σ²/(1+σ²) = 0.2.
  assert before == pytest.approx(0.25, rel=0.1)
  assert after < 0.22


def test_cli_trains_the_dae(tmp_path):
  """bin/reproduce dae (absl's app.run) builds and trains the DAE: its
  weights must not be created inside a traced graph."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from conftest import REPO_ROOT  # pylint: disable=g-import-not-at-top
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", MPLBACKEND="Agg")
  out = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "bin", "reproduce"), "dae",
       "--config", "tiny", "--output", str(tmp_path), "--set", "steps=200",
       "--set", "pdfs=[\"gaussian\"]", "--set", "grid_points=51", "--quiet"],
      capture_output=True, text=True, env=env, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  models = pd.read_csv(tmp_path / "dae" / "models.csv")
  assert list(models.source) == ["trained"]
