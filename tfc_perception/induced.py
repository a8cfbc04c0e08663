"""Distances induced by a compressive autoencoder (Hepburn et al. 2022, Fig. 1).

For an autoencoder with analysis (encoder) e, quantiser Q and synthesis
(decoder) d, y = e(x) and x_hat = d(Q(y)). For a pair (x1, x2):

- De(x1, x2) = base(x1, x2): the base distance in the input domain (the
  paper's De is Euclidean; use base="euclidean" or "mse").
- Dr(x1, x2) = base(x_hat1, x_hat2): between the reconstructions.
- Din(x1, x2) = ||y1 - y2||_2: Euclidean between the latents, before
  (latent="unquantized", the paper's definition) or after quantisation.
- Ds(x) = base(x, x_hat): self distance, for x1 and x2.
- Sensitivity of a distance D along dx = x2 - x1: D(x1, x2) / ||dx||_2.

Works for any model with the project's common interface (analysis, quantize,
synthesis): the Keras models of `tfc_perception.models`, loaded pretrained
tfci graphs, and the 2-D models (vectors [N, D]) used for Fig. 2. One forward
pass (analysis -> quantize -> synthesis) per input batch; for Keras models it
is one traced tf.function per input shape, with the padding, the three
stages, the crop and the 8-bit rounding fused (its speed against the
machine's matmul peak: benchmarks/evaluate.py, docs/evaluate.md), optionally
split over the replicas of a tf.distribute strategy.

Units: images are compared as float32 in [0, 1] (uint8 input is divided by
255; float input is divided by its `max_val`), so base distances are in
[0, 1] units (mse in [0, 1]^2, psnr with peak 1) and ||dx|| is the Euclidean
norm of the [0, 1] difference. Vectors are used as given.
"""

import weakref
from typing import Callable, Dict, Optional, Union

import numpy as np
import tensorflow as tf

from tfc_perception import _validation

__all__ = ["model_outputs", "distances_from_outputs", "induced_distances",
           "LATENT_MODES"]

LATENT_MODES = ("unquantized", "quantized")

Base = Union[str, Callable]


def _resolve_base(base: Base, is_image: bool) -> Callable:
  """A function (a, b) -> [N] for float inputs ([0, 1] images or vectors):
  a metric of `tfc_perception.distances.registry` (at max_val=1 for images),
  or the callable itself."""
  if callable(base):
    return base
  if not isinstance(base, str):
    raise TypeError("base must be a metric name (e.g. 'mse', 'msssim', "
                    "'nlpd', 'euclidean'; see tfc_perception.distances."
                    "registry) or a callable (x, y) -> [batch]; got "
                    f"{type(base).__name__}.")
  from tfc_perception.distances import registry  # pylint: disable=g-import-not-at-top
  metric = registry.get(base, "base distance")
  if metric.needs_density:
    raise ValueError(f"base distance {metric.name!r} needs the density P(x) "
                     "of the inputs; pass it as a callable base "
                     "(lambda a, b: ...) instead.")
  return metric.bind(max_val=1.0, vectors=not is_image)


def _prepare(x, name: str, max_val):
  """Returns (float32 tensor, is_image). Images are scaled to [0, 1]."""
  if isinstance(x, (str, bytes)) or x is None:
    raise TypeError(f"{name} must be an array or tensor, got "
                    f"{type(x).__name__}.")
  t = x if isinstance(x, tf.Tensor) else tf.convert_to_tensor(np.asarray(x))
  if t.shape.rank == 4:
    t, peak = _validation.as_image_batch(t, name, max_val=max_val)
    return t / peak, True
  if t.shape.rank == 2:
    if not t.dtype.is_floating:
      raise ValueError(f"{name} is a batch of vectors [N, D] and must be "
                       f"floating point; got {t.dtype.name}.")
    t = tf.cast(t, tf.float32)
    _validation.check_finite(t, name)
    return t, False
  raise ValueError(
      f"{name} must be an image batch [N, H, W, C] (uint8, or float with "
      f"max_val) or a batch of vectors [N, D] (2-D models); got shape "
      f"{t.shape.as_list() if t.shape.rank is not None else 'unknown'}.")


def model_outputs(model, x, max_val: Optional[float] = None,
                  pad_multiple: int = 16, round_output: bool = True,
                  strategy=None) -> Dict[str, np.ndarray]:
  """One forward pass: latents and reconstruction of a batch.

  Args:
    model: a model with the common interface (analysis, quantize,
      synthesis).
    x: uint8 images [N, H, W, 3], float images in [0, max_val], or float
      vectors [N, D] (2-D models).
    max_val: peak value of float images (None for uint8 and vectors).
    pad_multiple: images whose height/width are not multiples of this are
      padded (symmetric) before the analysis and the reconstruction is
      cropped back; 1 disables padding.
    round_output: for images, clip the reconstruction to [0, 1] and round it
      to 8 bits, as `reconstruct`/`decompress` do (Dr is then computed on
      what a decoder outputs). Ignored for vectors.
    strategy: a tf.distribute strategy (e.g. MirroredStrategy over the local
      GPUs) whose replicas each take a contiguous part of the batch; None
      for one device. The outputs do not depend on it.

  Returns:
    {"x": input as float32 ([0, 1] for images), "y": latent before
     quantisation, "y_hat": quantised latent, "x_hat": reconstruction
     (float32, [0, 1] for images)}, numpy arrays with batch first.

  Raises:
    ValueError/TypeError: bad input (rank, dtype, range, NaN).
  """
  for attr in ("analysis", "quantize", "synthesis"):
    if not callable(getattr(model, attr, None)):
      raise TypeError(f"model must implement the common interface "
                      f"(analysis, quantize, synthesis); it lacks {attr!r}.")
  _validation.check_int(pad_multiple, "pad_multiple", 1)
  xf, is_image = _prepare(x, "x", max_val)
  inp = xf
  raw = x if isinstance(x, tf.Tensor) else (
      np.asarray(x) if hasattr(x, "__array__") else None)
  if is_image and raw is not None and raw.dtype == np.uint8:
    # uint8 images go to the model as they are (a pretrained tfci graph
    # takes uint8; float input would be quantised back to it anyway).
    inp = tf.convert_to_tensor(raw)
  if is_image:
    h, w = int(xf.shape[1]), int(xf.shape[2])
    ph, pw = (-h) % pad_multiple, (-w) % pad_multiple
    # Mirror padding needs the pad to be smaller than the image.
    pad = (ph, pw, "SYMMETRIC" if ph <= h and pw <= w else "CONSTANT")
  else:
    pad = None
  if strategy is not None and strategy.num_replicas_in_sync > 1:
    y, y_hat, x_hat = _run_replicated(strategy, model, inp, pad, round_output)
  elif isinstance(model, tf.keras.Model):
    y, y_hat, x_hat = forward_function(model, inp.shape, inp.dtype, pad,
                                       round_output)(inp)
  else:  # e.g. a pretrained tfci graph: its stages are graph functions
    y, y_hat, x_hat = _forward(model, inp, pad, round_output)
  return {"x": xf.numpy(), "y": np.asarray(y, np.float32),
          "y_hat": np.asarray(y_hat, np.float32),
          "x_hat": np.asarray(x_hat, np.float32)}


def _forward(model, inp, pad, round_output):
  """analysis -> quantize -> synthesis of a batch (padded by `pad` =
  (rows, columns, mode) and cropped back for images; None for vectors)."""
  if pad is not None:
    h, w = inp.shape[1], inp.shape[2]
    if pad[0] or pad[1]:
      inp = tf.pad(inp, [[0, 0], [0, pad[0]], [0, pad[1]], [0, 0]],
                   mode=pad[2])
  y = model.analysis(inp)
  y_hat = model.quantize(y, training=False)
  x_hat = tf.cast(model.synthesis(y_hat), tf.float32)
  if pad is not None:
    x_hat = x_hat[:, :h, :w, :]
    if round_output:
      x_hat = tf.round(tf.clip_by_value(x_hat, 0.0, 1.0) * 255.0) / 255.0
  return tf.cast(y, tf.float32), tf.cast(y_hat, tf.float32), x_hat


# Traced forward functions per model (weakly held) and input signature.
_TRACED = weakref.WeakKeyDictionary()


def forward_function(model, shape, dtype, pad, round_output: bool = True):
  """The forward pass of `model` on inputs of `shape`/`dtype` as one traced
  tf.function (built once per model and signature, then reused).

  Args:
    model: a Keras model with the common interface.
    shape: input shape (static), e.g. [4, 384, 512, 3].
    dtype: input dtype (uint8 or float32 images, float vectors).
    pad: (rows, columns, mode) of padding for images, None for vectors.
    round_output: clip and round image reconstructions to 8 bits.

  Returns:
    A function input -> (y, y_hat, x_hat) tensors.
  """
  per_model = _TRACED.setdefault(model, {})
  key = (tuple(shape), tf.as_dtype(dtype).name, pad, bool(round_output))
  if key not in per_model:
    per_model[key] = tf.function(
        lambda t: _forward(model, t, pad, round_output),
        input_signature=[tf.TensorSpec(shape, dtype)])
  return per_model[key]


def _run_replicated(strategy, model, inp, pad, round_output):
  """The forward pass with the batch split over the strategy's replicas
  (contiguous parts, padded with copies of the last example to a multiple of
  the replica count), gathered back in order; one traced function per
  strategy and input signature."""
  n = strategy.num_replicas_in_sync
  batch = int(inp.shape[0])
  per = -(-batch // n)
  if per * n != batch:
    inp = tf.concat([inp, tf.repeat(inp[-1:], per * n - batch, 0)], 0)
  per_model = _TRACED.setdefault(model, {})
  key = (strategy, tuple(inp.shape), inp.dtype.name, pad, bool(round_output))
  if key not in per_model:
    def replicated(parts):
      outs = strategy.run(lambda t: _forward(model, t, pad, round_output),
                          args=(parts,))
      return tuple(strategy.gather(o, axis=0) for o in outs)
    per_model[key] = tf.function(replicated)
  parts = strategy.experimental_distribute_values_from_function(
      lambda ctx: inp[ctx.replica_id_in_sync_group * per:
                      (ctx.replica_id_in_sync_group + 1) * per])
  return tuple(o[:batch] for o in per_model[key](parts))


def _flat_norm(a) -> np.ndarray:
  a = np.asarray(a, np.float64)
  return np.sqrt(np.sum(np.square(a.reshape(a.shape[0], -1)), axis=1))


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
  out = np.zeros_like(num, dtype=np.float64)
  np.divide(num, den, out=out, where=den > 0)
  return out


def distances_from_outputs(out1: Dict[str, np.ndarray],
                           out2: Dict[str, np.ndarray], base: Base = "mse",
                           latent: str = "unquantized",
                           which=("de", "dr", "din", "ds")
                           ) -> Dict[str, np.ndarray]:
  """De, Dr, Din, Ds and sensitivities from two `model_outputs` results.

  Args:
    out1, out2: `model_outputs` of x1 and x2 (same batch size); may also be
      loaded from a cache.
    base: base distance for De, Dr, Ds: a metric of
      `tfc_perception.distances.registry` ("mse", "psnr", "msssim", "nlpd",
      "nlpd_rgb", "euclidean", ...; for vectors those that apply to vectors:
      "euclidean", "squared_error", "mse" = ||a - b||^2), or a callable
      (a, b) -> [N] on the float inputs.
    latent: "unquantized" (Din between y, the paper's definition) or
      "quantized" (between Q(y)).
    which: subset of ("de", "dr", "din", "ds") to compute (the rest are
      omitted from the result).

  Returns:
    dict of float64 arrays [N]: "norm_dx" (||x1 - x2||_2), and as requested
    "de", "dr", "din", "ds1", "ds2", "sens_de", "sens_dr", "sens_din"
    (distance / ||x1 - x2||; defined as 0 where x1 == x2: all induced
    distances are 0 there, and a ratio needs a direction to be a
    sensitivity).

  Raises:
    ValueError: unknown base/latent/which, mismatched batch sizes.
  """
  _validation.check_choice(latent, "latent", LATENT_MODES)
  which = tuple(which)
  for w in which:
    _validation.check_choice(w, "induced distance", ("de", "dr", "din", "ds"))
  for k in ("x", "y", "y_hat", "x_hat"):
    if k not in out1 or k not in out2:
      raise ValueError(f"outputs must be model_outputs() dicts; {k!r} is "
                       "missing.")
  n = out1["x"].shape[0]
  if out2["x"].shape[0] != n or out1["x"].shape != out2["x"].shape:
    raise ValueError("x1 and x2 must have the same shape; got "
                     f"{out1['x'].shape} and {out2['x'].shape}.")
  is_image = out1["x"].ndim == 4
  fn = _resolve_base(base, is_image)

  def d(a, b):
    return np.asarray(fn(tf.constant(a, tf.float32),
                         tf.constant(b, tf.float32)), np.float64).reshape(n)

  res = {"norm_dx": _flat_norm(out1["x"] - out2["x"])}
  if "de" in which:
    res["de"] = d(out1["x"], out2["x"])
    res["sens_de"] = _safe_ratio(res["de"], res["norm_dx"])
  if "dr" in which:
    res["dr"] = d(out1["x_hat"], out2["x_hat"])
    res["sens_dr"] = _safe_ratio(res["dr"], res["norm_dx"])
  if "din" in which:
    key = "y" if latent == "unquantized" else "y_hat"
    res["din"] = _flat_norm(np.asarray(out1[key], np.float64) -
                            np.asarray(out2[key], np.float64))
    res["sens_din"] = _safe_ratio(res["din"], res["norm_dx"])
  if "ds" in which:
    res["ds1"] = d(out1["x"], out1["x_hat"])
    res["ds2"] = d(out2["x"], out2["x_hat"])
  return res


def induced_distances(model, x1, x2, base: Base = "mse",
                      latent: str = "unquantized",
                      max_val: Optional[float] = None,
                      batch_size: Optional[int] = None,
                      round_output: bool = True) -> Dict[str, np.ndarray]:
  """De, Dr, Din, Ds(x1), Ds(x2) and sensitivities per pair (Fig. 1, 2, 3).

  Args:
    model: any model with the common interface (project Keras model, loaded
      pretrained tfci graph, 2-D model).
    x1, x2: two batches of the same shape: uint8 images [N, H, W, 3], float
      images with `max_val`, or float vectors [N, D]. Pair i is (x1[i], x2[i]).
      Images may have any size (padded to a multiple of 16 for the model).
    base: base distance for De, Dr, Ds (see `distances_from_outputs`).
    latent: "unquantized" (default, the paper's Din) or "quantized".
    max_val: peak value of float images.
    batch_size: pairs per forward pass (None: all at once). Results do not
      depend on it.
    round_output: round image reconstructions to 8 bits (as decoded).

  Returns:
    dict of float64 numpy arrays [N]: de, dr, din, ds1, ds2, norm_dx,
    sens_de, sens_dr, sens_din.

  Raises:
    ValueError/TypeError: mismatched shapes, bad inputs, unknown base/latent.
  """
  _validation.check_choice(latent, "latent", LATENT_MODES)
  a1, is_image1 = _prepare(x1, "x1", max_val)
  a2, is_image2 = _prepare(x2, "x2", max_val)
  _validation.check_same_shape(a1, a2, ("x1", "x2"))
  del is_image2
  _resolve_base(base, is_image1)  # fail early on an unknown base
  n = int(a1.shape[0])
  if batch_size is None:
    batch_size = n
  batch_size = _validation.check_int(batch_size, "batch_size", 1)
  # Inputs are already in [0, 1] (images) or raw (vectors).
  mv = 1.0 if is_image1 else None
  uint8 = [tf.convert_to_tensor(x) for x in (x1, x2)]
  if is_image1 and all(t.dtype == tf.uint8 for t in uint8):
    a1, a2, mv = uint8[0], uint8[1], None  # the model sees the uint8 images
  parts = []
  for s in range(0, n, batch_size):
    b1, b2 = a1[s:s + batch_size], a2[s:s + batch_size]
    m = int(b1.shape[0])
    # x1 and x2 go through the model together: one forward pass per batch.
    out = model_outputs(model, tf.concat([b1, b2], 0), max_val=mv,
                        round_output=round_output)
    o1 = {k: v[:m] for k, v in out.items()}
    o2 = {k: v[m:] for k, v in out.items()}
    parts.append(distances_from_outputs(o1, o2, base=base, latent=latent))
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
