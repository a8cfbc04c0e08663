"""Compressed image files (bin/codec): tensorflow-compression's .tfci format.

A file is a `tfc.PackedTensors` container (a serialized `tf.train.Example`),
the format tfc's own `models/tfci.py` reads and writes:

    feature  content
    "MD"     model name (ASCII): `tfci_name(model)`; for the project's models
             "<registry name>-<first 8 hex digits of the fingerprint>", the
             name under which tfci.py looks up `<name>.metagraph` (see
             `pretrained.export.export_metagraph`)
    chr(1).. the tensors of `model.compress(image[None])`, each rank 1, in
             order (project image models: bit-string [1], image shape [2]
             (H, W), latent shape [2])
    "FP"     16 bytes: the first half of `model.fingerprint()` (SHA-256 of the
             model class, architecture and coding weights)
    "CK"     4 bytes: CRC-32 (big endian) of every byte of the file before the
             trailing 18-byte Example that holds it

tfci.py ignores "FP" and "CK". The file is the serialized Example without
"CK" followed by a serialized Example holding only "CK": protobuf merges
concatenated messages, so every reader sees one Example with all features,
while the checksum covers the whole file, container structure included.

Decoding (`decode`) checks, before anything large is allocated: the
container parses; "CK" (if present) matches; "FP" (if present) is the given
model's, else (a file without "FP", e.g. written by tfci.py) "MD" names the
given model; exactly the expected tensors are there, one image; the image
size the file claims is at most `max_pixels` (default 2^28). Each failure is
a ValueError with a one-line message. Files with "CK" (all files bin/codec
writes) are decoded only if intact. Files without it (tfci.py's) have no
checksum: their range-coded payload is decoded best-effort, i.e. a garbage
payload either fails the range decoder's own checks (a ValueError) or gives
an image of the claimed size that is garbage too.

Files of release 1 (magic b"TFCP", see `read_header`) are still decoded.
"""

import os
import re
import struct
import zlib
from typing import NamedTuple, Optional, Sequence, Union

import numpy as np

from tfc_perception import _io
from tfc_perception import _validation

__all__ = ["MAX_PIXELS", "tfci_name", "is_plain_name", "pack", "unpack",
           "read_model_name",
           "TfciFile", "encode",
           "decode", "read_header", "compress_file", "decompress_file",
           "read_image", "resolve_model"]

MAX_PIXELS = _validation.MAX_PIXELS
_FP_BYTES = 16
_FP_KEY = "FP"
_CK_KEY = "CK"
_MODEL_KEY = "MD"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
# Release 1 container (read only).
MAGIC = b"TFCP"
VERSION = 1


def _check_image_model(model):
  if not getattr(model, "is_image_model", False) or not hasattr(
      model, "compressed_dtypes"):
    raise ValueError(
        f"{type(model).__name__} is not an image compression model of this "
        "project; bin/codec works with image models (factorized, softquant) "
        "and tfci models (pretrained names, .metagraph files).")


def _is_tfci(model) -> bool:
  """A tfc metagraph (`pretrained.tfci.TfciModel`), not a project model."""
  return not hasattr(model, "fingerprint") and hasattr(model, "model_name")


def _fingerprint(model) -> Optional[bytes]:
  if _is_tfci(model):
    return None
  return bytes.fromhex(model.fingerprint())[:_FP_BYTES]


def tfci_name(model) -> str:
  """The model name written into "MD": a tfci model's own name, or
  "<registry name>-<8 hex digits of the fingerprint>" for a project model."""
  if _is_tfci(model):
    return model.model_name
  return f"{model.registry_name}-{model.fingerprint()[:8]}"


def is_plain_name(name) -> bool:
  """True for a model name that is safe as a file name: letters, digits and
  '.', '_', '+', '-', starting with a letter or digit, at most 128."""
  return isinstance(name, str) and bool(_NAME.match(name))


# ---------------------------------------------------------------- container
def _checksum_trailer(crc: int) -> bytes:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  example = tf.train.Example()
  example.features.feature[_CK_KEY].bytes_list.value.append(
      struct.pack(">I", crc))
  return example.SerializeToString()


def pack(model_name: str, tensors: Sequence, fingerprint: Optional[bytes] = None
         ) -> bytes:
  """A .tfci file: `tfc.PackedTensors` with the model name and the rank-1
  tensors, plus "FP" (if `fingerprint` is given) and the "CK" trailer.

  Raises:
    ValueError: a bad model name or a tensor that is not rank 1.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_compression as tfc  # pylint: disable=g-import-not-at-top
  if not is_plain_name(model_name):
    raise ValueError(f"model name {model_name!r} is not a plain name (letters,"
                     " digits, '.', '_', '+', '-'; at most 128).")
  tensors = [tf.convert_to_tensor(t) for t in tensors]
  for i, t in enumerate(tensors):
    if t.shape.rank != 1:
      raise ValueError(f".tfci tensors must be rank 1; tensor {i} has shape "
                       f"{t.shape} (one image per file).")
  packed = tfc.PackedTensors()
  packed.model = model_name
  packed.pack(tensors)
  if fingerprint is not None:
    example = tf.train.Example()
    example.ParseFromString(packed.string)
    example.features.feature[_FP_KEY].bytes_list.value.append(fingerprint)
    body = example.SerializeToString()
  else:
    body = packed.string
  return body + _checksum_trailer(zlib.crc32(body))


class TfciFile(NamedTuple):
  """A parsed .tfci file (see `unpack`)."""
  model: str
  tensors: list
  fingerprint: Optional[str]  # hex, None if the file has no "FP"
  checksum: bool  # True if the file had "CK" (and it matched)


def _parse(data: bytes):
  """(features, model name, fingerprint hex or None, has checksum) of a
  .tfci file, after the container checks of `unpack`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not isinstance(data, (bytes, bytearray)):
    raise TypeError(f"data must be bytes, got {type(data).__name__}.")
  data = bytes(data)
  example = tf.train.Example()
  try:
    example.ParseFromString(data)
  except Exception as e:  # pylint: disable=broad-except  (DecodeError)
    raise ValueError("not a .tfci file, or a truncated or corrupted one: the "
                     f"container does not parse ({type(e).__name__}).") from None
  features = example.features.feature
  checksum = _CK_KEY in features
  if checksum:
    value = features[_CK_KEY].bytes_list.value
    crc = value[0] if len(value) == 1 and len(value[0]) == 4 else b""
    trailer = _checksum_trailer(int.from_bytes(crc, "big")) if crc else b""
    if (not crc or not data.endswith(trailer)
        or zlib.crc32(data[:-len(trailer)]) != int.from_bytes(crc, "big")):
      raise ValueError("corrupted or truncated file: the checksum (CRC-32, "
                       "feature 'CK') does not match.")
  fingerprint = None
  if _FP_KEY in features:
    if not checksum:
      raise ValueError("corrupted or truncated file: it has a fingerprint "
                       "('FP') but no checksum ('CK').")
    value = features[_FP_KEY].bytes_list.value
    if len(value) != 1 or len(value[0]) != _FP_BYTES:
      raise ValueError("corrupted file: malformed fingerprint ('FP').")
    fingerprint = value[0].hex()
  if _MODEL_KEY not in features or len(
      features[_MODEL_KEY].bytes_list.value) != 1:
    raise ValueError("not a .tfci file: it has no model name (feature 'MD').")
  try:
    model = features[_MODEL_KEY].bytes_list.value[0].decode("ascii")
  except UnicodeDecodeError:
    raise ValueError("corrupted file: the model name is not ASCII.") from None
  return features, model, fingerprint, checksum


def read_model_name(data: bytes) -> str:
  """The model name ("MD") of a .tfci file, after the container checks.

  Raises:
    ValueError: not a .tfci file, or a failed checksum.
  """
  return _parse(data)[1]


def unpack(data: bytes, dtypes: Sequence) -> TfciFile:
  """Parses and checks a .tfci file's container (no model needed).

  Args:
    data: the file's bytes.
    dtypes: dtypes of the tensors to unpack (a project model's
      `compressed_dtypes()`, a tfci model's receiver inputs).

  Returns:
    A `TfciFile`; integer tensors are int64 (range-checked by `decode`).

  Raises:
    ValueError: not a .tfci file, failed checksum, missing or extra tensors.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  features, model, fingerprint, checksum = _parse(data)
  count = sum(1 for k in features if len(k) == 1 and ord(k) >= 1)
  if count != len(dtypes) or any(chr(i + 1) not in features
                                 for i in range(len(dtypes))):
    raise ValueError(f"the file holds {count} tensors, the model decodes "
                     f"{len(dtypes)}: not a file of this model, or corrupted.")
  tensors = []
  for i, dtype in enumerate(dtypes):
    dtype = tf.as_dtype(dtype)
    feature = features[chr(i + 1)]
    if dtype == tf.string:
      values = list(feature.bytes_list.value)
      kind = "bytes_list"
    elif dtype.is_integer:
      values = np.array(feature.int64_list.value, np.int64)
      kind = "int64_list"
    else:
      values = np.array(feature.float_list.value, np.float32)
      kind = "float_list"
    if feature.WhichOneof("kind") not in (kind, None):
      raise ValueError(f"corrupted file: tensor {i + 1} is a "
                       f"{feature.WhichOneof('kind')}, expected {kind}.")
    tensors.append(values)
  return TfciFile(model, tensors, fingerprint, checksum)


def encode(model, image) -> bytes:
  """Compresses one image into a .tfci file (see the module docstring).

  Args:
    model: a project image model (FactorizedPrior, SoftQuantizedAutoencoder)
      or a tfci model (`pretrained.load`).
    image: uint8 array [H, W, 3] (or [1, H, W, 3]).

  Returns:
    The file contents.

  Raises:
    ValueError: not an image model, or an invalid image.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not _is_tfci(model):
    _check_image_model(model)
  image = np.asarray(image)
  if image.ndim == 3:
    image = image[None]
  if image.ndim != 4 or image.shape[0] != 1:
    raise ValueError("encode takes one image [H, W, 3] (or [1, H, W, 3]); "
                     f"got shape {list(image.shape)}.")
  tensors = model.compress(tf.convert_to_tensor(image))
  return pack(tfci_name(model), [tf.reshape(t, [-1]) for t in tensors],
              _fingerprint(model))


def _check_size(tensors, dtypes, max_pixels):
  """Every integer tensor of length 2 (image and latent shapes) is a size
  claim: each must be positive and its product at most max_pixels."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  for t, dtype in zip(tensors, dtypes):
    if tf.as_dtype(dtype).is_integer and len(t) == 2:
      h, w = (int(v) for v in t)
      if h < 1 or w < 1:
        raise ValueError(f"corrupted file: it claims an image shape {h}x{w}.")
      if h * w > max_pixels:
        raise ValueError(
            f"the file claims a {w}x{h} image ({h * w} pixels), more than "
            f"max_pixels={max_pixels}; refusing to decode it (raise "
            "--max_pixels if the file is trusted).")


def decode(model, data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
  """Decompresses a file made by `encode` (or by tfc's tfci.py, or a
  release-1 TFCP file) with the model that made it.

  Args:
    model: the model (project image model or tfci model).
    data: the file's bytes.
    max_pixels: largest H * W accepted; checked before decoding.

  Returns:
    uint8 array [H, W, 3] (for project models equal to
    model.reconstruct(image)[0]).

  Raises:
    ValueError: not such a file, truncated, corrupted, made by a different
      model (fingerprint or name mismatch), or claiming more than max_pixels.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  max_pixels = _validation.check_max_pixels(max_pixels)
  tfci_model = _is_tfci(model)
  if not tfci_model:
    _check_image_model(model)
  if isinstance(data, (bytes, bytearray)) and bytes(data[:4]) == MAGIC:
    if tfci_model:
      raise ValueError("this is a release-1 TFCP file of a tfc_perception "
                       "model; decode it with that model's directory.")
    return _decode_release1(model, bytes(data), max_pixels)
  dtypes = list(model.compressed_dtypes())
  f = unpack(data, dtypes)
  if f.fingerprint is not None:
    ours = _fingerprint(model)
    if ours is None or f.fingerprint != ours.hex():
      raise ValueError(
          f"wrong model: the file was made by model {f.model!r} (fingerprint "
          f"{f.fingerprint}), but the given model is {tfci_name(model)!r}"
          + (f" (fingerprint {ours.hex()})" if ours else "")
          + "; decode with the model that compressed it.")
  elif f.model != tfci_name(model):
    raise ValueError(f"wrong model: the file was made by model {f.model!r}, "
                     f"but the given model is {tfci_name(model)!r}; decode "
                     "with the model that compressed it.")
  strings = [i for i, d in enumerate(dtypes) if tf.as_dtype(d) == tf.string]
  if any(len(f.tensors[i]) != 1 for i in strings):
    raise ValueError("corrupted file: a .tfci file holds one image (one "
                     "bit-string per string tensor).")
  _check_size(f.tensors, dtypes, max_pixels)
  tensors = []
  for t, dtype in zip(f.tensors, dtypes):
    dtype = tf.as_dtype(dtype)
    if dtype.is_integer and len(t) and (t.min() < dtype.min
                                        or t.max() > dtype.max):
      raise ValueError(f"corrupted file: a value does not fit {dtype.name}.")
    tensors.append(tf.constant(t, dtype) if len(t) else tf.zeros([0], dtype))
  if tfci_model:
    image = model.decompress(*tensors)
  else:
    image = model.decompress(*tensors, max_pixels=max_pixels)
  return np.asarray(image)[0]


# ----------------------------------------------------------- release 1 (TFCP)
def read_header(data: bytes) -> dict:
  """Parses and checks a release-1 TFCP file (read only).

  Layout (big-endian): magic b"TFCP", version 1, 16-byte fingerprint, name
  length k and k bytes of registry name, payload length P, CRC-32 of all
  other bytes, then P bytes of payload: the compress() tensors, each a varint
  element count and its elements (strings: varint length + bytes; integers:
  zig-zag varints).

  Returns:
    dict(version, fingerprint (hex), model (registry name), payload (bytes),
    header_bytes).

  Raises:
    ValueError: not such a file, truncated, or corrupted.
  """
  if not isinstance(data, (bytes, bytearray)):
    raise TypeError(f"data must be bytes, got {type(data).__name__}.")
  if len(data) < 5 or data[:4] != MAGIC:
    raise ValueError("not a TFCP file (bad magic bytes).")
  if data[4] != VERSION:
    raise ValueError(f"unsupported TFCP file version {data[4]}; this "
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


def _decode_release1(model, data, max_pixels):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  info = read_header(data)
  ours = _fingerprint(model).hex()
  if info["fingerprint"] != ours:
    raise ValueError(
        f"wrong model: the file was made by a {info['model'] or '?'} model "
        f"with fingerprint {info['fingerprint']}, but the given "
        f"{model.registry_name} model has fingerprint {ours}; decode with the "
        "model that compressed it.")
  dtypes = model.compressed_dtypes()
  tensors = _unpack_varints(info["payload"], dtypes)
  if any(len(t) != 1 for t, d in zip(tensors, dtypes) if d == tf.string):
    raise ValueError("corrupted file: a file holds one image.")
  _check_size(tensors, dtypes, max_pixels)
  image = model.decompress(*[tf.constant(t, d) for t, d in zip(tensors, dtypes)],
                           max_pixels=max_pixels)
  return image.numpy()[0]


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


def _unpack_varints(payload: bytes, dtypes):
  """The tensors of a release-1 payload, as lists."""
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
        v = (v >> 1) ^ -(v & 1)
        if not -2 ** 31 <= v < 2 ** 31:
          raise ValueError("corrupted file: a shape does not fit int32.")
        values.append(v)
    out.append(values)
  if pos != len(payload):
    raise ValueError("corrupted file: malformed payload framing.")
  return out


# ------------------------------------------------------------------- files
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


def _check_paths(model, input_path, output_path, overwrite):
  """The output is never the input, nor inside a model folder; an existing
  output is replaced only with `overwrite`."""
  model_path = model if isinstance(model, (str, os.PathLike)) else None
  _io.check_output_path(output_path, {"INPUT": input_path, "MODEL": model_path},
                        "OUTPUT", overwrite=overwrite)


def compress_file(model, input_path, output_path=None,
                  overwrite: bool = False) -> dict:
  """Compresses an image file into a .tfci file (written atomically).

  Args:
    model: a model, a saved-model directory, or a pretrained tfci model
      (name or .metagraph).
    input_path: PNG/JPEG/... RGB image.
    output_path: destination; default `input_path + ".tfci"` (as tfci.py).
      Never the input or inside the model, and not an existing file unless
      `overwrite`.
    overwrite: replace an existing `output_path`.

  Returns:
    dict(path, bytes, bits_per_pixel, height, width, header_bytes (file
    bytes besides the bit-strings)).

  Raises:
    FileNotFoundError, ValueError: see read_image, resolve_model, encode;
      or `output_path` may not be written.
  """
  input_path = os.fspath(input_path)
  output_path = (input_path + ".tfci" if output_path is None
                 else os.fspath(output_path))
  _check_paths(model, input_path, output_path, overwrite)
  model = resolve_model(model)
  image = read_image(input_path)
  h, w = image.shape[:2]
  data = encode(model, image)
  f = unpack(data, list(model.compressed_dtypes()))
  payload = sum(len(s) for t in f.tensors for s in t
                if isinstance(s, bytes))
  _io.write_bytes(output_path, data)
  return {"path": output_path, "bytes": len(data),
          "bits_per_pixel": 8 * len(data) / (h * w), "height": h, "width": w,
          "header_bytes": len(data) - payload}


def decompress_file(model, input_path, output_path=None,
                    max_pixels: int = MAX_PIXELS,
                    overwrite: bool = False) -> dict:
  """Decompresses a .tfci (or release-1 TFCP) file into a PNG, atomically.

  Args:
    model: the model that made the file (object, directory, tfci name or
      .metagraph).
    input_path: the compressed file.
    output_path: the PNG; default `input_path + ".png"` (as tfci.py). Never
      the input or inside the model, and not an existing file unless
      `overwrite` (a decoded image written over the original would replace
      it with a lossy copy).
    max_pixels: largest H * W accepted (checked before decoding).
    overwrite: replace an existing `output_path`.

  Returns:
    dict(path, height, width).

  Raises:
    FileNotFoundError, ValueError: missing input, see decode, or
      `output_path` may not be written.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  input_path = os.fspath(input_path)
  output_path = (input_path + ".png" if output_path is None
                 else os.fspath(output_path))
  max_pixels = _validation.check_max_pixels(max_pixels)
  if not os.path.isfile(input_path):
    raise FileNotFoundError(f"no such compressed file: {input_path}")
  _check_paths(model, input_path, output_path, overwrite)
  with open(input_path, "rb") as f:
    data = f.read()
  model = resolve_model(model)
  image = decode(model, data, max_pixels)
  _io.write_bytes(output_path, tf.io.encode_png(image).numpy())
  return {"path": output_path, "height": image.shape[0],
          "width": image.shape[1]}
