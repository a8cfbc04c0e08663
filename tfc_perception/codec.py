"""Compressed image files made with the project's models (bin/codec).

File layout (all integers big-endian):

    offset  size  field
    0       4     magic b"TFCP"
    4       1     format version (1)
    5       16    model fingerprint: first 16 bytes of the SHA-256 of the
                  model's class, architecture config and coding weights
                  (`CompressionModel.fingerprint`)
    21      1     length k of the model's registry name
    22      k     registry name (ASCII, e.g. b"factorized")
    22+k    4     payload length P
    26+k    4     CRC-32 of all other bytes (header fields and payload)
    30+k    P     payload: the tensors returned by
                  `model.compress(image[None])` (bit-string, image shape,
                  latent shape), each as a varint element count followed by
                  its elements (strings: varint length + bytes; integers:
                  zig-zag varints)

The header is 30 + k bytes (40 for "factorized"), the payload framing about
8 bytes more than the range-coded bit-string itself. Decoding
checks, in order: magic and version, that the file is exactly as long as the
header says (truncation), the CRC (corruption), and the fingerprint (a file
made by another model, or by the same model after more training); each
failure is a ValueError with a one-line message, never a wrong image.
"""

import os
import struct
import zlib
from typing import Union

import numpy as np

from tfc_perception import _io

__all__ = ["MAGIC", "VERSION", "encode", "decode", "read_header",
           "compress_file", "decompress_file", "read_image", "resolve_model"]

MAGIC = b"TFCP"
VERSION = 1
_FP_BYTES = 16


def _check_image_model(model):
  if not getattr(model, "is_image_model", False) or not hasattr(
      model, "compressed_dtypes"):
    raise ValueError(
        f"{type(model).__name__} is not an image compression model of this "
        "project; bin/codec works with image models (factorized, softquant).")


def _fingerprint(model) -> bytes:
  return bytes.fromhex(model.fingerprint())[:_FP_BYTES]


def encode(model, image) -> bytes:
  """Compresses one image into the file format above.

  Args:
    model: an image model (FactorizedPrior, SoftQuantizedAutoencoder, ...).
    image: uint8 array [H, W, 3] (or [1, H, W, 3]).

  Returns:
    The file contents.

  Raises:
    ValueError: not an image model, or an invalid image (rank, channels,
      dtype, NaN).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  _check_image_model(model)
  image = np.asarray(image)
  if image.ndim == 3:
    image = image[None]
  if image.ndim != 4 or image.shape[0] != 1:
    raise ValueError("encode takes one image [H, W, 3] (or [1, H, W, 3]); "
                     f"got shape {list(image.shape)}.")
  tensors = model.compress(tf.convert_to_tensor(image))
  payload = _pack([tf.reshape(t, [-1]).numpy() for t in tensors])
  name = (model.registry_name or "").encode("ascii")
  head = (MAGIC + bytes([VERSION]) + _fingerprint(model)
          + bytes([len(name)]) + name + struct.pack(">I", len(payload)))
  crc = zlib.crc32(head + payload)
  return head + struct.pack(">I", crc) + payload


def read_header(data: bytes) -> dict:
  """Parses and checks the container (magic, version, length, CRC).

  Returns:
    dict(version, fingerprint (hex), model (registry name), payload (bytes),
    header_bytes).

  Raises:
    ValueError: not such a file, truncated, or corrupted.
  """
  if not isinstance(data, (bytes, bytearray)):
    raise TypeError(f"data must be bytes, got {type(data).__name__}.")
  if len(data) < 5 or data[:4] != MAGIC:
    raise ValueError("not a tfc_perception compressed file (bad magic "
                     "bytes); expected a file written by bin/codec compress.")
  if data[4] != VERSION:
    raise ValueError(f"unsupported file format version {data[4]}; this "
                     f"library reads version {VERSION}.")
  pos = 5 + _FP_BYTES
  if len(data) < pos + 1:
    raise ValueError(f"truncated file: {len(data)} bytes is shorter than the "
                     "header.")
  fingerprint = bytes(data[5:pos])
  k = data[pos]
  pos += 1
  if len(data) < pos + k + 8:
    raise ValueError(f"truncated file: {len(data)} bytes is shorter than the "
                     "header.")
  try:
    name = bytes(data[pos:pos + k]).decode("ascii")
  except UnicodeDecodeError:
    raise ValueError("corrupted file: the model name in the header is not "
                     "ASCII.") from None
  pos += k
  length, crc = struct.unpack(">II", data[pos:pos + 8])
  pos += 8
  payload = bytes(data[pos:])
  if len(payload) < length:
    raise ValueError(f"truncated file: the header announces {length} payload "
                     f"bytes but only {len(payload)} are present.")
  if len(payload) > length:
    raise ValueError(f"corrupted file: {len(payload) - length} unexpected "
                     "bytes after the payload.")
  if zlib.crc32(bytes(data[:pos - 4]) + payload) != crc:
    raise ValueError("corrupted file: the checksum (CRC-32) does not match.")
  return {"version": data[4], "fingerprint": fingerprint.hex(), "model": name,
          "payload": payload, "header_bytes": pos}


def decode(model, data: bytes) -> np.ndarray:
  """Decompresses a file made by `encode` with the same model.

  Returns:
    uint8 array [H, W, 3], equal to model.reconstruct(image)[0].

  Raises:
    ValueError: not such a file, truncated, corrupted, or made by a
      different model (fingerprint mismatch).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  _check_image_model(model)
  info = read_header(data)
  ours = _fingerprint(model).hex()
  if info["fingerprint"] != ours:
    raise ValueError(
        f"wrong model: the file was made by a {info['model'] or '?'} model "
        f"with fingerprint {info['fingerprint']}, but the given "
        f"{model.registry_name} model has fingerprint {ours}; decode with the "
        "model that compressed it.")
  tensors = _unpack(info["payload"], model.compressed_dtypes())
  image = model.decompress(*[tf.convert_to_tensor(t) for t in tensors])
  return image.numpy()[0]


def _uvarint(value: int) -> bytes:
  out = bytearray()
  while True:
    byte = value & 0x7F
    value >>= 7
    if value:
      out.append(byte | 0x80)
    else:
      out.append(byte)
      return bytes(out)


def _read_uvarint(data: bytes, pos: int):
  value, shift = 0, 0
  while True:
    if pos >= len(data) or shift > 63:
      raise ValueError("corrupted file: malformed payload framing.")
    byte = data[pos]
    pos += 1
    value |= (byte & 0x7F) << shift
    shift += 7
    if not byte & 0x80:
      return value, pos


def _pack(arrays) -> bytes:
  """Frames rank-1 arrays (bytes objects or integers) into one payload."""
  out = bytearray()
  for a in arrays:
    out += _uvarint(len(a))
    for v in a.tolist():
      if isinstance(v, bytes):
        out += _uvarint(len(v)) + v
      else:
        v = int(v)
        out += _uvarint((v << 1) ^ (v >> 63))  # zig-zag
  return bytes(out)


def _unpack(payload: bytes, dtypes):
  """Inverse of _pack for the given dtypes (tf.string or integer)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  pos, out = 0, []
  for dtype in dtypes:
    count, pos = _read_uvarint(payload, pos)
    if count > len(payload):
      raise ValueError("corrupted file: malformed payload framing.")
    values = []
    for _ in range(count):
      v, pos = _read_uvarint(payload, pos)
      if dtype == tf.string:
        if pos + v > len(payload):
          raise ValueError("corrupted file: malformed payload framing.")
        values.append(payload[pos:pos + v])
        pos += v
      else:
        values.append((v >> 1) ^ -(v & 1))
    out.append(tf.constant(values, dtype=dtype) if values
               else tf.zeros([0], dtype))
  if pos != len(payload):
    raise ValueError("corrupted file: malformed payload framing.")
  return out


def read_image(path) -> np.ndarray:
  """Reads an 8-bit RGB image file as uint8 [H, W, 3]
  (`tfc_perception.data.image_io.read_image`: opaque alpha is dropped,
  transparency is refused).

  Raises:
    FileNotFoundError: no such file.
    ValueError: not a decodable 8-bit image, transparency, or not RGB.
  """
  from tfc_perception.data import image_io  # pylint: disable=g-import-not-at-top
  image = image_io.read_image(path, keep_grey=True)
  if image.shape[-1] != 3:
    raise ValueError(f"{path} has {image.shape[-1]} channel(s); the models "
                     "code RGB images (3 channels): convert it first.")
  return image


def resolve_model(spec: Union[str, os.PathLike, object]):
  """A model object from a model, a directory written by save_model, or a
  pretrained tfci model (registry name such as "bmshj2018-factorized-mse-3"
  or a .metagraph path; loaded by `tfc_perception.pretrained.load`).

  Raises:
    FileNotFoundError / ValueError: no model at that path / of that name.
  """
  if hasattr(spec, "compress") and hasattr(spec, "decompress"):
    return spec
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  path = os.fspath(spec)
  if os.path.isdir(path):
    return models.load_model(path)
  try:
    from tfc_perception import pretrained  # pylint: disable=g-import-not-at-top
  except ImportError:  # pragma: no cover
    pretrained = None
  if pretrained is not None and (
      path.endswith(".metagraph") or path in pretrained.default_registry()):
    return pretrained.load(path)
  raise FileNotFoundError(
      f"no model at {path}: give a directory written by "
      "tfc_perception.models.save_model (bin/train --export), a pretrained "
      "model name (bin/download --list) or a .metagraph file.")


def _is_tfci(model) -> bool:
  """Pretrained tfci graphs write tfc's own .tfci container instead."""
  return not hasattr(model, "fingerprint") and hasattr(
      model, "compress_to_file") and hasattr(model, "decompress_file")


def _check_paths(model, input_path, output_path, overwrite):
  """The output is never the input, nor inside a model folder; an existing
  output is replaced only with `overwrite`."""
  model_path = model if isinstance(model, (str, os.PathLike)) else None
  _io.check_output_path(output_path, {"INPUT": input_path, "MODEL": model_path},
                        "OUTPUT", overwrite=overwrite)


def compress_file(model, input_path, output_path,
                  overwrite: bool = False) -> dict:
  """Compresses an image file into `output_path` (written atomically).

  Args:
    model: a model, a saved-model directory, or a pretrained tfci model
      (name or .metagraph; then the file is tfc's .tfci format, readable by
      tfc's tfci.py).
    input_path: PNG/JPEG/... RGB image.
    output_path: destination of the compressed file: never the input or
      inside the model, and not an existing file unless `overwrite`.
    overwrite: replace an existing `output_path`.

  Returns:
    dict(bytes, bits_per_pixel, height, width, header_bytes).

  Raises:
    FileNotFoundError, ValueError: see read_image, resolve_model, encode;
      or `output_path` may not be written.
  """
  _check_paths(model, input_path, output_path, overwrite)
  model = resolve_model(model)
  image = read_image(input_path)
  h, w = image.shape[:2]
  if _is_tfci(model):
    size = model.compress_to_file(image[None], output_path)
    return {"bytes": size, "bits_per_pixel": 8 * size / (h * w),
            "height": h, "width": w, "header_bytes": None}
  data = encode(model, image)
  _io.write_bytes(output_path, data)
  return {"bytes": len(data), "bits_per_pixel": 8 * len(data) / (h * w),
          "height": h, "width": w,
          "header_bytes": read_header(data)["header_bytes"]}


def decompress_file(model, input_path, output_path,
                    overwrite: bool = False) -> dict:
  """Decompresses a file made by compress_file into a PNG (atomically).

  Args:
    model: as for `compress_file`: the model that compressed the file.
    input_path: the compressed file.
    output_path: the PNG to write: never the input or inside the model, and
      not an existing file unless `overwrite` (a decoded image written over
      the original would replace it with a lossy copy).
    overwrite: replace an existing `output_path`.

  Returns:
    dict(height, width).

  Raises:
    FileNotFoundError, ValueError: missing input, see decode, or
      `output_path` may not be written.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  _check_paths(model, input_path, output_path, overwrite)
  model = resolve_model(model)
  input_path = os.fspath(input_path)
  if not os.path.isfile(input_path):
    raise FileNotFoundError(f"no such compressed file: {input_path}")
  if _is_tfci(model):
    image = np.asarray(model.decompress_file(input_path))[0]
  else:
    with open(input_path, "rb") as f:
      data = f.read()
    image = decode(model, data)
  _io.write_bytes(output_path, tf.io.encode_png(image).numpy())
  return {"height": image.shape[0], "width": image.shape[1]}
