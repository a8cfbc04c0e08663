"""bin/reproduce (tfcp-reproduce): run the paper's experiments.

EXPERIMENT is an experiment name or a group ("all" = the 2-D experiments
Figs. 2, 11, 12, 13, 4 left/14). --config is a preset (tiny, quick, paper) or
a JSON file (every field of the experiment's typed config). Ctrl-C while a
model trains saves a checkpoint; rerunning the command resumes it. Results
go to OUTPUT/<experiment>/ (CSV/JSON, PNG, report.md,
manifest.json); trained models are cached in OUTPUT/_cache/models by config
hash, so a re-run only trains what changed.
"""

import json
import sys

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "quick", "Preset (tiny, quick, paper) or a JSON "
                    "config file.")
flags.DEFINE_string("output", "results", "Results root directory.")
flags.DEFINE_string("cache_dir", None, "Model cache (default "
                    "OUTPUT/_cache/models).")
flags.DEFINE_multi_string("set", [], "Config override KEY=VALUE (dotted keys, "
                          "JSON values, checked against the experiment's "
                          "typed config), e.g. --set train.steps=500 or "
                          "--set lambdas=[1,2,4].")
flags.DEFINE_bool("force", False, "Retrain models even if cached.")
flags.DEFINE_bool("allow_substitute_data", False, "Let a config that expects "
                  "the paper's data (the paper presets of the image "
                  "experiments: OpenImages-like training images, CIFAR-10's "
                  "python batches) run on the named substitute (Kodak "
                  "kodim13-24, the JPEG CIFAR-10 test set) when that data is "
                  "not given with --set; without it they refuse. Results say "
                  "which data was used.")
flags.DEFINE_bool("quiet", False, "Print only the final summary.")


def _parse_overrides(items):
  out = {}
  for item in items:
    if "=" not in item:
      raise app.UsageError(f"--set expects KEY=VALUE, got {item!r}")
    key, value = item.split("=", 1)
    try:
      out[key.strip()] = json.loads(value)
    except json.JSONDecodeError:
      out[key.strip()] = value
  return out


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("give one EXPERIMENT, GROUP or list, got "
                         f"{len(argv) - 1} arguments")
  overrides = _parse_overrides(FLAGS.set)
  from tfc_perception.experiments import runner  # pylint: disable=g-import-not-at-top
  target = argv[1]
  if target == "list":
    for e in runner.list_experiments():
      print(f"{e.name:<8} {', '.join(e.paper_figures):<22} groups="
            f"{','.join(e.groups)}  presets={','.join(e.configs)}\n"
            f"         {e.description}")
    return 0
  out = runner.run_experiments(target, FLAGS.config, FLAGS.output,
                               overrides=overrides,
                               cache_dir=FLAGS.cache_dir, force=FLAGS.force,
                               verbose=not FLAGS.quiet,
                               allow_substitute_data=(
                                   FLAGS.allow_substitute_data))
  for r in out["experiments"]:
    t = r["timing"]
    print(f"{r['name']}: {r['wall_time_s']:.1f} s, {t['models_trained']} "
          f"model(s) trained ({t['train_time_total_s']:.1f} s), report "
          f"{r['out_dir']}/report.md")
  print(f"total wall time {out['wall_time_s']:.1f} s")
  sys.stdout.flush()
  return 0


def run(argv=None, prog=None):
  """The tfcp-reproduce command."""
  from tfc_perception import cli  # pylint: disable=g-import-not-at-top
  cli.run_tool("reproduce", argv, prog)


if __name__ == "__main__":
  run()
