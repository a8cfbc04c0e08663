"""Distances between image files: one pair, or folders of pairs matched by
file name (the library side of `bin/evaluate distances`)."""

import functools
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tfc_perception import _io
from tfc_perception import _validation

__all__ = ["evaluate_pairs", "load_image", "match_pairs", "DEFAULT_DISTANCES"]

DEFAULT_DISTANCES = ("psnr", "mse", "msssim", "nlpd")
IMAGE_EXTENSIONS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".ppm",
                    ".pgm", ".npy")


def load_image(path: str) -> np.ndarray:
  """Reads an image file as an [H, W, C] array.

  8-bit image files give uint8 with 1 (greyscale) or 3 channels
  (`tfc_perception.data.image_io.read_image`: palette images are converted to
  RGB, opaque alpha is dropped, transparency is refused, as in bin/codec).
  .npy files are returned as stored ([H, W] gets a channel axis); float
  arrays then need `max_val`.

  Raises:
    FileNotFoundError: missing file.
    ValueError: unreadable file, transparency, or not 8-bit.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"image not found: {path}")
  if path.lower().endswith(".npy"):
    array = np.load(path, allow_pickle=False)
    return array[..., None] if array.ndim == 2 else array
  from tfc_perception.data import image_io  # pylint: disable=g-import-not-at-top
  return image_io.read_image(path, keep_grey=True)


def match_pairs(reference: str, distorted: str
                ) -> Tuple[List[Tuple[str, str, str]], List[str]]:
  """Pairs two files, or the files of two folders by file name.

  Folders: a distorted file is paired with the reference file of the same
  name without extension (so ref/a.png pairs with dist/a.png or dist/a.bmp).

  Returns:
    (pairs, unmatched): pairs as (name, reference path, distorted path),
    sorted by name; unmatched distorted file names.

  Raises:
    FileNotFoundError: a path does not exist.
    ValueError: a file given with a folder, or folders with no pair.
  """
  for path in (reference, distorted):
    if not os.path.exists(path):
      raise FileNotFoundError(f"not found: {path}")
  ref_dir, dist_dir = os.path.isdir(reference), os.path.isdir(distorted)
  if not ref_dir and not dist_dir:
    return [(os.path.basename(distorted), reference, distorted)], []
  if ref_dir != dist_dir:
    raise ValueError("--reference and --distorted must both be files or both "
                     f"be folders; got {reference!r} and {distorted!r}.")

  def listing(folder):
    out = {}
    for name in sorted(os.listdir(folder)):
      stem, ext = os.path.splitext(name)
      if ext.lower() in IMAGE_EXTENSIONS and os.path.isfile(
          os.path.join(folder, name)):
        if stem in out:
          raise ValueError(f"{folder} has two images named {stem!r} "
                           f"({out[stem]} and {name}); pairs are matched by "
                           "name without extension.")
        out[stem] = name
    return out

  refs, dists = listing(reference), listing(distorted)
  pairs = [(dists[s], os.path.join(reference, refs[s]),
            os.path.join(distorted, dists[s])) for s in sorted(dists)
           if s in refs]
  unmatched = [dists[s] for s in sorted(dists) if s not in refs]
  if not pairs:
    raise ValueError(f"no pairs: none of the {len(dists)} images in "
                     f"{distorted} has a namesake in {reference} (pairs are "
                     "matched by file name without extension).")
  return pairs, unmatched


def _same_scale(x, y, max_val, name, ref_path, dist_path):
  """(x, y, max_val for the distances) with both images in one scale.

  Two 8-bit images: as they are (peak 255; `max_val` is not used). An 8-bit
  image with a float one: `max_val` (the float image's peak) is required and
  the 8-bit image is scaled to [0, max_val]. Two float images: `max_val`.
  """
  eight_bit = [a.dtype == np.uint8 for a in (x, y)]
  if all(eight_bit):
    return x, y, None
  if any(eight_bit):
    if max_val is None:
      which = ref_path if eight_bit[0] else dist_path
      other = dist_path if eight_bit[0] else ref_path
      raise ValueError(
          f"{name}: {which} is an 8-bit image and {other} holds "
          f"{(y if eight_bit[0] else x).dtype} values; give max_val "
          "(--max_val), the peak value of the float image, to compare them "
          "(the 8-bit image is then scaled to [0, max_val]).")
    x, y = (a.astype(np.float32) * np.float32(max_val / 255.0)
            if a.dtype == np.uint8 else a for a in (x, y))
  return x, y, max_val


def evaluate_pairs(reference: str, distorted: str,
                   names: Sequence[str] = DEFAULT_DISTANCES,
                   max_val: Optional[float] = None,
                   nlpd_variant: str = "laparra2016",
                   nlpd_levels: int = 6,
                   msssim_scales: Optional[int] = None,
                   output: Optional[str] = None,
                   progress: bool = True,
                   overwrite: bool = False):
  """Computes distances between image pairs (files, or folders matched by
  name) and optionally writes them as CSV.

  Args:
    reference: reference image file or folder.
    distorted: distorted image file or folder.
    names: metrics of `tfc_perception.distances.registry` that apply to
      images ("psnr" in dB, "mse" in the units of the images (0-255 for 8-bit
      files), "msssim" (tf.image.ssim_multiscale), "nlpd", "nlpd_rgb",
      "nlpd2017", "euclidean", ...).
    max_val: peak value for float .npy images (ignored when both images of
      a pair are 8-bit files; an 8-bit image paired with a float one is
      scaled to [0, max_val]).
    nlpd_variant: "laparra2016" or "laparra2017", the variant of "nlpd"
      (the other NLPD names fix their variant).
    nlpd_levels: NLPD pyramid levels (every NLPD).
    msssim_scales: MS-SSIM scales (None: 5, which needs >= 161 px).
    output: CSV path (written atomically), or None. Never an input image or
      inside an input folder; an existing file only with `overwrite`.
    progress: show a tqdm progress bar for several pairs.
    overwrite: replace an existing `output`.

  Returns:
    pandas.DataFrame with columns name, reference, distorted, height, width
    and one column per distance (its canonical name; "nlpd" is named
    nlpd_<variant>);
    `df.attrs["unmatched"]` lists distorted files without a reference.

  Raises:
    FileNotFoundError, ValueError: missing files, no pairs, unknown distance
      names, images of different sizes, or images invalid for a distance.
  """
  import pandas as pd  # pylint: disable=g-import-not-at-top
  import tqdm  # pylint: disable=g-import-not-at-top
  from tfc_perception import distances  # pylint: disable=g-import-not-at-top

  names = [distances.registry.canonical(n, "distance") for n in names
           if n.strip()]
  if not names:
    raise ValueError("no distances given; accepted: "
                     f"{', '.join(distances.registry.names(images=True))}.")
  _validation.check_choice(nlpd_variant, "NLPD variant",
                           distances.nlpd_module.VARIANTS)
  fns, columns = {}, {}
  for n in names:
    metric = distances.registry.get(n)
    metric.check_applies(vectors=False, density=False)
    options = {}
    if metric.family == "ms_ssim":
      options["num_scales"] = msssim_scales
    elif metric.family == "nlpd":
      options["num_levels"] = nlpd_levels
      if n == "nlpd":
        options["variant"] = nlpd_variant
    fn = functools.partial(metric.function, **options)
    if metric.takes_max_val:
      fns[n] = lambda x, y, m, fn=fn: fn(x, y, m)
    else:  # Euclidean metrics: float, in the images' units.
      fns[n] = lambda x, y, m, fn=fn: fn(x.astype(np.float32),
                                         y.astype(np.float32))
    columns[n] = f"nlpd_{nlpd_variant}" if n == "nlpd" else n
  pairs, unmatched = match_pairs(reference, distorted)
  _io.check_output_path(output, {"--reference": reference,
                                 "--distorted": distorted}, "--output",
                        overwrite=overwrite)
  rows: List[Dict] = []
  for name, ref_path, dist_path in tqdm.tqdm(
      pairs, desc="pairs", disable=not progress or len(pairs) < 2):
    x, y, m = _same_scale(load_image(ref_path), load_image(dist_path),
                          max_val, name, ref_path, dist_path)
    if x.shape != y.shape:
      if x.shape[:2] == y.shape[:2] and {x.shape[-1], y.shape[-1]} == {1, 3}:
        # Greyscale vs colour: compare both as RGB.
        x, y = (np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a
                for a in (x, y))
      else:
        raise ValueError(f"{name}: the reference {ref_path} is {x.shape} and "
                         f"the distorted image {dist_path} is {y.shape}; "
                         "pairs must have the same size.")
    row = {"name": name, "reference": ref_path, "distorted": dist_path,
           "height": x.shape[0], "width": x.shape[1]}
    for n in names:
      try:
        row[columns[n]] = float(fns[n](x[None], y[None], m)[0])
      except ValueError as e:
        raise ValueError(f"{name}: {n}: {e}") from e
    rows.append(row)
  df = pd.DataFrame(rows)
  df.attrs["unmatched"] = unmatched
  if output:
    _io.write_csv(output, df)
  return df
