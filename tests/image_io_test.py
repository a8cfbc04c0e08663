"""The one image reader (tfc_perception.data.image_io): alpha is handled the
same way in every tool (issue 12), 8-bit only, files named in errors."""

import os

import numpy as np
import pytest
from PIL import Image

from tfc_perception import codec
from tfc_perception.data import image_io
from tfc_perception.distances import pairs


def _rgba(path, alpha):
  rng = np.random.default_rng(0)
  rgba = rng.integers(0, 256, (20, 24, 4)).astype(np.uint8)
  rgba[..., 3] = alpha
  Image.fromarray(rgba, "RGBA").save(path)
  return rgba


def test_opaque_alpha_is_dropped_everywhere(tmp_path):
  rgba = _rgba(tmp_path / "a.png", 255)
  for read in (image_io.read_image, codec.read_image, pairs.load_image):
    np.testing.assert_array_equal(read(str(tmp_path / "a.png")),
                                  rgba[..., :3])


def test_transparency_is_refused_everywhere(tmp_path):
  alpha = np.full((20, 24), 255, np.uint8)
  alpha[:2, :5] = 0
  _rgba(tmp_path / "t.png", alpha)
  for read in (image_io.read_image, codec.read_image, pairs.load_image):
    with pytest.raises(ValueError, match=r"t.png has transparency \(10 of "
                       r"480 pixels"):
      read(str(tmp_path / "t.png"))
  # A palette image with a transparent colour counts too.
  p = Image.new("P", (8, 8), 0)
  p.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
  p.putpixel((1, 1), 1)
  p.info["transparency"] = 1
  p.save(tmp_path / "p.png", transparency=1)
  with pytest.raises(ValueError, match="p.png has transparency"):
    image_io.read_image(str(tmp_path / "p.png"))


def test_grey_16bit_and_broken_files(tmp_path):
  grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
  Image.fromarray(grey).save(tmp_path / "g.png")
  assert image_io.read_image(str(tmp_path / "g.png"), keep_grey=True).shape == (
      8, 8, 1)
  np.testing.assert_array_equal(image_io.read_image(str(tmp_path / "g.png")),
                                np.repeat(grey[..., None], 3, -1))
  Image.fromarray(grey.astype(np.uint16) * 1000).save(tmp_path / "w.png")
  with pytest.raises(ValueError, match="w.png: image mode .* is not 8-bit"):
    image_io.read_image(str(tmp_path / "w.png"))
  (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
  with pytest.raises(ValueError, match="b.png: cannot read the image"):
    image_io.read_image(str(tmp_path / "b.png"))
  with pytest.raises(FileNotFoundError):
    image_io.read_image(str(tmp_path / "none.png"))
  data = (tmp_path / "g.png").read_bytes()
  (tmp_path / "cut.png").write_bytes(data[:-20])
  with pytest.raises(ValueError, match="cut.png is truncated"):
    image_io.check_complete(str(tmp_path / "cut.png"))
  image_io.check_complete(str(tmp_path / "g.png"))
