"""bin/evaluate (tfcp-evaluate): distances | iqa | rd; each subcommand is a
module of this package (evaluate_distances, evaluate_iqa, evaluate_rd)."""


def run(argv=None, prog=None):
  """The tfcp-evaluate command."""
  from tfc_perception import cli  # pylint: disable=g-import-not-at-top
  cli.run_tool("evaluate", argv, prog)


if __name__ == "__main__":
  run()
