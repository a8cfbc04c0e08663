"""Results folders never go into the data they are computed from (issue 12's
audit of every tool for outputs that overwrite inputs)."""

import os

import pytest

from tid_layout import make_tid_layout
from tfc_perception import _io
from tfc_perception.evaluation import iqa
from tfc_perception.evaluation import rd


def test_check_output_path(tmp_path):
  (tmp_path / "data").mkdir()
  (tmp_path / "data" / "a.png").write_bytes(b"x")
  os.symlink(tmp_path / "data", tmp_path / "link")
  inputs = {"--data": str(tmp_path / "data")}
  for bad in ("data", "data/out", "link", "link/a.png"):
    with pytest.raises(ValueError, match="input --data"):
      _io.check_output_path(str(tmp_path / bad), inputs, "--output")
  _io.check_output_path(str(tmp_path / "results"), inputs, "--output")
  _io.check_output_path(str(tmp_path / "data2"), inputs, "--output")
  (tmp_path / "old.csv").write_text("mine")
  with pytest.raises(ValueError, match="exists"):
    _io.check_output_path(str(tmp_path / "old.csv"), {}, overwrite=False)
  _io.check_output_path(str(tmp_path / "old.csv"), {}, overwrite=True)


def test_rd_and_iqa_refuse_an_output_inside_their_data(tmp_path):
  root = str(tmp_path / "tid")
  make_tid_layout(root, n_refs=1)
  before = sorted(os.listdir(root))
  images = os.path.join(root, "reference_images")
  with pytest.raises(ValueError, match="--output .* is the input --data"):
    rd.evaluate_rd(images, images, models=[], progress=False)
  dataset = iqa.load_dataset("tid2013", root)
  with pytest.raises(ValueError, match="--output .* input --root folder"):
    iqa.evaluate_iqa(dataset, os.path.join(root, "results"),
                     distances=["psnr"], progress=False)
  assert sorted(os.listdir(root)) == before
