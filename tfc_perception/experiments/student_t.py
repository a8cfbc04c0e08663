"""The 2-D experiments (issue 6): Figs. 2, 4 left, 11, 12, 13 and 14.

The toy compressive autoencoder of Fig. 10 (`build_model("toy2d")`) is trained
with Eq. 3, L = R + λ·D, on the 2-D Student-t source (and a uniform one for
Fig. 13) of `tfc_perception.data.sources`, whose density p(x) is exact. All
models go through the runner's cache keyed by their full training config, so a
model used by several figures (e.g. the plain model at λ = 4 in Figs. 2, 11,
12 and 14) is trained once.

Experiments (each `bin/reproduce NAME`; `bin/reproduce all` runs them in this
order):

- fig2:  λ sweep (≥ 8 rates). N samples x1 ~ p, x2 = x1 + N(0, ε²I). Spearman
         ρ(D, p(x1)) of De, Dr, Din, Ds and of the sensitivities D/||Δx||,
         one point per model, against the model's rate (Obs. 2-4).
- fig11: one model's quantisation of the Student-t: density, samples, cell
         boundaries and code vectors.
- fig12: models trained with ||·||², P(x)·||·||² and ||·||²/P(x):
         quantisation plots, bits/sample and SSE on a validation set.
- fig13: uniform source, plain versus Student-t-weighted loss.
- fig14: ratio of the distortion of P(x)-weighted over plain models along
         the x-axis (mean over bins of x1 and a thin band |x2| ≤ 0.5, since
         the error at single points depends on where the line cuts the
         cells), raw and a degree-20 polynomial fit (Fig. 14; the fits alone
         are Fig. 4 left).

Weighted losses and λ (assumed; the paper gives no λ for them): P(x) differs
from 1 by orders of magnitude, so the λ of a weighted model is λ / g, with g
the geometric mean of its weight w(x) (P(x) or 1/P(x)) over the training
source. In the high-rate limit the cell area at x is ∝ 1/(λ·w(x)) and the
rate is const − E[log2 area], so this choice gives the weighted and the plain
model the same rate: the figures compare where the bits go, not how many
there are (config `weight_normalisation`: "geomean", "median" or "none").
For ||·||²/P(x) the density is floored at `inverse_density_floor` (1e-3, P of the Student-t at
radius ≈ 4.6; 4.7% of the samples fall beyond): without it a single tail
sample (P ~ r^-5) outweighs a batch by orders of magnitude and training
diverges (we measured SSE/sample 18.7, 50× the plain model's, unfloored).
"""

import functools
import math
from typing import Dict, List, Optional

import numpy as np

from tfc_perception import stats
from tfc_perception.distances import registry
from tfc_perception.experiments import runner

DISTANCES = ("de", "dr", "din", "ds")
SENSITIVITIES = ("sens_dr", "sens_din")


# ------------------------------------------------------------------ models
def model_spec(cfg: Dict, lmbda: float, distortion: str = "mse",
               source: Optional[str] = None,
               weight: Optional[str] = None) -> Dict:
  """The full, JSON-able training config of one toy2d model (its cache key).

  Args:
    cfg: experiment config with "source", "model" and "train" sections.
    lmbda: λ of Eq. 3 before weight normalisation.
    distortion: "mse", "density_mse" or "inverse_density_mse".
    source: training source name (default cfg["source"]).
    weight: source whose density weights the loss (default: the training
      source) for the density distortions.

  Returns:
    dict with kind, source, distortion, weight, lmbda (effective), model and
    training settings.
  """
  source = source or cfg["source"]
  spec = {"kind": "toy2d", "source": source,
          "source_params": cfg.get("source_params", {}).get(source, {}),
          "distortion": distortion, "lmbda_nominal": float(lmbda),
          **{k: v for k, v in cfg["model"].items()},
          **{k: v for k, v in cfg["train"].items()}}
  if registry.get(distortion, "distortion").needs_density:
    # The weighted models must learn a warped (non-uniform) quantiser, which
    # takes longer than the near-lattice of the plain ones (at 2000 steps the
    # Fig. 13 core/outside cell-area ratio was 1.3, at 6000 steps 3.2).
    spec["steps"] = int(cfg.get("weighted_steps", spec["steps"]))
    weight = weight or source
    spec["weight"] = weight
    spec["weight_params"] = cfg.get("source_params", {}).get(weight, {})
    spec["weight_normalisation"] = cfg.get("weight_normalisation", "geomean")
    if distortion == "inverse_density_mse":
      spec["density_floor"] = float(cfg.get("inverse_density_floor", 0.0))
    scale = 1.0
    if spec["weight_normalisation"] in ("geomean", "median"):
      scale = _typical_weight(spec["weight_normalisation"], source, weight, distortion,
                             _freeze(spec["source_params"]),
                             _freeze(spec["weight_params"]),
                             spec.get("density_floor", 0.0))
    elif spec["weight_normalisation"] != "none":
      raise ValueError("weight_normalisation must be 'geomean', 'median' or "
                       "'none', got "
                       f"{spec['weight_normalisation']!r}.")
    spec["lmbda"] = float(lmbda) / scale
  else:
    spec["lmbda"] = float(lmbda)
  return spec


def _freeze(d):
  return tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                      for k, v in d.items()))


@functools.lru_cache(maxsize=None)
def _typical_weight(how, source, weight, distortion, source_params,
                    weight_params, floor=0.0):
  """Geometric mean or median over `source` samples of the weight
  P_weight(x) (or 1/max(P_weight(x), floor))."""
  from tfc_perception.data import sources  # pylint: disable=g-import-not-at-top
  x = sources.sample_points(sources.get_source(source, **dict(source_params)),
                            100000, seed=12345)
  p = sources.get_source(weight, **dict(weight_params)).prob(x).numpy()
  w = p if distortion == "density_mse" else 1.0 / np.maximum(p, floor)
  typical = np.exp(np.mean(np.log(w))) if how == "geomean" else np.median(w)
  # Rounded so the cache key does not depend on the last float bits.
  return float(f"{typical:.4g}")


def _density_fn(spec):
  from tfc_perception.data import sources  # pylint: disable=g-import-not-at-top
  if not registry.get(spec["distortion"]).needs_density:
    return None
  prob = sources.density_fn(sources.get_source(spec["weight"],
                                               **spec["weight_params"]))
  floor = float(spec.get("density_floor", 0.0))
  if floor <= 0:
    return prob
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return lambda x: tf.maximum(prob(x), floor)


def train_toy2d(spec: Dict):
  """Trains one toy2d model with Keras fit on the seeded source stream.

  Args:
    spec: a `model_spec` dict.

  Returns:
    (model, info) with the last epoch's training loss/rate/distortion.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  from tfc_perception.data import sources  # pylint: disable=g-import-not-at-top
  model = models.build_model(
      "toy2d", lmbda=spec["lmbda"], distortion=spec["distortion"],
      density_fn=_density_fn(spec), widths=spec["widths"],
      depth=spec["depth"], activation=spec["activation"], seed=spec["seed"])
  dist = sources.get_source(spec["source"], **spec["source_params"])
  ds = sources.source_dataset(dist, spec["batch_size"], seed=spec["seed"])
  steps = int(spec["steps"])
  epochs = max(1, min(int(spec.get("log_epochs", 4)), steps))
  lr = tf.keras.optimizers.schedules.CosineDecay(
      float(spec["learning_rate"]), steps, alpha=float(spec.get("lr_floor", 0.05)))
  model.compile(optimizer=tf.keras.optimizers.Adam(lr),
                steps_per_execution=int(spec.get("steps_per_execution", 100)))
  hist = model.fit(ds, epochs=epochs, steps_per_epoch=steps // epochs,
                   verbose=0)
  info = {k: float(v[-1]) for k, v in hist.history.items()}
  return model, info


def _load_fn(spec):
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  return lambda path: models.load_model(path, density_fn=_density_fn(spec))


def get_model(ctx: runner.RunContext, spec: Dict, label: str):
  """The trained model of `spec`, from the run's cache or trained now."""
  return ctx.cached_model(spec, lambda: train_toy2d(spec),
                          load_fn=_load_fn(spec), label=label)


# -------------------------------------------------------------- evaluation
def _source(name, cfg):
  from tfc_perception.data import sources  # pylint: disable=g-import-not-at-top
  return sources.get_source(name, **cfg.get("source_params", {}).get(name, {}))


def _points(name, cfg, n, seed):
  from tfc_perception.data import sources  # pylint: disable=g-import-not-at-top
  return sources.sample_points(_source(name, cfg), int(n), seed=int(seed))


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


def cell_stats(qmap: Dict, density, min_mass: float = 1e-4,
               core_radius: Optional[float] = None,
               max_points: int = 20000) -> Dict:
  """How the size of the quantisation cells follows a density.

  The local cell area at a grid point is the area of the cell it falls in
  (cells cut by the grid border count only their part inside), so it
  describes the resolution at that location, whatever the cell's shape or
  where its code vector lies.

  Args:
    qmap: `quantisation_map` output.
    density: tfp distribution p (the source, or the loss weight for Fig. 13).
    min_mass: cells with at least this probability mass are counted.
    core_radius: if given, also the code vectors (of cells with mass) within
      this radius of the origin, and the mean local cell area over grid
      points within it and beyond it.
    max_points: grid points (evenly subsampled) used for the correlation.

  Returns:
    dict: cells_with_mass; spearman_local_area_vs_p = Spearman ρ(local cell
    area, p(x)) over the grid (negative: finer cells where p is high); with
    core_radius, codes_in_core, fraction_codes_in_core and
    mean_local_cell_area_core / _outside (source units²).
  """
  labels = qmap["labels"]
  local = qmap["area"][labels].ravel()
  p = np.asarray(qmap["density"]).ravel()
  gx, gy = np.meshgrid(qmap["xs"], qmap["ys"])
  if density is not None:
    p = density.prob(np.stack([gx.ravel(), gy.ravel()], 1).astype(
        np.float32)).numpy()
  step = max(1, local.size // max_points)
  out = {"cells_with_mass": int(np.sum(qmap["mass"] >= min_mass)),
         "spearman_local_area_vs_p": _rho(local[::step], p[::step])}
  if core_radius is not None:
    used = qmap["mass"] >= min_mass
    in_core = np.linalg.norm(qmap["codes"], axis=1) <= core_radius
    out["codes_in_core"] = int(np.sum(used & in_core))
    out["fraction_codes_in_core"] = float(np.sum(used & in_core)
                                          / max(1, used.sum()))
    r = np.hypot(gx, gy).ravel()
    for name, m in (("core", r <= core_radius), ("outside", r > core_radius)):
      out[f"mean_local_cell_area_{name}"] = (float(np.mean(local[m]))
                                             if m.any() else float("nan"))
  return out


def _rho(a, b) -> float:
  return stats.spearman(a, b)[0]


def induced_correlations(model, x1: np.ndarray, x2: np.ndarray,
                         p1: np.ndarray) -> Dict[str, float]:
  """Spearman ρ(D, p(x1)) for De, Dr, Din, Ds (= Ds(x1)) and the
  sensitivities of Dr and Din (Fig. 2), via tfc_perception.induced.

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
  out["fraction_dr_nonzero"] = float(np.mean(d["dr"] > 0))
  return out


# ---------------------------------------------------------------- figures
def _quant_panel(ax, qmap, title, samples=None):
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  plotting.plot_quantisation(ax, qmap["xs"], qmap["ys"], qmap["density"],
                             qmap["labels"], qmap["codes"],
                             code_weights=qmap["mass"], title=title,
                             samples=samples)


def _qmap_rows(name, qmap):
  return [{"model": name, "code_x1": c[0], "code_x2": c[1], "mass": m,
           "area": a} for c, m, a in zip(qmap["codes"], qmap["mass"],
                                         qmap["area"])]


# -------------------------------------------------------------- fig2
def run_fig2(ctx: runner.RunContext) -> Dict:
  """Fig. 2 (Obs. 2-4): induced-distance correlations with p(x1) vs rate."""
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  cfg = ctx.config
  dist = _source(cfg["source"], cfg)
  x_val = _points(cfg["source"], cfg, cfg["n_val"], cfg["eval_seed"])
  x1 = _points(cfg["source"], cfg, cfg["n_pairs"], cfg["eval_seed"] + 1)
  rng = np.random.default_rng(cfg["eval_seed"])
  x2 = (x1 + cfg["perturbation_std"] * rng.standard_normal(x1.shape)
        ).astype(np.float32)
  p1 = dist.prob(x1).numpy()
  rows = []
  for lmbda in cfg["lambdas"]:
    spec = model_spec(cfg, lmbda)
    model = get_model(ctx, spec, f"toy2d-mse-λ{lmbda:g}")
    row = {"lmbda": lmbda, **evaluate(model, x_val),
           **induced_correlations(model, x1, x2, p1)}
    rows.append(row)
    ctx.log(f"λ={lmbda:g}: {row['bits_per_sample']:.2f} bits, SSE/sample "
            f"{row['sse_per_sample']:.4f}, ρ(Ds,p)={row['rho_ds']:+.3f} "
            f"ρ(Din,p)={row['rho_din']:+.3f} ρ(Dr,p)={row['rho_dr']:+.3f}")
  rows.sort(key=lambda r: r["bits_per_sample"])
  ctx.write_csv("fig2_correlations.csv", rows)
  rate = [r["bits_per_sample"] for r in rows]
  fig, axes = plotting.subplots(1, 2, size=(4.4, 3.4))
  labels = {"de": "De (input)", "dr": "Dr (reconstruction)",
            "din": "Din (inner)", "ds": "Ds (self)",
            "sens_dr": "sensitivity of Dr", "sens_din": "sensitivity of Din"}
  plotting.line_panel(axes[0, 0], rate, [[r[f"rho_{k}"] for r in rows]
                                         for k in DISTANCES],
                      [labels[k] for k in DISTANCES], "rate (bits/sample)",
                      "Spearman ρ(D, p(x₁))", "distances", styles=["o-"] * 4)
  plotting.line_panel(axes[0, 1], rate, [[r[f"rho_{k}"] for r in rows]
                                         for k in SENSITIVITIES],
                      [labels[k] for k in SENSITIVITIES], "rate (bits/sample)",
                      "Spearman ρ(D/||Δx||, p(x₁))", "sensitivities",
                      styles=["s-"] * 2)
  for ax in axes[0]:
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylim(-1, 1)
  fig.suptitle(f"Fig. 2: {len(rows)} models, {cfg['n_pairs']} pairs, "
               f"Δx ~ N(0, {cfg['perturbation_std']}² I)", fontsize=9)
  low, high = rows[0], rows[-1]
  summary = {
      "n_models": len(rows), "rates_bits": rate,
      "lambdas": [r["lmbda"] for r in rows],
      **{f"rho_{k}_lowest_rate": low[f"rho_{k}"]
         for k in DISTANCES + SENSITIVITIES},
      **{f"rho_{k}_highest_rate": high[f"rho_{k}"]
         for k in DISTANCES + SENSITIVITIES},
      **{f"rho_{k}_mean": float(np.nanmean([r[f"rho_{k}"] for r in rows]))
         for k in DISTANCES + SENSITIVITIES},
      "models": rows}
  ctx.save_figure(
      fig, "fig2.png",
      caption=("Spearman correlation between each induced distance (left) or "
               "sensitivity (right) and p(x₁), one point per model (λ), "
               "against the model's test rate. Paper Fig. 2 (Obs. 2-4)."),
      numbers={"rates (bits/sample)": rate,
               **{f"ρ({labels[k]}, p)": [r[f"rho_{k}"] for r in rows]
                  for k in DISTANCES + SENSITIVITIES}},
      table="fig2_correlations.csv")
  return summary


# -------------------------------------------------------------- fig11
def run_fig11(ctx: runner.RunContext) -> Dict:
  """Fig. 11: the Student-t and one model's quantisation of it."""
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  cfg = ctx.config
  dist = _source(cfg["source"], cfg)
  spec = model_spec(cfg, cfg["lmbda"])
  model = get_model(ctx, spec, f"toy2d-mse-λ{cfg['lmbda']:g}")
  qmap = quantisation_map(model, cfg["extent"], cfg["grid"], dist)
  x_val = _points(cfg["source"], cfg, cfg["n_val"], cfg["eval_seed"])
  ev = evaluate(model, x_val)
  cs = cell_stats(qmap, dist, core_radius=cfg.get("core_radius", 1.0))
  ctx.write_csv("fig11_code_vectors.csv", _qmap_rows("mse", qmap))
  fig, axes = plotting.subplots(1, 3, size=(3.6, 3.5))
  plotting.plot_density(axes[0, 0], qmap["xs"], qmap["ys"], qmap["density"],
                        title="a) log10 p(x), 2-D Student-t")
  plotting.plot_density(axes[0, 1], qmap["xs"], qmap["ys"], qmap["density"],
                        title="b) samples")
  axes[0, 1].plot(x_val[:3000, 0], x_val[:3000, 1], ".", ms=1.5,
                  color="tab:orange", alpha=0.6)
  axes[0, 1].set_xlim(-cfg["extent"], cfg["extent"])
  axes[0, 1].set_ylim(-cfg["extent"], cfg["extent"])
  _quant_panel(axes[0, 2], qmap, f"c) λ={cfg['lmbda']:g}: "
               f"{ev['bits_per_sample']:.2f} bits, SSE {ev['sse_per_sample']:.3f}")
  summary = {"lmbda": cfg["lmbda"], **ev, **cs}
  ctx.save_figure(
      fig, "fig11.png",
      caption=("a) density of the 2-D Student-t, b) samples, c) quantisation "
               "of one model trained with ||·||²: lines are cell boundaries, "
               "dots the code vectors (size ∝ √cell probability). Paper "
               "Fig. 11."),
      numbers=summary, table="fig11_code_vectors.csv")
  return summary


# -------------------------------------------------------------- fig12
def _region_sse(model, x, radius):
  x_hat = np.asarray(model.reconstruct(x))
  err = np.sum((x_hat - x) ** 2, axis=1)
  r = np.linalg.norm(x, axis=1)
  inner = r <= radius
  return (float(np.mean(err[inner])) if inner.any() else float("nan"),
          float(np.mean(err[~inner])) if (~inner).any() else float("nan"))


def run_fig12(ctx: runner.RunContext) -> Dict:
  """Fig. 12: ||·||², P(x)·||·||², ||·||²/P(x) on the Student-t."""
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  cfg = ctx.config
  dist = _source(cfg["source"], cfg)
  x_val = _points(cfg["source"], cfg, cfg["n_val"], cfg["eval_seed"])
  titles = {"mse": "a) ||x − x̂||²", "density_mse": "b) P(x)·||x − x̂||²",
            "inverse_density_mse": "c) ||x − x̂||² / P(x)"}
  fig, axes = plotting.subplots(1, 3, size=(3.6, 3.6))
  rows, code_rows, summary = [], [], {}
  for j, distortion in enumerate(cfg["distortions"]):
    spec = model_spec(cfg, cfg["lmbda"], distortion)
    model = get_model(ctx, spec, f"toy2d-{distortion}-λ{cfg['lmbda']:g}")
    ev = evaluate(model, x_val)
    inner, outer = _region_sse(model, x_val, cfg["core_radius"])
    qmap = quantisation_map(model, cfg["extent"], cfg["grid"], dist)
    cs = cell_stats(qmap, dist, core_radius=cfg["core_radius"])
    row = {"distortion": distortion, "lmbda_nominal": cfg["lmbda"],
           "lmbda_effective": spec["lmbda"], **ev,
           "sse_per_sample_core": inner, "sse_per_sample_tail": outer, **cs}
    rows.append(row)
    summary[distortion] = row
    code_rows += _qmap_rows(distortion, qmap)
    _quant_panel(axes[0, j], qmap,
                 f"{titles[distortion]}\n{ev['bits_per_sample']:.2f} "
                 f"bits/sample, SSE {ev['sse_total']:.4g} "
                 f"(N={ev['n']})")
    ctx.log(f"{distortion}: {ev['bits_per_sample']:.2f} bits/sample, "
            f"SSE/sample {ev['sse_per_sample']:.4f} (core {inner:.4f}, "
            f"tail {outer:.4f})")
  ctx.write_csv("fig12_metrics.csv", rows)
  ctx.write_csv("fig12_code_vectors.csv", code_rows)
  numbers = {}
  for r in rows:
    numbers[f"{r['distortion']}: bits/sample, SSE/sample (val), SSE total"] = [
        r["bits_per_sample"], r["sse_per_sample"], r["sse_total"]]
    numbers[f"{r['distortion']}: SSE/sample |x|≤{cfg['core_radius']} / beyond"] = [
        r["sse_per_sample_core"], r["sse_per_sample_tail"]]
    numbers[f"{r['distortion']}: mean local cell area |x|≤"
            f"{cfg['core_radius']} / beyond (units²)"] = [
                r["mean_local_cell_area_core"],
                r["mean_local_cell_area_outside"]]
    numbers[f"{r['distortion']}: ρS(local cell area, p(x))"] = r[
        "spearman_local_area_vs_p"]
    numbers[f"{r['distortion']}: code vectors within |x|≤{cfg['core_radius']}"
            " / with mass"] = [r["codes_in_core"], r["cells_with_mass"]]
  ctx.save_figure(
      fig, "fig12.png",
      caption=("Quantisation of the Student-t by models trained with a) "
               "||·||², b) P(x)·||·||² (adds the distribution) and c) "
               "||·||²/P(x) (removes it), with bits/sample and SSE on a "
               f"validation set of {cfg['n_val']} samples. Paper Fig. 12."),
      numbers=numbers, table=["fig12_metrics.csv", "fig12_code_vectors.csv"])
  return summary


# -------------------------------------------------------------- fig13
def run_fig13(ctx: runner.RunContext) -> Dict:
  """Fig. 13: uniform source, plain vs Student-t-weighted distortion."""
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  cfg = ctx.config
  uniform = _source("uniform2d", cfg)
  student = _source(cfg["weight"], cfg)
  x_val = _points("uniform2d", cfg, cfg["n_val"], cfg["eval_seed"])
  fig, axes = plotting.subplots(1, 2, size=(3.8, 3.8))
  rows, code_rows, summary = [], [], {}
  for j, distortion in enumerate(("mse", "density_mse")):
    spec = model_spec(cfg, cfg["lmbda"], distortion, source="uniform2d",
                      weight=cfg["weight"])
    name = "plain" if distortion == "mse" else "student_t_weighted"
    model = get_model(ctx, spec, f"toy2d-uniform-{name}-λ{cfg['lmbda']:g}")
    ev = evaluate(model, x_val)
    inner, outer = _region_sse(model, x_val, cfg["core_radius"])
    qmap = quantisation_map(model, cfg["extent"], cfg["grid"], uniform)
    in_core = np.linalg.norm(qmap["codes"], axis=1) <= cfg["core_radius"]
    used = qmap["mass"] > 0
    core_area = math.pi * cfg["core_radius"] ** 2
    # The uniform density is 1/area inside its box (the origin is inside).
    box_area = 1.0 / float(uniform.prob(np.zeros([1, 2], np.float32))[0])
    row = {"model": name, "lmbda_effective": spec["lmbda"], **ev,
           "sse_per_sample_core": inner, "sse_per_sample_tail": outer,
           **cell_stats(qmap, student, core_radius=cfg["core_radius"]),
           "cells_used": int(used.sum()),
           "cells_in_core": int((in_core & used).sum()),
           "code_density_core_per_unit2": float((in_core & used).sum()
                                                / core_area),
           "code_density_outside_per_unit2": float(
               (~in_core & used).sum() / (box_area - core_area))}
    rows.append(row)
    summary[name] = row
    code_rows += _qmap_rows(name, qmap)
    # Shown over the Student-t's density (the weight), as in the paper.
    qshow = dict(qmap, density=student.prob(np.stack(np.meshgrid(
        qmap["xs"], qmap["ys"]), -1).reshape(-1, 2)).numpy().reshape(
            qmap["labels"].shape))
    _quant_panel(axes[0, j], qshow,
                 f"{'left) ||x − x̂||²' if j == 0 else 'right) P_t(x)·||x − x̂||²'}"
                 f" on uniform data\n{ev['bits_per_sample']:.2f} bits, "
                 f"{row['cells_in_core']} codes within r≤{cfg['core_radius']}")
    ctx.log(f"{name}: {ev['bits_per_sample']:.2f} bits, cells in core "
            f"{row['cells_in_core']}/{row['cells_used']}, SSE core {inner:.4f}"
            f" tail {outer:.4f}")
  ctx.write_csv("fig13_metrics.csv", rows)
  ctx.write_csv("fig13_code_vectors.csv", code_rows)
  numbers = {f"{r['model']}: bits/sample, SSE/sample": [r["bits_per_sample"],
                                                        r["sse_per_sample"]]
             for r in rows}
  numbers.update({f"{r['model']}: code vectors per unit² in r≤"
                  f"{cfg['core_radius']} / outside": [
                      r["code_density_core_per_unit2"],
                      r["code_density_outside_per_unit2"]] for r in rows})
  numbers.update({f"{r['model']}: SSE/sample core / outside": [
      r["sse_per_sample_core"], r["sse_per_sample_tail"]] for r in rows})
  numbers.update({f"{r['model']}: mean local cell area core / outside "
                  "(units²)": [r["mean_local_cell_area_core"],
                               r["mean_local_cell_area_outside"]]
                  for r in rows})
  numbers.update({f"{r['model']}: ρS(local cell area, P_t(x))":
                  r["spearman_local_area_vs_p"] for r in rows})
  ctx.save_figure(
      fig, "fig13.png",
      caption=("Models trained on a uniform source over the box, left) with "
               "||·||², right) with the Student-t density weighting the "
               "distortion. Background: log density of the Student-t; the "
               "data are uniform over the whole box. Paper Fig. 13."),
      numbers=numbers, table=["fig13_metrics.csv", "fig13_code_vectors.csv"])
  return summary


# -------------------------------------------------------------- fig14
def _binned_errors(model, t, bins, band: float = 0.0, n_band: int = 1):
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


def run_fig14(ctx: runner.RunContext) -> Dict:
  """Figs. 4 left and 14: P(x)-weighted / plain along the x-axis."""
  from numpy.polynomial import Polynomial  # pylint: disable=g-import-not-at-top
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  cfg = ctx.config
  dist = _source(cfg["source"], cfg)
  half = float(cfg["line_extent"])
  nb = int(cfg["n_bins"])
  bins = np.linspace(-half, half, nb + 1)
  centres = 0.5 * (bins[1:] + bins[:-1])
  t = np.linspace(-half, half, nb * int(cfg["points_per_bin"]) + 1)[:-1]
  t = t + 0.5 * (t[1] - t[0])
  p_line = dist.prob(np.stack([centres, np.zeros_like(centres)], 1).astype(
      np.float32)).numpy()
  core = np.abs(centres) <= cfg["core_halfwidth"]
  tail = np.abs(centres) >= cfg["tail_from"]
  rows, summary, curves = [], {"pairs": []}, []
  for lmbda in cfg["lambdas"]:
    plain = get_model(ctx, model_spec(cfg, lmbda), f"toy2d-mse-λ{lmbda:g}")
    wspec = model_spec(cfg, lmbda, "density_mse")
    weighted = get_model(ctx, wspec, f"toy2d-density_mse-λ{lmbda:g}")
    band = (float(cfg.get("band_halfwidth", 0.0)), int(cfg.get("band_points",
                                                               1)))
    e_p, r_p = _binned_errors(plain, t, bins, *band)
    e_w, r_w = _binned_errors(weighted, t, bins, *band)
    floor = float(cfg["error_floor"])
    ratio = (e_w + floor) / (e_p + floor)
    log_ratio = np.log10(ratio)
    fit = Polynomial.fit(centres, log_ratio, int(cfg["poly_degree"]))
    ratio_fit = 10 ** fit(centres)
    for c, pl, a, b, ra, rf, rp, rw in zip(centres, p_line, e_p, e_w, ratio,
                                           ratio_fit, r_p, r_w):
      rows.append({"lmbda": lmbda, "x1": c, "p_x": pl, "sse_plain": a,
                   "sse_weighted": b, "ratio": ra, "ratio_polyfit": rf,
                   "bits_plain": rp, "bits_weighted": rw})
    pair = {
        "lmbda": lmbda, "lmbda_weighted_effective": wspec["lmbda"],
        "geomean_ratio_core": float(10 ** np.mean(log_ratio[core])),
        "geomean_ratio_tail": float(10 ** np.mean(log_ratio[tail])),
        "fraction_core_bins_weighted_better": float(np.mean(ratio[core] < 1)),
        "fraction_tail_bins_weighted_worse": float(np.mean(ratio[tail] > 1)),
        "fit_ratio_at_mode": float(10 ** fit(0.0)),
        "mean_bits_plain_core": float(np.mean(r_p[core])),
        "mean_bits_weighted_core": float(np.mean(r_w[core]))}
    summary["pairs"].append(pair)
    curves.append((lmbda, ratio, ratio_fit))
    ctx.log(f"λ={lmbda:g}: weighted/plain SSE geomean core "
            f"{pair['geomean_ratio_core']:.3f}, tail "
            f"{pair['geomean_ratio_tail']:.3f}")
  ctx.write_csv("fig14_ratio.csv", rows)
  for key in ("geomean_ratio_core", "geomean_ratio_tail"):
    summary[key + "_all_pairs"] = float(10 ** np.mean(
        [np.log10(p[key]) for p in summary["pairs"]]))
  fig, axes = plotting.subplots(1, 2, size=(4.4, 3.4))
  for lmbda, ratio, ratio_fit in curves:
    axes[0, 0].plot(centres, ratio_fit, lw=1.4, label=f"λ={lmbda:g}")
    axes[0, 1].plot(centres, ratio, ".-", lw=0.6, ms=2, label=f"λ={lmbda:g}")
  for ax, title in zip(axes[0], (f"degree-{cfg['poly_degree']} polynomial fit",
                                 "raw (binned)")):
    ax.axhline(1.0, color="k", lw=0.6)
    ax.set_yscale("log")
    ax.set_xlabel("x₁ along the x-axis, source units")
    ax.set_ylabel("SSE(P(x)·||·||²) / SSE(||·||²)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax2 = ax.twinx()
    ax2.fill_between(centres, p_line, color="tab:green", alpha=0.12)
    ax2.set_ylabel("p(x₁, 0)", color="tab:green")
    ax2.set_ylim(0, None)
  fig.suptitle("Fig. 14: weighted / plain distortion along the x-axis (< 1: "
               "weighted better)", fontsize=9)
  numbers = {f"λ={p['lmbda']:g}: geomean ratio |x₁|≤{cfg['core_halfwidth']} /"
             f" |x₁|≥{cfg['tail_from']}": [p["geomean_ratio_core"],
                                          p["geomean_ratio_tail"]]
             for p in summary["pairs"]}
  ctx.save_figure(
      fig, "fig14.png",
      caption=("Ratio of the squared error of models trained with "
               "P(x)·||·||² over models trained with ||·||² (same nominal λ), "
               f"for points along the x-axis (x₂ within ±{cfg.get('band_halfwidth', 0)}"
               f") averaged in {nb} bins of x₁; left a "
               f"degree-{cfg['poly_degree']} polynomial fit (of log10 ratio, "
               "numpy Polynomial.fit), right the raw values. Green: p(x₁, 0). "
               "Paper Fig. 14."),
      numbers=numbers, table="fig14_ratio.csv")
  fig, axes = plotting.subplots(1, 1, size=(4.4, 3.4))
  ax = axes[0, 0]
  for lmbda, _, ratio_fit in curves:
    ax.plot(centres, ratio_fit, lw=1.4, label=f"λ={lmbda:g}")
  ax.axhline(1.0, color="k", lw=0.6)
  ax.set_yscale("log")
  ax.set_xlabel("x₁ along the x-axis, source units")
  ax.set_ylabel("SSE(P(x)·||·||²) / SSE(||·||²)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  ax.set_title("Fig. 4 left: weighted / plain (polynomial fit)", fontsize=9)
  ctx.save_figure(fig, "fig4_left.png",
                  caption="Fig. 4 left: the polynomial fits of fig14.png.",
                  numbers={"geomean ratio core (all pairs)":
                           summary["geomean_ratio_core_all_pairs"],
                           "geomean ratio tail (all pairs)":
                           summary["geomean_ratio_tail_all_pairs"]},
                  table="fig14_ratio.csv")
  return summary


# -------------------------------------------------------------- configs
_MODEL_QUICK = {"widths": 64, "depth": 2, "activation": "softplus"}
_TRAIN_QUICK = {"steps": 2000, "batch_size": 512, "learning_rate": 3e-3,
                "lr_floor": 0.05, "seed": 1, "steps_per_execution": 100,
                "log_epochs": 4}
_MODEL_PAPER = {"widths": 100, "depth": 3, "activation": "softplus"}
_TRAIN_PAPER = {"steps": 20000, "batch_size": 1024, "learning_rate": 1e-3,
                "lr_floor": 0.05, "seed": 1, "steps_per_execution": 200,
                "log_epochs": 10}
_MODEL_TINY = {"widths": 32, "depth": 2, "activation": "softplus"}
_TRAIN_TINY = {"steps": 600, "batch_size": 256, "learning_rate": 1e-2,
               "lr_floor": 0.05, "seed": 1, "steps_per_execution": 100,
               "log_epochs": 2}
_SOURCE = {"source": "student_t", "source_params": {},
           "weight_normalisation": "geomean", "inverse_density_floor": 1e-3,
           "eval_seed": 7}
LAMBDA_SWEEP = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
REFERENCE_LAMBDA = 4.0


def _presets(quick: Dict, tiny: Dict, paper: Dict) -> Dict:
  return {
      "tiny": dict(_SOURCE, model=_MODEL_TINY, train=_TRAIN_TINY,
                   weighted_steps=1000, **tiny),
      "quick": dict(_SOURCE, model=_MODEL_QUICK, train=_TRAIN_QUICK,
                    weighted_steps=5000, **quick),
      "paper": dict(_SOURCE, model=_MODEL_PAPER, train=_TRAIN_PAPER,
                    weighted_steps=_TRAIN_PAPER["steps"], **paper)}


runner.register_experiment(
    "fig2", run_fig2,
    _presets(quick={"lambdas": LAMBDA_SWEEP, "n_pairs": 20000,
                    "n_val": 20000, "perturbation_std": 0.05},
             tiny={"lambdas": [0.25, 0.5, 1.0], "n_pairs": 4000,
                   "n_val": 4000, "perturbation_std": 0.05},
             paper={"lambdas": LAMBDA_SWEEP + [64.0, 128.0],
                    "n_pairs": 100000, "n_val": 100000,
                    "perturbation_std": 0.05}),
    description=("Obs. 2-4: Spearman ρ between p(x₁) and the induced "
                 "distances De, Dr, Din, Ds and sensitivities of toy 2-D "
                 "autoencoders trained at ≥ 8 rates on a 2-D Student-t."),
    paper_figures=("Fig. 2",), groups=("all",))

runner.register_experiment(
    "fig11", run_fig11,
    _presets(quick={"lmbda": REFERENCE_LAMBDA, "extent": 6.0, "grid": 400,
                    "n_val": 20000},
             tiny={"lmbda": 1.0, "extent": 6.0, "grid": 120, "n_val": 4000},
             paper={"lmbda": REFERENCE_LAMBDA, "extent": 6.0, "grid": 800,
                    "n_val": 100000}),
    description=("The 2-D Student-t source and the quantisation (cells, code "
                 "vectors) learned by one model."),
    paper_figures=("Fig. 11",), groups=("all",))

runner.register_experiment(
    "fig12", run_fig12,
    _presets(quick={"lmbda": REFERENCE_LAMBDA, "extent": 6.0, "grid": 300,
                    "n_val": 20000, "core_radius": 1.0,
                    "distortions": ["mse", "density_mse",
                                    "inverse_density_mse"]},
             tiny={"lmbda": 1.0, "extent": 6.0, "grid": 120, "n_val": 4000,
                   "core_radius": 1.0,
                   "distortions": ["mse", "density_mse",
                                   "inverse_density_mse"]},
             paper={"lmbda": REFERENCE_LAMBDA, "extent": 6.0, "grid": 800,
                    "n_val": 100000, "core_radius": 1.0,
                    "distortions": ["mse", "density_mse",
                                    "inverse_density_mse"]}),
    description=("Including (P(x)·||·||²) or removing (||·||²/P(x)) the "
                 "distribution in the loss: quantisation, bits and SSE."),
    paper_figures=("Fig. 12",), groups=("all",))

runner.register_experiment(
    "fig13", run_fig13,
    _presets(quick={"lmbda": REFERENCE_LAMBDA, "weight": "student_t",
                    "extent": 5.0, "grid": 300, "n_val": 20000,
                    "core_radius": 1.5},
             tiny={"lmbda": 1.0, "weight": "student_t", "extent": 5.0,
                   "grid": 120, "n_val": 4000, "core_radius": 1.5},
             paper={"lmbda": REFERENCE_LAMBDA, "weight": "student_t",
                    "extent": 5.0, "grid": 800, "n_val": 100000,
                    "core_radius": 1.5}),
    description=("Uniform source: plain versus Student-t-weighted "
                 "distortion; the weight moves code vectors to where the "
                 "Student-t has mass."),
    paper_figures=("Fig. 13",), groups=("all",))

runner.register_experiment(
    "fig14", run_fig14,
    _presets(quick={"lambdas": [4.0, 8.0, 16.0], "line_extent": 8.0,
                    "n_bins": 80, "points_per_bin": 50, "poly_degree": 20,
                    "core_halfwidth": 1.0, "tail_from": 3.0,
                    "error_floor": 1e-6, "band_halfwidth": 0.5,
                    "band_points": 11},
             tiny={"lambdas": [1.0], "line_extent": 8.0, "n_bins": 40,
                   "points_per_bin": 25, "poly_degree": 20,
                   "core_halfwidth": 1.0, "tail_from": 3.0,
                   "error_floor": 1e-6, "band_halfwidth": 0.5,
                   "band_points": 5},
             paper={"lambdas": [4.0, 8.0, 16.0, 32.0],
                    "line_extent": 8.0, "n_bins": 160, "points_per_bin": 100,
                    "poly_degree": 20, "core_halfwidth": 1.0,
                    "tail_from": 3.0, "error_floor": 1e-6,
                    "band_halfwidth": 0.5, "band_points": 21}),
    description=("Obs. 6 in 2-D: ratio of the distortion of P(x)-weighted "
                 "over plain models along the x-axis (raw and degree-20 "
                 "polynomial fit)."),
    paper_figures=("Fig. 4 left", "Fig. 14"), groups=("all",))
