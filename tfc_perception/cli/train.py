"""bin/train (tfcp-train): train a compressive autoencoder with Eq. 3.

Every flag is a field of tfc_perception.train_spec.TrainSpec (its help text
is the field's). Reusing --train_dir resumes an interrupted run from its last
checkpoint (weights, optimizer state, data stream and training noise
continue where they stopped); Ctrl-C writes a checkpoint first. The final
model is exported with tfc_perception.models.save_model (ready for
bin/codec) and a run manifest JSON is written next to it
(<export>.manifest.json); train_dir/curves.png shows the training curves and
train_dir/logs holds TensorBoard logs. See docs/training.md.
"""

from absl import flags

from tfc_perception import train_spec

_DEFINE = {"string": flags.DEFINE_string, "integer": flags.DEFINE_integer,
           "float": flags.DEFINE_float, "bool": flags.DEFINE_bool}

for _f in train_spec.flag_specs():
  if _f["kind"] == "enum":
    flags.DEFINE_enum(_f["name"], _f["default"], _f["choices"], _f["help"])
  else:
    _DEFINE[_f["kind"]](_f["name"], _f["default"], _f["help"])

flags.mark_flags_as_required(["model", "data", "train_dir"])

FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    from absl import app  # pylint: disable=g-import-not-at-top
    raise app.UsageError(f"unexpected arguments {argv[1:]}; all inputs are "
                         "flags")
  import os  # pylint: disable=g-import-not-at-top
  try:
    spec = train_spec.TrainSpec(**{f["field"]: FLAGS[f["name"]].value
                                   for f in train_spec.flag_specs()})
    if spec.train_dir:
      logs = os.path.join(os.path.abspath(spec.train_dir), "logs")
      print(f"TensorBoard logs: {logs} (tensorboard --logdir {logs})",
            flush=True)
    # (TensorFlow's logging is set by tfc_perception.cli: quiet, or all of
    # it with --verbose.)
    from tfc_perception import training  # pylint: disable=g-import-not-at-top
    result = training.train(spec)
  except ValueError as e:
    raise ValueError(train_spec.field_to_flag(str(e))) from None
  if not result.writes_outputs:
    print(f"worker: trained {spec.model} to step {result.global_step}; the "
          "chief wrote the checkpoints, export and manifest")
    return
  metrics = ", ".join(f"{k}={v:.5g}" for k, v in result.final_metrics.items()
                      if k not in ("epoch", "step"))
  if result.resumed:
    print(f"resumed from step {result.initial_step} in {result.train_dir}")
  print(f"trained {spec.model} to step {result.global_step} ({metrics}); "
        f"model: {result.export}; manifest: {result.manifest}; curves: "
        f"{result.curves}")


def run(argv=None, prog=None):
  """The tfcp-train command."""
  from tfc_perception import cli  # pylint: disable=g-import-not-at-top
  cli.run_tool("train", argv, prog)


if __name__ == "__main__":
  run()
