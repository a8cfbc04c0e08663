"""The one table of metrics: every distance the library knows, by name.

Every place that takes a metric name reads this table: `distances.get`,
`losses.get`, a model's `distortion=` (the D of Eq. 3), the IQA baselines of
`bin/evaluate iqa --distances`, the base distances of `induced`, the
experiments and `bin/evaluate distances --list`. A record holds

- `name` and `aliases` (names are case-insensitive and "-" reads as "_");
- the distance function (`tfc_perception.distances`) and the options of
  the variant (e.g. `nlpd_rgb` = `nlpd(..., color="per_channel")`);
- `lower_is_better` (False for the similarities PSNR and MS-SSIM);
- `takes_max_val`: whether the function takes the images' peak value
  (`max_val`, implied by uint8; see `bind`) or works on raw vectors;
- the minimum image size (`min_size`, `check_size`);
- whether it applies to images (NHWC), to vectors ([N, D], the 2-D sources)
  and whether it needs the source density P(x) (Fig. 12);
- the Keras loss made from it (`loss`): the D that models minimise (1 -
  MS-SSIM for MS-SSIM, -PSNR for PSNR).

The module imports no TensorFlow: functions and losses are named as
"module:attribute" and imported on first use.

    from tfc_perception.distances import registry
    registry.get("nlpd_rgb").function(x, y, max_val=1.0)
    registry.get("msssim").min_size            # 161 (five scales)
    registry.check_size("msssim", 32)           # ValueError: needs >= 161 px
    registry.names(images=True)                 # metric names for images
"""

import dataclasses
import functools
import importlib
import types
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

__all__ = ["Metric", "get", "canonical", "names", "metrics", "check_size",
           "unknown_metric_error", "table"]


def _resolve(ref: str):
  module, _, attr = ref.partition(":")
  return getattr(importlib.import_module(module), attr)


def _frozen(mapping: Optional[Mapping[str, Any]]) -> Mapping[str, Any]:
  return types.MappingProxyType(dict(mapping or {}))


@dataclasses.dataclass(frozen=True)
class Metric:
  """One metric of the table (see the module docstring).

  Attributes:
    name: canonical name.
    aliases: other accepted names.
    family: "mse", "psnr", "ms_ssim", "nlpd", "euclidean" or "density":
      metrics of one family share a function and differ in `options`.
    label: short human-readable name (figure legends).
    description: one line: definition and units.
    lower_is_better: True for distances, False for similarities.
    images: applies to NHWC image batches.
    vectors: applies to [N, D] vectors (the 2-D sources).
    takes_max_val: the function takes `max_val` (the peak of float images).
    needs_density: the function takes the density P(x) of the source.
    function_ref: "module:function" of the distance.
    vector_function_ref: "module:function" for vectors, if it differs.
    options: keyword options of the variant, passed to the function and the
      loss.
    loss_options: keyword options passed to the loss only.
    loss_ref: "module:Class" of the Keras loss (a distortion to minimise).
    vector_loss_ref: the loss for vectors, if it differs.
    training_options: extra loss options of the image models' D in Eq. 3
      (their units, docs/models.md).
    unit: unit of the loss as the image models train with it (axis labels).
    vector_unit: unit of the loss for vectors, if it applies to them.
  """
  name: str
  aliases: Tuple[str, ...]
  family: str
  label: str
  description: str
  lower_is_better: bool
  images: bool
  vectors: bool
  takes_max_val: bool
  function_ref: str
  loss_ref: str
  needs_density: bool = False
  unit: str = "unitless"
  vector_unit: Optional[str] = None
  vector_function_ref: Optional[str] = None
  vector_loss_ref: Optional[str] = None
  options: Mapping[str, Any] = dataclasses.field(
      default_factory=lambda: _frozen({}))
  loss_options: Mapping[str, Any] = dataclasses.field(
      default_factory=lambda: _frozen({}))
  training_options: Mapping[str, Any] = dataclasses.field(
      default_factory=lambda: _frozen({}))

  # ------------------------------------------------------------ functions
  @property
  def function(self) -> Callable:
    """The distance with this variant's options bound: f(x, y, ...) -> [N]
    (images, or any rank for the vector metrics)."""
    fn = _resolve(self.function_ref)
    return functools.partial(fn, **self.options) if self.options else fn

  def function_for(self, vectors: bool) -> Callable:
    """The function for images (vectors=False) or [N, D] vectors.

    Raises:
      ValueError: the metric does not apply to that kind of input.
    """
    self.check_applies(vectors=vectors)
    if vectors and self.vector_function_ref:
      return _resolve(self.vector_function_ref)
    return self.function

  def check_applies(self, vectors: bool, density: bool = True) -> None:
    """Fails with a clear message if the metric does not apply to images
    (vectors=False) or vectors, or needs a density that is not available
    (density=False)."""
    if vectors and not self.vectors:
      raise ValueError(
          f"metric {self.name!r} is defined for images only; for vectors "
          f"(2-D sources) accepted: {', '.join(names(vectors=True))}.")
    if not vectors and not self.images:
      raise ValueError(
          f"metric {self.name!r} is defined for vectors (2-D sources) only; "
          f"for images accepted: {', '.join(names(images=True))}.")
    if self.needs_density and not density:
      raise ValueError(
          f"metric {self.name!r} weights the error by the density P(x) of "
          "the source, which is known only for the 2-D sources "
          "(tfc_perception.data.sources); give density=... (a callable "
          "x -> P(x)).")

  def bind(self, max_val: Optional[float] = None, vectors: bool = False,
           density: Optional[Callable] = None, **options) -> Callable:
    """f(x, y) -> [N] with max_val / density / options applied.

    Args:
      max_val: peak of float images; ignored by metrics without max_val.
      vectors: use the [N, D] version.
      density: callable x -> P(x), for the density metrics.
      **options: extra function options (e.g. num_scales=3 for MS-SSIM).

    Raises:
      ValueError: not applicable (see `check_applies`).
    """
    self.check_applies(vectors=vectors, density=density is not None)
    fn = self.function_for(vectors)
    kwargs = dict(options)
    if self.needs_density:
      kwargs["density"] = density
    elif self.takes_max_val and not vectors:
      kwargs["max_val"] = max_val
    return functools.partial(fn, **kwargs) if kwargs else fn

  # ---------------------------------------------------------------- losses
  def loss(self, vectors: Optional[bool] = None, training: bool = False,
           **kwargs):
    """The Keras loss of this metric (`tfc_perception.losses`).

    Args:
      vectors: True: the loss for [N, D] vectors (e.g. "mse" is the squared
        Euclidean error ||x - x_hat||^2 there, the 2-D models' distortion);
        False: for images; None: the metric's loss, whatever the input.
      training: add `training_options` (the units the image models train
        with: "mse" is 255^2 * MSE on [0, 1], i.e. on the 0-255 scale).
      **kwargs: loss arguments (max_val, reduction, density, ...); they
        override the variant's options.

    Returns:
      A `tf.keras.losses.Loss` whose `call(y_true, y_pred)` is [N].

    Raises:
      ValueError: not applicable to vectors/images, or bad arguments.
    """
    if vectors is not None:
      self.check_applies(vectors=vectors)
    cls = _resolve(self.vector_loss_ref if vectors and self.vector_loss_ref
                   else self.loss_ref)
    args = dict(self.options)
    args.update(self.loss_options)
    if training and vectors is False:
      args.update(self.training_options)
    args.update(kwargs)
    return cls(**args)

  # ----------------------------------------------------------------- sizes
  def min_size_for(self, **options) -> int:
    """Smallest image height/width the metric accepts with `options`
    (e.g. num_scales=3 for MS-SSIM, num_levels=4 for NLPD); 1 if any."""
    opts = dict(self.options)
    opts.update(options)
    if self.family == "ms_ssim":
      fn = _resolve("tfc_perception.distances.ms_ssim:ms_ssim_min_size")
      power = opts.get("power_factors")
      scales = len(power) if power is not None else opts.get("num_scales")
      return fn(5 if scales is None else scales, opts.get("filter_size", 11))
    if self.family == "nlpd":
      fn = _resolve("tfc_perception.distances.nlpd:nlpd_min_size")
      return fn(opts.get("num_levels", 6))
    return 1

  def loss_unit(self, vectors: bool = False) -> str:
    """The unit of `loss(vectors, training=True)`, for axis labels."""
    return (self.vector_unit or self.unit) if vectors else self.unit

  @property
  def min_size(self) -> int:
    """Smallest image height/width with the default options."""
    return self.min_size_for()


def _m(name, aliases, family, label, description, lower_is_better, images,
       vectors, takes_max_val, function_ref, loss_ref, **kw):
  for key in ("options", "loss_options", "training_options"):
    if key in kw:
      kw[key] = _frozen(kw[key])
  return Metric(name, tuple(aliases), family, label, description,
                lower_is_better, images, vectors, takes_max_val, function_ref,
                loss_ref, **kw)


_D = "tfc_perception.distances"
_L = "tfc_perception.losses"

# The table. Order matters only for listings (and figure styles).
_METRICS: Tuple[Metric, ...] = (
    _m("mse", (), "mse", "MSE",
       "mean squared error per image, in squared image units (0-255 for "
       "uint8); for vectors the squared Euclidean error ||x - y||^2",
       True, True, True, True, f"{_D}.mse:mse", f"{_L}:MSE",
       vector_function_ref=f"{_D}.mse:squared_error",
       vector_loss_ref=f"{_L}:SquaredError",
       training_options={"scale": 255.0 ** 2}, unit="(0–255)²",
       vector_unit="source units²"),
    _m("psnr", (), "psnr", "PSNR",
       "peak signal-to-noise ratio 10 log10(max_val^2 / MSE), dB (higher is "
       "better; its loss is -PSNR)",
       False, True, False, True, f"{_D}.mse:psnr", f"{_L}:PSNR", unit="dB"),
    _m("msssim", ("ms_ssim", "ms-ssim"), "ms_ssim", "MS-SSIM",
       "multi-scale SSIM (== tf.image.ssim_multiscale), in [0, 1], higher is "
       "better; its loss is 1 - MS-SSIM; 5 scales need >= 161 px",
       False, True, False, True, f"{_D}.ms_ssim:ms_ssim", f"{_L}:MSSSIM"),
    _m("nlpd", ("nlpd_laparra2016",), "nlpd", "NLPD (grey)",
       "NLPD laparra2016 (Laparra et al. 2016; the function's defaults) on the"
       " rgb2gray luminance; 6 levels need >= 65 px",
       True, True, False, True, f"{_D}.nlpd:nlpd", f"{_L}:NLPD"),
    _m("nlpd_rgb", ("nlpd_per_channel",), "nlpd", "NLPD (RGB)",
       "NLPD laparra2016 on each RGB channel, averaged (constrains colour)",
       True, True, False, True, f"{_D}.nlpd:nlpd", f"{_L}:NLPD",
       options={"color": "per_channel"}),
    _m("nlpd2017", ("nlpd_laparra2017",), "nlpd", "NLPD 2017",
       "NLPD laparra2017 (Laparra et al. 2017, perceptual-quality's TF "
       "version) per colour channel",
       True, True, False, True, f"{_D}.nlpd:nlpd", f"{_L}:NLPD",
       options={"variant": "laparra2017"}),
    _m("squared_error", (), "euclidean", "||x − y||²",
       "squared Euclidean error ||x - y||^2 summed over all non-batch axes "
       "(input units)",
       True, True, True, False, f"{_D}.mse:squared_error",
       f"{_L}:SquaredError", unit="input units²",
       vector_unit="source units²"),
    _m("euclidean", (), "euclidean", "||x − y||",
       "Euclidean distance ||x - y||_2 over all non-batch axes (input units;"
       " the paper's De)",
       True, True, True, False, f"{_D}.mse:euclidean", f"{_L}:Euclidean",
       unit="input units", vector_unit="source units"),
    _m("density_mse", ("density_weighted_mse",), "density", "P(x)·||x − y||²",
       "P(x)·||x - y||^2 with the source density P (Fig. 12; 2-D sources)",
       True, False, True, False, f"{_D}.density:density_weighted_mse",
       f"{_L}:DensityWeightedMSE", needs_density=True,
       vector_unit="density × source units²"),
    _m("inverse_density_mse", ("inverse_density_weighted_mse",), "density",
       "||x − y||²/P(x)",
       "||x - y||^2 / P(x) with the source density P (Fig. 12; 2-D sources)",
       True, False, True, False, f"{_D}.density:inverse_density_weighted_mse",
       f"{_L}:DensityWeightedMSE", needs_density=True,
       vector_unit="source units² / density", loss_options={"inverse": True}),
)

_BY_NAME: Dict[str, Metric] = {}
for _metric in _METRICS:
  for _key in (_metric.name,) + _metric.aliases:
    _BY_NAME[_key] = _metric


def _key(name: str) -> str:
  return name.strip().lower().replace("-", "_")


def names(images: Optional[bool] = None, vectors: Optional[bool] = None,
          family: Optional[str] = None) -> List[str]:
  """Canonical metric names, in table order, optionally only those that
  apply to images / vectors or belong to one family."""
  out = []
  for m in _METRICS:
    if images is not None and m.images != images:
      continue
    if vectors is not None and m.vectors != vectors:
      continue
    if family is not None and m.family != family:
      continue
    out.append(m.name)
  return out


def metrics() -> Tuple[Metric, ...]:
  """Every record, in table order."""
  return _METRICS


def unknown_metric_error(name, what: str = "metric") -> ValueError:
  """The error every lookup raises for an unknown name (one wording
  everywhere: distances.get, losses.get, distortion=, --distances)."""
  aliases = sorted(a for m in _METRICS for a in m.aliases)
  return ValueError(
      f"Unknown {what} {name!r}; accepted: {', '.join(names())} (aliases: "
      f"{', '.join(aliases)}; bin/evaluate distances --list describes them).")


def get(name: str, what: str = "metric") -> Metric:
  """The record of `name` (case-insensitive; aliases; "-" reads as "_").

  Args:
    name: metric name, e.g. "mse", "MS-SSIM", "nlpd_rgb".
    what: the word used in the error message ("distance", "loss",
      "distortion", ...).

  Raises:
    TypeError: name is not a string.
    ValueError: unknown name (`unknown_metric_error`).
  """
  if not isinstance(name, str):
    raise TypeError(f"{what} name must be a string, got "
                    f"{type(name).__name__}.")
  metric = _BY_NAME.get(_key(name))
  if metric is None:
    metric = _BY_NAME.get(name.strip().lower())
  if metric is None:
    raise unknown_metric_error(name, what)
  return metric


def canonical(name: str, what: str = "metric") -> str:
  """The canonical name of `name` (see `get`)."""
  return get(name, what).name


def check_size(name: str, height: int, width: Optional[int] = None,
               what: str = "images", **options) -> None:
  """Fails if height x width is below the metric's minimum image size.

  Args:
    name: metric name.
    height, width: image size in px (width defaults to height).
    what: how the images are called in the message (e.g. "--patchsize 32
      crops").
    **options: the metric's options (num_scales, num_levels, ...).

  Raises:
    ValueError: too small, with the minimum and how to fit.
  """
  metric = get(name)
  need = metric.min_size_for(**options)
  side = min(int(height), int(height if width is None else width))
  if side >= need:
    return
  hint = ""
  if metric.family == "ms_ssim":
    fit = _resolve("tfc_perception.distances.ms_ssim:ms_ssim_max_scales")(
        side)
    hint = (f"; MS-SSIM with {fit} scale(s) fits (num_scales={fit})" if fit
            else "; no number of MS-SSIM scales fits")
  elif metric.family == "nlpd":
    fit = _resolve("tfc_perception.distances.nlpd:nlpd_max_levels")(
        side, metric.options.get("variant", "laparra2016"))
    hint = f"; NLPD with {fit} level(s) fits (num_levels={fit})"
  raise ValueError(f"{what} of {side} px per side are too small for "
                   f"{metric.name}, which needs at least {need} px{hint}.")


def table() -> List[Dict[str, Any]]:
  """One row per metric (for `bin/evaluate distances --list`)."""
  return [{"name": m.name, "aliases": ", ".join(m.aliases),
           "lower_is_better": m.lower_is_better,
           "applies_to": "/".join(k for k, v in (("images", m.images),
                                                 ("vectors", m.vectors)) if v),
           "min_size": m.min_size, "description": m.description}
          for m in _METRICS]
