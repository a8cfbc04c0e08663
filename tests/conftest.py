"""Shared test fixtures: the location of ../shared/data (tests that need it skip
with a clear reason when it is absent) and quiet TensorFlow logging."""

import os

import numpy as np
import pytest
from PIL import Image

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


@pytest.fixture(scope="session")
def kodak_like(tmp_path_factory):
  """Three 192x192 'kodimNN.png' images (large enough for MS-SSIM training
  crops of 176 px), so the Kodak experiments run without ../shared."""
  folder = tmp_path_factory.mktemp("kodak")
  rng = np.random.default_rng(5)
  yy, xx = np.mgrid[0:192, 0:192]
  for i in range(1, 4):
    img = np.stack([128 + 80 * np.sin(xx / (6 + i) + c) * np.cos(yy / 9)
                    for c in range(3)], -1) + rng.normal(0, 6, (192, 192, 3))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
        folder / f"kodim{i:02d}.png")
  return str(folder)
