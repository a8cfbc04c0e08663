"""The one trainer: `fit(model, data, spec)`, and `train(spec)` for bin/train.

Hepburn et al. (ICLR 2022) train every model with the rate-distortion
Lagrangian L = R + lambda * D (Eq. 3): the 2-D autoencoder of Fig. 10 on the
Student-t / uniform sources (Figs. 11-14), the factorized-prior model of
Fig. 15 on image crops and the soft-quantisation model of Fig. 17 on natural
images or uniform noise (Sec. 5.2); and the density models by likelihood
(the PixelCNN++ of Obs. 1) or denoising (the DAE of Fig. 9). The models
implement their objective in their Keras `train_step`
(`tfc_perception.models`); this module is the run around it, used by
bin/train and by every experiment:

1. the spec (`train_spec.TrainSpec`: frozen, typed, the single source of
   bin/train's flags) is checked;
2. the tf.distribute strategy (`make_strategy`) and the Keras precision
   policy are set up, and the model is built in their scope (`model` may be
   a function that builds it) and compiled with Adam and the spec's
   learning-rate schedule and steps_per_execution;
3. the latest checkpoint of `spec.train_dir` (weights, optimizer state, the
   metrics of the current epoch) is restored, at any step;
4. `model.fit` runs from that step, with a progress bar, TensorBoard
   (`train_dir/logs`), a NaN guard, checkpoints every `checkpoint_every`
   steps / `checkpoint_seconds` seconds and at epoch ends
   (`train_dir/checkpoints`), the per-epoch history (`history.json`) and
   interval means of the training metrics (`log.csv`);
5. at the end `train_dir/curves.png` shows loss, rate and distortion (or the
   model's metrics) against the step, with validation if given.

Resume. Batch i of every training stream is a pure function of (seed, i)
(`tfc_perception.data`; a `data` callable gets the step to start at), and
the training noise of the models is stateless, a function of (seed, step)
(`models.base.CompressionModel._step_seed`). A run restarted with the same
`train_dir` therefore resumes from its last checkpoint and ends in the state
of an uninterrupted run (tested bit for bit). SIGINT / SIGTERM write a
checkpoint and raise `TrainingInterrupted`, whose message is the one line
bin/train and bin/reproduce print: "interrupted at step N; checkpoint saved;
rerun the same command to resume".

Several machines (`strategy="multiworker"`): MultiWorkerMirroredStrategy
over the cluster of the TF_CONFIG environment variable (docs/training.md
shows TF_CONFIG for two hosts, Kubernetes and Slurm). Every worker runs the
same command; worker i takes rows [i*b, (i+1)*b) of every global batch
(tf.data DATA sharding of the same (seed, step) stream) and the slice of the
global batch's training noise for those rows, so the update is that of one
process with the global batch. Only the chief (the "chief" task, else
worker 0) writes train_dir (checkpoints, logs, history), the export and the
manifest; the other workers save their part of each checkpoint into a
temporary directory that is removed when they end, and restore from the
chief's train_dir, which therefore must be readable by every worker (a
shared file system). Checkpoints are written at the same steps on every
worker (checkpoint_every, epoch ends; not by time), and when a worker dies
the others stop with an error naming the step: restarting every worker with
the same command resumes from the chief's last checkpoint, at its step, to
the state of an uninterrupted run.
"""

import dataclasses
import json
import logging
import math
import os
import re
import shutil
import signal
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tfc_perception import _io
from tfc_perception.train_spec import PRECISION_POLICIES
from tfc_perception.train_spec import RESUME_FIELDS
from tfc_perception.train_spec import STRATEGIES
from tfc_perception.train_spec import TrainSpec

__all__ = ["TrainSpec", "TrainResult", "TrainingInterrupted", "fit", "train",
           "interruptible", "make_strategy", "configure_logical_cpus",
           "STRATEGIES", "PRECISION_POLICIES", "UNIFORM_NOISE"]

_LOG = logging.getLogger(__name__)

UNIFORM_NOISE = "uniform_noise"

# Fields describing what to train: bin/train builds the model and data from
# them; fit() given a model and data must not get them too.
_DESCRIBING = ("model", "distortion", "lmbda", "quality", "num_filters",
               "latent_channels", "num_centers", "data", "validation_data",
               "weight_density", "export")


class TrainingInterrupted(Exception):
  """SIGINT or SIGTERM stopped training; a checkpoint was written (when there
  is a train_dir). `str(e)` is the one line to show the user.

  Attributes:
    step: the optimizer step reached.
    signum: the signal number.
    saved: whether a checkpoint at `step` was written.
    train_dir: the run's directory (None without one).
    exit_code: 128 + signum, the shell convention.
  """

  def __init__(self, step: int, signum: int, saved: bool,
               train_dir: Optional[str]):
    self.step, self.signum, self.saved = step, signum, saved
    self.train_dir = train_dir
    self.exit_code = 128 + int(signum)
    if saved:
      text = (f"interrupted at step {step}; checkpoint saved; rerun the same "
              "command to resume")
    else:
      text = (f"interrupted at step {step}; no train_dir was given, so no "
              "checkpoint was saved")
    super().__init__(text)


@dataclasses.dataclass
class TrainResult:
  """What `fit` and `train` return.

  Attributes:
    model: the trained model.
    history: one dict per completed epoch ("epoch", "step", the training
      metrics as epoch means, val_* with validation data, and the values of
      `metrics_fn`), including those before a resume; an entry with epoch 0
      and step 0 holds `metrics_fn` before training.
    final_metrics: the last epoch's entry (empty if none).
    initial_step: the step this invocation started from (> 0: resumed).
    global_step: the optimizer step reached.
    num_replicas: replicas the strategy trained on.
    train_dir: the run's directory, or None.
    curves: path of curves.png, or None.
    export: path of the exported model (`train` only).
    manifest: path of the run manifest JSON (`train` only).
    wall_time_s: seconds spent in this invocation.
    writes_outputs: whether this process writes the run's files (always, for
      the single-machine strategies; on the chief only with strategy
      multiworker, see `_writes_outputs`; the other workers write no
      train_dir files, export or manifest).
  """
  model: Any
  history: List[Dict[str, float]]
  final_metrics: Dict[str, float]
  initial_step: int
  global_step: int
  num_replicas: int
  train_dir: Optional[str] = None
  curves: Optional[str] = None
  export: Optional[str] = None
  manifest: Optional[str] = None
  wall_time_s: float = 0.0
  writes_outputs: bool = True

  @property
  def resumed(self) -> bool:
    return self.initial_step > 0


# ------------------------------------------------------------------ devices
def configure_logical_cpus(count: int) -> None:
  """Splits the first physical CPU into `count` logical devices.

  Must run before TensorFlow initialises its devices (before the first op).
  Used to run `strategy="mirrored"` over several replicas on a CPU-only
  machine (tests, CI).

  Raises:
    ValueError: count < 1.
    RuntimeError: TensorFlow has already started with another count.
  """
  from tfc_perception import _checks  # pylint: disable=g-import-not-at-top
  _checks.check_int(count, "logical_cpus", 1)
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
  """The tf.distribute strategy of `TrainSpec.strategy`.

  Args:
    name: "default" (the current/default strategy: one device), "mirrored"
      (synchronous data parallelism: MirroredStrategy over all GPUs, or over
      all logical CPU devices when there is no GPU, with reduction to one
      device since NCCL needs GPUs) or "multiworker"
      (MultiWorkerMirroredStrategy over the cluster of TF_CONFIG; one per
      process, created before TensorFlow runs anything else -- `train`
      does that first).

  Returns:
    A `tf.distribute.Strategy`.

  Raises:
    ValueError: unknown name; multiworker without a valid TF_CONFIG.
    RuntimeError: multiworker asked for after TensorFlow started.
  """
  if name not in STRATEGIES:
    raise ValueError(f"Unknown strategy {name!r}; accepted: "
                     f"{', '.join(STRATEGIES)}.")
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "multiworker":
    return _multiworker_strategy()
  gpus = tf.config.list_logical_devices("GPU")
  if gpus:
    return tf.distribute.MirroredStrategy([d.name for d in gpus])
  cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
  return tf.distribute.MirroredStrategy(
      cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())


_MULTIWORKER: List[tf.distribute.Strategy] = []


def cluster_from_tf_config(text: Optional[str]) -> Dict[str, Any]:
  """Checks a TF_CONFIG value for strategy multiworker and returns it.

  TF_CONFIG = {"cluster": {"worker": ["host0:port", "host1:port", ...]
  (and optionally "chief": ["host:port"])}, "task": {"type": "worker" |
  "chief", "index": i}}, the same cluster on every machine and its own task.

  Raises:
    ValueError: missing, not JSON, or not of that shape (the message says
      what was wrong and shows the expected form).
  """
  example = ('{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
             '"task": {"type": "worker", "index": 0}}')
  if not text:
    raise ValueError("strategy multiworker reads its cluster from the "
                     "TF_CONFIG environment variable, which is not set; set "
                     f"it on every machine, e.g. TF_CONFIG='{example}' with "
                     "that machine's index (docs/training.md).")
  try:
    config = json.loads(text)
    cluster, task = config["cluster"], config["task"]
    jobs = {k: list(v) for k, v in cluster.items()}
    kind, index = task["type"], int(task["index"])
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise ValueError(f"TF_CONFIG is not a valid cluster description ({e!r}); "
                     f"expected e.g. '{example}'.") from None
  if not jobs.get("worker") and not jobs.get("chief"):
    raise ValueError(f"TF_CONFIG lists no worker or chief task; expected e.g. "
                     f"'{example}'.")
  if kind not in jobs or not 0 <= index < len(jobs[kind]):
    raise ValueError(f"TF_CONFIG's task {kind!r} {index} is not in its "
                     f"cluster {jobs}.")
  return config


def _multiworker_strategy() -> tf.distribute.Strategy:
  if not _MULTIWORKER:
    cluster_from_tf_config(os.environ.get("TF_CONFIG"))
    try:
      _MULTIWORKER.append(tf.distribute.MultiWorkerMirroredStrategy())
    except (RuntimeError, ValueError) as e:
      raise RuntimeError(
          "strategy multiworker must be created before TensorFlow runs "
          "anything else in the process (call training.make_strategy("
          "'multiworker') first; bin/train does): "
          f"{str(e).strip().splitlines()[0]}") from None
  return _MULTIWORKER[0]


def _is_multiworker(strategy: tf.distribute.Strategy) -> bool:
  return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _writes_outputs(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes checkpoints, logs and exports: the only
  worker of the single-machine strategies; with several workers the chief
  (the "chief" task if the cluster has one, else worker 0)."""
  if not _is_multiworker(strategy):
    return True
  resolver = strategy.cluster_resolver
  jobs = resolver.cluster_spec().as_dict()
  if "chief" in jobs:
    return resolver.task_type == "chief"
  return resolver.task_type == "worker" and resolver.task_id == 0


def _shard_by_rows(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """With several workers, worker i takes rows [i*b, (i+1)*b) of every
  global batch (DATA sharding after Keras splits the batch), whatever the
  stream reads: the same examples as one process with the global batch."""
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.DATA)
  return dataset.with_options(options)


# -------------------------------------------------------------- run files
class _RunFiles:
  """The files of a run in `train_dir` (all written atomically; nothing is
  written by a process that is not the writer, or without a train_dir)."""

  def __init__(self, train_dir: Optional[str], writer: bool):
    self.dir = os.path.abspath(train_dir) if train_dir else None
    self.writer = writer and self.dir is not None
    if self.dir:
      self.checkpoints = os.path.join(self.dir, "checkpoints")
      self.history = os.path.join(self.dir, "history.json")
      self.log = os.path.join(self.dir, "log.csv")
      self.run = os.path.join(self.dir, "run.json")
      self.curves = os.path.join(self.dir, "curves.png")
      self.logs = os.path.join(self.dir, "logs")
    if self.writer:
      os.makedirs(self.dir, exist_ok=True)

  def remove_stale_temporaries(self) -> List[str]:
    """Deletes what a crash while saving leaves behind: TensorFlow's
    `ckpt-N_temp/` directories and `checkpoint.tmp*` state files, and the
    temporary files of this module's atomic writes. Returns what it
    removed."""
    removed = []
    if not self.writer:
      return removed
    if os.path.isdir(self.checkpoints):
      for name in os.listdir(self.checkpoints):
        path = os.path.join(self.checkpoints, name)
        if re.fullmatch(r"ckpt-\d+_temp", name) and os.path.isdir(path):
          shutil.rmtree(path, ignore_errors=True)
          removed.append(path)
        elif re.fullmatch(r"checkpoint\.tmp[0-9a-f]+", name):
          os.remove(path)
          removed.append(path)
    ours = ("history.json", "log.csv", "run.json", "curves.png")
    for name in os.listdir(self.dir):
      if any(re.fullmatch(rf"\.{re.escape(b)}\..+\.tmp", name) for b in ours):
        os.remove(os.path.join(self.dir, name))
        removed.append(os.path.join(self.dir, name))
    return removed

  def read_history(self, up_to_step: int) -> List[Dict[str, float]]:
    if not self.dir or not os.path.exists(self.history):
      return []
    return [h for h in _io.read_json(self.history)
            if h.get("step", 0) <= up_to_step]

  def read_log(self, up_to_step: int) -> List[Dict[str, float]]:
    if not self.dir or not os.path.exists(self.log):
      return []
    import csv  # pylint: disable=g-import-not-at-top
    with open(self.log, newline="", encoding="utf-8") as f:
      rows = [{k: int(float(v)) if k == "step" else float(v)
               for k, v in r.items() if v != ""} for r in csv.DictReader(f)]
    return [r for r in rows if r["step"] <= up_to_step]

  def write_history(self, history) -> None:
    if self.writer:
      _io.write_json(self.history, history)

  def write_log(self, rows) -> None:
    if self.writer and rows:
      names = ["step"] + sorted({k for r in rows for k in r} - {"step"})
      _io.write_csv(self.log, rows, fieldnames=names)

  def write_run(self, record) -> None:
    if self.writer:
      _io.write_json(self.run, record)


# --------------------------------------------------------------- learning
def _learning_rate(spec: TrainSpec):
  """The Adam learning rate of the spec: a float or a Keras schedule over
  all epochs * steps_per_epoch steps."""
  if spec.lr_schedule == "constant":
    return spec.learning_rate
  if spec.lr_schedule == "cosine":
    return tf.keras.optimizers.schedules.CosineDecay(
        spec.learning_rate, spec.total_steps, alpha=spec.lr_floor)
  return tf.keras.optimizers.schedules.ExponentialDecay(
      spec.learning_rate, decay_steps=spec.total_steps,
      decay_rate=spec.lr_floor)


def _build_optimizer_state(model):
  """Creates the optimizer's slot variables now (before any restore or
  trace), so restoring is immediate and every traced train step is the
  same graph."""
  opt = model.optimizer
  inner = getattr(opt, "inner_optimizer", opt)
  inner.build(model.trainable_variables)


def _restart_seed(seed: int, step: int) -> int:
  """Global TF seed set before tracing (for random ops a model does not
  make stateless, e.g. dropout inside tfp's PixelCNN)."""
  return int((seed * 1_000_003 + step * 7_919 + 1) % (2**31 - 1))


def _as_data_fn(data) -> Callable[[int], tf.data.Dataset]:
  if isinstance(data, tf.data.Dataset):
    return lambda start: data.skip(start) if start else data
  if callable(data):
    return data
  raise TypeError("data must be a tf.data.Dataset whose batch i is a function "
                  "of i, or a function start_step -> Dataset; got "
                  f"{type(data).__name__}.")


def _json_able(config) -> Any:
  return json.loads(json.dumps(config, default=str))


def _resume_record(spec: TrainSpec, model) -> Dict[str, Any]:
  fields = list(RESUME_FIELDS)
  if spec.lr_schedule != "constant":
    fields.append("epochs")  # The schedule spans all steps.
  record = {"spec": {k: getattr(spec, k) for k in fields}}
  get_config = getattr(model, "get_config", None)
  config = {}
  if callable(get_config):
    try:
      config = _json_able(get_config())
    except (NotImplementedError, TypeError):
      config = {}
  config.pop("seed", None)
  record["model"] = {"class": type(model).__name__, "config": config}
  return _json_able(record)


def _check_resume(files: _RunFiles, record: Dict[str, Any]) -> None:
  saved = _io.read_json(files.run)
  changed = []
  for section in ("spec", "model"):
    old, new = saved.get(section, {}), record[section]
    if section == "model":
      old = dict(old.get("config", {}), _class=old.get("class"))
      new = dict(new.get("config", {}), _class=new.get("class"))
    for key in sorted(set(old) | set(new)):
      if old.get(key) != new.get(key):
        name = key if section == "spec" else f"model {key.strip('_')}"
        changed.append(f"{name}: {old.get(key)!r} -> {new.get(key)!r}")
  if changed:
    raise ValueError(
        f"train_dir {files.dir} holds a run with other settings "
        f"({'; '.join(changed)}); resume with the same settings or use a new "
        "train_dir.")


def _finite(logs) -> List[str]:
  return [k for k, v in (logs or {}).items()
          if isinstance(v, (int, float, np.floating)) and not math.isfinite(v)]


_ACTIVE_SIGNALS = None


class _Signals:
  """SIGINT/SIGTERM set a flag (acted on at the next step boundary) instead
  of raising inside TensorFlow; a second signal gets the default behaviour.
  Only in the main thread (signal handlers cannot be set elsewhere), and not
  with several workers (`enabled=False`): a checkpoint needs every worker,
  and a signal reaches one (the run resumes from the last step checkpoint).
  Nested sections share the outermost one's flag (see `interruptible`)."""

  def __init__(self, enabled: bool = True):
    self.signum = None
    self.handled = False
    self._old = {}
    self._owner = None
    self._enabled = enabled

  def __enter__(self):
    global _ACTIVE_SIGNALS
    if not self._enabled:
      return self
    if _ACTIVE_SIGNALS is not None:
      self._owner = _ACTIVE_SIGNALS
      return _ACTIVE_SIGNALS
    if threading.current_thread() is threading.main_thread():
      for s in (signal.SIGINT, signal.SIGTERM):
        self._old[s] = signal.signal(s, self._handle)
      _ACTIVE_SIGNALS = self
    return self

  def _handle(self, signum, frame):
    del frame
    self.signum = signum
    self._restore()

  def _restore(self):
    for s, handler in self._old.items():
      signal.signal(s, handler)
    self._old = {}

  def __exit__(self, exc_type, exc, tb):
    global _ACTIVE_SIGNALS
    if self._owner is not None:
      return False
    self._restore()
    if _ACTIVE_SIGNALS is self:
      _ACTIVE_SIGNALS = None
    if self.signum is not None and not self.handled and exc_type is None:
      # The signal came when no training step could act on it (while a
      # model was built or saved): stop as Python would have.
      raise KeyboardInterrupt
    return False


def interruptible() -> _Signals:
  """A context in which Ctrl-C / SIGTERM are deferred to the next training
  step boundary of `fit` (which writes a checkpoint and raises
  `TrainingInterrupted`); a signal that no training step handled raises
  KeyboardInterrupt when the context ends. The experiment runner wraps each
  model's training in it, so Ctrl-C while a model is being set up still
  stops with a checkpoint."""
  return _Signals()


class _Run(tf.keras.callbacks.Callback):
  """The trainer's bookkeeping during `model.fit`: history, interval means
  (log.csv), checkpoints, the NaN guard, Ctrl-C and the progress bar."""

  def __init__(self, *, spec, files, manager, history, log_rows,
               start_step, signals, metrics_fn, saved_metrics,
               by_time=True):
    super().__init__()
    self.spec, self.files, self.manager = spec, files, manager
    self.by_time = by_time  # (not with several workers: same steps on all)
    self.history, self.log_rows = history, log_rows
    self.signals, self.metrics_fn = signals, metrics_fn
    self.saved_metrics = saved_metrics  # restored mid-epoch metric states
    self.last_saved = start_step
    self.last_time = time.time()
    self.interrupted_at = None
    self.diverged = None
    self.stopped = False
    self.bar = None
    self.shown_step = start_step
    self.shown_time = 0.0
    self.epoch_start = None
    self.prev = (0, {})  # (steps into the epoch, running means)
    total = spec.total_steps
    self.log_every = max(1, total // 200)
    self.next_log = (start_step // self.log_every + 1) * self.log_every

  # -- helpers
  def step(self) -> int:
    return int(self.model.optimizer.iterations.numpy())

  def save(self, step: int) -> None:
    if self.manager is None or step == self.last_saved:
      return
    if self.files.writer:
      self.files.write_log(self.log_rows)
    # (Every worker saves: the chief into train_dir, the others into a
    # temporary directory; the saved values are gathered across workers.)
    self.manager.save(checkpoint_number=step)
    self.last_saved = step
    self.last_time = time.time()

  def _stop(self):
    self.model.stop_training = True
    self.stopped = True

  # -- Keras hooks
  def on_train_begin(self, logs=None):
    if self.metrics_fn is not None and not self.history and (
        self.step() == 0):
      self.history.append({"epoch": 0, "step": 0,
                           **_floats(self.metrics_fn(self.model))})
    if self.spec.progress and self.bar is None:
      from tqdm import tqdm  # pylint: disable=g-import-not-at-top
      self.bar = tqdm(total=self.spec.total_steps, initial=self.step(),
                      unit="step", file=sys.stderr, dynamic_ncols=True,
                      leave=True)

  def on_epoch_begin(self, epoch, logs=None):
    steps = self.spec.steps_per_epoch
    self.epoch_start = epoch * steps
    self.prev = (0, {})
    if self.saved_metrics is not None:
      # Resumed mid-epoch: fit reset the metrics; the epoch's running means
      # continue from the checkpoint, and the next log.csv row starts where
      # the last one of this epoch ended.
      for v, value in zip(_metric_variables(self.model), self.saved_metrics):
        v.assign(value)
      self.saved_metrics = None
      rows = [r for r in self.log_rows if r["step"] > self.epoch_start]
      if rows:
        n0 = rows[-1]["step"] - self.epoch_start
        means, last = {}, self.epoch_start
        for r in rows:
          for k, v in r.items():
            if k != "step":
              means[k] = means.get(k, 0.0) + v * (r["step"] - last)
          last = r["step"]
        self.prev = (n0, {k: v / n0 for k, v in means.items()})
    if self.bar is not None:
      self.bar.set_description(f"epoch {epoch + 1}/{self.spec.epochs}")

  def on_train_batch_end(self, batch, logs=None):
    step = self.step()
    logs = dict(logs or {})
    bad = _finite(logs)
    if bad:
      self.diverged = (step, bad)
      self._stop()
      return
    self._log_interval(step, logs)
    if self.bar is not None:
      self.bar.update(step - self.shown_step)
      self.shown_step = step
      if time.time() - self.shown_time > 0.5:
        self.bar.set_postfix({k: f"{float(v):.4g}" for k, v in logs.items()},
                             refresh=False)
        self.shown_time = time.time()
    if self.signals.signum is not None:
      self.save(step)
      self.interrupted_at = step
      self._stop()
      return
    spec = self.spec
    if (spec.checkpoint_every and step - self.last_saved >=
        spec.checkpoint_every) or (
            self.by_time and spec.checkpoint_seconds and
            time.time() - self.last_time >= spec.checkpoint_seconds):
      self.save(step)

  def _log_interval(self, step, logs):
    """Appends the mean of each metric over the steps since the last row
    (exact, from the epoch's running means)."""
    if step < self.next_log and step % self.spec.steps_per_epoch:
      return
    n = step - self.epoch_start
    n0, prev = self.prev
    row = {"step": step}
    for k, v in logs.items():
      if n > n0:
        row[k] = (float(v) * n - prev.get(k, 0.0) * n0) / (n - n0)
    self.prev = (n, {k: float(v) for k, v in logs.items()})
    self.log_rows.append(row)
    self.next_log = (step // self.log_every + 1) * self.log_every

  def on_epoch_end(self, epoch, logs=None):
    if self.stopped and self.interrupted_at is None:
      return
    step = self.step()
    if step != (epoch + 1) * self.spec.steps_per_epoch:
      # Stopped mid-epoch (Ctrl-C): no history entry; the checkpoint holds
      # the epoch's metrics so far.
      if self.signals.signum is not None and self.interrupted_at is None:
        self.save(step)
        self.interrupted_at = step
        self._stop()
      return
    entry = {"epoch": epoch + 1, "step": step, **_floats(logs)}
    if self.metrics_fn is not None:
      entry.update(_floats(self.metrics_fn(self.model)))
    bad = _finite(entry)
    if bad:
      self.diverged = (step, bad)
      self._stop()
      return
    self.history.append(entry)
    self.files.write_history(self.history)
    self.save(step)
    if self.signals.signum is not None and self.interrupted_at is None:
      self.interrupted_at = step
      self._stop()

  def close(self):
    if self.bar is not None:
      self.bar.close()
      self.bar = None


def _floats(d) -> Dict[str, float]:
  return {k: float(v) for k, v in (d or {}).items()}


def _metric_variables(model) -> List[tf.Variable]:
  return [v for m in model.metrics for v in m.variables]


def _strip_failure(e: Exception) -> str:
  lines = [line.strip() for line in (getattr(e, "message", None) or str(e))
           .splitlines() if line.strip() and not line.strip().startswith("[[")]
  return lines[-1] if lines else type(e).__name__


# --------------------------------------------------------------------- fit
def fit(model, data, spec: TrainSpec, *, validation=None,
        callbacks: Sequence[tf.keras.callbacks.Callback] = (),
        metrics_fn: Optional[Callable[[Any], Dict[str, float]]] = None
        ) -> TrainResult:
  """Trains `model` on `data` as `spec` says; resumes from spec.train_dir.

  Args:
    model: a function () -> Keras model with its own `train_step` (a codec
      of `tfc_perception.models`, a density model, ...), called in the
      strategy's scope under the precision policy; or the model itself (then
      strategy and precision_policy must be the defaults).
    data: a function start_step -> tf.data.Dataset whose batch i is the
      batch of training step start_step + i (the `tfc_perception.data`
      streams take start_step), or a Dataset whose batch i is a function of
      i (resumed runs skip the first batches).
    spec: a `TrainSpec`; the fields that describe the model and the data
      (model, distortion, data, ...) must be unset (they are for
      `train`).
    validation: a finite Dataset evaluated after every epoch (val_* in the
      history), or None.
    callbacks: extra Keras callbacks (they run before the trainer's
      bookkeeping, so values they add to `logs` in on_epoch_end are recorded
      in history.json).
    metrics_fn: model -> {name: value}, evaluated before training (history
      entry epoch 0) and after every epoch; recorded in the history, so it
      survives a resume (e.g. a test-set curve).

  Returns:
    A `TrainResult`. A run whose train_dir already reached the last step is
    not trained further.

  Raises:
    TrainingInterrupted: SIGINT/SIGTERM (checkpoint written).
    ValueError: invalid spec (naming the field), a train_dir holding another
      run, batch size not divisible by the replicas, data errors.
    RuntimeError: training diverged (NaN/Inf; the last good checkpoint is
      kept), or logical CPUs requested after TensorFlow started.
  """
  if not isinstance(spec, TrainSpec):
    raise TypeError(f"spec must be a TrainSpec, got {type(spec).__name__}.")
  given = [f"{k}={getattr(spec, k)!r}" for k in _DESCRIBING
           if getattr(spec, k) is not None]
  if given:
    raise ValueError(
        f"fit() takes the model and the data as arguments; the TrainSpec "
        f"fields that describe them ({', '.join(given)}) are for "
        "training.train (bin/train): leave them unset.")
  return _fit(model, data, spec, validation, callbacks, metrics_fn)


def _fit(model, data, spec, validation, callbacks, metrics_fn) -> TrainResult:
  t0 = time.time()
  if spec.logical_cpus:
    configure_logical_cpus(spec.logical_cpus)
  data_fn = _as_data_fn(data)
  strategy = make_strategy(spec.strategy)
  multiworker = _is_multiworker(strategy)
  replicas = strategy.num_replicas_in_sync
  if spec.batchsize % replicas:
    raise ValueError(f"batchsize {spec.batchsize} is not divisible by the "
                     f"{replicas} replicas of strategy {spec.strategy}.")
  files = _RunFiles(spec.train_dir, _writes_outputs(strategy))
  worker_dir = None  # A non-chief worker's checkpoints (removed at the end).
  if multiworker and files.dir and not files.writer:
    import tempfile  # pylint: disable=g-import-not-at-top
    worker_dir = tempfile.mkdtemp(prefix="tfc_perception-worker-")
  removed = files.remove_stale_temporaries()
  if removed:
    _LOG.warning("removed what an interrupted save left behind: %s",
                 ", ".join(removed))
  previous_policy = tf.keras.mixed_precision.global_policy()
  tf.keras.mixed_precision.set_global_policy(spec.precision_policy)
  try:
    with _Signals(enabled=not multiworker) as signals:
      with strategy.scope():
        if isinstance(model, tf.keras.Model):
          if spec.strategy != "default" or spec.precision_policy != "float32":
            raise ValueError(
                "strategy and precision_policy need the model built in their "
                "scope: pass a function that builds it, e.g. fit(lambda: "
                "models.build_model(...), data, spec).")
        elif callable(model):
          model = model()
        if not isinstance(model, tf.keras.Model):
          raise TypeError("model must be a Keras model or a function that "
                          f"returns one; got {type(model).__name__}.")
        if hasattr(model, "training_seed"):
          model.training_seed = spec.seed
        model.compile(
            optimizer=tf.keras.optimizers.Adam(_learning_rate(spec)),
            steps_per_execution=spec.steps_per_execution,
            run_eagerly=spec.run_eagerly)
        _build_optimizer_state(model)
        if multiworker:
          # The step's metrics are already summed over the workers (Keras
          # computes them in a cross-replica merge_call); its default
          # "sum" over workers would report them n times.
          model.distribute_reduction_method = "first"
        checkpoint = tf.train.Checkpoint(model=model,
                                         optimizer=model.optimizer)
      manager = (tf.train.CheckpointManager(checkpoint, files.checkpoints,
                                            max_to_keep=3)
                 if files.dir else None)
      save_manager = manager if worker_dir is None else (
          tf.train.CheckpointManager(checkpoint, worker_dir, max_to_keep=1))
      record = _resume_record(spec, model)
      saved_metrics = None
      if manager is not None and manager.latest_checkpoint:
        if os.path.exists(files.run):
          _check_resume(files, record)
        checkpoint.restore(
            manager.latest_checkpoint).assert_existing_objects_matched()
        saved_metrics = [v.numpy() for v in _metric_variables(model)]
        _LOG.info("resumed %s at step %d", manager.latest_checkpoint,
                  int(model.optimizer.iterations.numpy()))
      else:
        files.write_run(record)
      start = int(model.optimizer.iterations.numpy())
      history = files.read_history(start)
      log_rows = files.read_log(start)
      total = spec.total_steps
      steps = spec.steps_per_epoch
      if start % steps == 0:
        saved_metrics = None  # A new epoch starts with reset metrics.
      run = _Run(spec=spec, files=files, manager=save_manager,
                 history=history, log_rows=log_rows, start_step=start,
                 signals=signals, metrics_fn=metrics_fn,
                 saved_metrics=saved_metrics, by_time=not multiworker)
      cbs = list(callbacks)
      if files.writer:
        cbs.append(tf.keras.callbacks.TensorBoard(
            log_dir=files.logs, write_graph=False, update_freq="epoch",
            profile_batch=0))
      cbs.append(run)
      tf.random.set_seed(_restart_seed(spec.seed, start))
      step = start

      def kept():
        if manager is not None and manager.latest_checkpoint:
          return f"the checkpoint of step {run.last_saved} is kept"
        return "no checkpoint was written"

      if multiworker and validation is not None:
        validation = _shard_by_rows(validation)
      try:
        while step < total and not run.stopped:
          epoch, into = divmod(step, steps)
          last = epoch + 1 if into else spec.epochs
          dataset = data_fn(step)
          model.fit(_shard_by_rows(dataset) if multiworker else dataset,
                    initial_epoch=epoch, epochs=last,
                    steps_per_epoch=steps - into, validation_data=validation,
                    callbacks=cbs, verbose=0)
          step = int(model.optimizer.iterations.numpy())
      except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
              tf.errors.CancelledError, tf.errors.AbortedError) as e:
        if not multiworker:
          raise
        text = getattr(e, "message", None) or str(e)
        cause = re.search(r"Task \S+ heartbeat timeout|[^.\n]*(?:unavailable|"
                          r"Connection|Socket closed)[^.\n]*", text)
        raise RuntimeError(
            f"a worker of the cluster stopped responding at step "
            f"{run.step()} ({cause.group(0).strip() if cause else _strip_failure(e)}"
            f"); {kept()}: start every worker again with the same command to "
            "resume from the chief's last checkpoint.") from None
      except tf.errors.InvalidArgumentError as e:
        raise RuntimeError(
            f"training failed at step "
            f"{int(model.optimizer.iterations.numpy())}: {_strip_failure(e)}"
            f" ({kept()}; if the loss diverged, lower learning_rate or lmbda,"
            " otherwise check the data).") from None
      finally:
        run.close()
      if run.diverged is not None:
        at, names = run.diverged
        raise RuntimeError(
            f"training diverged at step {at}: {', '.join(names)} became "
            f"NaN/Inf ({kept()}); lower learning_rate or lmbda, or check the "
            "data.")
      step = int(model.optimizer.iterations.numpy())
      if manager is not None:
        run.save(step)
      curves = None
      if files.writer:
        files.write_log(log_rows)
        curves = _plot_curves(files.curves, history, log_rows, model)
      if run.interrupted_at is not None:
        signals.handled = True
        raise TrainingInterrupted(run.interrupted_at, signals.signum,
                                  manager is not None, files.dir)
    final = dict(history[-1]) if history and history[-1]["epoch"] else {}
    return TrainResult(model=model, history=history, final_metrics=final,
                       initial_step=start, global_step=step,
                       num_replicas=replicas, train_dir=files.dir,
                       curves=curves, wall_time_s=time.time() - t0,
                       writes_outputs=_writes_outputs(strategy))
  finally:
    tf.keras.mixed_precision.set_global_policy(previous_policy)
    if worker_dir is not None:
      shutil.rmtree(worker_dir, ignore_errors=True)


# ------------------------------------------------------------------ curves
def _axis_label(key: str, model) -> str:
  """Axis label with units for a logged metric."""
  if key == "rate":
    return f"rate R ({getattr(model, 'rate_unit', '?')})"
  if key == "bits_per_dim":
    return "NLL (bits/dim)"
  if key == "distortion":
    name = getattr(model, "distortion", None)
    if name:
      from tfc_perception.distances import registry  # pylint: disable=g-import-not-at-top
      metric = registry.get(name)
      vectors = not getattr(model, "is_image_model", True)
      return f"distortion D: {name} ({metric.loss_unit(vectors)})"
    return "distortion D"
  if key == "loss":
    if getattr(model, "distortion", None) and getattr(model, "lmbda", None):
      return "loss L = R + λ·D (Eq. 3)"
    unit = getattr(model, "rate_unit", None)
    return f"loss ({unit})" if unit == "bits/dim" else "loss (training objective)"
  return key


def _plot_curves(path: str, history, log_rows, model) -> str:
  """curves.png: each training metric against the step (interval means,
  epoch means, validation)."""
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  keys = []
  for row in list(log_rows) + [h for h in history if h.get("epoch")]:
    for k in row:
      if k not in ("step", "epoch") and not k.startswith("val_") and (
          k not in keys):
        keys.append(k)
  order = {"loss": 0, "rate": 1, "distortion": 2}
  keys.sort(key=lambda k: (order.get(k, 3), k))
  keys = keys[:6] or ["loss"]
  fig, axes = plotting.subplots(1, len(keys), size=(3.9, 3.1))
  epochs = [h for h in history if h.get("epoch")]
  for ax, key in zip(axes[0], keys):
    rows = [r for r in log_rows if key in r]
    if rows:
      ax.plot([r["step"] for r in rows], [r[key] for r in rows], "-",
              color="tab:blue", lw=0.9, alpha=0.7,
              label="training (interval means)")
    pts = [h for h in epochs if key in h]
    if pts:
      ax.plot([h["step"] for h in pts], [h[key] for h in pts], "o",
              color="tab:blue", ms=4, label="training (epoch means)")
    val = [h for h in epochs if f"val_{key}" in h]
    if val:
      ax.plot([h["step"] for h in val], [h[f"val_{key}"] for h in val], "s--",
              color="tab:orange", ms=4, label="validation")
    ax.set_xlabel("training step")
    ax.set_ylabel(_axis_label(key, model))
    ax.grid(alpha=0.3)
    if rows or pts or val:
      ax.legend(fontsize=7)
  fig.suptitle(f"{type(model).__name__}: training curves", fontsize=9)
  plotting.save_figure(fig, path)
  return path


# ------------------------------------------------------------------ train
def _sources():
  from tfc_perception.data import sources  # pylint: disable=g-import-not-at-top
  return sources


def _is_image_model(cls) -> bool:
  return bool(getattr(cls, "is_image_model", True))


def _needs_density(distortion: Optional[str]) -> bool:
  from tfc_perception.distances import registry  # pylint: disable=g-import-not-at-top
  return distortion is not None and registry.get(distortion).needs_density


def _checked(spec: TrainSpec) -> TrainSpec:
  """train()'s checks of names and data (errors name the field); returns
  the spec with the canonical distortion name."""
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  from tfc_perception.distances import registry  # pylint: disable=g-import-not-at-top
  accepted = ", ".join(models.registered_models())
  if spec.model is None:
    raise ValueError(f"model: not given; accepted: {accepted}.")
  if spec.model in models.density_models():
    raise ValueError(f"model: {spec.model!r} is a density model; train it "
                     "with training.fit(lambda: models.build_density_model"
                     f"({spec.model!r}, ...), data, spec) (bin/train trains "
                     f"the codecs: {accepted}).")
  try:
    cls = models.model_class(spec.model)
  except ValueError:
    raise ValueError(f"model: unknown {spec.model!r}; accepted: "
                     f"{accepted}.") from None
  if not spec.data:
    raise ValueError("data: not given: a 2-D source (student_t, uniform2d), "
                     "a .npy file of points, uniform_noise, or a folder/glob "
                     "of images.")
  if not spec.train_dir:
    raise ValueError("train_dir: not given: the directory for checkpoints, "
                     "logs and (when reused) resuming.")
  if spec.distortion is not None:
    spec = dataclasses.replace(
        spec, distortion=registry.canonical(spec.distortion, "distortion"))
  image = _is_image_model(cls)
  _check_data(spec.data, image, "data")
  if spec.validation_data:
    _check_data(spec.validation_data, image, "validation_data")
  sources = _sources()
  if spec.weight_density and not sources.is_source_name(spec.weight_density):
    raise ValueError(f"weight_density: unknown {spec.weight_density!r}; "
                     f"accepted: {', '.join(sources.SOURCES)}.")
  if _needs_density(spec.distortion):
    if image:
      raise ValueError(f"distortion {spec.distortion} needs the exact density "
                       "P(x) of the data, known only for the 2-D sources "
                       "(model toy2d).")
    weight = spec.weight_density or spec.data
    if not sources.is_source_name(weight):
      raise ValueError(
          f"distortion {spec.distortion} weights D by the density of a 2-D "
          f"source; data {spec.data!r} has none, so give weight_density "
          "(student_t or uniform2d).")
  elif spec.weight_density:
    raise ValueError("weight_density is used only with distortion "
                     "density_mse or inverse_density_mse, not "
                     f"{spec.distortion or 'mse'}.")
  if image:
    # Crops too small for the distortion would fail only after tracing.
    metric = registry.get(spec.distortion or "mse", "distortion")
    if spec.patchsize < metric.min_size:
      raise ValueError(
          f"patchsize {spec.patchsize} is too small for distortion "
          f"{metric.name}: its crops need at least {metric.min_size} px per "
          f"side; use patchsize {metric.min_size} or more, or another "
          "distortion (bin/evaluate distances --list gives every metric's "
          "minimum size).")
  return spec


def _check_data(value: str, image: bool, name: str) -> None:
  sources = _sources()
  if image:
    if sources.is_source_name(value):
      raise ValueError(f"{name} {value} is a 2-D source, for model toy2d; "
                       f"image models accept {UNIFORM_NOISE} or a folder/"
                       "glob of images.")
  elif not (sources.is_source_name(value) or value.endswith(".npy")):
    raise ValueError(f"{name} {value!r} is not data for a 2-D model; "
                     f"accepted: {', '.join(sources.SOURCES)} or a .npy "
                     "file of [N, 2] points.")


def _load_points(path: str) -> np.ndarray:
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no such .npy file of points: {path!r}.")
  try:
    return np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise ValueError(f"cannot read {path!r} as a .npy array: {e}") from None


def _train_dataset(spec: TrainSpec, image: bool,
                   start_step: int) -> tf.data.Dataset:
  """The endless training stream of spec.data, from batch `start_step`."""
  from tfc_perception.data import images  # pylint: disable=g-import-not-at-top
  sources = _sources()
  b, seed = spec.batchsize, spec.seed
  if not image:
    if sources.is_source_name(spec.data):
      return sources.source_dataset(spec.data, b, seed, start_step)
    return sources.points_dataset(_load_points(spec.data), b, seed,
                                  start_step, name=spec.data)
  if spec.data == UNIFORM_NOISE:
    return images.uniform_noise_images(spec.patchsize, b, seed, start_step)
  return images.random_crops(spec.data, spec.patchsize, b, seed, start_step)


def _validation_dataset(spec: TrainSpec,
                        image: bool) -> Optional[tf.data.Dataset]:
  """A finite validation set, the same at every epoch (and on resume)."""
  from tfc_perception.data import images  # pylint: disable=g-import-not-at-top
  value = spec.validation_data
  if not value:
    return None
  sources = _sources()
  vseed = (spec.seed + 2**30) % 2**31  # A stream disjoint from training's.
  b, steps = spec.batchsize, spec.validation_steps
  if not image:
    if sources.is_source_name(value):
      return sources.source_dataset(value, b, vseed).take(steps)
    points = _load_points(value)
    # Same checks as for training (shape, NaN), then every point once.
    sources.points_dataset(points, 1, name=value)
    return tf.data.Dataset.from_tensor_slices(
        points.astype(np.float32)).batch(b)
  if value == UNIFORM_NOISE:
    return images.uniform_noise_images(spec.patchsize, b, vseed).take(steps)
  return images.center_crops(value, spec.patchsize, b)


def _is_run(train_dir: str) -> bool:
  """True if train_dir holds the run.json of a run of the trainer."""
  try:
    record = _io.read_json(os.path.join(train_dir, "run.json"))
  except (OSError, ValueError):
    return False
  return isinstance(record, dict) and "spec" in record and "model" in record


def _check_paths(spec: TrainSpec, train_dir: str, export: str) -> bool:
  """Refuses output paths that would destroy inputs or other files, before
  any training. Returns whether the export may replace a saved model."""
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  if os.path.isdir(train_dir) and os.listdir(train_dir) and not _is_run(
      train_dir):
    raise ValueError(
        f"train_dir {train_dir} is a non-empty folder that is not a run of "
        "the trainer (it has no run.json): the trainer writes run.json, "
        "history.json, log.csv, curves.png, checkpoints/ and logs/ there, so "
        "choose a new or empty folder.")
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
  for value, name in ((spec.data, "--data"),
                      (spec.validation_data, "--validation_data")):
    if value and os.path.isdir(value):
      _io.check_output_path(train_dir, {name: value}, "--train_dir")
      _io.check_output_path(export, {name: value}, "--export")
  own = False
  manifest = export.rstrip(os.sep) + ".manifest.json"
  if models.is_saved_model(export) and os.path.isfile(manifest):
    try:
      own = _io.read_json(manifest).get("train_dir") == train_dir
    except (OSError, ValueError, AttributeError):
      own = False
  overwrite = bool(spec.overwrite or own)
  models.check_save_path(export, overwrite=overwrite)
  return overwrite


def _model_factory(spec: TrainSpec, density) -> Callable[[], Any]:
  """() -> the codec bin/train trains (an option the codec does not take is
  a ValueError naming it: build_model's TypeError)."""
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  kwargs = dict(lmbda=spec.lmbda, quality=spec.quality,
                num_filters=spec.num_filters,
                latent_channels=spec.latent_channels,
                num_centers=spec.num_centers, density_fn=density,
                seed=spec.seed, distortion=spec.distortion)

  def build():
    try:
      return models.build_model(spec.model, **kwargs)
    except TypeError as e:
      raise ValueError(f"model {spec.model}: {e}") from None
  return build


def train(spec: Union[TrainSpec, Dict[str, Any]],
          callbacks: Sequence[tf.keras.callbacks.Callback] = ()
          ) -> TrainResult:
  """bin/train: builds the codec spec.model and the data of spec.data,
  trains them with `fit`, exports the model and writes a manifest.

  The model is exported with `models.save_model` (ready for bin/codec) to
  spec.export (default train_dir/export), with the run manifest (spec,
  command line, versions, git commit, wall time, final metrics) at
  `<export>.manifest.json`. (Density models train with `fit`.)

  Args:
    spec: a `TrainSpec` (or a mapping of its fields, "lambda" accepted for
      lmbda) with model, data and train_dir set.
    callbacks: extra Keras callbacks.

  Returns:
    A `TrainResult` with `export` and `manifest` set (the paths the chief
    writes: with strategy multiworker the other workers write nothing and
    their result's `writes_outputs` is False).

  Raises:
    TrainingInterrupted, ValueError, FileNotFoundError, RuntimeError: as
      `fit`, plus unknown model/distortion/data (naming the field).
  """
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  t0 = time.time()
  if not isinstance(spec, TrainSpec):
    spec = TrainSpec.from_dict(spec)
  chief = True
  if spec.strategy == "multiworker":
    # Before anything else runs TensorFlow (collectives are configured at
    # its start).
    chief = _writes_outputs(make_strategy("multiworker"))
  spec = _checked(spec)
  image = _is_image_model(models.model_class(spec.model))
  train_dir = os.path.abspath(spec.train_dir)
  export = os.path.abspath(spec.export or os.path.join(train_dir, "export"))
  overwrite = _check_paths(spec, train_dir, export) if chief else False
  density = None
  if _needs_density(spec.distortion):
    density = _sources().density_fn(spec.weight_density or spec.data)
  result = _fit(_model_factory(spec, density),
                lambda start: _train_dataset(spec, image, start), spec,
                _validation_dataset(spec, image), callbacks, None)
  manifest_path = export.rstrip(os.sep) + ".manifest.json"
  result.export, result.manifest = export, manifest_path
  if not result.writes_outputs:
    # A non-chief worker of strategy multiworker: saving reads every
    # weight, the metrics' summed over the workers, so it takes part and
    # throws its copy away.
    import tempfile  # pylint: disable=g-import-not-at-top
    scratch = tempfile.mkdtemp(prefix="tfc_perception-worker-")
    try:
      models.save_model(result.model, os.path.join(scratch, "export"))
    finally:
      shutil.rmtree(scratch, ignore_errors=True)
    return result
  models.save_model(result.model, export, overwrite=overwrite)
  manifest = _io.make_manifest(
      spec.to_dict(), wall_time_s=time.time() - t0,
      final_metrics=result.final_metrics,
      epochs_completed=len([h for h in result.history if h.get("epoch")]),
      global_step=result.global_step, resumed_from_step=result.initial_step,
      num_replicas=result.num_replicas,
      rate_unit=getattr(result.model, "rate_unit", None),
      train_dir=train_dir, export=export, curves=result.curves,
      history=result.history)
  _io.write_json(manifest_path, manifest)
  return result
