"""Pretrained models and datasets: registry, verified downloads, tfci loading.

The paper's human-opinion (Fig. 3) and contrast (Fig. 4 right, Fig. 16) results
use tensorflow-compression's published bmshj2018-factorized-mse-[1-8] and
-msssim-[1-8] models. This package lists them (`list_models`), downloads them
once into a verified cache (`download`) and loads them (`load`) as objects
with the same interface as `tfc_perception.models` (analysis, quantize,
synthesis, call, reconstruct, compress, decompress). See docs/pretrained.md.
"""

import os
from typing import List, Optional, Sequence

from tfc_perception.pretrained import checks
from tfc_perception.pretrained import tensors as tensors_lib
from tfc_perception.pretrained.downloader import ChecksumError
from tfc_perception.pretrained.downloader import download
from tfc_perception.pretrained.downloader import download_dataset
from tfc_perception.pretrained.downloader import DownloadError
from tfc_perception.pretrained.downloader import OfflineError
from tfc_perception.pretrained.downloader import read_manifest
from tfc_perception.pretrained.downloader import resolve_cache_dir
from tfc_perception.pretrained.registry import default_registry
from tfc_perception.pretrained.registry import Registry

__all__ = [
    "list_models", "list_artifacts", "download", "download_models",
    "download_dataset", "load", "list_tensors", "decompress_tfci", "Registry",
    "default_registry", "resolve_cache_dir", "read_manifest", "DownloadError",
    "ChecksumError", "OfflineError",
]


def list_models(registry: Optional[Registry] = None) -> List[dict]:
  """The registry's pretrained models.

  Args:
    registry: a `Registry` (default: the one shipped with the package).

  Returns:
    One dict per model: name, url, sha256 (None if not pinned), metric,
    quality, N, M, family.
  """
  reg = registry or default_registry()
  return [dict(name=m.name, url=m.url, sha256=m.sha256, **dict(m.info))
          for m in reg.models]


def download_models(names: Optional[Sequence[str]] = None,
                    cache_dir: Optional[str] = None,
                    url_prefix: Optional[str] = None, offline: bool = False,
                    *, registry: Optional[Registry] = None,
                    **kwargs) -> List[str]:
  """Downloads (once, verified) several registry models.

  Args:
    names: model names; None means every model in the registry.
    cache_dir, url_prefix, offline, registry, **kwargs: see `download`.

  Returns:
    The cached paths, in the order of `names`.

  Raises:
    KeyError: an unknown or non-model name (checked before any download).
    See `download` for the others.
  """
  reg = registry or default_registry()
  if names is None:
    names = reg.model_names()
  names = list(names)
  if not names:
    raise ValueError("no model names given (pass names, or None for all).")
  bad = [n for n in names if n not in reg or reg.get(n).kind != "model"]
  if bad:
    raise KeyError(f"unknown model(s) {', '.join(bad)}; accepted: "
                   f"{', '.join(reg.model_names())}.")
  return [download(n, cache_dir, url_prefix, offline, registry=reg, **kwargs)
          for n in names]


def list_artifacts(cache_dir: Optional[str] = None,
                   registry: Optional[Registry] = None) -> List[dict]:
  """Every registry entry with its cache status (for `bin/download --list`).

  Returns:
    Dicts with kind ("model", dataset name, or "manual"), name, detail, and
    cached (path or None; for datasets "k/n files").
  """
  reg = registry or default_registry()
  root = resolve_cache_dir(cache_dir)
  rows = []
  for m in reg.models:
    path = os.path.join(root, m.relpath)
    rows.append(dict(
        kind="model", name=m.name,
        detail=(f"{m.get('metric')} q{m.get('quality')} N={m.get('N')} "
                f"M={m.get('M')} sha256={'pinned' if m.sha256 else 'TOFU'}"),
        cached=path if os.path.exists(path) else None))
  for dname, items in reg.datasets.items():
    have = sum(os.path.exists(os.path.join(root, a.relpath)) for a in items)
    rows.append(dict(kind="dataset", name=dname,
                     detail=f"{len(items)} files, sha256 pinned",
                     cached=f"{have}/{len(items)} in {os.path.join(root, dname)}"))
  for dname, entry in reg.manual.items():
    rows.append(dict(kind="manual", name=dname,
                     detail=f"manual download: {entry.get('archive_url')}",
                     cached=None))
  return rows


def load(name_or_path, cache_dir: Optional[str] = None,
         url_prefix: Optional[str] = None, offline: bool = False, *,
         registry: Optional[Registry] = None, tensors=None,
         **download_kwargs):
  """Loads a pretrained model with the project's model interface.

  Args:
    name_or_path: one of
      - a registry model name ("bmshj2018-factorized-mse-3"): downloaded into
        the cache if missing (verified), then loaded as a `TfciModel`;
      - a path to a tfci `.metagraph` file (any tfc-format model);
      - a directory written by `bin/train` / `tfc_perception.models.save_model`
        (delegated to `tfc_perception.models.load_model`).
    cache_dir, url_prefix, offline: see `download`.
    registry: a `Registry` (default: the shipped one).
    tensors: internal tensors of a tfci model to use instead of those found
      by structure, for any subset of the roles image, latent, latent_hat,
      reconstruction: {role: name} or "role=name,..." (names as listed by
      `bin/download tensors MODEL`). They override the registry entry's
      `tensors`. Not accepted for saved project models.
    **download_kwargs: timeout, retries, backoff, progress.

  Returns:
    A `tfci.TfciModel` or the loaded Keras model. A `TfciModel` has run (or,
    for a registry model, read from `<cached file>.check.json`) its
    first-load self-check (`model.check`); see docs/pretrained.md.

  Raises:
    ValueError: unknown name / not a model (message lists what is accepted),
      a metagraph whose signatures could not be understood, or `tensors`
      that do not exist or do not fit their role (one line naming the role
      and the nearest candidates).
    FileNotFoundError, OfflineError, DownloadError: see `download`.
  """
  if not isinstance(name_or_path, (str, os.PathLike)) or not str(name_or_path):
    raise ValueError("name_or_path must be a registry model name or a path, "
                     f"got {name_or_path!r}.")
  reg = registry or default_registry()
  name = os.fspath(name_or_path)
  given = tensors_lib.parse_tensors(tensors)
  from tfc_perception.pretrained import tfci  # pylint: disable=g-import-not-at-top
  if name in reg and reg.get(name).kind == "model":
    art = reg.get(name)
    path = download(name, cache_dir, url_prefix, offline, registry=reg,
                    **download_kwargs)
    from tfc_perception.pretrained import downloader as dl  # pylint: disable=g-import-not-at-top
    known = reg.model_tensors(name)
    sources = dict({r: "registry" for r in known}, **{r: "given"
                                                      for r in given})
    return tfci.TfciModel(path, name=name, distortion=art.get("metric"),
                          sha256=art.sha256 or dl.sha256_file(path),
                          tensors=dict(known, **given),
                          tensor_sources=sources,
                          check_record=path + checks.SUFFIX)
  if os.path.isdir(name):
    if given:
      raise ValueError(f"tensors= names tensors of tfci .metagraph models; "
                       f"{name} is a directory (a model saved by bin/train), "
                       "whose parts are its Keras layers.")
    try:
      from tfc_perception.models import load_model  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise RuntimeError(
          f"{name} is a directory (a model saved by bin/train), but "
          f"tfc_perception.models.load_model is not available: {e}") from e
    return load_model(name)
  if os.path.isfile(name):
    return tfci.TfciModel(name, tensors=given)
  raise ValueError(
      f"{name!r} is neither a registry model nor an existing path; accepted: "
      f"{', '.join(reg.model_names())}, a .metagraph file, or a directory "
      "saved by bin/train.")


def list_tensors(name_or_path, cache_dir: Optional[str] = None,
                 url_prefix: Optional[str] = None, offline: bool = False, *,
                 registry: Optional[Registry] = None, tensors=None,
                 **download_kwargs) -> dict:
  """Every tensor of a tfci model's graph, with the roles marked, as tfc's
  `tfci.py tensors` lists them (for `bin/download tensors MODEL`): step 1
  of naming the tensors where discovery fails (docs/pretrained.md).

  Args:
    name_or_path: a registry model name or a .metagraph file.
    cache_dir, url_prefix, offline, registry, tensors, **download_kwargs:
      see `load`.

  Returns:
    {"model", "path", "sha256",
     "roles": {role: {"tensor": name or None, "source": "discovered" |
               "given" | "registry" | None, "error": why not found}},
     "reconstruction_scale", "check": the first-load self-check (None if
     a role is missing),
     "rows": `tensors.tensor_rows` (name, op, dtype, shape, side, roles,
             candidate_for), sorted by name}.

  Raises:
    ValueError: not a tfci model (a saved project directory), or see `load`.
  """
  if os.path.isdir(os.fspath(name_or_path)):
    raise ValueError(f"{name_or_path} is a directory (a model saved by "
                     "bin/train), not a tfci .metagraph model; its parts are "
                     "its Keras layers.")
  model = load(name_or_path, cache_dir, url_prefix, offline,
               registry=registry, tensors=tensors, **download_kwargs)
  d = model.tensors
  return {
      "model": model.model_name, "path": model.path, "sha256": model.sha256,
      "roles": {r: {"tensor": t, "source": d.sources.get(r) if t else None,
                    "error": None if t else d.errors.get(r)}
                for r, t in d.roles().items()},
      "reconstruction_scale": d.reconstruction_scale, "check": model.check,
      "rows": model.tensor_rows()}


def decompress_tfci(path, cache_dir: Optional[str] = None,
                    url_prefix: Optional[str] = None, offline: bool = False,
                    max_pixels: Optional[int] = None, *,
                    registry: Optional[Registry] = None, **download_kwargs):
  """Decodes a .tfci file (e.g. made by tfc's `tfci.py compress`) with the
  model named in it (feature "MD").

  The name is an untrusted input: it is resolved only through the registry
  (downloaded into the cache if needed, like `load`) and the cache
  (`<cache>/models/<name>.metagraph`), never as a path, because a metagraph
  is code (its graph can read and write files): a file could otherwise name
  any graph on this machine.

  Args:
    path: the .tfci file.
    cache_dir, url_prefix, offline, registry, **download_kwargs: see `load`.
    max_pixels: largest H * W the file may claim (checked before decoding);
      None: `tfc_perception.codec.MAX_PIXELS` (2^28).

  Returns:
    uint8 image [1, H, W, 3].

  Raises:
    ValueError: not a .tfci file, a name that is not a plain model name, or
      one that is neither in the registry nor in the cache; see also
      `TfciModel.decompress_file`.
    FileNotFoundError, OfflineError, DownloadError: see `load`.
  """
  from tfc_perception import codec  # pylint: disable=g-import-not-at-top
  from tfc_perception.pretrained import tfci  # pylint: disable=g-import-not-at-top
  name, _ = tfci.read_tfci(path)
  reg = registry or default_registry()
  if name in reg and reg.get(name).kind == "model":
    model = load(name, cache_dir, url_prefix, offline, registry=reg,
                 **download_kwargs)
  else:
    if not codec.is_plain_name(name):
      raise ValueError(
          f"{path} names model {name!r}, which is not a plain model name; "
          "decompress_tfci resolves names through the registry and the cache "
          "only, never as paths.")
    cached = os.path.join(resolve_cache_dir(cache_dir), "models",
                          name + ".metagraph")
    if not os.path.isfile(cached):
      raise ValueError(
          f"{path} names model {name!r}, which is neither in the registry nor "
          f"in the cache ({cached} is missing). Copy that model's .metagraph "
          "there if you trust it (a metagraph is code), or decode with "
          "TfciModel(path).decompress_file / bin/codec decompress MODEL.")
    model = tfci.TfciModel(cached, name=name)
  return model.decompress_file(
      path, codec.MAX_PIXELS if max_pixels is None else max_pixels)
