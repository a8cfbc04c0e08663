"""End-to-end tests of the image experiments (issue 7) on tiny configs:
Obs. 1 sensitivity (Figs. 6-8) with a tiny PixelCNN on a handful of images,
plus the helpers they rely on. Each experiment must write its CSV/JSON/PNG
outputs, and the numbers must parse and be finite."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tfc_perception.experiments import _images
from tfc_perception.experiments import runner
from tfc_perception.experiments import sensitivity


def _write_images(folder, n, size, seed=0):
  """Synthetic natural-ish images: smooth gradients plus varying noise."""
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:size, 0:size]
  for i in range(n):
    base = (128 + 60 * np.sin(xx / (3 + i % 5) + i)
            + 40 * np.cos(yy / (4 + i % 3)))[..., None] * np.ones(3)
    img = np.clip(base + rng.normal(0, (i % 6) * 8, base.shape), 0, 255)
    Image.fromarray(img.astype(np.uint8)).save(
        os.path.join(folder, f"{i:03d}.png"))
  return str(folder)


def test_noisy_images_rounds_clips_and_is_seeded():
  x = np.full((4, 8, 8, 3), 250, np.uint8)
  a = sensitivity.noisy_images(x, 20.0, seed=3)
  assert a.dtype == np.uint8
  np.testing.assert_array_equal(a, sensitivity.noisy_images(x, 20.0, seed=3))
  assert not np.array_equal(a, sensitivity.noisy_images(x, 20.0, seed=4))
  assert a.max() == 255  # Clipped, not wrapped around.
  z = np.full((64, 16, 16, 3), 128, np.uint8)
  rms = np.sqrt(np.mean((sensitivity.noisy_images(z, 10.0, 0).astype(float)
                         - 128) ** 2))
  assert abs(rms - 10.0) < 0.2
  with pytest.raises(ValueError, match="uint8"):
    sensitivity.noisy_images(x.astype(np.float32), 1.0, 0)
  with pytest.raises(ValueError, match="sigma"):
    sensitivity.noisy_images(x, -1.0, 0)


def test_split_files_is_disjoint_and_seeded():
  files = [f"f{i:02d}.png" for i in range(20)]
  train, held = _images.split_files(files, 5, 0, seed=1)
  assert len(held) == 5 and len(train) == 15
  assert not set(train) & set(held)
  assert _images.split_files(files, 5, 0, seed=1) == (train, held)
  assert _images.split_files(files, 5, 0, seed=2)[1] != held
  assert len(_images.split_files(files, 5, 4, seed=1)[0]) == 4
  with pytest.raises(ValueError, match="need at least"):
    _images.split_files(files, 20, 0, seed=1)


def test_resolve_data_names_missing_path(tmp_path):
  with pytest.raises(FileNotFoundError, match="--set images="):
    _images.resolve_data(str(tmp_path / "nope"))


def test_spearman_table_on_known_ranks():
  rows = [{"sigma": 1.0, "log_p_x": float(i), "sens_nlpd": float(i),
           "sens_msssim": float(-i), "rmse": 1.0 + (i % 2), "nlpd": float(i),
           "one_minus_msssim": float(i * i)} for i in range(10)]
  (row,) = sensitivity.spearman_table(rows, [1.0])
  assert row["rho_sens_nlpd_vs_logp"] == pytest.approx(1.0)
  assert row["rho_sens_msssim_vs_logp"] == pytest.approx(-1.0)
  assert row["n"] == 10


@pytest.mark.slow
def test_sensitivity_tiny_end_to_end(tmp_path):
  data = _write_images(tmp_path / "imgs", 60, 32)
  out = tmp_path / "out"
  res = runner.run_experiment("sensitivity", "tiny", str(out),
                              overrides={"images": data}, verbose=False)
  folder = out / "sensitivity"
  for name in ("samples.csv", "spearman.csv", "logp_summary.csv",
               "fig6_spearman.png", "fig7_scatter.png", "fig8_logp.png",
               "results.json", "report.md", "manifest.json", "models.csv"):
    assert (folder / name).stat().st_size > 0, name
  cfg = runner.get_experiment("sensitivity").configs["tiny"]
  sigmas = [float(s) for s in cfg["sigmas"]]
  samples = pd.read_csv(folder / "samples.csv")
  assert len(samples) == cfg["num_eval"] * len(sigmas)
  numeric = samples.drop(columns=["file"])
  assert np.all(np.isfinite(numeric.to_numpy()))
  # Held-out images are not training images of the split.
  _, held = _images.split_files(sorted(os.listdir(data)), cfg["num_eval"],
                                cfg["num_train"], cfg["split_seed"])
  assert {os.path.basename(f) for f in samples["file"]} == set(held)
  # The actual noise has the requested σ (rounded, clipped 8-bit images).
  for s in sigmas:
    rmse = samples.loc[samples.sigma == s, "rmse"].mean()
    assert abs(rmse - s) < 0.15 * s + 0.1, (s, rmse)
  np.testing.assert_allclose(samples.sens_nlpd, samples.nlpd / samples.rmse,
                             rtol=1e-6)
  assert (samples.nlpd > 0).all() and (samples.one_minus_msssim > 0).all()
  # Larger noise -> larger perceptual distance, on average.
  by_sigma = samples.groupby("sigma")[["nlpd", "one_minus_msssim"]].mean()
  assert by_sigma.nlpd.is_monotonic_increasing
  assert by_sigma.one_minus_msssim.is_monotonic_increasing
  table = pd.read_csv(folder / "spearman.csv")
  assert list(table.sigma) == sigmas
  rhos = table[[c for c in table.columns if c.startswith("rho_")]].to_numpy()
  assert np.all(np.isfinite(rhos)) and np.all(np.abs(rhos) <= 1)
  summary = pd.read_csv(folder / "logp_summary.csv")
  assert list(summary.sigma) == [0.0] + sigmas
  assert np.all(np.isfinite(summary.mean_log_p)) and (summary.mean_log_p < 0).all()
  results = json.loads((folder / "results.json").read_text())["results"]
  assert results == json.loads(json.dumps(res["results"]))
  assert results["msssim_num_scales"] == 2 and results["nlpd_num_levels"] == 4
  assert 0 < results["heldout_bits_per_dim"] < 16
  # Cached: a second run loads the PixelCNN and gives the same numbers.
  again = runner.run_experiment("sensitivity", "tiny", str(out),
                                overrides={"images": data}, verbose=False)
  assert again["models"][0]["source"] == "cache"
  assert again["results"]["spearman"] == results["spearman"]
