"""Observation 6 on images, scarce data (Sec. 5.2, Figs. 5, 18, 19).

Soft-quantisation autoencoders (tfc_perception.models.softquant, Fig. 17;
rate bounded by construction, max_bpp = M·log2(L)/256) are trained with D =
MSE, 1 − MS-SSIM and NLPD in Eq. 3 (the rate term is constant, so the loss is
D) on two kinds of data:

  "uniform_noise":  i.i.d. uniform 8-bit noise images (no natural-image
                    samples at all: the scarce-data extreme, Fig. 19);
  "natural":        random crops of natural images (`train_images`;
                    OpenImages in the paper, Fig. 18; the quick config uses
                    Kodak kodim13-24 as a substitute, and says so).

for each rate bound in `max_bpp` (L = 2^(256·max_bpp/M) centres). Each model
then compresses the Kodak test images for real (range coding): the decoded
images (Figs. 5, 18, 19) and an RD table of bpp, PSNR, MS-SSIM and NLPD.
The paper's claim: with uniform-noise training, perceptual losses give much
better natural-image reconstructions than MSE (the distance acts as a
regulariser that carries natural-image statistics); with natural training
data the difference is small.

Models of one rate bound do not code at the same rate, so the losses are
also compared at common rates: rate_matched.csv reads every loss's curve
(linear in log-rate, never extrapolated) at the actual rates of the MSE
models (`rate_matched_table`).

Outputs: rd.csv (per model: mean bpp, PSNR, MS-SSIM, NLPD over test images),
rate_matched.csv, per_image.csv, fig5_uniform_noise.png, fig18_natural.png,
fig19_uniform_noise.png (decoded first test image), fig_rd.png.
"""

import dataclasses
import os
from typing import Dict, List, Optional, Tuple

import numpy as np

from tfc_perception._typed import Checked
from tfc_perception.distances import registry
from tfc_perception.experiments import _images
from tfc_perception.experiments import runner

__all__ = ["num_centers_for", "run"]

_DATA = ("uniform_noise", "natural")


def _label(distortion: str) -> str:
  """The registry's label of a training distortion ("1 − MS-SSIM" for the
  similarity, whose loss it is)."""
  metric = registry.get(distortion)
  return metric.label if metric.lower_is_better else f"1 − {metric.label}"


def num_centers_for(max_bpp: float, latent_channels: int) -> int:
  """L such that M·log2(L)/256 = max_bpp (the bound of Sec. 5.2).

  Raises:
    ValueError: when no integer L >= 2 gives exactly `max_bpp`.
  """
  bits = 256.0 * float(max_bpp) / int(latent_channels)
  centers = 2.0 ** bits
  if bits <= 0 or abs(centers - round(centers)) > 1e-6 or round(centers) < 2:
    raise ValueError(
        f"max_bpp {max_bpp} with M = {latent_channels} latent channels needs "
        f"L = 2^{bits:g} centres, not an integer >= 2; choose max_bpp = "
        f"M·log2(L)/256 (e.g. {latent_channels / 256:g} for L = 2).")
  return int(round(centers))


@dataclasses.dataclass(frozen=True)
class Config(Checked):
  """The scarce-data experiment.

  Attributes:
    test_images: the test images (folder, glob, file or a list of them;
      Kodak in the paper).
    train_images: the "natural" training images; None: the paper's
      (`_images.PAPER_TRAIN_DATA`), replaced by Kodak kodim13-24 only where
      allow_substitute_data (quick, tiny; the paper preset refuses).
    allow_substitute_data: see train_images.
    crop: central crop of the test images (px), or None.
    data: training data kinds ("uniform_noise", "natural").
    distortions: training distortions (image metrics of the registry).
    max_bpp: rate bounds M·log2(L)/256 (one model per bound).
    train: training of the soft-quantisation models.
  """
  test_images: _images.ImageSpec
  train_images: Optional[_images.ImageSpec]
  allow_substitute_data: bool
  crop: Optional[int]
  data: Tuple[str, ...]
  distortions: Tuple[str, ...]
  max_bpp: Tuple[float, ...]
  train: _images.ImageTrain


def run(ctx: runner.RunContext) -> Dict:
  """Runs the scarce-data experiment (see module docstring)."""
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  cfg = ctx.config
  m = cfg.train.latent_channels
  bounds = [float(b) for b in cfg.max_bpp]
  for loss in cfg.distortions:
    registry.get(loss, "distortion").check_applies(vectors=False,
                                                   density=False)
  for d in cfg.data:
    if d not in _DATA:
      raise ValueError(f"unknown data {d!r}; accepted: {', '.join(_DATA)}.")
  train_files, test_files, data_used = _images.train_test_files(
      ctx, cfg.train_images, cfg.test_images, cfg.allow_substitute_data,
      need_train="natural" in cfg.data)
  tests = _images.load_test_images(test_files, cfg.crop)

  rows: List[dict] = []
  per_image: List[dict] = []
  decoded = {}
  for data in cfg.data:
    for bpp in bounds:
      centers = num_centers_for(bpp, m)
      for loss in cfg.distortions:
        # The quantisation mode is part of the spec (and so of the cache
        # key): models cached before straight-through became the default
        # were trained with the pure soft forward pass.
        spec = _images.codec_spec(
            cfg.train, model="softquant", distortion=loss, lmbda=None,
            num_centers=centers, quantization="straight_through",
            data="uniform_noise" if data == "uniform_noise" else "files")
        key = dict(spec, kind="image_codec", train_files=(
            ctx.files_key(train_files) if data == "natural" else []))
        label = f"softquant-{data}-{loss}-{bpp:g}bpp"
        model = ctx.cached_model(
            key, lambda train_dir, spec=spec, data=data:
            _images.train_compression_model(
                spec, train_files if data == "natural" else None, ctx.log,
                train_dir, progress=ctx.verbose),
            label=label)
        metrics = []
        for f, x in zip(test_files, tests):
          r = _images.codec_metrics(model, x)
          decoded.setdefault((data, bpp, loss), r["x_hat"])
          r.pop("x_hat")
          metrics.append(r)
          per_image.append({"data": data, "max_bpp": bpp, "distortion": loss,
                            "image": os.path.basename(f), **r})
        row = {"data": data, "distortion": loss, "max_bpp": bpp,
               "num_centers": centers}
        for k in ("bpp", "psnr", "msssim", "nlpd", "mse"):
          row[k] = float(np.mean([r[k] for r in metrics]))
        rows.append(row)
        ctx.log(f"{label}: bpp {row['bpp']:.3f}, PSNR {row['psnr']:.2f} dB, "
                f"MS-SSIM {row['msssim']:.4f}, NLPD {row['nlpd']:.4f}")
  ctx.write_csv("rd.csv", rows)
  ctx.write_csv("per_image.csv", per_image)
  matched = rate_matched_table(rows, cfg.data, cfg.distortions)
  ctx.write_csv("rate_matched.csv", matched)

  first = os.path.basename(test_files[0])
  for data, fname, fig_label in (
      ("natural", "fig18_natural.png", "Fig. 18"),
      ("uniform_noise", "fig19_uniform_noise.png", "Fig. 19")):
    if data not in cfg.data:
      continue
    _grid(ctx, plotting, tests[0], decoded, data, bounds, cfg.distortions,
          rows, fname,
          f"{first} decoded by soft-quantisation models trained on "
          f"{'natural images (Kodak training split)' if data == 'natural' else 'uniform noise'}"
          f", one row per max bpp, one column per training loss. Paper "
          f"{fig_label}.")
  if "uniform_noise" in cfg.data:
    _grid(ctx, plotting, tests[0], decoded, "uniform_noise", bounds[:1],
          cfg.distortions, rows, "fig5_uniform_noise.png",
          f"{first} at ≤ {bounds[0]:g} bpp from models trained on uniform "
          "noise with Euclidean vs perceptual losses. Paper Fig. 5.")

  fig, axes = plotting.subplots(1, 3, size=(3.4, 3.0))
  for j, (k, ylabel) in enumerate((("psnr", "PSNR (dB)"),
                                   ("msssim", "MS-SSIM (unitless)"),
                                   ("nlpd", "NLPD (unitless, lower is better)"))):
    ax = axes[0, j]
    for data in cfg.data:
      for loss in cfg.distortions:
        rr = [r for r in rows if r["data"] == data and r["distortion"] == loss]
        ax.plot([r["bpp"] for r in rr], [r[k] for r in rr],
                "o-" if data == "natural" else "s--", ms=4,
                label=f"{data}, {_label(loss)}")
    ax.set_xlabel("rate (bits per pixel, range coded)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
  axes[0, 0].legend(fontsize=6)
  ctx.save_figure(
      fig, "fig_rd.png",
      caption=("Mean over Kodak test images of PSNR, MS-SSIM and NLPD "
               "against the actual rate, per training data and loss "
               "(the RD table of Sec. 5.2)."),
      numbers={f"{r['data']} {r['distortion']} ≤{r['max_bpp']:g} bpp: bpp, "
               "PSNR, MS-SSIM, NLPD": [r["bpp"], r["psnr"], r["msssim"],
                                      r["nlpd"]] for r in rows},
      table="rd.csv")
  return {"num_test_images": len(tests), "max_bpp": bounds,
          "data": data_used,
          "rd": {f"{r['data']}/{r['distortion']}/{r['max_bpp']:g}":
                 {k: r[k] for k in ("bpp", "psnr", "msssim", "nlpd")}
                 for r in rows},
          "rate_matched": {
              f"{r['data']}/at_{r['reference']}_{r['rate']:.3f}bpp/"
              f"{r['distortion']}": {
                  k: (None if not np.isfinite(r[k]) else r[k]) for k in
                  ("rate", "psnr", "msssim", "nlpd", "rate_lo", "rate_hi")}
              for r in matched}}


def rate_matched_table(rows: List[dict], data_kinds, distortions
                       ) -> List[dict]:
  """rd.csv's rows read at common rates (`evaluation.rate_match`).

  For each kind of training data, the reference family is the first
  distortion (MSE in the presets: the Euclidean baseline); every loss's
  PSNR, MS-SSIM and NLPD are interpolated, linearly in log-rate between its
  two models that bracket the rate, at the actual rate of each reference
  model. NaN where that rate is outside a family's rates (no
  extrapolation).

  Returns:
    One dict per (data, reference model, distortion): data, reference (its
    max_bpp), rate (the reference model's bpp), distortion, psnr, msssim,
    nlpd, rate_lo / rate_hi and max_bpp_lo / max_bpp_hi (the models it was
    interpolated between), matched.
  """
  from tfc_perception.evaluation import rate_match  # pylint: disable=g-import-not-at-top
  out = []
  for data in data_kinds:
    curves = {}
    for loss in distortions:
      rr = [r for r in rows if r["data"] == data and r["distortion"] == loss]
      curves[loss] = {"label": [r["max_bpp"] for r in rr],
                      "rate": [r["bpp"] for r in rr],
                      **{k: [r[k] for r in rr] for k in ("psnr", "msssim",
                                                         "nlpd")}}
    for r in rate_match.match_to_reference(distortions[0], curves,
                                           ("psnr", "msssim", "nlpd")):
      out.append({"data": data, "reference": r["reference"],
                  "rate": r["rate"], "distortion": r["family"],
                  "psnr": r["psnr"], "msssim": r["msssim"], "nlpd": r["nlpd"],
                  "rate_lo": r["rate_lo"], "rate_hi": r["rate_hi"],
                  "max_bpp_lo": r["label_lo"], "max_bpp_hi": r["label_hi"],
                  "matched": r["matched"]})
  return out


def _grid(ctx, plotting, original, decoded, data, bounds, losses, rows,
          fname, caption):
  fig, axes = plotting.subplots(len(bounds), len(losses) + 1, size=(2.3, 2.3))
  numbers = {}
  for i, bpp in enumerate(bounds):
    axes[i, 0].imshow(original)
    axes[i, 0].set_title("original", fontsize=8)
    axes[i, 0].axis("off")
    for j, loss in enumerate(losses):
      r = [r for r in rows if r["data"] == data and r["max_bpp"] == bpp
           and r["distortion"] == loss][0]
      ax = axes[i, j + 1]
      ax.imshow(decoded[(data, bpp, loss)])
      ax.set_title(f"{_label(loss)}, ≤{bpp:g} bpp\nPSNR {r['psnr']:.1f} "
                   f"dB, MS-SSIM {r['msssim']:.3f}", fontsize=7)
      ax.axis("off")
      numbers[f"{loss} ≤{bpp:g} bpp: mean PSNR, MS-SSIM, NLPD"] = [
          r["psnr"], r["msssim"], r["nlpd"]]
  ctx.save_figure(fig, fname, caption=caption, numbers=numbers,
                  table="rd.csv")


# Both readings of NLPD as a loss are trained and reported side by side: the
# grey-level one of the authors' code (laparra2016 on rgb2gray) and the
# per-channel one (laparra2016 on R, G and B). The evaluation column "nlpd"
# is the grey-level NLPD for every model.
_LOSSES = ("mse", "msssim", "nlpd", "nlpd_rgb")

CONFIGS = {
    "tiny": Config(
        test_images="shared:kodak/kodim01.png", train_images=None,
        allow_substitute_data=True, crop=64, data=_DATA,
        distortions=("mse", "nlpd"), max_bpp=(0.125, 0.25),
        train=_images.ImageTrain(num_filters=8, latent_channels=16,
                                 patchsize=176, batch_size=1, steps=1,
                                 learning_rate=1e-3, run_eagerly=True)),
    # Three rate bounds, so that every loss has a curve that can be read at
    # the MSE models' actual rates (rate_matched.csv).
    "quick": Config(
        test_images=_images.KODAK_TEST, train_images=None,
        allow_substitute_data=True, crop=256,
        data=_DATA, distortions=_LOSSES, max_bpp=(0.25, 0.5, 0.75),
        train=_images.ImageTrain(num_filters=32, latent_channels=64,
                                 patchsize=176, batch_size=2, steps=150,
                                 learning_rate=1e-3, run_eagerly=False)),
    # The paper's data: natural training crops that the user gives with
    # --set train_images=PATH (refused otherwise, unless
    # --allow_substitute_data), tested on the 24 Kodak images.
    "paper": Config(
        test_images="shared:kodak", train_images=None,
        allow_substitute_data=False, crop=None,
        data=_DATA, distortions=_LOSSES,
        max_bpp=(0.25, 0.5, 0.75, 1.0),
        train=_images.ImageTrain(num_filters=128, latent_channels=64,
                                 patchsize=256, batch_size=8, steps=100000,
                                 learning_rate=1e-4, run_eagerly=False)),
}

runner.register_experiment(
    "scarce_data", run, configs=CONFIGS,
    description=("Observation 6 on images, scarce data: soft-quantisation "
                 "autoencoders trained on uniform noise vs natural images "
                 "with MSE, MS-SSIM and NLPD at several max bpp; decoded "
                 "Kodak images and an RD table (paper Sec. 5.2, Figs. 5, 18, "
                 "19)."),
    paper_figures=("Fig. 5", "Fig. 18", "Fig. 19"), groups=("images",))
