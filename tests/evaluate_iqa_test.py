"""End-to-end tests of bin/evaluate iqa (Fig. 3 pipeline): a synthetic IQA
dataset in the TID2013 layout, with TID2013's file-name case quirks and MOS
with a known rank order, evaluated with a project FactorizedPrior saved by
models.save_model; caching/resume; the real TID2013 sample pair."""

import json
import os
import subprocess
import sys

import numpy as np
import matplotlib.pyplot as plt
import pandas as pd
from PIL import Image
import pytest
from scipy import stats as sps

from conftest import REPO_ROOT, shared_path
from tid_layout import make_tid_layout
from tfc_perception.data import iqa as iqa_data

@pytest.fixture(scope="module")
def loaded(setup):
  """The first model as built in this process (the same weights as its saved
  copy; building a model takes seconds, so tests share it)."""
  return setup["built"][0]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  base = tmp_path_factory.mktemp("iqa")
  root = str(base / "tid")
  make_tid_layout(root)
  tf.keras.utils.set_random_seed(0)
  paths, built = [], []
  for q, metric in ((1, "mse"), (1, "msssim")):
    model = models.build_model("factorized", num_filters=8,
                               latent_channels=8, lmbda=0.01 * q,
                               distortion=metric, seed=len(paths) + 1)
    path = str(base / f"tiny-factorized-{metric}-{q}")
    models.save_model(model, path)
    paths.append(path)
    built.append(model)
  return {"base": base, "root": root, "models": paths, "built": built}


def _run(args, cwd):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", MPLBACKEND="Agg")
  return subprocess.run([sys.executable, os.path.join(REPO_ROOT, "bin",
                                                      "evaluate"), "iqa"]
                        + args, cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=300)


def _expected_psnr(ds):
  out = []
  for row in ds.pairs.itertuples():
    a = iqa_data.read_image(row.reference_path).astype(np.float64)
    b = iqa_data.read_image(row.distorted_path).astype(np.float64)
    out.append(10 * np.log10(255.0 ** 2 / np.mean((a - b) ** 2)))
  return np.array(out)


@pytest.mark.slow
def test_bin_evaluate_iqa_end_to_end(setup, loaded):
  out = str(setup["base"] / "out")
  models = ",".join(setup["models"])
  args = ["--dataset", "tid2013", "--root", setup["root"], "--models", models,
          "--distances", "psnr,msssim,nlpd,dr,din,ds", "--output", out,
          "--bootstrap", "200", "--batch_size", "8", "--noprogress",
          "--msssim_scales", "3"]
  proc = _run(args, str(setup["base"]))
  assert proc.returncode == 0, proc.stderr[-3000:]
  ds = iqa_data.load_tid2013(setup["root"])
  assert len(ds) == 30
  pairs = pd.read_csv(os.path.join(out, "pairs.csv"))
  summary = pd.read_csv(os.path.join(out, "summary.csv"))
  assert len(pairs) == 30
  names = [os.path.basename(p) for p in setup["models"]]
  for n in names:
    for d in ("dr", "din", "ds", "ds_ref"):
      assert f"{d}@{n}" in pairs.columns
  assert pairs[["psnr", "msssim", "nlpd"]].notna().all().all()
  # The pipeline's PSNR equals an independent numpy PSNR, pair by pair.
  by_name = pairs.set_index("name")
  np.testing.assert_allclose(by_name.loc[ds.pairs["name"], "psnr"],
                             _expected_psnr(ds), rtol=1e-4)
  # Known rank order: within each distortion type MOS falls as the
  # distortion grows, so PSNR, MS-SSIM and NLPD agree with it per type,
  # and the reported correlations are those of scipy on these columns.
  res = json.load(open(os.path.join(out, "summary.json")))["results"]
  by = {(r["model"], r["distance"]): r["correlations"] for r in res}
  for d in ("psnr", "msssim", "nlpd"):
    for t in ("Additive Gaussian noise", "Gaussian blur"):
      assert by[("", d)]["per_type"][t]["srcc"] > 0.9, (d, t)
      assert by[("", d)]["per_type"][t]["srcc_oriented"] > 0.9, (d, t)
    expected = abs(sps.spearmanr(pairs[d], pairs["mos"])[0])
    row = summary[(summary.model.isna()) & (summary.distance == d)].iloc[0]
    assert row.srcc == pytest.approx(expected, abs=1e-9)
    assert row.srcc_lo <= row.srcc <= row.srcc_hi
    assert row.krcc == pytest.approx(
        abs(sps.kendalltau(pairs[d], pairs["mos"])[0]), abs=1e-9)
  # Din of the (untrained) autoencoder grows with the noise level.
  for n in names:
    din = by[(n, "din")]
    assert din["per_type"]["Additive Gaussian noise"]["srcc_oriented"] > 0.8
    row = summary[(summary.model == n) & (summary.distance == "din")].iloc[0]
    assert row.srcc == pytest.approx(
        abs(sps.spearmanr(pairs[f"din@{n}"], pairs["mos"])[0]), abs=1e-9)
  # The rate is the mean size of the actual bit-strings of the references.
  for n, model in zip(names, setup["built"]):
    bpp = [8 * len(model.compress(x[None])[0].numpy()[0])
           / (x.shape[0] * x.shape[1])
           for x in map(iqa_data.read_image, ds.references)]
    np.testing.assert_allclose(summary[summary.model == n].rate_bpp,
                               np.mean(bpp), rtol=1e-12)
  # The figure plots those rates against |SRCC| (one line per family and
  # induced distance) and the baselines' |SRCC| as horizontal lines.
  from tfc_perception.evaluation import iqa  # pylint: disable=g-import-not-at-top
  rows = [dict(r, model=r["model"] if isinstance(r["model"], str) else "")
          for r in summary.to_dict("records")]
  fig = iqa.fig3_figure(rows)
  ax = fig.axes[0]
  plotted = {line.get_label(): line.get_xydata() for line in ax.get_lines()}
  plotted.update({c.get_label(): c.lines[0].get_xydata()
                  for c in ax.containers})  # the error-bar lines
  for n in names:
    for d in ("dr", "din"):
      r = summary[(summary.model == n) & (summary.distance == d)].iloc[0]
      points = plotted[f"{r.family} {d.capitalize()}"]
      assert [r.rate_bpp, r.srcc] in points.tolist(), (n, d)
  for d in ("psnr", "msssim", "nlpd"):
    srcc = summary[summary.model.isna() & (summary.distance == d)].srcc
    np.testing.assert_allclose(plotted[f"{d.upper()} (baseline)"][:, 1],
                               float(srcc.iloc[0]))
  plt.close(fig)
  with Image.open(os.path.join(out, "fig3_srcc.png")) as png:
    assert png.size == (7 * 120, round(4.5 * 120))
  manifest = json.load(open(os.path.join(out, "manifest.json")))
  assert manifest["config"]["distances"] == ["psnr", "msssim", "nlpd", "dr",
                                             "din", "ds"]

  # Din against a direct computation with the loaded model. The cache keeps
  # latents as float16 (relative precision 2^-11 per element), and results
  # are always computed from what the cache holds, so a first run and a
  # resumed run agree exactly; against float32 latents Din differs by <1%.
  from tfc_perception import induced  # pylint: disable=g-import-not-at-top
  model = loaded
  x1 = np.stack([iqa_data.read_image(p) for p in ds.pairs.reference_path])
  x2 = np.stack([iqa_data.read_image(p) for p in ds.pairs.distorted_path])
  direct = induced.induced_distances(model, x1, x2)
  np.testing.assert_allclose(by_name.loc[ds.pairs["name"],
                                         f"din@{names[0]}"], direct["din"],
                             rtol=1e-2)
  np.testing.assert_allclose(by_name.loc[ds.pairs["name"],
                                         f"dr@{names[0]}"], direct["dr"],
                             rtol=1e-4, atol=1e-7)

  # An interrupted run: the first model's pair cache and a third of its
  # latents/reconstructions are gone; and corrupt cache files: the second
  # model's rate record and one of its .npz cut short, the baselines' pair
  # cache overwritten. The re-run recomputes those only, warning once per
  # corrupt file, and reproduces every number.
  cache = os.path.join(out, "cache", "models")
  npz = sorted(os.path.join(d, f) for d, _, fs in os.walk(cache) for f in fs
               if f.endswith(".npz"))
  assert len(npz) == 2 * (30 + 3)  # every image once per model
  first = [d for d in os.listdir(cache) if d.startswith(names[0] + "-")]
  second = [d for d in os.listdir(cache) if d.startswith(names[1] + "-")]
  assert len(first) == len(second) == 1
  os.remove(os.path.join(cache, first[0], "pairs-mse-unquantized.json"))
  dropped = sorted(f for f in os.listdir(os.path.join(cache, first[0]))
                   if f.endswith(".npz"))[::3]
  for f in dropped:
    os.remove(os.path.join(cache, first[0], f))
  corrupt = [os.path.join(cache, second[0], "rates.json"),
             os.path.join(cache, second[0], "pairs-mse-unquantized.json"),
             sorted(f for f in npz if second[0] in f)[0]]
  corrupt += [os.path.join(out, "cache", f) for f in
              os.listdir(os.path.join(out, "cache"))
              if f.startswith("baselines")]
  assert len(corrupt) == 4
  for f in corrupt:
    with open(f, "r+b") as fh:
      fh.truncate(os.path.getsize(f) // 2)
  # The reruns call the library in-process (the CLI's flags map one to one
  # onto evaluate_iqa's arguments; the first run above is the CLI's).
  dataset = iqa.load_dataset("tid2013", setup["root"])
  out_resumed = str(setup["base"] / "out_resumed")
  with pytest.warns(RuntimeWarning) as warned:
    iqa.evaluate_iqa(dataset, out_resumed, models=models,
                     distances="psnr,msssim,nlpd,dr,din,ds",
                     cache_dir=os.path.join(out, "cache"), batch_size=8,
                     n_bootstrap=200, progress=False, msssim_scales=3)
  pd.testing.assert_frame_equal(
      pd.read_csv(os.path.join(out_resumed, "pairs.csv")), pairs)
  warned = [str(w.message) for w in warned if "is corrupt" in str(w.message)]
  assert sorted(m.split("cache file ")[1].split(" is corrupt")[0]
                for m in warned) == sorted(corrupt), warned
  assert all(os.path.exists(os.path.join(cache, first[0], f))
             for f in dropped)

  # Re-run with another base distance for Dr: latents/reconstructions come
  # from the cache (files untouched), pair distances are recomputed.
  mtimes = [os.path.getmtime(f) for f in npz]
  out2 = str(setup["base"] / "out2")
  iqa.evaluate_iqa(dataset, out2, models=models, distances="dr",
                   base="psnr", cache_dir=os.path.join(out, "cache"),
                   n_bootstrap=0, progress=False)
  assert [os.path.getmtime(f) for f in npz] == mtimes
  pairs2 = pd.read_csv(os.path.join(out2, "pairs.csv"))
  assert (pairs2[f"dr@{names[0]}"] > 20).all()  # PSNR between recons, dB
  # Identical reconstructions have infinite PSNR: left out and counted.
  summary2 = pd.read_csv(os.path.join(out2, "summary.csv"))
  n_inf = int(np.isinf(pairs2[f"dr@{names[0]}"]).sum())
  row = summary2[summary2.model == names[0]].iloc[0]
  assert row.n == 30 - n_inf and row.n_nonfinite_excluded == n_inf


def test_missing_images_and_bad_arguments(tmp_path):
  from tfc_perception.evaluation import iqa  # pylint: disable=g-import-not-at-top
  root = str(tmp_path / "tid")
  make_tid_layout(root, n_refs=1)
  os.remove(os.path.join(root, "distorted_images", "i01_08_3.bmp"))
  out = str(tmp_path / "out")
  # Through the CLI: a one-line error naming the missing image.
  proc = _run(["--root", root, "--distances", "psnr", "--output", out,
               "--noprogress"], str(tmp_path))
  assert proc.returncode == 1
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and "distorted_images/i01_08_3.bmp" in errors[0], (
      proc.stderr[-2000:])
  # Skipped and counted.
  ds = iqa.load_dataset("tid2013", root, skip_missing=True)
  res = iqa.evaluate_iqa(ds, out, distances="psnr,mse", n_bootstrap=50,
                         progress=False)
  settings = res["json"]["settings"]
  assert settings["n_pairs"] == 9 and settings["n_skipped_missing"] == 1
  assert res["summary"][0]["srcc"] > 0.5
  with pytest.raises(ValueError, match="need --models"):
    iqa.evaluate_iqa(ds, out, distances="din")
  with pytest.raises(ValueError, match="Unknown distance"):
    iqa.evaluate_iqa(ds, out, distances="psnr,foo")
  with pytest.raises(ValueError, match="latent"):
    iqa.evaluate_iqa(ds, out, distances="psnr", latent="soft")
  with pytest.raises(ValueError, match="msssim_scales"):
    iqa.evaluate_iqa(ds, out, distances="msssim", msssim_scales=7)
  with pytest.raises(ValueError, match="--scores"):
    iqa.load_dataset("csv", root)


def test_model_range_expansion():
  from tfc_perception.evaluation import _models  # pylint: disable=g-import-not-at-top
  assert _models.expand_model_specs("bmshj2018-factorized-mse-1..3,x") == [
      "bmshj2018-factorized-mse-1", "bmshj2018-factorized-mse-2",
      "bmshj2018-factorized-mse-3", "x"]
  assert _models.expand_model_specs(["a-7..8", "a-8"]) == ["a-7", "a-8"]
  with pytest.raises(ValueError, match="ends"):
    _models.expand_model_specs("a-3..1")
  assert _models.model_family("bmshj2018-factorized-msssim-4") == (
      "bmshj2018-factorized-msssim", "msssim", 4)


def test_real_tid2013_sample_pair_evaluates(loaded):
  """The one complete pair of ../shared's TID2013 sample (I01, i01_01_5.bmp)
  goes through the baselines and a project model."""
  from tfc_perception import distances, induced  # pylint: disable=g-import-not-at-top
  ds = iqa_data.load_tid2013(shared_path("tid2013-sample"), missing="skip")
  row = ds.pairs.iloc[0]
  x1 = iqa_data.read_image(row.reference_path)[None]
  x2 = iqa_data.read_image(row.distorted_path)[None]
  assert x1.shape == (1, 384, 512, 3)
  psnr = float(distances.psnr(x1, x2)[0])
  d = (x1.astype(np.float64) - x2)
  assert psnr == pytest.approx(10 * np.log10(255 ** 2 / np.mean(d ** 2)),
                               abs=1e-3)
  assert 15 < psnr < 30  # AWGN at the strongest level
  # Half the distortion: every induced distance is smaller (the paper's
  # direction: they grow with the distortion), and Ds is the MSE of the
  # model's own reconstruction.
  half = np.round((x1.astype(np.float64) + x2) / 2).astype(np.uint8)
  r = induced.induced_distances(loaded, np.r_[x1, x1], np.r_[x2, half])
  for k in ("de", "dr", "din"):
    assert r[k][1] < r[k][0], k
  for x, ds in ((x1, r["ds1"][0]), (x2, r["ds2"][0]), (half, r["ds2"][1])):
    x_hat = loaded.reconstruct(x).numpy()
    assert ds == pytest.approx(np.mean(((x - x_hat.astype(np.float64))
                                        / 255.0) ** 2), rel=1e-5)


def test_pretrained_tfci_graph_gives_the_same_induced_distances(loaded,
                                                                tmp_path):
  """A model loaded through tfc_perception.pretrained (a tfci .metagraph
  exported from the project model) yields the same De/Dr/Din/Ds."""
  from tfc_perception import induced, pretrained  # pylint: disable=g-import-not-at-top
  from tfc_perception.pretrained import export  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / "tiny.metagraph")
  export.export_metagraph(loaded, path)
  graph_model = pretrained.load(path)
  rng = np.random.default_rng(0)
  x1 = rng.integers(0, 256, (2, 64, 80, 3), dtype=np.uint8)
  x2 = np.clip(x1 + rng.normal(0, 10, x1.shape), 0, 255).astype(np.uint8)
  a = induced.induced_distances(graph_model, x1, x2)
  b = induced.induced_distances(loaded, x1, x2)
  for k in ("de", "dr", "ds1", "ds2"):
    np.testing.assert_allclose(a[k], b[k], rtol=1e-6, err_msg=k)
  np.testing.assert_allclose(a["din"], b["din"], rtol=1e-4)
  assert np.all(a["din"] > 0)


@pytest.mark.slow
def test_two_shards_then_merge_equal_one_unsharded_run(setup, tmp_path):
  """`shard=(i, 2)` runs compute disjoint work into one cache; the final run
  computes nothing and writes exactly the numbers of an unsharded run."""
  from tfc_perception.evaluation import iqa  # pylint: disable=g-import-not-at-top
  ds = iqa.load_dataset("tid2013", setup["root"])
  common = dict(models=setup["models"], distances="psnr,nlpd,dr,din,ds",
                n_bootstrap=20, progress=False, batch_size=4)
  one = iqa.evaluate_iqa(ds, str(tmp_path / "one"), **common)
  total = one["computed"]
  # 3 references + 30 distorted images per model; every pair once.
  assert total == {"forward_passes": 2 * 33, "baseline_pairs": 30,
                   "model_pairs": 2 * 30, "rate_images": 2 * 3}
  cache = str(tmp_path / "shared-cache")
  shards = [iqa.evaluate_iqa(ds, str(tmp_path / f"shard{i}"), cache_dir=cache,
                             shard=f"{i}/2", **common) for i in range(2)]
  for i, res in enumerate(shards):
    assert res["shard"] == (i, 2)
    assert os.path.exists(res["files"]["shard"])
    assert not os.path.exists(tmp_path / f"shard{i}" / "pairs.csv")
  # Disjoint and complete: the shards' work adds up to the unsharded run's.
  for k, v in total.items():
    assert sum(r["computed"][k] for r in shards) == v, k
  merged = iqa.evaluate_iqa(ds, str(tmp_path / "merged"), cache_dir=cache,
                            **common)
  assert merged["computed"] == {k: 0 for k in total}
  pd.testing.assert_frame_equal(merged["pairs"], one["pairs"], check_exact=True)
  for a, b in zip(merged["summary"], one["summary"]):
    assert a == pytest.approx(b, nan_ok=True)
  with pytest.raises(ValueError, match="0 <= i < n"):
    iqa.evaluate_iqa(ds, str(tmp_path / "x"), shard="2/2", **common)
  with pytest.raises(ValueError, match="cache_dir"):
    iqa.evaluate_iqa(ds, str(tmp_path / "x"), shard="0/2", cache_dir="",
                     **common)
