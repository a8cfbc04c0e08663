"""Rate-distortion of compression models on an image folder (e.g. Kodak).

For every model and image: the actual bit-stream size of `compress` (bytes of
the range-coded strings, not the entropy estimate) as bits per pixel, PSNR,
MS-SSIM (and in dB, -10 log10(1 - MS-SSIM)), NLPD between the original and
the `decompress`ed image, and the encode / decode wall times. Results are
written as CSV, as JSON files shaped like CompressAI's published results
(name, description, results: {psnr-rgb, ms-ssim-rgb, bpp, encoding_time,
decoding_time}) -- one per model family, one point per model -- and as an RD
plot with the published bmshj2018-factorized Kodak curve for reference
(Balle et al. 2018; the numbers of ../shared/reference/tfci.md).

Outputs in `output_dir`:
  per_image.csv   model, family, image, height, width, bytes, bpp, psnr,
                  msssim, msssim_db, nlpd, encode_s, decode_s.
  summary.csv     per model: means over the images of the same columns.
  <family>.json   CompressAI-shaped results, points sorted by bpp.
  reference-bmshj2018-factorized-kodak.json  the published curve, same shape.
  rd.png          PSNR and MS-SSIM (dB) against bpp.
  manifest.json   command, settings, versions, git commit, wall time.
"""

import glob
import io
import math
import os
import re
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from tfc_perception import _checks
from tfc_perception import _io
from tfc_perception.data import image_io
from tfc_perception.data import iqa as iqa_data
from tfc_perception.evaluation import _models

__all__ = ["PUBLISHED_BMSHJ2018_FACTORIZED_KODAK", "list_images",
           "evaluate_rd", "plot_rd", "rd_figure", "msssim_db",
           "performance_ratio"]

# bmshj2018-factorized (MSE), Kodak (24 images, RGB), the paper authors'
# published curve as listed in ../shared/reference/tfci.md.
PUBLISHED_BMSHJ2018_FACTORIZED_KODAK = {
    "name": "bmshj2018-factorized (published)",
    "description": "Balle et al. 2018 factorized prior, MSE-optimized, Kodak "
                   "24 images RGB; the authors' published rate-distortion "
                   "points (reference/tfci.md).",
    "results": {
        "bpp": [0.1198, 0.1946, 0.3160, 0.4811, 0.7213, 1.0608, 1.4587,
                1.9576],
        "psnr-rgb": [26.78, 28.35, 30.02, 31.73, 33.69, 35.82, 38.02, 40.13],
        "ms-ssim-rgb": [.9037, .9310, .9548, .9691, .9808, .9868, .9921,
                        .9950],
    },
}

_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")


def msssim_db(msssim) -> np.ndarray:
  """MS-SSIM in dB, -10 log10(1 - MS-SSIM) (inf for a perfect 1)."""
  v = np.asarray(msssim, np.float64)
  with np.errstate(divide="ignore"):
    return -10.0 * np.log10(np.maximum(1.0 - v, 0.0))


def performance_ratio(distortion1, rate1, distortion0, rate0) -> np.ndarray:
  """The performance ratio of Eq. 13 of Hepburn et al. (2022): P1 / P0 with
  P = distortion / rate, elementwise (e.g. per bin along a line, or per
  contrast α).

  The paper reads a ratio below 1 as model 1 performing better there. P
  falls with a lower distortion and with a higher rate, so unlike a
  distortion ratio it also counts where a model spends its bits.

  Args:
    distortion1, rate1: distortion and rate of model 1 (numbers or arrays of
      one shape; distortions >= 0, rates > 0, e.g. squared error and bits).
    distortion0, rate0: the same for model 0.

  Returns:
    float64 array (0-d for scalars) of (d1 / r1) / (d0 / r0).

  Raises:
    ValueError: different shapes, non-finite values, a negative distortion,
      a rate <= 0 or a distortion of model 0 equal to 0 (P0 = 0).
  """
  names = ("distortion1", "rate1", "distortion0", "rate0")
  values = [np.asarray(v, np.float64) for v in (distortion1, rate1,
                                                distortion0, rate0)]
  shapes = {v.shape for v in values}
  if len(shapes) != 1:
    raise ValueError("distortion1, rate1, distortion0 and rate0 must have one "
                     f"shape, got {[v.shape for v in values]}.")
  for name, v in zip(names, values):
    if not np.all(np.isfinite(v)):
      raise ValueError(f"{name} must be finite, got {v!r}.")
  d1, r1, d0, r0 = values
  if np.any(d1 < 0) or np.any(d0 < 0):
    raise ValueError("distortions must be >= 0.")
  if np.any(r1 <= 0) or np.any(r0 <= 0):
    raise ValueError("rates must be > 0 (P = distortion / rate); got "
                     f"min {min(r1.min(), r0.min())!r}.")
  if np.any(d0 == 0):
    raise ValueError("distortion0 must be > 0 (P0 is the denominator); add "
                     "a floor to both distortions if a model is exact.")
  return (d1 / r1) / (d0 / r0)


def list_images(data, limit: Optional[int] = None) -> List[str]:
  """Image files of a folder (sorted), a glob, or a single file.

  Raises:
    FileNotFoundError: nothing matches.
    ValueError: bad limit.
  """
  data = os.fspath(data)
  if os.path.isdir(data):
    files = sorted(os.path.join(data, f) for f in os.listdir(data)
                   if f.lower().endswith(_EXTS))
  elif os.path.isfile(data):
    files = [data]
  else:
    files = sorted(f for f in glob.glob(data) if f.lower().endswith(_EXTS))
  if not files:
    raise FileNotFoundError(f"no images ({', '.join(_EXTS)}) found at {data}.")
  if limit is not None:
    files = files[:_checks.check_int(limit, "limit", 1)]
  return files


def _metrics(x: np.ndarray, x_hat: np.ndarray, with_nlpd: bool
             ) -> Dict[str, float]:
  from tfc_perception import distances  # pylint: disable=g-import-not-at-top
  a, b = x[None], x_hat[None]
  out = {"psnr": float(distances.psnr(a, b)[0])}
  try:
    out["msssim"] = float(distances.ms_ssim(a, b)[0])
  except ValueError:  # image too small for 5 scales
    out["msssim"] = math.nan
  out["msssim_db"] = float(msssim_db(out["msssim"]))
  if with_nlpd:
    out["nlpd"] = float(distances.get("nlpd")(a, b)[0])
  return out


def _has_nlpd() -> bool:
  from tfc_perception import distances  # pylint: disable=g-import-not-at-top
  try:
    distances.get("nlpd")
    return True
  except ValueError:
    return False


def _as_uint8_image(x_hat, shape) -> np.ndarray:
  a = np.asarray(x_hat.numpy() if hasattr(x_hat, "numpy") else x_hat)
  if a.ndim == 4:
    a = a[0]
  if a.dtype != np.uint8:  # float in nominal [0, 1], as synthesis returns
    a = np.clip(np.round(a.astype(np.float64) * 255.0), 0, 255).astype(
        np.uint8)
  if a.shape != tuple(shape):
    raise RuntimeError(f"decompress returned shape {a.shape}, expected "
                       f"{tuple(shape)}.")
  return a


def plot_rd(curves: Sequence[Dict[str, Any]], path: str,
            title: str = "") -> None:
  """Writes `rd_figure(curves, title)` as a PNG (atomically).

  Args:
    curves: dicts with "name" and "results" {bpp, psnr-rgb, ms-ssim-rgb}.
    path: PNG path.
    title: figure title.
  """
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig = rd_figure(curves, title)
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=120)
  plt.close(fig)
  _io.write_bytes(path, buf.getvalue())


def rd_figure(curves: Sequence[Dict[str, Any]], title: str = ""):
  """RD plot: PSNR (left) and MS-SSIM in dB (right) against bpp, one line
  per CompressAI-shaped curve (the published one dashed black).

  Args:
    curves: dicts with "name" and "results" {bpp, psnr-rgb, ms-ssim-rgb}.
    title: figure title.

  Returns:
    The matplotlib Figure (the caller saves and closes it).
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
  for c in curves:
    r = c["results"]
    published = "published" in c["name"]
    style = dict(linestyle="--", color="k", marker="x") if published else dict(
        marker="o")
    axes[0].plot(r["bpp"], r["psnr-rgb"], label=c["name"], **style)
    axes[1].plot(r["bpp"], msssim_db(r["ms-ssim-rgb"]), label=c["name"],
                 **style)
  axes[0].set_ylabel("PSNR RGB (dB)")
  axes[1].set_ylabel("MS-SSIM RGB (dB, -10 log10(1 - MS-SSIM))")
  for ax in axes:
    ax.set_xlabel("rate (bits per pixel, actual bit-stream)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  fig.suptitle(title or "Rate-distortion")
  fig.tight_layout()
  return fig


def evaluate_rd(data, output_dir: str, models=None, loaded_models=None,
                limit: Optional[int] = None, warmup: bool = True,
                progress: bool = True, reference: bool = True,
                config: Optional[Dict[str, Any]] = None,
                tensors=None) -> Dict[str, Any]:
  """Rate-distortion of models on an image folder, with actual bit-streams.

  Args:
    data: image folder (e.g. Kodak), glob or file.
    output_dir: output folder (created; not the image folder or inside it).
    models: model specs (names, ranges "name-1..8", paths).
    loaded_models: extra (name, model) pairs already in memory.
    limit: only the first N images (sorted by name).
    warmup: run compress/decompress once per model before timing (excludes
      tf.function tracing from the times).
    progress: tqdm progress bar with ETA.
    reference: include the published bmshj2018-factorized Kodak curve in the
      plot and write it as JSON.
    config: settings for the manifest.
    tensors: internal tensor names of the tfci models among `models`
      (`tfc_perception.pretrained.load`; the --tensors flag).

  Returns:
    {"per_image": rows, "summary": rows, "compressai": {family: json},
     "files": {kind: path}}.

  Raises:
    FileNotFoundError: no images; unknown model paths.
    ValueError: bad arguments or models.
    RuntimeError: a model whose decompress output has the wrong shape.
  """
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  t0 = time.time()
  files = list_images(data, limit)
  _io.check_output_path(output_dir, {"--data": data}, "--output")
  lms = _models.load_models(models or [], loaded_models, tensors=tensors)
  for lm in lms:
    for attr in ("compress", "decompress"):
      if not callable(getattr(lm.model, attr, None)):
        raise ValueError(f"model {lm.name} has no {attr}(); the RD "
                         "evaluation needs actual bit-streams.")
  with_nlpd = _has_nlpd()
  os.makedirs(output_dir, exist_ok=True)
  rows: List[Dict[str, Any]] = []
  with tqdm(total=len(files) * len(lms), desc="rd", unit="image",
            disable=not progress, dynamic_ncols=True) as bar:
    for lm in lms:
      if warmup:
        x0 = image_io.read_image(files[0])[None]
        lm.model.decompress(*lm.model.compress(x0))
      for f in files:
        x = image_io.read_image(f)
        bar.set_postfix_str(f"{lm.name} {os.path.basename(f)}")
        t1 = time.perf_counter()
        compressed = lm.model.compress(x[None])
        nbytes = _models.bitstream_bytes(compressed)
        t2 = time.perf_counter()
        x_hat = _as_uint8_image(lm.model.decompress(*compressed), x.shape)
        t3 = time.perf_counter()
        row = {"model": lm.name, "family": lm.family,
               "image": os.path.basename(f), "height": x.shape[0],
               "width": x.shape[1], "bytes": nbytes,
               "bpp": 8.0 * nbytes / (x.shape[0] * x.shape[1])}
        row.update(_metrics(x, x_hat, with_nlpd))
        row.update({"encode_s": t2 - t1, "decode_s": t3 - t2})
        rows.append(row)
        bar.update(1)
  metrics = ["bytes", "bpp", "psnr", "msssim", "msssim_db"] + (
      ["nlpd"] if with_nlpd else []) + ["encode_s", "decode_s"]
  summary = []
  for lm in lms:
    mine = [r for r in rows if r["model"] == lm.name]
    s = {"model": lm.name, "family": lm.family, "distortion": lm.distortion,
         "quality": lm.quality, "n_images": len(mine)}
    for m in metrics:
      s[m] = float(np.mean([r[m] for r in mine]))
    summary.append(s)
  compressai: Dict[str, Dict[str, Any]] = {}
  for family in dict.fromkeys(lm.family for lm in lms):
    pts = sorted((s for s in summary if s["family"] == family),
                 key=lambda s: s["bpp"])
    res = {"psnr-rgb": [p["psnr"] for p in pts],
           "ms-ssim-rgb": [p["msssim"] for p in pts],
           "bpp": [p["bpp"] for p in pts],
           "encoding_time": [p["encode_s"] for p in pts],
           "decoding_time": [p["decode_s"] for p in pts],
           "ms-ssim-db": [p["msssim_db"] for p in pts]}
    if with_nlpd:
      res["nlpd"] = [p["nlpd"] for p in pts]
    compressai[family] = {
        "name": family,
        "description": (
            f"tfc_perception evaluate rd on {len(files)} image(s) from "
            f"{data}: mean per-image PSNR / MS-SSIM on RGB 8-bit decoded "
            "images; bpp from the actual bit-stream; times in seconds "
            "(wall, this machine). Models: " + ", ".join(
                p["model"] for p in pts)),
        "results": res}
  out = {"per_image": os.path.join(output_dir, "per_image.csv"),
         "summary": os.path.join(output_dir, "summary.csv"),
         "figure": os.path.join(output_dir, "rd.png"),
         "manifest": os.path.join(output_dir, "manifest.json")}
  _io.write_csv(out["per_image"], rows)
  _io.write_csv(out["summary"], summary)
  for family, js in compressai.items():
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", family)
    out[f"json:{family}"] = os.path.join(output_dir, f"{safe}.json")
    _io.write_json(out[f"json:{family}"], js)
  curves = list(compressai.values())
  if reference:
    out["reference"] = os.path.join(
        output_dir, "reference-bmshj2018-factorized-kodak.json")
    _io.write_json(out["reference"], PUBLISHED_BMSHJ2018_FACTORIZED_KODAK)
    curves.append(PUBLISHED_BMSHJ2018_FACTORIZED_KODAK)
  where = os.path.basename(os.path.normpath(os.fspath(data)))
  plot_rd(curves, out["figure"], title=f"{len(files)} image(s) from {where}")
  _io.write_json(out["manifest"], _io.make_manifest(
      config if config is not None else {
          "data": os.fspath(data), "models": [lm.spec for lm in lms],
          "limit": limit, "warmup": warmup},
      wall_time_s=time.time() - t0, files=out))
  return {"per_image": rows, "summary": summary, "compressai": compressai,
          "files": out}
