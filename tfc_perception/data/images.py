"""Image training data: folders/globs -> random crops, and uniform-noise images.

The image models of Hepburn et al. (ICLR 2022) are trained on random crops of
natural images (Sec. 4 and 5.1, Fig. 15; OpenImages in the paper) or, for the
scarce-data experiment of Sec. 5.2 (Figs. 5, 13, 19), on images of uniform
noise. This module builds both as `tf.data` pipelines of uint8 NHWC batches:

- `list_images(spec)`: a folder (searched recursively), a glob pattern or a
  list of files -> the sorted list of image files (.png, .jpg, .jpeg, .bmp,
  .gif). No images is a `FileNotFoundError`.
- `select_images(files, patchsize)`: reads only the image headers and file
  ends (Pillow, `image_io.check_complete`), before any training: unreadable
  or truncated files, and images with another channel count than RGB's 3,
  are an error naming them (training fails early rather than mid-epoch);
  images smaller than the crop are skipped with ONE warning that says how
  many; none left is an error.
- `random_crops(spec, patchsize, batch_size, seed, start_step)`: an endless
  stream of random crops, decoded in parallel (`num_parallel_calls=AUTOTUNE`,
  order kept) and prefetched. Each pass over the files uses a permutation
  that is a function of (seed, pass) and each crop's position is drawn with
  the stateless seed (seed, example index), so example j is a pure function of
  (seed, j): reproducible, and a resumed run can start at any step. `spec`
  may also be the images themselves, a uint8 array [N, H, W, 3] (CIFAR-10
  from its python batches): the same stream as the same images in files.
- `center_crops(spec, patchsize, batch_size)`: one central crop per image, a
  finite dataset for validation.
- `uniform_noise_images(patchsize, batch_size, seed, start_step)`: endless
  batches of i.i.d. uniform 8-bit noise images (every pixel value 0..255
  equally likely), batch i drawn with the stateless seed (seed, i).
"""

import logging
import os
from typing import List, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from tfc_perception._checks import check_int
from tfc_perception.data import image_io
from tfc_perception.data.sources import step_seed

__all__ = [
    "IMAGE_EXTENSIONS", "list_images", "select_images", "random_crops",
    "center_crops", "uniform_noise_images",
]

_LOG = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

# Pillow modes whose decoding with 3 channels is lossless RGB.
_RGB_MODES = ("RGB", "P", "YCbCr")


def list_images(spec: Union[str, os.PathLike, Sequence[str]]) -> List[str]:
  """The image files named by a folder, a glob pattern or a list of files.

  Args:
    spec: a folder (searched recursively for files with an extension in
      `IMAGE_EXTENSIONS`, case-insensitive), a glob pattern (e.g.
      "data/*.png"), or a list/tuple of file paths.

  Returns:
    Sorted list of file paths.

  Raises:
    FileNotFoundError: nothing matches, or a listed file does not exist.
    TypeError: `spec` is of another type.
  """
  if isinstance(spec, (list, tuple)):
    files = [os.fspath(f) for f in spec]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
      raise FileNotFoundError(f"{len(missing)} listed image file(s) do not "
                              f"exist, e.g. {missing[0]!r}.")
    if not files:
      raise FileNotFoundError("the list of image files is empty.")
    return sorted(files)
  if not isinstance(spec, (str, os.PathLike)):
    raise TypeError("images must be given as a folder, a glob pattern or a "
                    f"list of files, got {type(spec).__name__}.")
  spec = os.fspath(spec)
  if os.path.isdir(spec):
    files = []
    for root, _, names in os.walk(spec):
      files.extend(os.path.join(root, n) for n in names
                   if n.lower().endswith(IMAGE_EXTENSIONS))
    where = f"in folder {spec!r} (searched recursively)"
  else:
    files = [f for f in tf.io.gfile.glob(spec)
             if f.lower().endswith(IMAGE_EXTENSIONS) and not os.path.isdir(f)]
    where = f"matching {spec!r}"
  if not files:
    raise FileNotFoundError(
        f"no images found {where}; accepted: a folder or glob of "
        f"{'/'.join(e[1:] for e in IMAGE_EXTENSIONS)} files.")
  return sorted(files)


def _image_info(path: str) -> Tuple[int, int, int, str]:
  """(height, width, channels, mode) from the image header (Pillow), after
  `image_io.check_complete` (ImageFileError naming the file)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  image_io.check_complete(path)
  with Image.open(path) as img:
    width, height = img.size
    mode = img.mode
    channels = 3 if mode in _RGB_MODES else len(img.getbands())
  return height, width, channels, mode


def select_images(files: Sequence[str], patchsize: int,
                  channels: int = 3) -> List[str]:
  """Checks image headers; drops images smaller than the crop (one warning).

  Args:
    files: image paths (see `list_images`).
    patchsize: crop side in pixels; images with height or width below it are
      skipped.
    channels: the required channel count (3: RGB; palette images count as
      RGB).

  Returns:
    The files that can be cropped, in the given order.

  Raises:
    ValueError: some images are unreadable or truncated, or have another
      channel count (the message counts them and names up to three), or
      every image is smaller than the crop.
  """
  patchsize = check_int(patchsize, "patchsize", 1)
  infos, broken = [], []
  for f in files:
    try:
      infos.append((f,) + _image_info(f))
    except image_io.ImageFileError as e:
      broken.append(str(e))
  if broken:
    raise ValueError(
        f"{len(broken)} of {len(files)} image files cannot be used for "
        f"training: {'; '.join(broken[:3])}"
        f"{'; ...' if len(broken) > 3 else ''}")
  wrong = [(f, c, m) for f, _, _, c, m in infos if c != channels]
  if wrong:
    examples = ", ".join(f"{os.path.basename(f)} ({c} channel(s), mode {m})"
                         for f, c, m in wrong[:3])
    raise ValueError(
        f"{len(wrong)} of {len(infos)} images do not have {channels} channels "
        f"(RGB), e.g. {examples}; convert them to RGB (e.g. with Pillow's "
        "Image.convert('RGB')) or remove them.")
  kept = [f for f, h, w, _, _ in infos if h >= patchsize and w >= patchsize]
  small = len(infos) - len(kept)
  if not kept:
    raise ValueError(
        f"all {len(infos)} images are smaller than the {patchsize}x{patchsize} "
        "crop; use a smaller --patchsize or larger images.")
  if small:
    _LOG.warning(
        "skipped %d of %d images smaller than the %dx%d crop (training uses "
        "the other %d).", small, len(infos), patchsize, patchsize, len(kept))
  return kept


def _decode(path):
  img = tf.io.decode_image(tf.io.read_file(path), channels=3,
                           expand_animations=False)
  return tf.ensure_shape(img, [None, None, 3])


def _image_array(array, patchsize: int) -> np.ndarray:
  """Checks an in-memory image set: uint8 [N, H, W, 3], H and W >= patchsize."""
  if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3 \
      or array.shape[0] < 1:
    raise ValueError("images given as an array must be uint8 [N, H, W, 3] "
                     f"with N >= 1, got {array.dtype} {array.shape}.")
  if min(array.shape[1:3]) < patchsize:
    raise ValueError(f"the images are {array.shape[2]}x{array.shape[1]} px, "
                     f"smaller than the {patchsize}-px crops.")
  return array


def _source(spec, patchsize: int):
  """(number of images, index -> uint8 image tensor [H, W, 3]) of `spec`:
  image files (decoded when read) or a uint8 array [N, H, W, 3]."""
  if isinstance(spec, np.ndarray):
    table = tf.constant(_image_array(spec, patchsize))
    return len(spec), lambda i: tf.gather(table, i)
  files = select_images(list_images(spec), patchsize)
  table = tf.constant(files)
  return len(files), lambda i: _decode(tf.gather(table, i))


def random_crops(spec, patchsize: int, batch_size: int, seed: int = 0,
                 start_step: int = 0) -> tf.data.Dataset:
  """An endless, seeded stream of random crops of the images in `spec`.

  Args:
    spec: folder, glob or list of image files (see `list_images`), or the
      images themselves as a uint8 array [N, H, W, 3] (e.g. CIFAR-10 from
      `tfc_perception.data.cifar10`).
    patchsize: crop side in pixels (square crops).
    batch_size: crops per batch.
    seed: int in [0, 2**31); the file order and crop positions are functions
      of (seed, example index).
    start_step: index of the first batch (e.g. the training step to resume
      from); batch i is the same whatever `start_step` the stream began at.

  Returns:
    A `tf.data.Dataset` of uint8 tensors [batch_size, patchsize, patchsize, 3].

  Raises:
    FileNotFoundError, ValueError, OSError: see `list_images` and
      `select_images`; an array of another dtype or shape, or smaller than
      the crops.
  """
  patchsize = check_int(patchsize, "patchsize", 1)
  batch_size = check_int(batch_size, "batch_size", 1)
  seed = check_int(seed, "seed", 0)
  start_step = check_int(start_step, "start_step", 0)
  n, image = _source(spec, patchsize)
  first = start_step * batch_size  # index of the first example
  first_pass, offset = divmod(first, n)

  def one_pass(p):
    # Pass p over the files: a seeded permutation, and the global example
    # index of each position (which seeds its crop).
    perm = tf.argsort(tf.random.stateless_uniform(
        [n], seed=step_seed(seed, p)))
    index = p * n + tf.range(n, dtype=tf.int64)
    return tf.data.Dataset.from_tensor_slices((index, perm))

  def load(index, file_index):
    return tf.image.stateless_random_crop(
        image(file_index), [patchsize, patchsize, 3],
        seed=step_seed((seed + 1) % 2**31, index))

  ds = tf.data.Dataset.counter(first_pass).flat_map(one_pass).skip(offset)
  ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def center_crops(spec, patchsize: int, batch_size: int) -> tf.data.Dataset:
  """One central patchsize x patchsize crop per image (finite; validation).

  Args:
    spec: folder, glob or list of image files (see `list_images`), or a
      uint8 array [N, H, W, 3] of images.
    patchsize: crop side in pixels; smaller images are skipped (one warning;
      an array smaller than the crop is an error).
    batch_size: crops per batch (the last batch may be smaller).

  Returns:
    A finite `tf.data.Dataset` of uint8 [<=batch_size, patchsize, patchsize,
    3], in sorted file order (array order for an array).

  Raises:
    FileNotFoundError, ValueError, OSError: see `select_images`.
  """
  patchsize = check_int(patchsize, "patchsize", 1)
  batch_size = check_int(batch_size, "batch_size", 1)
  n, image = _source(spec, patchsize)

  def load(i):
    img = image(i)
    shape = tf.shape(img)
    top = (shape[0] - patchsize) // 2
    left = (shape[1] - patchsize) // 2
    return img[top:top + patchsize, left:left + patchsize, :]

  ds = tf.data.Dataset.range(n).map(
      load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def uniform_noise_images(patchsize: int, batch_size: int, seed: int = 0,
                         start_step: int = 0) -> tf.data.Dataset:
  """Endless batches of uniform-noise RGB images (Sec. 5.2, Fig. 19).

  Every pixel and channel is an independent uniform draw from {0, ..., 255};
  batch i uses the stateless seed (seed, i).

  Args:
    patchsize: image side in pixels.
    batch_size: images per batch.
    seed: int in [0, 2**31).
    start_step: index of the first batch.

  Returns:
    A `tf.data.Dataset` of uint8 [batch_size, patchsize, patchsize, 3].

  Raises:
    ValueError: non-positive sizes, negative seed or start_step.
  """
  patchsize = check_int(patchsize, "patchsize", 1)
  batch_size = check_int(batch_size, "batch_size", 1)
  seed = check_int(seed, "seed", 0)
  start_step = check_int(start_step, "start_step", 0)
  shape = [batch_size, patchsize, patchsize, 3]

  def noise(i):
    x = tf.random.stateless_uniform(shape, seed=step_seed(seed, i), minval=0,
                                    maxval=256, dtype=tf.int32)
    return tf.cast(x, tf.uint8)

  return tf.data.Dataset.counter(start_step).map(
      noise, num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True).prefetch(tf.data.AUTOTUNE)

