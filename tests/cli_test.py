"""The command-line plumbing (tfc_perception.cli): one-line errors, help,
argument errors and start-up without TensorFlow, quiet logging, installed
commands and thin bin/ wrappers (issues 12 and 18)."""

import configparser
import os
import subprocess
import sys
import time

from absl import app
import pytest

from conftest import REPO_ROOT
from tfc_perception import cli

TOOLS = ("train", "evaluate", "codec", "download", "reproduce")


def _env(**extra):
  env = dict(os.environ, PYTHONPATH=REPO_ROOT)
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)
  env.pop(cli.DEBUG_ENV, None)
  env.update(extra)
  return env


def _bin(tool, *args, **env):
  return subprocess.run([sys.executable, os.path.join(REPO_ROOT, "bin", tool),
                         *map(str, args)], capture_output=True, text=True,
                        env=_env(**env), timeout=300, cwd=REPO_ROOT)


def _errors(stderr):
  return [l for l in stderr.splitlines() if l.startswith("error:")]


# ------------------------------------------------- the one-line error wrapper
def _raiser(exc):
  def main(argv):
    del argv
    raise exc
  return main


@pytest.mark.parametrize("exc, line, status", [
    (ValueError("bad value; accepted: a, b"),
     "error: bad value; accepted: a, b", 1),
    (FileNotFoundError("no such image: x.png"),
     "error: no such image: x.png", 1),
    (KeyError("unknown model 'm'; accepted: a"),
     "error: unknown model 'm'; accepted: a", 1),   # no quotes around it
    (RuntimeError("training diverged\n  in epoch 3"),
     "error: training diverged in epoch 3", 1),     # one line
    (OSError(30, "Read-only file system"),
     "error: [Errno 30] Read-only file system", 1),
    (app.UsageError("expected 3 arguments"),
     "error: expected 3 arguments (see prog --help)", 2),
    (KeyboardInterrupt(), "interrupted; rerun the same command to continue "
     "(finished models and checkpoints are kept)", 130),
])
def test_errors_are_one_line_with_a_status(capsys, monkeypatch, exc, line,
                                           status):
  monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
  with pytest.raises(SystemExit) as info:
    cli.main_of(_raiser(exc), "prog")(["prog"])
  assert info.value.code == status
  err = capsys.readouterr().err
  assert err.splitlines() == [line]


def test_tensorflow_errors_are_one_line(capsys, monkeypatch):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
  exc = tf.errors.InvalidArgumentError(
      None, None, "Invalid PNG data, size 1234\n\t [[{{node DecodePng}}]]")
  with pytest.raises(SystemExit) as info:
    cli.main_of(_raiser(exc), "prog")(["prog"])
  assert info.value.code == 1
  assert capsys.readouterr().err.splitlines() == [
      "error: Invalid PNG data, size 1234"]


@pytest.mark.parametrize("exc", [ValueError("v"), KeyError("k"),
                                 KeyboardInterrupt()])
def test_the_debug_variable_gives_the_traceback(monkeypatch, exc):
  monkeypatch.setenv(cli.DEBUG_ENV, "1")
  with pytest.raises(type(exc)):
    cli.main_of(_raiser(exc), "prog")(["prog"])


def test_programming_errors_keep_their_traceback(monkeypatch):
  monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
  with pytest.raises(ZeroDivisionError):
    cli.main_of(_raiser(ZeroDivisionError("bug")), "prog")(["prog"])


def test_a_real_process_prints_one_line_or_the_traceback():
  """The whole path through run_tool in a process: one `error:` line and no
  traceback, or (TFC_PERCEPTION_DEBUG=1) the traceback."""
  args = ["reproduce", "fig2", "--set", "train.steps"]  # no '=': rejected
  out = _bin(*args)
  assert out.returncode == 2
  assert out.stderr.splitlines() == [
      "error: --set expects KEY=VALUE, got 'train.steps' (see bin/reproduce "
      "--help)"]
  debug = _bin(*args, **{cli.DEBUG_ENV: "1"})
  assert debug.returncode != 0
  assert "Traceback (most recent call last)" in debug.stderr
  assert "UsageError: --set expects KEY=VALUE" in debug.stderr


def test_unknown_and_missing_subcommands():
  out = _bin("evaluate", "distancez")
  assert out.returncode == 2
  assert out.stderr.splitlines() == [
      "error: unknown subcommand 'distancez' for bin/evaluate; accepted: "
      "distances, iqa, rd (see bin/evaluate --help)"]
  out = _bin("codec")
  assert out.returncode == 2 and "subcommands:" in out.stdout
  out = _bin("codec", "compress", "m")
  assert out.returncode == 2
  assert _errors(out.stderr) == [
      "error: expected 2 or 3 arguments MODEL INPUT [OUTPUT], got 1 (see bin/codec "
      "compress --help)"]


@pytest.mark.slow
def test_a_bad_set_key_lists_the_known_keys(tmp_path):
  out = _bin("reproduce", "fig2", "--set", "trian.steps=5", "--output",
             tmp_path)
  assert out.returncode == 1
  (line,) = _errors(out.stderr)
  assert line.startswith("error: override 'trian.steps': ")
  assert "train" in line and "Traceback" not in out.stderr


def test_a_closed_pipe_ends_quietly(tmp_path):
  """`tfcp-download --list | head -1` (or --help | head) must not end in a
  BrokenPipeError traceback."""
  for args in (["download", "--list", "--cache_dir", str(tmp_path)],
               ["codec", "--help"]):
    script = (f"{sys.executable} {os.path.join(REPO_ROOT, 'bin', args[0])} "
              f"{' '.join(args[1:])} | head -c 5")
    out = subprocess.run(["bash", "-c", script], capture_output=True,
                         text=True, env=_env(), timeout=120)
    assert len(out.stdout) == 5 and out.stderr == "", out.stderr


def test_flag_errors_and_missing_required_flags():
  out = _bin("train", "--model=toy2d", "--data=student_t")
  assert out.returncode == 2
  assert out.stderr.splitlines() == [
      "error: missing required flag(s) --train_dir (see bin/train --help)"]
  out = _bin("evaluate", "distances", "--reference=a", "--distorted=b",
             "--nlpd_levels=x")
  assert out.returncode == 2
  (line,) = _errors(out.stderr)
  assert "--nlpd_levels" in line and line.endswith(
      "(see bin/evaluate distances --help)")


# ------------------------------------------------------------ help, start-up
_NO_TF = (
    "import sys, runpy\n"
    "sys.argv = {argv!r}\n"
    "try:\n"
    "  runpy.run_path({script!r}, run_name='__main__')\n"
    "except SystemExit as e:\n"
    "  code = e.code\n"
    "from absl import flags\n"
    "from tfc_perception import cli\n"
    "tool = cli.TOOLS[{tool!r}]\n"
    "command = tool.command(sys.argv[1]) if tool.has_subcommands and "
    "len(sys.argv) > 1 else tool.commands[0]\n"
    "own = flags.FLAGS.get_key_flags_for_module(command.module) "
    "if command and command.module in sys.modules else []\n"
    "print('FLAGS', *[f.name for f in own])\n"
    "print('STATUS', code, 'TF', 'tensorflow' in sys.modules)\n")


def _help_without_tf(tool, *args):
  """(stdout, stderr, status, tensorflow imported?, seconds, the command
  module's own flags) of bin/<tool> ARGS, run in a fresh process."""
  script = os.path.join(REPO_ROOT, "bin", tool)
  code = _NO_TF.format(argv=[f"bin/{tool}", *args], script=script, tool=tool)
  t0 = time.perf_counter()
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, env=_env(), timeout=120, cwd=REPO_ROOT)
  seconds = time.perf_counter() - t0
  lines = out.stdout.strip().splitlines()
  last = lines[-1].split()
  own = lines[-2].split()[1:]
  text = "\n".join(lines[:-2])
  return text, out.stderr, int(last[1]), last[3] == "True", seconds, own


@pytest.mark.parametrize("tool", TOOLS)
def test_help_lists_the_tools_flags_and_ends_with_examples(tool):
  spec = cli.TOOLS[tool]
  if spec.has_subcommands:
    text, _, status, tf_loaded, _, _ = _help_without_tf(tool, "--help")
    assert status == 0 and not tf_loaded
    listing = text[text.index("subcommands:"):text.index("\n\n",
                                                         text.index(
                                                             "subcommands:"))]
    names = [l.split()[0] for l in listing.splitlines()[1:]]
    assert names == [c.name for c in spec.commands]
    assert "tfc_perception" not in listing  # names, not module paths
    commands = spec.commands
  else:
    commands = spec.commands
  for command in commands:
    args = ([command.name] if command.name else []) + ["--help"]
    text, _, status, tf_loaded, seconds, own = _help_without_tf(tool, *args)
    assert status == 0, text
    assert not tf_loaded, f"bin/{tool} {' '.join(args)} imported TensorFlow"
    assert seconds < 10, seconds  # < 1 s on an idle machine (see report)
    assert own or command.module.endswith(("codec", "download")), args
    for name in own:
      line = next((l for l in text.splitlines()
                   if l.strip().startswith((f"--{name}:",
                                            f"--[no]{name}:"))), None)
      assert line is not None, f"--{name} missing from bin/{tool} help"
      assert len(line.split(":", 1)[1].strip()) > 5, line
    assert "--[no]verbose:" in text
    tail = text.strip().split("examples:")[-1].strip().splitlines()
    assert 2 <= len(tail) <= 3 or (command.name == "tid2013" and tail)
    prog = f"bin/{tool}" + (f" {command.name}" if command.name else "")
    assert all(l.strip().startswith(prog) for l in tail), tail


def test_argument_errors_answer_without_tensorflow():
  for args in (["train", "--nosuch"], ["train", "--model=toy2d"],
               ["codec", "compress", "a"], ["evaluate", "nope"],
               ["download", "models", "a", "--all"]):
    _, err, status, tf_loaded, _, _ = _help_without_tf(*args)
    assert status == 2 and not tf_loaded, (args, err)


def test_import_tfc_perception_is_light():
  code = ("import sys, tfc_perception, tfc_perception.cli.train\n"
          "print('tensorflow' in sys.modules)\n"
          "print(tfc_perception.distances.mse.__module__)\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, env=_env(), timeout=120)
  assert out.stdout.split() == ["False", "tfc_perception.distances.mse"], (
      out.stderr[-2000:])


def test_python_dash_m_runs_the_tools():
  out = subprocess.run([sys.executable, "-m", "tfc_perception.cli.train",
                        "--help"], capture_output=True, text=True, env=_env(),
                       timeout=120)
  assert out.returncode == 0, out.stderr
  assert out.stdout.startswith("usage: python -m tfc_perception.cli.train ")
  assert "--train_dir:" in out.stdout and "examples:" in out.stdout
  out = subprocess.run([sys.executable, "-m", "tfc_perception.cli.codec",
                        "compress", "a"], capture_output=True, text=True,
                       env=_env(), timeout=120)
  assert out.returncode == 2
  assert _errors(out.stderr) == [
      "error: expected 2 or 3 arguments MODEL INPUT [OUTPUT], got 1 (see python -m "
      "tfc_perception.cli.codec compress --help)"]


def test_console_scripts_point_at_the_tools():
  parser = configparser.ConfigParser()
  parser.read(os.path.join(REPO_ROOT, "setup.cfg"))
  scripts = dict(l.split("=") for l in parser["options.entry_points"][
      "console_scripts"].strip().splitlines())
  scripts = {k.strip(): v.strip() for k, v in scripts.items()}
  assert sorted(scripts) == sorted(f"tfcp-{t}" for t in TOOLS)
  for name, target in scripts.items():
    module, func = target.split(":")
    assert module == f"tfc_perception.cli.{name[5:]}"
    # One process per tool: two tools' flags may share names.
    out = subprocess.run(
        [sys.executable, "-c", f"from {module} import {func}; "
         f"print(callable({func}))"], capture_output=True, text=True,
        env=_env(), timeout=120)
    assert out.stdout.strip() == "True", out.stderr[-2000:]


def test_bin_wrappers_do_no_path_surgery_when_installed():
  code = ("import runpy, sys\n"
          "before = list(sys.path)\n"
          f"runpy.run_path({os.path.join(REPO_ROOT, 'bin', 'train')!r}, "
          "run_name='imported')\n"
          "print(sys.path == before)\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, env=_env(), timeout=120, cwd="/")
  assert out.stdout.strip() == "True", out.stderr[-2000:]


# ------------------------------------------------------------------ logging
def _tiny_pair(tmp_path):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  x = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
  Image.fromarray(x).save(tmp_path / "a.png")
  Image.fromarray(255 - x).save(tmp_path / "b.png")
  return ["evaluate", "distances", "--reference", tmp_path / "a.png",
          "--distorted", tmp_path / "b.png", "--distances", "psnr"]


def test_tensorflow_is_quiet_unless_verbose(tmp_path):
  args = _tiny_pair(tmp_path)
  quiet = _bin(*args)
  assert quiet.returncode == 0, quiet.stderr
  assert quiet.stderr == "", quiet.stderr  # no cuDNN/cuFFT/cuBLAS lines
  loud = _bin(*args, "--verbose")
  assert loud.returncode == 0
  assert "tensorflow/" in loud.stderr  # TensorFlow's C++ log lines are back
  assert quiet.stdout == loud.stdout
  # A level the user chose is respected.
  own = _bin(*args, TF_CPP_MIN_LOG_LEVEL="0")
  assert "tensorflow/" in own.stderr


def test_keras_builds_functional_models_under_the_tools():
  """A tool's main builds Keras functional models with KerasTensors, as in
  plain Python: with TensorFlow first imported after absl's app.run set up,
  tf.keras.Input gave graph placeholders, and tfp's weight-normed PixelCNN++
  (bin/reproduce sensitivity --config quick) failed to build."""
  code = (
      "import sys\n"
      "from tfc_perception import cli\n"
      "import tfc_perception.cli.reproduce as tool\n"
      "def main(argv):\n"
      "  import tensorflow as tf\n"
      "  print('INPUT', type(tf.keras.layers.Input((4, 4, 3))).__name__)\n"
      "tool.main = main\n"
      "cli.run_tool('reproduce', ['bin/reproduce', 'x'], 'bin/reproduce')\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, env=_env(), timeout=300, cwd=REPO_ROOT)
  assert "INPUT KerasTensor" in out.stdout, out.stdout + out.stderr[-2000:]
