"""bin/codec (tfcp-codec): image <-> .tfci file.

MODEL is a directory written by tfc_perception.models.save_model (e.g. by
bin/train --export), or a pretrained tfci model (a registry name such as
bmshj2018-factorized-mse-3, see bin/download --list, or a .metagraph file).
Files are tensorflow-compression's .tfci format (tfc's tfci.py reads them,
and bin/codec reads tfci.py's), with the model's fingerprint and a CRC-32 as
extra features: decoding with another model, or a truncated or corrupted
file, is a one-line error with exit status 1. decompress also reads the TFCP
files of release 1, and refuses a file claiming more than --max_pixels pixels
before decoding anything. OUTPUT defaults to INPUT.tfci / INPUT.png (as
tfci.py); OUTPUT is never INPUT or inside MODEL, and an existing OUTPUT is
replaced only with --overwrite. Outputs are written atomically. The format
is described in tfc_perception/codec.py and docs/models.md.
"""

import sys

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_bool("overwrite", False, "Replace an existing OUTPUT file (never "
                  "the INPUT: that is always refused).")
flags.DEFINE_integer(
    "max_pixels", 2 ** 28,
    "decompress: largest image (height x width) a file may claim; larger "
    "claims are refused before anything is allocated.", lower_bound=1)


def main(argv):
  """Runs one codec call: argv = ["codec compress", MODEL, INPUT[, OUTPUT]]."""
  command = argv[0].split()[-1] if argv else ""
  args = argv[1:]
  if command not in ("compress", "decompress"):
    raise app.UsageError(f"unknown subcommand {command!r}; accepted: "
                         "compress, decompress")
  if len(args) not in (2, 3):
    raise app.UsageError(f"expected 2 or 3 arguments MODEL INPUT [OUTPUT], "
                         f"got {len(args)}")
  from tfc_perception import codec  # pylint: disable=g-import-not-at-top
  model, src = args[:2]
  dst = args[2] if len(args) == 3 else None
  if command == "compress":
    stats = codec.compress_file(model, src, dst, overwrite=FLAGS.overwrite)
    print(f"{stats['path']}: {stats['bytes']} bytes, "
          f"{stats['bits_per_pixel']:.4f} bpp ({stats['width']}x"
          f"{stats['height']}, {stats['header_bytes']} bytes besides the "
          "bit-string)")
  else:
    stats = codec.decompress_file(model, src, dst, FLAGS.max_pixels,
                                  overwrite=FLAGS.overwrite)
    print(f"{stats['path']}: {stats['width']}x{stats['height']} PNG")
  sys.stdout.flush()


def run(argv=None, prog=None):
  """The tfcp-codec command."""
  from tfc_perception import cli  # pylint: disable=g-import-not-at-top
  cli.run_tool("codec", argv, prog)


if __name__ == "__main__":
  run()
