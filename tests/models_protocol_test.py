"""The two model registries: codecs (one typing.Protocol, `models.Codec`,
that toy2d, factorized, softquant and the pretrained tfci models satisfy,
and that save_model accepts) and density models (pixelcnn, dae)."""

import numpy as np
import pytest


from tfc_perception import models
from tfc_perception import pretrained
from tfc_perception.pretrained import export

_SMALL = {"toy2d": dict(widths=8, depth=1),
          "factorized": dict(num_filters=4, latent_channels=4),
          "softquant": dict(num_filters=4, latent_channels=4)}


def _input(model):
  if model.is_image_model:
    return np.random.default_rng(0).integers(0, 256, (1, 32, 48, 3),
                                             dtype=np.uint8)
  return np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)


@pytest.mark.parametrize("name", sorted(_SMALL))
def test_every_registered_codec_satisfies_the_protocol(name, tmp_path):
  assert name in models.registered_models()
  model = models.build_model(name, seed=0, **_SMALL[name])
  assert isinstance(model, models.Codec)
  x = _input(model)
  # The protocol's behaviour: finalize() builds the coding tables, then
  # decompress(compress(x)) == reconstruct(x) ==
  # synthesis(quantize(analysis(x))) (cropped), and call gives the bits.
  assert model.finalize() is model and model.is_finalized()
  compressed = model.compress(x)
  np.testing.assert_array_equal(model.decompress(*compressed),
                                model.reconstruct(x))
  x_hat, bits = model(x, training=False)
  assert bits.shape == (x.shape[0],) and x_hat.shape == x.shape
  y_hat = model.quantize(model.analysis(x), training=False)
  assert model.synthesis(y_hat).shape[0] == x.shape[0]
  assert model.rate_unit in ("bpp", "bits/sample")
  # save_model accepts exactly the codecs.
  models.save_model(model, str(tmp_path / name))
  assert isinstance(models.load_model(str(tmp_path / name)), models.Codec)


def test_pretrained_tfci_models_satisfy_the_protocol(tmp_path):
  model = models.build_model("factorized", seed=0, **_SMALL["factorized"])
  path = export.export_metagraph(model, str(tmp_path / "tiny.metagraph"))
  loaded = pretrained.load(path)
  assert isinstance(loaded, models.Codec)
  assert loaded.finalize() is loaded  # Its tables are graph constants.
  x = _input(model)
  np.testing.assert_array_equal(loaded.decompress(*loaded.compress(x)),
                                model.reconstruct(x))


def test_density_models_have_their_own_registry(tmp_path):
  assert models.density_models() == ["dae", "pixelcnn"]
  dae = models.build_density_model("dae", dims=2, hidden=[4], seed=1)
  pcnn = models.build_density_model(
      "pixelcnn", image_shape=(8, 8, 3), num_resnet=1, num_hierarchies=1,
      num_filters=4, num_logistic_mix=1, dropout_p=0.0, seed=0)
  for model in (dae, pcnn):
    assert not isinstance(model, models.Codec)
    with pytest.raises(ValueError, match="is a density model, not a codec; "
                       "save it with save_density_model"):
      models.save_model(model, str(tmp_path / "codec"))
  assert not (tmp_path / "codec").exists()
  with pytest.raises(ValueError, match="Unknown model 'dae'; accepted: "
                     "factorized, softquant, toy2d .'dae' is a density "
                     "model: use build_density_model"):
    models.build_model("dae")
  with pytest.raises(ValueError, match="Unknown density model 'toy2d'"):
    models.build_density_model("toy2d")
  # Round trip, and a codec directory is not read as a density model.
  path = models.save_density_model(dae, str(tmp_path / "dae"))
  x = np.random.default_rng(1).normal(size=(3, 2)).astype(np.float32)
  np.testing.assert_allclose(models.load_density_model(path)(x), dae(x))
  codec = models.build_model("toy2d", **_SMALL["toy2d"])
  models.save_model(codec, str(tmp_path / "toy"))
  with pytest.raises(ValueError, match="not a tfc_perception density model"):
    models.load_density_model(str(tmp_path / "toy"))
  # What the package did not write is never replaced.
  (tmp_path / "mine").mkdir()
  (tmp_path / "mine" / "notes.txt").write_text("keep")
  with pytest.raises(ValueError, match="refusing to replace it"):
    models.save_density_model(dae, str(tmp_path / "mine"))
  assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"

