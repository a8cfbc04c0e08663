"""Naming the internal tensors of a tfci graph where structure discovery
fails, and the first-load self-check (issue 17).

The graphs are tfc 1.x-style metagraphs built by hand
(`pretrained_tfci_test.legacy_metagraph`):
- "defeat": the symbols are computed with a float -> int -> float cast
  chain instead of a rounding op, and the receiver converts to uint8
  through a lookup table: discovery finds neither the latent nor the
  reconstruction (nor, so, latent_hat). Naming two tensors makes the model
  fully usable (analysis, quantize, synthesis, Din, Dr).
- "studio": the receiver clips the synthesis output to video range [16,
  235] before the usual clip/round: discovery crosses that clip as if it
  were the display clip and picks the unclipped synthesis output, which the
  first-load check catches; naming the clipped tensor passes the check.
- "centred": the sender reflect-pads the image and the receiver crops the
  centre back out: discovery takes the uncropped output as the
  reconstruction (a shifted image), which the check catches.
"""

import errno
import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from pretrained_download_test import make_registry
from pretrained_tfci_test import clip_round
from pretrained_tfci_test import crop_image
from pretrained_tfci_test import legacy_metagraph
from pretrained_tfci_test import lut_uint8
from tfc_perception import induced
from tfc_perception import pretrained
from tfc_perception.pretrained import checks
from tfc_perception.pretrained import tensors as tensors_lib
from tfc_perception.pretrained import tfci

NAMED = {"latent": "analysis/Conv2D:0",
         "reconstruction": "synthesis/output:0"}
NAMED_FLAG = "latent=analysis/Conv2D,reconstruction=synthesis/output:0"


def studio_range(x):
  """Video-range clip of the synthesis output, a named op."""
  return tf.clip_by_value(x, 16 / 255, 235 / 255, name="studio_range")


def write_graph(path, kind, seed=0):
  """Writes the "defeat", "studio" or "centred" graph; returns (path,
  analysis kernel, medians)."""
  rng = np.random.RandomState(seed)
  if kind == "defeat":
    mg, w1, med = legacy_metagraph(rng, lut_uint8, quantizer="cast_chain")
  elif kind == "studio":
    mg, w1, med = legacy_metagraph(rng, clip_round,
                                   post_synthesis=studio_range)
  else:
    mg, w1, med = legacy_metagraph(rng, clip_round, pad=4)
  path = str(path)
  with open(path, "wb") as f:
    f.write(mg.SerializeToString())
  return path, w1, med


@pytest.fixture(autouse=True)
def _fresh_check_memory():
  checks.clear_memory()
  yield
  checks.clear_memory()


@pytest.fixture(scope="module")
def defeat(tmp_path_factory):
  return write_graph(tmp_path_factory.mktemp("g") / "defeat.metagraph",
                     "defeat")


def test_parse_tensors():
  assert tensors_lib.parse_tensors(None) == {}
  assert tensors_lib.parse_tensors([]) == {}
  assert tensors_lib.parse_tensors(NAMED_FLAG) == NAMED
  assert tensors_lib.parse_tensors(NAMED_FLAG.split(",")) == NAMED
  assert tensors_lib.parse_tensors(
      {"image": "a/b", "latent_hat": "c:1"}) == {"image": "a/b:0",
                                                 "latent_hat": "c:1"}
  with pytest.raises(ValueError, match="unknown role 'lat'.*image, latent, "
                     "latent_hat, reconstruction"):
    tensors_lib.parse_tensors("lat=x:0")
  with pytest.raises(ValueError, match="not role=name"):
    tensors_lib.parse_tensors("analysis/Conv2D:0")
  with pytest.raises(ValueError, match="latent is given twice"):
    tensors_lib.parse_tensors(["latent=a", "latent=b"])
  with pytest.raises(ValueError, match="needs a tensor name"):
    tensors_lib.parse_tensors("latent=")


def test_registry_tensor_entries(tmp_path):
  models = [{"name": "m-1", "file": "m-1.metagraph", "family": "m",
             "url": "https://example.invalid/m-1.metagraph", "sha256": None,
             "tensors": {"latent": "own/latent"}},
            {"name": "m-2", "file": "m-2.metagraph", "family": "m",
             "url": "https://example.invalid/m-2.metagraph", "sha256": None}]
  reg = make_registry(tmp_path, [], models=models)
  assert reg.model_tensors("m-2") == {}
  path = tmp_path / "registry.json"
  data = json.loads(path.read_text())
  data["models"]["tensors_by_family"] = {"m": {"latent": "fam/latent:0",
                                               "reconstruction": "fam/rec"}}
  path.write_text(json.dumps(data))
  reg = pretrained.Registry(str(path))
  assert reg.model_tensors("m-1") == {"latent": "own/latent:0",
                                      "reconstruction": "fam/rec:0"}
  assert reg.model_tensors("m-2") == {"latent": "fam/latent:0",
                                      "reconstruction": "fam/rec:0"}
  data["models"]["items"][0]["tensors"] = {"y": "a:0"}
  path.write_text(json.dumps(data))
  with pytest.raises(ValueError, match="m-1: tensors: unknown role 'y'"):
    pretrained.Registry(str(path))


def test_discovery_fails_clearly_and_named_tensors_recover_the_model(defeat):
  path, w1, medians = defeat
  model = pretrained.load(path)
  assert model.tensors.missing() == ["latent", "latent_hat",
                                     "reconstruction"]
  assert "no rounding op" in model.tensors.errors["latent"]
  assert "GatherV2" in model.tensors.errors["reconstruction"]
  assert model.check is None
  x = crop_image()
  x_hat = model.reconstruct(x).numpy()  # the codec needs no internals
  with pytest.raises(ValueError, match="could not be found.*no rounding op.*"
                     "bin/download tensors defeat.*--tensors role=name"):
    model.analysis(x)

  named = pretrained.load(path, tensors=NAMED_FLAG)
  d = named.tensors
  assert d.latent == NAMED["latent"]
  assert d.reconstruction == NAMED["reconstruction"]
  assert d.latent_hat == "add_2:0"  # found from the named reconstruction
  assert d.sources == {"latent": "given", "reconstruction": "given",
                       "latent_hat": "discovered", "image": "discovered"}
  assert named.check["ok"] and named.check["max_abs_diff"] == 0
  assert named.check["source"] == "run" and named.check["stored_in"] is None
  y = named.analysis(x).numpy()
  y0 = tf.nn.conv2d(x.astype(np.float32) / 255., w1, 4, "SAME").numpy()
  np.testing.assert_allclose(y, y0, atol=1e-5 * np.abs(y0).max())
  np.testing.assert_array_equal(named.quantize(y).numpy(),
                                np.floor(y + (.5 - medians)) + medians)
  pixels = clip_round(named.synthesis(named.quantize(y))[:, :x.shape[1],
                                                           :x.shape[2]])
  np.testing.assert_array_equal(pixels.numpy(), x_hat)
  # Din and Dr of the Fig. 3 pipeline (64x48 images, which the pipeline does
  # not pad): Din is the distance between the analysis outputs, Dr the MSE
  # between what the graph's own decoder outputs.
  x1 = np.pad(x, ((0, 0), (0, 3), (0, 1), (0, 0)), mode="reflect")
  x2 = np.clip(x1 + np.random.RandomState(1).normal(0, 12, x1.shape), 0,
               255).astype(np.uint8)
  r = induced.induced_distances(named, x1, x2)
  y1, y2 = (tf.nn.conv2d(v.astype(np.float32) / 255., w1, 4, "SAME").numpy()
            for v in (x1, x2))
  assert r["din"][0] == pytest.approx(np.linalg.norm(y1 - y2), rel=1e-4)
  d1, d2 = (named.reconstruct(v).numpy() / 255. for v in (x1, x2))
  assert r["dr"][0] == pytest.approx(np.mean((d1 - d2) ** 2), rel=1e-4)
  assert r["dr"][0] > 0 and r["din"][0] > 0


def test_wrong_tensor_names_fail_in_one_line_with_candidates(defeat):
  path = defeat[0]
  cases = [
      ("latent=analysis/Conv2d:0", "latent='analysis/Conv2d:0' is not a "
       "tensor of this graph; nearest candidates for latent: "
       "analysis/Conv2D:0"),
      ("latent=Cast:0", "latent='Cast:0' has dtype int32, needs a float "
       "tensor; nearest candidates for latent: "),
      ("latent_hat=analysis/Conv2D", "latent_hat='analysis/Conv2D:0' is not "
       "between the receiver's bit strings"),
      ("reconstruction=add_2:0", "reconstruction='add_2:0' has 4 channels"),
      ("reconstruction=mul:0", "depends on the receiver input Placeholder_2"),
  ]
  for spec, message in cases:
    with pytest.raises(ValueError) as e:
      pretrained.load(path, tensors=spec)
    text = str(e.value)
    assert "\n" not in text and message in text, text
    assert "bin/download tensors defeat" in text


@pytest.mark.parametrize("kind", ["studio", "centred"])
def test_first_load_check_catches_a_wrong_pick(tmp_path, kind):
  path, _, _ = write_graph(tmp_path / f"{kind}.metagraph", kind)
  model = pretrained.load(path)
  assert not model.tensors.missing()  # discovery found every role ...
  check = model.check  # ... but not the right reconstruction
  assert not check["ok"] and check["max_abs_diff"] > 10, check
  assert "differs from the graph's own decoder" in check["reason"]
  x = crop_image()
  assert model.reconstruct(x).shape == x.shape  # the codec still works
  for call in (lambda: model.analysis(x), lambda: model(x),
               lambda: model.synthesis(np.zeros([1, 4, 4, 4], np.float32)),
               lambda: model.quantize(np.zeros([1, 4, 4, 4], np.float32))):
    with pytest.raises(ValueError, match="refused: the first-load "
                       "self-check .* failed: synthesis.*differs.*"
                       "--tensors role=name"):
      call()
  if kind == "studio":
    fixed = pretrained.load(path, tensors="reconstruction=studio_range")
    assert fixed.check["ok"] and fixed.check["max_abs_diff"] == 0
    assert fixed.tensors.reconstruction == "studio_range:0"
    x_hat, _ = fixed(x)
    assert x_hat.numpy().min() >= 16 / 255 - 1e-6
    np.testing.assert_array_equal(
        clip_round(x_hat).numpy(), fixed.reconstruct(x).numpy())


def test_a_latent_after_the_rounding_is_refused(defeat):
  """Cast_1 (the float -> int -> float chain) reproduces the codec but is
  the quantised latent."""
  model = pretrained.load(defeat[0], tensors=dict(NAMED, latent="Cast_1"))
  assert not model.check["ok"]
  assert "Cast_1:0" in model.check["reason"]


def _serve(tmp_path, path, name, tensors=None):
  """A registry with model `name` (its file in a local folder used as the
  cache) and optional registry tensors."""
  entry = {"name": name, "file": f"{name}.metagraph", "family": "fam",
           "metric": "mse", "url": f"https://example.invalid/{name}.metagraph",
           "sha256": None}
  if tensors:
    entry["tensors"] = tensors
  reg = make_registry(tmp_path, [], models=[entry])
  cache = tmp_path / "cache"
  os.makedirs(cache / "models", exist_ok=True)
  with open(path, "rb") as src, open(cache / "models" / entry["file"],
                                     "wb") as dst:
    dst.write(src.read())
  return reg, str(cache)


def test_registry_entry_names_the_tensors_and_the_check_is_stored(
    tmp_path, defeat, monkeypatch):
  reg, cache = _serve(tmp_path, defeat[0], "fam-1", tensors=NAMED)
  model = pretrained.load("fam-1", cache, offline=True, registry=reg)
  assert model.tensors.sources["latent"] == "registry"
  record = os.path.join(cache, "models", "fam-1.metagraph.check.json")
  assert model.check["source"] == "run" and model.check["stored_in"] == record
  stored = json.loads(open(record).read())
  assert stored["sha256"] == model.sha256 and len(stored["checks"]) == 1
  entry = stored["checks"][0]
  assert entry["ok"] is True and entry["max_abs_diff"] == 0
  assert entry["tensors"]["latent"] == NAMED["latent"]
  assert entry["tensors"]["latent_hat"] == "add_2:0"
  from tfc_perception import __version__  # pylint: disable=g-import-not-at-top
  assert entry["package_version"] == __version__
  mtime = os.stat(record).st_mtime_ns

  # A later load (a new process: nothing in memory) reads the record and
  # does not run the check again.
  checks.clear_memory()
  def fail(*args, **kwargs):
    raise AssertionError("self_check ran again")
  monkeypatch.setattr(tfci.TfciModel, "self_check", fail)
  again = pretrained.load("fam-1", cache, offline=True, registry=reg)
  assert again.check["source"] == "stored" and again.check["ok"]
  assert again.check["checked_at"] == entry["checked_at"]
  assert os.stat(record).st_mtime_ns == mtime
  x = crop_image()
  assert again.analysis(x).shape == (1, 16, 12, 4)
  # ... and in the same process, from memory.
  assert pretrained.load("fam-1", cache, offline=True,
                         registry=reg).check["source"] == "memory"
  # User tensors override the registry's; another set is checked once more
  # and stored beside the first.
  monkeypatch.undo()
  other = pretrained.load("fam-1", cache, offline=True, registry=reg,
                          tensors={"latent_hat": "Cast_3:0"})
  assert other.tensors.sources["latent_hat"] == "given"
  assert other.check["source"] == "run"
  assert len(json.loads(open(record).read())["checks"]) == 2


def test_a_failed_check_is_stored_and_named_tensors_unlock_the_model(
    tmp_path, monkeypatch):
  path, _, _ = write_graph(tmp_path / "s.metagraph", "studio")
  reg, cache = _serve(tmp_path, path, "fam-2")
  first = pretrained.load("fam-2", cache, offline=True, registry=reg)
  assert not first.check["ok"]
  checks.clear_memory()
  monkeypatch.setattr(tfci.TfciModel, "self_check", lambda *a, **k: 1 / 0)
  again = pretrained.load("fam-2", cache, offline=True, registry=reg)
  assert again.check["source"] == "stored" and not again.check["ok"]
  with pytest.raises(ValueError, match=r"failed: synthesis.*\(result stored "
                     r"in .*fam-2\.metagraph\.check\.json\)"):
    again.analysis(crop_image())
  monkeypatch.undo()
  fixed = pretrained.load("fam-2", cache, offline=True, registry=reg,
                          tensors="reconstruction=studio_range")
  assert fixed.check["ok"] and fixed.analysis(crop_image()).shape[-1] == 4


def test_read_only_cache(tmp_path, defeat, monkeypatch, caplog):
  reg, cache = _serve(tmp_path, defeat[0], "fam-3", tensors=NAMED)
  # Loading a model whose check is stored writes nothing.
  pretrained.load("fam-3", cache, offline=True, registry=reg)
  checks.clear_memory()

  def tree():
    return sorted((os.path.relpath(os.path.join(d, f), cache),
                   os.stat(os.path.join(d, f)).st_mtime_ns)
                  for d, _, fs in os.walk(cache) for f in fs)
  before = tree()
  def no_writes(*args, **kwargs):
    raise OSError(errno.EROFS, "Read-only file system")
  monkeypatch.setattr(checks._io, "write_json", no_writes)  # pylint: disable=protected-access
  assert pretrained.load("fam-3", cache, offline=True,
                         registry=reg).check["source"] == "stored"
  assert tree() == before
  # Where the record cannot be written, the check runs, is kept in memory
  # for the process, and the warning is given once.
  caplog.set_level(logging.WARNING)
  with caplog.at_level(logging.WARNING):
    run = pretrained.load("fam-3", cache, offline=True, registry=reg,
                          tensors={"latent_hat": "Cast_3:0"})
    assert run.check["source"] == "run" and run.check["stored_in"] is None
    assert run.analysis(crop_image()).shape == (1, 16, 12, 4)
    again = pretrained.load("fam-3", cache, offline=True, registry=reg,
                            tensors={"latent_hat": "Cast_3:0"})
  assert again.check["source"] == "memory" and again.check["ok"]
  warnings = [r for r in caplog.records
              if "cannot store the self-check" in r.getMessage()]
  assert len(warnings) == 1 and "kept in memory" in warnings[0].getMessage()
  assert tree() == before


def test_list_tensors_marks_discovery_and_candidates(defeat):
  listing = pretrained.list_tensors(defeat[0])
  rows = {r["name"]: r for r in listing["rows"]}
  assert listing["roles"]["latent"]["tensor"] is None
  assert "no rounding op" in listing["roles"]["latent"]["error"]
  assert listing["roles"]["image"] == {"tensor": "analysis/truediv:0",
                                       "source": "discovered", "error": None}
  conv = rows["analysis/Conv2D:0"]
  assert (conv["op"], conv["dtype"], conv["shape"], conv["side"]) == (
      "Conv2D", "float32", (1, None, None, 4), "sender")
  assert conv["candidate_for"] == ["latent"]
  assert rows["synthesis/output:0"]["candidate_for"] == ["latent_hat",
                                                         "reconstruction"]
  assert rows["analysis/truediv:0"]["roles"] == ["image (discovered)"]
  assert rows["Cast:0"]["candidate_for"] == []  # int32
  assert rows["mul:0"]["candidate_for"] == []  # after the receiver's crop
  lines = tensors_lib.format_listing(listing, candidates_only=True)
  assert any(line.startswith("# latent ") and "not found" in line
             for line in lines)
  assert len(lines) == 7 + sum(1 for r in listing["rows"]
                               if r["roles"] or r["candidate_for"])


def test_evaluation_passes_tensors_and_keys_its_cache_by_them(tmp_path,
                                                              defeat):
  from tfc_perception.evaluation import _models  # pylint: disable=g-import-not-at-top
  path = defeat[0]
  plain, = _models.load_models([path])
  named, = _models.load_models([path], tensors=NAMED_FLAG.split(","))
  assert plain.key != named.key  # other tensors, other cached outputs
  assert named.model.tensors.sources["latent"] == "given"
  assert named.model.check["ok"]
  (tmp_path / "saved").mkdir()
  (tmp_path / "saved" / "model.json").write_text("{}")
  with pytest.raises(ValueError, match="saved project model"):
    _models.load_models([path, str(tmp_path / "saved")], tensors=NAMED_FLAG)
  with pytest.raises(ValueError, match="unknown role"):
    _models.load_models([path], tensors="y=analysis/Conv2D:0")


def test_fig3_pipeline_from_a_family_line_in_the_registry(tmp_path, defeat,
                                                          monkeypatch):
  """One line of registry JSON (models.tensors_by_family) fixes a family
  for every tool that loads models by name."""
  from tfc_perception.data import iqa as iqa_data  # pylint: disable=g-import-not-at-top
  from tfc_perception.evaluation import iqa as iqa_eval  # pylint: disable=g-import-not-at-top
  from tfc_perception.pretrained import registry as registry_lib  # pylint: disable=g-import-not-at-top
  from tid_layout import make_tid_layout  # pylint: disable=g-import-not-at-top
  reg, cache = _serve(tmp_path, defeat[0], "fam-1")
  path = tmp_path / "registry.json"
  data = json.loads(path.read_text())
  data["models"]["tensors_by_family"] = {"fam": NAMED}
  path.write_text(json.dumps(data))
  monkeypatch.setattr(registry_lib, "_DEFAULT",
                      pretrained.Registry(str(path)))
  monkeypatch.setenv("TFC_PERCEPTION_CACHE", cache)
  root = str(tmp_path / "tid")
  make_tid_layout(root, n_refs=1)
  ds = iqa_data.load_tid2013(root)
  out = iqa_eval.evaluate_iqa(ds, str(tmp_path / "out"), models=["fam-1"],
                              distances=["dr", "din"], n_bootstrap=0,
                              progress=False)
  table = out["pairs"]
  assert len(table) == 10 and (table["din@fam-1"] > 0).all()
  x1 = np.stack([iqa_data.read_image(p) for p in ds.pairs.reference_path])
  x2 = np.stack([iqa_data.read_image(p) for p in ds.pairs.distorted_path])
  direct = induced.induced_distances(
      pretrained.load(defeat[0], tensors=NAMED), x1, x2)
  np.testing.assert_allclose(table["dr@fam-1"], direct["dr"], rtol=1e-4,
                             atol=1e-7)
  assert os.path.exists(os.path.join(cache, "models",
                                     "fam-1.metagraph.check.json"))


def test_loading_from_a_truly_read_only_cache(tmp_path, defeat):
  """A read-only filesystem (bind mount, or write bits removed): a stored
  check is read and nothing is written; with no record, the check runs in
  memory and one warning says so."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from conftest import REPO_ROOT  # pylint: disable=g-import-not-at-top
  from pretrained_download_test import _read_only_runner  # pylint: disable=g-import-not-at-top
  reg, cache = _serve(tmp_path, defeat[0], "fam-4", tensors=NAMED)
  # fam-5: another graph of the family, downloaded but never loaded.
  data = json.loads((tmp_path / "registry.json").read_text())
  data["models"]["items"].append(dict(data["models"]["items"][0],
                                      name="fam-5", file="fam-5.metagraph"))
  (tmp_path / "registry.json").write_text(json.dumps(data))
  write_graph(os.path.join(cache, "models", "fam-5.metagraph"), "defeat",
              seed=1)
  reg = pretrained.Registry(str(tmp_path / "registry.json"))
  pretrained.load("fam-4", cache, offline=True, registry=reg)
  pretrained.download("fam-5", cache, offline=True, registry=reg)  # TOFU
  before = sorted(os.listdir(os.path.join(cache, "models")))
  runner = _read_only_runner(cache)
  if runner is None:
    pytest.skip("cannot make a read-only directory here (root without "
                "mount namespaces)")
  code = (
      "import logging\n"
      "from tfc_perception import pretrained\n"
      f"reg = pretrained.Registry({str(tmp_path / 'registry.json')!r})\n"
      "for name in ('fam-4', 'fam-5', 'fam-5'):\n"
      f"  m = pretrained.load(name, {cache!r}, offline=True, registry=reg)\n"
      "  print(name, m.check['source'], m.check['ok'], m.check['stored_in'])\n"
      "  m.analysis(m.reconstruct(__import__('numpy').zeros([1, 32, 32, 3], "
      "'uint8')))\n")
  env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  out = subprocess.run(runner([sys.executable, "-c", code]),
                       capture_output=True, text=True, env=env, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  record = os.path.join(cache, "models", "fam-4.metagraph" + checks.SUFFIX)
  assert out.stdout.splitlines() == [f"fam-4 stored True {record}",
                                     "fam-5 run True None",
                                     "fam-5 memory True None"]
  assert out.stderr.count("cannot store the self-check result") == 1
  assert sorted(os.listdir(os.path.join(cache, "models"))) == before
