"""The figures of the 2-D experiments: one `run_*` per experiment.

Each run function trains (through the cache) and evaluates the models its
typed config asks for (`configs`), with the measures of `metrics`, and
writes its tables and figure through the runner's context.
"""

import math
from typing import Dict

import numpy as np

from tfc_perception.experiments import runner
from tfc_perception.experiments.student_t import metrics

__all__ = ["run_fig2", "run_fig11", "run_fig12", "run_fig13", "run_fig14"]


def _quant_panel(ax, qmap, title, samples=None):
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  plotting.plot_quantisation(ax, qmap["xs"], qmap["ys"], qmap["density"],
                             qmap["labels"], qmap["codes"],
                             code_weights=qmap["mass"], title=title,
                             samples=samples)



# -------------------------------------------------------------- fig2
_FIG2_LABELS = {"de": "De (input)", "dr": "Dr (reconstruction)",
                "din": "Din (inner)", "ds": "Ds (self)",
                "sens_dr": "sensitivity of Dr",
                "sens_din": "sensitivity of Din"}


def main_perturbation(rows, stds, min_crossing: float) -> float:
  """The σ of the main Fig. 2: the smallest of `stds` at which the median
  over models of the fraction of pairs whose codes differ is at least
  `min_crossing` (the largest median's σ if none reaches it). See
  `configs.Fig2`."""
  medians = {s: float(np.median([r["fraction_codes_differ"] for r in rows
                                 if r["perturbation_std"] == s]))
             for s in stds}
  reached = [s for s in sorted(stds) if medians[s] >= min_crossing]
  return reached[0] if reached else max(stds, key=lambda s: medians[s])


def run_fig2(ctx: runner.RunContext) -> Dict:
  """Fig. 2 (Obs. 2-4): induced-distance correlations with p(x1) vs rate,
  for every perturbation size of the config."""
  cfg = ctx.config
  dist = metrics.source(cfg.source, cfg)
  x_val = metrics.points(cfg.source, cfg, cfg.n_val, cfg.eval_seed)
  x1 = metrics.points(cfg.source, cfg, cfg.n_pairs, cfg.eval_seed + 1)
  rng = np.random.default_rng(cfg.eval_seed)
  # One direction per pair, scaled by each σ: the sweep changes only the
  # size of the perturbation.
  noise = rng.standard_normal(x1.shape)
  stds = [float(s) for s in cfg.perturbation_stds]
  x2 = {s: (x1 + s * noise).astype(np.float32) for s in stds}
  p1 = dist.prob(x1).numpy()
  rows = []
  for lmbda in cfg.lambdas:
    spec = metrics.model_spec(cfg, lmbda)
    model = metrics.get_model(ctx, spec, f"toy2d-mse-λ{lmbda:g}")
    ev = metrics.evaluate(model, x_val)
    for s in stds:
      row = {"lmbda": lmbda, "perturbation_std": s, **ev,
             **metrics.induced_correlations(model, x1, x2[s], p1)}
      rows.append(row)
      ctx.log(f"λ={lmbda:g} σ={s:g}: {row['bits_per_sample']:.2f} bits, "
              f"codes differ {row['fraction_codes_differ']:.1%}, "
              f"ρ(Ds,p)={row['rho_ds']:+.3f} ρ(Din,p)={row['rho_din']:+.3f} "
              f"ρ(Dr,p)={row['rho_dr']:+.3f}")
  rows.sort(key=lambda r: (r["perturbation_std"], r["bits_per_sample"]))
  ctx.write_csv("fig2_correlations.csv", rows)
  main = main_perturbation(rows, stds, cfg.main_min_crossing)
  by_std = {s: [r for r in rows if r["perturbation_std"] == s] for s in stds}
  keys = metrics.DISTANCES + metrics.SENSITIVITIES
  main_rows = by_std[main]
  rate = [r["bits_per_sample"] for r in main_rows]
  _fig2_main(ctx, cfg, main, main_rows, by_std)
  _fig2_perturbations(ctx, main, by_std)
  low, high = main_rows[0], main_rows[-1]
  summary = {
      "n_models": len(main_rows), "rates_bits": rate,
      "lambdas": [r["lmbda"] for r in main_rows],
      "perturbation_stds": stds, "main_perturbation_std": main,
      "main_perturbation_rule": (
          "smallest σ at which the median over models of the fraction of "
          f"pairs whose codes differ is >= {cfg.main_min_crossing:g}"),
      "median_fraction_codes_differ": {
          f"{s:g}": float(np.median([r["fraction_codes_differ"]
                                     for r in by_std[s]])) for s in stds},
      **{f"rho_{k}_lowest_rate": low[f"rho_{k}"] for k in keys},
      **{f"rho_{k}_highest_rate": high[f"rho_{k}"] for k in keys},
      **{f"rho_{k}_mean": float(np.nanmean([r[f"rho_{k}"] for r in main_rows]))
         for k in keys},
      "by_perturbation": {
          f"{s:g}": {k: [r[k] for r in by_std[s]] for k in
                     ["bits_per_sample", "fraction_codes_differ"]
                     + [f"rho_{k}" for k in keys]} for s in stds},
      "models": main_rows}
  return summary


def _fig2_main(ctx, cfg, main, main_rows, by_std):
  """fig2.png: the paper's figure at the main σ, and the crossing fractions
  of every σ."""
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  rate = [r["bits_per_sample"] for r in main_rows]
  distances, sensitivities = metrics.DISTANCES, metrics.SENSITIVITIES
  fig, axes = plotting.subplots(1, 3, size=(4.4, 3.4))
  plotting.line_panel(axes[0, 0], rate,
                      [[r[f"rho_{k}"] for r in main_rows] for k in distances],
                      [_FIG2_LABELS[k] for k in distances],
                      "rate (bits/sample)", "Spearman ρ(D, p(x₁))",
                      "distances", styles=["o-"] * 4)
  plotting.line_panel(axes[0, 1], rate,
                      [[r[f"rho_{k}"] for r in main_rows]
                       for k in sensitivities],
                      [_FIG2_LABELS[k] for k in sensitivities],
                      "rate (bits/sample)", "Spearman ρ(D/||Δx||, p(x₁))",
                      "sensitivities", styles=["s-"] * 2)
  for ax in axes[0, :2]:
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylim(-1, 1)
  stds = list(by_std)
  plotting.line_panel(
      axes[0, 2], tuple([r["bits_per_sample"] for r in by_std[s]]
                        for s in stds),
      [[100 * r["fraction_codes_differ"] for r in by_std[s]] for s in stds],
      [f"σ={s:g}" + (" (main)" if s == main else "") for s in stds],
      "rate (bits/sample)", "pairs whose codes differ (%)",
      "pairs crossing a cell boundary", styles=["^-"] * len(stds))
  axes[0, 2].axhline(100 * cfg.main_min_crossing, color="k", lw=0.6, ls=":")
  axes[0, 2].set_ylim(0, 100)
  fig.suptitle(f"Fig. 2: {len(main_rows)} models, {cfg.n_pairs} pairs, "
               f"Δx ~ N(0, {main:g}² I)", fontsize=9)
  crossing = [r["fraction_codes_differ"] for r in main_rows]
  ctx.save_figure(
      fig, "fig2.png",
      caption=("Spearman correlation between each induced distance (left) or "
               "sensitivity (middle) and p(x₁), one point per model (λ), "
               f"against the model's test rate, for Δx ~ N(0, {main:g}² I): "
               "the smallest σ of the sweep at which, for the median model, "
               f"at least {cfg.main_min_crossing:.0%} of the pairs have "
               "different codes (Dr is 0 for a pair inside one cell, so its "
               "correlation is only informative when most pairs cross). "
               "Right: that fraction for every σ of the sweep "
               "(fig2_perturbations.png). Paper Fig. 2 (Obs. 2-4)."),
      numbers={"rates (bits/sample)": rate,
               f"pairs whose codes differ (σ={main:g})": crossing,
               **{f"ρ({_FIG2_LABELS[k]}, p)": [r[f"rho_{k}"]
                                               for r in main_rows]
                  for k in distances + sensitivities}},
      table="fig2_correlations.csv")


def _fig2_perturbations(ctx, main, by_std):
  """fig2_perturbations.png: ρ of Dr, Din and their sensitivities against
  the rate, one curve per σ."""
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  stds = list(by_std)
  rates = tuple([r["bits_per_sample"] for r in by_std[s]] for s in stds)
  labels = [f"σ={s:g}" + (" (main)" if s == main else "") for s in stds]
  fig, axes = plotting.subplots(2, 2, size=(4.4, 3.4))
  panels = ("dr", "sens_dr", "din", "sens_din")
  for ax, k in zip(axes.ravel(), panels):
    plotting.line_panel(ax, rates, [[r[f"rho_{k}"] for r in by_std[s]]
                                    for s in stds], labels,
                        "rate (bits/sample)", f"ρ({_FIG2_LABELS[k]}, p(x₁))",
                        _FIG2_LABELS[k], styles=["o-"] * len(stds))
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylim(-1, 1)
  fig.suptitle("Fig. 2 across perturbation sizes Δx ~ N(0, σ² I)",
               fontsize=9)
  numbers = {}
  for s in stds:
    for k in ("fraction_codes_differ", "rho_dr", "rho_sens_dr", "rho_din",
              "rho_sens_din"):
      numbers[f"σ={s:g}: {k} (low → high rate)"] = [r[k] for r in by_std[s]]
  ctx.save_figure(
      fig, "fig2_perturbations.png",
      caption=("Spearman ρ between p(x₁) and Dr, its sensitivity, Din and its "
               "sensitivity, against the rate, one curve per perturbation "
               "size σ (same x₁ and directions, scaled). Shows where the "
               "sign of the Din correlations changes with rate at every "
               "σ, and how Dr depends on the fraction of pairs that cross a "
               "cell boundary."),
      numbers=numbers, table="fig2_correlations.csv")


# -------------------------------------------------------------- fig11
def run_fig11(ctx: runner.RunContext) -> Dict:
  """Fig. 11: the Student-t and one model's quantisation of it."""
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  cfg = ctx.config
  dist = metrics.source(cfg.source, cfg)
  spec = metrics.model_spec(cfg, cfg.lmbda)
  model = metrics.get_model(ctx, spec, f"toy2d-mse-λ{cfg.lmbda:g}")
  qmap = metrics.quantisation_map(model, cfg.extent, cfg.grid, dist)
  x_val = metrics.points(cfg.source, cfg, cfg.n_val, cfg.eval_seed)
  ev = metrics.evaluate(model, x_val)
  cs = metrics.cell_stats(qmap, dist, core_radius=cfg.core_radius)
  ctx.write_csv("fig11_code_vectors.csv", metrics.qmap_rows("mse", qmap))
  fig, axes = plotting.subplots(1, 3, size=(3.6, 3.5))
  plotting.plot_density(axes[0, 0], qmap["xs"], qmap["ys"], qmap["density"],
                        title="a) log10 p(x), 2-D Student-t")
  plotting.plot_density(axes[0, 1], qmap["xs"], qmap["ys"], qmap["density"],
                        title="b) samples")
  axes[0, 1].plot(x_val[:3000, 0], x_val[:3000, 1], ".", ms=1.5,
                  color="tab:orange", alpha=0.6)
  axes[0, 1].set_xlim(-cfg.extent, cfg.extent)
  axes[0, 1].set_ylim(-cfg.extent, cfg.extent)
  _quant_panel(axes[0, 2], qmap, f"c) λ={cfg.lmbda:g}: "
               f"{ev['bits_per_sample']:.2f} bits, SSE {ev['sse_per_sample']:.3f}")
  summary = {"lmbda": cfg.lmbda, **ev, **cs}
  ctx.save_figure(
      fig, "fig11.png",
      caption=("a) density of the 2-D Student-t, b) samples, c) quantisation "
               "of one model trained with ||·||²: lines are cell boundaries, "
               "dots the code vectors (size ∝ √cell probability). Paper "
               "Fig. 11."),
      numbers=summary, table="fig11_code_vectors.csv")
  return summary


# -------------------------------------------------------------- fig12

def run_fig12(ctx: runner.RunContext) -> Dict:
  """Fig. 12: ||·||², P(x)·||·||², ||·||²/P(x) on the Student-t."""
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  cfg = ctx.config
  dist = metrics.source(cfg.source, cfg)
  x_val = metrics.points(cfg.source, cfg, cfg.n_val, cfg.eval_seed)
  titles = {"mse": "a) ||x − x̂||²", "density_mse": "b) P(x)·||x − x̂||²",
            "inverse_density_mse": "c) ||x − x̂||² / P(x)"}
  fig, axes = plotting.subplots(1, 3, size=(3.6, 3.6))
  rows, code_rows, summary = [], [], {}
  for j, distortion in enumerate(cfg.distortions):
    spec = metrics.model_spec(cfg, cfg.lmbda, distortion)
    model = metrics.get_model(ctx, spec, f"toy2d-{distortion}-λ{cfg.lmbda:g}")
    ev = metrics.evaluate(model, x_val)
    inner, outer = metrics.region_sse(model, x_val, cfg.core_radius)
    qmap = metrics.quantisation_map(model, cfg.extent, cfg.grid, dist)
    cs = metrics.cell_stats(qmap, dist, core_radius=cfg.core_radius)
    row = {"distortion": distortion, "lmbda_nominal": cfg.lmbda,
           "lmbda_effective": spec["lmbda"], **ev,
           "sse_per_sample_core": inner, "sse_per_sample_tail": outer, **cs}
    rows.append(row)
    summary[distortion] = row
    code_rows += metrics.qmap_rows(distortion, qmap)
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
    numbers[f"{r['distortion']}: SSE/sample |x|≤{cfg.core_radius} / beyond"] = [
        r["sse_per_sample_core"], r["sse_per_sample_tail"]]
    numbers[f"{r['distortion']}: mean local cell area |x|≤"
            f"{cfg.core_radius} / beyond (units²)"] = [
                r["mean_local_cell_area_core"],
                r["mean_local_cell_area_outside"]]
    numbers[f"{r['distortion']}: ρS(local cell area, p(x))"] = r[
        "spearman_local_area_vs_p"]
    numbers[f"{r['distortion']}: code vectors within |x|≤{cfg.core_radius}"
            " / with mass"] = [r["codes_in_core"], r["cells_with_mass"]]
  ctx.save_figure(
      fig, "fig12.png",
      caption=("Quantisation of the Student-t by models trained with a) "
               "||·||², b) P(x)·||·||² (adds the distribution) and c) "
               "||·||²/P(x) (removes it), with bits/sample and SSE on a "
               f"validation set of {cfg.n_val} samples. Paper Fig. 12."),
      numbers=numbers, table=["fig12_metrics.csv", "fig12_code_vectors.csv"])
  return summary


# -------------------------------------------------------------- fig13
_FIG13_MODELS = {
    "plain": "||x − x̂||²",
    "weighted_distortion": "R + λ·P_t(x)·||x − x̂||²",
    "weighted_eq3": "P_t(x)·(R + λ·||x − x̂||²)"}


def _fig13_specs(cfg):
  """(name, model spec) of the plain model and one per weighting."""
  specs = [("plain", metrics.model_spec(cfg, cfg.lmbda, "mse",
                                        source="uniform2d"))]
  for weighting in cfg.weightings:
    if weighting == "distortion":
      spec = metrics.model_spec(cfg, cfg.lmbda, "density_mse",
                                source="uniform2d", weight=cfg.weight)
    else:
      spec = metrics.model_spec(cfg, cfg.lmbda, "mse", source="uniform2d",
                                eq3_weight=cfg.weight)
    specs.append((f"weighted_{weighting}", spec))
  return specs


def run_fig13(ctx: runner.RunContext) -> Dict:
  """Fig. 13: uniform source, plain vs Student-t-weighted, in each reading
  of the weighting (`configs.Fig13.weightings`)."""
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  cfg = ctx.config
  uniform = metrics.source("uniform2d", cfg)
  student = metrics.source(cfg.weight, cfg)
  x_val = metrics.points("uniform2d", cfg, cfg.n_val, cfg.eval_seed)
  specs = _fig13_specs(cfg)
  fig, axes = plotting.subplots(1, len(specs), size=(3.8, 3.8))
  rows, code_rows, summary = [], [], {}
  core_area = math.pi * cfg.core_radius ** 2
  # The uniform density is 1/area inside its box (the origin is inside).
  box_area = 1.0 / float(uniform.prob(np.zeros([1, 2], np.float32))[0])
  for j, (name, spec) in enumerate(specs):
    model = metrics.get_model(ctx, spec,
                              f"toy2d-uniform-{name}-λ{cfg.lmbda:g}")
    ev = metrics.evaluate(model, x_val)
    inner, outer = metrics.region_sse(model, x_val, cfg.core_radius)
    qmap = metrics.quantisation_map(model, cfg.extent, cfg.grid, uniform)
    in_core = np.linalg.norm(qmap["codes"], axis=1) <= cfg.core_radius
    used = qmap["mass"] > 0
    row = {"model": name, "loss": _FIG13_MODELS[name],
           "lmbda_effective": spec["lmbda"], **ev,
           "sse_per_sample_core": inner, "sse_per_sample_tail": outer,
           **metrics.cell_stats(qmap, student, core_radius=cfg.core_radius),
           "cells_used": int(used.sum()),
           "cells_in_core": int((in_core & used).sum()),
           "code_density_core_per_unit2": float((in_core & used).sum()
                                                / core_area),
           "code_density_outside_per_unit2": float(
               (~in_core & used).sum() / (box_area - core_area))}
    rows.append(row)
    summary[name] = row
    code_rows += metrics.qmap_rows(name, qmap)
    # Shown over the Student-t's density (the weight), as in the paper.
    qshow = dict(qmap, density=student.prob(np.stack(np.meshgrid(
        qmap["xs"], qmap["ys"]), -1).reshape(-1, 2)).numpy().reshape(
            qmap["labels"].shape))
    _quant_panel(axes[0, j], qshow,
                 f"{'abcd'[j]}) {_FIG13_MODELS[name]} on uniform data\n"
                 f"{ev['bits_per_sample']:.2f} bits, "
                 f"{row['cells_in_core']} codes within r≤{cfg.core_radius}")
    ctx.log(f"{name}: {ev['bits_per_sample']:.2f} bits, cells in core "
            f"{row['cells_in_core']}/{row['cells_used']}, SSE core {inner:.4f}"
            f" tail {outer:.4f}")
  ctx.write_csv("fig13_metrics.csv", rows)
  ctx.write_csv("fig13_code_vectors.csv", code_rows)
  numbers = {f"{r['model']}: bits/sample, SSE/sample": [r["bits_per_sample"],
                                                        r["sse_per_sample"]]
             for r in rows}
  numbers.update({f"{r['model']}: code vectors per unit² in r≤"
                  f"{cfg.core_radius} / outside": [
                      r["code_density_core_per_unit2"],
                      r["code_density_outside_per_unit2"]] for r in rows})
  numbers.update({f"{r['model']}: SSE/sample core / outside": [
      r["sse_per_sample_core"], r["sse_per_sample_tail"]] for r in rows})
  numbers.update({f"{r['model']}: mean local cell area core / outside "
                  "(units², cells inside the grid)": [
                      r["mean_local_cell_area_core"],
                      r["mean_local_cell_area_outside"]] for r in rows})
  numbers.update({f"{r['model']}: ρS(local cell area, P_t(x))":
                  r["spearman_local_area_vs_p"] for r in rows})
  numbers.update({f"{r['model']}: cells inside the grid, fraction of the "
                  "grid they cover": [r["interior_cells"],
                                      r["fraction_grid_in_interior_cells"]]
                  for r in rows})
  ctx.save_figure(
      fig, "fig13.png",
      caption=("Models trained on a uniform source over the box: a) with "
               "||·||²; then with the Student-t density P_t weighting the "
               "rate-distortion equation, in each reading of the caption: "
               "weighting D only (R + λ·P_t·||·||², λ normalised by the "
               "geometric mean of P_t) and weighting all of Eq. 3 "
               "(P_t·(R + λ||·||²), P_t normalised to mean 1 over the box). "
               "Background: log density of the Student-t; the data are "
               "uniform over the whole box. Cell statistics count only cells "
               "that do not touch the grid's edge. Paper Fig. 13."),
      numbers=numbers, table=["fig13_metrics.csv", "fig13_code_vectors.csv"])
  return summary


# -------------------------------------------------------------- fig14
def _ratio_stats(prefix, ratio, fit, core, tail):
  log_ratio = np.log10(ratio)
  return {f"{prefix}_geomean_ratio_core": float(10 ** np.mean(log_ratio[core])),
          f"{prefix}_geomean_ratio_tail": float(10 ** np.mean(log_ratio[tail])),
          f"{prefix}_fraction_core_bins_weighted_better": float(
              np.mean(ratio[core] < 1)),
          f"{prefix}_fraction_tail_bins_weighted_worse": float(
              np.mean(ratio[tail] > 1)),
          f"{prefix}_fit_ratio_at_mode": float(10 ** fit(0.0))}


def run_fig14(ctx: runner.RunContext) -> Dict:
  """Figs. 4 left and 14: P(x)-weighted / plain along the x-axis, as the
  performance ratio of Eq. 13 (primary) and as a ratio of squared errors."""
  from numpy.polynomial import Polynomial  # pylint: disable=g-import-not-at-top
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  from tfc_perception.evaluation import rd  # pylint: disable=g-import-not-at-top
  cfg = ctx.config
  dist = metrics.source(cfg.source, cfg)
  half = float(cfg.line_extent)
  nb = int(cfg.n_bins)
  bins = np.linspace(-half, half, nb + 1)
  centres = 0.5 * (bins[1:] + bins[:-1])
  t = np.linspace(-half, half, nb * int(cfg.points_per_bin) + 1)[:-1]
  t = t + 0.5 * (t[1] - t[0])
  p_line = dist.prob(np.stack([centres, np.zeros_like(centres)], 1).astype(
      np.float32)).numpy()
  core = np.abs(centres) <= cfg.core_halfwidth
  tail = np.abs(centres) >= cfg.tail_from
  rows, summary, curves = [], {"pairs": []}, []
  for lmbda in cfg.lambdas:
    plain = metrics.get_model(ctx, metrics.model_spec(cfg, lmbda),
                              f"toy2d-mse-λ{lmbda:g}")
    wspec = metrics.model_spec(cfg, lmbda, "density_mse")
    weighted = metrics.get_model(ctx, wspec, f"toy2d-density_mse-λ{lmbda:g}")
    band = (float(cfg.band_halfwidth), int(cfg.band_points))
    e_p, r_p = metrics.binned_errors(plain, t, bins, *band)
    e_w, r_w = metrics.binned_errors(weighted, t, bins, *band)
    floor = float(cfg.error_floor)
    ratios = {"eq13": rd.performance_ratio(e_w + floor, r_w, e_p + floor,
                                           r_p),
              "sse": (e_w + floor) / (e_p + floor)}
    fits = {k: Polynomial.fit(centres, np.log10(v), int(cfg.poly_degree))
            for k, v in ratios.items()}
    fitted = {k: 10 ** f(centres) for k, f in fits.items()}
    for i, c in enumerate(centres):
      rows.append({"lmbda": lmbda, "x1": c, "p_x": p_line[i],
                   "sse_plain": e_p[i], "sse_weighted": e_w[i],
                   "bits_plain": r_p[i], "bits_weighted": r_w[i],
                   "ratio_eq13": ratios["eq13"][i],
                   "ratio_eq13_polyfit": fitted["eq13"][i],
                   "ratio_sse": ratios["sse"][i],
                   "ratio_sse_polyfit": fitted["sse"][i]})
    pair = {"lmbda": lmbda, "lmbda_weighted_effective": wspec["lmbda"],
            **_ratio_stats("eq13", ratios["eq13"], fits["eq13"], core, tail),
            **_ratio_stats("sse", ratios["sse"], fits["sse"], core, tail),
            "mean_bits_plain_core": float(np.mean(r_p[core])),
            "mean_bits_weighted_core": float(np.mean(r_w[core])),
            "mean_bits_plain_tail": float(np.mean(r_p[tail])),
            "mean_bits_weighted_tail": float(np.mean(r_w[tail]))}
    summary["pairs"].append(pair)
    curves.append((lmbda, ratios, fitted))
    ctx.log(f"λ={lmbda:g}: weighted/plain geomean core / tail: Eq. 13 "
            f"{pair['eq13_geomean_ratio_core']:.3f} / "
            f"{pair['eq13_geomean_ratio_tail']:.3f}, SSE "
            f"{pair['sse_geomean_ratio_core']:.3f} / "
            f"{pair['sse_geomean_ratio_tail']:.3f}")
  ctx.write_csv("fig14_ratio.csv", rows)
  for q in ("eq13", "sse"):
    for where in ("core", "tail"):
      key = f"{q}_geomean_ratio_{where}"
      summary[key + "_all_pairs"] = float(10 ** np.mean(
          [np.log10(p[key]) for p in summary["pairs"]]))
  _fig14_figures(ctx, cfg, centres, p_line, curves, summary)
  return summary


def _fig14_figures(ctx, cfg, centres, p_line, curves, summary):
  """fig14.png (fit and raw, both ratios) and fig4_left.png (fits)."""
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  fig, axes = plotting.subplots(1, 2, size=(4.8, 3.6))
  for i, (lmbda, ratios, fitted) in enumerate(curves):
    color = f"C{i}"
    axes[0, 0].plot(centres, fitted["eq13"], "-", color=color, lw=1.4,
                    label=f"λ={lmbda:g}, Eq. 13 (D/R)")
    axes[0, 0].plot(centres, fitted["sse"], "--", color=color, lw=0.9,
                    label=f"λ={lmbda:g}, SSE only")
    axes[0, 1].plot(centres, ratios["eq13"], ".-", color=color, lw=0.6, ms=2,
                    label=f"λ={lmbda:g}, Eq. 13 (D/R)")
    axes[0, 1].plot(centres, ratios["sse"], "x:", color=color, lw=0.5, ms=2,
                    label=f"λ={lmbda:g}, SSE only")
  for ax, title in zip(axes[0], (f"degree-{cfg.poly_degree} polynomial fit",
                                 "raw (binned)")):
    _ratio_axes(ax, title, centres, p_line,
                "weighted / plain: Eq. 13 (solid), SSE (dashed)")
  fig.suptitle("Fig. 14: P(x)-weighted / plain along the x-axis (< 1: "
               "weighted better); primary: Eq. 13, P = distortion / rate",
               fontsize=9)
  numbers = {}
  for p in summary["pairs"]:
    for q, name in (("eq13", "Eq. 13"), ("sse", "SSE")):
      numbers[f"λ={p['lmbda']:g}: {name} geomean ratio "
              f"|x₁|≤{cfg.core_halfwidth} / |x₁|≥{cfg.tail_from}"] = [
                  p[f"{q}_geomean_ratio_core"], p[f"{q}_geomean_ratio_tail"]]
    numbers[f"λ={p['lmbda']:g}: mean bits plain / weighted, core"] = [
        p["mean_bits_plain_core"], p["mean_bits_weighted_core"]]
    numbers[f"λ={p['lmbda']:g}: mean bits plain / weighted, tails"] = [
        p["mean_bits_plain_tail"], p["mean_bits_weighted_tail"]]
  ctx.save_figure(
      fig, "fig14.png",
      caption=("Performance of models trained with P(x)·||·||² relative to "
               "models trained with ||·||² (same nominal λ), for points "
               f"along the x-axis (x₂ within ±{cfg.band_halfwidth}) "
               f"averaged in {cfg.n_bins} bins of x₁. Solid (primary): the "
               "ratio of Eq. 13, P1/P0 with P = mean squared error / mean "
               "bits in the bin; dashed: the ratio of the squared errors "
               f"alone. Left a degree-{cfg.poly_degree} polynomial fit (of "
               "log10 ratio, numpy Polynomial.fit), right the raw values. "
               "Green: p(x₁, 0). Paper Fig. 14."),
      numbers=numbers, table="fig14_ratio.csv")
  fig, axes = plotting.subplots(1, 1, size=(4.8, 3.6))
  ax = axes[0, 0]
  for i, (lmbda, _, fitted) in enumerate(curves):
    ax.plot(centres, fitted["eq13"], "-", color=f"C{i}", lw=1.4,
            label=f"λ={lmbda:g}, Eq. 13")
    ax.plot(centres, fitted["sse"], "--", color=f"C{i}", lw=0.8,
            label=f"λ={lmbda:g}, SSE only")
  _ratio_axes(ax, "Fig. 4 left: weighted / plain (polynomial fits)", centres,
              p_line, "weighted / plain: Eq. 13 (solid), SSE (dashed)")
  ctx.save_figure(fig, "fig4_left.png",
                  caption=("Fig. 4 left: the polynomial fits of fig14.png; "
                           "solid the Eq. 13 ratio (primary), dashed the SSE "
                           "ratio."),
                  numbers={f"{name} geomean ratio {where} (all pairs)":
                           summary[f"{q}_geomean_ratio_{where}_all_pairs"]
                           for q, name in (("eq13", "Eq. 13"), ("sse", "SSE"))
                           for where in ("core", "tail")},
                  table="fig14_ratio.csv")


def _ratio_axes(ax, title, centres, p_line, ylabel):
  ax.axhline(1.0, color="k", lw=0.6)
  ax.set_yscale("log")
  ax.set_xlabel("x₁ along the x-axis, source units")
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=6)
  ax2 = ax.twinx()
  ax2.fill_between(centres, p_line, color="tab:green", alpha=0.12)
  ax2.set_ylabel("p(x₁, 0)", color="tab:green")
  ax2.set_ylim(0, None)
