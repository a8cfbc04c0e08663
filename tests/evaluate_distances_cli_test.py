"""End-to-end tests of `bin/evaluate distances` (through subprocess) and of
the library function behind it."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
from PIL import Image
import tensorflow as tf

from conftest import REPO_ROOT
from tfc_perception import distances
from tfc_perception.distances import pairs


def _write_pairs(root, n=2, size=(170, 165)):
  rng = np.random.default_rng(0)
  ref, dist = os.path.join(root, "ref"), os.path.join(root, "dist")
  os.makedirs(ref)
  os.makedirs(dist)
  images = []
  for i in range(n):
    x = rng.integers(0, 256, size + (3,), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 8 * (i + 1), x.shape), 0, 255).astype(
        np.uint8)
    Image.fromarray(x).save(os.path.join(ref, f"img{i}.png"))
    Image.fromarray(y).save(os.path.join(dist, f"img{i}.png"))
    images.append((x, y))
  Image.fromarray(images[0][1]).save(os.path.join(dist, "orphan.png"))
  return ref, dist, images


def _run(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "bin", "evaluate"),
       "distances", *args], capture_output=True, text=True, env=env,
      timeout=300, check=False)


class EvaluateDistancesCLITest(tf.test.TestCase):

  def test_folders_table_and_csv(self):
    root = self.get_temp_dir()
    ref, dist, images = _write_pairs(root)
    out = os.path.join(root, "sub", "t.csv")
    proc = _run("--reference", ref, "--distorted", dist,
                "--distances", "psnr,mse,msssim,nlpd", "--output", out)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    self.assertIn("nlpd_laparra2016", proc.stdout)
    self.assertIn("orphan.png", proc.stdout)  # reported as unmatched
    df = pd.read_csv(out)
    self.assertEqual(list(df["name"]), ["img0.png", "img1.png"])
    x = np.stack([a for a, _ in images])
    y = np.stack([b for _, b in images])
    self.assertAllClose(df["psnr"], distances.psnr(x, y), rtol=1e-5)
    self.assertAllClose(df["mse"], distances.mse(x, y), rtol=1e-5)
    self.assertAllClose(df["msssim"], distances.ms_ssim(x, y), rtol=1e-5)
    self.assertAllClose(df["nlpd_laparra2016"], distances.nlpd(x, y),
                        rtol=1e-5)
    self.assertEqual([f for f in os.listdir(os.path.dirname(out))], ["t.csv"])

  def test_errors_are_one_line(self):
    root = self.get_temp_dir()
    ref, dist, _ = _write_pairs(root, n=1, size=(40, 40))
    proc = _run("--reference", os.path.join(ref, "img0.png"), "--distorted",
                os.path.join(dist, "img0.png"), "--distances", "msssim")
    self.assertEqual(proc.returncode, 1)
    self.assertRegex(proc.stderr.strip().splitlines()[-1],
                     r"^error: img0.png: msssim: .*too small.*"
                     r"num_scales=2")


class EvaluatePairsTest(tf.test.TestCase):

  def test_single_files_and_options(self):
    root = self.get_temp_dir()
    ref, dist, images = _write_pairs(root, n=1, size=(80, 90))
    df = pairs.evaluate_pairs(os.path.join(ref, "img0.png"),
                              os.path.join(dist, "img0.png"),
                              ["nlpd", "msssim"], nlpd_variant="laparra2017",
                              msssim_scales=3, progress=False)
    x, y = (a[None] for a in images[0])
    self.assertAllClose(df["nlpd_laparra2017"],
                        distances.nlpd(x, y, variant="laparra2017"))
    self.assertAllClose(df["msssim"], distances.ms_ssim(x, y, num_scales=3))

  def test_npy_float_needs_max_val(self):
    root = self.get_temp_dir()
    a = np.random.default_rng(0).random((70, 70)).astype(np.float32)
    np.save(os.path.join(root, "a.npy"), a)
    np.save(os.path.join(root, "b.npy"), a * 0.9)
    args = (os.path.join(root, "a.npy"), os.path.join(root, "b.npy"), ["mse"])
    with self.assertRaisesRegex(ValueError, "max_val"):
      pairs.evaluate_pairs(*args, progress=False)
    df = pairs.evaluate_pairs(*args, max_val=1.0, progress=False)
    self.assertAllClose(df["mse"], [np.mean((0.1 * a) ** 2)], rtol=1e-5)

  def test_an_8bit_image_and_a_float_array_share_max_val(self):
    """Issue 12: max_val applies to both sides (it came from the reference's
    dtype only, so '--max_val' seemed ignored)."""
    root = self.get_temp_dir()
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (70, 70, 3), dtype=np.uint8)
    y = np.clip(x / 255.0 + rng.normal(0, 0.02, x.shape), 0, 1).astype(
        np.float32)
    Image.fromarray(x).save(os.path.join(root, "x.png"))
    np.save(os.path.join(root, "y.npy"), y)
    for a, b in [("x.png", "y.npy"), ("y.npy", "x.png")]:
      args = (os.path.join(root, a), os.path.join(root, b), ["mse", "psnr"])
      with self.assertRaisesRegex(ValueError, r"x.png is an 8-bit image and "
                                  r".*y.npy holds float32 values; give max_val"):
        pairs.evaluate_pairs(*args, progress=False)
      df = pairs.evaluate_pairs(*args, max_val=1.0, progress=False)
      expected = np.mean((x / 255.0 - y) ** 2)
      self.assertAllClose(df["mse"], [expected], rtol=1e-4)
      self.assertAllClose(df["psnr"], [10 * np.log10(1 / expected)],
                          rtol=1e-4)

  def test_outputs_never_replace_inputs_or_unasked_files(self):
    root = self.get_temp_dir()
    ref, dist, _ = _write_pairs(root, n=1, size=(70, 70))
    image = os.path.join(dist, "img0.png")
    before = open(image, "rb").read()
    for output in (image, os.path.join(ref, "t.csv")):
      with self.assertRaisesRegex(ValueError, "input"):
        pairs.evaluate_pairs(ref, dist, ["psnr"], output=output,
                             progress=False)
    self.assertEqual(open(image, "rb").read(), before)
    out = os.path.join(root, "t.csv")
    pairs.evaluate_pairs(ref, dist, ["psnr"], output=out, progress=False)
    with self.assertRaisesRegex(ValueError, "exists .*overwrite"):
      pairs.evaluate_pairs(ref, dist, ["psnr"], output=out, progress=False)
    pairs.evaluate_pairs(ref, dist, ["mse"], output=out, overwrite=True,
                         progress=False)
    self.assertIn("mse", pd.read_csv(out).columns)

  def test_bad_arguments(self):
    root = self.get_temp_dir()
    ref, dist, _ = _write_pairs(root, n=1, size=(70, 70))
    with self.assertRaisesRegex(ValueError, "Unknown distance"):
      pairs.evaluate_pairs(ref, dist, ["ssim9"])
    with self.assertRaisesRegex(ValueError, "both be folders"):
      pairs.evaluate_pairs(os.path.join(ref, "img0.png"), dist)
    with self.assertRaises(FileNotFoundError):
      pairs.evaluate_pairs(os.path.join(root, "nope"), dist)
    other = os.path.join(root, "other")
    os.makedirs(other)
    Image.fromarray(np.zeros((70, 70, 3), np.uint8)).save(
        os.path.join(other, "zzz.png"))
    with self.assertRaisesRegex(ValueError, "no pairs"):
      pairs.evaluate_pairs(ref, other)
    Image.fromarray(np.zeros((71, 70, 3), np.uint8)).save(
        os.path.join(other, "img0.png"))
    with self.assertRaisesRegex(ValueError, "same size"):
      pairs.evaluate_pairs(ref, other, ["psnr"], progress=False)


if __name__ == "__main__":
  tf.test.main()
