"""Tests of the experiment runner: registration, configs, model cache, outputs."""

import dataclasses
import json
import os
import warnings
from typing import Tuple

import numpy as np
import pytest

from tfc_perception import _io
from tfc_perception import _typed
from tfc_perception.experiments import runner


def _save(model, path):
  os.makedirs(path, exist_ok=True)
  _io.write_json(os.path.join(path, "m.json"), model)


def _load(path):
  return _io.read_json(os.path.join(path, "m.json"))


@dataclasses.dataclass(frozen=True)
class _Train(_typed.Checked):
  steps: int


@dataclasses.dataclass(frozen=True)
class _Lines(_typed.Checked):
  slopes: Tuple[int, ...]
  train: _Train


def _make_experiment(name, calls):
  def run(ctx):
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    models = []
    for a in ctx.config.slopes:
      def train(train_dir, a=a):
        del train_dir
        calls.append(a)
        return {"slope": a}, {"loss": 1.0 / a}
      models.append(ctx.cached_model({"kind": "line", "slope": a,
                                      "steps": ctx.config.train.steps},
                                     train, save_fn=_save, load_fn=_load,
                                     label=f"line-{a}"))
    x = np.linspace(0, 1, 5)
    rows = [{"slope": m["slope"], "x": xi, "y": m["slope"] * xi}
            for m in models for xi in x]
    ctx.write_csv("lines.csv", rows)
    fig, ax = plt.subplots()
    for m in models:
      ax.plot(x, m["slope"] * x)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ctx.save_figure(fig, "lines.png", caption="lines",
                    numbers={"max_slope": max(m["slope"] for m in models)},
                    table="lines.csv")
    return {"max_slope": max(m["slope"] for m in models),
            "n": np.int64(len(models))}
  return runner.register_experiment(
      name, run, configs={"tiny": _Lines((1, 2), _Train(3)),
                          "quick": _Lines((1, 2, 3), _Train(3))},
      description="test lines", paper_figures=("Fig. T",),
      groups=("testgroup",))


def test_run_writes_outputs_and_reuses_cached_models(tmp_path):
  calls = []
  _make_experiment("runner_test_lines", calls)
  out = runner.run_experiment("runner_test_lines", "tiny", str(tmp_path),
                              verbose=False)
  assert calls == [1, 2]
  d = tmp_path / "runner_test_lines"
  for f in ("results.json", "lines.csv", "lines.png", "models.csv",
            "report.md", "manifest.json"):
    assert (d / f).exists(), f
  res = json.loads((d / "results.json").read_text())
  assert res["results"] == {"max_slope": 2, "n": 2}
  assert res["timing"]["models_trained"] == 2
  manifest = json.loads((d / "manifest.json").read_text())
  assert manifest["config"]["slopes"] == [1, 2]
  assert manifest["experiment"] == "runner_test_lines"
  report = (d / "report.md").read_text()
  assert "![lines.png](lines.png)" in report and "max_slope" in report
  assert (d / "lines.png").read_bytes()[:4] == b"\x89PNG"
  assert out["results"]["max_slope"] == 2

  # Second run with a superset: only the new model is trained.
  runner.run_experiment("runner_test_lines", "quick", str(tmp_path),
                        verbose=False)
  assert calls == [1, 2, 3]
  models = (d / "models.csv").read_text().splitlines()
  assert [line.split(",")[2] for line in models[1:]] == [
      "cache", "cache", "trained"]
  # A changed training config is a different model.
  runner.run_experiment("runner_test_lines", "tiny", str(tmp_path),
                        overrides={"train.steps": 4}, verbose=False)
  assert calls == [1, 2, 3, 1, 2]
  # force retrains.
  runner.run_experiment("runner_test_lines", "tiny", str(tmp_path),
                        force=True, verbose=False)
  assert calls == [1, 2, 3, 1, 2, 1, 2]


def test_group_summary(tmp_path):
  calls = []
  _make_experiment("runner_test_group", calls)
  assert "runner_test_group" in runner.resolve_names("testgroup")
  out = runner.run_experiments("runner_test_group", "tiny", str(tmp_path),
                               verbose=False)
  assert len(out["experiments"]) == 1


def test_config_hash_ignores_key_order_and_sees_values():
  a = runner.config_hash({"a": 1, "b": {"c": 2, "d": [1, 2]}})
  b = runner.config_hash({"b": {"d": [1, 2], "c": 2}, "a": 1})
  c = runner.config_hash({"b": {"d": [1, 2], "c": 3}, "a": 1})
  assert a == b != c and len(a) == 16


def test_errors_name_what_is_accepted(tmp_path):
  _make_experiment("runner_test_errors", [])
  with pytest.raises(KeyError, match="accepted"):
    runner.get_experiment("no_such_experiment")
  with pytest.raises(KeyError, match="tiny, quick"):
    runner.run_experiment("runner_test_errors", "huge", str(tmp_path))
  with pytest.raises(KeyError, match="no such config key"):
    runner.run_experiment("runner_test_errors", "tiny", str(tmp_path),
                          overrides={"train.stepz": 1})
  # Overrides are type-checked against the typed config.
  with pytest.raises(ValueError, match=r"train.steps must be an integer, "
                     "got 1.5"):
    runner.run_experiment("runner_test_errors", "tiny", str(tmp_path),
                          overrides={"train.steps": 1.5})
  with pytest.raises(ValueError, match=r"slopes\[1\] must be an integer"):
    runner.run_experiment("runner_test_errors", "tiny", str(tmp_path),
                          overrides={"slopes": [1, "two"]})
  # A JSON config file is checked the same way, and must be complete.
  bad = tmp_path / "bad.json"
  bad.write_text('{"slopes": [1]}')
  with pytest.raises(ValueError, match=r"missing key\(s\) \['train'\]"):
    runner.run_experiment("runner_test_errors", str(bad), str(tmp_path))
  with pytest.raises(ValueError, match="letters"):
    runner.register_experiment("bad name", lambda ctx: {},
                               {"quick": _Lines((1,), _Train(1))})
  with pytest.raises(ValueError, match="non-empty"):
    runner.register_experiment("ok_name", lambda ctx: {}, {})
  with pytest.raises(ValueError, match="one frozen dataclass"):
    runner.register_experiment("ok_name", lambda ctx: {}, {"quick": {}})


def test_builtin_experiments_have_presets():
  exps = runner.list_experiments()
  names = [e.name for e in exps]
  assert "dae" in names
  for e in exps:
    if e.name.startswith("runner_test"):
      continue
    assert {"tiny", "quick", "paper"} <= set(e.configs), e.name


def test_broken_experiment_module_does_not_hide_the_others(monkeypatch,
                                                          capsys):
  monkeypatch.setattr(runner, "_LOADED", False)
  monkeypatch.setattr(runner, "_IMPORT_ERRORS", {})
  monkeypatch.setattr(runner, "BUILTIN_MODULES", list(
      runner.BUILTIN_MODULES) + ["tfc_perception.experiments.no_such_module"])
  assert "dae" in [e.name for e in runner.list_experiments()]
  assert "no_such_module" in capsys.readouterr().err
  with pytest.raises(KeyError, match="no_such_module"):
    runner.get_experiment("not_registered")


def test_report_tables_escape_pipes():
  table = runner._md_table({"ρ(|dev|, p)": [0.5, -0.25]})  # pylint: disable=protected-access
  assert "| ρ(\\|dev\\|, p) | [0.5, -0.25] |" in table.splitlines()


# --- the model cache after a crash, and with corrupt entries ---------------

_KEY = {"kind": "line", "slope": 3}


def _context(cache_dir):
  exp = runner.Experiment("runner_test_cache", lambda ctx: {}, {})
  return runner.RunContext(exp, None, os.path.join(cache_dir, "out"),
                           os.path.join(cache_dir, "models"), verbose=False)


def _cached(cache_dir, calls, value=3):
  def train(train_dir):
    del train_dir
    calls.append(value)
    return {"slope": value}, {"loss": 0.5}
  ctx = _context(cache_dir)
  model = ctx.cached_model(_KEY, train, save_fn=_save, load_fn=_load,
                           label="line-3")
  return model, ctx.model_records[-1]["source"]


def _entry(cache_dir):
  return os.path.join(cache_dir, "models", runner.config_hash(_KEY))


_KILLED_AFTER_SAVE = """
import os, signal, sys
from tfc_perception import _io
from tfc_perception.experiments import runner

def save(model, path):
  os.makedirs(path)
  _io.write_json(os.path.join(path, "m.json"), model)
  os.kill(os.getpid(), signal.SIGKILL)  # killed right after the model is saved

exp = runner.Experiment("runner_test_cache", lambda ctx: {}, {})
ctx = runner.RunContext(exp, None, os.path.join(sys.argv[1], "out"),
                        os.path.join(sys.argv[1], "models"), verbose=False)
ctx.cached_model({"kind": "line", "slope": 3},
                 lambda train_dir: ({"slope": 3}, {"loss": 0.5}),
                 save_fn=save, label="line-3")
"""


def test_kill_between_saving_the_model_and_done_json_retrains_with_warning(
    tmp_path):
  import signal  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  # A real SIGKILL in the middle of writing the cache entry, in a process
  # that does not import TensorFlow (about a second).
  proc = subprocess.run([sys.executable, "-c", _KILLED_AFTER_SAVE,
                         str(tmp_path)], capture_output=True, text=True,
                        env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                            [os.getcwd()] + sys.path)), check=False)
  assert proc.returncode == -signal.SIGKILL, proc.stderr
  calls = []
  with pytest.warns(RuntimeWarning, match="incomplete.*retraining"):
    model, source = _cached(str(tmp_path), calls)
  assert (calls, model, source) == ([3], {"slope": 3}, "trained")
  with warnings.catch_warnings(action="error"):  # now complete: loaded, without a warning
    model, source = _cached(str(tmp_path), calls)
  assert (calls, model, source) == ([3], {"slope": 3}, "cache")


def test_entry_without_done_json_is_retrained_with_warning(tmp_path):
  # What a kill left in the cache before done.json moved into the entry:
  # the model and config saved, no done.json.
  entry = _entry(str(tmp_path))
  _save({"slope": -1}, os.path.join(entry, "model"))
  _io.write_json(os.path.join(entry, "config.json"), _KEY)
  calls = []
  with pytest.warns(RuntimeWarning, match="incomplete"):
    model, source = _cached(str(tmp_path), calls)
  assert (calls, model, source) == ([3], {"slope": 3}, "trained")
  assert _load(os.path.join(entry, "model")) == {"slope": 3}


@pytest.mark.parametrize("damage", ["done_json", "model", "other_key",
                                    "no_model"])
def test_corrupt_cache_entry_is_retrained_with_warning(tmp_path, damage):
  calls = []
  _cached(str(tmp_path), calls)
  entry = _entry(str(tmp_path))
  if damage == "done_json":
    with open(os.path.join(entry, "done.json"), "w") as f:
      f.write('{"train_time_s": 1.0, "inf')  # cut short
  elif damage == "model":
    with open(os.path.join(entry, "model", "m.json"), "w") as f:
      f.write("\x00\x00")
  elif damage == "other_key":
    meta = _io.read_json(os.path.join(entry, "done.json"))
    _io.write_json(os.path.join(entry, "done.json"), dict(meta, key="0" * 16))
  else:
    os.remove(os.path.join(entry, "model", "m.json"))
  with pytest.warns(RuntimeWarning, match="corrupt.*retraining"):
    model, source = _cached(str(tmp_path), calls, value=4)
  assert (calls, model, source) == ([3, 4], {"slope": 4}, "trained")
  with warnings.catch_warnings(action="error"):
    model, source = _cached(str(tmp_path), calls, value=5)
  assert (calls, model, source) == ([3, 4], {"slope": 4}, "cache")


def test_files_key_follows_the_bytes_and_reads_each_file_once(tmp_path,
                                                             monkeypatch):
  reads = []
  real = _io.sha256_file
  monkeypatch.setattr(_io, "sha256_file", lambda p: reads.append(p) or real(p))
  a, b = tmp_path / "kodim01.png", tmp_path / "kodim02.png"
  a.write_bytes(b"first image")
  b.write_bytes(b"second image")
  ctx = _context(str(tmp_path))
  key = ctx.files_key([str(a), str(b)])
  import hashlib  # pylint: disable=g-import-not-at-top
  assert key == [["kodim01.png", 11, hashlib.sha256(b"first image").hexdigest()],
                 ["kodim02.png", 12,
                  hashlib.sha256(b"second image").hexdigest()]]
  assert ctx.files_key([str(a), str(b)]) == key
  assert len(reads) == 2  # each file read once in this run
  a.write_bytes(b"other image")  # same name, same size, other bytes
  os.utime(a, ns=(1, 1))
  changed = ctx.files_key([str(a), str(b)])
  assert changed[0][:2] == key[0][:2] and changed[0][2] != key[0][2]
  assert changed[1] == key[1]
  assert runner.config_hash({"files": changed}) != runner.config_hash(
      {"files": key})
  with pytest.raises(FileNotFoundError):
    ctx.files_key([str(tmp_path / "missing.png")])
