"""A synthetic IQA dataset in TID2013's layout for the tests (TID2013 itself is
not available on these machines: ../shared holds one distorted image).

`make_tid_layout(root)` writes reference images with TID2013's file-name case
quirks, AWGN (type 01) and blur (type 08) distortions at 5 levels, and MOS
files whose rank order is known (MOS falls with the distortion level)."""

import os

import numpy as np
from PIL import Image

H, W = 80, 96
NOISE_SIGMA = {1: 4.0, 2: 9.0, 3: 15.0, 4: 22.0, 5: 30.0}   # type 01 (AWGN)
BLUR_STEPS = {1: 1, 2: 2, 3: 3, 4: 5, 5: 8}                 # type 08 (blur)


def _reference(seed):
  rng = np.random.default_rng(seed)
  small = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
  img = Image.fromarray(small).resize((W, H), Image.BICUBIC)
  texture = rng.normal(0, 12, (H, W, 3))
  return np.clip(np.asarray(img, np.float64) + texture, 0, 255).astype(
      np.uint8)


def _blur(x, steps):
  y = x.astype(np.float64)
  for _ in range(steps):  # repeated 3x3 box blur (edge padded)
    p = np.pad(y, ((1, 1), (1, 1), (0, 0)), mode="edge")
    y = sum(p[i:i + H, j:j + W] for i in range(3) for j in range(3)) / 9.0
  return np.round(y).astype(np.uint8)


def make_tid_layout(root, n_refs=3):
  """TID2013-style folder: I01.BMP, I02.BMP, lower-case i03.bmp; distorted
  iRR_TT_L with some names upper case on disk and/or in the MOS file. MOS
  decreases with the distortion level within each type; the levels of
  different references are interleaved so all MOS are distinct."""
  os.makedirs(os.path.join(root, "reference_images"))
  os.makedirs(os.path.join(root, "distorted_images"))
  lines, stds = [], []
  for r in range(1, n_refs + 1):
    ref = _reference(r)
    ref_name = f"I{r:02d}.BMP" if r < n_refs else f"i{r:02d}.bmp"
    Image.fromarray(ref).save(os.path.join(root, "reference_images",
                                           ref_name))
    rng = np.random.default_rng(100 + r)
    for t in (1, 8):
      for lv in range(1, 6):
        if t == 1:
          sigma = NOISE_SIGMA[lv] + 0.5 * r
          dist = np.clip(np.round(ref + rng.normal(0, sigma, ref.shape)), 0,
                         255).astype(np.uint8)
          mos = 7.0 - 0.15 * sigma
        else:
          dist = _blur(ref, BLUR_STEPS[lv])
          mos = 7.0 - 0.6 * BLUR_STEPS[lv] - 0.05 * r
        listed = f"i{r:02d}_{t:02d}_{lv}.bmp"
        on_disk = listed.upper() if lv == 1 else listed
        Image.fromarray(dist).save(os.path.join(root, "distorted_images",
                                                on_disk))
        lines.append(f"{mos:.5f} "
                     f"{listed.upper() if lv == 1 and t == 1 else listed}")
        stds.append("0.10000")
  with open(os.path.join(root, "mos_with_names.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
  with open(os.path.join(root, "mos_std.txt"), "w") as f:
    f.write("\n".join(stds) + "\n")
