"""Golden files: committed models, the .tfci files they wrote and the images
those decode to (tests/data/golden, written once by make_golden.py there).

Today's code must decode the committed files to exactly the committed pixels
and encode the committed image to exactly the committed bytes, through the
library and through the SavedModel's own signatures. A change of the file
container, the saved range coding tables, the quantisation or the
transforms fails here, loudly, instead of making users' files undecodable.
Do not regenerate the files to make this test pass: see make_golden.py."""

import os
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from tfc_perception import codec
from tfc_perception import models

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                      "golden")
NAMES = ("factorized", "softquant")


def _png(name):
  return tf.io.decode_png(tf.io.read_file(os.path.join(GOLDEN, name)),
                          channels=3).numpy()


def _bytes(name):
  with open(os.path.join(GOLDEN, name), "rb") as f:
    return f.read()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  """{name: (SavedModel directory, models.load_model of it)}: the committed
  models, unpacked and loaded once."""
  root = tmp_path_factory.mktemp("golden")
  out = {}
  for name in NAMES:
    with tarfile.open(os.path.join(GOLDEN, name + ".tar.xz")) as tar:
      # The "data" filter (Python >= 3.11.4) refuses links and absolute
      # paths; the committed archives hold neither.
      kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
      tar.extractall(root, **kwargs)
    out[name] = root / name, models.load_model(root / name)
  return out


def test_the_golden_files_are_small():
  sizes = {f: os.path.getsize(os.path.join(GOLDEN, f))
           for f in os.listdir(GOLDEN)}
  assert sum(sizes.values()) < 200_000, sizes


@pytest.mark.parametrize("name", NAMES)
def test_committed_file_decodes_to_the_committed_pixels(saved, name,
                                                        tmp_path):
  _, model = saved[name]
  data = _bytes(name + ".tfci")
  expected = _png(name + ".decoded.png")
  assert expected.shape == (37, 45, 3) and len(np.unique(expected)) > 100
  np.testing.assert_array_equal(codec.decode(model, data), expected)
  # bin/codec decompress's library call: the PNG it writes holds them too.
  out = codec.decompress_file(model, os.path.join(GOLDEN, name + ".tfci"),
                              tmp_path / "out.png")
  np.testing.assert_array_equal(
      tf.io.decode_png(tf.io.read_file(out["path"])).numpy(), expected)


@pytest.mark.parametrize("name", NAMES)
def test_committed_image_encodes_to_the_committed_bytes(saved, name):
  _, model = saved[name]
  assert codec.encode(model, _png("image.png")) == _bytes(name + ".tfci")


@pytest.mark.parametrize("name", NAMES)
def test_the_savedmodel_signatures_decode_the_file(saved, name):
  # What TensorFlow Serving or a plain tf.saved_model.load user runs: the
  # saved graph with its saved tables, no tfc_perception code in the path.
  path, model = saved[name]
  graph = tf.saved_model.load(str(path))
  dtypes = model.compressed_dtypes()
  strings, x_shape, y_shape = [
      tf.cast(t, d) for t, d in zip(
          codec.unpack(_bytes(name + ".tfci"), dtypes).tensors, dtypes)]
  out = graph.signatures["decompress"](strings=strings, x_shape=x_shape,
                                       y_shape=y_shape)
  np.testing.assert_array_equal(out["output_0"].numpy()[0],
                                _png(name + ".decoded.png"))
