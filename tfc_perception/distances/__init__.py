"""Perceptual and statistical distances between image batches.

All image distances take NHWC batches, uint8 (range [0, 255]) or float with
an explicit `max_val`, and return one float32 value per example (shape
[batch]); they are differentiable (finite gradients everywhere) and usable
inside tf.function. See docs/distances.md for definitions and conventions.

  registry: the one table of metric names (distances.get, losses.get,
            model distortions, IQA baselines, induced distances)
  mse, psnr, squared_error, euclidean (mse.py)
  ms_ssim                             (ms_ssim.py; default == tf.image.ssim_multiscale)
  nlpd (laparra2016 | laparra2017)    (nlpd.py)
  density_weighted_mse, inverse_density_weighted_mse   (density.py, Fig. 12)
  pairs.evaluate_pairs: distances between image files/folders (bin/evaluate)
"""

import importlib
from typing import Callable

from tfc_perception.distances.density import density_weighted_mse
from tfc_perception.distances.density import inverse_density_weighted_mse
from tfc_perception.distances.ms_ssim import ms_ssim
from tfc_perception.distances.ms_ssim import ms_ssim_max_scales
from tfc_perception.distances.ms_ssim import ms_ssim_min_size
from tfc_perception.distances.mse import mse
from tfc_perception.distances.mse import psnr
from tfc_perception.distances.mse import euclidean
from tfc_perception.distances.mse import squared_error
from tfc_perception.distances.nlpd import nlpd
from tfc_perception.distances.nlpd import nlpd_max_levels
from tfc_perception.distances.nlpd import nlpd_min_size
from tfc_perception.distances import registry

# The submodules (their names are shadowed by the functions of the same name).
ms_ssim_module = importlib.import_module("tfc_perception.distances.ms_ssim")
nlpd_module = importlib.import_module("tfc_perception.distances.nlpd")

__all__ = [
    "mse", "psnr", "squared_error", "euclidean", "ms_ssim", "ms_ssim_min_size",
    "ms_ssim_max_scales", "density_weighted_mse",
    "inverse_density_weighted_mse", "nlpd", "nlpd_min_size",
    "nlpd_max_levels", "nlpd_module", "ms_ssim_module", "get", "NAMES",
    "registry",
]

NAMES = tuple(registry.names())


def get(name: str) -> Callable:
  """Returns the distance function called `name`, with the options of its
  variant bound (the one table: `tfc_perception.distances.registry`).

  Args:
    name: a registered metric (case-insensitive; aliases; "-" reads as "_"),
      e.g. "mse", "psnr", "msssim"/"ms_ssim"/"MS-SSIM", "nlpd" (laparra2016
      on grey levels), "nlpd_rgb", "nlpd2017", "euclidean", "density_mse".

  Returns:
    The function, e.g. `tfc_perception.distances.nlpd` (a functools.partial
    with the variant's options for nlpd_rgb and nlpd2017).

  Raises:
    ValueError: unknown name (the message lists the accepted names).
  """
  return registry.get(name, "distance").function
