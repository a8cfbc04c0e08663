"""Tests of tfc_perception._onednn: oneDNN on by default unless the user
chose, one warning line when TensorFlow was imported first without it."""

import ast
import os
import re
import subprocess
import sys

import pytest

from tfc_perception import _onednn

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_PROBE = ("import os, sys\n"
          "{before}\n"
          "import tfc_perception\n"
          "from tensorflow.python.util import _pywrap_util_port as p\n"
          "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), p.IsMklEnabled())\n")


def _probe(before="", **env):
  environ = {k: v for k, v in os.environ.items()
             if k != "TF_ENABLE_ONEDNN_OPTS"}
  environ.update(env, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  out = subprocess.run([sys.executable, "-c", _PROBE.format(before=before)],
                       env=environ, capture_output=True, text=True,
                       timeout=300, check=True)
  return out.stdout.split(), out.stderr


def test_import_turns_onednn_on():
  # (A value the user set is kept: test_decide; one process less.)
  assert _probe()[0] == ["1", "True"]


def test_tensorflow_imported_first_is_left_alone():
  # TF decides at its import; this CPU's default (oneDNN on with
  # AVX512-VNNI) is kept and not warned about. (The warning case, an AVX2
  # CPU, is test_warning_is_one_line_with_the_measured_consequence.)
  (value, _), stderr = _probe("import tensorflow")
  assert value == "None"
  assert "tfc_perception" not in stderr


@pytest.mark.parametrize("tf_imported,environ,mkl,expected", [
    (False, {}, None, "set"),
    (False, {"TF_ENABLE_ONEDNN_OPTS": "0"}, None, None),
    (False, {"TF_ENABLE_ONEDNN_OPTS": "1"}, None, None),
    (True, {}, True, None),
    (True, {}, False, "warn"),       # an AVX2 CPU, TF imported first
    (True, {}, None, None),          # a TF build that does not say
    (True, {"TF_ENABLE_ONEDNN_OPTS": "0"}, False, None),
])
def test_decide(tf_imported, environ, mkl, expected):
  assert _onednn.decide(tf_imported, environ, mkl) == expected


def test_warning_is_one_line_with_the_measured_consequence(monkeypatch,
                                                           caplog):
  monkeypatch.setattr(_onednn, "_done", False)
  monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
  monkeypatch.setattr(_onednn, "_mkl_enabled", lambda: False)
  import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  with caplog.at_level("WARNING", logger="tfc_perception"):
    assert _onednn.enable() == "warn"
    assert _onednn.enable() is None  # once per process
  lines = [r.getMessage() for r in caplog.records]
  assert len(lines) == 1 and "\n" not in lines[0]
  assert _onednn.CONSEQUENCE in lines[0]
  assert re.search(r"\d(\.\d)?x slower", lines[0])
  assert "TF_ENABLE_ONEDNN_OPTS=1" in lines[0]
  assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ


def test_entry_points_import_tfc_perception_before_tensorflow():
  # bin/*: the first import after os/sys is the package (and with it the
  # oneDNN setting); run.sh exports the same default.
  for name in sorted(os.listdir(os.path.join(REPO_ROOT, "bin"))):
    with open(os.path.join(REPO_ROOT, "bin", name)) as f:
      tree = ast.parse(f.read())
    modules = [n.module if isinstance(n, ast.ImportFrom) else n.names[0].name
               for n in ast.walk(tree)
               if isinstance(n, (ast.Import, ast.ImportFrom))]
    modules = [m for m in modules if m not in ("os", "sys")]
    assert modules and modules[0].startswith("tfc_perception"), (name,
                                                                 modules)
  with open(os.path.join(REPO_ROOT, "run.sh")) as f:
    assert "TF_ENABLE_ONEDNN_OPTS=${TF_ENABLE_ONEDNN_OPTS:-1}" in f.read()
