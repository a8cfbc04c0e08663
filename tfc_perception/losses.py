"""Keras losses of the distances (the distortion D of Eq. 3).

Each class is a `tf.keras.losses.Loss` whose `call(y_true, y_pred)` returns
one value per example, so Keras applies the usual reduction (mean over the
batch by default). They can be passed to `model.compile(loss=...)`, are
serialisable (`get_config` / `from_config`, `tf.keras.losses.serialize` /
`deserialize`; registered under the package name "tfc_perception", so
`custom_objects` is optional) and use the functions of
`tfc_perception.distances`.

Images are NHWC. `y_pred` is float in [0, max_val] (nominally; it is not
clipped). `y_true` may be float in [0, max_val] or uint8, which is converted
to float as y_true / 255 * max_val.

`get(name)` builds the loss of a metric of the one table
(`tfc_perception.distances.registry`); the models' distortions (D of Eq. 3)
are these losses.
"""

from typing import Optional, Sequence

import tensorflow as tf

from tfc_perception import _validation
from tfc_perception import distances

__all__ = ["MSE", "PSNR", "MSSSIM", "NLPD", "SquaredError", "Euclidean",
           "DensityWeightedMSE", "get"]

_PACKAGE = "tfc_perception"


def _as_float_pair(y_true, y_pred, max_val: float):
  y_pred = tf.convert_to_tensor(y_pred)
  y_true = tf.convert_to_tensor(y_true)
  if y_true.dtype == tf.uint8:
    y_true = tf.cast(y_true, tf.float32) * (max_val / 255.0)
  return tf.cast(y_true, tf.float32), tf.cast(y_pred, tf.float32)


def _mean_per_example(values: tf.Tensor) -> tf.Tensor:
  """Mean over all axes but the first -> [N]."""
  if values.shape.rank is not None and values.shape.rank >= 2:
    return tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))
  return tf.reduce_mean(tf.reshape(values, [tf.shape(values)[0], -1]), 1)


class _DistanceLoss(tf.keras.losses.Loss):
  """Base: stores max_val and the reduction/name of keras.losses.Loss."""

  def __init__(self, max_val: float = 1.0,
               reduction=tf.keras.losses.Reduction.AUTO, name=None):
    super().__init__(reduction=reduction, name=name)
    self.max_val = _validation.check_positive(max_val, "max_val")

  def get_config(self):
    config = super().get_config()
    config["max_val"] = self.max_val
    return config


@tf.keras.saving.register_keras_serializable(_PACKAGE)
class MSE(_DistanceLoss):
  """Mean squared error per example (`distances.mse`), times `scale`.

  For images (rank 4) the mean is over height, width and channels in the
  units of the values (images in [0, 1] with scale=255**2 give MSE on the
  0-255 scale, the convention of the tensorflow-compression lambda tables);
  for other ranks (e.g. 2-D vectors [N, 2]) the mean is over all non-batch
  axes.
  """

  def __init__(self, max_val: float = 1.0, scale: float = 1.0,
               reduction=tf.keras.losses.Reduction.AUTO, name="mse"):
    """Args:
      max_val: nominal peak of the images (1.0 for [0, 1]).
      scale: factor applied to the MSE (> 0).
      reduction, name: as for tf.keras.losses.Loss.
    Raises:
      ValueError: non-positive max_val or scale.
    """
    super().__init__(max_val, reduction, name)
    self.scale = _validation.check_positive(scale, "scale")

  def call(self, y_true, y_pred):
    y_true, y_pred = _as_float_pair(y_true, y_pred, self.max_val)
    _validation.check_same_shape(y_true, y_pred, ("y_true", "y_pred"))
    # The same mean as distances.mse, without its check that the values lie
    # near [0, max_val]: predictions are not clipped (a model early in
    # training may leave the range).
    return self.scale * _mean_per_example(tf.math.squared_difference(
        y_true, y_pred))

  def get_config(self):
    config = super().get_config()
    config["scale"] = self.scale
    return config


@tf.keras.saving.register_keras_serializable(_PACKAGE)
class PSNR(_DistanceLoss):
  """-PSNR per example in dB, i.e. 10·log10(MSE / max_val²), the loss form of
  `distances.psnr` (minimising it maximises PSNR). The MSE is floored at
  1e-10·max_val² (PSNR capped at 100 dB), so identical images give -100, not
  -inf."""

  def __init__(self, max_val: float = 1.0,
               reduction=tf.keras.losses.Reduction.AUTO, name="psnr"):
    """Args: max_val, reduction and name as for MSE."""
    super().__init__(max_val, reduction, name)

  def call(self, y_true, y_pred):
    y_true, y_pred = _as_float_pair(y_true, y_pred, self.max_val)
    _validation.check_same_shape(y_true, y_pred, ("y_true", "y_pred"))
    err = _mean_per_example(tf.math.squared_difference(y_true, y_pred))
    peak = self.max_val ** 2
    return 10.0 * tf.math.log(tf.maximum(err, 1e-10 * peak) / peak) / (
        tf.math.log(10.0))


class _VectorLoss(tf.keras.losses.Loss):
  """A distance of any-rank float inputs (no max_val), as a loss."""

  _distance = None  # The distances function, set by subclasses.

  def __init__(self, reduction=tf.keras.losses.Reduction.AUTO, name=None):
    super().__init__(reduction=reduction, name=name)

  def call(self, y_true, y_pred):
    return type(self)._distance(tf.cast(y_true, tf.float32),
                                tf.cast(y_pred, tf.float32))


@tf.keras.saving.register_keras_serializable(_PACKAGE)
class SquaredError(_VectorLoss):
  """||y_true - y_pred||² per example, summed over all non-batch axes
  (`distances.squared_error`; the distortion of the 2-D models, Sec. 3)."""

  _distance = staticmethod(distances.squared_error)

  def __init__(self, reduction=tf.keras.losses.Reduction.AUTO,
               name="squared_error"):
    super().__init__(reduction=reduction, name=name)


@tf.keras.saving.register_keras_serializable(_PACKAGE)
class Euclidean(_VectorLoss):
  """||y_true - y_pred||₂ per example over all non-batch axes
  (`distances.euclidean`)."""

  _distance = staticmethod(distances.euclidean)

  def __init__(self, reduction=tf.keras.losses.Reduction.AUTO,
               name="euclidean"):
    super().__init__(reduction=reduction, name=name)


@tf.keras.saving.register_keras_serializable(_PACKAGE)
class MSSSIM(_DistanceLoss):
  """1 - MS-SSIM per example (`distances.ms_ssim`; default ==
  tf.image.ssim_multiscale, with finite gradients)."""

  def __init__(self, max_val: float = 1.0, num_scales: Optional[int] = None,
               power_factors: Optional[Sequence[float]] = None,
               filter_size: int = 11, filter_sigma: float = 1.5,
               k1: float = 0.01, k2: float = 0.03,
               reduction=tf.keras.losses.Reduction.AUTO, name="msssim"):
    """Args: as `tfc_perception.distances.ms_ssim`, plus reduction and name
    of tf.keras.losses.Loss."""
    super().__init__(max_val, reduction, name)
    self.num_scales = None if num_scales is None else int(num_scales)
    self.power_factors = (None if power_factors is None
                          else [float(p) for p in power_factors])
    # Validates the parameters now rather than at the first call.
    distances.ms_ssim_module._power_factors(  # pylint: disable=protected-access
        self.num_scales, self.power_factors)
    self.filter_size = int(filter_size)
    self.filter_sigma = _validation.check_positive(filter_sigma,
                                                   "filter_sigma")
    self.k1 = _validation.check_positive(k1, "k1")
    self.k2 = _validation.check_positive(k2, "k2")

  def call(self, y_true, y_pred):
    y_true, y_pred = _as_float_pair(y_true, y_pred, self.max_val)
    return 1.0 - distances.ms_ssim(
        y_true, y_pred, self.max_val, num_scales=self.num_scales,
        power_factors=self.power_factors, filter_size=self.filter_size,
        filter_sigma=self.filter_sigma, k1=self.k1, k2=self.k2)

  def get_config(self):
    config = super().get_config()
    config.update(num_scales=self.num_scales, power_factors=self.power_factors,
                  filter_size=self.filter_size,
                  filter_sigma=self.filter_sigma, k1=self.k1, k2=self.k2)
    return config


@tf.keras.saving.register_keras_serializable(_PACKAGE)
class NLPD(_DistanceLoss):
  """NLPD per example (`distances.nlpd`, variant laparra2016 by default)."""

  def __init__(self, max_val: float = 1.0, variant: str = "laparra2016",
               num_levels: int = 6, color: Optional[str] = None,
               reduction=tf.keras.losses.Reduction.AUTO, name="nlpd"):
    """Args: as `tfc_perception.distances.nlpd`, plus reduction and name of
    tf.keras.losses.Loss.
    Raises:
      ValueError: unknown variant or colour mode, bad num_levels.
    """
    super().__init__(max_val, reduction, name)
    self.variant = _validation.check_choice(variant, "NLPD variant",
                                            distances.nlpd_module.VARIANTS)
    if color is not None:
      _validation.check_choice(color, "NLPD colour mode",
                               distances.nlpd_module.COLOR_MODES)
    self.color = color
    if (isinstance(num_levels, bool) or int(num_levels) != num_levels
        or num_levels < 1):
      raise ValueError(f"num_levels must be a positive integer, got "
                       f"{num_levels!r}.")
    self.num_levels = int(num_levels)

  def call(self, y_true, y_pred):
    y_true, y_pred = _as_float_pair(y_true, y_pred, self.max_val)
    return distances.nlpd(y_true, y_pred, self.max_val, variant=self.variant,
                          num_levels=self.num_levels, color=self.color)

  def get_config(self):
    config = super().get_config()
    config.update(variant=self.variant, num_levels=self.num_levels,
                  color=self.color)
    return config


@tf.keras.saving.register_keras_serializable(_PACKAGE)
class DensityWeightedMSE(tf.keras.losses.Loss):
  """P(x)·||x - x̂||² (or ||x - x̂||² / P(x) with inverse=True) per example,
  x = y_true (Fig. 12 of the paper).

  `density` is either the name of a 2-D source of `tfc_perception.data.
  sources` (with `source_params`; serialisable) or a callable x -> P(x) such
  as a tfp distribution's `.prob` (not serialisable: `get_config` then stores
  density=None and `from_config` needs the callable passed again, e.g.
  `DensityWeightedMSE.from_config({**config, "density": dist.prob})`).
  """

  def __init__(self, density=None, inverse: bool = False,
               source_params: Optional[dict] = None,
               reduction=tf.keras.losses.Reduction.AUTO,
               name="density_weighted_mse"):
    """Args:
      density: source name (str) or callable x -> [N] densities.
      inverse: divide by P(x) instead of multiplying.
      source_params: keyword parameters of the named source.
      reduction, name: as for tf.keras.losses.Loss.
    Raises:
      ValueError: density missing (None), or of the wrong type.
    """
    super().__init__(reduction=reduction, name=name)
    if density is None:
      raise ValueError(
          "DensityWeightedMSE needs a density: a 2-D source name of "
          "tfc_perception.data.sources (e.g. 'student_t') or a callable "
          "x -> P(x). A loss built from a callable cannot be restored from "
          "its config alone: pass the callable again as 'density'.")
    if not (isinstance(density, str) or callable(density)):
      raise ValueError("density must be a source name or a callable x -> "
                       f"P(x), got {type(density).__name__}.")
    self.density = density
    self.inverse = bool(inverse)
    self.source_params = dict(source_params or {})
    self._density_fn = None

  def _fn(self):
    if self._density_fn is None:
      if isinstance(self.density, str):
        from tfc_perception.data import sources  # pylint: disable=g-import-not-at-top
        self._density_fn = sources.get_source(self.density,
                                              **self.source_params).prob
      else:
        self._density_fn = self.density
    return self._density_fn

  def call(self, y_true, y_pred):
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    f = (distances.inverse_density_weighted_mse if self.inverse
         else distances.density_weighted_mse)
    return f(y_true, y_pred, self._fn())

  def get_config(self):
    config = super().get_config()
    config.update(
        density=self.density if isinstance(self.density, str) else None,
        inverse=self.inverse, source_params=self.source_params)
    return config


def get(name: str, **kwargs) -> tf.keras.losses.Loss:
  """Builds the loss of a registered metric (`distances.registry`): "mse",
  "psnr" (-PSNR), "msssim" (1 - MS-SSIM), "nlpd", "nlpd_rgb", "nlpd2017",
  "squared_error", "euclidean", "density_mse", "inverse_density_mse", or an
  alias.

  Args:
    name: metric name (case-insensitive).
    **kwargs: the loss's arguments (max_val, reduction, density, ...).

  Raises:
    ValueError: unknown name (listing the accepted ones) or bad arguments.
  """
  return distances.registry.get(name, "loss").loss(**kwargs)
