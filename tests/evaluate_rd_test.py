"""Tests of bin/evaluate rd: actual bit-stream rate, PSNR/MS-SSIM/NLPD of the
decoded images, CompressAI-shaped JSON, the published reference curve."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image
import matplotlib.pyplot as plt
import tensorflow as tf

from conftest import REPO_ROOT
from distances_nlpd_test import ref_nlpd2016, ref_rgb2gray
from tfc_perception.evaluation import rd


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  base = tmp_path_factory.mktemp("rd")
  data = base / "images"
  data.mkdir()
  rng = np.random.default_rng(0)
  for i, (h, w) in enumerate([(176, 192), (192, 176)]):
    small = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.BICUBIC)
    img.save(data / f"img{i}.png")
  (data / "notes.txt").write_text("not an image")
  tf.keras.utils.set_random_seed(0)
  model = models.build_model("factorized", num_filters=8, latent_channels=8,
                             lmbda=0.01, seed=1)
  path = str(base / "tiny-factorized-mse-1")
  models.save_model(model, path)
  return {"base": base, "data": str(data), "models": [path], "built": model}


def test_bin_evaluate_rd(setup):
  out = str(setup["base"] / "out")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", MPLBACKEND="Agg")
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "bin", "evaluate"), "rd",
       "--data", setup["data"], "--models", ",".join(setup["models"]),
       "--output", out, "--noprogress"], env=env, capture_output=True,
      text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  per_image = pd.read_csv(os.path.join(out, "per_image.csv"))
  assert len(per_image) == 2 and set(per_image.image) == {"img0.png",
                                                          "img1.png"}
  # The rate is the size of the actual bit-string, and the metrics are those
  # of the decoded image (decompress == reconstruct).
  from tfc_perception.data import iqa  # pylint: disable=g-import-not-at-top
  model = setup["built"]  # the saved model, as built in this process
  name = os.path.basename(setup["models"][0])
  for row in per_image[per_image.model == name].itertuples():
    x = iqa.read_image(os.path.join(setup["data"], row.image))
    strings = model.compress(x[None])[0].numpy()
    assert row.bytes == len(strings[0])
    assert row.bpp == pytest.approx(8 * len(strings[0]) / (x.shape[0] *
                                                         x.shape[1]))
    x_hat = model.reconstruct(x[None]).numpy()[0].astype(np.float64)
    mse = np.mean((x.astype(np.float64) - x_hat) ** 2)
    assert row.psnr == pytest.approx(10 * np.log10(255 ** 2 / mse), abs=1e-3)
    # MS-SSIM of TF's own implementation, NLPD of the SciPy reference.
    msssim = float(tf.image.ssim_multiscale(
        x[None].astype(np.float32), x_hat[None].astype(np.float32), 255.0))
    assert row.msssim == pytest.approx(msssim, rel=1e-5)
    assert row.msssim_db == pytest.approx(-10 * np.log10(1 - msssim),
                                          rel=1e-4)
    nlpd = ref_nlpd2016(ref_rgb2gray(x), ref_rgb2gray(x_hat.astype(np.uint8)))
    assert row.nlpd == pytest.approx(nlpd, rel=1e-4)
    assert row.encode_s > 0 and row.decode_s > 0
  # CompressAI-shaped JSON, one point per model of the family (sorted by
  # rate).
  js = json.load(open(os.path.join(out, "tiny-factorized-mse.json")))
  assert js["name"] == "tiny-factorized-mse" and js["description"]
  res = js["results"]
  for key in ("psnr-rgb", "ms-ssim-rgb", "bpp", "encoding_time",
              "decoding_time"):
    assert len(res[key]) == 1, key
  summary = pd.read_csv(os.path.join(out, "summary.csv")).sort_values("bpp")
  np.testing.assert_allclose(res["psnr-rgb"], summary.psnr)
  np.testing.assert_allclose(
      summary.psnr,
      per_image.groupby("model").psnr.mean()[summary.model].to_numpy())
  ref = json.load(open(os.path.join(
      out, "reference-bmshj2018-factorized-kodak.json")))
  assert ref["results"]["psnr-rgb"][0] == 26.78
  assert ref["results"]["bpp"][-1] == 1.9576
  # The figure plots these points and the published curve, PSNR on the
  # left and MS-SSIM in dB (recomputed here) on the right.
  fig = rd.rd_figure([js, ref])
  (psnr_ax, msssim_ax), (ours, published) = fig.axes, fig.axes[0].lines
  np.testing.assert_allclose(ours.get_xydata(),
                             np.c_[summary.bpp, summary.psnr])
  np.testing.assert_allclose(
      published.get_xydata(), np.c_[ref["results"]["bpp"],
                                    ref["results"]["psnr-rgb"]])
  np.testing.assert_allclose(
      msssim_ax.lines[1].get_ydata(),
      -10 * np.log10(1 - np.array(ref["results"]["ms-ssim-rgb"])))
  np.testing.assert_allclose(msssim_ax.lines[0].get_ydata(),
                             -10 * np.log10(1 - summary.msssim))
  assert "bits per pixel" in psnr_ax.get_xlabel()
  plt.close(fig)
  with Image.open(os.path.join(out, "rd.png")) as png:
    assert png.size == (11 * 120, round(4.3 * 120))
  manifest = json.load(open(os.path.join(out, "manifest.json")))
  assert manifest["config"]["data"] == setup["data"]


def test_errors_and_helpers(setup, tmp_path):
  with pytest.raises(FileNotFoundError, match="no images"):
    rd.list_images(str(tmp_path))
  assert [os.path.basename(f) for f in rd.list_images(setup["data"])] == [
      "img0.png", "img1.png"]
  assert len(rd.list_images(setup["data"], limit=1)) == 1
  np.testing.assert_allclose(rd.msssim_db([0.9, 0.99]), [10.0, 20.0])

  class NoCoder:
    def analysis(self, x):
      return x

  with pytest.raises(ValueError, match="no compress"):
    rd.evaluate_rd(setup["data"], str(tmp_path / "o"),
                   loaded_models=[("nocoder", NoCoder())])
