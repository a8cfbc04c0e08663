"""Tests of tfci metagraph export/loading: a small tfc model is exported as a
tfci MetaGraphDef, served from 127.0.0.1, downloaded through the real code
path, loaded, and its latents and bit-exact round trip are checked. A second
graph written in tensorflow-compression 1.x style (TF1 while loops with
TensorArrays, UnboundedIndexRangeEncode, floor(y + 0.5 - medians), clip/round
then crop, different tensor and signature-key names) checks that tensor
discovery relies on structure, not on how our exporter names things.
"""

import hashlib
import logging
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_compression as tfc
from tensorflow_compression.python.ops import gen_ops

import tfci_tool
from conftest import SHARED_DATA
from pretrained_download_test import LocalServer
from tfc_perception import pretrained
from tfc_perception.pretrained import export
from tfc_perception.pretrained import tfci

NAME = "bmshj2018-factorized-mse-1"  # served by the local server: our model
H, W = 61, 47  # not multiples of the stride: exercises padding and cropping


def crop_image():
  """A 61x47 crop of kodim23 (generated smooth image if Kodak is absent)."""
  path = os.path.join(SHARED_DATA, "kodak", "kodim23.png")
  if os.path.exists(path):
    image = tf.image.decode_png(tf.io.read_file(path), channels=3)
    return image[None, 100:100 + H, 200:200 + W].numpy()
  rng = np.random.RandomState(3)
  yy, xx = np.mgrid[0:H, 0:W] / 10.
  img = np.stack([np.sin(yy + c) * np.cos(xx * (c + 1)) for c in range(3)], -1)
  img = 127.5 + 100 * img + rng.normal(0, 10, img.shape)
  return np.clip(np.round(img), 0, 255).astype(np.uint8)[None]


class Tiny(tf.Module):
  """A small bmshj2018-like model: 2 x (3x3 conv, stride 2) with GDN, a
  ContinuousBatchedEntropyModel, and the tfc example's compress/decompress."""

  def __init__(self):
    super().__init__()
    tf.random.set_seed(1)
    self.a = tf.keras.Sequential([
        tfc.SignalConv2D(8, (3, 3), corr=True, strides_down=2,
                         padding="same_zeros", activation=tfc.GDN()),
        tfc.SignalConv2D(4, (3, 3), corr=True, strides_down=2,
                         padding="same_zeros", use_bias=False)])
    self.s = tf.keras.Sequential([
        tfc.SignalConv2D(8, (3, 3), corr=False, strides_up=2,
                         padding="same_zeros",
                         activation=tfc.GDN(inverse=True)),
        # No bias: the last synthesis op is the transposed convolution.
        tfc.SignalConv2D(3, (3, 3), corr=False, strides_up=2,
                         padding="same_zeros", use_bias=False)])
    self.a(tf.zeros([1, 16, 16, 3]))
    self.s(tf.zeros([1, 4, 4, 4]))
    for v in self.a.trainable_variables:
      if "kernel" in v.name:
        v.assign(v * 8.)  # latents spanning several quantisation bins
    self.em = tfc.ContinuousBatchedEntropyModel(
        tfc.NoisyLogistic(loc=0., scale=tf.fill([4], 2.)), coding_rank=3,
        compression=True)

  def analysis(self, x):
    return self.a(tf.cast(x, tf.float32) / 255.)

  def synthesis(self, y_hat):
    return self.s(y_hat)

  def compress(self, x):
    y = self.analysis(x)
    return self.em.compress(y), tf.shape(x)[1:-1], tf.shape(y)[1:-1]

  def decompress(self, strings, x_shape, y_shape):
    y_hat = self.em.decompress(strings, y_shape)
    x_hat = self.s(y_hat)[:, :x_shape[0], :x_shape[1], :]
    return tf.saturate_cast(tf.round(x_hat * 255.), tf.uint8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """(Tiny model, metagraph bytes, loaded TfciModel, cache dir, server)."""
  tmp = tmp_path_factory.mktemp("tfci")
  model = Tiny()
  path = export.export_metagraph(model, str(tmp / f"{NAME}.metagraph"))
  data = open(path, "rb").read()
  server = LocalServer()
  server.routes[f"/{NAME}.metagraph"] = ("ok", data)
  cache = tmp / "cache"
  loaded = pretrained.load(NAME, cache, server.url, progress=False,
                           timeout=5, retries=0)
  yield model, data, loaded, cache, server
  server.close()


def test_loading_logs_no_saver_notice(exported, caplog):
  """Issue 12: every load logged import_meta_graph's 'Saver not created'
  notice (twice); tfci graphs are frozen, so it says nothing."""
  _, _, _, cache, _ = exported
  caplog.set_level(logging.INFO, logger="tensorflow")
  model = pretrained.load(NAME, cache, offline=True)
  model.compress(np.zeros([1, 16, 16, 3], np.uint8))
  assert not [r for r in caplog.records if "Saver" in r.getMessage()]


def test_download_records_hash_and_then_works_offline(exported):
  _, data, loaded, cache, server = exported
  entry = pretrained.read_manifest(cache)["files"][f"models/{NAME}.metagraph"]
  assert entry["sha256"] == hashlib.sha256(data).hexdigest()
  assert loaded.sha256 == entry["sha256"]
  again = pretrained.load(NAME, cache, offline=True)
  assert again.get_config()["sha256"] == entry["sha256"]
  assert server.counts[f"/{NAME}.metagraph"] == 1
  assert loaded.model_name == NAME and loaded.distortion == "mse"


def test_latents_equal_the_model_analysis(exported):
  model, _, loaded, _, _ = exported
  x = crop_image()
  y = loaded.analysis(x).numpy()
  y0 = model.analysis(x).numpy()
  assert y.shape == (1, 16, 12, 4)
  np.testing.assert_allclose(y, y0, rtol=0, atol=1e-5 * np.abs(y0).max())
  assert np.abs(np.round(y0)).max() >= 2  # latents use several bins
  # Float input in [0, 1] is fed after the graph's own /255 scaling.
  yf = loaded.analysis(x.astype(np.float32) / 255.).numpy()
  np.testing.assert_allclose(yf, y, rtol=0, atol=1e-6 * np.abs(y0).max())


def test_round_trip_is_bit_exact(exported, tmp_path):
  model, _, loaded, _, _ = exported
  x = crop_image()
  strings, x_shape, y_shape = loaded.compress(x)
  ref = model.compress(x)
  assert strings.numpy()[0] == ref[0].numpy()[0]  # identical bit-stream
  assert list(x_shape.numpy()) == [H, W] and list(y_shape.numpy()) == [16, 12]
  x_hat = loaded.reconstruct(x).numpy()
  assert x_hat.dtype == np.uint8 and x_hat.shape == x.shape
  np.testing.assert_array_equal(x_hat, model.decompress(*ref).numpy())
  # The decoder really uses the bits: another image decodes differently.
  other = loaded.reconstruct(x[:, ::-1]).numpy()
  assert np.abs(other.astype(int) - x_hat).max() > 10
  # .tfci file round trip.
  size = loaded.compress_to_file(x, tmp_path / "a.tfci")
  assert size == os.path.getsize(tmp_path / "a.tfci")
  np.testing.assert_array_equal(
      loaded.decompress_file(tmp_path / "a.tfci").numpy(), x_hat)
  name, _ = tfci.read_tfci(tmp_path / "a.tfci")
  assert name == NAME


def test_interface_pieces_agree_with_the_codec(exported):
  model, _, loaded, _, _ = exported
  x = np.concatenate([crop_image(), crop_image()[:, ::-1, ::-1]], 0)
  y = loaded.analysis(x)
  y_hat = loaded.quantize(y)
  np.testing.assert_allclose(y_hat, model.em.quantize(model.analysis(x)),
                             atol=1e-4)
  x_float = loaded.synthesis(y_hat)
  assert x_float.dtype == tf.float32 and x_float.shape == (2, 64, 48, 3)
  via_pieces = tf.saturate_cast(
      tf.round(x_float[:, :H, :W] * 255.), tf.uint8).numpy()
  np.testing.assert_array_equal(via_pieces, loaded.reconstruct(x).numpy())
  x_hat, bits = loaded(x)
  assert x_hat.shape == x.shape
  strings = loaded.compress(x)[0].numpy()
  assert strings.shape == (2,)
  np.testing.assert_array_equal(bits.numpy(), [8 * len(s) for s in strings])
  check = loaded.self_check()
  assert check["ok"] and check["latent_shape"] == [1, 16, 16, 4], check
  broken = tfci.TfciModel(loaded.path)  # wrong scale: the check must notice
  broken.tensors.reconstruction_scale = 0.5
  assert not broken.self_check(x)["ok"]
  noisy = loaded.quantize(y, training=True)
  assert 0 < np.abs(noisy - y).max() <= 0.5
  assert loaded.rate_unit == "bpp"


def test_export_traces_the_model_and_refuses_eager_only_code(tmp_path):
  """export_metagraph traces compress/decompress (a project codec's traced
  functions, after finalize()); code that runs eagerly only is refused."""
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  model = models.build_model("factorized", num_filters=4, latent_channels=4,
                             seed=0)
  path = export.export_metagraph(model, str(tmp_path / "fp.metagraph"))
  assert model.is_finalized()
  other = pretrained.load(path)
  x = crop_image()
  assert other.compress(x)[0].numpy()[0] == model.compress(x)[0].numpy()[0]
  np.testing.assert_array_equal(other.reconstruct(x).numpy(),
                                model.reconstruct(x).numpy())
  assert other.tensors is not None  # Discovery works on our graphs too.
  np.testing.assert_allclose(other.analysis(x).numpy(),
                             model.analysis(x).numpy(), atol=1e-5)

  class EagerOnly:
    def compress(self, x):
      return (tf.constant([x.numpy().tobytes()]),)  # needs eager tensors

    def decompress(self, strings):
      return strings

  with pytest.raises(ValueError, match="could not be traced"):
    export.export_metagraph(EagerOnly(), str(tmp_path / "f.metagraph"))


def test_tfci_files_interoperate_with_the_tfci_tool(exported, tmp_path):
  _, _, loaded, cache, _ = exported
  x = crop_image()
  metagraphs = os.path.dirname(loaded.path)  # tfci.py's metagraph cache
  png = tmp_path / "in.png"
  png.write_bytes(tf.io.encode_png(x[0]).numpy())
  # tfci.py compress -> ours.
  tool = tfci_tool.compress(metagraphs, NAME, str(png),
                            str(tmp_path / "tool.tfci"))
  ours = loaded.decompress_file(tool).numpy()
  np.testing.assert_array_equal(ours, loaded.reconstruct(x).numpy())
  # ... also by the model name recorded in the file (cached: no network).
  np.testing.assert_array_equal(pretrained.decompress_tfci(
      tool, cache, offline=True).numpy(), ours)
  # Ours -> tfci.py decompress.
  loaded.compress_to_file(x, tmp_path / "ours.tfci")
  assert tfc.PackedTensors((tmp_path / "ours.tfci").read_bytes()).model == NAME
  out = tfci_tool.decompress(metagraphs, str(tmp_path / "ours.tfci"))
  image = tf.io.decode_png(tf.io.read_file(out)).numpy()
  assert image.shape == (H, W, 3)
  np.testing.assert_array_equal(image[None], ours)
  # A file of another model is refused with a clear message.
  packed = tfc.PackedTensors()
  packed.model = "bmshj2018-factorized-mse-2"
  packed.pack(loaded.compress(x))
  (tmp_path / "other.tfci").write_bytes(packed.string)
  with pytest.raises(ValueError, match="made by model"):
    loaded.decompress_file(tmp_path / "other.tfci")


def test_decompress_tfci_resolves_names_through_registry_and_cache_only(
    exported, tmp_path):
  """The model name in a .tfci file is untrusted: it is never used as a path
  (a metagraph is code), only looked up in the registry and the cache."""
  _, data, loaded, cache, _ = exported
  x = crop_image()
  tensors = loaded.compress(x)
  outside = tmp_path / "evil.metagraph"
  outside.write_bytes(data)  # A loadable graph outside the cache.
  for name, match in [(str(outside), "not a plain model name"),
                      (str(tmp_path / "evil"), "not a plain model name"),
                      ("../evil", "not a plain model name"),
                      ("evil", "neither in the registry nor in the cache")]:
    packed = tfc.PackedTensors()
    packed.model = name
    packed.pack(tensors)
    (tmp_path / "f.tfci").write_bytes(packed.string)
    with pytest.raises(ValueError, match=match):
      pretrained.decompress_tfci(tmp_path / "f.tfci", cache, offline=True)
  # A plain name that is in the cache (copied there by the user) works.
  (cache / "models" / "evil.metagraph").write_bytes(data)
  np.testing.assert_array_equal(
      pretrained.decompress_tfci(tmp_path / "f.tfci", cache,
                                 offline=True).numpy(),
      loaded.reconstruct(x).numpy())
  with pytest.raises(ValueError, match="max_pixels=100"):
    pretrained.decompress_tfci(tmp_path / "f.tfci", cache, offline=True,
                               max_pixels=100)


def clip_round(x_hat):
  """tfc 1.x examples' write_png: clip to [0, 1], round(x * 255), cast."""
  return tf.cast(tf.round(tf.clip_by_value(x_hat, 0, 1) * 255), tf.uint8)


def _convert_image_dtype(x_hat):
  """x * 255.5 then saturate_cast, no Round op."""
  return tf.image.convert_image_dtype(x_hat, tf.uint8, saturate=True)


def lut_uint8(x_hat):
  """clip/round to integer pixels, then a 256-entry uint8 lookup table (an
  identity table here; a display's gamma table in practice): the float
  reconstruction is not reachable through "to pixels" ops."""
  pixels = tf.cast(tf.round(tf.clip_by_value(x_hat, 0, 1) * 255), tf.int32)
  return tf.gather(tf.constant(np.arange(256, dtype=np.uint8)), pixels)


def legacy_metagraph(rng, to_uint8=clip_round, quantizer="floor", pad=0,
                     post_synthesis=None):
  """A tfc 1.x-style factorized-prior graph, built by hand.

  Args:
    rng: numpy RandomState (weights and medians).
    to_uint8: the receiver's float -> uint8 conversion after its crop.
    quantizer: "floor" (tfc 1.x floor(y + 0.5 - medians)), "truncate" (no
      rounding op: cast(y - medians)), or "cast_chain" (the same symbols as
      "floor", computed with a float -> int -> float cast chain instead of a
      rounding op).
    pad: reflect-pad the image by this many pixels on every side before the
      analysis; the receiver crops the centre back out ([pad:pad + h]).
    post_synthesis: applied to the synthesis output before the receiver's
      crop (e.g. a clip to video range).

  Returns:
    (MetaGraphDef, analysis kernel, medians). Ops: analysis/Conv2D (latent),
    synthesis/output (the synthesis output, before the receiver's crop).
  """
  c, r = 4, 12
  w1 = rng.normal(0, .5, (5, 5, 3, c)).astype(np.float32)
  w2 = rng.normal(0, .2, (5, 5, 3, c)).astype(np.float32)
  medians = rng.uniform(-.3, .3, c).astype(np.float32)
  k = np.arange(-r, r + 1)
  pmf = np.exp(-np.abs(k) / 3.)
  pmf = np.concatenate([pmf / pmf.sum() * (1 - 1e-3), [1e-3]])
  cdf_row = gen_ops.pmf_to_quantized_cdf(
      tf.constant(pmf, tf.float32), precision=16).numpy()
  cdf = np.tile(cdf_row[None], [c, 1]).astype(np.int32)
  cdf_len = np.full([c], cdf.shape[1], np.int32)
  offset = np.full([c], -r, np.int32)
  coder = dict(precision=16, overflow_width=4, debug_level=0)
  graph = tf.Graph()
  tf.compat.v1.disable_control_flow_v2()  # Enter/Exit loops, like TF 1.x
  try:
    with graph.as_default():
      x = tf.compat.v1.placeholder(tf.uint8, [None, None, 3])
      xb = tf.expand_dims(x, 0)
      with tf.name_scope("analysis"):
        xf = tf.cast(xb, tf.float32) / 255.
        if pad:
          xf = tf.pad(xf, [[0, 0], [pad, pad], [pad, pad], [0, 0]], "REFLECT")
        y = tf.nn.conv2d(xf, w1, strides=4, padding="SAME")
      if quantizer == "truncate":  # no rounding op: discovery must give up
        sym = tf.cast(y - medians, tf.int32)
      elif quantizer == "cast_chain":  # floor(v) = int(v + 64) - 64, v > -64
        v = y + (tf.constant(.5) - medians) + 64.
        sym = tf.cast(tf.cast(tf.cast(v, tf.int32), tf.float32) - 64.,
                      tf.int32)
      else:
        sym = tf.cast(tf.floor(y + (tf.constant(.5) - medians)), tf.int32)
      idx = tf.broadcast_to(tf.range(c), tf.shape(sym)[1:])
      strings = tf.map_fn(
          lambda s: gen_ops.unbounded_index_range_encode(
              s, idx, cdf, cdf_len, offset, **coder),
          sym, dtype=tf.string)
      x_shape, y_shape = tf.shape(xb)[1:-1], tf.shape(y)[1:-1]
      s_in = tf.compat.v1.placeholder(tf.string, [1])
      xs_in = tf.compat.v1.placeholder(tf.int32, [2])
      ys_in = tf.compat.v1.placeholder(tf.int32, [2])
      idx_r = tf.broadcast_to(tf.range(c), tf.concat([ys_in, [c]], 0))
      dec = tf.map_fn(
          lambda s: gen_ops.unbounded_index_range_decode(
              s, idx_r, cdf, cdf_len, offset, **coder),
          s_in, dtype=tf.int32)
      y_hat = tf.cast(dec, tf.float32) + medians
      with tf.name_scope("synthesis"):
        shape = tf.shape(y_hat)
        full = tf.nn.conv2d_transpose(
            y_hat, w2, tf.stack([shape[0], shape[1] * 4 + 1,
                                 shape[2] * 4 + 1, 3]),
            strides=4, padding="VALID") + .5
        # The synthesis ends with its own crop (bounds from y_hat's shape).
        x_full = tf.identity(full[:, :shape[1] * 4, :shape[2] * 4, :],
                             name="output")
      if post_synthesis is not None:
        x_full = post_synthesis(x_full)
      # The receiver crops to the transmitted image shape.
      x_hat = x_full[0, pad:pad + xs_in[0], pad:pad + xs_in[1], :]
      out = to_uint8(x_hat)
      metagraph = tf.compat.v1.train.export_meta_graph(graph=graph)
  finally:
    tf.compat.v1.enable_control_flow_v2()
  info = export._tensor_info  # pylint: disable=protected-access
  sender = metagraph.signature_def["sender"]
  sender.inputs["input_image"].CopyFrom(info(x))
  for key, t in (("channel_0", strings), ("shape_x", x_shape),
                 ("shape_y", y_shape)):
    sender.outputs[key].CopyFrom(info(t))
  receiver = metagraph.signature_def["receiver"]
  for key, t in (("channel_0", s_in), ("shape_x", xs_in), ("shape_y", ys_in)):
    receiver.inputs[key].CopyFrom(info(t))
  receiver.outputs["output_image"].CopyFrom(info(out))
  return metagraph, w1, medians


@pytest.mark.parametrize("to_uint8", [clip_round, _convert_image_dtype])
def test_discovery_on_a_tfc1_style_graph(tmp_path, to_uint8):
  metagraph, w1, medians = legacy_metagraph(np.random.RandomState(0),
                                            to_uint8)
  path = tmp_path / "legacy.metagraph"
  path.write_bytes(metagraph.SerializeToString())
  model = pretrained.load(str(path))
  d = model.tensors
  assert "Conv2D" in model._t(d.latent).op.type  # pylint: disable=protected-access
  x = crop_image()
  y = model.analysis(x).numpy()
  y0 = tf.nn.conv2d(x.astype(np.float32) / 255., w1, 4, "SAME").numpy()
  np.testing.assert_allclose(y, y0, atol=1e-5 * np.abs(y0).max())
  y_hat = model.quantize(y).numpy()
  np.testing.assert_array_equal(y_hat, np.floor(y + (.5 - medians)) + medians)
  x_float = model.synthesis(y_hat)
  assert x_float.shape == (1, 64, 48, 3)  # stopped at the synthesis crop
  expected = to_uint8(x_float[:, :H, :W]).numpy()
  np.testing.assert_array_equal(model.reconstruct(x).numpy(), expected)
  # The synthesis output is taken before clip/round: not clipped.
  assert x_float.numpy().min() < 0 or x_float.numpy().max() > 1
  check = model.self_check(x)
  assert check["ok"], check
  if to_uint8 is clip_round:  # the same conversion: identical pixels
    assert check["max_abs_diff"] == 0, check
  model.compress_to_file(x, tmp_path / "l.tfci")
  np.testing.assert_array_equal(
      model.decompress_file(tmp_path / "l.tfci").numpy(), expected)
  assert tfci.read_tfci(tmp_path / "l.tfci")[0] == "legacy"


def test_bad_inputs_are_rejected(exported):
  _, _, loaded, _, _ = exported
  x = crop_image()
  with pytest.raises(ValueError, match=r"in \[0, 1\]"):
    loaded.analysis(x.astype(np.float32))  # 0..255 floats
  with pytest.raises(ValueError, match="x\\[None\\]"):
    loaded.reconstruct(x[0])
  with pytest.raises(ValueError, match="RGB"):
    loaded.analysis(x[..., :1])
  with pytest.raises(ValueError, match="takes 3 tensors"):
    loaded.decompress(*loaded.compress(x)[:2])
  with pytest.raises(ValueError, match="one image"):
    loaded.compress_to_file(np.concatenate([x, x]), "unused.tfci")


def test_codec_still_works_when_internals_are_not_found(tmp_path):
  metagraph, _, medians = legacy_metagraph(
      np.random.RandomState(0), clip_round, quantizer="truncate")
  path = tmp_path / "trunc.metagraph"
  path.write_bytes(metagraph.SerializeToString())
  model = pretrained.load(str(path))
  assert model.tensors.missing() == ["latent"]
  assert "no rounding op" in model.discovery_error
  assert model.check is None  # nothing to check without the latent
  x = crop_image()
  x_hat = model.reconstruct(x).numpy()
  assert x_hat.shape == x.shape and x_hat.dtype == np.uint8
  model.compress_to_file(x, tmp_path / "t.tfci")
  np.testing.assert_array_equal(
      model.decompress_file(tmp_path / "t.tfci").numpy(), x_hat)
  with pytest.raises(ValueError, match="could not be found.*no rounding op"):
    model.analysis(x)
  assert "no rounding op" in model.get_config()["discovery_errors"]["latent"]


def test_load_errors(tmp_path):
  garbage = tmp_path / "garbage.metagraph"
  garbage.write_bytes(b"\x00\x01garbage" * 100)
  with pytest.raises(ValueError, match="not a tfci MetaGraphDef"):
    pretrained.load(str(garbage))
  with pytest.raises(ValueError, match="bmshj2018-factorized-msssim-8"):
    pretrained.load(str(tmp_path / "missing.metagraph"))
  with pytest.raises(pretrained.OfflineError, match="bin/download models"):
    pretrained.load("bmshj2018-factorized-msssim-8", tmp_path, offline=True)


def test_load_delegates_model_directories(tmp_path, monkeypatch):
  """A directory (bin/train export) goes to tfc_perception.models.load_model
  (whose own save/load round trip is tested in the models tests)."""
  models = pytest.importorskip(
      "tfc_perception.models",
      reason="tfc_perception.models (load_model) is not available")
  if not hasattr(models, "load_model"):
    pytest.skip("tfc_perception.models.load_model is not available yet")
  calls = []
  monkeypatch.setattr(models, "load_model",
                      lambda path: calls.append(path) or "loaded model")
  (tmp_path / "m").mkdir()
  assert pretrained.load(str(tmp_path / "m")) == "loaded model"
  assert calls == [str(tmp_path / "m")]
