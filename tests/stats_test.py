"""Tests of tfc_perception.stats: SRCC/PLCC/KRCC, VQEG logistic, bootstrap,
per-type breakdown, sign handling, and the TID2013 authors' metric values."""

import numpy as np
import pytest
from scipy import stats as sps

from conftest import shared_path
from tfc_perception import stats

# By hand: ranks of mos [2,1,4,3,5] against 1..5 differ by d = [-1,1,-1,1,0],
# sum d^2 = 4, SRCC = 1 - 6*4 / (5*24) = 0.8; of the 10 pairs, (1,2) and (3,4)
# are discordant: KRCC = (8 - 2) / 10 = 0.6; centred products sum to 8 with
# both sums of squares 10: PLCC = 0.8.
X = np.array([1., 2., 3., 4., 5.])
Y = np.array([2., 1., 4., 3., 5.])


def test_hand_computed_values():
  r = stats.correlations(X, Y, lower_is_better=False, n_bootstrap=0)
  assert r["srcc"] == pytest.approx(0.8)
  assert r["krcc"] == pytest.approx(0.6)
  assert r["plcc"] == pytest.approx(0.8)
  assert r["n"] == 5
  assert "ci" not in r


def test_sign_handling_for_distances():
  distance = -X  # a distance: lower = better quality = higher MOS
  good = stats.correlations(distance, Y, lower_is_better=True, n_bootstrap=0)
  assert good["srcc_oriented"] == pytest.approx(0.8)
  assert good["krcc_oriented"] == pytest.approx(0.6)
  assert good["plcc_oriented"] == pytest.approx(0.8)
  wrong = stats.correlations(distance, Y, lower_is_better=False,
                             n_bootstrap=0)
  assert wrong["srcc_oriented"] == pytest.approx(-0.8)  # disagrees
  assert wrong["srcc"] == pytest.approx(0.8)  # |SRCC| is the same
  with pytest.raises(TypeError, match="lower_is_better"):
    stats.correlations(X, Y, lower_is_better="yes")


def test_logistic_fit_recovers_known_curve():
  rng = np.random.default_rng(1)
  s = rng.uniform(0.0, 6.0, 300)
  true = (4.0, 1.5, 3.0, 0.1, 2.0)
  y = stats.vqeg_logistic(s, *true) + rng.normal(0.0, 0.01, s.size)
  fit = stats.fit_logistic(s, y)
  assert fit["converged"]
  grid = np.linspace(0.0, 6.0, 50)
  np.testing.assert_allclose(stats.vqeg_logistic(grid, *fit["params"]),
                             stats.vqeg_logistic(grid, *true), atol=0.02)
  r = stats.correlations(s, y, lower_is_better=False, n_bootstrap=0)
  assert r["plcc_logistic"] > 0.9999
  assert r["plcc"] < 0.99  # the raw scores are not linear in MOS
  # A distance (decreasing curve) is fitted on the oriented scores.
  r2 = stats.correlations(-s, y, lower_is_better=True, n_bootstrap=0)
  assert r2["plcc_logistic"] == pytest.approx(r["plcc_logistic"], abs=1e-6)


def test_bootstrap_interval_is_seeded_and_covers_estimate():
  rng = np.random.default_rng(0)
  s = rng.normal(size=200)
  y = s + rng.normal(size=200)
  a = stats.correlations(s, y, lower_is_better=False, n_bootstrap=300,
                         seed=3)
  b = stats.correlations(s, y, lower_is_better=False, n_bootstrap=300,
                         seed=3)
  c = stats.correlations(s, y, lower_is_better=False, n_bootstrap=300,
                         seed=4)
  assert a["ci"] == b["ci"]
  assert a["ci"]["srcc"] != c["ci"]["srcc"]
  for k in ("srcc", "plcc", "krcc", "plcc_logistic"):
    lo, hi = a["ci"][k]
    assert lo < a[k] < hi, k
    assert hi - lo < 0.3
  # With 200 points, the 95% SRCC interval half-width is about
  # 1.96 * (1 - rho^2) / sqrt(n) (Fisher): a sanity bound.
  half = (a["ci"]["srcc"][1] - a["ci"]["srcc"][0]) / 2
  expected = 1.96 * (1 - a["srcc"] ** 2) / np.sqrt(200)
  assert 0.6 * expected < half < 1.5 * expected


def test_per_type_breakdown():
  rng = np.random.default_rng(2)
  s = rng.normal(size=60)
  y = rng.normal(size=60)
  types = np.array(["a", "b", "c"] * 20)
  r = stats.correlations(s, y, lower_is_better=False, types=types,
                         n_bootstrap=0)
  assert set(r["per_type"]) == {"a", "b", "c"}
  for t in "abc":
    m = types == t
    assert r["per_type"][t]["n"] == 20
    assert r["per_type"][t]["srcc"] == pytest.approx(
        abs(sps.spearmanr(s[m], y[m])[0]))
    assert r["per_type"][t]["krcc"] == pytest.approx(
        abs(sps.kendalltau(s[m], y[m])[0]))
  row = stats.correlation_rows(r, model="m", distance="d")
  assert row["model"] == "m" and row["srcc"] == r["srcc"]


def test_input_validation():
  with pytest.raises(ValueError, match="same length"):
    stats.correlations([1, 2, 3], [1, 2], lower_is_better=True)
  with pytest.raises(ValueError, match="NaN"):
    stats.correlations([1, np.nan, 3, 4], [1, 2, 3, 4], lower_is_better=True)
  with pytest.raises(ValueError, match="at least 3"):
    stats.correlations([1, 2], [1, 2], lower_is_better=True)
  with pytest.raises(ValueError, match="1-D"):
    stats.correlations(np.ones((2, 2)), np.ones((2, 2)), lower_is_better=True)
  with pytest.raises(ValueError, match="one label per pair"):
    stats.correlations(X, Y, lower_is_better=True, types=["a"])
  with pytest.raises(ValueError, match="confidence"):
    stats.correlations(X, Y, lower_is_better=True, confidence=1.5)


def test_tid2013_authors_metric_values():
  """The TID2013 authors' PSNR/SSIM/MS-SSIM against mos.txt reproduce the
  published SROCC (0.640 / 0.637 / 0.787) and the scipy KRCC of
  ../shared/data/tid2013-sample/PROVENANCE.txt."""
  root = shared_path("tid2013-sample")
  mos = np.loadtxt(f"{root}/mos.txt")
  expected = {"PSNR": (0.6395, 0.4700), "SSIM": (0.6370, 0.4636),
              "MSSIM": (0.7872, 0.6079)}
  for name, (srcc, krcc) in expected.items():
    values = np.loadtxt(f"{root}/metrics_values/{name}.txt")
    assert values.shape == (3000,)
    r = stats.correlations(values, mos, lower_is_better=False, n_bootstrap=0)
    assert r["srcc"] == pytest.approx(srcc, abs=6e-4), name
    assert r["krcc"] == pytest.approx(krcc, abs=6e-4), name
    assert r["srcc_oriented"] > 0  # similarities agree with MOS


def test_spearman_and_pearson_with_degenerate_samples():
  rho, p = stats.spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 6])
  assert rho == pytest.approx(0.8) and 0 < p < 1
  r, _ = stats.pearson([0.0, 1.0, 2.0], [1.0, 3.0, 5.0])
  assert r == pytest.approx(1.0)
  # No ranking: constant samples or fewer than 3 points give nan, not a
  # warning and a meaningless number.
  for a, b in (([1, 1, 1, 1], [1, 2, 3, 4]), ([1, 2], [2, 1])):
    assert all(np.isnan(stats.spearman(a, b)))
    assert all(np.isnan(stats.pearson(a, b)))
  with pytest.raises(ValueError, match="same length"):
    stats.spearman([1, 2, 3], [1, 2])
