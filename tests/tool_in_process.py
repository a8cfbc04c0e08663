"""Runs a command-line tool (bin/<tool>) inside the test process.

The same path as the bin/<tool> process: subcommand dispatch, absl flag
parsing, the one-line error wrapper and sys.exit, without a TensorFlow
start-up (several seconds) per call. Tests of what only a real process shows
(exit status and stderr of the process, start-up without TensorFlow, the
bin/ wrappers) keep a subprocess.

absl's flags are global, and two tools' modules may define flags of the same
name (one tool per process is all the CLI promises). So the (sub)command's
module and its flags exist only during the call: the flags' values and
parsed state are put back afterwards, the flags the module defined are
removed again, and the module is re-imported by the next call.
"""

import sys

from absl import app
from absl import flags
from absl.testing import flagsaver
import pytest

from tfc_perception import cli


def run_tool(capsys, tool, *args):
  """`bin/<tool> ARGS` in this process.

  Args:
    capsys: pytest's capsys fixture (stdout/stderr of the call).
    tool: a key of tfc_perception.cli.TOOLS.
    *args: the command line after the program name (str() of each is used).

  Returns:
    (exit status, stdout, stderr) of the call.
  """
  app.define_help_flags()  # Defined once, before the flags are saved.
  was_parsed = flags.FLAGS.is_parsed()
  saved = flagsaver.save_flag_values()
  capsys.readouterr()
  try:
    with pytest.raises(SystemExit) as info:
      cli.run_tool(tool, [f"bin/{tool}", *map(str, args)],
                   prog=f"bin/{tool}")
  finally:
    flagsaver.restore_flag_values(saved)  # Also deletes the tool's flags.
    for command in cli.TOOLS[tool].commands:
      sys.modules.pop(command.module, None)
    if not was_parsed:
      flags.FLAGS.unparse_flags()
  out = capsys.readouterr()
  return info.value.code or 0, out.out, out.err
