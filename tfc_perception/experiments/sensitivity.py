"""Observation 1 (Sec. 3, Figs. 6-8): perceptual sensitivity follows log p(x).

A PixelCNN++ density model (tfc_perception.models.pixelcnn) is trained by
maximum likelihood on 32x32 natural images: CIFAR-10 from its official
python batches when `images` names that folder (lossless; trained on
data_batch_1-5, evaluated on test_batch, as in the paper), or a folder or
glob of image files split into training and held-out images. The offline
default of the quick config is a substitute, the JPEG-compressed CIFAR-10
test set in ../shared/data/cifar10-test-jpeg (quality ~75, so NOT
bit-identical to CIFAR-10); the paper preset refuses it unless
allow_substitute_data is set, and results.json says which data was used
(data, data_kind, data_note, substitute_data). On held-out images x
(disjoint from the training images) and for each σ in {1, 2, 5, 10, 20, 30,
40, 50} (0-255 scale):

  x' = clip(round(x + N(0, σ²)), 0, 255)     (stays an 8-bit image, so the
                                              discrete PixelCNN++ likelihood
                                              applies; documented choice)
  log p(x), log p(x')                         (nats, PixelCNN++)
  NLPD(x, x'), 1 - MS-SSIM(x, x'), RMSE(x, x')
  sensitivity S_D = D(x, x') / ||x' - x||     (||.|| = RMSE of Δx on the 0-255
                                              scale, so S_RMSE = 1: the RMSE
                                              is correlated as a distance)

Outputs (through the experiment runner):
  samples.csv       one row per (image, σ): log p, distances, sensitivities
  spearman.csv      per σ: ρS(S_NLPD, log p(x)), ρS(S_MSSSIM, log p(x)),
                    ρS(RMSE, log p(x)), ρS(RMSE, NLPD), ρS(RMSE, 1-MS-SSIM)
                    with p-values (scipy.stats.spearmanr) (Fig. 6)
  logp_summary.csv  per σ (σ = 0 is the clean images): mean/std/quantiles of
                    log p(x + N(0, σ²)) (Fig. 8)
  fig6_spearman.png, fig7_scatter.png (σ = 1 and 50), fig8_logp.png
MS-SSIM and NLPD use fewer scales/levels than their defaults so they fit
32x32 (recorded in results.json: msssim_num_scales, nlpd_num_levels).
"""

import dataclasses
import math
import os
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from tfc_perception import stats
from tfc_perception._typed import Checked
from tfc_perception.experiments import _images
from tfc_perception.experiments import runner

__all__ = ["noisy_images", "spearman_table", "train_pixelcnn", "run"]

SIGMAS = (1, 2, 5, 10, 20, 30, 40, 50)


def noisy_images(x: np.ndarray, sigma: float, seed: int) -> np.ndarray:
  """x + N(0, σ²) rounded and clipped to 8 bits (x' of Obs. 1).

  Args:
    x: uint8 images [N, H, W, C].
    sigma: noise standard deviation on the 0-255 scale (>= 0).
    seed: seed of the Gaussian noise (numpy Generator).

  Returns:
    uint8 array like x.

  Raises:
    ValueError: x not uint8 or sigma negative / not finite.
  """
  x = np.asarray(x)
  if x.dtype != np.uint8:
    raise ValueError(f"x must be uint8 images, got dtype {x.dtype}.")
  if not np.isfinite(sigma) or sigma < 0:
    raise ValueError(f"sigma must be finite and >= 0, got {sigma}.")
  noise = np.random.default_rng(seed).standard_normal(x.shape) * sigma
  return np.clip(np.round(x.astype(np.float64) + noise), 0, 255).astype(
      np.uint8)


def spearman_table(rows: List[Dict], sigmas) -> List[Dict]:
  """The Fig. 6 correlations per σ from per-sample rows (see samples.csv).

  Args:
    rows: dicts with keys sigma, log_p_x, sens_nlpd, sens_msssim, rmse,
      nlpd, one_minus_msssim.
    sigmas: the σ values, in order.

  Returns:
    One dict per σ: rho_* and p_* for each pair, and n.
  """
  pairs = {
      "sens_nlpd_vs_logp": ("sens_nlpd", "log_p_x"),
      "sens_msssim_vs_logp": ("sens_msssim", "log_p_x"),
      "rmse_vs_logp": ("rmse", "log_p_x"),
      "rmse_vs_nlpd": ("rmse", "nlpd"),
      "rmse_vs_msssim": ("rmse", "one_minus_msssim"),
  }
  out = []
  for s in sigmas:
    sel = [r for r in rows if r["sigma"] == s]
    row = {"sigma": s, "n": len(sel)}
    for name, (a, b) in pairs.items():
      rho, p = stats.spearman([r[a] for r in sel], [r[b] for r in sel])
      row[f"rho_{name}"] = rho
      row[f"p_{name}"] = p
    out.append(row)
  return out


@dataclasses.dataclass(frozen=True)
class PixelCNNArch(Checked):
  """The PixelCNN++ (tfp.distributions.PixelCNN) architecture."""
  num_resnet: int
  num_hierarchies: int
  num_filters: int
  num_logistic_mix: int
  dropout_p: float
  use_weight_norm: bool = True


@dataclasses.dataclass(frozen=True)
class PixelCNNTrain(Checked):
  """Maximum-likelihood training: steps in `epochs` epochs of batch_size
  crops, Adam with an exponential decay to lr_decay * learning_rate."""
  steps: int
  batch_size: int
  learning_rate: float
  lr_decay: float
  epochs: int
  seed: int
  run_eagerly: bool


@dataclasses.dataclass(frozen=True)
class Config(Checked):
  """The Obs. 1 experiment (see the module docstring).

  Attributes:
    images: the natural images: the CIFAR-10 python-batches folder
      (cifar-10-batches-py, lossless, the paper's data: trained on
      data_batch_1-5, evaluated on test_batch), or a folder / glob of image
      files (split into training and held-out images); "shared:..."
      resolves under the shared data folder. None: the paper's CIFAR-10
      batches, not given; replaced by the JPEG copy of the test set
      (`JPEG_SUBSTITUTE`) only where allow_substitute_data.
    allow_substitute_data: see images (quick, tiny: yes; paper: refused).
    image_size: side of the modelled images (crops).
    split_seed, num_train, num_eval: the train / held-out split (num_train
      0: all the others).
    sigmas: noise levels (0-255 scale).
    scatter_sigmas: levels shown in Fig. 7.
    noise_seed: seed of the noise.
    msssim_num_scales, nlpd_num_levels: None: the most that fit.
    nlpd_variant: "laparra2016" or "laparra2017".
    eval_batch_size: images per log-likelihood batch.
    pixelcnn, train: the model and its training.
  """
  images: Optional[str]
  allow_substitute_data: bool
  image_size: int
  split_seed: int
  sigmas: Tuple[float, ...]
  scatter_sigmas: Tuple[float, ...]
  noise_seed: int
  msssim_num_scales: Optional[int]
  nlpd_num_levels: Optional[int]
  nlpd_variant: str
  eval_batch_size: int
  num_train: int
  num_eval: int
  pixelcnn: PixelCNNArch
  train: PixelCNNTrain


def train_pixelcnn(train_data, eval_data, cfg: Config, log=print,
                   train_dir=None, progress=False):
  """Trains the Obs. 1 PixelCNN++ by maximum likelihood (the one trainer).

  Args:
    train_data, eval_data: lists of 32x32 (or larger: center/random 32x32
      crops) image files, or uint8 image arrays [N, H, W, 3] (CIFAR-10
      batches).
    cfg: the experiment config (pixelcnn, train, image_size).
    log: progress printer.
    train_dir: the trainer's directory (checkpoints, resume).
    progress: show a progress bar.

  Returns:
    The `training.TrainResult`, with the held-out bits/dim added to its
    final metrics.
  """
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  from tfc_perception import training  # pylint: disable=g-import-not-at-top
  from tfc_perception.data import images  # pylint: disable=g-import-not-at-top
  tr = cfg.train
  size = cfg.image_size

  def data(start):
    return images.random_crops(train_data, size, tr.batch_size, tr.seed,
                               start)

  def build():
    model = models.build_density_model(
        "pixelcnn", image_shape=(size, size, 3), seed=tr.seed,
        **dataclasses.asdict(cfg.pixelcnn))
    model.initialize(next(iter(data(0))))  # Weight-norm data-dependent init.
    return model

  per_epoch = max(1, math.ceil(tr.steps / max(1, tr.epochs)))
  result = training.fit(
      build, data, training.TrainSpec(
          batchsize=tr.batch_size, epochs=math.ceil(tr.steps / per_epoch),
          steps_per_epoch=per_epoch, learning_rate=tr.learning_rate,
          lr_schedule="exponential", lr_floor=tr.lr_decay, seed=tr.seed,
          run_eagerly=tr.run_eagerly, train_dir=train_dir,
          progress=progress))
  eval_ds = images.center_crops(eval_data, size, tr.batch_size)
  heldout = result.model.evaluate(eval_ds, verbose=0, return_dict=True)
  result.final_metrics["heldout_bits_per_dim"] = float(
      heldout["bits_per_dim"])
  log(f"PixelCNN: train {result.final_metrics['bits_per_dim']:.3f} bits/dim "
      f"(last epoch), held-out {heldout['bits_per_dim']:.3f} bits/dim")
  return result


def _log_probs(model, x: np.ndarray, batch_size: int,
               eager: bool = False) -> np.ndarray:
  """log p of uint8 images in batches; the last batch is padded so that the
  tf.function is traced once."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  fn = lambda b: model.log_prob(b, training=False)
  if not eager:
    fn = tf.function(fn)
  out = []
  for i in range(0, len(x), batch_size):
    b = x[i:i + batch_size]
    n = len(b)
    if n < batch_size:
      b = np.concatenate([b, np.repeat(b[-1:], batch_size - n, axis=0)])
    out.append(fn(tf.constant(b)).numpy()[:n])
  return np.concatenate(out).astype(np.float64)


def _distances(x, xn, cfg):
  from tfc_perception import distances  # pylint: disable=g-import-not-at-top
  ms = distances.ms_ssim(x, xn, num_scales=int(cfg.msssim_num_scales))
  nl = distances.nlpd(x, xn, num_levels=int(cfg.nlpd_num_levels),
                      variant=cfg.nlpd_variant)
  rmse = np.sqrt(distances.mse(x, xn).numpy().astype(np.float64))
  return (nl.numpy().astype(np.float64), 1.0 - ms.numpy().astype(np.float64),
          rmse)


# The paper's data: a PixelCNN++ trained on CIFAR-10's training set.
CIFAR10_EXPECTED = ("CIFAR-10 as its official python batches "
                    "(cifar-10-batches-py from cifar-10-python.tar.gz, "
                    "https://www.cs.toronto.edu/~kriz/cifar.html)")
# The offline stand-in: the 10,000 test images as JPEG files in ../shared.
JPEG_SUBSTITUTE = "shared:cifar10-test-jpeg/test"
JPEG_NOTE = ("JPEG-compressed CIFAR-10 test images (IJG quality ~75; lossy, "
             "not bit-identical to CIFAR-10), split into disjoint training "
             "and held-out sets; a substitute for the paper's PixelCNN++ "
             "trained on CIFAR-10's training set.")


@dataclasses.dataclass(frozen=True)
class Data:
  """The images of one run (see `load_data`).

  Attributes:
    spec: the images config value used (after substitution).
    kind: "cifar10-python-batches" or "image-files".
    substitute: whether it replaces the paper's data.
    train: training images (files, or a uint8 array).
    num_train: their number.
    eval: held-out images (files, or a uint8 array).
    eval_names: a name per held-out image (file, or test_batch[i]).
    eval_images: the held-out images, uint8 [N, size, size, 3].
    description, note: what was used, in words (results.json).
    train_sources, eval_sources: the files the training and held-out images
      were read from (the batch files, or the image files), for the model's
      cache key.
  """
  spec: str
  kind: str
  substitute: bool
  train: Any
  num_train: int
  eval: Any
  eval_names: List[str]
  eval_images: np.ndarray
  description: str
  note: str
  train_sources: List[str]
  eval_sources: List[str]


def load_data(ctx, cfg: Config) -> Data:
  """The training and held-out images of Obs. 1.

  CIFAR-10 python batches: training images from data_batch_1-5 (all, or a
  seeded choice of num_train), num_eval held-out images from test_batch
  (seeded choice, split_seed). Image files: a seeded split into disjoint
  training and held-out sets (`_images.split_files`).

  Raises:
    ValueError: images None where substitution is not allowed (the paper
      preset), or too few / too small images.
  """
  from tfc_perception.data import cifar10  # pylint: disable=g-import-not-at-top
  from tfc_perception.data import images  # pylint: disable=g-import-not-at-top
  size = cfg.image_size
  spec, substitute = _images.paper_or_substitute(
      ctx, cfg.images, "images", CIFAR10_EXPECTED, JPEG_SUBSTITUTE,
      "the JPEG copy of the CIFAR-10 test set in ../shared",
      cfg.allow_substitute_data)
  path = _images.resolve_data(spec)
  rng = lambda: np.random.default_rng(int(cfg.split_seed))  # noqa: E731
  if cifar10.is_batches_folder(path):
    train, _ = cifar10.load(path, "train")
    test, _ = cifar10.load(path, "test")
    if cfg.num_train:
      train = train[np.sort(rng().permutation(len(train))[:cfg.num_train])]
    if cfg.num_eval > len(test):
      raise ValueError(f"num_eval {cfg.num_eval} exceeds the {len(test)} "
                       "images of test_batch.")
    held = np.sort(rng().permutation(len(test))[:cfg.num_eval])
    if size > 32:
      raise ValueError(f"image_size {size} exceeds CIFAR-10's 32 px.")
    return Data(
        spec, "cifar10-python-batches", substitute, train, len(train),
        test[held], [f"test_batch[{i}]" for i in held],
        np.ascontiguousarray(test[held][:, :size, :size]),
        f"CIFAR-10 python batches at {path}: {len(train)} training images "
        f"(data_batch_1-5), {len(held)} held-out images of test_batch",
        "CIFAR-10 from its official python batches (lossless), as in the "
        "paper: the PixelCNN++ is trained on the training batches and "
        "evaluated on test images.",
        [os.path.join(path, b) for b in cifar10.TRAIN_BATCHES],
        [os.path.join(path, b) for b in cifar10.TEST_BATCHES])
  files = images.list_images(path)
  train_files, eval_files = _images.split_files(
      files, int(cfg.num_eval), int(cfg.num_train), int(cfg.split_seed))
  loaded = [(f, im) for f, im in zip(eval_files,
                                    _images.load_images(eval_files))
            if im.shape[0] >= size and im.shape[1] >= size]
  if not loaded:
    raise ValueError(f"no held-out image is at least {size}x{size} px.")
  lossy = any(f.lower().endswith((".jpg", ".jpeg")) for f in files)
  note = JPEG_NOTE if substitute else (
      f"image files from {spec}{' (JPEG: lossy)' if lossy else ''}, split "
      "into disjoint training and held-out sets; not the paper's CIFAR-10 "
      "training set.")
  return Data(
      spec, "image-files", substitute, train_files, len(train_files),
      eval_files, [f for f, _ in loaded],
      np.stack([im[:size, :size] for _, im in loaded]),
      f"{spec} ({len(train_files)} training, {len(loaded)} held-out images)",
      note, list(train_files), list(eval_files))


def run(ctx: runner.RunContext) -> Dict:
  """Runs Obs. 1 (see module docstring); returns the summary numbers."""
  from tfc_perception import distances  # pylint: disable=g-import-not-at-top
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  cfg = ctx.config
  size = cfg.image_size
  sigmas = [float(s) for s in cfg.sigmas]
  if not sigmas or min(sigmas) <= 0:
    raise ValueError(f"sigmas must be positive, got {cfg.sigmas}.")
  # None: the most scales / levels that fit the images.
  cfg = dataclasses.replace(
      cfg, msssim_num_scales=cfg.msssim_num_scales or
      distances.ms_ssim_max_scales(size), nlpd_num_levels=(
          cfg.nlpd_num_levels or distances.nlpd_max_levels(
              size, cfg.nlpd_variant)))
  data = load_data(ctx, cfg)
  ctx.log(f"{data.num_train} training / {len(data.eval_names)} held-out "
          f"images: {data.description}")

  key = {"kind": "pixelcnn", "pixelcnn": dataclasses.asdict(cfg.pixelcnn),
         "train": dataclasses.asdict(cfg.train), "image_size": size,
         "images": data.spec, "data_kind": data.kind,
         "num_train": cfg.num_train, "split_seed": cfg.split_seed,
         "num_eval": cfg.num_eval,
         "train_files": ctx.files_key(data.train_sources),
         "eval_files": ctx.files_key(data.eval_sources)}
  model = ctx.cached_model(
      key, lambda train_dir: train_pixelcnn(
          data.train, data.eval, cfg, ctx.log, train_dir, ctx.verbose),
      save_fn=models.save_density_model, load_fn=models.load_density_model,
      label="pixelcnn")

  eval_files, x = data.eval_names, data.eval_images
  t0 = time.perf_counter()
  bs = min(int(cfg.eval_batch_size), len(x))
  eager = cfg.train.run_eagerly
  log_p_x = _log_probs(model, x, bs, eager)
  dims = float(np.prod(x.shape[1:]))
  heldout_bpd = float(np.mean(-log_p_x / (dims * math.log(2.0))))
  summary_rows = [_summary_row(0.0, log_p_x, dims)]
  rows = []
  for k, s in enumerate(sigmas):
    xn = noisy_images(x, s, seed=int(cfg.noise_seed) * 1000 + k)
    log_p_n = _log_probs(model, xn, bs, eager)
    nl, ms, rmse = _distances(x, xn, cfg)
    delta = rmse  # ||Δx|| as the RMSE of the actual (rounded, clipped) Δx.
    for i in range(len(x)):
      rows.append({
          "image": i, "file": eval_files[i], "sigma": s,
          "log_p_x": log_p_x[i], "log_p_noisy": log_p_n[i],
          "nlpd": nl[i], "one_minus_msssim": ms[i], "rmse": rmse[i],
          "sens_nlpd": nl[i] / delta[i] if delta[i] > 0 else float("nan"),
          "sens_msssim": ms[i] / delta[i] if delta[i] > 0 else float("nan"),
      })
    summary_rows.append(_summary_row(s, log_p_n, dims))
    ctx.log(f"σ={s:g}: mean log p(x') = {np.mean(log_p_n):.1f} nats")
  eval_seconds = time.perf_counter() - t0
  table = spearman_table(rows, sigmas)
  ctx.write_csv("samples.csv", rows)
  ctx.write_csv("spearman.csv", table)
  ctx.write_csv("logp_summary.csv", summary_rows)

  _figure6(ctx, plotting, table)
  _figure7(ctx, plotting, rows, sigmas, cfg)
  _figure8(ctx, plotting, log_p_x, rows, sigmas)

  results = {
      "data": data.description,
      "data_kind": data.kind,
      "data_note": data.note,
      "substitute_data": data.substitute,
      "heldout_bits_per_dim": heldout_bpd,
      "msssim_num_scales": int(cfg.msssim_num_scales),
      "nlpd_num_levels": int(cfg.nlpd_num_levels),
      "nlpd_variant": cfg.nlpd_variant,
      "num_eval_images": int(len(x)),
      "eval_seconds": round(eval_seconds, 2),
      "spearman": {f"sigma_{r['sigma']:g}": {
          k: v for k, v in r.items() if k.startswith("rho_")} for r in table},
      "mean_log_p": {f"sigma_{r['sigma']:g}": r["mean_log_p"]
                     for r in summary_rows},
  }
  return results


def _summary_row(sigma, lp, dims):
  q = np.quantile(lp, [0.05, 0.25, 0.5, 0.75, 0.95])
  return {"sigma": sigma, "n": len(lp), "mean_log_p": float(np.mean(lp)),
          "std_log_p": float(np.std(lp)), "q05": q[0], "q25": q[1],
          "median": q[2], "q75": q[3], "q95": q[4],
          "mean_bits_per_dim": float(np.mean(-lp / (dims * math.log(2.0))))}


def _figure6(ctx, plotting, table):
  s = [r["sigma"] for r in table]
  curves = [
      ("rho_sens_nlpd_vs_logp", "ρS(sensitivity NLPD, log p(x))", "o-", "tab:red"),
      ("rho_sens_msssim_vs_logp", "ρS(sensitivity 1−MS-SSIM, log p(x))", "s-",
       "tab:gray"),
      ("rho_rmse_vs_nlpd", "ρS(RMSE, NLPD)", "o--", "tab:orange"),
      ("rho_rmse_vs_msssim", "ρS(RMSE, 1−MS-SSIM)", "s--", "tab:brown"),
      ("rho_rmse_vs_logp", "ρS(RMSE, log p(x))", "^-", "tab:blue"),
  ]
  fig, axes = plotting.subplots(1, 1, size=(5.4, 3.8))
  ax = axes[0, 0]
  for key, label, fmt, color in curves:
    ax.plot(s, [r[key] for r in table], fmt, color=color, label=label, ms=4)
  ax.set_xscale("log")
  ax.set_xticks(s)
  ax.set_xticklabels([f"{v:g}" for v in s])
  ax.axhline(0, color="k", lw=0.6)
  ax.set_ylim(-1, 1)
  ax.set_xlabel("noise σ (0–255 scale)")
  ax.set_ylabel("Spearman ρS")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  ax.set_title("Obs. 1: sensitivity of perceptual distances vs log p(x)",
               fontsize=9)
  numbers = {}
  for r in table:
    numbers[f"σ={r['sigma']:g}: ρS sens NLPD / sens MS-SSIM / RMSE vs log p"] = [
        r["rho_sens_nlpd_vs_logp"], r["rho_sens_msssim_vs_logp"],
        r["rho_rmse_vs_logp"]]
  ctx.save_figure(
      fig, "fig6_spearman.png",
      caption=("Spearman correlation, across held-out images, between log p(x) "
               "(PixelCNN++) and the sensitivity D(x, x')/RMSE(x, x') of NLPD "
               "and 1 − MS-SSIM, with x' = x + N(0, σ²); RMSE against the "
               "perceptual distances and against log p(x) for comparison. "
               "Paper Fig. 6."),
      numbers=numbers, table="spearman.csv")


def _figure7(ctx, plotting, rows, sigmas, cfg):
  shown = [s for s in (float(v) for v in cfg.scatter_sigmas) if s in sigmas]
  if not shown:
    return
  fig, axes = plotting.subplots(len(shown), 2, size=(3.4, 2.9))
  numbers = {}
  for i, s in enumerate(shown):
    sel = [r for r in rows if r["sigma"] == s]
    lp = np.array([r["log_p_x"] for r in sel])
    for j, (key, label) in enumerate((("nlpd", "NLPD(x, x')"),
                                      ("one_minus_msssim", "1 − MS-SSIM(x, x')"))):
      d = np.array([r[key] for r in sel])
      rho, _ = stats.spearman(lp, d)
      ax = axes[i, j]
      ax.scatter(lp, d, s=6, alpha=0.6, color="tab:red" if j == 0 else "tab:gray")
      ax.set_xlabel("log p(x) (nats, PixelCNN++)")
      ax.set_ylabel(f"{label} (unitless)")
      ax.set_title(f"σ = {s:g}: ρS = {rho:.3f}", fontsize=9)
      ax.grid(alpha=0.3)
      numbers[f"σ={s:g}: ρS(log p(x), {key})"] = rho
  ctx.save_figure(
      fig, "fig7_scatter.png",
      caption=("log p(x) against the perceptual distances between x and "
               "x + N(0, σ²), one point per held-out image. Paper Fig. 7."),
      numbers=numbers, table="samples.csv")


def _figure8(ctx, plotting, log_p_x, rows, sigmas):
  import matplotlib  # pylint: disable=g-import-not-at-top
  cmap = matplotlib.colormaps["viridis"]
  sets = [(0.0, log_p_x)] + [
      (s, np.array([r["log_p_noisy"] for r in rows if r["sigma"] == s]))
      for s in sigmas]
  lo = min(float(np.min(v)) for _, v in sets)
  hi = max(float(np.max(v)) for _, v in sets)
  bins = np.linspace(lo, hi, 60)
  fig, axes = plotting.subplots(1, 1, size=(5.6, 3.6))
  ax = axes[0, 0]
  for k, (s, v) in enumerate(sets):
    ax.hist(v, bins=bins, histtype="step", lw=1.3,
            color=cmap(k / max(len(sets) - 1, 1)), label=f"σ = {s:g}")
  ax.set_xlabel("log p(x + N(0, σ²)) (nats, PixelCNN++)")
  ax.set_ylabel("number of images")
  ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  ax.grid(alpha=0.3)
  ctx.save_figure(
      fig, "fig8_logp.png",
      caption=("Distribution of log p(x + N(0, σ²)) over held-out images for "
               "each σ (σ = 0: the clean images). Paper Fig. 8."),
      numbers={f"σ={s:g}: mean log p (nats)": float(np.mean(v))
               for s, v in sets},
      table="logp_summary.csv")


_COMMON = dict(
    images=None,
    image_size=32, split_seed=0, sigmas=SIGMAS, scatter_sigmas=(1, 50),
    noise_seed=1,
    msssim_num_scales=None,   # None: the most that fit (2 for 32x32).
    nlpd_num_levels=None,     # None: the most that fit (4 for 32x32).
    nlpd_variant="laparra2016", eval_batch_size=50)

CONFIGS = {
    "tiny": Config(**dict(
        _COMMON, allow_substitute_data=True, num_train=48, num_eval=12, sigmas=(1, 10, 50),
        pixelcnn=PixelCNNArch(num_resnet=1, num_hierarchies=2, num_filters=8,
                              num_logistic_mix=2, dropout_p=0.0,
                              use_weight_norm=False),
        train=PixelCNNTrain(steps=4, batch_size=8, learning_rate=2e-3,
                            lr_decay=1.0, epochs=1, seed=0,
                            run_eagerly=True))),
    "quick": Config(**dict(
        _COMMON, allow_substitute_data=True, num_train=0, num_eval=500,
        pixelcnn=PixelCNNArch(num_resnet=1, num_hierarchies=2,
                              num_filters=32, num_logistic_mix=5,
                              dropout_p=0.0),
        train=PixelCNNTrain(steps=400, batch_size=32, learning_rate=2e-3,
                            lr_decay=0.3, epochs=4, seed=0,
                            run_eagerly=False))),
    "paper": Config(**dict(
        _COMMON, allow_substitute_data=False, num_train=0, num_eval=1000,
        # tfp's defaults = the CIFAR-10 model of Salimans et al. (2017).
        pixelcnn=PixelCNNArch(num_resnet=5, num_hierarchies=3,
                              num_filters=160, num_logistic_mix=10,
                              dropout_p=0.5),
        train=PixelCNNTrain(steps=200000, batch_size=16, learning_rate=1e-3,
                            lr_decay=0.1, epochs=100, seed=0,
                            run_eagerly=False))),
}

runner.register_experiment(
    "sensitivity", run, configs=CONFIGS,
    description=("Observation 1: Spearman correlation between log p(x) "
                 "(PixelCNN++) and the sensitivity of NLPD and MS-SSIM to "
                 "additive Gaussian noise on 32x32 natural images "
                 "(paper Sec. 3, Figs. 6-8)."),
    paper_figures=("Fig. 6", "Fig. 7", "Fig. 8"), groups=("images",))
