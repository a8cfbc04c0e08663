"""bin/evaluate rd: rate-distortion of compression models on an image folder.

Per image and mean: actual bit-stream bpp, PSNR, MS-SSIM (and dB), NLPD,
encode/decode times; CompressAI-shaped JSON per model family; rd.png with the
published bmshj2018-factorized Kodak curve (see docs/evaluate.md).
"""

from absl import flags

from tfc_perception.pretrained import tensors as tensors_lib

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "Image folder (e.g. Kodak), glob or file.",
                    required=True)
flags.DEFINE_list("models", None, "Model names, ranges (name-1..8) or paths "
                  "(saved project models, .metagraph files).", required=True)
flags.DEFINE_string("output", None, "Output folder.", required=True)
flags.DEFINE_integer("limit", None, "Only the first N images.")
flags.DEFINE_bool("warmup", True, "Run each model once before timing.")
flags.DEFINE_bool("reference", True, "Include the published "
                  "bmshj2018-factorized Kodak curve.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")
flags.DEFINE_list("tensors", [], tensors_lib.FLAG_HELP)


def main(argv):
  del argv
  from tfc_perception.evaluation import rd  # pylint: disable=g-import-not-at-top
  config = {f.name: f.value for f in FLAGS.get_key_flags_for_module(__name__)}
  result = rd.evaluate_rd(FLAGS.data, FLAGS.output, models=FLAGS.models,
                          limit=FLAGS.limit, warmup=FLAGS.warmup,
                          progress=FLAGS.progress, reference=FLAGS.reference,
                          config=config, tensors=FLAGS.tensors)
  for s in result["summary"]:
    extra = f"  NLPD {s['nlpd']:.4f}" if "nlpd" in s else ""
    print(f"{s['model']:<36} {s['bpp']:.4f} bpp  PSNR {s['psnr']:.2f} dB  "
          f"MS-SSIM {s['msssim']:.4f} ({s['msssim_db']:.2f} dB){extra}  "
          f"enc {s['encode_s']:.3f} s  dec {s['decode_s']:.3f} s")
  print(f"wrote {', '.join(sorted(result['files'].values()))}")


if __name__ == "__main__":
  import sys  # pylint: disable=g-import-not-at-top
  from tfc_perception import cli  # pylint: disable=g-import-not-at-top
  cli.run_tool("evaluate", [sys.argv[0], "rd"] + sys.argv[1:],
               "python -m tfc_perception.cli.evaluate")
