"""bin/evaluate distances: distances between image pairs.

Folders are paired by file name without extension. Prints a table; --output
writes it as CSV (atomically). See docs/distances.md for the definitions.
"""

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("reference", None, "Reference image file or folder.")
flags.DEFINE_string("distorted", None, "Distorted image file or folder.")
flags.DEFINE_list("distances", ["psnr", "msssim", "nlpd"],
                  "Metrics of the one table (see --list): psnr (dB), mse "
                  "(image units), msssim (tf.image.ssim_multiscale), nlpd, "
                  "nlpd_rgb, nlpd2017, euclidean, ...")
flags.DEFINE_bool("list", False, "List every metric (name, aliases, "
                  "orientation, what it applies to, minimum image size) and "
                  "exit.")
flags.DEFINE_enum("nlpd_variant", "laparra2016", ["laparra2016", "laparra2017"],
                  "NLPD definition (docs/distances.md).")
flags.DEFINE_integer("nlpd_levels", 6, "NLPD pyramid levels (6 needs >= 65 "
                     "px per side).")
flags.DEFINE_integer("msssim_scales", None, "MS-SSIM scales (default 5, which "
                     "needs >= 161 px per side).")
flags.DEFINE_float("max_val", None, "Peak value of float .npy images "
                   "(unused when both images are 8-bit; an 8-bit image "
                   "paired with a float one is scaled to [0, max_val]).")
flags.DEFINE_string("output", None, "CSV file to write (optional; never an "
                    "input image).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output file.")


def main(argv):
  from absl import app  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  import pandas as pd  # pylint: disable=g-import-not-at-top
  if FLAGS.list:
    from tfc_perception.distances import registry  # pylint: disable=g-import-not-at-top
    table = pd.DataFrame(registry.table())
    with pd.option_context("display.width", 250, "display.max_colwidth", 90):
      print(table.to_string(index=False))
    return
  for flag in ("reference", "distorted"):
    if not FLAGS[flag].value:
      raise app.UsageError(f"--{flag} is required (or give --list)")
  from tfc_perception.distances import pairs  # pylint: disable=g-import-not-at-top
  df = pairs.evaluate_pairs(
      FLAGS.reference, FLAGS.distorted, FLAGS.distances,
      max_val=FLAGS.max_val, nlpd_variant=FLAGS.nlpd_variant,
      nlpd_levels=FLAGS.nlpd_levels, msssim_scales=FLAGS.msssim_scales,
      output=FLAGS.output, overwrite=FLAGS.overwrite)
  with pd.option_context("display.float_format", "{:.6g}".format,
                         "display.width", 200):
    print(df.drop(columns=["reference", "distorted"]).to_string(index=False))
  if df.attrs.get("unmatched"):
    print(f"{len(df.attrs['unmatched'])} distorted image(s) without a "
          f"reference, skipped: {', '.join(df.attrs['unmatched'])}")
  if FLAGS.output:
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
  import sys  # pylint: disable=g-import-not-at-top
  from tfc_perception import cli  # pylint: disable=g-import-not-at-top
  cli.run_tool("evaluate", [sys.argv[0], "distances"] + sys.argv[1:],
               "python -m tfc_perception.cli.evaluate")
