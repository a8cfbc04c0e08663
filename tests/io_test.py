"""Tests of atomic writing and manifests."""

import json
import os

import pytest

from tfc_perception import _io


def test_atomic_write_leaves_no_partial_file(tmp_path):
  path = tmp_path / "out.json"
  _io.write_json(path, {"a": 1})
  with pytest.raises(RuntimeError):
    with _io.atomic_open(path, "w") as f:
      f.write("{broken")
      raise RuntimeError("interrupted")
  assert json.loads(path.read_text()) == {"a": 1}
  assert sorted(os.listdir(tmp_path)) == ["out.json"]


def test_write_csv_and_manifest(tmp_path):
  _io.write_csv(tmp_path / "t.csv", [{"x": 1, "y": 2.5}, {"x": 2, "z": "q"}])
  lines = (tmp_path / "t.csv").read_text().splitlines()
  assert lines[0] == "x,y,z"
  assert lines[2] == "2,,q"
  m = _io.make_manifest({"seed": 3}, wall_time_s=1.5)
  assert m["config"] == {"seed": 3}
  assert m["versions"]["tensorflow"].startswith("2.14")
  json.dumps(m)
