"""Typed configs of the 2-D experiments and their tiny / quick / paper presets.

Every experiment of `student_t` has a frozen config class; the fields shared
by all (source, model, training, weighted-loss settings) are in `Common`.
`bin/reproduce fig2 --set train.steps=4000` overrides a field, type-checked.
"""

import dataclasses
from typing import Any, Dict, Tuple

from tfc_perception._typed import Checked

__all__ = ["Toy2DModel", "Toy2DTrain", "Common", "Fig2", "Fig11", "Fig12",
           "Fig13", "Fig14", "PRESETS", "LAMBDA_SWEEP", "REFERENCE_LAMBDA",
           "PERTURBATIONS", "WEIGHTINGS"]


@dataclasses.dataclass(frozen=True)
class Toy2DModel(Checked):
  """The toy2d autoencoder (Fig. 10): hidden widths, depth, activation."""
  widths: int
  depth: int
  activation: str


@dataclasses.dataclass(frozen=True)
class Toy2DTrain(Checked):
  """Training: steps of batch_size samples, Adam at learning_rate with a
  cosine decay to lr_floor * learning_rate, log_epochs epochs (history
  entries), steps_per_execution steps per traced call."""
  steps: int
  batch_size: int
  learning_rate: float
  lr_floor: float
  seed: int
  steps_per_execution: int
  log_epochs: int


@dataclasses.dataclass(frozen=True)
class Common(Checked):
  """Fields of every 2-D experiment.

  Attributes:
    source: training source ("student_t").
    source_params: per-source parameters of `data.sources.get_source`.
    weight_normalisation: how λ of a weighted model is normalised: "geomean",
      "median" or "none" (see the package docstring).
    inverse_density_floor: P(x) floor of ||·||²/P(x).
    eval_seed: seed of the evaluation samples.
    weighted_steps: training steps of the weighted models.
    model, train: the toy2d model and its training.
  """
  source: str
  source_params: Dict[str, Dict[str, Any]]
  weight_normalisation: str
  inverse_density_floor: float
  eval_seed: int
  weighted_steps: int
  model: Toy2DModel
  train: Toy2DTrain


@dataclasses.dataclass(frozen=True)
class Fig2(Common):
  """λ sweep; n_pairs pairs x1, x2 = x1 + σ·ε, ε ~ N(0, I), for every σ of
  `perturbation_stds` (one ε per pair, scaled).

  The main figure uses the smallest σ at which, over the models (median),
  at least a fraction `main_min_crossing` of the pairs have different codes:
  Dr = ||x̂1 − x̂2|| is 0 for a pair inside one quantisation cell, so ρ(Dr, p)
  says something about the distance only when most pairs cross a cell
  boundary, and the smallest such σ keeps the perturbation as local as the
  sensitivity of Obs. 2-4 asks. The rule reads only the crossing fractions,
  not the correlations.
  """
  lambdas: Tuple[float, ...]
  n_pairs: int
  n_val: int
  perturbation_stds: Tuple[float, ...]
  main_min_crossing: float

  def __post_init__(self):
    super().__post_init__()
    if not self.perturbation_stds or min(self.perturbation_stds) <= 0:
      raise ValueError("perturbation_stds must be a non-empty list of "
                       f"positive numbers, got {self.perturbation_stds!r}.")
    if not 0 < self.main_min_crossing <= 1:
      raise ValueError("main_min_crossing must be in (0, 1], got "
                       f"{self.main_min_crossing!r}.")


@dataclasses.dataclass(frozen=True)
class Fig11(Common):
  """One model at lmbda; a grid of grid² points over [-extent, extent]²."""
  lmbda: float
  extent: float
  grid: int
  n_val: int
  core_radius: float


@dataclasses.dataclass(frozen=True)
class Fig12(Common):
  """Models trained with each of `distortions` at lmbda."""
  lmbda: float
  extent: float
  grid: int
  n_val: int
  core_radius: float
  distortions: Tuple[str, ...]


WEIGHTINGS = ("distortion", "eq3")


@dataclasses.dataclass(frozen=True)
class Fig13(Common):
  """Uniform source, plain vs weighted by the `weight` density, in each
  reading of `weightings` of the caption's "weighting the rate-distortion
  equation": "distortion" (D = P(x)·||x − x̂||² in Eq. 3, λ normalised as
  the other weighted models) and "eq3" (the whole of Eq. 3 weighted per
  sample, L = E[w(x)·(R + λ||x − x̂||²)], w = P / E_uniform[P])."""
  lmbda: float
  weight: str
  weightings: Tuple[str, ...]
  extent: float
  grid: int
  n_val: int
  core_radius: float

  def __post_init__(self):
    super().__post_init__()
    bad = [w for w in self.weightings if w not in WEIGHTINGS]
    if bad or not self.weightings or len(set(self.weightings)) != len(
        self.weightings):
      raise ValueError("weightings must be distinct values of "
                       f"{', '.join(WEIGHTINGS)}, got {self.weightings!r}.")


@dataclasses.dataclass(frozen=True)
class Fig14(Common):
  """Weighted / plain error along the x-axis (binned, polynomial fit)."""
  lambdas: Tuple[float, ...]
  line_extent: float
  n_bins: int
  points_per_bin: int
  poly_degree: int
  core_halfwidth: float
  tail_from: float
  error_floor: float
  band_halfwidth: float
  band_points: int


LAMBDA_SWEEP = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
# From far below the cell size (0.05: the first version's only value, where
# 0-15% of the pairs crossed a cell boundary) to cell-sized steps (the λ = 4
# cells are ~1.4 units wide) and beyond.
PERTURBATIONS = (0.05, 0.25, 0.5, 1.0, 2.0)
REFERENCE_LAMBDA = 4.0

_MODEL = {"tiny": Toy2DModel(32, 2, "softplus"),
          "quick": Toy2DModel(64, 2, "softplus"),
          "paper": Toy2DModel(100, 3, "softplus")}
_TRAIN = {"tiny": Toy2DTrain(600, 256, 1e-2, 0.05, 1, 100, 2),
          "quick": Toy2DTrain(2000, 512, 3e-3, 0.05, 1, 100, 4),
          "paper": Toy2DTrain(20000, 1024, 1e-3, 0.05, 1, 200, 10)}
# The weighted models learn a warped (non-uniform) quantiser, which takes
# longer than the near-lattice of the plain ones (at 2000 steps the Fig. 13
# core/outside cell-area ratio was 1.3, at 6000 steps 3.2).
_WEIGHTED_STEPS = {"tiny": 1000, "quick": 5000, "paper": 20000}


def _common(preset: str) -> Dict[str, Any]:
  return dict(source="student_t", source_params={},
              weight_normalisation="geomean", inverse_density_floor=1e-3,
              eval_seed=7, weighted_steps=_WEIGHTED_STEPS[preset],
              model=_MODEL[preset], train=_TRAIN[preset])


def _presets(cls, **per_preset) -> Dict[str, Any]:
  return {p: cls(**_common(p), **values) for p, values in per_preset.items()}


_DISTORTIONS = ("mse", "density_mse", "inverse_density_mse")
_FIG14 = dict(line_extent=8.0, poly_degree=20, core_halfwidth=1.0,
              tail_from=3.0, error_floor=1e-6, band_halfwidth=0.5)

PRESETS = {
    "fig2": _presets(
        Fig2,
        tiny=dict(lambdas=(0.25, 1.0, 4.0), n_pairs=4000, n_val=4000,
                  perturbation_stds=(0.05, 4.0), main_min_crossing=0.5),
        quick=dict(lambdas=LAMBDA_SWEEP, n_pairs=20000, n_val=20000,
                   perturbation_stds=PERTURBATIONS, main_min_crossing=0.5),
        paper=dict(lambdas=LAMBDA_SWEEP + (64.0, 128.0), n_pairs=100000,
                   n_val=100000, perturbation_stds=PERTURBATIONS,
                   main_min_crossing=0.5)),
    "fig11": _presets(
        Fig11,
        tiny=dict(lmbda=4.0, extent=6.0, grid=120, n_val=4000,
                  core_radius=1.0),
        quick=dict(lmbda=REFERENCE_LAMBDA, extent=6.0, grid=400, n_val=20000,
                   core_radius=1.0),
        paper=dict(lmbda=REFERENCE_LAMBDA, extent=6.0, grid=800,
                   n_val=100000, core_radius=1.0)),
    "fig12": _presets(
        Fig12,
        tiny=dict(lmbda=4.0, extent=6.0, grid=120, n_val=4000,
                  core_radius=1.0, distortions=_DISTORTIONS),
        quick=dict(lmbda=REFERENCE_LAMBDA, extent=6.0, grid=300, n_val=20000,
                   core_radius=1.0, distortions=_DISTORTIONS),
        paper=dict(lmbda=REFERENCE_LAMBDA, extent=6.0, grid=800,
                   n_val=100000, core_radius=1.0, distortions=_DISTORTIONS)),
    "fig13": _presets(
        Fig13,
        tiny=dict(lmbda=1.0, weight="student_t", weightings=WEIGHTINGS,
                  extent=5.0, grid=120, n_val=4000, core_radius=1.5),
        quick=dict(lmbda=REFERENCE_LAMBDA, weight="student_t",
                   weightings=WEIGHTINGS, extent=5.0, grid=300, n_val=20000,
                   core_radius=1.5),
        paper=dict(lmbda=REFERENCE_LAMBDA, weight="student_t",
                   weightings=WEIGHTINGS, extent=5.0, grid=800,
                   n_val=100000, core_radius=1.5)),
    "fig14": _presets(
        Fig14,
        # λ = 4: at λ = 1 the weighted model spends ~0 bits, and P = D / R
        # of Eq. 13 is meaningless there.
        tiny=dict(lambdas=(4.0,), n_bins=40, points_per_bin=25, band_points=5,
                  **_FIG14),
        quick=dict(lambdas=(4.0, 8.0, 16.0), n_bins=80, points_per_bin=50,
                   band_points=11, **_FIG14),
        paper=dict(lambdas=(4.0, 8.0, 16.0, 32.0), n_bins=160,
                   points_per_bin=100, band_points=21, **_FIG14)),
}
