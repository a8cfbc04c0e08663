"""Observation 6 on images, contrast (Eq. 14, Figs. 4 right and 16).

Kodak images are changed in contrast by α (Eq. 14; the exact form is not in
the text available to us, so this is ASSUMED, as in docs/reproduce-images.md):

  x_α = clip(round(μ + α (x − μ)), 0, 255),   μ = the image's mean value

(α < 1 lowers, α > 1 raises contrast; α = 1 is the natural image.) Each x_α
is compressed for real (range coding) by pairs of models of the same rate
level, one trained with D = 1 − MS-SSIM and one with D = MSE in Eq. 3. With

  P = D / R      (D = MSE(x_α, x̂_α) on the 0-255 scale, R in bits per pixel)

the performance ratio of Eq. 13 is P1 / P0, P1 of the MS-SSIM model and P0
of the MSE model (we also report it with D = 1 − MS-SSIM). P is computed
from the means over images of D and R at each α.

Models: the pretrained bmshj2018-factorized-{mse,msssim}-Q models of
tensorflow-compression (the paper's) when `models` is "pretrained", or
"auto" and they are already in the local cache (tfc_perception.pretrained,
offline: nothing is downloaded by "auto"); otherwise ("trained", or "auto"
with an empty cache) the project's own small FactorizedPrior pairs, trained
on random crops of the Kodak images that are NOT test images (see
`test_images`), with the tfci λ of each quality level.

Outputs: contrast.csv (per model, α, image: bpp, MSE, PSNR, MS-SSIM),
ratio.csv (per pair and α: P0, P1, P1/P0), fig4_contrast_ratio.png,
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
    images: the Kodak folder (or "shared:kodak").
    test_images: numbers of the Kodak test images (the others train the
      fallback models).
    crop: central crop of the test images (px), or None for whole images.
    alphas: contrast factors (must include 1.0).
    models: "pretrained", "auto" or "trained" (see _images.factorized_family).
    qualities: quality levels 1..8 of the model pairs.
    train: training of the fallback models.
    allow_download: "pretrained" may download tfc's models.
  """
  images: str
  test_images: Tuple[int, ...]
  crop: Optional[int]
  alphas: Tuple[float, ...]
  models: str
  qualities: Tuple[int, ...]
  train: _images.ImageTrain
  allow_download: bool = False


def run(ctx: runner.RunContext) -> Dict:
  """Runs the contrast experiment (see module docstring)."""
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  cfg = ctx.config
  alphas = [float(a) for a in cfg.alphas]
  if 1.0 not in alphas:
    raise ValueError(f"alphas must include 1.0 (the natural image), got "
                     f"{alphas}.")
  _, test_files = _images.kodak_split(cfg.images, cfg.test_images)
  used, family = _images.factorized_family(ctx, cfg)
  pairs = [(q, family[("mse", q)], family[("msssim", q)])
           for q in sorted({q for _, q in family})]
  ctx.log(f"models: {used}, qualities {[q for q, _, _ in pairs]}")

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

  ratio_rows = []
  for q, _, _ in pairs:
    for alpha in alphas:
      sel = {m: [r for r in rows if r["quality"] == q and r["alpha"] == alpha
                 and r["trained_for"] == m] for m in ("mse", "msssim")}
      agg = {}
      for m, rs in sel.items():
        agg[m] = {"bpp": np.mean([r["bpp"] for r in rs]),
                  "mse": np.mean([r["mse"] for r in rs]),
                  "dssim": np.mean([1 - r["msssim"] for r in rs])}
      p0 = agg["mse"]["mse"] / agg["mse"]["bpp"]
      p1 = agg["msssim"]["mse"] / agg["msssim"]["bpp"]
      p0s = agg["mse"]["dssim"] / agg["mse"]["bpp"]
      p1s = agg["msssim"]["dssim"] / agg["msssim"]["bpp"]
      ratio_rows.append({
          "quality": q, "alpha": alpha,
          "bpp_mse_model": agg["mse"]["bpp"],
          "bpp_msssim_model": agg["msssim"]["bpp"],
          "mse_mse_model": agg["mse"]["mse"],
          "mse_msssim_model": agg["msssim"]["mse"],
          "P0_mse_per_bpp": p0, "P1_mse_per_bpp": p1, "ratio_P1_P0": p1 / p0,
          "ratio_P1_P0_dssim": p1s / p0s})
  ctx.write_csv("ratio.csv", ratio_rows)

  fig, axes = plotting.subplots(1, 2, size=(4.3, 3.5))
  for j, (key, ylabel) in enumerate((
      ("ratio_P1_P0", "P1/P0 with D = MSE (unitless)"),
      ("ratio_P1_P0_dssim", "P1/P0 with D = 1 − MS-SSIM (unitless)"))):
    ax = axes[0, j]
    for q, _, _ in pairs:
      rr = [r for r in ratio_rows if r["quality"] == q]
      ax.plot([r["alpha"] for r in rr], [r[key] for r in rr], "o-", ms=4,
              label=f"quality {q}")
    ax.axvline(1.0, color="k", lw=0.6, ls=":")
    ax.axhline(1.0, color="k", lw=0.6, ls="--")
    ax.set_xlabel("contrast factor α (Eq. 14)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  fig.suptitle(f"MS-SSIM-trained / MSE-trained performance vs contrast "
               f"({used})", fontsize=9)
  numbers = {f"q{r['quality']} α={r['alpha']:g}: P1/P0 (MSE), (1−MS-SSIM)":
             [r["ratio_P1_P0"], r["ratio_P1_P0_dssim"]] for r in ratio_rows}
  ctx.save_figure(
      fig, "fig4_contrast_ratio.png",
      caption=("Ratio P1/P0 (Eq. 13), P = distortion / rate, of MS-SSIM-"
               "trained over MSE-trained factorized-prior models, on Kodak "
               f"test images with contrast scaled by α; models: {used}. "
               "Paper Fig. 4 right."),
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
  at1 = {f"quality_{r['quality']}": r["ratio_P1_P0"] for r in ratio_rows
         if r["alpha"] == 1.0}
  return {"models": used, "qualities": [q for q, _, _ in pairs],
          "alphas": alphas, "num_test_images": len(imgs),
          "ratio_P1_P0_at_alpha_1": at1,
          "ratio_P1_P0": {f"quality_{r['quality']}_alpha_{r['alpha']:g}":
                          r["ratio_P1_P0"] for r in ratio_rows},
          "ratio_P1_P0_dssim": {
              f"quality_{r['quality']}_alpha_{r['alpha']:g}":
              r["ratio_P1_P0_dssim"] for r in ratio_rows}}


_KODAK_TEST = tuple(range(1, 13))

CONFIGS = {
    "tiny": Config(
        images="shared:kodak", test_images=(1,), crop=64,
        alphas=(0.5, 1.0, 1.5), models="trained", qualities=(3,),
        train=_images.ImageTrain(num_filters=8, latent_channels=8,
                                 patchsize=176, batch_size=1, steps=2,
                                 learning_rate=1e-3, run_eagerly=True)),
    "quick": Config(
        images="shared:kodak", test_images=_KODAK_TEST, crop=256,
        alphas=(0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0), models="auto",
        qualities=(1, 8), train=_images.QUICK_FAMILY_TRAIN),
    "paper": Config(
        images="shared:kodak", test_images=tuple(range(1, 25)), crop=None,
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
                 "(Eq. 14) (paper Figs. 4 right, 16)."),
    paper_figures=("Fig. 4 right", "Fig. 16"), groups=("images",))
