"""Tests of the compressed file format (.tfci with fingerprint and checksum),
its interop with tfc's tfci.py, release-1 TFCP files, and bin/codec."""

import os
import struct
import subprocess
import sys
import time
import zlib

from absl import flags
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_compression as tfc

import tfci_tool
import tool_in_process
from conftest import REPO_ROOT
from tfc_perception import codec
from tfc_perception import models
from tfc_perception.pretrained import export

RELEASE1 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                        "release1")


def _image(h=37, w=29, seed=0):
  # A smooth image with some texture (not pure noise).
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  base = np.stack([128 + 80 * np.sin(xx / 5.0), 128 + 80 * np.cos(yy / 7.0),
                   (xx + yy) * 2.0 % 256], -1)
  return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def _png(path, image):
  path.write_bytes(tf.io.encode_png(image).numpy())
  return path


def _read_png(path):
  return tf.io.decode_png(tf.io.read_file(str(path))).numpy()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  """(root, factorized model, softquant model), saved as root/a, root/b."""
  root = tmp_path_factory.mktemp("codec")
  a = models.build_model("factorized", num_filters=8, latent_channels=8,
                         seed=1)
  for v in a.analysis_transform.trainable_variables:
    if "layer_3" in v.name and "kernel" in v.name:
      v.assign(v * 6.0)  # Latents spanning several quantisation bins.
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
  # A tfc PackedTensors container: the model name and the compress tensors.
  packed = tfc.PackedTensors(data)
  assert packed.model == codec.tfci_name(model) == (
      f"{model.registry_name}-{model.fingerprint()[:8]}")
  strings, x_shape, y_shape = packed.unpack([tf.string, tf.int32, tf.int32])
  assert x_shape.numpy().tolist() == [37, 29]
  assert y_shape.numpy().tolist() == [3, 2]
  assert strings.numpy()[0] == model.compress(image[None])[0].numpy()[0]
  info = codec.unpack(data, model.compressed_dtypes())
  assert info.fingerprint == model.fingerprint()[:32] and info.checksum
  decoded = codec.decode(model, data)
  assert decoded.dtype == np.uint8 and decoded.shape == image.shape
  np.testing.assert_array_equal(decoded, model.reconstruct(image[None])[0])


@pytest.mark.parametrize("height, width", [(1, 1), (27, 19), (33, 64)])
def test_odd_sizes(saved, height, width):
  _, a, _ = saved
  image = _image(height, width, seed=height)
  np.testing.assert_array_equal(codec.decode(a, codec.encode(a, image)),
                                a.reconstruct(image[None])[0])


def test_wrong_model_is_a_clear_error(saved):
  _, a, b = saved
  data = codec.encode(a, _image())
  with pytest.raises(ValueError, match="wrong model: .*factorized.*softquant"):
    codec.decode(b, data)
  # Same architecture, different weights: also rejected.
  other = models.build_model("factorized", num_filters=8, latent_channels=8,
                             seed=5).finalize()
  with pytest.raises(ValueError, match="wrong model"):
    codec.decode(other, data)


def test_every_truncation_and_byte_flip_is_detected(saved):
  """The checksum covers every byte of the file, container included: no
  truncation and no single-byte change decodes."""
  _, a, _ = saved
  data = codec.encode(a, _image())
  for cut in range(len(data)):
    with pytest.raises(ValueError, match="truncated|corrupted|not a .tfci"):
      codec.decode(a, data[:cut])
  with pytest.raises(ValueError, match="corrupted|not a .tfci"):
    codec.decode(a, data + b"\x00")
  for pos in range(len(data)):
    for flip in (0x01, 0x5A, 0xFF):
      bad = bytearray(data)
      bad[pos] ^= flip
      with pytest.raises(ValueError,
                         match="corrupted|truncated|not a .tfci|wrong model"):
        codec.decode(a, bytes(bad))


def _tfci_file(name, strings, x_shape, y_shape, fingerprint=None,
               checksum=False):
  """A .tfci file as tfci.py writes it (PackedTensors, no extra features),
  optionally with a fingerprint and checksum as bin/codec adds them."""
  packed = tfc.PackedTensors()
  packed.model = name
  packed.pack([tf.constant(strings, tf.string), tf.constant(x_shape, tf.int32),
               tf.constant(y_shape, tf.int32)])
  if not checksum:
    return packed.string
  return codec.pack(name, packed.unpack([tf.string, tf.int32, tf.int32]),
                    fingerprint)


def test_a_file_claiming_a_huge_image_fails_fast(saved, tmp_path):
  """200000 x 200000 pixels is refused before anything is allocated, for
  tfci.py-style files, bin/codec's own files and release-1 TFCP files."""
  _, a, _ = saved
  name = codec.tfci_name(a)
  fp = bytes.fromhex(a.fingerprint())[:16]
  shapes = ([200000, 200000], [12500, 12500])
  crafted = {
      "tfci.py": _tfci_file(name, [b"\x00" * 4], *shapes),
      "bin/codec": _tfci_file(name, [b"\x00" * 4], *shapes, fingerprint=fp,
                              checksum=True),
  }
  payload = bytes([1, 4]) + b"\x00" * 4 + bytes([2]) + _zigzag(200000) * 2 + (
      bytes([2]) + _zigzag(12500) * 2)
  head = b"TFCP\x01" + fp + bytes([10]) + b"factorized" + struct.pack(
      ">I", len(payload))
  crafted["release 1"] = head + struct.pack(
      ">I", zlib.crc32(head + payload)) + payload
  assert len(crafted["tfci.py"]) <= 80  # 19 of them the model name.
  for kind, data in crafted.items():
    start = time.perf_counter()
    with pytest.raises(ValueError, match="200000x200000 image.*max_pixels"):
      codec.decode(a, data)
    assert time.perf_counter() - start < 1.0, kind
  # The limit is an argument (and a bin/codec flag).
  image = _image()
  data = codec.encode(a, image)
  with pytest.raises(ValueError, match="max_pixels=1000"):
    codec.decode(a, data, max_pixels=1000)
  assert codec.decode(a, data, max_pixels=37 * 29).shape == image.shape
  with pytest.raises(ValueError, match="max_pixels must be an int"):
    codec.decode(a, data, max_pixels=0)


def _zigzag(v):
  v = (v << 1) ^ (v >> 63)
  out = bytearray()
  while True:
    if v > 0x7F:
      out.append((v & 0x7F) | 0x80)
      v >>= 7
    else:
      out.append(v)
      return bytes(out)


def test_garbage_payloads(saved):
  """bin/codec's files: a payload that is not the one written fails the
  checksum. tfci.py's files have no checksum: their payload is decoded
  best-effort, so garbage gives an image of the claimed size, unless tfc's
  range decoder notices (here: bytes left over) - then a ValueError."""
  _, a, _ = saved
  image = _image()
  good = a.compress(image[None])[0].numpy()[0]
  data = codec.encode(a, image)
  garbage = np.random.default_rng(0).integers(0, 256, len(good),
                                              dtype=np.uint8).tobytes()
  with pytest.raises(ValueError, match="checksum"):
    codec.decode(a, data.replace(good, garbage))
  name = codec.tfci_name(a)
  for payload in (garbage, bytes(len(good)), good[:-1]):
    decoded = codec.decode(a, _tfci_file(name, [payload], [37, 29], [3, 2]))
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
  with pytest.raises(ValueError, match="corrupted bit-string.*Sanity check"):
    codec.decode(a, _tfci_file(name, [good + b"\x00\x01"], [37, 29], [3, 2]))
  # Shapes that contradict each other, or a second image, are refused.
  with pytest.raises(ValueError, match="inconsistent shapes"):
    codec.decode(a, _tfci_file(name, [good], [37, 29], [3, 3]))
  with pytest.raises(ValueError, match="one image"):
    codec.decode(a, _tfci_file(name, [good, good], [37, 29], [3, 2]))
  with pytest.raises(ValueError, match="wrong model: .*'other-name'"):
    codec.decode(a, _tfci_file("other-name", [good], [37, 29], [3, 2]))


def test_release1_files_still_decode():
  """Models and TFCP files written by release 1 (tests/data/release1, made by
  make_release1_fixture.py with that release): load_model reads the npz
  models, and their files decode to release 1's output (an eager decoder
  then; bit-identical here)."""
  for name in ("factorized", "softquant3", "softquant2"):
    model = models.load_model(os.path.join(RELEASE1, name))
    assert model.is_finalized()
    with open(os.path.join(RELEASE1, name + ".tfcp"), "rb") as f:
      data = f.read()
    expected = _read_png(os.path.join(RELEASE1, name + ".decoded.png"))
    decoded = codec.decode(model, data)
    np.testing.assert_array_equal(decoded, expected)
    image = _read_png(os.path.join(RELEASE1, "image.png"))
    np.testing.assert_array_equal(decoded, model.reconstruct(image[None])[0])
    with pytest.raises(ValueError, match="truncated"):
      codec.decode(model, data[:-1])
    with pytest.raises(ValueError, match="corrupted"):
      codec.decode(model, data[:30] + bytes([data[30] ^ 1]) + data[31:])
  with pytest.raises(ValueError, match="wrong model"):
    codec.decode(models.load_model(os.path.join(RELEASE1, "softquant2")),
                 open(os.path.join(RELEASE1, "factorized.tfcp"), "rb").read())


def test_files_default_paths_atomic_writes_and_refusals(saved, tmp_path):
  root, a, _ = saved
  png = _png(tmp_path / "in.png", _image(40, 50))
  stats = codec.compress_file(root / "a", png)  # Default: INPUT.tfci.
  assert stats["path"] == str(png) + ".tfci"
  assert stats["bytes"] == os.path.getsize(stats["path"])
  assert stats["bits_per_pixel"] == pytest.approx(8 * stats["bytes"] / 2000)
  out = codec.decompress_file(a, stats["path"])  # Default: INPUT.png.
  assert out["path"] == str(png) + ".tfci.png"
  np.testing.assert_array_equal(_read_png(out["path"]),
                                a.reconstruct(_image(40, 50)[None])[0])
  assert sorted(os.listdir(tmp_path)) == ["in.png", "in.png.tfci",
                                          "in.png.tfci.png"]
  before = png.read_bytes()
  with pytest.raises(ValueError, match="is the input"):
    codec.compress_file(a, png, png)
  with pytest.raises(ValueError, match="is the input"):
    codec.decompress_file(a, stats["path"], stats["path"])
  assert png.read_bytes() == before
  gray = _png(tmp_path / "gray.png", _image()[..., :1])
  with pytest.raises(ValueError, match="1 channel"):
    codec.compress_file(a, gray, tmp_path / "x.tfci")
  with pytest.raises(FileNotFoundError, match="no model"):
    codec.compress_file(tmp_path / "missing", png, tmp_path / "x.tfci")
  with pytest.raises(FileNotFoundError):
    codec.compress_file(a, tmp_path / "missing.png", tmp_path / "x.tfci")
  assert not os.path.exists(tmp_path / "x.tfci")


@pytest.mark.slow
def test_tfci_tool_interop_both_ways(saved, tmp_path):
  """A saved model exported with export_metagraph: tfci.py (reproduced in
  tfci_tool.py) decodes bin/codec's files, and bin/codec's decoder (given the
  saved model) decodes tfci.py's files, both equal to reconstruct."""
  root, a, b = saved
  cache = tmp_path / "metagraphs"
  cache.mkdir()
  for model in (a, b):
    path = export.export_metagraph(model, str(cache))
    assert os.path.basename(path) == codec.tfci_name(model) + ".metagraph"
  for directory, model in (("a", a), ("b", b)):
    image = _image(45, 38, seed=3)
    png = _png(tmp_path / f"{directory}.png", image)
    expected = model.reconstruct(image[None])[0]
    # bin/codec -> tfci.py
    ours = codec.compress_file(root / directory, png)["path"]
    out = tfci_tool.decompress(str(cache), ours)
    np.testing.assert_array_equal(_read_png(out), expected)
    # tfci.py -> bin/codec
    theirs = tfci_tool.compress(str(cache), codec.tfci_name(model), str(png),
                                str(tmp_path / f"{directory}.tool.tfci"))
    with open(theirs, "rb") as f:
      assert codec.unpack(f.read(), model.compressed_dtypes()).checksum is False
    out = codec.decompress_file(root / directory, theirs)["path"]
    np.testing.assert_array_equal(_read_png(out), expected)
    # Same bit-string both ways.
    with open(ours, "rb") as f, open(theirs, "rb") as g:
      assert (tfc.PackedTensors(f.read()).unpack([tf.string])[0].numpy()
              == tfc.PackedTensors(g.read()).unpack([tf.string])[0].numpy())


def _codec(*args):
  """bin/codec in a new process (a CompletedProcess)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, os.path.join(REPO_ROOT, "bin",
                                                      "codec"), *map(str,
                                                                     args)],
                        capture_output=True, text=True, env=env, timeout=300)


def _codec_here(capsys, *args):
  """bin/codec in this process: (exit status, stdout, stderr)."""
  return tool_in_process.run_tool(capsys, "codec", *args)


def test_cli_round_trip_and_errors(saved, tmp_path, capsys):
  root, a, _ = saved
  png = _png(tmp_path / "in.png", _image(23, 31))
  status, stdout, stderr = _codec_here(capsys, "compress", root / "a", png)
  assert status == 0, stderr
  assert "bpp" in stdout and os.path.isfile(str(png) + ".tfci")
  status, stdout, stderr = _codec_here(capsys, "decompress", root / "a",
                                       str(png) + ".tfci", tmp_path / "d.png")
  assert status == 0, stderr
  assert stdout.strip() == f"{tmp_path / 'd.png'}: 31x23 PNG", stdout
  np.testing.assert_array_equal(_read_png(tmp_path / "d.png"),
                                a.reconstruct(_image(23, 31)[None])[0])
  # Errors: one line, exit status 1, no output file.
  name = codec.tfci_name(a)
  (tmp_path / "huge.tfci").write_bytes(_tfci_file(
      name, [b"\x00" * 4], [200000, 200000], [12500, 12500]))
  (tmp_path / "small.tfci").write_bytes(codec.encode(a, _image(23, 31)))
  # (Wrong model, output == input: see the library tests, same code path.)
  for args, message in [
      (("decompress", root / "a", tmp_path / "huge.tfci", tmp_path / "e.png"),
       "error: the file claims a 200000x200000 image"),
      (("decompress", root / "a", tmp_path / "small.tfci", tmp_path / "e.png",
        "--max_pixels=100"), "error: the file claims a 31x23"),
  ]:
    if "--max_pixels=100" in args:
      status, _, stderr = _codec_here(capsys, *args)
    else:  # The one real process: its exit status and whole stderr.
      out = _codec(*args)
      status, stderr = out.returncode, out.stderr
    assert status == 1, (args, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), stderr
    assert not os.path.exists(tmp_path / "e.png")
  # --max_pixels=100 above did not stick: the same file decodes now.
  status, _, stderr = _codec_here(capsys, "decompress", root / "a",
                                  tmp_path / "small.tfci", tmp_path / "e.png")
  assert status == 0, stderr
  np.testing.assert_array_equal(_read_png(tmp_path / "e.png"),
                                a.reconstruct(_image(23, 31)[None])[0])
  status, stdout, _ = _codec_here(capsys, "--help")
  assert status == 0 and "TFCP" in stdout and ".tfci" in stdout
  # The tool's flags left with the call (another tool may use their names).
  assert "max_pixels" not in flags.FLAGS and "overwrite" not in flags.FLAGS


@pytest.mark.slow
def test_pretrained_tfci_models_through_the_codec(saved, tmp_path):
  """A .metagraph (pretrained tfci format) as MODEL: files name the graph
  ("MD" = its name) and decode with it."""
  _, a, _ = saved
  graph = export.export_metagraph(a, str(tmp_path / "own.metagraph"))
  png = _png(tmp_path / "in.png", _image(32, 48))
  stats = codec.compress_file(graph, png, tmp_path / "x.tfci")
  assert tfc.PackedTensors((tmp_path / "x.tfci").read_bytes()).model == "own"
  # The crafted file: 60 bytes (with this 3-letter model name)
  # claiming 200000x200000 fails at once, before the graph runs.
  crafted = _tfci_file("own", [b""], [200000, 200000], [12500, 12500])
  assert len(crafted) == 60
  model = codec.resolve_model(graph)
  start = time.perf_counter()
  with pytest.raises(ValueError, match="200000x200000 image.*max_pixels"):
    codec.decode(model, crafted)
  assert time.perf_counter() - start < 1.0
  codec.decompress_file(graph, tmp_path / "x.tfci", tmp_path / "x.png")
  np.testing.assert_array_equal(_read_png(tmp_path / "x.png"),
                                a.reconstruct(_image(32, 48)[None])[0])
  assert stats["bytes"] == os.path.getsize(tmp_path / "x.tfci")
  # A project model's file is not decoded by the graph (and vice versa).
  data = codec.encode(a, _image(32, 48))
  (tmp_path / "y.tfci").write_bytes(data)
  with pytest.raises(ValueError, match="wrong model"):
    codec.decompress_file(graph, tmp_path / "y.tfci", tmp_path / "y.png")
  with pytest.raises(FileNotFoundError, match="pretrained model name"):
    codec.resolve_model(str(tmp_path / "nothing-here"))


def test_outputs_never_replace_the_input_or_unasked_files(saved, tmp_path):
  """Issue 12: `codec compress IMG IMG` overwrote the source image."""
  root, a, _ = saved
  png = tmp_path / "in.png"
  png.write_bytes(tf.io.encode_png(_image(40, 50)).numpy())
  original = png.read_bytes()
  os.link(png, tmp_path / "hardlink.png")
  for out in (png, tmp_path / "hardlink.png", root / "a" / "x.tfci"):
    with pytest.raises(ValueError, match="input|inside the input"):
      codec.compress_file(root / "a", png, out, overwrite=True)
  codec.compress_file(a, png, tmp_path / "c.tfcp")  # Any name works.
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
