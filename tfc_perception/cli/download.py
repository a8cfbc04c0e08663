"""bin/download (tfcp-download): fetch pretrained models and datasets.

The registry (pretrained/registry.json, docs/pretrained.md) lists the 16
bmshj2018-factorized models, the Kodak images and TID2013 (a manual
download). Files are verified (sha256) before they enter the cache; a
verified cache also works read-only. --cache_dir defaults to
$TFC_PERCEPTION_CACHE, else ~/.cache/tfc_perception; --url_prefix replaces
the registry URL's directory (a mirror or a local server); --offline never
connects and says what is missing.

`tensors MODEL` (a registry name or a .metagraph file) lists every tensor of
the graph like tfc's `tfci.py tensors`, with op type, dtype and static shape,
marking the tensors in use for each role (image, latent, latent_hat,
reconstruction) and the other candidates, and the first-load self-check;
`--tensors role=name,...` shows (and checks) your choice. docs/pretrained.md
has the three-step recovery when discovery fails.
"""

import textwrap

from absl import app
from absl import flags

from tfc_perception.pretrained import tensors as tensors_lib

FLAGS = flags.FLAGS

flags.DEFINE_bool("list", False, "List the registry and what is cached.")
flags.DEFINE_bool("all", False, "models: download every registry model.")
flags.DEFINE_string("cache_dir", None, "Cache directory (default "
                    "$TFC_PERCEPTION_CACHE, else ~/.cache/tfc_perception).")
flags.DEFINE_string("url_prefix", None, "Replaces the directory of the "
                    "registry URLs (a mirror, or a local http server).")
flags.DEFINE_bool("offline", False, "Never open a network connection: only "
                  "check the cache and say what is missing.")
flags.DEFINE_float("timeout", 60.0, "Seconds for connecting and each read.")
flags.DEFINE_integer("retries", 3, "Extra attempts after transient errors.")
flags.DEFINE_list("tensors", [], "tensors: " + tensors_lib.FLAG_HELP)
flags.DEFINE_bool("candidates_only", False, "tensors: list only the tensors "
                  "in use or candidates for a role.")



def main(argv):
  """Runs one download command: argv = ["download SUB", names...]."""
  from tfc_perception import pretrained  # pylint: disable=g-import-not-at-top
  command = argv[0].split()[-1] if argv else ""
  args = argv[1:]
  if FLAGS.list or command == "list":
    for row in pretrained.list_artifacts(FLAGS.cache_dir):
      print(f"{row['kind']:<8} {row['name']:<30} {row['detail']:<40} "
            f"{row['cached'] or '-'}")
    return
  opts = dict(timeout=FLAGS.timeout, retries=FLAGS.retries)
  if command == "models":
    if FLAGS.all == bool(args):
      raise app.UsageError("give model names or --all (not both)")
    paths = pretrained.download_models(None if FLAGS.all else args,
                                       FLAGS.cache_dir, FLAGS.url_prefix,
                                       FLAGS.offline, **opts)
    for p in paths:
      print(p)
  elif command == "tensors":
    if len(args) != 1:
      raise app.UsageError("tensors takes one MODEL (a registry name or a "
                           ".metagraph file)")
    listing = pretrained.list_tensors(args[0], FLAGS.cache_dir,
                                      FLAGS.url_prefix, FLAGS.offline,
                                      tensors=FLAGS.tensors, **opts)
    print("\n".join(tensors_lib.format_listing(listing,
                                               FLAGS.candidates_only)))
  elif command in ("kodak", "tid2013"):
    if args:
      raise app.UsageError(f"{command} takes no names")
    if command in pretrained.default_registry().manual:
      from tfc_perception.pretrained import registry  # pylint: disable=g-import-not-at-top
      print(textwrap.fill(registry.manual_instructions(
          command, pretrained.default_registry().manual[command]), 79))
      raise RuntimeError(f"{command} is a manual download: nothing was "
                         "downloaded (the instructions are above).")
    print(pretrained.download(command, FLAGS.cache_dir, FLAGS.url_prefix,
                              FLAGS.offline, **opts))
  else:
    raise app.UsageError(f"unknown subcommand {command!r}")


def run(argv=None, prog=None):
  """The tfcp-download command."""
  from tfc_perception import cli  # pylint: disable=g-import-not-at-top
  cli.run_tool("download", argv, prog)


if __name__ == "__main__":
  run()
