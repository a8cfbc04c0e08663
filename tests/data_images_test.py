"""Tests of tfc_perception.data.images: crops, skipping, noise, errors."""

import logging
import os

import numpy as np
import pytest
from PIL import Image

from tfc_perception.data import image_io
from tfc_perception.data import images


def _write(path, array):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array).save(path)
  return path


@pytest.fixture(name="folder")
def _folder(tmp_path):
  rng = np.random.default_rng(0)
  arrays = {
      "a.png": rng.integers(0, 256, [40, 50, 3], dtype=np.uint8),
      "b.png": rng.integers(0, 256, [36, 36, 3], dtype=np.uint8),
      "sub/c.png": rng.integers(0, 256, [48, 33, 3], dtype=np.uint8),
      "tiny.png": rng.integers(0, 256, [20, 60, 3], dtype=np.uint8),
  }
  for name, arr in arrays.items():
    _write(str(tmp_path / "imgs" / name), arr)
  (tmp_path / "imgs" / "notes.txt").write_text("not an image")
  return str(tmp_path / "imgs"), arrays


def _contains(image, crop):
  """Whether `crop` is a sub-window of `image`."""
  h, w = crop.shape[:2]
  for i in range(image.shape[0] - h + 1):
    for j in range(image.shape[1] - w + 1):
      if np.array_equal(image[i:i + h, j:j + w], crop):
        return True
  return False


def test_list_images_folder_glob_and_list(folder):
  root, _ = folder
  files = images.list_images(root)
  assert [os.path.relpath(f, root) for f in files] == [
      "a.png", "b.png", os.path.join("sub", "c.png"), "tiny.png"]
  assert images.list_images(os.path.join(root, "*.png")) == [
      os.path.join(root, n) for n in ("a.png", "b.png", "tiny.png")]
  assert images.list_images([files[1], files[0]]) == files[:2]


def test_random_crops_are_windows_of_the_images_and_skip_small_ones(
    folder, caplog):
  root, arrays = folder
  with caplog.at_level(logging.WARNING):
    ds = images.random_crops(root, patchsize=32, batch_size=3, seed=5)
  warnings = [r for r in caplog.records if "skipped" in r.getMessage()]
  assert len(warnings) == 1
  assert "skipped 1 of 4 images smaller than the 32x32 crop" in (
      warnings[0].getMessage())
  batches = [b.numpy() for b in ds.take(3)]
  assert batches[0].shape == (3, 32, 32, 3) and batches[0].dtype == np.uint8
  usable = [arrays[k] for k in ("a.png", "b.png", "sub/c.png")]
  crops = np.concatenate(batches)
  # Each pass over the 3 usable images visits every image exactly once.
  for p in range(3):
    owners = [next(i for i, im in enumerate(usable) if _contains(im, c))
              for c in crops[3 * p:3 * p + 3]]
    assert sorted(owners) == [0, 1, 2]
  # Crop positions vary between passes (a.png has 9 x 19 positions).
  a_crops = [c for c in crops if _contains(usable[0], c)]
  assert len({c.tobytes() for c in a_crops}) > 1


def test_random_crops_are_reproducible_and_seekable(folder):
  root, _ = folder
  take = lambda ds, n: [b.numpy() for b in ds.take(n)]
  a = take(images.random_crops(root, 16, 2, seed=1), 5)
  b = take(images.random_crops(root, 16, 2, seed=1), 5)
  c = take(images.random_crops(root, 16, 2, seed=2), 5)
  for u, v in zip(a, b):
    np.testing.assert_array_equal(u, v)
  assert any(not np.array_equal(u, v) for u, v in zip(a, c))
  # Starting at step 3 gives batches 3 and 4 (the stream crosses a pass
  # boundary: 4 images, 2 per batch).
  resumed = take(images.random_crops(root, 16, 2, seed=1, start_step=3), 2)
  np.testing.assert_array_equal(resumed[0], a[3])
  np.testing.assert_array_equal(resumed[1], a[4])


def test_an_image_array_gives_the_crops_of_the_same_images_as_files(
    tmp_path):
  """In-memory images (CIFAR-10 batches) and the same images as files give
  identical streams: same permutation per pass, same crop positions."""
  rng = np.random.default_rng(3)
  array = rng.integers(0, 256, [5, 20, 24, 3], dtype=np.uint8)
  for i, im in enumerate(array):
    _write(str(tmp_path / "f" / f"{i}.png"), im)
  take = lambda ds, n: np.concatenate([b.numpy() for b in ds.take(n)])
  from_array = take(images.random_crops(array, 16, 2, seed=4), 6)
  from_files = take(images.random_crops(str(tmp_path / "f"), 16, 2, seed=4), 6)
  np.testing.assert_array_equal(from_array, from_files)
  assert all(any(_contains(im, c) for im in array) for c in from_array)
  resumed = take(images.random_crops(array, 16, 2, seed=4, start_step=4), 2)
  np.testing.assert_array_equal(resumed, from_array[8:12])
  centre = np.concatenate([b.numpy() for b in images.center_crops(array, 16, 2)])
  np.testing.assert_array_equal(centre, array[:, 2:18, 4:20])
  with pytest.raises(ValueError, match=r"uint8 \[N, H, W, 3\]"):
    images.random_crops(array.astype(np.float32), 16, 2)
  with pytest.raises(ValueError, match="smaller than the 32-px crops"):
    images.random_crops(array, 32, 2)

def test_center_crops(folder):
  root, arrays = folder
  batches = [b.numpy() for b in images.center_crops(root, 32, batch_size=2)]
  assert [b.shape[0] for b in batches] == [2, 1]
  a = arrays["a.png"]
  np.testing.assert_array_equal(batches[0][0], a[4:36, 9:41])


def test_uniform_noise_images():
  ds = images.uniform_noise_images(16, 4, seed=3)
  a, b = [x.numpy() for x in ds.take(2)]
  assert a.shape == (4, 16, 16, 3) and a.dtype == np.uint8
  assert a.min() == 0 and a.max() == 255
  assert abs(a.mean() - 127.5) < 3
  assert not np.array_equal(a, b)
  again = next(iter(images.uniform_noise_images(16, 4, seed=3, start_step=1)))
  np.testing.assert_array_equal(again.numpy(), b)
  # Uniform: each of 4 bins of pixel values holds about a quarter.
  hist = np.histogram(np.concatenate([a, b]), bins=4, range=(0, 256))[0]
  np.testing.assert_allclose(hist / hist.sum(), 0.25, atol=0.02)


def test_no_images_found(tmp_path):
  with pytest.raises(FileNotFoundError, match="no images found"):
    images.random_crops(str(tmp_path), 8, 1)
  with pytest.raises(FileNotFoundError, match="no images found"):
    images.list_images(str(tmp_path / "*.png"))


def test_wrong_channel_count(tmp_path):
  _write(str(tmp_path / "rgb.png"), np.zeros([20, 20, 3], np.uint8))
  _write(str(tmp_path / "gray.png"), np.zeros([20, 20], np.uint8))
  _write(str(tmp_path / "rgba.png"), np.zeros([20, 20, 4], np.uint8))
  with pytest.raises(ValueError, match=r"2 of 3 images do not have 3 channels"
                     r".*gray.png \(1 channel"):
    images.random_crops(str(tmp_path), 8, 1)


def test_all_images_too_small(tmp_path):
  _write(str(tmp_path / "a.png"), np.zeros([20, 20, 3], np.uint8))
  with pytest.raises(ValueError, match="all 1 images are smaller than the "
                     "32x32 crop"):
    images.random_crops(str(tmp_path), 32, 1)


def test_unreadable_image(tmp_path):
  (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
  with pytest.raises(ValueError, match="broken.png: cannot read the image"):
    images.random_crops(str(tmp_path), 8, 1)


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_truncated_images_are_named_before_any_decoding(tmp_path, ext):
  """Issue 12: a truncated file (header intact) is found when the file list
  is built, with its name, not mid-epoch as 'Invalid PNG data'."""
  rng = np.random.default_rng(0)
  for i in range(3):
    _write(str(tmp_path / f"{i}.{ext}"),
           rng.integers(0, 256, [40, 40, 3]).astype(np.uint8))
  full = (tmp_path / f"1.{ext}").read_bytes()
  (tmp_path / f"1.{ext}").write_bytes(full[:len(full) // 2])
  with pytest.raises(ValueError, match=rf"1 of 3 image files cannot be used "
                     rf"for training: .*1\.{ext} is truncated"):
    images.random_crops(str(tmp_path), 8, 1)
  with pytest.raises(ValueError, match=rf"1\.{ext} is truncated"):
    images.center_crops(str(tmp_path), 8, 1)


def test_the_completeness_check_accepts_the_shared_images():
  """No false alarms on real files (Kodak PNGs, CIFAR-10 JPEGs)."""
  import glob  # pylint: disable=g-import-not-at-top
  from conftest import shared_path  # pylint: disable=g-import-not-at-top
  files = sorted(glob.glob(os.path.join(shared_path("kodak"), "*.png")))
  files += sorted(glob.glob(os.path.join(
      shared_path("cifar10-test-jpeg"), "test", "*", "*.jpg")))[::10]
  assert len(files) >= 1000
  for f in files:
    image_io.check_complete(f)


@pytest.mark.parametrize("kwargs", [dict(patchsize=0), dict(batch_size=0),
                                    dict(seed=-1), dict(start_step=-2)])
def test_bad_arguments(kwargs):
  args = dict(patchsize=8, batch_size=1, seed=0, start_step=0)
  args.update(kwargs)
  with pytest.raises(ValueError, match=list(kwargs)[0]):
    images.uniform_noise_images(**args)
