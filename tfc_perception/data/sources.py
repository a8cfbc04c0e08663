"""2-D data sources with exact densities (Hepburn et al., ICLR 2022, App. C).

The 2-D experiments of the paper (Figs. 2, 4 left, 11-14) train the toy
compressive autoencoder of Fig. 10 on samples from a known distribution, so
that p(x) is available exactly: for the density-weighted distortion
D = P(x)·||x - x_hat||² of Eq. 3, and for the correlations with p(x) of
Observations 2-4. Both sources here are tensorflow-probability distributions
with exact `.prob` / `.log_prob` and stateless seeded `.sample(seed=...)`.

- `student_t_2d(df=3, loc=(0, 0), scale=1)`: the 2-D Student-t of Fig. 11, a
  `tfp.distributions.MultivariateStudentTLinearOperator`. The paper does not
  give its parameters; we choose (and document in docs/training.md):
    * df = 3: the smallest integer number of degrees of freedom for which the
      variance is finite (df > 2), so that the squared-error distortion of
      Eq. 3 has a finite expectation, while the tails stay heavy (the
      kurtosis is infinite for df <= 4): the "heavy-tailed" shape of Fig. 11,
      whose quantisation cells grow with the distance from the mode.
    * loc = (0, 0) and scale = identity: isotropic and centred, so "samples
      along the x-axis" (Figs. 4 and 14) cut through the mode and the tails.
      The autoencoder learns its own scaling, so the unit scale loses no
      generality; a scalar, a 2-vector (diagonal) or a 2x2 lower-triangular
      matrix may be passed for other shapes.
- `uniform_2d(low=-5, high=5)`: a uniform box (Fig. 13), a
  `tfp.distributions.Independent(Uniform)`. The default box [-5, 5]² holds
  about 97% of the mass of the default Student-t, so "uniform across the
  space" covers where the Student-t lives; its density is 1/100 inside.

`source_dataset` turns a source into an endless `tf.data.Dataset` of [B, 2]
float32 batches in which batch number i is a pure function of (seed, i)
(stateless sampling), so a resumed training run sees exactly the batches of
an uninterrupted one (`start_step`).
"""

import numbers
from typing import Callable, Optional, Union

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfc_perception._checks import check_int

tfd = tfp.distributions

__all__ = [
    "SOURCES", "student_t_2d", "uniform_2d", "get_source", "source_dataset",
    "sample_points", "density_fn", "is_source_name", "points_dataset",
]

# Default parameters (see the module docstring for why).
STUDENT_T_DF = 3.0
UNIFORM_LOW = -5.0
UNIFORM_HIGH = 5.0


def _scale_operator(scale) -> tf.linalg.LinearOperator:
  """scalar | [2] diagonal | [2, 2] lower-triangular -> a 2x2 LinearOperator."""
  arr = np.asarray(scale, dtype=np.float64)
  if not np.all(np.isfinite(arr)):
    raise ValueError(f"scale must be finite, got {scale!r}.")
  if arr.ndim == 0:
    arr = np.full([2], float(arr))
  if arr.shape == (2,):
    if np.any(arr <= 0):
      raise ValueError(f"a diagonal scale must be > 0, got {arr.tolist()}.")
    return tf.linalg.LinearOperatorDiag(
        tf.constant(arr, tf.float32), is_positive_definite=True,
        is_non_singular=True)
  if arr.shape == (2, 2):
    if arr[0, 1] != 0 or np.any(np.diag(arr) <= 0):
      raise ValueError(
          "a matrix scale must be lower-triangular with a positive diagonal "
          f"(the Cholesky factor of the scale matrix), got {arr.tolist()}.")
    return tf.linalg.LinearOperatorLowerTriangular(
        tf.constant(arr, tf.float32), is_non_singular=True)
  raise ValueError("scale must be a scalar, a 2-vector (diagonal) or a 2x2 "
                   f"lower-triangular matrix; got shape {list(arr.shape)}.")


def student_t_2d(df: float = STUDENT_T_DF, loc=(0.0, 0.0),
                 scale=1.0) -> tfd.Distribution:
  """The 2-D Student-t source of Fig. 11 (exact density).

  Args:
    df: degrees of freedom, > 0 (default 3: finite variance, heavy tails;
      df <= 2 has infinite variance, so a warning-free MSE needs df > 2).
    loc: the mode, a 2-vector.
    scale: a positive scalar, a positive 2-vector (diagonal scale) or a 2x2
      lower-triangular matrix with positive diagonal.

  Returns:
    A `tfp.distributions.MultivariateStudentTLinearOperator` over float32
    vectors [..., 2].

  Raises:
    ValueError: df not a positive finite number; loc not a finite 2-vector;
      scale of the wrong shape or not positive.
  """
  if isinstance(df, bool) or not isinstance(df, numbers.Real) or not (
      np.isfinite(df) and df > 0):
    raise ValueError(f"df must be a positive finite number, got {df!r}.")
  loc = np.asarray(loc, dtype=np.float32)
  if loc.shape != (2,) or not np.all(np.isfinite(loc)):
    raise ValueError(f"loc must be a finite 2-vector, got {loc.tolist()}.")
  return tfd.MultivariateStudentTLinearOperator(
      df=tf.constant(float(df), tf.float32), loc=tf.constant(loc),
      scale=_scale_operator(scale), validate_args=True, name="StudentT2D")


def uniform_2d(low: float = UNIFORM_LOW,
               high: float = UNIFORM_HIGH) -> tfd.Distribution:
  """A uniform box [low, high]² (Fig. 13), exact density 1/(high-low)².

  Args:
    low: lower corner, a scalar or a 2-vector.
    high: upper corner, a scalar or a 2-vector, each entry > `low`.

  Returns:
    `tfp.distributions.Independent(Uniform(low, high), 1)` over float32
    vectors [..., 2].

  Raises:
    ValueError: non-finite bounds or high <= low.
  """
  low = np.broadcast_to(np.asarray(low, np.float32), [2])
  high = np.broadcast_to(np.asarray(high, np.float32), [2])
  if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
    raise ValueError(f"low/high must be finite, got {low.tolist()}, "
                     f"{high.tolist()}.")
  if np.any(high <= low):
    raise ValueError(f"high must exceed low in every coordinate, got low="
                     f"{low.tolist()}, high={high.tolist()}.")
  return tfd.Independent(
      tfd.Uniform(low=tf.constant(low), high=tf.constant(high)),
      reinterpreted_batch_ndims=1, name="Uniform2D")


SOURCES = {
    "student_t": student_t_2d,
    "uniform2d": uniform_2d,
}


def is_source_name(name) -> bool:
  """Whether `name` names a 2-D source (see `SOURCES`)."""
  return isinstance(name, str) and name in SOURCES


def get_source(name: Union[str, tfd.Distribution], **params) -> tfd.Distribution:
  """A 2-D source by name: "student_t" or "uniform2d".

  Args:
    name: a key of `SOURCES`, or a tfp distribution over [..., 2] vectors
      (returned unchanged).
    **params: parameters of the source function (e.g. df=5 for student_t,
      low=-2, high=2 for uniform2d).

  Returns:
    A tfp distribution with exact `.prob` and seeded `.sample`.

  Raises:
    ValueError: unknown name, or a distribution whose event shape is not [2].
  """
  if isinstance(name, tfd.Distribution):
    if params:
      raise ValueError("parameters cannot be given with a distribution object.")
    if name.event_shape.as_list() != [2]:
      raise ValueError("a 2-D source must have event shape [2], got "
                       f"{name.event_shape.as_list()}.")
    return name
  if not is_source_name(name):
    raise ValueError(f"Unknown 2-D source {name!r}; accepted: "
                     f"{', '.join(map(repr, SOURCES))}.")
  return SOURCES[name](**params)


def _check_seed(seed) -> int:
  return check_int(seed, "seed", 0, 2**31 - 1)


def _check_batch_size(batch_size) -> int:
  return check_int(batch_size, "batch_size", 1)


def step_seed(seed: int, step) -> tf.Tensor:
  """The stateless seed ([2] int32) of item `step` of the stream `seed`."""
  step = tf.cast(step, tf.int64)
  # Two int32 words: (seed, step) with the step folded into 31 bits; streams
  # of different seeds never share a key.
  return tf.stack([tf.constant(seed, tf.int32),
                   tf.cast(step % (2**31 - 1), tf.int32)])


def source_dataset(dist: Union[str, tfd.Distribution], batch_size: int,
                   seed: int = 0, start_step: int = 0) -> tf.data.Dataset:
  """An endless dataset of [batch_size, 2] float32 samples of `dist`.

  Batch number i (counting from 0 at `start_step` = 0) is drawn with the
  stateless seed (seed, i), so the stream is reproducible and a resumed run
  can start at any step.

  Args:
    dist: a source name (see `get_source`) or a tfp distribution over 2-D
      vectors.
    batch_size: samples per batch, >= 1.
    seed: int in [0, 2**31).
    start_step: index of the first batch (>= 0), e.g. the global training
      step to resume from.

  Returns:
    A `tf.data.Dataset` of float32 tensors of static shape [batch_size, 2].

  Raises:
    ValueError / TypeError: invalid arguments (see `get_source`).
  """
  dist = get_source(dist)
  batch_size = _check_batch_size(batch_size)
  seed = _check_seed(seed)
  start_step = check_int(start_step, "start_step", 0)

  def sample(i):
    x = dist.sample(batch_size, seed=step_seed(seed, i))
    return tf.ensure_shape(tf.cast(x, tf.float32), [batch_size, 2])

  return tf.data.Dataset.counter(int(start_step)).map(
      sample, num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True).prefetch(tf.data.AUTOTUNE)


def sample_points(dist: Union[str, tfd.Distribution], n: int,
                  seed: int = 0) -> np.ndarray:
  """`n` samples of a 2-D source as a float32 numpy array [n, 2] (seeded).

  Raises:
    ValueError: n < 1 or invalid source (see `get_source`).
  """
  dist = get_source(dist)
  n = _check_batch_size(n)
  seed = _check_seed(seed)
  return dist.sample(n, seed=step_seed(seed, 0)).numpy().astype(np.float32)


def density_fn(dist: Union[str, tfd.Distribution]) -> Callable[[tf.Tensor],
                                                                tf.Tensor]:
  """The exact density P(x) of a source as a callable x [N, 2] -> [N].

  This is the `density_fn` the models take for the distortions
  `density_mse` (P(x)·||x - x_hat||², Eq. 3 and Fig. 12 b) and
  `inverse_density_mse` (||x - x_hat||² / P(x), Fig. 12 c). For Fig. 13 the
  weighting density differs from the data source: train on "uniform2d" data
  with `density_fn("student_t")`.

  Args:
    dist: a source name or a tfp distribution over 2-D vectors.

  Returns:
    A function mapping a float tensor [N, 2] to P(x), float32 [N].

  Raises:
    ValueError: invalid source (see `get_source`).
  """
  dist = get_source(dist)

  def prob(x):
    x = tf.convert_to_tensor(x)
    return tf.cast(dist.prob(tf.cast(x, dist.dtype)), tf.float32)

  prob.distribution = dist
  prob.__name__ = f"density_of_{dist.name}"
  return prob


def points_dataset(points, batch_size: int, seed: int = 0,
                   start_step: int = 0,
                   name: str = "points") -> tf.data.Dataset:
  """An endless, seeded dataset of batches drawn from a fixed set of points.

  Each pass over the data ("data epoch") uses a fresh permutation that is a
  function of (seed, pass), so batch i depends only on (seed, i), as in
  `source_dataset`.

  Args:
    points: array-like [N, D] of finite floats (N >= batch_size), e.g. a
      sample of 2-D points loaded from a .npy file.
    batch_size: points per batch.
    seed: int in [0, 2**31).
    start_step: index of the first batch.
    name: name used in error messages.

  Returns:
    A dataset of float32 [batch_size, D].

  Raises:
    ValueError: wrong rank, too few points, NaN or Inf values.
  """
  batch_size = _check_batch_size(batch_size)
  seed = _check_seed(seed)
  start_step = check_int(start_step, "start_step", 0)
  arr = np.asarray(points)
  if arr.ndim != 2 or arr.shape[1] < 1:
    raise ValueError(f"{name} must have shape [N, D] (one point per row); got "
                     f"shape {list(arr.shape)}.")
  if not np.issubdtype(arr.dtype, np.number):
    raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}.")
  arr = arr.astype(np.float32)
  bad = int(np.sum(~np.isfinite(arr)))
  if bad:
    raise ValueError(f"{name} contains {bad} NaN or Inf value(s) (in "
                     f"{int(np.sum(~np.all(np.isfinite(arr), axis=1)))} rows); "
                     "finite values are required.")
  n = arr.shape[0]
  if n < batch_size:
    raise ValueError(f"{name} has {n} points, fewer than batch_size="
                     f"{batch_size}.")
  table = tf.constant(arr)
  per_pass = n // batch_size

  def batch(i):
    pass_index = i // per_pass
    pos = i % per_pass
    perm = tf.argsort(tf.random.stateless_uniform(
        [n], seed=step_seed(seed, pass_index)))
    idx = perm[pos * batch_size:(pos + 1) * batch_size]
    return tf.ensure_shape(tf.gather(table, idx), [batch_size, arr.shape[1]])

  return tf.data.Dataset.counter(int(start_step)).map(
      batch, num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True).prefetch(tf.data.AUTOTUNE)
