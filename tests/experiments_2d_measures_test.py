"""Tests of the measures of the 2-D experiments on cases known without a
trained model (issue 16): the cell statistics on a regular lattice, the
fraction of pairs whose codes differ, the Eq. 13 ratio per bin, the choice
of the main Fig. 2 perturbation and the Fig. 13 model specs."""

import dataclasses

import numpy as np
import pytest

from tfc_perception.data import sources
from tfc_perception.evaluation import rd
from tfc_perception.experiments import runner
from tfc_perception.experiments.student_t import configs
from tfc_perception.experiments.student_t import figures
from tfc_perception.experiments.student_t import metrics


class Lattice:
  """A square-lattice quantiser with the codec's analysis / quantize /
  synthesis: cells of side `step` centred on offset + step·Z², code vector
  at each centre. No model, no training."""

  def __init__(self, step, offset=(0.0, 0.0)):
    self.step = float(step)
    self.offset = np.asarray(offset, np.float64)

  def analysis(self, x):
    return (np.asarray(x, np.float64) - self.offset) / self.step

  def quantize(self, y, training=False):
    assert not training
    return np.round(y)

  def synthesis(self, y_hat):
    return np.asarray(y_hat) * self.step + self.offset

  def __call__(self, x, training=False):
    """(x̂, bits) like a codec: bits = 1 + |code index|₁, known per cell."""
    y_hat = self.quantize(self.analysis(x))
    return self.synthesis(y_hat), 1.0 + np.abs(y_hat).sum(1)


def test_regular_lattice_cell_size_does_not_follow_the_density():
  student = sources.get_source("student_t")
  # A lattice incommensurate with the grid, so the counted cell areas vary
  # a little (by aliasing) and the rank correlation is defined.
  lattice = Lattice(1.37, offset=(0.21, -0.33))
  qmap = metrics.quantisation_map(lattice, 6.0, 300, student)
  stats = metrics.cell_stats(qmap, student, core_radius=1.0)
  assert abs(stats["spearman_local_area_vs_p"]) <= 0.1
  # Equal cells at the mode and away from it (to the grid's resolution).
  assert stats["mean_local_cell_area_core"] == pytest.approx(
      1.37 ** 2, rel=0.05)
  assert stats["mean_local_cell_area_outside"] == pytest.approx(
      1.37 ** 2, rel=0.05)
  # The edge cells left out: 8 full cells per side of the 12-unit grid.
  assert stats["interior_cells"] == 64
  assert 0.6 < stats["fraction_grid_in_interior_cells"] < 0.9
  # What the cut edge cells did when counted (the bias this guards against):
  local = qmap["area"][qmap["labels"]].ravel()
  from tfc_perception import stats as st  # pylint: disable=g-import-not-at-top
  assert st.spearman(local, qmap["density"].ravel())[0] > 0.3


def test_edge_cells_are_those_on_the_border():
  labels = np.array([[0, 0, 1, 1],
                     [2, 3, 3, 1],
                     [2, 3, 3, 4],
                     [2, 2, 4, 4]])
  np.testing.assert_array_equal(metrics.edge_cells(labels),
                                [True, True, True, False, True])
  with pytest.raises(ValueError, match="2-D array"):
    metrics.edge_cells(np.zeros(3, int))


def test_fraction_codes_differ_counts_pairs_in_different_cells():
  lattice = Lattice(1.0)
  x1 = np.array([[0.1, 0.1], [0.4, 0.0], [2.0, 2.0], [-0.3, 0.2]])
  x2 = np.array([[0.2, -0.3], [0.6, 0.0], [2.0, 2.2], [-0.3, -0.7]])
  # Pairs 2 (0.4 -> 0.6 crosses 0.5) and 4 (0.2 -> -0.7 crosses -0.5).
  assert metrics.fraction_codes_differ(lattice, x1, x2) == 0.5


def test_eq13_ratio_by_hand():
  # P = D / R: model 1 at (2, 4) -> 0.5, model 0 at (3, 2) -> 1.5: 1/3.
  assert rd.performance_ratio(2.0, 4.0, 3.0, 2.0) == pytest.approx(1 / 3)
  np.testing.assert_allclose(
      rd.performance_ratio([1.0, 8.0], [2.0, 1.0], [1.0, 2.0], [1.0, 4.0]),
      [0.5, 16.0])
  with pytest.raises(ValueError, match="rates must be > 0"):
    rd.performance_ratio(1.0, 0.0, 1.0, 1.0)
  with pytest.raises(ValueError, match="one shape"):
    rd.performance_ratio([1.0, 2.0], [1.0], [1.0, 2.0], [1.0, 1.0])
  with pytest.raises(ValueError, match="distortion0 must be > 0"):
    rd.performance_ratio(1.0, 1.0, 0.0, 1.0)


def test_eq13_ratio_per_bin_of_two_lattices_by_hand():
  """binned_errors + performance_ratio on two lattice 'models' whose squared
  error and bits in each bin follow by hand.

  Points on the x-axis at t = ±0.25, ±0.75 in bins [-1, 0) and [0, 1).
  Lattice 0 (step 1): codes round(t) = 0, -1/0, 0, 1 ... per point; lattice 1
  (step 2): every point's code is 0.
  """
  t = np.array([-0.75, -0.25, 0.25, 0.75])
  bins = np.array([-1.0, 0.0, 1.0])
  fine, coarse = Lattice(1.0), Lattice(2.0)
  e0, r0 = metrics.binned_errors(fine, t, bins)
  e1, r1 = metrics.binned_errors(coarse, t, bins)
  # Fine: -0.75 -> -1 (err 0.0625, bits 2), -0.25 -> 0 (0.0625, 1); the
  # same mirrored. Coarse: all -> 0, errors 0.5625 and 0.0625, bits 1.
  np.testing.assert_allclose(e0, [0.0625, 0.0625])
  np.testing.assert_allclose(r0, [1.5, 1.5])
  np.testing.assert_allclose(e1, [0.3125, 0.3125])
  np.testing.assert_allclose(r1, [1.0, 1.0])
  # (0.3125 / 1) / (0.0625 / 1.5) = 7.5; the SSE ratio alone is 5.
  np.testing.assert_allclose(rd.performance_ratio(e1, r1, e0, r0),
                             [7.5, 7.5])


def test_main_perturbation_is_the_smallest_where_most_pairs_cross():
  def rows(fractions):
    return [{"perturbation_std": s, "fraction_codes_differ": f}
            for s, fs in fractions.items() for f in fs]
  table = rows({0.05: [0.01, 0.1, 0.2], 0.5: [0.2, 0.55, 0.9],
                1.0: [0.4, 0.8, 0.95]})
  assert figures.main_perturbation(table, [0.05, 0.5, 1.0], 0.5) == 0.5
  assert figures.main_perturbation(table, [0.05, 0.5, 1.0], 0.7) == 1.0
  # None reaches it: the σ with the most crossings.
  assert figures.main_perturbation(table, [0.05, 0.5, 1.0], 0.99) == 1.0


def test_fig2_config_validates_the_sweep():
  cfg = configs.PRESETS["fig2"]["tiny"]
  with pytest.raises(ValueError, match="perturbation_stds"):
    dataclasses.replace(cfg, perturbation_stds=(0.05, -1.0))
  with pytest.raises(ValueError, match="main_min_crossing"):
    dataclasses.replace(cfg, main_min_crossing=1.5)
  # Every preset sweeps up to cell-sized steps (the λ = 4 cells are ~1.4
  # units wide) with at least 3 values, except the test-only tiny one.
  for preset in ("quick", "paper"):
    stds = configs.PRESETS["fig2"][preset].perturbation_stds
    assert len(stds) >= 3 and max(stds) >= 1.0 and min(stds) <= 0.05


def test_fig13_specs_for_both_readings_of_the_weighting():
  cfg = configs.PRESETS["fig13"]["tiny"]
  specs = dict(figures._fig13_specs(cfg))  # pylint: disable=protected-access
  assert list(specs) == ["plain", "weighted_distortion", "weighted_eq3"]
  plain, dist_w, eq3_w = (specs[k] for k in specs)
  # D weighted: the density distortion with λ / geomean(P_t) over the box.
  assert dist_w["distortion"] == "density_mse" and dist_w["lmbda"] > 1.0
  # Eq. 3 weighted: unweighted D, nominal λ, w = P_t / E_uniform[P_t].
  assert eq3_w["distortion"] == "mse" and eq3_w["lmbda"] == cfg.lmbda
  box = sources.sample_points("uniform2d", 100000, seed=3)
  mean_p = float(np.mean(sources.get_source("student_t").prob(box)))
  assert eq3_w["eq3_weight_mean"] == pytest.approx(mean_p, rel=0.02)
  assert eq3_w["steps"] == cfg.weighted_steps
  # The other specs carry no eq3 keys, so their cache keys did not change.
  assert not any(k.startswith("eq3") for k in plain)
  assert not any(k.startswith("eq3") for k in dist_w)
  assert len({runner.config_hash(s) for s in specs.values()}) == 3
  with pytest.raises(ValueError, match="unweighted distortion"):
    metrics.model_spec(cfg, 1.0, "density_mse", eq3_weight="student_t")
  with pytest.raises(ValueError, match="weightings"):
    dataclasses.replace(cfg, weightings=("distortion", "rate"))
