"""The Eq. 3 distortion terms of the image models (models.base.distortion_fn):
units, aliases, and what the three NLPD training distortions constrain."""

import numpy as np
import pytest
import tensorflow as tf

from tfc_perception import distances
from tfc_perception.models import base


def _pair(seed=0):
  """x in [0.3, 0.7] (96x96, smooth + texture) and a colour shift of it that
  keeps the rgb2gray luminance: +d on R, -d*0.298936/0.114021 on B."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:96, 0:96]
  x = np.stack([0.5 + 0.1 * np.sin(xx / (5 + c) + yy / 7) for c in range(3)],
               -1) + rng.normal(0, 0.03, (96, 96, 3))
  x = np.clip(x, 0.3, 0.7)[None].astype(np.float32)
  d = 0.04
  shift = np.array([d, 0.0, -d * 0.298936 / 0.114021], np.float32)
  return tf.constant(x), tf.constant(x + shift)


def test_nlpd_distortions_and_colour():
  x, y = _pair()
  grey = float(base.distortion_fn("nlpd", image=True)(x, y)[0])
  rgb = float(base.distortion_fn("nlpd_rgb", image=True)(x, y)[0])
  v2017 = float(base.distortion_fn("nlpd2017", image=True)(x, y)[0])
  # A luminance-preserving colour shift is (almost) invisible to the grey-
  # level NLPD, not to the per-channel ones.
  assert grey < 1e-3
  assert rgb > 50 * grey and v2017 > 0.0
  per_channel = np.mean([float(distances.nlpd(x[..., c:c + 1],
                                              y[..., c:c + 1], 1.0)[0])
                         for c in range(3)])
  assert rgb == pytest.approx(per_channel, rel=1e-5)
  assert v2017 == pytest.approx(
      float(distances.nlpd(x, y, 1.0, variant="laparra2017")[0]), rel=1e-6)
  assert base.canonical_distortion("nlpd_per_channel") == "nlpd_rgb"
  assert base.canonical_distortion("nlpd_laparra2017") == "nlpd2017"
  with pytest.raises(ValueError, match="nlpd_rgb"):
    base.canonical_distortion("nlpd_colour")


def test_mse_distortion_is_on_the_255_scale():
  x, y = _pair(1)
  expected = 255.0 ** 2 * np.mean((x.numpy() - y.numpy()) ** 2)
  assert float(base.distortion_fn("mse", image=True)(x, y)[0]) == pytest.approx(
      expected, rel=1e-5)
