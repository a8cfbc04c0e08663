"""bin/train: train a compressive autoencoder with Eq. 3, L = R + lambda * D.

  bin/train --model toy2d --data student_t --lambda 10 --train_dir runs/t
  bin/train --model factorized --quality 3 --data 'images/*.png' \
      --patchsize 256 --batchsize 8 --train_dir runs/fp3 --export models/fp3

Reusing --train_dir resumes an interrupted run (weights, optimizer state,
data stream and training noise continue where they stopped). The final model
is exported with tfc_perception.models.save_model (ready for bin/codec) and a
run manifest JSON is written next to it (<export>.manifest.json). See
docs/training.md.
"""

import logging

from absl import flags
import tensorflow as tf

from tfc_perception import training

_M = "toy2d (2-D, Fig. 10) | factorized (Fig. 15) | softquant (Fig. 17)"

flags.DEFINE_string("model", None, f"Model to train: {_M}.")
flags.DEFINE_string(
    "distortion", "mse",
    "D in Eq. 3: mse | msssim | nlpd | nlpd_rgb | nlpd2017 (images; nlpd "
    "is laparra2016 on grey levels, nlpd_rgb the same per RGB channel, "
    "nlpd2017 laparra2017 per channel) | density_mse | "
    "inverse_density_mse (2-D sources only: P(x)*||x - x_hat||^2 and "
    "||x - x_hat||^2 / P(x)).")
flags.DEFINE_float(
    "lambda", None,
    "lambda of Eq. 3 (> 0), the weight of D. Default: the model's default "
    "(or the one of --quality). Exclusive with --quality.")
flags.DEFINE_integer(
    "quality", None,
    "factorized only: quality 1-8, setting N, M (128/192 for 1-5, 192/320 for "
    "6-8) and lambda from the tfci tables for --distortion mse or msssim.")
flags.DEFINE_string(
    "data", None,
    "Training data: student_t | uniform2d (2-D sources, toy2d) | a .npy file "
    "of [N, 2] points (toy2d) | uniform_noise (uniform 8-bit noise images) | "
    "a folder (searched recursively) or glob of .png/.jpg/.bmp images "
    "(random --patchsize crops).")
flags.DEFINE_string(
    "validation_data", None,
    "Validation data, evaluated after every epoch (same choices as --data; "
    "image folders give one central crop per image). Default: none.")
flags.DEFINE_integer(
    "validation_steps", 8,
    "Validation batches drawn from endless sources (2-D sources, "
    "uniform_noise).")
flags.DEFINE_integer("patchsize", 256,
                     "Side in pixels of the square training crops (images).")
flags.DEFINE_integer(
    "batchsize", 8,
    "Global batch size (split over the replicas of --strategy mirrored).")
flags.DEFINE_integer("epochs", 10,
                     "Total number of epochs (a resumed run continues to it).")
flags.DEFINE_integer(
    "steps_per_epoch", 1000,
    "Optimizer steps per epoch; a checkpoint is written after every epoch.")
flags.DEFINE_float("learning_rate", 1e-4, "Adam learning rate.")
flags.DEFINE_integer("num_filters", None,
                     "N, filters of the hidden layers (image models). "
                     "Default: the model's (or --quality's).")
flags.DEFINE_integer("latent_channels", None,
                     "M, channels of the latent y (image models). Default: "
                     "the model's (or --quality's).")
flags.DEFINE_integer("num_centers", None,
                     "L, quantisation centres of softquant (max rate "
                     "M*log2(L)/256 bpp).")
flags.DEFINE_integer(
    "seed", 0,
    "Seed of the initial weights, the data streams (file order, crops, "
    "samples) and the training noise.")
flags.DEFINE_string(
    "train_dir", None,
    "Directory for checkpoints (with optimizer state), TensorBoard logs "
    "(logs/), history.json and config.json. Reusing it resumes the run.")
flags.DEFINE_string(
    "export", None,
    "Directory for the final model (tfc_perception.models.save_model), with "
    "the run manifest at <export>.manifest.json. Default: <train_dir>/export. "
    "Must be new, empty or a saved model; never the train_dir, a folder "
    "containing it or another folder inside it.")
flags.DEFINE_bool(
    "overwrite", False,
    "Replace a model that another run saved at --export (a resumed run "
    "replaces its own export without it).")
flags.DEFINE_enum(
    "strategy", "default", list(training.STRATEGIES),
    "tf.distribute strategy: default (one device) | mirrored (synchronous "
    "data parallelism over all GPUs, or all logical CPUs without GPUs).")
flags.DEFINE_enum(
    "precision_policy", "float32", list(training.PRECISION_POLICIES),
    "Keras mixed precision policy for the layers (entropy models stay "
    "float32).")
flags.DEFINE_string(
    "weight_density", None,
    "With --distortion density_mse/inverse_density_mse: the 2-D source whose "
    "density P(x) weights D (student_t | uniform2d; default: --data). Fig. 13 "
    "trains on --data uniform2d with --weight_density student_t.")
flags.DEFINE_integer(
    "logical_cpus", 0,
    "If > 0, split the CPU into this many logical devices before TensorFlow "
    "starts (to run --strategy mirrored without GPUs, e.g. in tests).")
flags.DEFINE_bool("progress", True, "Show a progress bar.")

FLAGS = flags.FLAGS

_KEYS = ("model", "distortion", "quality", "data", "validation_data",
         "validation_steps", "patchsize", "batchsize", "epochs",
         "steps_per_epoch", "learning_rate", "num_filters", "latent_channels",
         "num_centers", "seed", "train_dir", "export", "overwrite", "strategy",
         "precision_policy", "weight_density", "logical_cpus", "progress")


def main(argv):
  if len(argv) > 1:
    raise ValueError(f"unexpected arguments {argv[1:]}; all inputs are flags "
                     "(see --helpfull).")
  # tf.distribute logs every all-reduce at INFO; keep the console readable.
  tf.get_logger().setLevel(logging.WARNING)
  config = {k: FLAGS[k].value for k in _KEYS}
  config["lmbda"] = FLAGS["lambda"].value
  result = training.train(config)
  metrics = ", ".join(f"{k}={v:.5g}" for k, v in result.final_metrics.items()
                      if k != "epoch")
  if result.initial_epoch:
    print(f"resumed from epoch {result.initial_epoch} (step "
          f"{result.initial_epoch * config['steps_per_epoch']}) in "
          f"{config['train_dir']}")
  print(f"trained {config['model']} to epoch {len(result.history)} "
        f"({metrics}); model: {result.export}; manifest: {result.manifest}")
