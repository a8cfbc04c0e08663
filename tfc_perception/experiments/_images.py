"""Helpers shared by the image experiments (sensitivity, contrast, scarce_data,
nlpd_vs_mse): where the data is, train/held-out splits, image loading.

Config values naming image data may be a path (folder, glob or file) or
"shared:<sub/path>", which resolves under the shared data folder: the
environment variable TFC_PERCEPTION_SHARED_DATA if set, else ../shared/data
next to the repository (the layout of the development machines).
"""

import dataclasses
import os
from typing import (Any, Dict, List, NamedTuple, Optional, Sequence, Tuple,
                    Union)

import numpy as np

from tfc_perception._typed import Checked

__all__ = ["shared_data_dir", "resolve_data", "split_files", "load_images",
           "load_test_images", "image_files", "paper_or_substitute",
           "train_test_files", "ImageTrain", "codec_spec",
           "train_compression_model", "codec_metrics", "factorized_family"]

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def shared_data_dir() -> str:
  """The shared data folder (TFC_PERCEPTION_SHARED_DATA or ../shared/data)."""
  return os.environ.get(
      "TFC_PERCEPTION_SHARED_DATA",
      os.path.join(os.path.dirname(_REPO_ROOT), "shared", "data"))


def resolve_data(spec: str, key: str = "images") -> str:
  """A data spec from a config -> a path that exists.

  Args:
    spec: a path (folder, glob pattern or file) or "shared:<sub/path>".
    key: the config key it came from (named in the error message).

  Returns:
    The path (globs are returned as they are, unchecked).

  Raises:
    FileNotFoundError: the path does not exist, with the accepted forms.
  """
  if not isinstance(spec, str) or not spec:
    raise ValueError(f"{key} must be a non-empty path string, got {spec!r}.")
  path = spec
  if spec.startswith("shared:"):
    path = os.path.join(shared_data_dir(), spec[len("shared:"):])
  if any(c in path for c in "*?["):
    return path
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"{key} {spec!r} not found (looked at {path}). Give a folder, a "
        "glob or 'shared:<sub/path>' (resolved under $TFC_PERCEPTION_SHARED_DATA"
        f" or ../shared/data); with bin/reproduce, pass --set {key}=PATH.")
  return path


def split_files(files: Sequence[str], num_eval: int, num_train: int,
                seed: int) -> Tuple[List[str], List[str]]:
  """A seeded split of `files` into disjoint (train, held-out) lists.

  Args:
    files: image files (order does not matter: they are sorted first).
    num_eval: number of held-out files (>= 1).
    num_train: number of training files (0 = all the others).
    seed: permutation seed.

  Returns:
    (train_files, eval_files), each sorted.

  Raises:
    ValueError: not enough files.
  """
  files = sorted(files)
  if num_eval < 1:
    raise ValueError(f"num_eval must be >= 1, got {num_eval}.")
  if num_train < 0:
    raise ValueError(f"num_train must be >= 0 (0 = all others), got "
                     f"{num_train}.")
  if len(files) < num_eval + max(num_train, 1):
    raise ValueError(f"need at least {num_eval + max(num_train, 1)} images "
                     f"({num_eval} held out + {max(num_train, 1)} for "
                     f"training), found {len(files)}.")
  order = np.random.default_rng(seed).permutation(len(files))
  held = [files[i] for i in order[:num_eval]]
  rest = [files[i] for i in order[num_eval:]]
  if num_train:
    rest = rest[:num_train]
  return sorted(rest), sorted(held)


def load_images(files: Sequence[str]) -> List[np.ndarray]:
  """Reads images as uint8 RGB arrays [H, W, 3]
  (`tfc_perception.data.image_io.read_image`).

  Raises:
    FileNotFoundError / ValueError: unreadable files (naming them).
  """
  from tfc_perception.data import image_io  # pylint: disable=g-import-not-at-top
  return [image_io.read_image(f) for f in files]


def load_test_images(files: Sequence[str],
                     crop: Optional[int] = None) -> List[np.ndarray]:
  """Reads images (see `load_images`), each cut to its central crop×crop
  window when `crop` is given (the quick configs' evaluation images).

  Raises:
    ValueError: unreadable files, or an image smaller than `crop`.
  """
  out = []
  for f, im in zip(files, load_images(files)):
    if crop:
      c = int(crop)
      h, w = im.shape[:2]
      if h < c or w < c:
        raise ValueError(f"image {f} is {w}x{h} px, smaller than the "
                         f"{c}x{c} crop.")
      im = im[(h - c) // 2:(h - c) // 2 + c, (w - c) // 2:(w - c) // 2 + c]
    out.append(im)
  return out


# ---------------------------------------------------------------------------
# Compression models for the image experiments (contrast, scarce_data,
# nlpd_vs_mse): training spec -> trained model, and codec evaluation.

MODEL_SPEC_KEYS = ("model", "distortion", "lmbda", "num_filters",
                   "latent_channels", "num_centers", "data", "patchsize",
                   "batch_size", "steps", "learning_rate", "seed",
                   "run_eagerly", "quantization")


@dataclasses.dataclass(frozen=True)
class ImageTrain(Checked):
  """How an experiment trains its image codecs (the `train` section).

  Attributes:
    num_filters, latent_channels: N and M.
    patchsize: side of the random training crops (px).
    batch_size, steps, learning_rate: the trainer's (constant) Adam run.
    run_eagerly: run the train step eagerly (tiny configs: no tracing).
    seed: weights, crop order and training noise.
    num_centers: L of softquant (None: the experiment or model default).
    data: "files" (random crops of the training images) or
      "uniform_noise".
  """
  num_filters: int
  latent_channels: int
  patchsize: int
  batch_size: int
  steps: int
  learning_rate: float
  run_eagerly: bool
  seed: int = 0
  num_centers: Optional[int] = None
  data: str = "files"


def codec_spec(train: ImageTrain, **fields) -> Dict[str, Any]:
  """The full training spec of one image codec (MODEL_SPEC_KEYS; also its
  cache key): the train section plus model, distortion, lmbda, ...

  Raises:
    ValueError: unknown keys.
  """
  spec = dict(dataclasses.asdict(train), quantization=None)
  spec.update(fields)
  unknown = set(spec) - set(MODEL_SPEC_KEYS)
  if unknown:
    raise ValueError(f"unknown model spec key(s) {sorted(unknown)}; accepted: "
                     f"{', '.join(MODEL_SPEC_KEYS)}.")
  return spec


# ---------------------------------------------------------------------------
# Which images: the paper's data where the user has it, a named substitute
# only where the config allows one.

ImageSpec = Union[str, Tuple[str, ...]]

# What the paper trained its image codecs on (Sec. 4, 5; OpenImages), which
# no package or download of this project supplies.
PAPER_TRAIN_DATA = ("OpenImages/CLIC-like natural-image training crops "
                    "(photographs of at least 256 px, none of them a test "
                    "image)")
# The stand-in used where a config allows substitution: the Kodak images that
# are not the quick configs' test images (kodim01-12).
SUBSTITUTE_TRAIN = ("shared:kodak/kodim1[3-9].png",
                    "shared:kodak/kodim2[0-4].png")
SUBSTITUTE_TRAIN_NOTE = ("Kodak kodim13-24, a substitute for the paper's "
                         "OpenImages training data")
KODAK_TEST = ("shared:kodak/kodim0[1-9].png", "shared:kodak/kodim1[0-2].png")


def image_files(spec: ImageSpec, key: str = "images") -> List[str]:
  """Image files named by a spec: a folder (searched recursively), a glob, a
  file, "shared:<sub/path>" (see `resolve_data`), or a list of those.

  Returns:
    The sorted, de-duplicated files.

  Raises:
    ValueError: an empty spec; FileNotFoundError: a spec names no image.
  """
  from tfc_perception.data import images  # pylint: disable=g-import-not-at-top
  specs = (spec,) if isinstance(spec, str) else tuple(spec or ())
  if not specs:
    raise ValueError(f"{key} must name at least one folder, glob or file.")
  files = set()
  for one in specs:
    path = resolve_data(one, key)
    try:
      files.update(images.list_images(path))
    except FileNotFoundError as e:
      raise FileNotFoundError(f"{key} {one!r}: {e}") from None
  return sorted(files)


def paper_or_substitute(ctx, value, key: str, expected: str, substitute,
                        substitute_note: str, allow: bool):
  """The paper's data if the config names it, else a substitute where allowed.

  Args:
    ctx: the RunContext (name, log).
    value: the config's value (None: the paper's data, not given).
    key: its config key.
    expected: what the paper used, in words.
    substitute: the value used instead.
    substitute_note: what the substitute is, in words.
    allow: the config's allow_substitute_data.

  Returns:
    (value, substituted).

  Raises:
    ValueError: `value` is None and substitution is not allowed (the paper
      presets), naming the data expected and the two ways on.
  """
  if value is not None:
    return value, False
  if not allow:
    raise ValueError(
        f"{ctx.name}: this config expects {expected}, which this project "
        f"cannot download. Give it with --set {key}=PATH (a folder, a glob "
        f"or a list of them), or pass --allow_substitute_data to use "
        f"{substitute_note} instead (the results then say so).")
  ctx.log(f"{key}: not given; using {substitute_note} (allowed by "
          "allow_substitute_data)")
  return substitute, True


def train_test_files(ctx, train_images: Optional[ImageSpec],
                     test_images: Optional[ImageSpec], allow_substitute: bool,
                     need_train: bool = True):
  """The training and test images of an image-codec experiment.

  Args:
    ctx: the RunContext.
    train_images: spec of the training images, or None: the paper's
      (`PAPER_TRAIN_DATA`), replaced by `SUBSTITUTE_TRAIN` where
      `allow_substitute` (test images among them are then dropped from the
      test set, and the results say so).
    test_images: spec of the test images, or None (no test set).
    allow_substitute: the config's allow_substitute_data.
    need_train: False when nothing is trained (e.g. pretrained models): the
      training images are then neither needed nor checked.

  Returns:
    (train_files, test_files, info): info says which data was used
    (results.json "data").

  Raises:
    ValueError: training data missing where substitution is not allowed, or
      training and test images that overlap.
    FileNotFoundError: a spec that names no image.
  """
  if need_train:  # Refuse before reading anything.
    spec, substituted = paper_or_substitute(
        ctx, train_images, "train_images", PAPER_TRAIN_DATA,
        SUBSTITUTE_TRAIN, SUBSTITUTE_TRAIN_NOTE, allow_substitute)
  test_files = image_files(test_images, "test_images") if test_images \
      else []
  info = {"test_images": test_images, "num_test_images": len(test_files)}
  if not need_train:
    return [], test_files, dict(info, train_images="none (nothing trained)",
                                num_train_images=0, substitute=False)
  train_files = image_files(spec, "train_images")
  same = {os.path.realpath(f) for f in train_files}
  overlap = [f for f in test_files if os.path.realpath(f) in same]
  if overlap and not substituted:
    raise ValueError(
        f"{len(overlap)} test image(s) are also training images, e.g. "
        f"{overlap[0]}; give disjoint train_images and test_images.")
  if overlap:
    test_files = [f for f in test_files if f not in overlap]
    ctx.log(f"dropped {len(overlap)} test image(s) that the substitute "
            "training data uses")
    if not test_files:
      raise ValueError("no test images left after dropping those the "
                       "substitute training data uses.")
  info.update(
      num_test_images=len(test_files),
      test_images_dropped=[os.path.basename(f) for f in overlap],
      train_images=SUBSTITUTE_TRAIN_NOTE if substituted else spec,
      num_train_images=len(train_files), substitute=substituted,
      paper_train_data=PAPER_TRAIN_DATA)
  return train_files, test_files, info


def train_compression_model(spec: Dict[str, Any], train_files=None,
                            log=print, train_dir: Optional[str] = None,
                            epochs: int = 1, metrics_fn=None,
                            progress: bool = False):
  """Builds and trains an image codec with Eq. 3 through the one trainer.

  Args:
    spec: a `codec_spec` dict (MODEL_SPEC_KEYS): model ("factorized" |
      "softquant"), distortion, lmbda (None for softquant, whose loss is D
      only), num_filters, latent_channels, num_centers (softquant), data
      ("uniform_noise" or "files": random crops of `train_files`),
      patchsize, batch_size, steps, learning_rate, seed, run_eagerly,
      quantization (softquant; None: the default).
    train_files: image files for data == "files".
    log: progress printer.
    train_dir: the trainer's directory (checkpoints, resume), or None.
    epochs: the steps are split into this many epochs (metrics_fn runs
      after each).
    metrics_fn: model -> {name: value}, recorded before training and after
      every epoch (`training.fit`).
    progress: show a progress bar.

  Returns:
    The `training.TrainResult`.

  Raises:
    ValueError: unknown keys or data, steps not divisible by epochs.
  """
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  from tfc_perception import training  # pylint: disable=g-import-not-at-top
  from tfc_perception.data import images  # pylint: disable=g-import-not-at-top
  unknown = set(spec) - set(MODEL_SPEC_KEYS)
  if unknown:
    raise ValueError(f"unknown model spec key(s) {sorted(unknown)}; accepted: "
                     f"{', '.join(MODEL_SPEC_KEYS)}.")
  kwargs = {k: spec[k] for k in ("distortion", "lmbda", "num_filters",
                                 "latent_channels", "num_centers",
                                 "quantization")}
  ps, bs, seed = spec["patchsize"], spec["batch_size"], spec["seed"]
  if spec["data"] == "uniform_noise":
    data = lambda start: images.uniform_noise_images(ps, bs, seed, start)  # noqa: E731
  elif spec["data"] == "files":
    if not train_files:
      raise ValueError("data 'files' needs a non-empty list of train_files.")
    data = lambda start: images.random_crops(list(train_files), ps, bs, seed,  # noqa: E731
                                             start)
  else:
    raise ValueError(f"unknown training data {spec['data']!r}; accepted: "
                     "'uniform_noise', 'files'.")
  steps = spec["steps"]
  if steps % epochs:
    raise ValueError(f"steps ({steps}) must be a multiple of the {epochs} "
                     "evaluation intervals.")
  result = training.fit(
      lambda: models.build_model(spec["model"], seed=seed, **kwargs), data,
      training.TrainSpec(batchsize=bs, epochs=epochs,
                         steps_per_epoch=steps // epochs,
                         learning_rate=spec["learning_rate"], seed=seed,
                         run_eagerly=spec["run_eagerly"], train_dir=train_dir,
                         progress=progress),
      metrics_fn=metrics_fn)
  info = {k: v for k, v in result.final_metrics.items()
          if k not in ("epoch", "step")}
  log(f"trained {spec['model']} ({spec['distortion']}, data "
      f"{spec['data']}) for {steps} steps"
      + (f" (resumed at step {result.initial_step})" if result.resumed
         else "") + ": " + ", ".join(f"{k}={v:.4g}" for k, v in info.items()))
  return result


def codec_metrics(model, x: np.ndarray, msssim_scales=None,
                  nlpd_levels=None) -> dict:
  """Compresses ONE uint8 image [H, W, 3] for real and measures the result.

  Returns:
    dict: bpp (range-coded bits / pixels), mse (0-255 scale), psnr (dB),
    msssim, nlpd (laparra2016, levels that fit), and "x_hat" (uint8).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfc_perception import distances  # pylint: disable=g-import-not-at-top
  xb = tf.constant(x[None])
  compressed = model.compress(xb)
  strings = compressed[0].numpy()
  bits = 8.0 * sum(len(s) for s in np.ravel(strings))
  x_hat = model.decompress(*compressed)
  x_hat = tf.cast(tf.clip_by_value(tf.round(tf.cast(x_hat, tf.float32)), 0,
                                   255), tf.uint8) if x_hat.dtype != tf.uint8 \
      else x_hat
  h, w = x.shape[:2]
  size = min(h, w)
  scales = msssim_scales or distances.ms_ssim_max_scales(size)
  levels = nlpd_levels or distances.nlpd_max_levels(size)
  mse = float(distances.mse(xb, x_hat).numpy()[0])
  return {
      "bpp": bits / (h * w),
      "mse": mse,
      "psnr": float(distances.psnr(xb, x_hat).numpy()[0]) if mse > 0 else
              float("inf"),
      "msssim": float(distances.ms_ssim(xb, x_hat,
                                        num_scales=scales).numpy()[0]),
      "nlpd": float(distances.nlpd(xb, x_hat, num_levels=levels).numpy()[0]),
      "x_hat": x_hat.numpy()[0],
  }


# ---------------------------------------------------------------------------
# The factorized-prior model family of the contrast and IQA experiments:
# tfc's pretrained bmshj2018-factorized models when available, else the
# project's own small FactorizedPriors trained with the tfci λ of each quality.

FAMILY_SOURCES = ("pretrained", "auto", "trained")

# Training spec of the quick configs' fallback family (contrast, iqa: one
# spec, so both experiments share the cached models). With 300 steps at
# learning rate 1e-3 (the earlier quick spec) different qualities ended at
# the same rate: the entropy model was still fitting the latents and λ had
# no effect yet. docs/reproduce-images.md has the rates this spec reaches.
QUICK_FAMILY_TRAIN = ImageTrain(num_filters=32, latent_channels=48,
                                patchsize=176, batch_size=4, steps=1000,
                                learning_rate=2e-3, run_eagerly=False, seed=0)


def pretrained_family(qualities: Sequence[int], distortions: Sequence[str],
                      allow_download: bool, log=print, tensors=None):
  """{(distortion, quality): model} of tfc's bmshj2018-factorized models, or
  None when they are not available (offline and not in the local cache).

  Args:
    qualities: quality levels 1..8.
    distortions: "mse" and/or "msssim" (the published families).
    allow_download: whether missing models may be downloaded.
    log: progress printer (says why the models are not available).
    tensors: internal tensor names for every model of the family (see
      `tfc_perception.pretrained.load`), or None.
  """
  from tfc_perception import pretrained  # pylint: disable=g-import-not-at-top
  family = {}
  try:
    for q in qualities:
      for d in distortions:
        family[(d, int(q))] = pretrained.load(
            f"bmshj2018-factorized-{d}-{int(q)}", offline=not allow_download,
            tensors=tensors)
  except (pretrained.OfflineError, pretrained.DownloadError,
          pretrained.ChecksumError, FileNotFoundError, OSError) as e:
    log(f"pretrained models not available ({str(e).splitlines()[0]})")
    return None
  return family


def trained_family(ctx, train_spec: ImageTrain, qualities: Sequence[int],
                   distortions: Sequence[str], train_files: Sequence[str]):
  """{(distortion, quality): model} of FactorizedPriors trained here (Eq. 3
  with the tfci λ of each quality), through the runner's model cache.

  The cache key is the training spec, the distortion, λ and the training
  images (names, sizes and contents: `ctx.files_key`), so every experiment
  asking for the same model (contrast, iqa) trains it once, and other images
  under the same names train another one.
  """
  from tfc_perception.models import factorized  # pylint: disable=g-import-not-at-top
  family = {}
  for q in qualities:
    for d in distortions:
      if d not in factorized.QUALITY_LAMBDAS:
        raise ValueError(f"distortion {d!r} has no λ table; accepted: "
                         f"{', '.join(factorized.QUALITY_LAMBDAS)}.")
      spec = codec_spec(train_spec, model="factorized", distortion=d,
                        lmbda=factorized.QUALITY_LAMBDAS[d][int(q) - 1])
      key = dict(spec, kind="image_codec",
                 train_files=ctx.files_key(train_files))
      family[(d, int(q))] = ctx.cached_model(
          key, lambda train_dir, spec=spec: train_compression_model(
              spec, train_files, ctx.log, train_dir, progress=ctx.verbose),
          label=f"factorized-{d}-q{q}")
  return family


class Family(NamedTuple):
  """What `factorized_family` returns.

  Attributes:
    source: "pretrained bmshj2018-factorized" or "trained here".
    models: (distortion, quality) -> model.
    test_files: the test images (those the substitute training data uses
      dropped).
    data: which data was used (`train_test_files`' info).
  """
  source: str
  models: Dict[Tuple[str, int], Any]
  test_files: List[str]
  data: Dict[str, Any]


def factorized_family(ctx, cfg, distortions: Sequence[str] = ("mse",
                                                             "msssim"),
                      tensors=None,
                      test_images: Optional[ImageSpec] = None) -> Family:
  """The model family an experiment config asks for.

  Args:
    ctx: the experiment's RunContext (model cache, log).
    cfg: a config with `models` ("pretrained": tfc's bmshj2018-factorized,
      downloaded when `allow_download` is set; "auto": those if already in
      the local cache, never downloading, else trained here; "trained"),
      `qualities`, `train` (an `ImageTrain`: the fallback models' training),
      `train_images` (their training images; None: the paper's, see
      `train_test_files`) and `allow_substitute_data`.
    distortions: training distortions of the family.
    tensors: internal tensor names of the pretrained models (ignored, and
      logged, when the family is trained here).
    test_images: the experiment's test images (spec), or None.

  Returns:
    A `Family`.

  Raises:
    ValueError: unknown "models" value, or training data that is missing
      (where substitution is not allowed) or overlaps the test images.
    RuntimeError: "pretrained" asked for but not available.
  """
  source = cfg.models
  if source not in FAMILY_SOURCES:
    raise ValueError(f"models must be one of {', '.join(FAMILY_SOURCES)}, got "
                     f"{source!r}.")
  qualities = [int(q) for q in cfg.qualities]
  bad = [q for q in qualities if not 1 <= q <= 8]
  if not qualities or bad:
    raise ValueError(f"qualities must be a non-empty list of levels 1..8, got "
                     f"{cfg.qualities!r}.")
  if source in ("pretrained", "auto"):
    family = pretrained_family(
        qualities, distortions,
        source == "pretrained" and cfg.allow_download, ctx.log,
        tensors=tensors)
    if family is not None:
      _, test_files, data = train_test_files(ctx, None, test_images, False,
                                             need_train=False)
      return Family("pretrained bmshj2018-factorized", family, test_files,
                    data)
    if source == "pretrained":
      raise RuntimeError("models='pretrained' but the bmshj2018 models are "
                         "not available; run bin/download first, or use "
                         "models='auto' / 'trained'.")
  if tensors:
    ctx.log(f"tensors {tensors} not used: they name tensors of the pretrained "
            "graphs, and the models are trained here")
  train_files, test_files, data = train_test_files(
      ctx, cfg.train_images, test_images, cfg.allow_substitute_data)
  return Family("trained here", trained_family(
      ctx, cfg.train, qualities, distortions, train_files), test_files, data)
