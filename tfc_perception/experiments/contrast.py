"""Observation 6 on images, contrast (Eq. 14, Figs. 4 right and 16).

Kodak images are changed in contrast by α (Eq. 14; the exact form is not in
the text available to us, so this is ASSUMED, as in docs/reproduce-images.md):

  x_α = clip(round(μ + α (x − μ)), 0, 255),   μ = the image's mean value

(α < 1 lowers, α > 1 raises contrast; α = 1 is the natural image.) Each x_α
is compressed for real (range coding) by two families of models, one trained
with D = 1 − MS-SSIM and one with D = MSE in Eq. 3, at several quality
levels. With

  P = D / R      (D = MSE(x_α, x̂_α) on the 0-255 scale, R in bits per pixel)

the performance ratio of Eq. 13 is P1 / P0, P1 of the MS-SSIM family and P0
of the MSE family (we also report it with D = 1 − MS-SSIM). P is computed
from the means over images of D and R at each α.

Models of one quality level do not code at the same rate, so the primary
ratio is RATE-MATCHED (`ratio_table`): at each α, the MS-SSIM family's D is
interpolated (linear in log-rate, `evaluation.rate_match`) to the actual
rate of each MSE model, and P1/P0 = D1/D0 at that common rate; it is
missing where that rate is outside the MS-SSIM models' rates. The ratio of
the two models of one quality level, each at its own rate, is kept as a
secondary, labelled "not rate-matched".

Models: the pretrained bmshj2018-factorized-{mse,msssim}-Q models of
tensorflow-compression (the paper's) when `models` is "pretrained", or
"auto" and they are already in the local cache (tfc_perception.pretrained,
offline: nothing is downloaded by "auto"); otherwise ("trained", or "auto"
with an empty cache) the project's own small FactorizedPrior pairs, trained
on random crops of `train_images` with the tfci λ of each quality level.
The paper's test images are Kodak; any folder or glob can be given
(`test_images`, `train_images`). Trained models need training images: the
paper preset refuses to put Kodak in place of the paper's OpenImages
unless allow_substitute_data is set (bin/reproduce --allow_substitute_data);
results.json "data" says which data was used.

Outputs: contrast.csv (per model, α, image: bpp, MSE, PSNR, MS-SSIM),
ratio.csv (per reference quality and α: the rate-matched ratios with the
rates behind them, and the same-quality ratios), fig4_contrast_ratio.png,
fig16_contrast_examples.png.
"""

import dataclasses
import os
from typing import Dict, List, Optional, Tuple

import numpy as np

from tfc_perception._typed import Checked
from tfc_perception.experiments import _images
from tfc_perception.experiments import runner

__all__ = ["change_contrast", "run"]


def change_contrast(x: np.ndarray, alpha: float) -> np.ndarray:
  """Eq. 14 (assumed form): x_α = clip(round(μ + α (x − μ)), 0, 255).

  Args:
    x: uint8 image [H, W, C] (or a batch [N, H, W, C], each image with its
      own mean).
    alpha: contrast factor (>= 0).

  Returns:
    uint8 array like x.

  Raises:
    ValueError: x not uint8, or alpha negative / not finite.
  """
  x = np.asarray(x)
  if x.dtype != np.uint8 or x.ndim not in (3, 4):
    raise ValueError(f"x must be a uint8 image [H, W, C] or batch [N, H, W, "
                     f"C]; got dtype {x.dtype}, shape {x.shape}.")
  if not np.isfinite(alpha) or alpha < 0:
    raise ValueError(f"alpha must be finite and >= 0, got {alpha}.")
  axes = (-3, -2, -1)
  xf = x.astype(np.float64)
  mu = xf.mean(axis=axes, keepdims=True)
  return np.clip(np.round(mu + alpha * (xf - mu)), 0, 255).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class Config(Checked):
  """The contrast experiment.

  Attributes:
    test_images: the test images (folder, glob, file or a list of them;
      "shared:..." resolves under the shared data folder). Kodak in the
      paper.
    train_images: training images of the fallback models (trained only when
      the pretrained family is not used); None: the paper's training data
      (`_images.PAPER_TRAIN_DATA`), which needs allow_substitute_data to
      run on the Kodak substitute.
    allow_substitute_data: whether train_images None may be replaced by
      Kodak kodim13-24 (quick and tiny: yes; paper: no, refused).
    crop: central crop of the test images (px), or None for whole images.
    alphas: contrast factors (must include 1.0).
    models: "pretrained", "auto" or "trained" (see _images.factorized_family).
    qualities: quality levels 1..8 of the model pairs.
    train: training of the fallback models.
    allow_download: "pretrained" may download tfc's models.
  """
  test_images: _images.ImageSpec
  train_images: Optional[_images.ImageSpec]
  allow_substitute_data: bool
  crop: Optional[int]
  alphas: Tuple[float, ...]
  models: str
  qualities: Tuple[int, ...]
  train: _images.ImageTrain
  allow_download: bool = False


def _mean_points(rows, quality, trained_for, alpha):
  sel = [r for r in rows if r["quality"] == quality and r["alpha"] == alpha
         and r["trained_for"] == trained_for]
  return {"bpp": float(np.mean([r["bpp"] for r in sel])),
          "mse": float(np.mean([r["mse"] for r in sel])),
          "dssim": float(np.mean([1 - r["msssim"] for r in sel]))}


def ratio_table(rows: List[dict], qualities, alphas) -> List[dict]:
  """Eq. 13's P1/P0 per (reference quality, α), from contrast.csv rows.

  P = D / R from the means over test images of D and R. Two readings:

  - rate-matched (primary): at the actual rate of the MSE-trained model of
    quality q, the MS-SSIM-trained family's D is interpolated in log(rate)
    between its two models that bracket that rate
    (`evaluation.rate_match`); R is then common, so P1/P0 = D1/D0. NaN where
    the rate lies outside the MS-SSIM family's rates (no extrapolation).
  - same quality level (secondary): the two models of quality q, each at its
    own rate, P1/P0 = (D1/R1)/(D0/R0) as before; not rate-matched.

  Returns:
    One dict per (q, α) with both ratios (D = MSE and D = 1 − MS-SSIM) and
    the rates behind them.
  """
  from tfc_perception.evaluation import rate_match  # pylint: disable=g-import-not-at-top
  out = []
  for alpha in alphas:
    points = {m: {q: _mean_points(rows, q, m, alpha) for q in qualities}
              for m in ("mse", "msssim")}
    curves = {m: {"label": list(qualities),
                  "rate": [points[m][q]["bpp"] for q in qualities],
                  "mse": [points[m][q]["mse"] for q in qualities],
                  "dssim": [points[m][q]["dssim"] for q in qualities]}
              for m in points}
    matched = {r["reference"]: r for r in rate_match.match_to_reference(
        "mse", curves, ("mse", "dssim")) if r["family"] == "msssim"}
    for q in qualities:
      p0, p1, m = points["mse"][q], points["msssim"][q], matched[q]
      out.append({
          "quality": q, "alpha": alpha,
          "rate_bpp": p0["bpp"],
          "msssim_rate_lo_bpp": m["rate_lo"], "msssim_rate_hi_bpp": m["rate_hi"],
          "msssim_quality_lo": m["label_lo"], "msssim_quality_hi": m["label_hi"],
          "rate_matched": m["matched"],
          "mse_mse_model": p0["mse"], "mse_msssim_family": m["mse"],
          "ratio_rate_matched": m["mse"] / p0["mse"],
          "ratio_rate_matched_dssim": m["dssim"] / p0["dssim"],
          "bpp_mse_model": p0["bpp"], "bpp_msssim_model": p1["bpp"],
          "mse_msssim_model": p1["mse"],
          "P0_mse_per_bpp": p0["mse"] / p0["bpp"],
          "P1_mse_per_bpp": p1["mse"] / p1["bpp"],
          "ratio_P1_P0": (p1["mse"] / p1["bpp"]) / (p0["mse"] / p0["bpp"]),
          "ratio_P1_P0_dssim": ((p1["dssim"] / p1["bpp"])
                                / (p0["dssim"] / p0["bpp"]))})
  return out


def _none_if_nan(v):
  return None if v is None or not np.isfinite(v) else float(v)


def run(ctx: runner.RunContext) -> Dict:
  """Runs the contrast experiment (see module docstring)."""
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  cfg = ctx.config
  alphas = [float(a) for a in cfg.alphas]
  if 1.0 not in alphas:
    raise ValueError(f"alphas must include 1.0 (the natural image), got "
                     f"{alphas}.")
  family = _images.factorized_family(ctx, cfg, test_images=cfg.test_images)
  used, test_files = family.source, family.test_files
  qualities = sorted({q for _, q in family.models})
  pairs = [(q, family.models[("mse", q)], family.models[("msssim", q)])
           for q in qualities]
  ctx.log(f"models: {used}, qualities {qualities}; {len(test_files)} test "
          "images")

  imgs = _images.load_test_images(test_files, cfg.crop)
  rows: List[dict] = []
  for q, m_mse, m_ms in pairs:
    for alpha in alphas:
      for i, (f, im) in enumerate(zip(test_files, imgs)):
        xa = change_contrast(im, alpha)
        for metric, model in (("mse", m_mse), ("msssim", m_ms)):
          r = _images.codec_metrics(model, xa, nlpd_levels=None)
          r.pop("x_hat")
          rows.append({"quality": q, "trained_for": metric, "alpha": alpha,
                       "image": os.path.basename(f), **r})
    ctx.log(f"quality {q}: done {len(alphas)} contrasts x {len(imgs)} images")
  ctx.write_csv("contrast.csv", rows)
  ratio_rows = ratio_table(rows, qualities, alphas)
  ctx.write_csv("ratio.csv", ratio_rows)

  fig, axes = plotting.subplots(1, 2, size=(4.3, 3.5))
  for j, (key, same_q, ylabel) in enumerate((
      ("ratio_rate_matched", "ratio_P1_P0", "P1/P0 with D = MSE (unitless)"),
      ("ratio_rate_matched_dssim", "ratio_P1_P0_dssim",
       "P1/P0 with D = 1 − MS-SSIM (unitless)"))):
    ax = axes[0, j]
    for q in qualities:
      rr = [r for r in ratio_rows if r["quality"] == q]
      line, = ax.plot([r["alpha"] for r in rr], [r[key] for r in rr], "o-",
                      ms=4, label=f"at the rate of MSE model q{q}")
      ax.plot([r["alpha"] for r in rr], [r[same_q] for r in rr], ":",
              lw=0.9, color=line.get_color(),
              label=f"q{q} pair, own rates (not matched)")
    ax.axvline(1.0, color="k", lw=0.6, ls=":")
    ax.axhline(1.0, color="k", lw=0.6, ls="--")
    ax.set_xlabel("contrast factor α (Eq. 14)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
  fig.suptitle(f"MS-SSIM-trained / MSE-trained performance vs contrast "
               f"({used})", fontsize=9)
  numbers = {}
  for r in ratio_rows:
    numbers[f"q{r['quality']} α={r['alpha']:g}: rate-matched P1/P0 (MSE), "
            "(1−MS-SSIM) at bpp; MS-SSIM models' bpp"] = [
                r["ratio_rate_matched"], r["ratio_rate_matched_dssim"],
                r["rate_bpp"], r["msssim_rate_lo_bpp"],
                r["msssim_rate_hi_bpp"]]
  ctx.save_figure(
      fig, "fig4_contrast_ratio.png",
      caption=("Ratio P1/P0 (Eq. 13), P = distortion / rate, of MS-SSIM-"
               "trained over MSE-trained factorized-prior models, on test "
               f"images with contrast scaled by α; models: {used}. Solid: "
               "rate-matched (the MS-SSIM family interpolated in log-rate to "
               "the actual rate of MSE model q at that α; missing where "
               "that rate is outside the MS-SSIM models' rates). Dotted: "
               "the pair of quality q at its own rates. Paper Fig. 4 right."),
      numbers=numbers, table="ratio.csv")

  show = [a for a in alphas]
  fig, axes = plotting.subplots(1, len(show), size=(2.0, 2.0))
  for j, a in enumerate(show):
    ax = axes[0, j]
    ax.imshow(change_contrast(imgs[0], a))
    ax.set_title(f"α = {a:g}", fontsize=8)
    ax.axis("off")
  ctx.save_figure(fig, "fig16_contrast_examples.png",
                  caption=(f"{os.path.basename(test_files[0])} with contrast "
                           "scaled by α (Eq. 14, assumed form). Paper "
                           "Fig. 16."))
  key = lambda r: f"quality_{r['quality']}_alpha_{r['alpha']:g}"  # noqa: E731
  return {
      "models": used, "data": family.data, "qualities": qualities,
      "alphas": alphas, "num_test_images": len(imgs),
      "ratio_rate_matched": {key(r): _none_if_nan(r["ratio_rate_matched"])
                             for r in ratio_rows},
      "ratio_rate_matched_dssim": {
          key(r): _none_if_nan(r["ratio_rate_matched_dssim"])
          for r in ratio_rows},
      "rates_bpp": {key(r): {
          "rate": r["rate_bpp"],
          "msssim_models": [_none_if_nan(r["msssim_rate_lo_bpp"]),
                            _none_if_nan(r["msssim_rate_hi_bpp"])],
          "msssim_qualities": [r["msssim_quality_lo"],
                               r["msssim_quality_hi"]],
          "msssim_model_same_quality": r["bpp_msssim_model"]}
          for r in ratio_rows},
      "ratio_P1_P0_same_quality": {key(r): r["ratio_P1_P0"]
                                   for r in ratio_rows},
      "ratio_P1_P0_dssim_same_quality": {key(r): r["ratio_P1_P0_dssim"]
                                         for r in ratio_rows}}


CONFIGS = {
    "tiny": Config(
        test_images="shared:kodak/kodim01.png", train_images=None,
        allow_substitute_data=True, crop=64,
        alphas=(0.5, 1.0, 1.5), models="trained", qualities=(2, 6),
        train=_images.ImageTrain(num_filters=8, latent_channels=8,
                                 patchsize=176, batch_size=1, steps=2,
                                 learning_rate=1e-3, run_eagerly=True)),
    # Qualities 1, 4 and 8: three models per family, so that each family's
    # curve can be read at the other's rates; iqa's quick config uses the
    # same qualities and training, so it finds all six in the cache.
    "quick": Config(
        test_images=_images.KODAK_TEST, train_images=None,
        allow_substitute_data=True, crop=256,
        alphas=(0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0), models="auto",
        qualities=(1, 4, 8), train=_images.QUICK_FAMILY_TRAIN),
    # tfc's pretrained models on the 24 Kodak images, as in the paper. The
    # train section only matters with --set models=trained, which then needs
    # train_images (or --allow_substitute_data).
    "paper": Config(
        test_images="shared:kodak", train_images=None,
        allow_substitute_data=False, crop=None,
        alphas=(0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0),
        models="pretrained", allow_download=True,
        qualities=(1, 2, 3, 4, 5, 6, 7, 8),
        train=_images.ImageTrain(num_filters=128, latent_channels=192,
                                 patchsize=256, batch_size=8, steps=200000,
                                 learning_rate=1e-4, run_eagerly=False)),
}

runner.register_experiment(
    "contrast", run, configs=CONFIGS,
    description=("Observation 6 on images: ratio P1/P0 (Eq. 13, P = "
                 "distortion/rate) of MS-SSIM- over MSE-trained factorized-"
                 "prior models on Kodak images with contrast scaled by α "
                 "(Eq. 14), rate-matched (paper Figs. 4 right, 16)."),
    paper_figures=("Fig. 4 right", "Fig. 16"), groups=("images",))
