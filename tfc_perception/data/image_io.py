"""Reading image files: the one reader of the package (Pillow, no TensorFlow).

Every tool reads images the same way (bin/codec, bin/evaluate distances,
iqa and rd, the experiments):

- 8-bit files only (PNG, JPEG, BMP, GIF, TIFF, PPM/PGM, ...); 16-bit and
  float images are refused.
- Colour images give uint8 [H, W, 3]; palette, CMYK and YCbCr images are
  converted to RGB; greyscale gives [H, W, 1] or RGB (`keep_grey`).
- Transparency: an alpha channel (or palette transparency) that is fully
  opaque carries no information and is dropped. An image with any pixel of
  alpha < 255 is refused, naming the file: dropping alpha would silently show
  the colours hidden under transparent pixels, and compositing would need a
  background colour nobody chose. Flatten it first (e.g. Pillow's
  `Image.alpha_composite` onto the background you want).

`check_complete` is the cheap test the training pipeline runs on every file
before training (see `tfc_perception.data.images.select_images`).
"""

import os

import numpy as np

__all__ = ["read_image", "check_complete", "ImageFileError"]

# Modes whose samples are 8-bit: converted to "L" (grey) or "RGB".
_GREY_MODES = ("1", "L", "LA", "La")
_COLOUR_MODES = ("RGB", "RGBA", "RGBa", "RGBX", "P", "PA", "CMYK", "YCbCr",
                 "LAB", "HSV")


class ImageFileError(ValueError):
  """An image file that cannot be used (unreadable, truncated, translucent,
  not 8-bit); the message names the file."""


def _opaque(img, path):
  """Fails if `img` (a Pillow image) has a pixel with alpha < 255."""
  if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
      img.mode == "P" and "transparency" in img.info):
    alpha = np.asarray(img.convert("RGBA"))[..., 3]
    translucent = int(np.count_nonzero(alpha < 255))
    if translucent:
      raise ImageFileError(
          f"{path} has transparency ({translucent} of {alpha.size} pixels "
          "with alpha < 255); flatten it onto a background first (e.g. "
          "Pillow's Image.alpha_composite): transparent pixels have no "
          "defined colour to compress or compare.")


def read_image(path, keep_grey: bool = False) -> np.ndarray:
  """Reads an 8-bit image file as a uint8 array.

  Args:
    path: the image file.
    keep_grey: return greyscale images as [H, W, 1] (else as RGB).

  Returns:
    uint8 [H, W, 3] (or [H, W, 1] for greyscale with `keep_grey`).

  Raises:
    FileNotFoundError: no such file.
    ImageFileError (a ValueError): unreadable or truncated file, a mode
      other than 8-bit, or transparency (see the module docstring).
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"image not found: {path}")
  try:
    with Image.open(path) as img:
      img.load()
      if img.mode not in _GREY_MODES + _COLOUR_MODES:
        raise ImageFileError(
            f"{path}: image mode {img.mode!r} is not 8-bit; accepted: 8-bit "
            "greyscale or colour images (L, RGB, RGBA, P, ...).")
      _opaque(img, path)
      if img.mode in _GREY_MODES:
        grey = np.asarray(img.convert("L"), dtype=np.uint8)[..., None]
        return grey if keep_grey else np.repeat(grey, 3, axis=-1)
      return np.asarray(img.convert("RGB"), dtype=np.uint8)
  except ImageFileError:
    raise
  except (OSError, SyntaxError, ValueError) as e:
    raise ImageFileError(f"{path}: cannot read the image ({e}).") from None


# Bytes every complete file of a format ends with (after optional padding).
_PNG_END = b"IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"
_TAIL = 1 << 16


def check_complete(path) -> None:
  """Cheap check that an image file is complete: Pillow parses its header
  and, for PNG and JPEG, the file ends with the format's end marker (IEND
  chunk; JPEG's EOI marker, within the last 64 KiB, since cameras may append
  data after it), which a truncated download or copy lacks. Reads the header
  and the file's tail only; does not decode the pixels, so corruption inside
  a complete file is found only when it is decoded.

  Raises:
    ImageFileError: unreadable header, or a PNG/JPEG without its end marker.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  path = os.fspath(path)
  try:
    with Image.open(path) as img:
      fmt = img.format
    with open(path, "rb") as f:
      f.seek(0, os.SEEK_END)
      size = f.tell()
      f.seek(max(0, size - _TAIL))
      tail = f.read()
  except (OSError, SyntaxError, ValueError) as e:
    raise ImageFileError(f"{path}: cannot read the image ({e}).") from None
  marker = {"PNG": _PNG_END, "JPEG": _JPEG_END, "MPO": _JPEG_END}.get(fmt)
  if fmt == "PNG":
    tail = tail[-len(_PNG_END) - 16:]  # IEND is the last chunk of a PNG.
  if marker is not None and marker not in tail:
    raise ImageFileError(
        f"{path} is truncated or corrupt: a complete {fmt} file ends with "
        f"{marker!r}, this one ({size} bytes) does not; re-copy or remove it.")
