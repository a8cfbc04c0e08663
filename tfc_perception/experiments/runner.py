"""Declarative experiment runner: configs, model cache, results and reports.

Every figure of the paper is an *experiment*: a function plus named config
presets ("quick", "paper", and a "tiny" one used by the tests). Running one
writes everything into `OUTPUT/<experiment>/`:

  results.json   every summary number the experiment returned
  *.csv          the tables behind each figure (written through `ctx.write_csv`)
  *.png          the figures (written through `ctx.save_figure`)
  models.csv     one row per model used: cache key, trained or loaded, time
  report.md      each figure shown with the numbers behind it
  manifest.json  command line, config, versions, git commit, wall time

Trained models are cached in `OUTPUT/_cache/models/<key>/` (or `cache_dir`),
keyed by the SHA-256 of the canonical JSON of the model's config, so re-running
(or another experiment using a model with the same config) loads instead of
training again. A config naming data files carries their contents
(`ctx.files_key`: name, size and sha256 of each), so other images under the
same names train another model. An entry is complete when it has its
done.json; one a crash left incomplete, or one that cannot be read back, is
retrained with a warning.

Registration API (how an experiment module plugs in)
----------------------------------------------------
    import dataclasses
    from tfc_perception import training
    from tfc_perception.experiments import runner

    @dataclasses.dataclass(frozen=True)
    class Config:                       # typed, frozen; one per experiment
      lmbda: float
      steps: int

    def run(ctx):                       # ctx: runner.RunContext
      cfg = ctx.config                  # a Config (the preset + overrides)
      model = ctx.cached_model(         # trained once, then loaded
          {"kind": "toy2d", "lmbda": cfg.lmbda, ...},
          train_fn=lambda train_dir: training.fit(..., TrainSpec(
              ..., train_dir=train_dir)))   # a TrainResult (or a model)
      ctx.write_csv("curve.csv", rows)  # table behind a figure
      fig = ...                         # matplotlib Figure
      ctx.save_figure(fig, "curve.png", caption="...", numbers={...},
                      table="curve.csv")
      return {"rho": 0.7}               # summary numbers -> results.json

    runner.register_experiment(
        "my_figure", run,
        configs={"tiny": Config(...), "quick": Config(...),
                 "paper": Config(...)},
        description="What the figure shows (paper Sec./Fig.)",
        paper_figures=("Fig. 4 right",), groups=("images",))

Then add the module's import path to `BUILTIN_MODULES` below (one line), and
`bin/reproduce my_figure --config quick --output DIR` runs it. `groups` makes
the experiment part of `bin/reproduce GROUP` (e.g. "all" = the 2-D
reproduction of issue 6, the project's main job). Experiments of one group run
in registration order.

Configs are frozen dataclasses (`tfc_perception._typed`): every preset is an
instance of the experiment's config class. `run_experiment(..., config=...)`
takes a preset name, a dict or a path to a JSON file (checked against the
class), or an instance; `overrides` (a dict, nested keys with dots:
{"train.steps": 100}) is applied on top, each value type-checked against its
field ("train.steps must be an integer, got 1.5.").

Training goes through the one trainer (`tfc_perception.training.fit`) in a
working directory per cache key (`<cache>/<key>.train`): an experiment
interrupted by Ctrl-C (one line: "interrupted at step N; checkpoint saved;
rerun the same command to resume") continues that model from its last
checkpoint when rerun, and models.csv says "resumed". The finished model's
curves.png, history.json and TensorBoard logs stay in the cache entry
(`<key>/train/`).
"""

import dataclasses
import hashlib
import importlib
import io
import json
import os
import shutil
import sys
import time
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from tfc_perception import _io
from tfc_perception import _typed

__all__ = [
    "Experiment", "RunContext", "register_experiment", "get_experiment",
    "list_experiments", "resolve_names", "resolve_config", "config_hash",
    "run_experiment", "run_experiments", "BUILTIN_MODULES", "PRESETS",
]

# Modules whose import registers experiments. Add one line per new module.
BUILTIN_MODULES = [
    "tfc_perception.experiments.student_t",
    "tfc_perception.experiments.dae",
    "tfc_perception.experiments.sensitivity",
    "tfc_perception.experiments.contrast",
    "tfc_perception.experiments.iqa",
    "tfc_perception.experiments.scarce_data",
    "tfc_perception.experiments.nlpd_vs_mse",
]

PRESETS = ("tiny", "quick", "paper")

# The file that makes a model cache entry complete (see cached_model).
_DONE = "done.json"

# Bump when a change to the training code makes cached models stale.
# 2: the one trainer, stateless (seed, step) training noise.
CACHE_VERSION = 2


@dataclasses.dataclass(frozen=True)
class Experiment:
  """A registered experiment.

  Attributes:
    name: identifier used on the command line.
    run: function (RunContext) -> dict of summary numbers.
    configs: preset name -> config (instances of one frozen dataclass).
    description: one line on what it reproduces.
    paper_figures: the paper's figure(s) it reproduces, e.g. ("Fig. 2",).
    groups: names of groups it belongs to (e.g. ("all",)).
  """
  name: str
  run: Callable[["RunContext"], Mapping[str, Any]]
  configs: Mapping[str, Any]
  description: str = ""
  paper_figures: Sequence[str] = ()
  groups: Sequence[str] = ()

  @property
  def config_type(self) -> type:
    """The experiment's config class."""
    return type(next(iter(self.configs.values())))


_REGISTRY: Dict[str, Experiment] = {}
_LOADED = False


def register_experiment(name: str, run: Callable, configs: Mapping[str, Any],
                        description: str = "",
                        paper_figures: Sequence[str] = (),
                        groups: Sequence[str] = ()) -> Experiment:
  """Registers an experiment (see the module docstring).

  Args:
    name: identifier (letters, digits, '_', '-'); must not be a group name.
    run: callable taking a `RunContext` and returning a dict of numbers.
    configs: preset name -> config, all instances of one frozen dataclass
      (JSON-able fields). Should contain "quick" and "paper"; "tiny" is what
      the tests run.
    description: one line shown by `bin/reproduce --help` and in report.md.
    paper_figures: figure labels of the paper it reproduces.
    groups: groups it belongs to; `bin/reproduce GROUP` runs them all.

  Returns:
    The `Experiment`.

  Raises:
    ValueError: bad name, duplicate name, or configs that are not instances
      of one frozen dataclass.
  """
  if not name or not all(c.isalnum() or c in "_-" for c in name):
    raise ValueError(f"experiment name must be letters, digits, '_' or '-', "
                     f"got {name!r}.")
  if name in _REGISTRY and _REGISTRY[name].run is not run:
    raise ValueError(f"experiment {name!r} is already registered.")
  if not callable(run):
    raise ValueError(f"run must be callable, got {type(run).__name__}.")
  if not isinstance(configs, Mapping) or not configs:
    raise ValueError("configs must be a non-empty dict of preset name -> "
                     "config (a frozen dataclass instance).")
  kinds = {type(v) for v in configs.values()}
  kind = next(iter(kinds))
  if len(kinds) > 1 or not dataclasses.is_dataclass(kind) or not getattr(
      kind, "__dataclass_params__").frozen:
    raise ValueError(f"the presets of {name!r} must be instances of one "
                     "frozen dataclass (the experiment's typed config); got "
                     f"{sorted(k.__name__ for k in kinds)}.")
  for v in configs.values():
    json.dumps(_typed.to_dict(v))  # Must be JSON-able (TypeError otherwise).
  exp = Experiment(name, run, dict(configs), description,
                   tuple(paper_figures), tuple(groups))
  _REGISTRY[name] = exp
  return exp


_IMPORT_ERRORS: Dict[str, str] = {}


def _load_builtin():
  """Imports BUILTIN_MODULES. A module that fails to import does not take the
  others down: its error is printed once and named when an experiment is not
  found."""
  global _LOADED
  if _LOADED:
    return
  for module in BUILTIN_MODULES:
    try:
      importlib.import_module(module)
    except Exception as e:  # pylint: disable=broad-except
      _IMPORT_ERRORS[module] = f"{type(e).__name__}: {e}"
      print(f"warning: experiment module {module} failed to import "
            f"({_IMPORT_ERRORS[module]}); its experiments are unavailable.",
            file=sys.stderr)
  _LOADED = True


def _import_errors_note() -> str:
  if not _IMPORT_ERRORS:
    return ""
  return (" (modules that failed to import: " + "; ".join(
      f"{m}: {e}" for m, e in _IMPORT_ERRORS.items()) + ")")


def get_experiment(name: str) -> Experiment:
  """The registered experiment `name`.

  Raises:
    KeyError: with the accepted names, if unknown.
  """
  _load_builtin()
  if name not in _REGISTRY:
    raise KeyError(f"unknown experiment {name!r}; accepted: "
                   f"{', '.join(sorted(_REGISTRY))} or a group "
                   f"({', '.join(sorted(_groups()))})"
                   f"{_import_errors_note()}.")
  return _REGISTRY[name]


def _groups() -> Dict[str, List[str]]:
  groups: Dict[str, List[str]] = {}
  for exp in _REGISTRY.values():
    for g in exp.groups:
      groups.setdefault(g, []).append(exp.name)
  return groups


def list_experiments(group: Optional[str] = None) -> List[Experiment]:
  """Registered experiments (in registration order), optionally one group."""
  _load_builtin()
  return [e for e in _REGISTRY.values() if group is None or group in e.groups]


def resolve_names(name: str) -> List[str]:
  """An experiment name or a group name -> the experiment names to run.

  Raises:
    KeyError: if `name` is neither.
  """
  _load_builtin()
  groups = _groups()
  if name in _REGISTRY:
    return [name]
  if name in groups:
    return groups[name]
  raise KeyError(f"unknown experiment or group {name!r}; experiments: "
                 f"{', '.join(_REGISTRY)}; groups: {', '.join(groups)}"
                 f"{_import_errors_note()}.")


def resolve_config(exp: Experiment, config: Union[str, Mapping, Any] = "quick",
                   overrides: Optional[Mapping[str, Any]] = None):
  """The config of `exp`: a preset name, a JSON file, a dict or an instance.

  Args:
    exp: the experiment.
    config: preset name (one of exp.configs), path to a JSON file holding a
      full config (or {experiment name: config}), a dict with every field,
      or an instance of the experiment's config class.
    overrides: {dotted.key: value} applied on top, each value type-checked
      against its field.

  Returns:
    An instance of the experiment's config class (frozen).

  Raises:
    KeyError: unknown preset or override key.
    ValueError: a value of the wrong type, or a config missing fields.
    FileNotFoundError: config path does not exist.
  """
  cls = exp.config_type
  if config is None:
    config = "quick"
  if isinstance(config, cls):
    cfg = config
  elif isinstance(config, Mapping):
    cfg = _typed.from_dict(cls, config)
  elif isinstance(config, str) and config in exp.configs:
    cfg = exp.configs[config]
  elif isinstance(config, str) and config.endswith(".json"):
    if not os.path.exists(config):
      raise FileNotFoundError(f"config file {config!r} does not exist.")
    data = _io.read_json(config)
    if isinstance(data, Mapping) and isinstance(data.get(exp.name), Mapping):
      data = data[exp.name]  # A file may hold configs of several.
    cfg = _typed.from_dict(cls, data)
  else:
    raise KeyError(f"experiment {exp.name!r} has no config {config!r}; "
                   f"accepted: {', '.join(exp.configs)} or a .json file.")
  for key, value in (overrides or {}).items():
    cfg = _typed.replace_dotted(cfg, key, value)
  return cfg


def _preset_name(exp: Experiment, config) -> str:
  return config if isinstance(config, str) and config in exp.configs else (
      "quick" if config is None else "custom")


def config_hash(config: Mapping[str, Any]) -> str:
  """SHA-256 (hex, 16 chars) of the canonical JSON of `config` (+ cache version).

  Two configs that differ only in key order hash the same.
  """
  text = json.dumps({"config": config, "cache_version": CACHE_VERSION},
                    sort_keys=True, separators=(",", ":"), default=str)
  return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _default_save(model, path):
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  models.save_model(model, path)


def _default_load(path):
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  return models.load_model(path)


class RunContext:
  """What an experiment's `run` function gets.

  Attributes:
    name: experiment name.
    config: the resolved config (a frozen dataclass instance).
    preset: "tiny", "quick", "paper" or "custom".
    out_dir: OUTPUT/<experiment>/ (created).
    cache_dir: model cache directory (shared by all experiments of a run).
    model_records: one dict per model used (key, trained/cached, seconds).
    verbose: whether to print progress.
  """

  def __init__(self, exp: Experiment, config, out_dir: str,
               cache_dir: str, verbose: bool = True, force: bool = False,
               preset: str = "custom",
               hashes: Optional[_io.FileHashes] = None):
    self.experiment = exp
    self.name = exp.name
    self.config = config
    self.preset = preset
    self.out_dir = out_dir
    self.cache_dir = cache_dir
    self.verbose = verbose
    self.force = force
    self.hashes = hashes or _io.FileHashes()
    self.model_records: List[dict] = []
    self._figures: List[dict] = []
    self._tables: List[str] = []
    os.makedirs(out_dir, exist_ok=True)

  # --- logging -------------------------------------------------------------
  def log(self, msg: str) -> None:
    """Prints `[experiment] msg` (when verbose), flushed."""
    if self.verbose:
      print(f"[{self.name}] {msg}", flush=True)

  def path(self, filename: str) -> str:
    """OUTPUT/<experiment>/<filename>."""
    if os.path.isabs(filename) or ".." in filename.split("/"):
      raise ValueError(f"filename must be relative to the experiment folder, "
                       f"got {filename!r}.")
    return os.path.join(self.out_dir, filename)

  # --- models --------------------------------------------------------------
  def files_key(self, files: Sequence[str]) -> list:
    """The part of a cache key that stands for a list of data files: their
    names, sizes and sha256 (`_io.FileHashes.manifest`), in order. Other
    bytes under the same names are other data, so another model; each file
    is read once per run.

    Raises:
      FileNotFoundError: a file does not exist.
    """
    return self.hashes.manifest(files)

  def train_dir(self, key_config: Mapping[str, Any]) -> str:
    """The trainer's working directory for the model of `key_config`
    (checkpoints to resume from): <cache>/<key>.train."""
    return os.path.join(self.cache_dir, config_hash(key_config) + ".train")

  def cached_model(self, key_config: Mapping[str, Any],
                   train_fn: Callable[[str], Any],
                   save_fn: Optional[Callable[[Any, str], None]] = None,
                   load_fn: Optional[Callable[[str], Any]] = None,
                   label: Optional[str] = None):
    """A model trained once per config and loaded from the cache afterwards.

    Args:
      key_config: JSON-able dict that fully determines the trained model
        (architecture, loss, λ, source, steps, batch size, seed, ...). Its
        hash is the cache key.
      train_fn: train_dir -> a `training.TrainResult` (fit with
        spec.train_dir = train_dir: an interrupted run resumes there), a
        model, or (model, info_dict); called only on a cache miss. The final
        metrics (or info) are recorded.
      save_fn: (model, directory) -> None. Default:
        tfc_perception.models.save_model.
      load_fn: directory -> model. Default: tfc_perception.models.load_model.
      label: short name for messages (default: the key).

    Returns:
      The model.
    """
    save_fn = save_fn or _default_save
    load_fn = load_fn or _default_load
    key = config_hash(key_config)
    label = label or key
    entry = os.path.join(self.cache_dir, key)
    record = {"label": label, "key": key}
    t0 = time.perf_counter()
    cached = None if self.force else self._load_entry(entry, key, load_fn,
                                                      label)
    if cached is not None:
      model, meta = cached
      record.update(source="cache", train_time_s=meta.get("train_time_s"),
                    load_time_s=round(time.perf_counter() - t0, 3),
                    **{f"final_{k}": v for k, v in meta.get("info", {}).items()})
      self.log(f"model {label}: loaded from cache {key} (trained earlier in "
               f"{meta.get('train_time_s', float('nan')):.1f} s)")
    else:
      train_dir = self.train_dir(key_config)
      if self.force:
        shutil.rmtree(train_dir, ignore_errors=True)
      t0 = time.perf_counter()
      with _interruptible():
        self.log(f"model {label}: training ..." if not os.path.isdir(
            train_dir) else f"model {label}: resuming from {train_dir} ...")
        out = train_fn(train_dir)
      seconds = time.perf_counter() - t0
      model, info, resumed = _training_outcome(out)
      # The entry is complete (model, config, done.json) before it gets its
      # name: a kill at any point leaves either no entry or a whole one.
      tmp = entry + ".tmp"
      shutil.rmtree(tmp, ignore_errors=True)
      os.makedirs(tmp)
      save_fn(model, os.path.join(tmp, "model"))
      _io.write_json(os.path.join(tmp, "config.json"), key_config)
      _io.write_json(os.path.join(tmp, _DONE), {
          "train_time_s": round(seconds, 3), "info": info, "key": key,
          "resumed": resumed})
      shutil.rmtree(entry, ignore_errors=True)  # incomplete, corrupt, forced
      os.replace(tmp, entry)
      if os.path.isdir(train_dir):
        # Keep curves.png, history.json, log.csv and the TensorBoard logs
        # with the model; the checkpoints are not needed any more.
        shutil.rmtree(os.path.join(train_dir, "checkpoints"),
                      ignore_errors=True)
        os.replace(train_dir, os.path.join(entry, "train"))
      source = "resumed" if resumed else "trained"
      record.update(source=source, train_time_s=round(seconds, 3),
                    **{f"final_{k}": v for k, v in info.items()})
      self.log(f"model {label}: {source} in {seconds:.1f} s "
               + " ".join(f"{k}={_fmt(v)}" for k, v in info.items()))
    self.model_records.append(record)
    return model

  def _load_entry(self, entry: str, key: str, load_fn, label: str):
    """(model, done.json's dict) of the complete cache entry `entry`, or None
    when there is none. An entry a crash left incomplete (no done.json) or
    one that cannot be read back (corrupt done.json or model files, a
    done.json of another key) is None too, with a RuntimeWarning: the model
    is retrained and replaces it."""
    done = os.path.join(entry, _DONE)
    if not os.path.exists(done):
      stale = [p for p in (entry, entry + ".tmp") if os.path.isdir(p)]
      if stale:
        self._warn(f"model {label}: cache entry {stale[0]} is incomplete (no "
                   f"{_DONE}: a run stopped while saving it); retraining")
      return None
    try:
      meta = _io.read_json(done)
      if not isinstance(meta, dict) or meta.get("key") != key:
        raise ValueError(f"{_DONE} is not the record of key {key}")
      return load_fn(os.path.join(entry, "model")), meta
    except Exception as e:  # pylint: disable=broad-except
      # Whatever fails to read back what the runner wrote: the entry is
      # unusable, and training again is the way to a good one.
      reason = (str(e).strip().splitlines() or [""])[0][:200]
      self._warn(f"model {label}: cache entry {entry} is corrupt "
                 f"({type(e).__name__}: {reason}); retraining")
      return None

  def _warn(self, message: str) -> None:
    warnings.warn(f"[{self.name}] {message}", RuntimeWarning, stacklevel=3)

  def run_training(self, key_config: Mapping[str, Any],
                   train_fn: Callable[[str], Any], label: Optional[str] = None):
    """A training run whose result is its history (e.g. a test curve), not
    a model to reuse: `train_fn(train_dir)` (a TrainResult) runs in the
    working directory of `key_config`, which is kept, so a rerun resumes an
    interrupted run or, if it finished, returns its history at once.

    Returns:
      The TrainResult.
    """
    key = config_hash(key_config)
    label = label or key
    train_dir = self.train_dir(key_config)
    if self.force:
      shutil.rmtree(train_dir, ignore_errors=True)
    t0 = time.perf_counter()
    with _interruptible():
      result = train_fn(train_dir)
    seconds = time.perf_counter() - t0
    _, info, resumed = _training_outcome(result)
    if result.global_step == result.initial_step and resumed:
      source = "cache"
    else:
      source = "resumed" if resumed else "trained"
    record = {"label": label, "key": key, "source": source,
              "train_time_s": round(seconds, 3),
              **{f"final_{k}": v for k, v in info.items()}}
    self.model_records.append(record)
    self.log(f"run {label}: {source} ({seconds:.1f} s)")
    return result

  # --- outputs -------------------------------------------------------------
  def write_csv(self, filename: str, rows) -> str:
    """Writes a table (list of dicts or DataFrame) atomically; returns path."""
    path = self.path(filename)
    _io.write_csv(path, rows)
    self._tables.append(filename)
    return path

  def write_json(self, filename: str, obj) -> str:
    """Writes JSON atomically; returns path."""
    path = self.path(filename)
    _io.write_json(path, obj)
    return path

  def save_figure(self, fig, filename: str, caption: str = "",
                  numbers: Optional[Mapping[str, Any]] = None,
                  table: Optional[Union[str, Sequence[str]]] = None,
                  dpi: int = 110) -> str:
    """Saves a matplotlib figure (PNG, atomically) and lists it in report.md.

    Args:
      fig: matplotlib Figure (closed after saving).
      filename: "name.png".
      caption: what it shows (and which paper figure).
      numbers: the numbers behind it, shown as a table under the figure.
      table: CSV file name(s) holding the plotted data, linked in the report.
      dpi: resolution.

    Returns:
      The path written.
    """
    from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
    path = self.path(filename)
    plotting.save_figure(fig, path, dpi=dpi)
    tables = [table] if isinstance(table, str) else list(table or [])
    self._figures.append({"file": filename, "caption": caption,
                          "numbers": {k: _plain(v) for k, v in
                                      (numbers or {}).items()},
                          "tables": tables})
    return path

  @property
  def figures(self) -> List[dict]:
    return list(self._figures)


def _interruptible():
  """training.interruptible(): Ctrl-C while a model is set up or trained
  stops at a step boundary with a checkpoint."""
  from tfc_perception import training  # pylint: disable=g-import-not-at-top
  return training.interruptible()


def _training_outcome(out):
  """(model, info, resumed) of what a train_fn returned: a TrainResult, a
  model, or (model, info)."""
  if hasattr(out, "initial_step") and hasattr(out, "model"):
    info = {k: v for k, v in out.final_metrics.items()
            if k not in ("epoch", "step")}
    model, resumed = out.model, out.initial_step > 0
  else:
    model, info = (out if isinstance(out, tuple) else (out, {}))
    resumed = False
  info = {k: _plain(v) for k, v in dict(info or {}).items()}
  return model, info, resumed


def _plain(v):
  """numpy scalars/arrays -> Python numbers/lists (for JSON and markdown)."""
  if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
    return v.item()
  if hasattr(v, "tolist"):
    return v.tolist()
  return v


def _fmt(v) -> str:
  if isinstance(v, float):
    return f"{v:.4g}"
  if isinstance(v, (list, tuple)):
    return "[" + ", ".join(_fmt(x) for x in v) + "]"
  return str(v)


def _md_table(numbers: Mapping[str, Any]) -> str:
  if not numbers:
    return ""
  lines = ["| quantity | value |", "| --- | --- |"]
  for k, v in numbers.items():
    # A literal "|" (as in |r(x) − x|) would split the markdown cell.
    lines.append(f"| {str(k).replace('|', chr(92) + '|')} | {_fmt(v)} |")
  return "\n".join(lines) + "\n"


def _write_report(ctx: RunContext, results: Mapping[str, Any],
                  wall_time_s: float) -> None:
  exp = ctx.experiment
  out = [f"# {exp.name}: {', '.join(exp.paper_figures) or ''}".rstrip(": "),
         "", exp.description, "",
         f"Config preset `{ctx.preset}`; wall time {wall_time_s:.1f} s; "
         f"{len(ctx.model_records)} model(s) "
         f"({sum(r['source'] == 'trained' for r in ctx.model_records)} "
         "trained in this run). Every number here is in results.json; "
         "config and versions in manifest.json.", ""]
  data = results.get("data")
  if isinstance(data, Mapping):
    out += ["## Data", "", _md_table(data)]
  elif isinstance(data, str):
    out += ["## Data", "", data + (f" {results['data_note']}" if isinstance(
        results.get("data_note"), str) else ""), ""]
  for f in ctx.figures:
    out += [f"## {f['file']}", "", f"![{f['file']}]({f['file']})", "",
            f["caption"], ""]
    if f["numbers"]:
      out.append(_md_table(f["numbers"]))
    if f["tables"]:
      out += ["Data: " + ", ".join(f"[{t}]({t})" for t in f["tables"]), ""]
  if ctx.model_records:
    out += ["## Models", "", "| model | cache key | source | train time (s) |",
            "| --- | --- | --- | --- |"]
    for r in ctx.model_records:
      out.append(f"| {r['label']} | {r['key']} | {r['source']} | "
                 f"{_fmt(r.get('train_time_s'))} |")
    out.append("")
  out += ["## Config", "", "```json",
          json.dumps(_typed.to_dict(ctx.config), indent=2, sort_keys=True),
          "```", ""]
  _io.write_text(ctx.path("report.md"), "\n".join(out))


def run_experiment(name: str, config: Union[str, Mapping, None] = "quick",
                   output_dir: str = "results",
                   overrides: Optional[Mapping[str, Any]] = None,
                   cache_dir: Optional[str] = None, force: bool = False,
                   verbose: bool = True,
                   hashes: Optional[_io.FileHashes] = None) -> dict:
  """Runs one experiment and writes OUTPUT/<name>/ (see module docstring).

  Args:
    name: registered experiment name.
    config: preset name ("tiny", "quick", "paper"), JSON path, dict or an
      instance of the experiment's config class.
    output_dir: the results root.
    overrides: {dotted.key: value} applied to the config (type-checked).
    cache_dir: model cache (default OUTPUT/_cache/models).
    force: retrain even when a cached model exists.
    verbose: print progress and timings.
    hashes: the content hashes of data files already read in this run
      (`run_experiments` shares one between its experiments).

  Returns:
    {"name", "results" (dict the experiment returned), "wall_time_s",
     "models" (records), "out_dir"}.

  Raises:
    KeyError: unknown experiment/preset/override.
    ValueError: an override of the wrong type.
    training.TrainingInterrupted: Ctrl-C/SIGTERM while a model trained (its
      checkpoint is kept: rerunning resumes it).
  """
  exp = get_experiment(name)
  cfg = resolve_config(exp, config, overrides)
  preset = _preset_name(exp, config)
  out_dir = os.path.join(output_dir, name)
  cache_dir = cache_dir or os.path.join(output_dir, "_cache", "models")
  ctx = RunContext(exp, cfg, out_dir, cache_dir, verbose=verbose, force=force,
                   preset=preset, hashes=hashes)
  ctx.log(f"config {ctx.preset!r} -> {out_dir}")
  t0 = time.perf_counter()
  results = dict(exp.run(ctx) or {})
  wall = time.perf_counter() - t0
  results = json.loads(json.dumps(results, default=_io._json_default))  # pylint: disable=protected-access
  trained = [r["train_time_s"] for r in ctx.model_records
             if r["source"] == "trained"]
  timing = {"wall_time_s": round(wall, 3), "models_used": len(ctx.model_records),
            "models_trained": len(trained),
            "train_time_total_s": round(sum(trained), 3),
            "train_time_per_model_s": (round(sum(trained) / len(trained), 3)
                                       if trained else None)}
  ctx.write_json("results.json", {"experiment": name, "preset": ctx.preset,
                                  "results": results, "timing": timing,
                                  "figures": ctx.figures})
  if ctx.model_records:
    ctx.write_csv("models.csv", ctx.model_records)
  _write_report(ctx, results, wall)
  ctx.write_json("manifest.json", _io.make_manifest(
      dict(_typed.to_dict(cfg), _preset=preset), wall_time_s=round(wall, 3),
      experiment=name, timing=timing, models=ctx.model_records))
  ctx.log(f"done in {wall:.1f} s ({len(trained)} model(s) trained, "
          f"{timing['train_time_total_s']:.1f} s training)")
  return {"name": name, "results": results, "wall_time_s": wall,
          "models": ctx.model_records, "out_dir": out_dir, "timing": timing}


def run_experiments(name: str, config: Union[str, Mapping, None] = "quick",
                    output_dir: str = "results",
                    overrides: Optional[Mapping[str, Any]] = None,
                    cache_dir: Optional[str] = None, force: bool = False,
                    verbose: bool = True,
                    allow_substitute_data: bool = False) -> dict:
  """Runs an experiment or every experiment of a group (e.g. "all").

  Writes OUTPUT/summary.json (+ summary.md) with each experiment's wall time
  and results, and the total wall time.

  Args: as `run_experiment`; `overrides` apply to every experiment and keys
    missing in one experiment's config are skipped for it.
    allow_substitute_data: sets the config field of that name in every
      experiment that has one (bin/reproduce --allow_substitute_data): a
      preset that expects the paper's data (the paper presets of the image
      experiments) may then run on the named substitute instead of refusing.

  Returns:
    {"experiments": [run_experiment(...) results], "wall_time_s": total}.
  """
  names = resolve_names(name)
  t0 = time.perf_counter()
  runs = []
  hashes = _io.FileHashes()
  for n in names:
    exp = get_experiment(n)
    ov = overrides
    if overrides and len(names) > 1:
      ov = {}
      base = resolve_config(exp, config)
      for k, v in overrides.items():
        try:
          _typed.replace_dotted(base, k, v)
          ov[k] = v
        except KeyError:
          pass
    if allow_substitute_data and "allow_substitute_data" in {
        f.name for f in dataclasses.fields(exp.config_type)}:
      ov = dict(ov or {}, allow_substitute_data=True)
    runs.append(run_experiment(n, config, output_dir, ov, cache_dir, force,
                               verbose, hashes=hashes))
  wall = time.perf_counter() - t0
  summary = {"target": name, "config": config if isinstance(config, str)
                                       else "custom",
             "wall_time_s": round(wall, 3),
             "experiments": {r["name"]: {"wall_time_s": round(r["wall_time_s"], 3),
                                         "timing": r["timing"],
                                         "results": r["results"]}
                             for r in runs}}
  if len(names) > 1:
    _io.write_json(os.path.join(output_dir, f"summary_{name}.json"), summary)
    lines = [f"# bin/reproduce {name} --config {summary['config']}", "",
             f"Total wall time: {wall:.1f} s", "",
             "| experiment | wall time (s) | models trained | train time/model (s) |",
             "| --- | --- | --- | --- |"]
    for r in runs:
      t = r["timing"]
      lines.append(f"| [{r['name']}]({r['name']}/report.md) | "
                   f"{r['wall_time_s']:.1f} | {t['models_trained']} | "
                   f"{_fmt(t['train_time_per_model_s'])} |")
    _io.write_text(os.path.join(output_dir, f"summary_{name}.md"),
                   "\n".join(lines) + "\n")
  if verbose:
    print(f"[reproduce] {name}: {len(runs)} experiment(s) in {wall:.1f} s",
          flush=True)
  return {"experiments": runs, "wall_time_s": wall}
