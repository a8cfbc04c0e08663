"""`TrainSpec`: everything one training run needs, as a frozen, typed value.

`tfc_perception.training.fit(model, data, spec)` trains with it, and its
fields and their help text are bin/train's flags (`flag_specs()`): one
source, no hand-kept list. The module imports no TensorFlow, so bin/train
can answer --help without starting it.

Two groups of fields:

- what to train -- `model`, `distortion`, `lmbda`, `quality`, the model
  sizes, `data`, `validation_data`, `patchsize`, `weight_density`,
  `export`: `training.train(spec)` (bin/train) builds the model and the data
  pipelines from them. A Python caller that gives `fit` a model and data
  leaves them unset.
- how to train -- batch size, epochs and steps, learning rate and schedule,
  steps_per_execution, seed, checkpoints, tf.distribute strategy, precision
  policy, progress bar.

Validation happens at construction (types and ranges) and in `fit` (names of
models, metrics and data); errors name the field, e.g. "learning_rate must
be finite and > 0, got -1.0." (bin/train shows the flag: "--learning_rate").
"""

import dataclasses
import re
from typing import Any, Dict, List, Optional

from tfc_perception import _checks
from tfc_perception import _typed

__all__ = ["TrainSpec", "STRATEGIES", "PRECISION_POLICIES", "LR_SCHEDULES",
           "flag_specs", "flag_name", "field_to_flag", "RESUME_FIELDS"]

STRATEGIES = ("default", "mirrored", "multiworker")
PRECISION_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
LR_SCHEDULES = ("constant", "cosine", "exponential")

# Fields that define the model, the objective or the data stream: a run
# resumed from a train_dir must use the same values. (`epochs` too when the
# learning rate follows a schedule over all steps.)
RESUME_FIELDS = ("model", "distortion", "lmbda", "quality", "num_filters",
                 "latent_channels", "num_centers", "data", "patchsize",
                 "weight_density", "batchsize", "steps_per_epoch",
                 "learning_rate", "lr_schedule", "lr_floor", "seed",
                 "precision_policy")


def _field(default, help_text: str, *, flag: Optional[str] = None,
           minimum=None, maximum=None, choices=None, group: str = "train"):
  return dataclasses.field(default=default, metadata={
      "help": help_text, "flag": flag, "minimum": minimum,
      "maximum": maximum, "choices": choices, "group": group})


@dataclasses.dataclass(frozen=True)
class TrainSpec:
  """A training run (see the module docstring). Every field has a default;
  `dataclasses.replace(spec, steps_per_epoch=...)` derives a new spec."""

  # ----------------------------------------------------------- what to train
  model: Optional[str] = _field(
      None, "Model to build and train: a codec (toy2d: the 2-D autoencoder "
      "of Fig. 10; factorized: Fig. 15; softquant: Fig. 17) or a density "
      "model (pixelcnn, dae). Unset when fit() is given a model.",
      group="model")
  distortion: Optional[str] = _field(
      None, "D of Eq. 3: a metric of tfc_perception.distances.registry "
      "(bin/evaluate distances --list), e.g. mse, msssim, nlpd (grey-level "
      "laparra2016), nlpd_rgb, nlpd2017 for images; mse, density_mse, "
      "inverse_density_mse for 2-D sources. Default: the model's (mse).",
      group="model")
  lmbda: Optional[float] = _field(
      None, "lambda of Eq. 3 (> 0), the weight of D. Default: the model's "
      "(or the one of quality). Exclusive with quality.", flag="lambda",
      minimum=0.0, group="model")
  quality: Optional[int] = _field(
      None, "factorized only: quality 1-8, setting N, M (128/192 for 1-5, "
      "192/320 for 6-8) and lambda from the tfci tables for distortion mse "
      "or msssim.", minimum=1, maximum=8, group="model")
  num_filters: Optional[int] = _field(
      None, "N, filters of the hidden layers (image models). Default: the "
      "model's (or quality's).", minimum=1, group="model")
  latent_channels: Optional[int] = _field(
      None, "M, channels of the latent y (image models). Default: the "
      "model's (or quality's).", minimum=1, group="model")
  num_centers: Optional[int] = _field(
      None, "L, quantisation centres of softquant (max rate M*log2(L)/256 "
      "bpp).", minimum=2, group="model")
  data: Optional[str] = _field(
      None, "Training data: student_t | uniform2d (2-D sources, toy2d) | a "
      ".npy file of [N, 2] points (toy2d) | uniform_noise (uniform 8-bit "
      "noise images) | a folder (searched recursively) or glob of "
      ".png/.jpg/.bmp images (random patchsize crops).", group="model")
  validation_data: Optional[str] = _field(
      None, "Validation data, evaluated after every epoch (same choices as "
      "data; image folders give one central crop per image). Default: none.",
      group="model")
  validation_steps: int = _field(
      8, "Validation batches drawn from endless sources (2-D sources, "
      "uniform_noise).", minimum=1, group="model")
  patchsize: int = _field(
      256, "Side in pixels of the square training crops (images).",
      minimum=1, group="model")
  weight_density: Optional[str] = _field(
      None, "With distortion density_mse/inverse_density_mse: the 2-D source "
      "whose density P(x) weights D (student_t | uniform2d; default: data). "
      "Fig. 13 trains on data uniform2d with weight_density student_t.",
      group="model")
  export: Optional[str] = _field(
      None, "Directory for the final model (models.save_model), with the run "
      "manifest at <export>.manifest.json. Default: <train_dir>/export. Must "
      "be new, empty or a saved model; never the train_dir, a folder "
      "containing it or another folder inside it.", group="model")
  overwrite: bool = _field(
      False, "Replace a model that another run saved at export (a resumed "
      "run replaces its own export without it).", group="model")

  # ------------------------------------------------------------ how to train
  batchsize: int = _field(
      8, "Global batch size (split over the replicas of strategy "
      "mirrored).", minimum=1)
  epochs: int = _field(
      10, "Total number of epochs (a resumed run continues to it). Metrics "
      "and validation are recorded per epoch (history.json).", minimum=1)
  steps_per_epoch: int = _field(
      1000, "Optimizer steps per epoch.", minimum=1)
  learning_rate: float = _field(1e-4, "Adam learning rate (initial).",
                                minimum=0.0)
  lr_schedule: str = _field(
      "constant", "Learning-rate schedule over all epochs*steps_per_epoch "
      "steps: constant | cosine (Keras CosineDecay to lr_floor*learning_rate)"
      " | exponential (learning_rate * lr_floor**(step/steps)).",
      choices=LR_SCHEDULES)
  lr_floor: float = _field(
      0.05, "Final learning rate of the cosine/exponential schedules, as a "
      "fraction of learning_rate (0..1).", minimum=0.0, maximum=1.0)
  steps_per_execution: int = _field(
      1, "Optimizer steps run per call of the traced train function (Keras "
      "steps_per_execution; larger is faster for small models). Callbacks, "
      "checkpoints and Ctrl-C act at these boundaries.", minimum=1)
  seed: int = _field(
      0, "Seed of the initial weights, the data streams (file order, crops, "
      "samples) and the training noise (a function of (seed, step)).",
      minimum=0, maximum=2**31 - 1)
  train_dir: Optional[str] = _field(
      None, "Directory for checkpoints (with optimizer state), TensorBoard "
      "logs (logs/), history.json, log.csv and curves.png. Reusing it "
      "resumes the run from its last checkpoint. Unset (Python only): no "
      "checkpoints.")
  checkpoint_every: int = _field(
      0, "Also write a checkpoint every this many steps (0: only by time, "
      "at epoch ends, at the end and on Ctrl-C/SIGTERM).", minimum=0)
  checkpoint_seconds: float = _field(
      300.0, "Write a checkpoint when this many seconds have passed since "
      "the last one (0: never by time; ignored by strategy multiworker, "
      "whose workers must save at the same step: use checkpoint_every).",
      minimum=0.0)
  strategy: str = _field(
      "default", "tf.distribute strategy: default (one device) | mirrored "
      "(synchronous data parallelism over all GPUs, or all logical CPUs "
      "without GPUs) | multiworker (MultiWorkerMirroredStrategy over the "
      "machines of the TF_CONFIG environment variable; the chief writes "
      "train_dir, which every worker must be able to read).",
      choices=STRATEGIES)
  precision_policy: str = _field(
      "float32", "Keras mixed precision policy for the layers (entropy "
      "models and rates stay float32).", choices=PRECISION_POLICIES)
  logical_cpus: int = _field(
      0, "If > 0, split the CPU into this many logical devices before "
      "TensorFlow starts (to run strategy mirrored without GPUs, e.g. in "
      "tests).", minimum=0)
  progress: bool = _field(True, "Show a progress bar.")
  run_eagerly: bool = _field(
      False, "Run the train step eagerly (debugging; slow).")

  def __post_init__(self):
    _typed.check_fields(self)
    for f in dataclasses.fields(self):
      value = getattr(self, f.name)
      if value is None:
        continue
      meta = f.metadata
      if meta.get("choices") is not None:
        _checks.check_choice(value, f.name, meta["choices"])
      low, high = meta.get("minimum"), meta.get("maximum")
      if isinstance(value, bool) or (low is None and high is None):
        continue
      if isinstance(value, int):
        _checks.check_int(value, f.name, low, high)
      elif isinstance(value, float):
        if f.name in ("lmbda", "learning_rate"):
          _checks.check_positive(value, f.name)
        else:
          _checks.check_positive(value, f.name, allow_zero=True)
        if high is not None and value > high:
          raise ValueError(f"{f.name} must be <= {high}, got {value}.")
    if self.lmbda is not None and self.quality is not None:
      raise ValueError("give either lmbda or quality, not both (quality sets "
                       "lambda from the tfci tables).")

  @property
  def total_steps(self) -> int:
    """epochs * steps_per_epoch."""
    return self.epochs * self.steps_per_epoch

  def to_dict(self) -> Dict[str, Any]:
    return _typed.to_dict(self)

  @classmethod
  def from_dict(cls, config) -> "TrainSpec":
    """A spec from a mapping of its fields ("lambda" accepted for lmbda).

    Raises:
      ValueError: unknown keys (listing the accepted ones) or bad values.
    """
    config = dict(config)
    if "lambda" in config:
      if config.get("lmbda") is not None:
        raise ValueError("give either 'lambda' or 'lmbda', not both.")
      config["lmbda"] = config.pop("lambda")
    return _typed.from_dict(cls, config)

  def model_fields(self) -> Dict[str, Any]:
    """The fields that describe what to train and are set."""
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
            if f.metadata.get("group") == "model"
            and getattr(self, f.name) != f.default}


def flag_name(field_name: str) -> str:
  """bin/train's flag for a field (lmbda -> lambda; others unchanged)."""
  for f in dataclasses.fields(TrainSpec):
    if f.name == field_name:
      return f.metadata.get("flag") or f.name
  raise KeyError(field_name)


def field_to_flag(message: str) -> str:
  """Rewrites a validation message for bin/train: field names become their
  flags ("learning_rate must ..." -> "--learning_rate must ...", lmbda ->
  --lambda)."""
  for f in dataclasses.fields(TrainSpec):
    flag = "--" + (f.metadata.get("flag") or f.name)
    # Names like learning_rate or lmbda are not prose: replace them
    # anywhere; plain words (data, model, seed) only where they are the
    # subject of the message.
    distinct = "_" in f.name or f.metadata.get("flag")
    context = "" if distinct else r"(?= must| \(| is|:)"
    message = re.sub(rf"(?<![\w-]){re.escape(f.name)}(?!\w){context}", flag,
                     message)
  return message


def flag_specs() -> List[Dict[str, Any]]:
  """One entry per field, for defining bin/train's flags: name (the flag),
  field, kind ("string" | "integer" | "float" | "bool" | "enum"), default,
  help, choices."""
  out = []
  for f in dataclasses.fields(TrainSpec):
    hint = f.type
    args = getattr(hint, "__args__", ())
    base = next((a for a in args if a is not type(None)), hint)
    kind = {str: "string", int: "integer", float: "float",
            bool: "bool"}[base]
    if f.metadata.get("choices"):
      kind = "enum"
    out.append({"name": f.metadata.get("flag") or f.name, "field": f.name,
                "kind": kind, "default": f.default,
                "help": f.metadata["help"],
                "choices": list(f.metadata.get("choices") or [])})
  return out
