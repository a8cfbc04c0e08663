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
def run_fig2(ctx: runner.RunContext) -> Dict:
  """Fig. 2 (Obs. 2-4): induced-distance correlations with p(x1) vs rate."""
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  cfg = ctx.config
  dist = metrics.source(cfg.source, cfg)
  x_val = metrics.points(cfg.source, cfg, cfg.n_val, cfg.eval_seed)
  x1 = metrics.points(cfg.source, cfg, cfg.n_pairs, cfg.eval_seed + 1)
  rng = np.random.default_rng(cfg.eval_seed)
  x2 = (x1 + cfg.perturbation_std * rng.standard_normal(x1.shape)
        ).astype(np.float32)
  p1 = dist.prob(x1).numpy()
  rows = []
  for lmbda in cfg.lambdas:
    spec = metrics.model_spec(cfg, lmbda)
    model = metrics.get_model(ctx, spec, f"toy2d-mse-λ{lmbda:g}")
    row = {"lmbda": lmbda, **metrics.evaluate(model, x_val),
           **metrics.induced_correlations(model, x1, x2, p1)}
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
  distances, sensitivities = metrics.DISTANCES, metrics.SENSITIVITIES
  plotting.line_panel(axes[0, 0], rate,
                      [[r[f"rho_{k}"] for r in rows] for k in distances],
                      [labels[k] for k in distances], "rate (bits/sample)",
                      "Spearman ρ(D, p(x₁))", "distances", styles=["o-"] * 4)
  plotting.line_panel(axes[0, 1], rate,
                      [[r[f"rho_{k}"] for r in rows] for k in sensitivities],
                      [labels[k] for k in sensitivities], "rate (bits/sample)",
                      "Spearman ρ(D/||Δx||, p(x₁))", "sensitivities",
                      styles=["s-"] * 2)
  for ax in axes[0]:
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylim(-1, 1)
  fig.suptitle(f"Fig. 2: {len(rows)} models, {cfg.n_pairs} pairs, "
               f"Δx ~ N(0, {cfg.perturbation_std}² I)", fontsize=9)
  low, high = rows[0], rows[-1]
  summary = {
      "n_models": len(rows), "rates_bits": rate,
      "lambdas": [r["lmbda"] for r in rows],
      **{f"rho_{k}_lowest_rate": low[f"rho_{k}"]
         for k in metrics.DISTANCES + metrics.SENSITIVITIES},
      **{f"rho_{k}_highest_rate": high[f"rho_{k}"]
         for k in metrics.DISTANCES + metrics.SENSITIVITIES},
      **{f"rho_{k}_mean": float(np.nanmean([r[f"rho_{k}"] for r in rows]))
         for k in metrics.DISTANCES + metrics.SENSITIVITIES},
      "models": rows}
  ctx.save_figure(
      fig, "fig2.png",
      caption=("Spearman correlation between each induced distance (left) or "
               "sensitivity (right) and p(x₁), one point per model (λ), "
               "against the model's test rate. Paper Fig. 2 (Obs. 2-4)."),
      numbers={"rates (bits/sample)": rate,
               **{f"ρ({labels[k]}, p)": [r[f"rho_{k}"] for r in rows]
                  for k in metrics.DISTANCES + metrics.SENSITIVITIES}},
      table="fig2_correlations.csv")
  return summary


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
def run_fig13(ctx: runner.RunContext) -> Dict:
  """Fig. 13: uniform source, plain vs Student-t-weighted distortion."""
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  cfg = ctx.config
  uniform = metrics.source("uniform2d", cfg)
  student = metrics.source(cfg.weight, cfg)
  x_val = metrics.points("uniform2d", cfg, cfg.n_val, cfg.eval_seed)
  fig, axes = plotting.subplots(1, 2, size=(3.8, 3.8))
  rows, code_rows, summary = [], [], {}
  for j, distortion in enumerate(("mse", "density_mse")):
    spec = metrics.model_spec(cfg, cfg.lmbda, distortion, source="uniform2d",
                      weight=cfg.weight)
    name = "plain" if distortion == "mse" else "student_t_weighted"
    model = metrics.get_model(ctx, spec,
                              f"toy2d-uniform-{name}-λ{cfg.lmbda:g}")
    ev = metrics.evaluate(model, x_val)
    inner, outer = metrics.region_sse(model, x_val, cfg.core_radius)
    qmap = metrics.quantisation_map(model, cfg.extent, cfg.grid, uniform)
    in_core = np.linalg.norm(qmap["codes"], axis=1) <= cfg.core_radius
    used = qmap["mass"] > 0
    core_area = math.pi * cfg.core_radius ** 2
    # The uniform density is 1/area inside its box (the origin is inside).
    box_area = 1.0 / float(uniform.prob(np.zeros([1, 2], np.float32))[0])
    row = {"model": name, "lmbda_effective": spec["lmbda"], **ev,
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
                 f"{'left) ||x − x̂||²' if j == 0 else 'right) P_t(x)·||x − x̂||²'}"
                 f" on uniform data\n{ev['bits_per_sample']:.2f} bits, "
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

def run_fig14(ctx: runner.RunContext) -> Dict:
  """Figs. 4 left and 14: P(x)-weighted / plain along the x-axis."""
  from numpy.polynomial import Polynomial  # pylint: disable=g-import-not-at-top
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
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
    ratio = (e_w + floor) / (e_p + floor)
    log_ratio = np.log10(ratio)
    fit = Polynomial.fit(centres, log_ratio, int(cfg.poly_degree))
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
  for ax, title in zip(axes[0], (f"degree-{cfg.poly_degree} polynomial fit",
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
  numbers = {f"λ={p['lmbda']:g}: geomean ratio |x₁|≤{cfg.core_halfwidth} /"
             f" |x₁|≥{cfg.tail_from}": [p["geomean_ratio_core"],
                                          p["geomean_ratio_tail"]]
             for p in summary["pairs"]}
  ctx.save_figure(
      fig, "fig14.png",
      caption=("Ratio of the squared error of models trained with "
               "P(x)·||·||² over models trained with ||·||² (same nominal λ), "
               f"for points along the x-axis (x₂ within ±{cfg.band_halfwidth}"
               f") averaged in {nb} bins of x₁; left a "
               f"degree-{cfg.poly_degree} polynomial fit (of log10 ratio, "
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


