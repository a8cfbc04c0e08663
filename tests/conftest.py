"""Shared test fixtures: the location of ../shared/data (tests that need it skip
with a clear reason when it is absent) and quiet TensorFlow logging."""

import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

# Before any test module imports TensorFlow, as a user's script would:
# oneDNN on unless TF_ENABLE_ONEDNN_OPTS is set (tfc_perception/_onednn.py).
import tfc_perception  # noqa: E402,F401  pylint: disable=g-import-not-at-top

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


def synthetic_photo(height=512, width=768, seed=0):
  """A deterministic uint8 RGB image with the ingredients of a photograph
  (smooth shading, edges of flat regions, fine texture, sensor noise), for
  the codec and model tests when ../shared (Kodak) is absent."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
  img = np.zeros((height, width, 3))
  for c in range(3):  # smooth illumination
    img[..., c] = 110 + 50 * np.sin(xx / (90 + 15 * c)) * np.cos(
        yy / (70 + 10 * c))
  for _ in range(12):  # flat objects with sharp edges
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    r = rng.uniform(20, 120)
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
    img[mask] = rng.uniform(20, 235, 3)
  coarse = rng.normal(0, 1, (height // 8 + 1, width // 8 + 1, 3))
  texture = np.kron(coarse, np.ones((8, 8, 1)))[:height, :width]
  img += 12 * texture + rng.normal(0, 3, img.shape)
  return np.clip(np.round(img), 0, 255).astype(np.uint8)


def kodak_image(name="kodim01.png"):
  """A Kodak image from ../shared/data/kodak, or, when the shared data is
  absent, `synthetic_photo` of the same 512x768 size (so the model tests
  still run; only tests that compare against real data skip)."""
  path = os.path.join(SHARED_DATA, "kodak", name)
  if os.path.exists(path):
    return np.asarray(Image.open(path).convert("RGB"))
  return synthetic_photo(seed=sum(map(ord, name)))


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
