"""Tests of the pretrained registry (pretrained/registry.json): the paper's 16
bmshj2018-factorized models, Kodak with pinned hashes, TID2013 as manual."""

import configparser
import json
import os

import pytest

from conftest import REPO_ROOT, shared_path
from tfc_perception import pretrained
from tfc_perception.pretrained import registry as registry_lib

BASE = "https://storage.googleapis.com/tensorflow_compression/metagraphs"


def test_canonical_registry_equals_the_packaged_copy():
  with open(os.path.join(REPO_ROOT, "pretrained", "registry.json"), "rb") as f:
    canonical = f.read()
  with open(registry_lib.REGISTRY_PATH, "rb") as f:
    packaged = f.read()
  assert canonical == packaged, (
      "pretrained/registry.json and tfc_perception/pretrained/registry.json "
      "differ: copy the canonical file over the packaged one")
  config = configparser.ConfigParser()
  config.read(os.path.join(REPO_ROOT, "setup.cfg"))
  assert "registry.json" in config["options.package_data"][
      "tfc_perception.pretrained"]


def test_models():
  models = pretrained.list_models()
  assert len(models) == 16
  names = [m["name"] for m in models]
  assert names == [f"bmshj2018-factorized-{metric}-{q}"
                   for metric in ("mse", "msssim") for q in range(1, 9)]
  for m in models:
    assert m["url"] == f"{BASE}/{m['name']}.metagraph"
    assert m["metric"] in ("mse", "msssim") and 1 <= m["quality"] <= 8
    assert (m["N"], m["M"]) == ((128, 192) if m["quality"] <= 5 else (192, 320))
    assert m["sha256"] is None  # tfc publishes no checksums


def test_kodak_and_tid2013_entries():
  reg = pretrained.default_registry()
  kodak = reg.datasets["kodak"]
  assert [a.file for a in kodak] == [f"kodim{i:02d}.png" for i in range(1, 25)]
  for a in kodak:
    assert a.url == f"http://r0k.us/graphics/kodak/kodak/{a.file}"
    assert a.sha256 and len(a.sha256) == 64
  assert "tid2013" in reg.manual and "tid2013" not in reg.datasets
  entry = reg.manual["tid2013"]
  assert entry["archive_url"].endswith(".rar")
  assert any("reference_images" in line for line in entry["expected_layout"])
  with pytest.raises(KeyError, match="not downloaded automatically"):
    reg.get("tid2013")


def test_kodak_hashes_equal_the_shared_sha256sums():
  sums = {}
  with open(shared_path("kodak", "SHA256SUMS")) as f:
    for line in f:
      digest, name = line.split()
      sums[os.path.basename(name)] = digest
  reg = pretrained.default_registry()
  pinned = {a.file: a.sha256 for a in reg.datasets["kodak"]}
  assert pinned == {k: v for k, v in sums.items() if k.startswith("kodim")}


@pytest.mark.parametrize("change, message", [
    (lambda d: d["models"]["items"][0].update(sha256="abc"), "64 lower-case"),
    (lambda d: d["models"]["items"].append(dict(d["models"]["items"][0])),
     "duplicate"),
    (lambda d: d["models"]["items"][0].update(file="../x"), "plain file"),
    (lambda d: d["models"]["items"][0].pop("url"), "url"),
])
def test_malformed_registries_are_rejected(tmp_path, change, message):
  with open(registry_lib.REGISTRY_PATH) as f:
    data = json.load(f)
  change(data)
  path = tmp_path / "r.json"
  path.write_text(json.dumps(data))
  with pytest.raises(ValueError, match=message):
    pretrained.Registry(str(path))
