"""The one metric table (tfc_perception.distances.registry): every registered
name works in every place that takes a metric name, and an unknown name
fails the same way everywhere, listing the accepted names."""

import numpy as np
import pytest
import tensorflow as tf

import tool_in_process
from tid_layout import make_tid_layout
from tfc_perception import distances
from tfc_perception import induced
from tfc_perception import losses
from tfc_perception import models
from tfc_perception.data import sources
from tfc_perception.distances import registry
from tfc_perception.evaluation import iqa

ALL = registry.names()
IMAGE = registry.names(images=True)
VECTOR = registry.names(vectors=True)
ACCEPTED = "accepted: " + ", ".join(ALL) + " (aliases:"


def _images(n=2, size=72, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.random((n, size, size, 3)).astype(np.float32)
  return x, np.clip(x + 0.05 * rng.normal(size=x.shape), 0, 1).astype(
      np.float32)


def test_table_has_every_variant_once():
  assert ALL[:6] == ["mse", "psnr", "msssim", "nlpd", "nlpd_rgb", "nlpd2017"]
  assert len(set(ALL)) == len(ALL)
  keys = [k for m in registry.metrics() for k in (m.name,) + m.aliases]
  assert len(set(keys)) == len(keys)
  assert registry.get("MS-SSIM").name == registry.get("ms_ssim").name == (
      "msssim")
  assert registry.get("nlpd_per_channel").options == {"color": "per_channel"}
  assert registry.get("nlpd2017").options == {"variant": "laparra2017"}
  assert not registry.get("psnr").lower_is_better
  assert registry.get("nlpd").lower_is_better
  assert registry.get("msssim").min_size == 161
  assert registry.get("msssim").min_size_for(num_scales=2) == 21
  assert registry.get("nlpd_rgb").min_size == 65
  assert registry.get("mse").min_size == 1
  assert set(VECTOR) == {"mse", "squared_error", "euclidean", "density_mse",
                         "inverse_density_mse"}


def test_check_size_says_what_fits():
  registry.check_size("msssim", 176)
  with pytest.raises(ValueError, match=r"32 px .* msssim, which needs at "
                     r"least 161 px; MS-SSIM with 2 scale\(s\) fits"):
    registry.check_size("ms-ssim", 32, what="--patchsize 32 crops")
  with pytest.raises(ValueError, match=r"num_levels=5"):
    registry.check_size("nlpd2017", 40, 64)
  registry.check_size("msssim", 32, num_scales=2)


@pytest.mark.parametrize("name", ALL)
def test_every_name_works_in_distances_get_and_losses_get(name):
  metric = registry.get(name)
  x, y = _images(size=176 if metric.family == "ms_ssim" else 72)
  if metric.needs_density:
    density = sources.get_source("student_t").prob
    a = np.random.default_rng(1).normal(size=(5, 2)).astype(np.float32)
    b = a + 0.1
    value = distances.get(name)(a, b, density)
    loss = losses.get(name, density=density, reduction="none")
    np.testing.assert_allclose(loss(a, b), value, rtol=1e-6)
    return
  kwargs = {"max_val": 1.0} if metric.takes_max_val else {}
  value = distances.get(name)(x, y, **kwargs).numpy()
  assert value.shape == (2,) and np.all(np.isfinite(value))
  loss = losses.get(name, reduction="none")(x, y).numpy()
  # The loss is the distance, or its decreasing form for similarities.
  expected = {"psnr": -value, "msssim": 1.0 - value}.get(name, value)
  np.testing.assert_allclose(loss, expected, rtol=2e-5, atol=1e-6)
  # The registry's function is the bound one (the variant's options).
  np.testing.assert_allclose(metric.bind(max_val=1.0)(x, y), value,
                             rtol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_every_name_works_as_a_model_distortion(name):
  metric = registry.get(name)
  if metric.images:
    model = models.build_model("factorized", distortion=name, num_filters=4,
                               latent_channels=4, seed=0)
    x = tf.constant(_images(1, metric.min_size)[0])
  else:
    model = models.build_model(
        "toy2d", distortion=name, widths=8, depth=1, seed=0,
        density_fn=sources.get_source("student_t").prob)
    x = tf.constant(np.random.default_rng(0).normal(size=(8, 2)), tf.float32)
  assert model.distortion == metric.name
  loss, rate, distortion = model._loss_terms(x, training=True)  # pylint: disable=protected-access
  assert np.isfinite(float(loss)) and np.isfinite(float(distortion))
  # D is the registry's loss of the metric, in the models' units.
  _, x_hat, _ = model._estimate(x, training=False)  # pylint: disable=protected-access
  expected = metric.loss(vectors=not metric.images, training=True,
                         **({"density": model.density_fn}
                            if metric.needs_density else {}))
  want = expected.call(tf.cast(x, tf.float32), x_hat).numpy()
  got = model._distortion_loss.call(tf.cast(x, tf.float32), x_hat).numpy()  # pylint: disable=protected-access
  np.testing.assert_allclose(got, want, rtol=1e-6)
  del rate


def test_models_reject_metrics_of_the_other_kind_clearly():
  with pytest.raises(ValueError, match="defined for images only; for "
                     "vectors .2-D sources. accepted: mse, squared_error"):
    models.build_model("toy2d", distortion="nlpd_rgb")
  with pytest.raises(ValueError, match="defined for vectors"):
    models.build_model("factorized", distortion="density_mse",
                       num_filters=4, latent_channels=4)


@pytest.mark.parametrize("name", ALL)
def test_every_name_works_as_an_induced_base(name):
  metric = registry.get(name)

  class Identity:  # a model with the common interface
    def analysis(self, x):
      x = tf.convert_to_tensor(x)
      return tf.cast(x, tf.float32) / (255.0 if x.dtype == tf.uint8 else 1.0)

    def quantize(self, y, training=False):
      del training
      return tf.round(y * 4.0) / 4.0

    def synthesis(self, y):
      return y

  if metric.needs_density:
    with pytest.raises(ValueError, match="needs the density"):
      induced.induced_distances(Identity(), np.zeros((2, 2), np.float32),
                                np.ones((2, 2), np.float32), base=name)
    return
  if metric.images:
    x1, x2 = (np.round(a * 255).astype(np.uint8)
              for a in _images(2, max(metric.min_size, 16)))
    out = induced.induced_distances(Identity(), x1, x2, base=name,
                                    round_output=False)
    # De is the base distance between the images on [0, 1].
    de = metric.bind(max_val=1.0)(x1 / np.float32(255), x2 / np.float32(255))
    np.testing.assert_allclose(out["de"], de, rtol=1e-5)
  if metric.vectors:
    a = np.random.default_rng(2).normal(size=(6, 2)).astype(np.float32)
    out = induced.induced_distances(Identity(), a, a + 0.5, base=name)
    np.testing.assert_allclose(
        out["de"], metric.bind(vectors=True)(a, a + 0.5), rtol=1e-5)


def test_every_image_name_is_an_iqa_baseline(tmp_path):
  root = str(tmp_path / "tid")
  make_tid_layout(root, n_refs=1)
  ds = iqa.load_dataset("tid2013", root)
  names = IMAGE
  out = iqa.evaluate_iqa(ds, str(tmp_path / "out"), distances=names,
                         n_bootstrap=0, progress=False, msssim_scales=3,
                         cache_dir="")
  table = out["pairs"]
  for name in names:
    assert np.all(np.isfinite(table[name])), name
  rows = {r["distance"]: r for r in out["summary"]}
  for name in names:
    assert rows[name]["lower_is_better"] == registry.get(name).lower_is_better
    # Every metric ranks the noise/blur levels with the MOS (|SRCC| > 0.5).
    assert rows[name]["srcc"] > 0.5, (name, rows[name]["srcc"])
  # Aliases give the canonical columns.
  assert iqa.parse_distances("MS-SSIM,nlpd_per_channel,dr") == [
      "msssim", "nlpd_rgb", "dr"]
  # Density metrics are recognised, and refused for images with the reason.
  with pytest.raises(ValueError, match="'density_mse' is defined for "
                     "vectors .2-D sources. only; for images accepted: mse"):
    iqa.evaluate_iqa(ds, str(tmp_path / "o2"), distances=["density_mse"],
                     progress=False, cache_dir="")


def test_unknown_name_fails_the_same_way_everywhere():
  errors = []
  calls = [
      lambda: distances.get("l7"),
      lambda: losses.get("l7"),
      lambda: models.build_model("factorized", distortion="l7"),
      lambda: iqa.parse_distances("psnr,l7"),
      lambda: induced.induced_distances(
          None, np.zeros((1, 2), np.float32), np.zeros((1, 2), np.float32),
          base="l7"),
      lambda: registry.check_size("l7", 10),
  ]
  for call in calls:
    with pytest.raises(ValueError) as info:
      call()
    errors.append(str(info.value))
  for message in errors:
    assert "'l7'" in message and ACCEPTED in message, message


def test_cli_lists_every_metric_and_checks_names(tmp_path, capsys):
  # bin/evaluate distances in this process (its real process: see
  # evaluate_distances_cli_test).
  status, stdout, stderr = tool_in_process.run_tool(
      capsys, "evaluate", "distances", "--list")
  assert status == 0, stderr
  for m in registry.metrics():
    assert m.name in stdout
    for alias in m.aliases:
      assert alias in stdout
  # Every image metric in bin/evaluate distances, and the same unknown-name
  # message.
  from PIL import Image  # pylint: disable=g-import-not-at-top
  x, y = (np.round(a[0] * 255).astype(np.uint8) for a in _images(1, 72))
  Image.fromarray(x).save(tmp_path / "a.png")
  Image.fromarray(y).save(tmp_path / "b.png")
  status, stdout, stderr = tool_in_process.run_tool(
      capsys, "evaluate", "distances", "--reference", tmp_path / "a.png",
      "--distorted", tmp_path / "b.png", "--msssim_scales", "2",
      "--distances", ",".join(IMAGE))
  assert status == 0, stderr
  for name in IMAGE:
    assert (name if name != "nlpd" else "nlpd_laparra2016") in stdout
  status, _, stderr = tool_in_process.run_tool(
      capsys, "evaluate", "distances", "--reference", tmp_path / "a.png",
      "--distorted", tmp_path / "b.png", "--distances", "l7")
  assert status == 1 and ACCEPTED in stderr
