"""Tests of atomic writing and manifests."""

import csv
import datetime
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tfc_perception import _io


def test_atomic_write_leaves_no_partial_file(tmp_path):
  path = tmp_path / "out.json"
  path.write_bytes(b'{"old": true}\n')
  seen = []
  with pytest.raises(RuntimeError):
    with _io.atomic_open(path, "w") as f:
      f.write("{broken")
      f.flush()
      # While writing, the bytes go to a temporary file next to the target;
      # the target still holds its old bytes.
      seen = sorted(os.listdir(tmp_path))
      assert path.read_bytes() == b'{"old": true}\n'
      raise RuntimeError("interrupted")
  assert len(seen) == 2 and seen[1] == "out.json"
  assert seen[0].startswith(".out.json.") and seen[0].endswith(".tmp")
  assert path.read_bytes() == b'{"old": true}\n'
  assert sorted(os.listdir(tmp_path)) == ["out.json"]
  # A completed write replaces the file in one rename: same name, new inode.
  inode = path.stat().st_ino
  _io.write_bytes(path, b"new")
  assert path.read_bytes() == b"new" and path.stat().st_ino != inode
  assert sorted(os.listdir(tmp_path)) == ["out.json"]


def test_written_files_get_the_mode_of_a_plain_open(tmp_path):
  # tempfile makes 0600 files; the package's files must be readable by
  # whoever could read a file made with open() under the same umask.
  plain = tmp_path / "plain"
  plain.write_text("x")
  _io.write_text(tmp_path / "ours", "x")
  assert (tmp_path / "ours").stat().st_mode == plain.stat().st_mode
  folder = _io.make_temp_dir(str(tmp_path), "d")
  os.mkdir(tmp_path / "plain_dir")
  assert os.stat(folder).st_mode == (tmp_path / "plain_dir").stat().st_mode


def test_write_json_converts_numpy_paths_and_dates(tmp_path):
  when = datetime.datetime(2022, 4, 25, 12, 30)
  _io.write_json(tmp_path / "a.json", {
      "f32": np.float32(0.1), "i64": np.int64(7), "arr": np.arange(3) / 4,
      "path": pathlib.Path("/x/y"), "when": when, "nan": float("nan")})
  text = (tmp_path / "a.json").read_text()
  back = json.loads(text)
  assert back["f32"] == float(np.float32(0.1)) != 0.1
  assert back["i64"] == 7 and isinstance(back["i64"], int)
  assert back["arr"] == [0.0, 0.25, 0.5]
  assert back["path"] == "/x/y" and back["when"] == "2022-04-25T12:30:00"
  assert np.isnan(back["nan"]) and '"nan": NaN' in text
  assert _io.read_json(tmp_path / "a.json")["arr"] == back["arr"]
  with pytest.raises(TypeError, match="set is not JSON serialisable"):
    _io.write_json(tmp_path / "b.json", {"s": {1}})
  assert not os.path.exists(tmp_path / "b.json")


def test_write_csv_rows_and_dataframe(tmp_path):
  rows = [{"x": 1, "y": 2.5}, {"x": 2, "z": "a,b"}]
  _io.write_csv(tmp_path / "t.csv", rows)
  with open(tmp_path / "t.csv", newline="", encoding="utf-8") as f:
    back = list(csv.DictReader(f))
  # Columns in first-seen order; missing cells empty; commas quoted.
  assert back == [{"x": "1", "y": "2.5", "z": ""},
                  {"x": "2", "y": "", "z": "a,b"}]
  import pandas as pd  # pylint: disable=g-import-not-at-top
  frame = pd.DataFrame({"a": [0.125, 3.0], "b": ["p", "q"]})
  _io.write_csv(tmp_path / "f.csv", frame)
  pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "f.csv"), frame)


def test_manifest_records_what_produced_a_result(tmp_path):
  config = {"seed": 3, "lmbda": [0.01, 0.1]}
  m = _io.make_manifest(config, wall_time_s=1.5, results="r.json")
  config["seed"] = 4  # the manifest holds a copy
  assert m["config"] == {"seed": 3, "lmbda": [0.01, 0.1]}
  assert m["wall_time_s"] == 1.5 and m["results"] == "r.json"
  assert m["argv"] == sys.argv
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import scipy  # pylint: disable=g-import-not-at-top
  assert m["versions"]["tensorflow"] == tf.__version__
  assert m["versions"]["scipy"] == scipy.__version__
  assert datetime.datetime.fromisoformat(m["finished_utc"]).tzinfo
  json.loads(json.dumps(m))  # JSON as it is, no default= needed


def test_git_commit_names_the_checkout_and_its_dirty_state(tmp_path):
  repo = tmp_path / "repo"
  repo.mkdir()
  env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
             GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")

  def git(*args):
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()

  git("init", "-q")
  (repo / "f.txt").write_text("1")
  git("add", "f.txt")
  git("commit", "-q", "-m", "one")
  head = git("rev-parse", "HEAD")
  assert _io.git_commit(str(repo)) == head
  (repo / "f.txt").write_text("2")
  assert _io.git_commit(str(repo)) == head + "-dirty"
  (repo / "untracked.txt").write_text("u")  # untracked files do not count
  git("checkout", "-q", "f.txt")
  assert _io.git_commit(str(repo)) == head
  outside = tmp_path / "not_a_repo"
  outside.mkdir()
  assert _io.git_commit(str(outside)) is None
