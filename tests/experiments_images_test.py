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
from scipy import stats as sps

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
  sigmas = [float(s) for s in cfg.sigmas]
  samples = pd.read_csv(folder / "samples.csv")
  assert len(samples) == cfg.num_eval * len(sigmas)
  numeric = samples.drop(columns=["file"])
  assert np.all(np.isfinite(numeric.to_numpy()))
  # Held-out images are not training images of the split.
  _, held = _images.split_files(sorted(os.listdir(data)), cfg.num_eval,
                                cfg.num_train, cfg.split_seed)
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
  # Every ρ of Fig. 6's table recomputed by SciPy from the per-sample rows.
  pairs = {"sens_nlpd_vs_logp": ("sens_nlpd", "log_p_x"),
           "sens_msssim_vs_logp": ("sens_msssim", "log_p_x"),
           "rmse_vs_logp": ("rmse", "log_p_x"),
           "rmse_vs_nlpd": ("rmse", "nlpd"),
           "rmse_vs_msssim": ("rmse", "one_minus_msssim")}
  for _, row in table.iterrows():
    sel = samples[samples.sigma == row.sigma]
    assert row.n == len(sel) == cfg.num_eval
    for name, (a, b) in pairs.items():
      assert row[f"rho_{name}"] == pytest.approx(
          sps.spearmanr(sel[a], sel[b])[0], abs=1e-12), name
  summary = pd.read_csv(folder / "logp_summary.csv")
  assert list(summary.sigma) == [0.0] + sigmas
  assert np.all(np.isfinite(summary.mean_log_p)) and (summary.mean_log_p < 0).all()
  # Bits per dimension of the held-out images from their log p(x) (nats) in
  # samples.csv: −log p / (32·32·3·ln 2), and log p of the noisy images.
  log_p = samples.groupby("file").log_p_x.first()
  assert len(log_p) == cfg.num_eval
  results = json.loads((folder / "results.json").read_text())["results"]
  assert results["heldout_bits_per_dim"] == pytest.approx(
      float(np.mean(-log_p / (32 * 32 * 3 * np.log(2.0)))), rel=1e-9)
  assert summary.mean_log_p[0] == pytest.approx(log_p.mean(), rel=1e-9)
  for s in sigmas:
    assert summary.loc[summary.sigma == s, "mean_log_p"].item() == (
        pytest.approx(samples.loc[samples.sigma == s, "log_p_noisy"].mean(),
                      rel=1e-9))
  assert results["msssim_num_scales"] == 2 and results["nlpd_num_levels"] == 4
  assert 0 < results["heldout_bits_per_dim"] < 16
  # Cached: a second run loads the PixelCNN and gives the same numbers.
  again = runner.run_experiment("sensitivity", "tiny", str(out),
                                overrides={"images": data}, verbose=False)
  assert again["models"][0]["source"] == "cache"
  assert again["results"]["spearman"] == results["spearman"]


def _outputs(folder, names):
  for name in names:
    path = folder / name
    assert path.stat().st_size > 0, name
    if name.endswith(".png"):
      assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  return json.loads((folder / "results.json").read_text())["results"]


def test_change_contrast():
  from tfc_perception.experiments import contrast
  x = np.array([[[0], [100], [200]]], np.uint8)  # mean 100
  np.testing.assert_array_equal(contrast.change_contrast(x, 1.0), x)
  np.testing.assert_array_equal(contrast.change_contrast(x, 0.5)[0, :, 0],
                                [50, 100, 150])
  np.testing.assert_array_equal(contrast.change_contrast(x, 2.0)[0, :, 0],
                                [0, 100, 255])  # clipped
  np.testing.assert_array_equal(contrast.change_contrast(x, 0.0)[0, :, 0],
                                [100, 100, 100])
  with pytest.raises(ValueError, match="alpha"):
    contrast.change_contrast(x, -1.0)
  with pytest.raises(ValueError, match="uint8"):
    contrast.change_contrast(x.astype(float), 1.0)


def _split(kodak_like):
  """Folder/glob inputs: kodim01 is the test image, a glob of the others
  trains."""
  return {"test_images": os.path.join(kodak_like, "kodim01.png"),
          "train_images": os.path.join(kodak_like, "kodim0[23].png")}


@pytest.mark.slow
def test_contrast_tiny_end_to_end(tmp_path, kodak_like):
  runner.run_experiment("contrast", "tiny", str(tmp_path),
                        overrides=_split(kodak_like), verbose=False)
  folder = tmp_path / "contrast"
  results = _outputs(folder, ("contrast.csv", "ratio.csv",
                              "fig4_contrast_ratio.png",
                              "fig16_contrast_examples.png", "report.md"))
  assert results["models"] == "trained here"
  assert results["data"]["num_train_images"] == 2
  assert results["data"]["num_test_images"] == 1
  assert not results["data"]["substitute"]
  assert "## Data" in (folder / "report.md").read_text()
  cfg = runner.get_experiment("contrast").configs["tiny"]
  rows = pd.read_csv(folder / "contrast.csv")
  assert len(rows) == 2 * len(cfg.qualities) * len(cfg.alphas)
  assert set(rows.image) == {"kodim01.png"}
  assert np.all(np.isfinite(rows[["bpp", "mse", "psnr", "msssim"]]))
  assert (rows.bpp > 0).all()
  ratio = pd.read_csv(folder / "ratio.csv")
  assert sorted(ratio.alpha) == sorted(list(cfg.alphas) * len(cfg.qualities))
  np.testing.assert_allclose(ratio.ratio_P1_P0,
                             ratio.P1_mse_per_bpp / ratio.P0_mse_per_bpp)
  assert np.all(np.isfinite(ratio.ratio_P1_P0)) and (ratio.ratio_P1_P0 > 0).all()
  # The rate-matched ratio is read at the MSE model's own rate.
  np.testing.assert_allclose(ratio.rate_bpp, ratio.bpp_mse_model)
  from tfc_perception.experiments import contrast
  again = pd.DataFrame(contrast.ratio_table(rows.to_dict("records"),
                                            list(cfg.qualities),
                                            list(cfg.alphas)))
  np.testing.assert_allclose(again.ratio_rate_matched,
                             ratio.ratio_rate_matched, equal_nan=True)
  # Each row recomputed independently with the cached models: the contrast
  # change of Eq. 14 in NumPy, the real bit-strings' size, NumPy MSE and
  # PSNR, and the same-quality P1/P0 (Eq. 13) with P = MSE / bpp.
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  from tfc_perception.models import factorized  # pylint: disable=g-import-not-at-top
  cache = tmp_path / "_cache" / "models"
  family = {}
  for entry in cache.iterdir():
    if (entry / "done.json").exists():
      c = json.loads((entry / "config.json").read_text())
      q = factorized.QUALITY_LAMBDAS[c["distortion"]].index(c["lmbda"]) + 1
      family[(c["distortion"], q)] = models.load_model(str(entry / "model"))
  assert sorted(family) == sorted((d, q) for d in ("mse", "msssim")
                                  for q in cfg.qualities)
  test_file = os.path.join(kodak_like, "kodim01.png")
  im = np.asarray(Image.open(test_file).convert("RGB")).astype(np.float64)
  h, w, c = im.shape[0], im.shape[1], cfg.crop
  im = im[(h - c) // 2:(h - c) // 2 + c, (w - c) // 2:(w - c) // 2 + c]
  for alpha in cfg.alphas:
    xa = np.clip(np.round(im.mean() + alpha * (im - im.mean())), 0,
                 255).astype(np.uint8)
    for q in cfg.qualities:
      p = {}
      for m in ("mse", "msssim"):
        model = family[(m, q)]
        compressed = model.compress(xa[None])
        nbytes = sum(len(b) for b in np.ravel(compressed[0].numpy()))
        x_hat = np.asarray(model.decompress(*compressed))[0].astype(np.float64)
        mse = np.mean((np.clip(np.round(x_hat), 0, 255) - xa) ** 2)
        bpp = 8.0 * nbytes / (c * c)
        row = rows[(rows.alpha == alpha) & (rows.trained_for == m)
                   & (rows.quality == q)].iloc[0]
        assert row.bpp == pytest.approx(bpp, rel=1e-12)
        assert row.mse == pytest.approx(mse, rel=1e-5)
        assert row.psnr == pytest.approx(10 * np.log10(255 ** 2 / mse),
                                         abs=1e-3)
        p[m] = mse / bpp
      r = ratio[(ratio.alpha == alpha) & (ratio.quality == q)].iloc[0]
      assert r.ratio_P1_P0 == pytest.approx(p["msssim"] / p["mse"], rel=1e-5)


def test_contrast_ratio_is_rate_matched_on_a_case_computed_by_hand():
  """Two qualities per family, one α, one image. At quality 1 the MSE model
  codes at 0.2 bpp with MSE 100; the MS-SSIM models code at 0.1 and 0.4 bpp
  with MSE 40 and 20, so at 0.2 bpp (the geometric midpoint) the MS-SSIM
  family's MSE is 30 and the rate-matched ratio is 30 / 100 = 0.3. The
  same-quality ratio is (40 / 0.1) / (100 / 0.2) = 0.8. At quality 8 the MSE
  model's 0.8 bpp is beyond the MS-SSIM models' rates: not matched."""
  from tfc_perception.experiments import contrast
  def row(q, m, bpp, mse, msssim):
    return {"quality": q, "trained_for": m, "alpha": 1.0, "image": "a",
            "bpp": bpp, "mse": mse, "msssim": msssim}
  rows = [row(1, "mse", 0.2, 100.0, 0.9), row(8, "mse", 0.8, 25.0, 0.95),
          row(1, "msssim", 0.1, 40.0, 0.96), row(8, "msssim", 0.4, 20.0, 0.98)]
  q1, q8 = contrast.ratio_table(rows, [1, 8], [1.0])
  assert q1["rate_bpp"] == 0.2 and q1["rate_matched"]
  assert (q1["msssim_rate_lo_bpp"], q1["msssim_rate_hi_bpp"]) == (0.1, 0.4)
  assert (q1["msssim_quality_lo"], q1["msssim_quality_hi"]) == (1, 8)
  assert q1["ratio_rate_matched"] == pytest.approx(0.3)
  # 1 − MS-SSIM: the MS-SSIM family's (0.04 + 0.02) / 2 = 0.03 against 0.1.
  assert q1["ratio_rate_matched_dssim"] == pytest.approx(0.3)
  assert q1["ratio_P1_P0"] == pytest.approx(0.8)
  assert not q8["rate_matched"] and np.isnan(q8["ratio_rate_matched"])
  assert q8["rate_bpp"] == 0.8


def test_num_centers_for():
  from tfc_perception.experiments import scarce_data
  assert scarce_data.num_centers_for(0.25, 64) == 2
  assert scarce_data.num_centers_for(0.5, 64) == 4
  with pytest.raises(ValueError, match="not an integer"):
    scarce_data.num_centers_for(0.3, 64)


@pytest.mark.slow
def test_scarce_data_tiny_end_to_end(tmp_path, kodak_like):
  runner.run_experiment("scarce_data", "tiny", str(tmp_path),
                        overrides=_split(kodak_like), verbose=False)
  folder = tmp_path / "scarce_data"
  results = _outputs(folder, ("rd.csv", "per_image.csv", "rate_matched.csv",
                              "fig5_uniform_noise.png", "fig18_natural.png",
                              "fig19_uniform_noise.png", "fig_rd.png"))
  cfg = runner.get_experiment("scarce_data").configs["tiny"]
  rd = pd.read_csv(folder / "rd.csv")
  assert len(rd) == len(cfg.data) * len(cfg.distortions) * len(
      cfg.max_bpp)
  assert set(rd.distortion) == set(cfg.distortions)
  assert np.all(np.isfinite(rd[["bpp", "psnr", "msssim", "nlpd"]]))
  # The rate bound holds for the real bit-strings (+ a flag byte).
  h = cfg.crop
  assert (rd.bpp <= rd.max_bpp + 8.0 / h ** 2 + 1e-9).all()
  assert len(results["rd"]) == len(rd)
  assert results["data"]["num_train_images"] == 2
  # Rate-matched rows: at each MSE model's rate, every loss; the MSE rows
  # are the MSE models' own numbers.
  matched = pd.read_csv(folder / "rate_matched.csv")
  assert len(matched) == len(cfg.data) * len(cfg.max_bpp) * len(
      cfg.distortions)
  own = matched[matched.distortion == "mse"].merge(
      rd[rd.distortion == "mse"], left_on=["data", "reference"],
      right_on=["data", "max_bpp"], suffixes=("", "_rd"))
  np.testing.assert_allclose(own.rate, own.bpp)
  np.testing.assert_allclose(own.psnr, own.psnr_rd)


def test_scarce_data_rate_matched_table_on_a_case_computed_by_hand():
  """MSE models at 0.1 and 0.4 bpp; NLPD models at 0.05 and 0.2 bpp with
  PSNR 12 and 16 dB. At 0.1 bpp (halfway in log-rate between 0.05 and 0.2)
  the NLPD family reads 14 dB; 0.4 bpp is beyond its rates."""
  from tfc_perception.experiments import scarce_data
  def row(loss, bound, bpp, psnr):
    return {"data": "natural", "distortion": loss, "max_bpp": bound,
            "bpp": bpp, "psnr": psnr, "msssim": 0.5, "nlpd": 0.3}
  rows = [row("mse", 0.25, 0.1, 15.0), row("mse", 0.5, 0.4, 18.0),
          row("nlpd", 0.25, 0.05, 12.0), row("nlpd", 0.5, 0.2, 16.0)]
  out = scarce_data.rate_matched_table(rows, ["natural"], ["mse", "nlpd"])
  by = {(r["reference"], r["distortion"]): r for r in out}
  assert by[(0.25, "mse")]["psnr"] == 15.0
  m = by[(0.25, "nlpd")]
  assert m["rate"] == 0.1 and m["psnr"] == pytest.approx(14.0)
  assert (m["rate_lo"], m["rate_hi"]) == (0.05, 0.2)
  assert (m["max_bpp_lo"], m["max_bpp_hi"]) == (0.25, 0.5)
  assert not by[(0.5, "nlpd")]["matched"]
  assert np.isnan(by[(0.5, "nlpd")]["psnr"])


@pytest.mark.slow
def test_nlpd_vs_mse_tiny_end_to_end(tmp_path, kodak_like):
  # Every variant of the tiny config is trained against one MSE member per
  # seed and reported.
  runner.run_experiment("nlpd_vs_mse", "tiny", str(tmp_path),
                        overrides=_split(kodak_like), verbose=False)
  folder = tmp_path / "nlpd_vs_mse"
  results = _outputs(folder, ("curves.csv", "gain.csv",
                              "fig20_nlpd_vs_mse.png"))
  cfg = runner.get_experiment("nlpd_vs_mse").configs["tiny"]
  curves = pd.read_csv(folder / "curves.csv")
  steps = list(range(0, cfg.train.steps + 1, cfg.eval_every))
  assert sorted(set(curves.step)) == steps
  assert set(curves.seed) == set(cfg.seeds)
  assert set(curves.nlpd_distortion) == set(cfg.nlpd_variants)
  # One MSE member per seed: the same MSE curve against every variant.
  mse = curves.pivot_table(index=["seed", "step"], columns="nlpd_distortion",
                           values="test_mse_mse_model")
  np.testing.assert_array_equal(mse["nlpd"], mse["nlpd_rgb"])
  # Same seed -> same initial weights: no gain before training.
  assert np.allclose(curves.loc[curves.step == 0, "gain"], 0.0)
  np.testing.assert_allclose(
      curves.gain, curves.test_mse_mse_model - curves.test_mse_nlpd_model)
  gain = pd.read_csv(folder / "gain.csv")
  assert len(gain) == len(steps) * len(cfg.nlpd_variants)
  for v, g in gain.groupby("nlpd_distortion"):
    last = curves[(curves.nlpd_distortion == v) & (curves.step == steps[-1])]
    assert g.mean_gain.iloc[-1] == pytest.approx(last.gain.mean())
    assert g.std_gain.iloc[-1] == pytest.approx(last.gain.std(ddof=1))
    assert results["final_by_variant"][v]["mean_gain"] == pytest.approx(
        last.gain.mean())
  assert results["final_step"] == steps[-1]
  assert results["nlpd_distortion"] == cfg.nlpd_distortion
  assert results["final_mean_gain"] == results["final_by_variant"][
      cfg.nlpd_distortion]["mean_gain"]
  with pytest.raises(ValueError, match="nlpd_distortion"):
    runner.run_experiment("nlpd_vs_mse", "tiny", str(tmp_path / "bad"),
                          overrides=dict(_split(kodak_like),
                                         nlpd_distortion="ssim"),
                          verbose=False)
  with pytest.raises(ValueError, match="must include the primary"):
    runner.run_experiment("nlpd_vs_mse", "tiny", str(tmp_path / "bad"),
                          overrides=dict(_split(kodak_like),
                                         nlpd_distortion="nlpd2017"),
                          verbose=False)


def test_contrast_auto_falls_back_offline_without_cached_models(
    tmp_path, monkeypatch):
  from tfc_perception.experiments import _images
  monkeypatch.setenv("TFC_PERCEPTION_CACHE", str(tmp_path / "empty"))
  messages = []
  assert _images.pretrained_family([1], ("mse", "msssim"), False,
                                   messages.append) is None
  assert "not available" in messages[0]
  assert not (tmp_path / "empty").exists()  # Offline: nothing created.
