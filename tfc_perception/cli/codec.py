"""bin/codec (tfcp-codec): image <-> compressed file.

MODEL is a directory written by tfc_perception.models.save_model (e.g. by
bin/train --export), or a pretrained tfci model (a registry name such as
bmshj2018-factorized-mse-3, see bin/download --list, or a .metagraph file;
those write tfc's .tfci files). The file records which model made it (fingerprint), so
decoding with another model, or a truncated or corrupted file, is a one-line
error with exit status 1. Outputs are written atomically; OUTPUT is never
INPUT, and an existing OUTPUT is replaced only with --overwrite. The file
format is described in tfc_perception/codec.py and docs/models.md.
"""

import sys

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_bool("overwrite", False, "Replace an existing OUTPUT file (never "
                  "the INPUT: that is always refused).")



def main(argv):
  """Runs one codec call: argv = ["codec compress", MODEL, INPUT, OUTPUT]."""
  command = argv[0].split()[-1] if argv else ""
  args = argv[1:]
  if command not in ("compress", "decompress"):
    raise app.UsageError(f"unknown subcommand {command!r}; accepted: "
                         "compress, decompress")
  if len(args) != 3:
    raise app.UsageError(f"expected 3 arguments MODEL INPUT OUTPUT, got "
                         f"{len(args)}")
  from tfc_perception import codec  # pylint: disable=g-import-not-at-top
  model, src, dst = args
  if command == "compress":
    stats = codec.compress_file(model, src, dst,
                                overwrite=FLAGS.overwrite)
    print(f"{dst}: {stats['bytes']} bytes, {stats['bits_per_pixel']:.4f} bpp "
          f"({stats['width']}x{stats['height']}"
          + (f", header {stats['header_bytes']} bytes)"
             if stats["header_bytes"] is not None else ", .tfci)"))
  else:
    stats = codec.decompress_file(model, src, dst,
                                  overwrite=FLAGS.overwrite)
    print(f"{dst}: {stats['width']}x{stats['height']} PNG")
  sys.stdout.flush()


def run(argv=None, prog=None):
  """The tfcp-codec command."""
  from tfc_perception import cli  # pylint: disable=g-import-not-at-top
  cli.run_tool("codec", argv, prog)


if __name__ == "__main__":
  run()
