"""Writes the golden codec files of tests/codec_golden_test.py.

    PYTHONPATH=. python tests/data/golden/make_golden.py tests/data/golden --force

NOT run by the test suite, and not to be run casually: the committed files
pin the model format (SavedModel + model.json, with the saved range coding
tables) and the .tfci file format. codec_golden_test.py asserts that today's
code decodes the committed files to exactly the committed pixels and encodes
the committed image to exactly the committed bytes, so that a change of the
container, the coding tables, the quantisation or the transforms fails
loudly instead of silently making old files undecodable. Regenerate only
for a deliberate, documented format change (bump the format version, say
why in the commit message, and keep the old files as a legacy fixture that
must still decode, as tests/data/release1 does for release 1); never to make
a failing golden test pass.

Writes, for NAME in (factorized, softquant):
  NAME.tar.xz       the SavedModel directory written by models.save_model
                    (N = M = 4, trained 400 steps on crops of image.png)
                    (xz: saved_model.pb is ~600 kB raw)
  NAME.tfci         codec.encode(model, image.png)
  NAME.decoded.png  codec.decode(model, NAME.tfci), lossless PNG
and image.png, the 37x45 source image (synthetic: no ../shared needed).
"""

import argparse
import os
import tarfile
import tempfile

import numpy as np
import tensorflow as tf

from tfc_perception import codec
from tfc_perception import models
from tfc_perception import training
from tfc_perception.train_spec import TrainSpec

NAMES = ("factorized", "softquant")


def source_image() -> np.ndarray:
  """37x45 RGB: smooth patterns, an edge and noise (odd size: padding and
  cropping are part of what is pinned)."""
  rng = np.random.default_rng(2022)
  yy, xx = np.mgrid[0:37, 0:45]
  img = np.stack([128 + 90 * np.sin(xx / 4.0), 128 + 90 * np.cos(yy / 6.0),
                  np.where(xx > 22, 200.0, 40.0)], -1)
  return np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)


def build(name, train_dir):
  """Tiny models (N = M = 4) trained briefly (400 steps of 32x32 crops of
  the source image), so that the decoded image looks like the input."""
  if name == "factorized":
    model = models.build_model("factorized", num_filters=4, lmbda=0.05,
                               latent_channels=4, seed=7)
  else:
    model = models.build_model("softquant", num_filters=4, latent_channels=4,
                               num_centers=3, seed=8)
  image = source_image()
  rng = np.random.default_rng(0)
  crops = np.stack([image[i:i + 32, j:j + 32] for i, j in zip(
      rng.integers(0, 6, 64), rng.integers(0, 14, 64))])
  data = tf.data.Dataset.from_tensor_slices(crops).repeat().batch(8)
  spec = TrainSpec(batchsize=8, epochs=1, steps_per_epoch=400,
                   learning_rate=1e-2, seed=0, train_dir=train_dir,
                   progress=False)
  training.fit(model, data, spec)
  return model


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("output", help="folder (tests/data/golden)")
  parser.add_argument("--force", action="store_true",
                      help="replace existing golden files")
  args = parser.parse_args()
  os.makedirs(args.output, exist_ok=True)
  targets = ["image.png"] + [f"{n}{ext}" for n in NAMES
                             for ext in (".tar.xz", ".tfci", ".decoded.png")]
  existing = [t for t in targets if os.path.exists(os.path.join(args.output,
                                                                t))]
  if existing and not args.force:
    parser.error(f"{', '.join(existing)} exist in {args.output}; read this "
                 "script's docstring, then pass --force for a deliberate "
                 "format change.")
  image = source_image()
  with open(os.path.join(args.output, "image.png"), "wb") as f:
    f.write(tf.io.encode_png(image).numpy())
  for name in NAMES:
    with tempfile.TemporaryDirectory() as tmp:
      model = build(name, os.path.join(tmp, "train"))
      models.save_model(model, os.path.join(tmp, name))
      loaded = models.load_model(os.path.join(tmp, name))
      with tarfile.open(os.path.join(args.output, name + ".tar.xz"),
                        "w:xz") as tar:
        tar.add(os.path.join(tmp, name), arcname=name)
    data = codec.encode(loaded, image)
    decoded = codec.decode(loaded, data)
    assert (decoded == loaded.reconstruct(image[None])[0].numpy()).all()
    with open(os.path.join(args.output, name + ".tfci"), "wb") as f:
      f.write(data)
    with open(os.path.join(args.output, name + ".decoded.png"), "wb") as f:
      f.write(tf.io.encode_png(decoded).numpy())
    print(name, len(data), "bytes,", len(np.unique(decoded)), "grey levels")


if __name__ == "__main__":
  main()
