"""Sources, models and metrics of the 2-D experiments.

- the training config of one toy2d model (`model_spec`, its cache key),
  with the λ normalisation of the weighted losses;
- training it with the one trainer (`train_toy2d`, `get_model`);
- test-time measures: rate and distortion (`evaluate`), the quantisation
  cells on a grid (`quantisation_map`, `cell_stats`), the Spearman
  correlations of the induced distances with p(x) (`induced_correlations`),
  the error along a line (`binned_errors`).
"""

import dataclasses
import functools
from typing import Dict, Optional

import numpy as np

from tfc_perception import stats
from tfc_perception.distances import registry
from tfc_perception.experiments import runner

__all__ = ["DISTANCES", "SENSITIVITIES", "model_spec", "train_toy2d",
           "get_model", "source", "points", "evaluate", "quantisation_map",
           "edge_cells", "cell_stats", "induced_correlations",
           "fraction_codes_differ", "qmap_rows", "region_sse",
           "binned_errors"]

DISTANCES = ("de", "dr", "din", "ds")
SENSITIVITIES = ("sens_dr", "sens_din")


def model_spec(cfg, lmbda: float, distortion: str = "mse",
               source: Optional[str] = None,
               weight: Optional[str] = None,
               eq3_weight: Optional[str] = None) -> Dict:
  """The full, JSON-able training config of one toy2d model (its cache key).

  Args:
    cfg: an experiment config (`configs.Common`: source, model and train
      sections, weighted-loss settings).
    lmbda: λ of Eq. 3 before weight normalisation.
    distortion: "mse", "density_mse" or "inverse_density_mse".
    source: training source name (default cfg.source).
    weight: source whose density weights the loss (default: the training
      source) for the density distortions.
    eq3_weight: source whose density P weights the whole of Eq. 3 per sample
      (Fig. 13, second reading): L = E[w(x)·(R + λ·D)], w = P / E_source[P],
      with an unweighted `distortion`. Normalised by the mean, the loss is
      exactly Eq. 3 on the reweighted source w·p_source, so λ keeps its
      meaning and is not rescaled. None (default): no such weight (and no
      key in the spec, so the other models' cache keys are unchanged).

  Returns:
    dict with kind, source, distortion, weight, lmbda (effective), model and
    training settings.

  Raises:
    ValueError: eq3_weight with a density-weighted distortion, or an unknown
      weight_normalisation.
  """
  source = source or cfg.source
  spec = {"kind": "toy2d", "source": source,
          "source_params": dict(cfg.source_params.get(source, {})),
          "distortion": distortion, "lmbda_nominal": float(lmbda),
          **dataclasses.asdict(cfg.model), **dataclasses.asdict(cfg.train)}
  if registry.get(distortion, "distortion").needs_density:
    # The weighted models must learn a warped (non-uniform) quantiser, which
    # takes longer than the near-lattice of the plain ones.
    spec["steps"] = cfg.weighted_steps
    weight = weight or source
    spec["weight"] = weight
    spec["weight_params"] = dict(cfg.source_params.get(weight, {}))
    spec["weight_normalisation"] = cfg.weight_normalisation
    if distortion == "inverse_density_mse":
      spec["density_floor"] = float(cfg.inverse_density_floor)
    scale = 1.0
    if spec["weight_normalisation"] in ("geomean", "median"):
      scale = _typical_weight(spec["weight_normalisation"], source, weight,
                              distortion, _freeze(spec["source_params"]),
                              _freeze(spec["weight_params"]), _floor(spec))
    elif spec["weight_normalisation"] != "none":
      raise ValueError("weight_normalisation must be 'geomean', 'median' or "
                       "'none', got "
                       f"{spec['weight_normalisation']!r}.")
    spec["lmbda"] = float(lmbda) / scale
  else:
    spec["lmbda"] = float(lmbda)
  if eq3_weight is not None:
    if registry.get(distortion, "distortion").needs_density:
      raise ValueError("eq3_weight weights the whole of Eq. 3; give it with "
                       "an unweighted distortion ('mse'), got distortion="
                       f"{distortion!r}.")
    # A warped quantiser, like the other weighted models.
    spec["steps"] = cfg.weighted_steps
    spec["eq3_weight"] = eq3_weight
    spec["eq3_weight_params"] = dict(cfg.source_params.get(eq3_weight, {}))
    spec["eq3_weight_mean"] = _typical_weight(
        "mean", source, eq3_weight, "density_mse",
        _freeze(spec["source_params"]), _freeze(spec["eq3_weight_params"]))
  return spec


def _floor(spec: Dict) -> float:
  """The P(x) floor of ||·||²/P(x) (0: none; only that loss has one)."""
  return (float(spec["density_floor"])
          if spec["distortion"] == "inverse_density_mse" else 0.0)


def _freeze(d):
  return tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                      for k, v in d.items()))


@functools.lru_cache(maxsize=None)
def _typical_weight(how, source, weight, distortion, source_params,
                    weight_params, floor=0.0):
  """Geometric mean, median or ("mean") mean over `source` samples of the
  weight P_weight(x) (or 1/max(P_weight(x), floor))."""
  from tfc_perception.data import sources  # pylint: disable=g-import-not-at-top
  x = sources.sample_points(sources.get_source(source, **dict(source_params)),
                            100000, seed=12345)
  p = sources.get_source(weight, **dict(weight_params)).prob(x).numpy()
  w = p if distortion == "density_mse" else 1.0 / np.maximum(p, floor)
  typical = {"geomean": lambda: np.exp(np.mean(np.log(w))),
             "median": lambda: np.median(w),
             "mean": lambda: np.mean(w)}[how]()
  # Rounded so the cache key does not depend on the last float bits.
  return float(f"{typical:.4g}")


def _density_fn(spec):
  from tfc_perception.data import sources  # pylint: disable=g-import-not-at-top
  if not registry.get(spec["distortion"]).needs_density:
    return None
  prob = sources.density_fn(sources.get_source(spec["weight"],
                                               **spec["weight_params"]))
  floor = _floor(spec)
  if floor <= 0:
    return prob
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return lambda x: tf.maximum(prob(x), floor)


def train_toy2d(spec: Dict, train_dir: Optional[str] = None,
                progress: bool = False):
  """Trains one toy2d model with the one trainer on the seeded source stream:
  `steps` steps in `log_epochs` epochs, Adam with a cosine decay to
  lr_floor * learning_rate. A spec with `eq3_weight` trains on batches
  (x, None, w(x)), which the model's train_step reads as Keras sample
  weights of the whole Eq. 3.

  Args:
    spec: a `model_spec` dict.
    train_dir: the trainer's directory (checkpoints; resumes from them).
    progress: show a progress bar.

  Returns:
    The `training.TrainResult`.
  """
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  from tfc_perception import training  # pylint: disable=g-import-not-at-top
  from tfc_perception.data import sources  # pylint: disable=g-import-not-at-top
  dist = sources.get_source(spec["source"], **spec["source_params"])
  steps = int(spec["steps"])
  epochs = max(1, min(int(spec["log_epochs"]), steps))
  def data(start):
    stream = sources.source_dataset(dist, spec["batch_size"], spec["seed"],
                                    start)
    if "eq3_weight" not in spec:
      return stream
    # Keras' (x, y, sample_weight): the model weights all of Eq. 3 by w.
    prob = sources.density_fn(sources.get_source(
        spec["eq3_weight"], **spec["eq3_weight_params"]))
    mean = float(spec["eq3_weight_mean"])
    return stream.map(lambda x: (x, None, prob(x) / mean))

  train_spec = training.TrainSpec(
      batchsize=spec["batch_size"], epochs=epochs,
      steps_per_epoch=steps // epochs, learning_rate=spec["learning_rate"],
      lr_schedule="cosine", lr_floor=spec["lr_floor"],
      steps_per_execution=spec["steps_per_execution"], seed=spec["seed"],
      train_dir=train_dir, progress=progress)
  return training.fit(
      lambda: models.build_model(
          "toy2d", lmbda=spec["lmbda"], distortion=spec["distortion"],
          density_fn=_density_fn(spec), widths=spec["widths"],
          depth=spec["depth"], activation=spec["activation"],
          seed=spec["seed"]),
      data, train_spec)


def _load_fn(spec):
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  return lambda path: models.load_model(path, density_fn=_density_fn(spec))


def get_model(ctx: runner.RunContext, spec: Dict, label: str):
  """The trained model of `spec`, from the run's cache or trained now."""
  return ctx.cached_model(
      spec, lambda train_dir: train_toy2d(spec, train_dir, ctx.verbose),
      load_fn=_load_fn(spec), label=label)


def source(name: str, cfg):
  """The tfp distribution of source `name` with cfg.source_params."""
  from tfc_perception.data import sources  # pylint: disable=g-import-not-at-top
  return sources.get_source(name, **cfg.source_params.get(name, {}))


def points(name: str, cfg, n: int, seed: int) -> np.ndarray:
  """n samples [n, 2] of source `name`, seeded."""
  from tfc_perception.data import sources  # pylint: disable=g-import-not-at-top
  return sources.sample_points(source(name, cfg), int(n), seed=int(seed))


def evaluate(model, x: np.ndarray) -> Dict[str, float]:
  """Test-time rate and distortion of `model` on samples x [N, 2].

  Returns:
    {"bits_per_sample": mean entropy-model bits with hard quantisation,
     "sse_per_sample": mean ||x − x̂||², "sse_total": Σ ||x − x̂||²,
     "n": N}.
  """
  x_hat, bits = model(x, training=False)
  err = np.sum((np.asarray(x_hat) - x) ** 2, axis=1)
  return {"bits_per_sample": float(np.mean(bits)),
          "sse_per_sample": float(np.mean(err)),
          "sse_total": float(np.sum(err)), "n": int(len(x))}


def quantisation_map(model, extent: float, n: int, density) -> Dict:
  """Quantisation cells of `model` on the grid [-extent, extent]², n × n.

  Args:
    model: a 2-D model with analysis/quantize/synthesis.
    extent: half-width of the square grid (source units).
    n: grid points per side.
    density: tfp distribution whose p(x) is shown and integrated per cell.

  Returns:
    dict: xs, ys [n]; density [n, n]; labels [n, n] (cell ids); codes [K, 2]
    (code vectors = reconstruction of each cell); mass [K] (probability of
    each cell restricted to the grid); area [K] (cell area inside the grid,
    source units²); y_hat [K, latent] (quantised latents).
  """
  xs = np.linspace(-extent, extent, n, dtype=np.float32)
  gx, gy = np.meshgrid(xs, xs)
  grid = np.stack([gx.ravel(), gy.ravel()], 1)
  y_hat = np.asarray(model.quantize(model.analysis(grid), training=False))
  uniq, labels = np.unique(y_hat, axis=0, return_inverse=True)
  labels = labels.reshape(n, n)
  codes = np.asarray(model.synthesis(uniq.astype(np.float32)))
  dens = density.prob(grid).numpy().reshape(n, n).astype(np.float64)
  cell = (xs[1] - xs[0]) ** 2
  mass = np.bincount(labels.ravel(), weights=dens.ravel() * cell,
                     minlength=len(uniq))
  area = np.bincount(labels.ravel(), minlength=len(uniq)) * cell
  return {"xs": xs, "ys": xs, "density": dens, "labels": labels,
          "codes": codes, "mass": mass, "area": area, "y_hat": uniq}


def edge_cells(labels: np.ndarray) -> np.ndarray:
  """[K] bool: the cells of a quantisation map that touch the grid's edge.

  Such a cell is cut by the edge, so its area inside the grid understates
  its size (and the cut is largest far from the mode).

  Args:
    labels: [n, n] int cell ids (`quantisation_map`'s "labels"), 0..K-1.
  """
  labels = np.asarray(labels)
  if labels.ndim != 2 or labels.size == 0:
    raise ValueError(f"labels must be a non-empty 2-D array of cell ids, got "
                     f"shape {labels.shape}.")
  border = np.concatenate([labels[0], labels[-1], labels[:, 0],
                           labels[:, -1]])
  out = np.zeros(int(labels.max()) + 1, bool)
  out[np.unique(border)] = True
  return out


def cell_stats(qmap: Dict, density, min_mass: float = 1e-4,
               core_radius: Optional[float] = None,
               max_points: int = 20000) -> Dict:
  """How the size of the quantisation cells follows a density.

  The local cell area at a grid point is the area of the cell it falls in,
  so it describes the resolution at that location, whatever the cell's shape
  or where its code vector lies. Only cells that lie wholly inside the grid
  count: a cell touching the grid's edge is cut by it, and counting its
  truncated area made cells look smaller far from the mode (on a perfect
  lattice, ρ(local area, p) = +0.59 from truncation alone).

  Args:
    qmap: `quantisation_map` output.
    density: tfp distribution p (the source, or the loss weight for Fig. 13).
    min_mass: cells with at least this probability mass are counted.
    core_radius: if given, also the code vectors (of cells with mass) within
      this radius of the origin, and the mean local cell area over grid
      points within it and beyond it.
    max_points: grid points (evenly subsampled) used for the correlation.

  Returns:
    dict: cells_with_mass; interior_cells (cells not touching the edge) and
    fraction_grid_in_interior_cells (the part of the grid the area
    statistics describe); spearman_local_area_vs_p = Spearman ρ(local cell
    area, p(x)) over the grid points of interior cells (negative: finer
    cells where p is high; nan with fewer than 3 points or equal areas);
    with core_radius, codes_in_core, fraction_codes_in_core and
    mean_local_cell_area_core / _outside (source units², interior cells).
  """
  labels = qmap["labels"]
  interior = ~edge_cells(labels)
  keep = interior[labels].ravel()
  local = qmap["area"][labels].ravel()
  p = np.asarray(qmap["density"]).ravel()
  gx, gy = np.meshgrid(qmap["xs"], qmap["ys"])
  if density is not None:
    p = density.prob(np.stack([gx.ravel(), gy.ravel()], 1).astype(
        np.float32)).numpy()
  kept_local, kept_p = local[keep], p[keep]
  step = max(1, kept_local.size // max_points)
  out = {"cells_with_mass": int(np.sum(qmap["mass"] >= min_mass)),
         "interior_cells": int(interior.sum()),
         "fraction_grid_in_interior_cells": float(np.mean(keep)),
         "spearman_local_area_vs_p": (
             _rho(kept_local[::step], kept_p[::step])
             if kept_local.size >= 3 else float("nan"))}
  if core_radius is not None:
    used = qmap["mass"] >= min_mass
    in_core = np.linalg.norm(qmap["codes"], axis=1) <= core_radius
    out["codes_in_core"] = int(np.sum(used & in_core))
    out["fraction_codes_in_core"] = float(np.sum(used & in_core)
                                          / max(1, used.sum()))
    r = np.hypot(gx, gy).ravel()
    for name, m in (("core", r <= core_radius), ("outside", r > core_radius)):
      m = m & keep
      out[f"mean_local_cell_area_{name}"] = (float(np.mean(local[m]))
                                             if m.any() else float("nan"))
  return out


def _rho(a, b) -> float:
  return stats.spearman(a, b)[0]


def induced_correlations(model, x1: np.ndarray, x2: np.ndarray,
                         p1: np.ndarray) -> Dict[str, float]:
  """Spearman ρ(D, p(x1)) for De, Dr, Din, Ds (= Ds(x1)) and the
  sensitivities of Dr and Din (Fig. 2), via tfc_perception.induced, and
  the fraction of pairs whose codes differ (`fraction_codes_differ`).

  De's sensitivity is 1 by construction for a Euclidean base distance, so its
  correlation is undefined and not reported.
  """
  from tfc_perception import induced  # pylint: disable=g-import-not-at-top
  d = induced.induced_distances(model, x1, x2, base="euclidean",
                                latent="unquantized")
  out = {f"rho_{k}": _rho(d[k if k != "ds" else "ds1"], p1)
         for k in DISTANCES}
  for k in SENSITIVITIES:
    out[f"rho_{k}"] = _rho(d[k], p1)
  out["fraction_codes_differ"] = fraction_codes_differ(model, x1, x2)
  return out


def fraction_codes_differ(model, x1: np.ndarray, x2: np.ndarray) -> float:
  """The fraction of pairs (x1[i], x2[i]) whose quantised latents (codes)
  differ, i.e. that lie in different quantisation cells; Dr is 0 for the
  others."""
  def codes(x):
    return np.asarray(model.quantize(model.analysis(x), training=False))
  return float(np.mean(np.any(codes(x1) != codes(x2), axis=1)))


def qmap_rows(name, qmap):
  """One row per code vector: model, code, cell mass and area."""
  return [{"model": name, "code_x1": c[0], "code_x2": c[1], "mass": m,
           "area": a} for c, m, a in zip(qmap["codes"], qmap["mass"],
                                         qmap["area"])]


def region_sse(model, x, radius):
  """Mean squared error per sample within `radius` of 0 and beyond."""
  x_hat = np.asarray(model.reconstruct(x))
  err = np.sum((x_hat - x) ** 2, axis=1)
  r = np.linalg.norm(x, axis=1)
  inner = r <= radius
  return (float(np.mean(err[inner])) if inner.any() else float("nan"),
          float(np.mean(err[~inner])) if (~inner).any() else float("nan"))


def binned_errors(model, t, bins, band: float = 0.0, n_band: int = 1):
  """Mean squared error and bits per bin of x1 for points (t, s), s in
  [-band, band] (n_band values; band 0: exactly on the x-axis)."""
  s = np.linspace(-band, band, n_band) if band > 0 else np.zeros(1)
  tt, ss = np.meshgrid(t, s)
  x = np.stack([tt.ravel(), ss.ravel()], 1).astype(np.float32)
  x_hat, bits = model(x, training=False)
  err = np.sum((np.asarray(x_hat) - x) ** 2, axis=1)
  idx = np.digitize(x[:, 0], bins) - 1
  nb = len(bins) - 1
  e = np.array([err[idx == b].mean() for b in range(nb)])
  r = np.array([np.asarray(bits)[idx == b].mean() for b in range(nb)])
  return e, r


