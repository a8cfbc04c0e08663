"""Density-weighted squared errors (Hepburn et al., ICLR 2022, Sec. 3 and
Fig. 12).

For a source with a known density P, the paper trains 2-D compressive
autoencoders with D = P(x)·||x - x̂||² (errors count more where data is
frequent) and with its inverse D = ||x - x̂||² / P(x) (errors count more where
data is rare), to show how the probability of the input shapes the induced
distances.
"""

from typing import Callable, Union

import numpy as np
import tensorflow as tf

from tfc_perception import _validation
from tfc_perception.distances import mse as _mse_lib

__all__ = ["density_weighted_mse", "inverse_density_weighted_mse"]

Density = Union[tf.Tensor, np.ndarray, Callable[[tf.Tensor], tf.Tensor]]


def _density_values(density: Density, x: tf.Tensor, strictly_positive: bool):
  """Evaluates / validates P(x) -> float32 [N]."""
  if callable(density):
    p = density(x)
  else:
    if isinstance(density, (str, bytes)) or density is None:
      raise TypeError("density must be a tensor of P(x) values [N] or a "
                      f"callable x -> [N], got {type(density).__name__}.")
    p = density
  p = tf.convert_to_tensor(p)
  if not p.dtype.is_floating:
    raise ValueError(f"density values must be float, got {p.dtype.name}.")
  p = tf.cast(p, tf.float32)
  if p.shape.rank != 1:
    raise ValueError("density must give one value per example, shape [N]; "
                     f"got shape {p.shape}.")
  if not p.shape.is_compatible_with(x.shape[:1]):
    raise ValueError(f"density gives {p.shape[0]} values for {x.shape[0]} "
                     "examples.")
  p = _validation.check_finite(p, "density")
  if hasattr(p, "numpy") and tf.executing_eagerly():
    v = p.numpy()
    if (v < 0).any() or (strictly_positive and (v <= 0).any()):
      bound = "> 0" if strictly_positive else ">= 0"
      raise ValueError(f"density values must be {bound} (probability "
                       f"densities); got minimum {v.min():.4g}.")
  return p


def density_weighted_mse(x, y, density: Density) -> tf.Tensor:
  """P(x)·||x - y||² per example (Fig. 12 of the paper).

  Args:
    x: float tensor [N, D] (or [N, ...]), the source samples (originals).
    y: float tensor of the same shape, e.g. reconstructions.
    density: tensor [N] with P(x), or a callable x -> [N] such as a
      tensorflow_probability distribution's `.prob`.

  Returns:
    float32 tensor [N].

  Raises:
    ValueError: invalid x/y (see `squared_error`), density of the wrong shape,
      non-finite or negative density values.
  """
  err = _mse_lib.squared_error(x, y)
  return _density_values(density, _mse_lib.as_vectors(x, "x"), False) * err


def inverse_density_weighted_mse(x, y, density: Density) -> tf.Tensor:
  """||x - y||² / P(x) per example (Fig. 12 of the paper).

  Args:
    x: float tensor [N, D] (or [N, ...]), the source samples.
    y: float tensor of the same shape.
    density: tensor [N] with P(x) > 0, or a callable x -> [N].

  Returns:
    float32 tensor [N].

  Raises:
    ValueError: as `density_weighted_mse`, and for density values <= 0
      (checked eagerly; in graph mode a zero density gives inf).
  """
  err = _mse_lib.squared_error(x, y)
  return err / _density_values(density, _mse_lib.as_vectors(x, "x"), True)
