"""Fig. 20: the gain of NLPD over MSE as the training loss, measured in MSE.

Pairs of soft-quantisation autoencoders (Fig. 17; rate bounded by
construction, so both members of a pair have the same maximum rate; the
paper's appendix does not name the model of Fig. 20, so this is ASSUMED) are
trained with D = MSE and D = NLPD in Eq. 3, with batch size 1 and a small
learning rate, on random crops of the Kodak images that are not test
images. Both members of a pair share the seed, hence the initial weights and
the order of the training crops. Every `eval_every` steps both reconstruct
the Kodak test images (test-time hard quantisation) and we record

  gain = MSE(x, x̂_MSE) − MSE(x, x̂_NLPD)       (0-255 scale; > 0: the NLPD-
                                                trained model has the lower
                                                test MSE)

averaged over test images. Mean and standard deviation over `seeds`
(5 in the paper) are plotted against the training step; the dashed line is
equal expected MSE (gain 0).

Outputs: curves.csv (seed, step, test MSE of each model, gain), gain.csv
(step, mean, std), fig20_nlpd_vs_mse.png.

`nlpd_distortion` selects the NLPD of the NLPD-trained member: "nlpd"
(laparra2016 on the rgb2gray luminance: colour is not constrained),
"nlpd_rgb" (laparra2016 on each RGB channel; the quick and paper configs) or
"nlpd2017" (laparra2017, per channel); see tfc_perception.models.base. With
the grey-level "nlpd" the NLPD model's test MSE stays above the MSE model's
(its colours drift); with "nlpd_rgb" it falls below after ~750 steps
(docs/reproduce-images.md).
"""

import dataclasses
import os
from typing import Dict, List, Tuple

import numpy as np

from tfc_perception import _validation
from tfc_perception._typed import Checked
from tfc_perception.experiments import _images
from tfc_perception.distances import registry
from tfc_perception.experiments import runner

__all__ = ["Config", "run"]


def _test_mse(model, x: np.ndarray) -> float:
  """Mean over images of the MSE (0-255 scale) of model.reconstruct."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfc_perception import distances  # pylint: disable=g-import-not-at-top
  x_hat = model.reconstruct(tf.constant(x))
  return float(np.mean(distances.mse(tf.constant(x), x_hat).numpy()))


@dataclasses.dataclass(frozen=True)
class Config(Checked):
  """The Fig. 20 experiment.

  Attributes:
    images, test_images: the Kodak folder and the numbers of its test
      images (the others train the models).
    crop: central crop of the test images (px).
    seeds: one MSE/NLPD pair per seed (>= 2, for mean and std).
    eval_every: the test MSE is measured every this many steps.
    nlpd_distortion: the NLPD of the NLPD member (nlpd, nlpd_rgb,
      nlpd2017).
    train: training of the soft-quantisation models (its seed is replaced
      by each of `seeds`).
  """
  images: str
  test_images: Tuple[int, ...]
  crop: int
  seeds: Tuple[int, ...]
  eval_every: int
  nlpd_distortion: str
  train: _images.ImageTrain


def run(ctx: runner.RunContext) -> Dict:
  """Runs the Fig. 20 experiment (see module docstring)."""
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  cfg = ctx.config
  train_files, test_files = _images.kodak_split(cfg.images,
                                                cfg.test_images)
  if not train_files:
    raise ValueError("no Kodak training images left: test_images covers "
                     "them all.")
  x = np.stack(_images.load_test_images(test_files, cfg.crop))
  # Which NLPD trains the "NLPD" member (see the module docstring).
  nlpd_distortion = _validation.check_choice(
      registry.canonical(cfg.nlpd_distortion, "nlpd_distortion"),
      "nlpd_distortion", registry.names(family="nlpd"))
  seeds = list(cfg.seeds)
  if len(seeds) < 2:
    raise ValueError("seeds must list at least 2 seeds (mean and std).")
  if cfg.eval_every < 1 or cfg.train.steps % cfg.eval_every:
    raise ValueError(f"eval_every ({cfg.eval_every}) must be >= 1 and divide "
                     f"train.steps ({cfg.train.steps}).")
  rows: List[dict] = []
  for seed in seeds:
    curves = {}
    for loss in ("mse", "nlpd"):
      distortion = nlpd_distortion if loss == "nlpd" else loss
      spec = _images.codec_spec(
          cfg.train, model="softquant", distortion=distortion, lmbda=None,
          data="files", seed=seed, quantization="straight_through")
      key = dict(spec, kind="test_mse_curve", eval_every=cfg.eval_every,
                 train_files=ctx.files_key(train_files),
                 test_files=ctx.files_key(test_files),
                 crop=cfg.crop)
      result = ctx.run_training(
          key, lambda train_dir, spec=spec: _images.train_compression_model(
              spec, train_files, ctx.log, train_dir,
              epochs=cfg.train.steps // cfg.eval_every,
              metrics_fn=lambda model: {"test_mse": _test_mse(model, x)},
              progress=ctx.verbose),
          label=f"softquant-{distortion}-seed{seed}")
      curves[loss] = {h["step"]: h["test_mse"] for h in result.history}
    for step in sorted(curves["mse"]):
      a, b = curves["mse"][step], curves["nlpd"][step]
      rows.append({"seed": seed, "step": step, "test_mse_mse_model": a,
                   "test_mse_nlpd_model": b, "gain": a - b})
    ctx.log(f"seed {seed}: final gain {rows[-1]['gain']:.2f} (MSE model "
            f"{rows[-1]['test_mse_mse_model']:.1f}, NLPD model "
            f"{rows[-1]['test_mse_nlpd_model']:.1f})")
  ctx.write_csv("curves.csv", rows)
  steps = sorted({r["step"] for r in rows})
  gain_rows = []
  for s in steps:
    g = np.array([r["gain"] for r in rows if r["step"] == s])
    gain_rows.append({"step": s, "mean_gain": float(g.mean()),
                      "std_gain": float(g.std(ddof=1)), "n_seeds": len(g)})
  ctx.write_csv("gain.csv", gain_rows)

  fig, axes = plotting.subplots(1, 1, size=(5.0, 3.6))
  ax = axes[0, 0]
  st = np.array(steps)
  mean = np.array([r["mean_gain"] for r in gain_rows])
  std = np.array([r["std_gain"] for r in gain_rows])
  ax.plot(st, mean, "-", color="tab:red", lw=1.6,
          label=f"mean over {len(seeds)} seeds")
  ax.fill_between(st, mean - std, mean + std, color="tab:red", alpha=0.25,
                  label="± 1 std")
  ax.axhline(0.0, color="k", ls="--", lw=1.0, label="equal expected MSE")
  ax.set_xlabel("training step (batch size 1)")
  ax.set_ylabel("test MSE gain, MSE − NLPD model ((0–255)²)")
  ax.set_title(f"NLPD model trained with distortion {nlpd_distortion!r}",
               fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  final = gain_rows[-1]
  ctx.save_figure(
      fig, "fig20_nlpd_vs_mse.png",
      caption=(f"Gain in Kodak test MSE of NLPD-trained (distortion "
               f"{nlpd_distortion!r}) over MSE-trained "
               "soft-quantisation models (same seed: same initialisation and "
               "training-crop order), batch size 1, mean and std over seeds. "
               "Paper Fig. 20."),
      numbers={f"step {r['step']}: mean, std gain": [r["mean_gain"],
                                                     r["std_gain"]]
               for r in gain_rows},
      table=["gain.csv", "curves.csv"])
  return {"seeds": seeds, "nlpd_distortion": nlpd_distortion,
          "final_step": final["step"],
          "final_mean_gain": final["mean_gain"],
          "final_std_gain": final["std_gain"],
          "num_test_images": int(len(x)),
          "test_images": [os.path.basename(f) for f in test_files]}


CONFIGS = {
    "tiny": Config(
        images="shared:kodak", test_images=(1,), crop=64, seeds=(0, 1),
        eval_every=1, nlpd_distortion="nlpd",
        train=_images.ImageTrain(num_filters=8, latent_channels=16,
                                 num_centers=2, patchsize=80, batch_size=1,
                                 steps=2, learning_rate=1e-4,
                                 run_eagerly=True)),
    "quick": Config(
        images="shared:kodak", test_images=tuple(range(1, 13)), crop=256,
        seeds=(0, 1, 2, 3, 4), eval_every=250, nlpd_distortion="nlpd_rgb",
        train=_images.ImageTrain(num_filters=32, latent_channels=64,
                                 num_centers=2, patchsize=128, batch_size=1,
                                 steps=1500, learning_rate=1e-4,
                                 run_eagerly=False)),
    "paper": Config(
        images="shared:kodak", test_images=tuple(range(1, 13)), crop=512,
        seeds=(0, 1, 2, 3, 4), eval_every=1000, nlpd_distortion="nlpd_rgb",
        train=_images.ImageTrain(num_filters=128, latent_channels=64,
                                 num_centers=2, patchsize=256, batch_size=1,
                                 steps=50000, learning_rate=1e-5,
                                 run_eagerly=False)),
}

runner.register_experiment(
    "nlpd_vs_mse", run, configs=CONFIGS,
    description=("Gain in Kodak test MSE of NLPD- over MSE-trained models, "
                 "batch size 1, small learning rate, mean and std over seeds "
                 "(paper appendix, Fig. 20)."),
    paper_figures=("Fig. 20",), groups=("images",))
