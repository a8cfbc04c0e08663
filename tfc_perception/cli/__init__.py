"""The command-line tools: bin/<tool>, the installed tfcp-<tool> commands and
`python -m tfc_perception.cli.<tool>` all run `run_tool(<tool>)`.

    train       train a compressive autoencoder with Eq. 3
    evaluate    distances | iqa | rd
    codec       compress | decompress
    download    list | models | kodak | tid2013 | tensors
    reproduce   the paper's experiments

`TOOLS` below is the whole command-line surface: per tool and subcommand the
module that implements it, a one-line summary, the usage line and examples.
A (sub)command module defines its absl flags at import time, a docstring
(the description in --help) and `main(argv)`, which makes one library call;
it must not import TensorFlow at import time.

What every tool does the same way:
- `--help` (also -h, --helpshort) prints the usage, the description, the
  tool's own flags with their help text and defaults, and ends with
  examples; `--helpfull` adds absl's flags. Help and argument errors answer
  without importing TensorFlow.
- Argument errors are one line `error: ...` on stderr, exit status 2.
- Errors raised by the library (ValueError, FileNotFoundError, KeyError,
  RuntimeError, OSError, TensorFlow's errors) are one line `error: <the
  message>`, exit status 1. Ctrl-C is one line too ("interrupted; rerun the
  same command to continue ..."), status 130; training stopped by Ctrl-C or
  SIGTERM prints "interrupted at step N; checkpoint saved; rerun the same
  command to resume" and exits with 128 + the signal number. Set
  TFC_PERCEPTION_DEBUG=1 to get the traceback instead.
- TensorFlow's own logging is quiet (TF_CPP_MIN_LOG_LEVEL=3, which also
  hides the cuDNN/cuFFT/cuBLAS "Unable to register" lines, and the Python
  logger at ERROR) unless the user set TF_CPP_MIN_LOG_LEVEL or passes
  `--verbose`. Warnings of this package still show.
"""

import dataclasses
import faulthandler
import importlib
import logging
import os
import re
import sys
import textwrap
import traceback
from typing import Optional, Sequence, Tuple

from absl import flags

__all__ = ["TOOLS", "Tool", "Command", "run_tool", "main_of"]

DEBUG_ENV = "TFC_PERCEPTION_DEBUG"
_HELP = ("-h", "--help", "-help", "--helpshort", "-helpshort")
_HELPFULL = ("--helpfull", "-helpfull")

flags.DEFINE_bool("verbose", False, "Show TensorFlow's own log messages "
                  "(hidden by default unless TF_CPP_MIN_LOG_LEVEL is set).")


@dataclasses.dataclass(frozen=True)
class Command:
  """A command: the module with its flags and main(), and its help texts.

  `usage` and `examples` may use {prog}, the name the tool was run by (with
  the subcommand, e.g. "bin/codec compress").
  """
  name: str
  module: str
  summary: str
  usage: str
  examples: Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Tool:
  """A tool: one command (`name` of the command is "") or subcommands."""
  name: str
  summary: str
  commands: Tuple[Command, ...]
  examples: Tuple[str, ...] = ()

  @property
  def has_subcommands(self) -> bool:
    return bool(self.commands[0].name)

  def command(self, name: str) -> Optional[Command]:
    return next((c for c in self.commands if c.name == name), None)


_CLI = "tfc_perception.cli."
TOOLS = {t.name: t for t in (
    Tool("train", "Train a compressive autoencoder with Eq. 3, "
         "L = R + lambda * D.", (
             Command(
                 "", _CLI + "train", "",
                 "{prog} --model NAME --data DATA --train_dir DIR [flags]", (
                     "{prog} --model toy2d --data student_t --lambda 10 "
                     "--train_dir runs/t",
                     "{prog} --model factorized --quality 3 --data "
                     "images/ --patchsize 256 --train_dir runs/fp3 "
                     "--export models/fp3",
                     "{prog} --model softquant --data uniform_noise "
                     "--num_centers 8 --train_dir runs/sq --epochs 20",
                 )),)),
    Tool("evaluate", "Distances between images, their agreement with human "
         "opinion, and rate-distortion of models.", (
             Command(
                 "distances", _CLI + "evaluate_distances",
                 "distances between image pairs (PSNR, MS-SSIM, NLPD)",
                 "{prog} --reference FILE|DIR --distorted FILE|DIR [flags]"
                 " | --list", (
                     "{prog} --reference a.png --distorted b.png "
                     "--distances nlpd",
                     "{prog} --reference refs/ --distorted dists/ "
                     "--output table.csv",
                     "{prog} --list   # every metric: names, aliases, sizes",
                 )),
             Command(
                 "iqa", _CLI + "evaluate_iqa",
                 "agreement with human opinion scores (TID2013, Fig. 3)",
                 "{prog} --root DIR --output DIR [--models ...] [flags]", (
                     "{prog} --dataset tid2013 --root data/tid2013 "
                     "--distances psnr,msssim,nlpd --output results/iqa",
                     "{prog} --root data/tid2013 --models "
                     "bmshj2018-factorized-mse-1..8 --distances dr,din "
                     "--output results/iqa",
                 )),
             Command(
                 "rd", _CLI + "evaluate_rd",
                 "rate-distortion of compression models on an image folder",
                 "{prog} --data DIR --models NAME,... --output DIR [flags]", (
                     "{prog} --data data/kodak --models "
                     "bmshj2018-factorized-mse-1..8 --output results/rd",
                     "{prog} --data data/kodak --models models/fp3 --limit 4 "
                     "--output results/rd-mine",
                 )),
         ), (
             "{prog} distances --reference a.png --distorted b.png",
             "{prog} iqa --root data/tid2013 --distances psnr,nlpd "
             "--output results/iqa",
             "{prog} rd --data data/kodak --models models/fp3 "
             "--output results/rd",
         )),
    Tool("codec", "Compress an image with a model into a .tfci file "
         "(tfc's format, with the model's fingerprint and a checksum), and "
         "decompress it (also tfci.py's files and release-1 TFCP files).", (
             Command(
                 "compress", _CLI + "codec",
                 "image (PNG, JPEG, ...) -> .tfci file",
                 "{prog} MODEL INPUT [OUTPUT, default INPUT.tfci] "
                 "[--overwrite]", (
                     "{prog} models/fp3 photo.png   # writes photo.png.tfci",
                     "{prog} bmshj2018-factorized-mse-3 photo.png photo.tfci",
                 )),
             Command(
                 "decompress", _CLI + "codec",
                 ".tfci (or release-1 TFCP) file -> PNG",
                 "{prog} MODEL INPUT [OUTPUT, default INPUT.png] "
                 "[--max_pixels N] [--overwrite]", (
                     "{prog} models/fp3 photo.png.tfci photo_decoded.png",
                     "{prog} models/fp3 old_release1_file.tfcp old.png",
                     "{prog} bmshj2018-factorized-mse-3 photo.tfci "
                     "photo_decoded.png --max_pixels 50000000",
                 )),
         ), (
             "{prog} compress models/fp3 photo.png",
             "{prog} decompress models/fp3 photo.png.tfci photo_decoded.png",
         )),
    Tool("download", "Fetch pretrained models and datasets into the verified "
         "cache.", (
             Command("list", _CLI + "download",
                     "registry entries and what is cached (also --list)",
                     "{prog} [--cache_dir DIR]",
                     ("{prog}", "{prog} --cache_dir /data/tfcp-cache")),
             Command("models", _CLI + "download",
                     "pretrained bmshj2018-factorized models",
                     "{prog} NAME ... | --all [flags]", (
                         "{prog} bmshj2018-factorized-mse-3",
                         "{prog} --all --cache_dir /data/tfcp-cache",
                         "{prog} --all --offline   # only check the cache",
                     )),
             Command("kodak", _CLI + "download",
                     "the 24 Kodak images (sha256 pinned)",
                     "{prog} [flags]",
                     ("{prog}", "{prog} --url_prefix http://mirror/kodak")),
             Command("tid2013", _CLI + "download",
                     "how to get TID2013 (a manual download)",
                     "{prog}", ("{prog}",)),
             Command("tensors", _CLI + "download",
                     "a tfci graph's tensors and the roles found for them",
                     "{prog} MODEL [--tensors role=name,...] "
                     "[--candidates_only] [flags]", (
                         "{prog} bmshj2018-factorized-mse-3",
                         "{prog} my.metagraph --candidates_only",
                         "{prog} my.metagraph --tensors latent=analysis/"
                         "Conv2D:0,reconstruction=synthesis/output:0",
                     )),
         ), (
             "{prog} --list",
             "{prog} models bmshj2018-factorized-mse-3",
             "{prog} kodak",
         )),
    Tool("reproduce", "Reproduce the paper's experiments and figures.", (
        Command(
            "", _CLI + "reproduce", "",
            "{prog} EXPERIMENT|GROUP|list [--config tiny|quick|paper|FILE.json]"
            " [--output DIR] [flags]", (
                "{prog} list",
                "{prog} all --config quick --output results",
                "{prog} fig2 --config quick --set train.steps=500 "
                "--output results",
            )),)),
)}


# ------------------------------------------------------------------- help
def _flag_lines(flag) -> str:
  name = f"--[no]{flag.name}" if flag.boolean else f"--{flag.name}"
  text = " ".join((flag.help or "").split()).replace(".;", ";")
  values = getattr(flag.parser, "enum_values", None)
  if values:
    text = f"<{'|'.join(values)}>: {text}"
  default = flag.default_as_str
  if flag.default not in (None, [], "") and default not in ("''", '""'):
    text += f" (default: {default.strip(chr(39))})"
  return textwrap.fill(f"{name}: {text}", width=79, initial_indent="  ",
                       subsequent_indent="      ")


def _module_flags(module) -> list:
  return list(flags.FLAGS.get_key_flags_for_module(module.__name__))


def _description(module) -> str:
  doc = (module.__doc__ or "").strip()
  return textwrap.dedent(doc.split("\n", 1)[1]).strip() if "\n" in doc else ""


def format_command_help(prog: str, tool: Tool, command: Command,
                        module) -> str:
  """--help of one (sub)command."""
  summary = command.summary or tool.summary
  summary = summary[0].upper() + summary[1:]
  lines = [f"usage: {command.usage.format(prog=prog)}", "",
           textwrap.fill(summary + ("" if summary.endswith(".") else "."),
                         width=79), ""]
  description = _description(module)
  if description:
    lines += [description, ""]
  lines.append("flags:")
  lines += [_flag_lines(f) for f in _module_flags(module)]
  lines.append(_flag_lines(flags.FLAGS["verbose"]))
  lines += ["  --helpfull: also absl's own flags", "", "examples:"]
  lines += [f"  {e.format(prog=prog)}" for e in command.examples]
  return "\n".join(lines)


def format_tool_help(prog: str, tool: Tool) -> str:
  """--help of a tool with subcommands: one line per subcommand."""
  width = max(len(c.name) for c in tool.commands) + 2
  lines = [f"usage: {prog} SUBCOMMAND [ARGS] [flags]", "",
           textwrap.fill(tool.summary, width=79), "", "subcommands:"]
  lines += [f"  {c.name:<{width}}{c.summary}" for c in tool.commands]
  lines += ["", f"{prog} SUBCOMMAND --help lists its flags.", "", "examples:"]
  lines += [f"  {e.format(prog=prog)}" for e in tool.examples]
  return "\n".join(lines)


# ----------------------------------------------------------------- running
def _quiet_logging(verbose: bool) -> None:
  """Quiet TensorFlow unless --verbose or the user chose a C++ log level.
  Must run before TensorFlow is imported (the C++ level is read then)."""
  os.environ.setdefault("MPLBACKEND", "Agg")
  if verbose or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
    return
  os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
  logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _message(e: BaseException) -> str:
  """The exception's message on one line (a KeyError's without quotes)."""
  if isinstance(e, KeyError) and len(e.args) == 1 and isinstance(
      e.args[0], str):
    text = e.args[0]
  else:
    text = getattr(e, "message", None) if _is_tf_error(e) else None
    text = text or str(e)
  lines = [l.strip() for l in text.strip().splitlines()
           if l.strip() and not l.strip().startswith("[[")]
  return " ".join(lines) or type(e).__name__


def _is_tf_error(e: BaseException) -> bool:
  tf = sys.modules.get("tensorflow")
  errors = getattr(tf, "errors", None)
  return errors is not None and isinstance(e, errors.OpError)


def _stop(line: str, status: int):
  sys.stdout.flush()
  print(line, file=sys.stderr)
  sys.exit(status)


def _closed_pipe():
  """stdout's reader went away (e.g. `tfcp-download --list | head -1`):
  stop quietly, as command-line tools do, instead of a traceback."""
  devnull = os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, sys.stdout.fileno())
  sys.exit(141)  # 128 + SIGPIPE, what a shell reports for it


def _fail(message: str, status: int):
  _stop(f"error: {message}", status)


def main_of(main, prog: str):
  """`main` with one-line errors (see the module docstring)."""
  from absl import app  # pylint: disable=g-import-not-at-top

  def wrapped(argv):
    debug = bool(os.environ.get(DEBUG_ENV))
    try:
      return main(argv)
    except app.UsageError as e:
      if debug:  # absl.app would print the usage instead of the traceback.
        traceback.print_exc()
        sys.exit(2)
      _fail(f"{_message(e)} (see {prog} --help)", 2)
    except BrokenPipeError:
      _closed_pipe()
    except KeyboardInterrupt:
      if debug:
        raise
      _stop("interrupted; rerun the same command to continue (finished "
            "models and checkpoints are kept)", 130)
    except (ValueError, FileNotFoundError, RuntimeError, OSError,
            KeyError) as e:
      if debug:
        raise
      _fail(_message(e), 1)
    except Exception as e:  # pylint: disable=broad-except
      if type(e).__name__ == "TrainingInterrupted" and not debug:
        # training.TrainingInterrupted (not imported here: that would start
        # TensorFlow): its message is the one line to print.
        _stop(str(e), getattr(e, "exit_code", 130))
      if debug or not _is_tf_error(e):
        raise
      _fail(_message(e), 1)
  return wrapped


def _import(name: str):
  """The module `name`; the running one if it is `python -m name`."""
  main = sys.modules.get("__main__")
  if getattr(getattr(main, "__spec__", None), "name", None) == name:
    return main
  return importlib.import_module(name)


def _prog(tool: str, argv0: str) -> str:
  base = os.path.basename(argv0 or "")
  if base.startswith("tfcp-"):
    return base
  if base.endswith(".py") or base == "__main__.py":
    return f"python -m tfc_perception.cli.{tool}"
  return f"bin/{tool}" if base == tool else (base or tool)


def run_tool(tool_name: str, argv: Optional[Sequence[str]] = None,
             prog: Optional[str] = None) -> None:
  """Runs a tool (see `_run_tool`); a closed stdout ends it quietly."""
  try:
    _run_tool(tool_name, argv, prog)
  except BrokenPipeError:
    _closed_pipe()


def _run_tool(tool_name: str, argv: Optional[Sequence[str]] = None,
              prog: Optional[str] = None) -> None:
  """Runs a tool: dispatches the subcommand, prints help, parses flags and
  runs the command's main under one-line errors. Exits the process.

  Args:
    tool_name: a key of TOOLS.
    argv: the command line (default sys.argv); argv[0] is the program.
    prog: the program name for messages (default: from argv[0]).
  """
  from absl import app  # pylint: disable=g-import-not-at-top
  tool = TOOLS[tool_name]
  argv = list(sys.argv if argv is None else argv)
  prog = prog or _prog(tool_name, argv[0] if argv else "")
  args = argv[1:]
  if tool.has_subcommands:
    if tool_name == "download" and args and args[0].split("=")[0] in (
        "--list", "-list"):
      args = ["list"] + args
    if not args or args[0] in _HELP + _HELPFULL + ("help",):
      print(format_tool_help(prog, tool))
      sys.exit(0 if args else 2)
    command = tool.command(args[0])
    if command is None:
      _fail(f"unknown subcommand {args[0]!r} for {prog}; accepted: "
            f"{', '.join(c.name for c in tool.commands)} (see {prog} --help)",
            2)
    prog, args = f"{prog} {command.name}", args[1:]
  else:
    command = tool.commands[0]
  module = _import(command.module)
  app.define_help_flags()
  options = args[:args.index("--")] if "--" in args else args
  if any(a in _HELP for a in options):
    print(format_command_help(prog, tool, command, module))
    sys.exit(0)
  if any(a in _HELPFULL for a in options):
    print(format_command_help(prog, tool, command, module))
    print("\nall flags:\n" + flags.FLAGS.get_help())
    sys.exit(0)
  try:
    remaining = flags.FLAGS([prog] + args)
  except flags.Error as e:
    missing = re.findall(r"Flag --(\w+) must have a value other than None",
                         str(e))
    message = (f"missing required flag(s) {', '.join('--' + m for m in missing)}"
               if missing else _message(e))
    _fail(f"{message} (see {prog} --help)", 2)
  _quiet_logging(flags.FLAGS.verbose)
  # main runs as it would from Python, not under absl's app.run (the flags
  # are parsed above). TensorFlow, first imported inside main, registers
  # absl init callbacks at import (tensorflow/python/distribute/
  # combinations.py); after app.run's initialisation they run at once,
  # mid-import, and create TensorFlow's eager context before eager
  # execution is on. Keras then builds functional models on graph
  # placeholders, and layers whose call is a tf.function (tfp's weight norm
  # in the PixelCNN++ of bin/reproduce sensitivity) fail on them.
  try:  # Tracebacks on fatal signals, as app.run gave them.
    faulthandler.enable()
  except (AttributeError, ValueError):  # stderr is not a file (captured).
    pass
  sys.exit(main_of(module.main, prog)(remaining))
