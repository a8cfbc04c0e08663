"""Tests of the compressed file format and bin/codec."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO_ROOT
from tfc_perception import codec
from tfc_perception import models


def _image(h=37, w=29, seed=0):
  # A smooth image with some texture (not pure noise).
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  base = np.stack([128 + 80 * np.sin(xx / 5.0), 128 + 80 * np.cos(yy / 7.0),
                   (xx + yy) * 2.0 % 256], -1)
  return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  root = tmp_path_factory.mktemp("codec")
  a = models.build_model("factorized", num_filters=8, latent_channels=8,
                         seed=1)
  b = models.build_model("softquant", num_filters=8, latent_channels=8,
                         num_centers=3, seed=2)
  models.save_model(a, root / "a")
  models.save_model(b, root / "b")
  return root, a, b


@pytest.mark.parametrize("which", [1, 2])
def test_encode_decode_round_trip(saved, which):
  model = saved[which]
  image = _image()
  data = codec.encode(model, image)
  assert data[:4] == b"TFCP"
  info = codec.read_header(data)
  assert info["model"] == model.registry_name
  assert info["fingerprint"] == model.fingerprint()[:32]
  decoded = codec.decode(model, data)
  assert decoded.dtype == np.uint8 and decoded.shape == image.shape
  np.testing.assert_array_equal(decoded, model.reconstruct(image[None])[0])


def test_wrong_model_is_a_clear_error(saved):
  _, a, b = saved
  data = codec.encode(a, _image())
  with pytest.raises(ValueError, match="wrong model: .*factorized.*softquant"):
    codec.decode(b, data)
  # Same architecture, different weights: also rejected.
  other = models.build_model("factorized", num_filters=8, latent_channels=8,
                             seed=5)
  with pytest.raises(ValueError, match="wrong model"):
    codec.decode(other, data)


def test_truncated_or_corrupted_files_are_clear_errors(saved):
  _, a, _ = saved
  data = codec.encode(a, _image())
  with pytest.raises(ValueError, match="truncated"):
    codec.decode(a, data[:-1])
  for cut in (3, 12, 25, 40):
    with pytest.raises(ValueError, match="truncated|bad magic"):
      codec.decode(a, data[:cut])
  with pytest.raises(ValueError, match="bad magic"):
    codec.decode(a, b"PNG" + data[3:])
  with pytest.raises(ValueError, match="unexpected bytes"):
    codec.decode(a, data + b"\x00")
  with pytest.raises(ValueError, match="version"):
    codec.decode(a, data[:4] + b"\x09" + data[5:])
  # Every single-byte flip after the magic/version is detected.
  rng = np.random.default_rng(0)
  for pos in sorted(set(rng.integers(5, len(data), 25).tolist())):
    bad = bytearray(data)
    bad[pos] ^= 0x5A
    with pytest.raises(ValueError, match="corrupted|truncated|wrong model"):
      codec.decode(a, bytes(bad))


def test_files_are_written_atomically_and_read_back(saved, tmp_path):
  root, a, _ = saved
  png = tmp_path / "in.png"
  png.write_bytes(tf.io.encode_png(_image(40, 50)).numpy())
  stats = codec.compress_file(root / "a", png, tmp_path / "out.tfcp")
  assert stats["bytes"] == os.path.getsize(tmp_path / "out.tfcp")
  assert stats["bits_per_pixel"] == pytest.approx(8 * stats["bytes"] / 2000)
  codec.decompress_file(a, tmp_path / "out.tfcp", tmp_path / "out.png")
  decoded = tf.io.decode_png(tf.io.read_file(str(tmp_path / "out.png")))
  np.testing.assert_array_equal(decoded.numpy(),
                                a.reconstruct(_image(40, 50)[None])[0])
  assert sorted(os.listdir(tmp_path)) == ["in.png", "out.png", "out.tfcp"]
  gray = tmp_path / "gray.png"
  gray.write_bytes(tf.io.encode_png(_image()[..., :1]).numpy())
  with pytest.raises(ValueError, match="1 channel"):
    codec.compress_file(a, gray, tmp_path / "x.tfcp")
  with pytest.raises(FileNotFoundError, match="no model"):
    codec.compress_file(tmp_path / "missing", png, tmp_path / "x.tfcp")
  with pytest.raises(FileNotFoundError):
    codec.compress_file(a, tmp_path / "missing.png", tmp_path / "x.tfcp")
  assert not os.path.exists(tmp_path / "x.tfcp")


def _codec(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, os.path.join(REPO_ROOT, "bin",
                                                      "codec"), *map(str,
                                                                     args)],
                        capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_cli_round_trip_and_errors(saved, tmp_path):
  root, a, _ = saved
  png = tmp_path / "in.png"
  png.write_bytes(tf.io.encode_png(_image(23, 31)).numpy())
  out = _codec("compress", root / "a", png, tmp_path / "c.tfcp")
  assert out.returncode == 0, out.stderr
  assert "bpp" in out.stdout
  out = _codec("decompress", root / "a", tmp_path / "c.tfcp",
               tmp_path / "d.png")
  assert out.returncode == 0, out.stderr
  decoded = tf.io.decode_png(tf.io.read_file(str(tmp_path / "d.png")))
  np.testing.assert_array_equal(decoded.numpy(),
                                a.reconstruct(_image(23, 31)[None])[0])
  # Wrong model: one line, exit status 1, no output file.
  out = _codec("decompress", root / "b", tmp_path / "c.tfcp",
               tmp_path / "e.png")
  assert out.returncode == 1
  lines = out.stderr.strip().splitlines()
  assert lines[-1].startswith("error: wrong model"), out.stderr
  assert not os.path.exists(tmp_path / "e.png")
  # (Truncated/corrupted files: see the library tests above, same code path.)


@pytest.mark.slow
def test_pretrained_tfci_models_write_tfci_files(saved, tmp_path):
  """A .metagraph (pretrained tfci format) as MODEL: the codec delegates to
  tfc_perception.pretrained and writes tfc's .tfci container."""
  from tfc_perception.pretrained import export  # pylint: disable=g-import-not-at-top
  _, a, _ = saved
  graph = export.export_metagraph(
      a, str(tmp_path / "mine.metagraph"),
      entropy_model=a._coding_entropy_model())  # pylint: disable=protected-access
  png = tmp_path / "in.png"
  png.write_bytes(tf.io.encode_png(_image(32, 48)).numpy())
  stats = codec.compress_file(graph, png, tmp_path / "x.tfci")
  assert stats["bytes"] == os.path.getsize(tmp_path / "x.tfci")
  codec.decompress_file(graph, tmp_path / "x.tfci", tmp_path / "x.png")
  decoded = tf.io.decode_png(tf.io.read_file(str(tmp_path / "x.png")))
  np.testing.assert_array_equal(decoded.numpy(),
                                a.reconstruct(_image(32, 48)[None])[0])
  with pytest.raises(FileNotFoundError, match="pretrained model name"):
    codec.resolve_model(str(tmp_path / "nothing-here"))


def test_outputs_never_replace_the_input_or_unasked_files(saved, tmp_path):
  """Issue 12: `codec compress IMG IMG` overwrote the source image."""
  root, a, _ = saved
  png = tmp_path / "in.png"
  png.write_bytes(tf.io.encode_png(_image(40, 50)).numpy())
  original = png.read_bytes()
  os.link(png, tmp_path / "hardlink.png")
  for out in (png, tmp_path / "hardlink.png", root / "a" / "x.tfcp"):
    with pytest.raises(ValueError, match="input|inside the input"):
      codec.compress_file(root / "a", png, out, overwrite=True)
  codec.compress_file(a, png, tmp_path / "c.tfcp")
  with pytest.raises(ValueError, match="is the input"):
    codec.decompress_file(a, tmp_path / "c.tfcp", tmp_path / "c.tfcp",
                          overwrite=True)
  # A decoded image written over the original would replace it with a lossy
  # copy: an existing output needs overwrite=True.
  with pytest.raises(ValueError, match="exists .*overwrite"):
    codec.decompress_file(a, tmp_path / "c.tfcp", tmp_path / "hardlink.png")
  with pytest.raises(ValueError, match="exists .*overwrite"):
    codec.compress_file(a, png, tmp_path / "c.tfcp")
  assert png.read_bytes() == original
  codec.decompress_file(a, tmp_path / "c.tfcp", tmp_path / "d.png")
  codec.decompress_file(a, tmp_path / "c.tfcp", tmp_path / "d.png",
                        overwrite=True)
  out = _codec("compress", root / "a", png, png)
  assert out.returncode == 1
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and "is the input INPUT" in last, last
  assert "Traceback" not in out.stderr
  assert png.read_bytes() == original
