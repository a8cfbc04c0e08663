"""bin/download: fetch the pretrained models and datasets of the registry into
the verified cache (pretrained/registry.json, docs/pretrained.md).

  bin/download --list                      registry entries and cache status
  bin/download models NAME [NAME ...]      e.g. bmshj2018-factorized-mse-3
  bin/download models --all                all 16 bmshj2018-factorized models
  bin/download kodak                       the 24 Kodak images (sha256 pinned)
  bin/download tid2013                     says how to get TID2013 (manual)
  bin/download tensors MODEL               the graph's tensors, with the
                                           roles found and their candidates

Flags: --cache_dir (default $TFC_PERCEPTION_CACHE, else
~/.cache/tfc_perception), --url_prefix (mirror or local server replacing the
registry URL's directory), --offline (never connect; fail naming what is
missing). Any failure is one line `error: ...` and exit status 1.

`tensors MODEL` (a registry name or a .metagraph file) lists every tensor of
the graph like tfc's `tfci.py tensors`, with op type, dtype and static shape,
marking the tensors in use for each role (image, latent, latent_hat,
reconstruction) and the other candidates, and the first-load self-check;
`--tensors role=name,...` shows (and checks) your choice. docs/pretrained.md
has the three-step recovery when discovery fails.
"""

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

_USAGE = ("usage: download --list | models [--all | NAME ...] | kodak | "
          "tid2013 | tensors MODEL [--tensors role=name,...] [--cache_dir DIR] "
          "[--url_prefix URL] [--offline]")


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
      raise ValueError(f"give model names or --all (not both); {_USAGE}")
    paths = pretrained.download_models(None if FLAGS.all else args,
                                       FLAGS.cache_dir, FLAGS.url_prefix,
                                       FLAGS.offline, **opts)
    for p in paths:
      print(p)
  elif command == "tensors":
    if len(args) != 1:
      raise ValueError(f"tensors takes one model (a registry name or a "
                       f".metagraph file); {_USAGE}")
    listing = pretrained.list_tensors(args[0], FLAGS.cache_dir,
                                      FLAGS.url_prefix, FLAGS.offline,
                                      tensors=FLAGS.tensors, **opts)
    print("\n".join(tensors_lib.format_listing(listing,
                                               FLAGS.candidates_only)))
  elif command in ("kodak", "tid2013"):
    if args:
      raise ValueError(f"{command} takes no names; {_USAGE}")
    print(pretrained.download(command, FLAGS.cache_dir, FLAGS.url_prefix,
                              FLAGS.offline, **opts))
  else:
    raise ValueError(f"unknown subcommand {command!r}; {_USAGE}")
