"""Shared test fixtures: the location of ../shared/data (tests that need it skip
with a clear reason when it is absent) and quiet TensorFlow logging."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get(
    "TFC_PERCEPTION_SHARED_DATA",
    os.path.join(os.path.dirname(REPO_ROOT), "shared", "data"))


def shared_path(*parts):
  """Path under ../shared/data, or pytest.skip with the reason if absent."""
  path = os.path.join(SHARED_DATA, *parts)
  if not os.path.exists(path):
    pytest.skip(f"shared data not available: {path} is absent (set "
                "TFC_PERCEPTION_SHARED_DATA to the shared/data folder)")
  return path
