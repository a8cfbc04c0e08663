"""Training compressive autoencoders with Eq. 3: one call, `train(config)`.

Hepburn et al. (ICLR 2022) train every model with the rate-distortion
Lagrangian L = R + lambda * D (Eq. 3): the 2-D autoencoder of Fig. 10 on the
Student-t / uniform sources (Figs. 11-14), the factorized-prior model of
Fig. 15 on image crops and the soft-quantisation model of Fig. 17 on natural
images or uniform noise (Sec. 5.2). The models implement Eq. 3 in their
Keras `train_step` (`tfc_perception.models`); this module is the run around
it, used by `bin/train`:

1. checks the configuration (`TrainConfig`) and fails early with what is
   accepted;
2. builds the tf.distribute strategy (`default`, or `mirrored` over all GPUs,
   or over all (logical) CPUs when there is no GPU) and the Keras precision
   policy;
3. builds the model (`models.build_model`) and the Adam optimizer in the
   strategy's scope, and restores the latest checkpoint of `train_dir`
   (weights AND optimizer state) if there is one;
4. builds the seeded data pipelines (`tfc_perception.data`) starting at the
   restored step, and runs `model.fit` with callbacks: a tqdm progress bar,
   TensorBoard (`train_dir/logs`), a checkpoint at the end of every epoch
   (`train_dir/checkpoints`), and the per-epoch history
   (`train_dir/history.json`);
5. exports the final model with `models.save_model` (ready to compress) and
   writes a run manifest (`<export>.manifest.json`: config, command line,
   library versions, git commit, wall time, final metrics).

Resume and reproducibility. Batch i of every training stream is a pure
function of (seed, i) (see `tfc_perception.data`), and the random ops inside
the train step (the additive uniform noise that replaces rounding, Sec. 2)
are reseeded at the start of every epoch from (seed, epoch) by retracing the
train function under `tf.random.set_seed`. Checkpoints are written at every
epoch end. A run interrupted at any point and restarted with the same
`train_dir` resumes from the last completed epoch (step = epoch *
steps_per_epoch) and ends in the same state as an uninterrupted run, up to
floating-point reduction order. The checkpoint interval is therefore one
epoch: choose `steps_per_epoch` accordingly.
"""

import dataclasses
import json
import logging
import math
import numbers
import os
import sys
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tfc_perception import _io

__all__ = ["TrainConfig", "TrainResult", "train", "make_strategy",
           "configure_logical_cpus", "float32_bottlenecks", "PRECISION_POLICIES", "STRATEGIES"]

_LOG = logging.getLogger(__name__)

STRATEGIES = ("default", "mirrored")
PRECISION_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
UNIFORM_NOISE = "uniform_noise"

# Config entries that must not change when a run is resumed: they define the
# model, the objective or the data stream. (epochs, export, strategy,
# validation settings and progress may change between restarts.)
_RESUME_KEYS = ("model", "distortion", "lmbda", "quality", "data",
                "weight_density", "patchsize", "batchsize", "steps_per_epoch",
                "learning_rate", "num_filters", "latent_channels",
                "num_centers", "seed", "precision_policy")


@dataclasses.dataclass
class TrainConfig:
  """Everything a training run needs (the flags of bin/train).

  Attributes:
    model: registered model name: "toy2d" (Fig. 10), "factorized" (Fig. 15),
      "softquant" (Fig. 17).
    data: training data: "student_t" or "uniform2d" (2-D sources, toy2d), a
      .npy file of [N, 2] points (toy2d), "uniform_noise" (image models), or a
      folder / glob of images (image models; random crops).
    distortion: D of Eq. 3: mse, msssim, nlpd, density_mse,
      inverse_density_mse.
    lmbda: lambda of Eq. 3 (> 0); None: the model's default (or the one of
      `quality`).
    quality: factorized only: quality level 1-8 (sets N, M and lambda from
      the tfci tables); exclusive with `lmbda`.
    validation_data: like `data` (for image folders: one central crop per
      image), or None for no validation.
    validation_steps: batches of validation for the endless sources
      (2-D sources and uniform_noise).
    patchsize: side of the square training crops (image models).
    batchsize: global batch size (split over the replicas).
    epochs: total number of epochs (a resumed run continues up to it).
    steps_per_epoch: optimizer steps per epoch; also the checkpoint interval.
    learning_rate: Adam learning rate.
    num_filters, latent_channels, num_centers: model sizes (N, M, L); None:
      the model's defaults.
    seed: seed of the weights, the data streams and the training noise.
    train_dir: directory for checkpoints, TensorBoard logs, history.json and
      config.json; reusing it resumes the run.
    export: where the final model is saved (directory); None:
      `train_dir/export`. It may not contain train_dir or lie inside it
      (other than the default), and must be new, empty, or a saved model
      (see `models.check_save_path`).
    overwrite: replace a model saved at `export` by another run (a resumed
      run replaces its own export without it).
    strategy: "default" or "mirrored" (tf.distribute.MirroredStrategy over
      all GPUs, or all logical CPUs when there is no GPU).
    precision_policy: Keras mixed precision policy: float32, mixed_float16,
      mixed_bfloat16.
    weight_density: for the density distortions: the 2-D source whose P(x)
      weights D (default: the data source). Fig. 13 trains on "uniform2d"
      with weight_density="student_t".
    logical_cpus: if > 0, split the CPU into this many logical devices
      before TensorFlow starts (to run `mirrored` on one machine without
      GPUs); 0 leaves the devices alone.
    progress: show a tqdm progress bar.
  """
  model: str = None
  data: str = None
  distortion: str = "mse"
  lmbda: Optional[float] = None
  quality: Optional[int] = None
  validation_data: Optional[str] = None
  validation_steps: int = 8
  patchsize: int = 256
  batchsize: int = 8
  epochs: int = 10
  steps_per_epoch: int = 1000
  learning_rate: float = 1e-4
  num_filters: Optional[int] = None
  latent_channels: Optional[int] = None
  num_centers: Optional[int] = None
  seed: int = 0
  train_dir: str = None
  export: Optional[str] = None
  overwrite: bool = False
  strategy: str = "default"
  precision_policy: str = "float32"
  weight_density: Optional[str] = None
  logical_cpus: int = 0
  progress: bool = True

  @classmethod
  def from_dict(cls, config: Mapping[str, Any]) -> "TrainConfig":
    """A config from a mapping; "lambda" is accepted for `lmbda`.

    Raises:
      ValueError: unknown keys (listing the accepted ones).
    """
    config = dict(config)
    if "lambda" in config:
      if config.get("lmbda") is not None:
        raise ValueError("give either 'lambda' or 'lmbda', not both.")
      config["lmbda"] = config.pop("lambda")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(config) - set(names))
    if unknown:
      raise ValueError(f"unknown training config key(s) {unknown}; accepted: "
                       f"{', '.join(names)}.")
    return cls(**config)

  def to_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)

  def validate(self) -> "TrainConfig":
    """Checks every entry; returns self.

    Raises:
      ValueError: the first invalid entry, with what is accepted.
    """
    from tfc_perception import models  # pylint: disable=g-import-not-at-top
    from tfc_perception.models import base  # pylint: disable=g-import-not-at-top
    if self.model is None:
      raise ValueError("no model given (--model); accepted: "
                       f"{', '.join(models.registered_models())}.")
    models.model_class(self.model)  # Unknown name -> ValueError.
    if not self.data:
      raise ValueError("no training data given (--data): a 2-D source "
                       "(student_t, uniform2d), a .npy file of points, "
                       "uniform_noise, or a folder/glob of images.")
    if not self.train_dir:
      raise ValueError("no --train_dir given: the directory for checkpoints, "
                       "logs and (when reused) resuming.")
    self.distortion = base.canonical_distortion(self.distortion)
    if self.lmbda is not None:
      if isinstance(self.lmbda, bool) or not isinstance(
          self.lmbda, numbers.Real) or not math.isfinite(self.lmbda) or (
              self.lmbda <= 0):
        raise ValueError(f"--lambda must be a finite number > 0 (the weight "
                         f"of D in Eq. 3), got {self.lmbda!r}.")
      self.lmbda = float(self.lmbda)
      if self.quality is not None:
        raise ValueError("give either --lambda or --quality, not both "
                         "(--quality sets lambda from the tfci tables).")
    for name in ("patchsize", "batchsize", "epochs", "steps_per_epoch",
                 "validation_steps"):
      _check_int(getattr(self, name), name, 1)
    for name in ("num_filters", "latent_channels", "num_centers", "quality"):
      if getattr(self, name) is not None:
        _check_int(getattr(self, name), name, 1)
    _check_int(self.seed, "seed", 0)
    _check_int(self.logical_cpus, "logical_cpus", 0)
    if self.seed >= 2**31:
      raise ValueError(f"--seed must be < 2**31, got {self.seed}.")
    if isinstance(self.learning_rate, bool) or not isinstance(
        self.learning_rate, numbers.Real) or not (
            math.isfinite(self.learning_rate) and self.learning_rate > 0):
      raise ValueError("--learning_rate must be a finite number > 0, got "
                       f"{self.learning_rate!r}.")
    if self.strategy not in STRATEGIES:
      raise ValueError(f"Unknown --strategy {self.strategy!r}; accepted: "
                       f"{', '.join(STRATEGIES)}.")
    if self.precision_policy not in PRECISION_POLICIES:
      raise ValueError(f"Unknown --precision_policy {self.precision_policy!r};"
                       f" accepted: {', '.join(PRECISION_POLICIES)}.")
    image = _is_image_model(self.model)
    self._check_data(self.data, image, "--data")
    if self.validation_data:
      self._check_data(self.validation_data, image, "--validation_data")
    if self.weight_density and not _sources().is_source_name(
        self.weight_density):
      raise ValueError(f"Unknown --weight_density {self.weight_density!r}; "
                       f"accepted: {', '.join(_sources().SOURCES)}.")
    if _needs_density(self.distortion):
      if image:
        raise ValueError(f"--distortion {self.distortion} needs the exact "
                         "density P(x) of the data, known only for the 2-D "
                         "sources (--model toy2d).")
      weight = self.weight_density or self.data
      if not _sources().is_source_name(weight):
        raise ValueError(
            f"--distortion {self.distortion} weights D by the density of a "
            f"2-D source; --data {self.data!r} has none, so give "
            "--weight_density (student_t or uniform2d).")
    elif self.weight_density:
      raise ValueError("--weight_density is used only with --distortion "
                       f"density_mse or inverse_density_mse, not "
                       f"{self.distortion}.")
    return self

  @staticmethod
  def _check_data(spec, image, flag):
    sources = _sources()
    if not isinstance(spec, str):
      raise ValueError(f"{flag} must be a string, got {type(spec).__name__}.")
    if image:
      if sources.is_source_name(spec):
        raise ValueError(f"{flag} {spec} is a 2-D source, for --model toy2d; "
                         f"image models accept {UNIFORM_NOISE} or a folder/"
                         "glob of images.")
    elif not (sources.is_source_name(spec) or spec.endswith(".npy")):
      raise ValueError(f"{flag} {spec!r} is not data for a 2-D model; "
                       f"accepted: {', '.join(sources.SOURCES)} or a .npy "
                       "file of [N, 2] points.")


@dataclasses.dataclass
class TrainResult:
  """What `train` returns.

  Attributes:
    model: the trained model.
    history: one dict of metrics per completed epoch (all epochs of the run,
      including those before a resume).
    final_metrics: the last epoch's metrics (loss, rate, distortion, and
      val_* with validation data).
    export: path of the exported model.
    manifest: path of the run manifest JSON.
    initial_epoch: the epoch this invocation started from (> 0 if resumed).
    num_replicas: replicas the strategy trained on.
  """
  model: Any
  history: List[Dict[str, float]]
  final_metrics: Dict[str, float]
  export: str
  manifest: str
  initial_epoch: int
  num_replicas: int


def _needs_density(distortion: str) -> bool:
  from tfc_perception.distances import registry  # pylint: disable=g-import-not-at-top
  return registry.get(distortion).needs_density


def _sources():
  from tfc_perception.data import sources  # pylint: disable=g-import-not-at-top
  return sources


def _check_int(value, name, minimum):
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (
      value < minimum):
    raise ValueError(f"--{name} must be an integer >= {minimum}, got "
                     f"{value!r}.")


def _is_image_model(name: str) -> bool:
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  return bool(getattr(models.model_class(name), "is_image_model", True))


# ------------------------------------------------------------------ devices
def configure_logical_cpus(count: int) -> None:
  """Splits the first physical CPU into `count` logical devices.

  Must run before TensorFlow initialises its devices (before the first op).
  Used to run `--strategy mirrored` over several replicas on a CPU-only
  machine (tests, CI).

  Raises:
    ValueError: count < 1.
    RuntimeError: TensorFlow has already started with another count.
  """
  _check_int(count, "logical_cpus", 1)
  cpu = tf.config.list_physical_devices("CPU")[0]
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
  except RuntimeError:
    have = len(tf.config.list_logical_devices("CPU"))
    if have != count:
      raise RuntimeError(
          f"cannot split the CPU into {count} logical devices: TensorFlow is "
          f"already running with {have}; configure them at the start of the "
          "process (bin/train --logical_cpus does).") from None


def make_strategy(name: str) -> tf.distribute.Strategy:
  """The tf.distribute strategy for `--strategy`.

  Args:
    name: "default" (the current/default strategy: one device) or "mirrored"
      (synchronous data parallelism: MirroredStrategy over all GPUs, or over
      all logical CPU devices when there is no GPU, with reduction to one
      device since NCCL needs GPUs).

  Returns:
    A `tf.distribute.Strategy`.

  Raises:
    ValueError: unknown name.
  """
  if name not in STRATEGIES:
    raise ValueError(f"Unknown strategy {name!r}; accepted: "
                     f"{', '.join(STRATEGIES)}.")
  if name == "default":
    return tf.distribute.get_strategy()
  gpus = tf.config.list_logical_devices("GPU")
  if gpus:
    return tf.distribute.MirroredStrategy([d.name for d in gpus])
  cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
  return tf.distribute.MirroredStrategy(
      cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())


# --------------------------------------------------------------------- data
def _load_points(path: str) -> np.ndarray:
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no such .npy file of points: {path!r}.")
  try:
    return np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise ValueError(f"cannot read {path!r} as a .npy array: {e}") from None


def _train_dataset(cfg: TrainConfig, image: bool,
                   start_step: int) -> tf.data.Dataset:
  """The endless training stream, beginning at batch `start_step`."""
  from tfc_perception.data import images  # pylint: disable=g-import-not-at-top
  sources = _sources()
  b, seed = cfg.batchsize, cfg.seed
  if not image:
    if sources.is_source_name(cfg.data):
      return sources.source_dataset(cfg.data, b, seed, start_step)
    return sources.points_dataset(_load_points(cfg.data), b, seed, start_step,
                                  name=cfg.data)
  if cfg.data == UNIFORM_NOISE:
    return images.uniform_noise_images(cfg.patchsize, b, seed, start_step)
  return images.random_crops(cfg.data, cfg.patchsize, b, seed, start_step)


def _validation_dataset(cfg: TrainConfig,
                        image: bool) -> Optional[tf.data.Dataset]:
  """A finite validation set, the same at every epoch (and on resume)."""
  from tfc_perception.data import images  # pylint: disable=g-import-not-at-top
  spec = cfg.validation_data
  if not spec:
    return None
  sources = _sources()
  vseed = (cfg.seed + 2**30) % 2**31  # A stream disjoint from training's.
  b, steps = cfg.batchsize, cfg.validation_steps
  if not image:
    if sources.is_source_name(spec):
      return sources.source_dataset(spec, b, vseed).take(steps)
    points = _load_points(spec)
    # Same checks as for training (shape, NaN), then every point once.
    sources.points_dataset(points, 1, name=spec)
    return tf.data.Dataset.from_tensor_slices(points.astype(np.float32)).batch(b)
  if spec == UNIFORM_NOISE:
    return images.uniform_noise_images(cfg.patchsize, b, vseed).take(steps)
  return images.center_crops(spec, cfg.patchsize, b)


# ---------------------------------------------------------------- callbacks
def _epoch_seed(seed: int, epoch: int) -> int:
  """A global TF seed for (seed, epoch) (deterministic, < 2**31)."""
  return int((seed * 1_000_003 + epoch * 7_919 + 1) % (2**31 - 1))


class _EpochSeeding(tf.keras.callbacks.Callback):
  """Reseeds the train step's random ops at each epoch start.

  The quantisation noise of the models comes from stateful random ops whose
  state lives in the traced train function and is not checkpointed. Tracing
  a fresh train function under `tf.random.set_seed(f(seed, epoch))` makes the
  noise of epoch e a function of (seed, e) alone, so a resumed run draws the
  same noise as an uninterrupted one.
  """

  def __init__(self, seed: int):
    super().__init__()
    self._seed = seed

  def on_epoch_begin(self, epoch, logs=None):
    tf.random.set_seed(_epoch_seed(self._seed, epoch))
    self.model.make_train_function(force=True)


class _Checkpointing(tf.keras.callbacks.Callback):
  """At each epoch end: records the metrics (history.json) and saves the
  weights and optimizer state (tf.train.CheckpointManager)."""

  def __init__(self, manager, epoch_var, history, history_path,
               steps_per_epoch):
    super().__init__()
    self._manager = manager
    self._epoch_var = epoch_var
    self._history = history
    self._history_path = history_path
    self._steps_per_epoch = steps_per_epoch

  def on_epoch_end(self, epoch, logs=None):
    entry = {"epoch": epoch + 1}
    entry.update({k: float(v) for k, v in (logs or {}).items()})
    bad = [k for k, v in entry.items() if not math.isfinite(v)]
    if bad:
      # Never checkpoint diverged weights: the last good checkpoint stays.
      raise RuntimeError(
          f"training diverged in epoch {epoch + 1}: {', '.join(bad)} became "
          "NaN/Inf (checkpoint of the previous epoch kept); lower "
          "--learning_rate or --lambda, or check the data.")
    step = int(self.model.optimizer.iterations.numpy())
    if step != (epoch + 1) * self._steps_per_epoch:
      # Stopped mid-epoch by a callback: not a resumable epoch boundary.
      _LOG.warning("epoch %d stopped after step %d; not checkpointed.",
                   epoch + 1, step)
      return
    self._history.append(entry)
    self._epoch_var.assign(epoch + 1)
    _io.write_json(self._history_path, self._history)
    self._manager.save(checkpoint_number=epoch + 1)


class _ProgressBar(tf.keras.callbacks.Callback):
  """A tqdm progress bar per epoch with the running loss, rate, distortion."""

  def __init__(self, epochs: int, steps: int, every: int = 1):
    super().__init__()
    self._epochs, self._steps = epochs, steps
    self._every = max(1, every)
    self._bar = None

  def on_epoch_begin(self, epoch, logs=None):
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    self._bar = tqdm(total=self._steps, unit="step", file=sys.stderr,
                     desc=f"epoch {epoch + 1}/{self._epochs}",
                     dynamic_ncols=True, leave=True)

  def on_train_batch_end(self, batch, logs=None):
    self._bar.update(1)
    if logs and (batch + 1) % self._every == 0:
      self._bar.set_postfix(_short(logs), refresh=False)

  def on_epoch_end(self, epoch, logs=None):
    if self._bar is not None:
      if logs:
        self._bar.set_postfix(_short(logs), refresh=False)
      self._bar.close()
      self._bar = None

  def on_train_end(self, logs=None):
    if self._bar is not None:
      self._bar.close()


def _devices(strategy) -> List[str]:
  try:
    return list(strategy.extended.worker_devices)
  except RuntimeError:  # The default strategy: one (default) device.
    return []


def _short(logs):
  return {k: f"{float(v):.4g}" for k, v in logs.items()}


# -------------------------------------------------------------------- train
def _build_optimizer_state(model):
  """Creates the optimizer's slot variables now (before any restore or
  trace), so restoring is immediate and every traced train step is the
  same graph."""
  opt = model.optimizer
  inner = getattr(opt, "inner_optimizer", opt)
  inner.build(model.trainable_variables)


def float32_bottlenecks(model) -> int:
  """Makes the training entropy models of `model` take float32 latents.

  tfc's ContinuousBatchedEntropyModel takes its `bottleneck_dtype` from the
  Keras policy at construction, so a model built under mixed_bfloat16 /
  mixed_float16 gets a bfloat16/float16 entropy model, while the models feed
  it float32 latents (the rate must be computed in float32). Until the models
  pass `bottleneck_dtype=tf.float32` themselves, this replaces such an entropy
  model by the same one (same prior object, coding rank, offset setting; it
  holds no variables of its own, so checkpoints are unchanged) with float32
  bottlenecks. Returns the number of entropy models replaced.
  """
  import tensorflow_compression as tfc  # pylint: disable=g-import-not-at-top
  em = getattr(model, "entropy_model", None)
  if not isinstance(em, tfc.ContinuousBatchedEntropyModel) or (
      em.bottleneck_dtype == tf.float32 or em.compression):
    return 0
  model.entropy_model = tfc.ContinuousBatchedEntropyModel(
      em.prior, coding_rank=em.coding_rank, compression=False,
      offset_heuristic=em.offset_heuristic,
      expected_grads=em.expected_grads, tail_mass=em.tail_mass,
      laplace_tail_mass=em.laplace_tail_mass, bottleneck_dtype=tf.float32)
  return 1


def _model_kwargs(cfg: TrainConfig, density) -> Dict[str, Any]:
  """build_model arguments from the config.

  The user's options go to `build_model` (which warns about those a model
  does not take). Two are passed only where the model's constructor takes
  them: the default distortion (so that e.g. the PixelCNN density model,
  trained by likelihood, gets no distortion) and `image_shape`
  (patchsize x patchsize x 3, for models with a fixed input size).
  """
  import inspect  # pylint: disable=g-import-not-at-top
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  params = inspect.signature(models.model_class(cfg.model).__init__).parameters
  kwargs = dict(lmbda=cfg.lmbda, quality=cfg.quality,
                num_filters=cfg.num_filters,
                latent_channels=cfg.latent_channels,
                num_centers=cfg.num_centers, density_fn=density, seed=cfg.seed)
  if "distortion" in params or cfg.distortion != "mse":
    kwargs["distortion"] = cfg.distortion
  if "image_shape" in params:
    kwargs["image_shape"] = (cfg.patchsize, cfg.patchsize, 3)
  return kwargs


def _check_paths(cfg: TrainConfig, train_dir: str, export: str) -> bool:
  """Refuses output paths that would destroy inputs or other files, before
  any training. Returns whether the export may replace a saved model."""
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  if _io.is_within(train_dir, export):
    raise ValueError(
        f"--export {export} contains --train_dir {train_dir} (its checkpoints "
        "and logs): saving the model there would replace them; choose a "
        "folder outside the train_dir.")
  default = os.path.join(train_dir, "export")
  if _io.is_within(export, train_dir) and export != default:
    raise ValueError(
        f"--export {export} lies inside --train_dir {train_dir}; use the "
        f"default ({default}) or a folder outside the train_dir.")
  for spec, name in ((cfg.data, "--data"),
                     (cfg.validation_data, "--validation_data")):
    if spec and os.path.isdir(spec):
      _io.check_output_path(train_dir, {name: spec}, "--train_dir")
      _io.check_output_path(export, {name: spec}, "--export")
  own = False
  manifest = export.rstrip(os.sep) + ".manifest.json"
  if models.is_saved_model(export) and os.path.isfile(manifest):
    try:
      own = _io.read_json(manifest).get("train_dir") == train_dir
    except (OSError, ValueError, AttributeError):
      own = False
  overwrite = bool(cfg.overwrite or own)
  models.check_save_path(export, overwrite=overwrite)
  return overwrite


def _check_resume_config(path: str, cfg: TrainConfig) -> None:
  saved = _io.read_json(path)
  changed = [f"{k}: {saved.get(k)!r} -> {getattr(cfg, k)!r}"
             for k in _RESUME_KEYS if saved.get(k) != getattr(cfg, k)]
  if changed:
    raise ValueError(
        f"--train_dir {os.path.dirname(path)} holds a run with other "
        f"settings ({'; '.join(changed)}); resume with the same settings or "
        "use a new --train_dir.")


def train(config: Union[TrainConfig, Mapping[str, Any]],
          callbacks: Sequence[tf.keras.callbacks.Callback] = ()) -> TrainResult:
  """Trains a compressive autoencoder with Eq. 3 (L = R + lambda * D).

  Resumes from the last checkpoint in `config.train_dir` if there is one
  (weights, optimizer state, epoch; the data streams and training noise
  continue exactly where the uninterrupted run would be). A run that already
  reached `epochs` is not trained further; it is exported again.

  Args:
    config: a `TrainConfig` or a mapping of its fields ("lambda" accepted
      for "lmbda").
    callbacks: extra Keras callbacks (appended after the built-in ones).

  Returns:
    A `TrainResult`.

  Raises:
    ValueError: invalid configuration or data (unknown model/distortion,
      lambda <= 0, NaN in data, wrong channel count, images smaller than the
      crop, a train_dir holding another run, batch size not divisible by the
      number of replicas...).
    FileNotFoundError: no images / points file found.
    RuntimeError: logical CPUs requested after TensorFlow started.
  """
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  t0 = time.time()
  cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(
      config)
  cfg = dataclasses.replace(cfg).validate()
  if cfg.logical_cpus:
    configure_logical_cpus(cfg.logical_cpus)
  image = _is_image_model(cfg.model)
  train_dir = os.path.abspath(cfg.train_dir)
  export = os.path.abspath(cfg.export or os.path.join(train_dir, "export"))
  overwrite = _check_paths(cfg, train_dir, export)
  os.makedirs(train_dir, exist_ok=True)
  config_path = os.path.join(train_dir, "config.json")
  history_path = os.path.join(train_dir, "history.json")
  ckpt_dir = os.path.join(train_dir, "checkpoints")
  if os.path.exists(config_path) and tf.train.latest_checkpoint(ckpt_dir):
    _check_resume_config(config_path, cfg)
  else:
    _io.write_json(config_path, cfg.to_dict())

  strategy = make_strategy(cfg.strategy)
  replicas = strategy.num_replicas_in_sync
  if cfg.batchsize % replicas:
    raise ValueError(f"--batchsize {cfg.batchsize} is not divisible by the "
                     f"{replicas} replicas of --strategy {cfg.strategy}.")

  previous_policy = tf.keras.mixed_precision.global_policy()
  tf.keras.mixed_precision.set_global_policy(cfg.precision_policy)
  try:
    density = None
    if _needs_density(cfg.distortion):
      density = _sources().density_fn(cfg.weight_density or cfg.data)
    with strategy.scope():
      try:
        model = models.build_model(cfg.model,
                                   **_model_kwargs(cfg, density))
      except TypeError as e:
        raise ValueError(f"--model {cfg.model}: {e}") from None
      if cfg.precision_policy != "float32":
        float32_bottlenecks(model)
      model.compile(optimizer=tf.keras.optimizers.Adam(cfg.learning_rate))
      _build_optimizer_state(model)
      epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False,
                              name="epoch")
      checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer,
                                       epoch=epoch_var)
    manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=3)
    history: List[Dict[str, float]] = []
    if manager.latest_checkpoint:
      checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
      if os.path.exists(history_path):
        history = _io.read_json(history_path)
      _LOG.info("resumed %s at epoch %d", manager.latest_checkpoint,
                int(epoch_var.numpy()))
    initial_epoch = int(epoch_var.numpy())
    history = [h for h in history if h["epoch"] <= initial_epoch]
    start_step = initial_epoch * cfg.steps_per_epoch
    if int(model.optimizer.iterations.numpy()) != start_step:
      raise RuntimeError(
          f"checkpoint {manager.latest_checkpoint} is at optimizer step "
          f"{int(model.optimizer.iterations.numpy())}, expected {start_step} "
          f"= epoch {initial_epoch} x {cfg.steps_per_epoch} steps.")

    if initial_epoch < cfg.epochs:
      train_ds = _train_dataset(cfg, image, start_step)
      val_ds = _validation_dataset(cfg, image)
      cbs = [_EpochSeeding(cfg.seed)]
      if cfg.progress:
        cbs.append(_ProgressBar(cfg.epochs, cfg.steps_per_epoch,
                                every=max(1, cfg.steps_per_epoch // 100)))
      cbs += [
          tf.keras.callbacks.TensorBoard(
              log_dir=os.path.join(train_dir, "logs"), write_graph=False,
              update_freq="epoch", profile_batch=0),
          tf.keras.callbacks.TerminateOnNaN(),
          _Checkpointing(manager, epoch_var, history, history_path,
                         cfg.steps_per_epoch),
      ]
      cbs += list(callbacks)
      try:
        model.fit(train_ds, epochs=cfg.epochs, initial_epoch=initial_epoch,
                  steps_per_epoch=cfg.steps_per_epoch, validation_data=val_ds,
                  callbacks=cbs, verbose=0)
      except tf.errors.InvalidArgumentError as e:
        # E.g. the models' finiteness checks once training has diverged.
        lines = [l.strip() for l in (e.message or str(e)).splitlines()
                 if l.strip() and not l.strip().startswith("[[")]
        detail = lines[-1] if lines else type(e).__name__
        raise RuntimeError(
            f"training failed in epoch {int(epoch_var.numpy()) + 1}: "
            f"{detail.strip()} (the checkpoint of the previous epoch is "
            "kept; if the loss diverged, lower --learning_rate or --lambda, "
            "otherwise check the data).") from None
    final = {k: v for k, v in history[-1].items()} if history else {}
    models.save_model(model, export, overwrite=overwrite)
    manifest_path = export.rstrip(os.sep) + ".manifest.json"
    manifest = _io.make_manifest(
        cfg.to_dict(), wall_time_s=time.time() - t0,
        final_metrics=final, epochs_completed=len(history),
        global_step=int(model.optimizer.iterations.numpy()),
        resumed_from_epoch=initial_epoch, num_replicas=replicas,
        strategy_devices=_devices(strategy),
        rate_unit=getattr(model, "rate_unit", None),
        train_dir=train_dir, export=export, history=history)
    _io.write_json(manifest_path, manifest)
    return TrainResult(model=model, history=history, final_metrics=final,
                       export=export, manifest=manifest_path,
                       initial_epoch=initial_epoch, num_replicas=replicas)
  finally:
    tf.keras.mixed_precision.set_global_policy(previous_policy)
