"""Command-line plumbing for the thin scripts in bin/.

Each bin/ script maps its first argument (a subcommand) to a module in this
package. The module defines its absl flags at import time and a
`main(argv)` function that makes one library call. Only the chosen module is
imported, so subcommands may reuse flag names (--output, ...).

Errors: a ValueError/FileNotFoundError/RuntimeError raised by the library is
printed as one line `error: ...` on stderr with exit status 1 (set
TFC_PERCEPTION_DEBUG=1 for the traceback). Training stopped by Ctrl-C or
SIGTERM prints one line ("interrupted at step N; checkpoint saved; rerun the
same command to resume") and exits with 128 + the signal number.
"""

import importlib
import os
import sys
from typing import Mapping


def _one_line_errors(main):
  def wrapped(argv):
    try:
      return main(argv)
    except KeyboardInterrupt:
      if os.environ.get("TFC_PERCEPTION_DEBUG"):
        raise
      print("interrupted; rerun the same command to continue (finished "
            "models and checkpoints are kept)", file=sys.stderr)
      sys.exit(130)
    except Exception as e:  # pylint: disable=broad-except
      if type(e).__name__ == "TrainingInterrupted":
        # training.TrainingInterrupted (not imported here: that would start
        # TensorFlow): its message is the one line to print.
        if os.environ.get("TFC_PERCEPTION_DEBUG"):
          raise
        print(str(e), file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 130))
      if not isinstance(e, (ValueError, FileNotFoundError, RuntimeError,
                            OSError, KeyError)):
        raise
      if os.environ.get("TFC_PERCEPTION_DEBUG"):
        raise
      msg = str(e).strip().splitlines()
      print(f"error: {type(e).__name__}: {' '.join(msg) if msg else ''}",
            file=sys.stderr)
      sys.exit(1)
  return wrapped


def run_main(main, argv=None):
  """Runs `main` under absl.app with one-line error reporting."""
  from absl import app  # pylint: disable=g-import-not-at-top
  app.run(_one_line_errors(main), argv=argv)


def run_subcommands(prog: str, subcommands: Mapping[str, str],
                    description: str = "") -> None:
  """Dispatches `prog SUBCOMMAND [flags]` to `subcommands[SUBCOMMAND]`.

  Args:
    prog: the script name, for messages.
    subcommands: subcommand name -> module path (with `main(argv)`), each
      module's docstring is its help text.
    description: one paragraph shown by `prog --help`.
  """
  argv = sys.argv
  if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
    print(f"usage: {prog} SUBCOMMAND [--flags]   ({prog} SUBCOMMAND --helpfull "
          "lists every flag)\n")
    if description:
      print(description + "\n")
    print("subcommands:")
    for name, module in subcommands.items():
      print(f"  {name:<12} {module}")
    sys.exit(0 if len(argv) >= 2 else 2)
  name = argv[1]
  if name not in subcommands:
    print(f"error: unknown subcommand {name!r} for {prog}; accepted: "
          f"{', '.join(subcommands)}", file=sys.stderr)
    sys.exit(2)
  module = importlib.import_module(subcommands[name])
  run_main(module.main, argv=[f"{prog} {name}"] + argv[2:])
