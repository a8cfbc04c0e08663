"""The Obs. 5 / Fig. 3 experiment (`bin/reproduce iqa`): the tiny config end to
end on a synthetic TID2013-layout dataset (correlations checked against SciPy
on the written per-pair table), on ../shared's one-pair TID2013 sample (no
correlation, the reason written), the model cache, and its errors."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from conftest import shared_path
from tfc_perception.experiments import runner
from tid_layout import make_tid_layout

MODELS = ["factorized-mse-1", "factorized-mse-8", "factorized-msssim-1",
          "factorized-msssim-8"]


@pytest.fixture(scope="module")
def tid_root(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("tid") / "tid2013")
  make_tid_layout(root)
  return root


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
  """One model cache for the module's runs: the tiny family's cache key is
  its training images and config, not the IQA dataset or distances, so the
  four models are trained once (by `tiny_run`) and loaded afterwards."""
  return str(tmp_path_factory.mktemp("iqa_models"))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tid_root, kodak_like, cache_dir):
  """(output folder, run_experiment's result) of the tiny config on the
  synthetic TID2013 layout: the run that trains the models into cache_dir."""
  output = tmp_path_factory.mktemp("iqa_tiny")
  out = runner.run_experiment("iqa", "tiny", str(output),
                              overrides={"root": tid_root,
                                         "train_images": kodak_like},
                              cache_dir=cache_dir, verbose=False)
  return output, out


def _results(folder):
  return json.loads((folder / "results.json").read_text())["results"]


@pytest.mark.slow
def test_iqa_tiny_end_to_end_on_a_tid2013_layout(tiny_run, tid_root,
                                                 kodak_like, cache_dir):
  output, out = tiny_run
  folder = output / "iqa"
  for name in ("evaluation/pairs.csv", "evaluation/summary.csv",
               "evaluation/models.csv", "fig3_srcc.png",
               "fig3_induced_vs_rate.png", "report.md", "manifest.json"):
    assert (folder / name).stat().st_size > 0, name
  assert (folder / "fig3_srcc.png").read_bytes()[:4] == b"\x89PNG"
  res = _results(folder)
  assert res["models"] == "trained here"
  # The fallback family trained on the folder given, not a substitute.
  assert res["data"]["train_images"] == kodak_like
  assert res["data"]["num_train_images"] == 3
  assert res["data"]["substitute"] is False
  assert res["n_pairs"] == 30 and res["n_skipped_missing"] == 0
  assert sorted(res["rate_bpp"]) == MODELS
  assert all(r > 0 and np.isfinite(r) for r in res["rate_bpp"].values())
  assert len(out["models"]) == 4 and all(m["source"] == "trained"
                                         for m in out["models"])

  # Every reported SRCC is |Spearman| of the written per-pair column and MOS.
  pairs = pd.read_csv(folder / "evaluation" / "pairs.csv")
  assert len(pairs) == 30
  for column, srcc in res["srcc"].items():  # "psnr", "dr@factorized-mse-1"
    rho = sps.spearmanr(pairs[column], pairs["mos"]).correlation
    assert srcc == pytest.approx(abs(rho), abs=1e-9), column
  # PSNR ranks this synthetic dataset's MOS well (its MOS falls with noise
  # and blur level); De is the input MSE, the same for every model.
  assert res["srcc"]["psnr"] > 0.7
  for m in MODELS[1:]:
    np.testing.assert_allclose(pairs[f"de@{m}"], pairs[f"de@{MODELS[0]}"])
  # De = MSE(x1, x2) in [0, 1]² units, so PSNR = −10 log10(De).
  np.testing.assert_allclose(-10 * np.log10(pairs[f"de@{MODELS[0]}"]),
                             pairs["psnr"], rtol=1e-4)
  assert pairs.filter(like="@").notna().all().all()

  # A second run loads the models from the cache and gives the same numbers.
  again = runner.run_experiment("iqa", "tiny", str(output),
                                overrides={"root": tid_root,
                                           "train_images": kodak_like},
                                cache_dir=cache_dir, verbose=False)
  assert [m["source"] for m in again["models"]] == ["cache"] * 4
  assert again["results"]["srcc"] == out["results"]["srcc"]


@pytest.mark.slow
def test_iqa_on_the_shared_tid2013_sample_has_one_pair(tmp_path, kodak_like,
                                                       cache_dir, tiny_run):
  from tfc_perception import distances  # pylint: disable=g-import-not-at-top
  from tfc_perception.data import iqa as iqa_data  # pylint: disable=g-import-not-at-top
  root = shared_path("tid2013-sample")
  del tiny_run  # It trained the models: this run, on another dataset and
  # with other distances, finds them under the same cache keys.
  out = runner.run_experiment("iqa", "tiny", str(tmp_path),
                              overrides={"train_images": kodak_like,
                                         "distances": ["psnr", "dr", "din",
                                                       "ds"]},
                              cache_dir=cache_dir, verbose=False)
  assert [m["source"] for m in out["models"]] == ["cache"] * 4
  folder = tmp_path / "iqa"
  res = _results(folder)
  assert res["n_pairs"] == 1 and res["n_skipped_missing"] == 2999
  assert "at least 3" in res["note"]
  assert all(v is None for v in res["srcc"].values())
  assert not (folder / "fig3_srcc.png").exists()
  assert (folder / "fig3_induced_vs_rate.png").stat().st_size > 0
  x1 = iqa_data.read_image(os.path.join(root, "reference_images",
                                        "I01.BMP"))[None]
  x2 = iqa_data.read_image(os.path.join(root, "distorted_images",
                                        "i01_01_5.bmp"))[None]
  assert res["pair_values"]["psnr"] == pytest.approx(
      float(distances.psnr(x1, x2)[0]), abs=1e-4)
  for m in MODELS:
    assert res["pair_values"][f"dr@{m}"] > 0
    assert res["pair_values"][f"din@{m}"] > 0


def test_iqa_config_errors(tmp_path, tid_root, kodak_like):
  with pytest.raises(FileNotFoundError, match="--set root=PATH"):
    runner.run_experiment("iqa", "tiny", str(tmp_path),
                          overrides={"root": str(tmp_path / "nowhere")},
                          verbose=False)
  with pytest.raises(ValueError, match="induced distance"):
    runner.run_experiment("iqa", "tiny", str(tmp_path),
                          overrides={"distances": ["psnr", "msssim"]},
                          verbose=False)
  # Overrides are type-checked against the typed config ("a,b" is a list
  # of strings too).
  with pytest.raises(ValueError, match="induced distance"):
    runner.run_experiment("iqa", "tiny", str(tmp_path),
                          overrides={"distances": "psnr,msssim"},
                          verbose=False)
  with pytest.raises(ValueError, match="distances must be a list of "
                     "strings, got 5"):
    runner.run_experiment("iqa", "tiny", str(tmp_path),
                          overrides={"distances": 5}, verbose=False)
  with pytest.raises(ValueError, match="models must be one of"):
    runner.run_experiment("iqa", "tiny", str(tmp_path),
                          overrides={"models": "downloaded",
                                     "root": tid_root,
                                     "train_images": kodak_like},
                          verbose=False)
