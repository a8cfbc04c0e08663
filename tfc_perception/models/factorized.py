"""Factorized-prior image model (Fig. 15; Balle et al. 2018,
"bmshj2018-factorized").

Analysis: 4 x [5x5 convolution, stride 2] (tfc.SignalConv2D), GDN after the
first three; synthesis mirrors it with 5x5 stride-2 transposed convolutions
and inverse GDN. N = `num_filters` channels inside, M = `latent_channels` in
the latent. Quantisation: rounding (uniform noise in training); entropy model:
tfc.NoisyDeepFactorized + tfc.ContinuousBatchedEntropyModel (coding rank 3,
one bit-string per image).

`FactorizedPrior.from_quality(q, metric)` gives the paper's configuration:
N, M = 128, 192 for qualities 1-5 and 192, 320 for 6-8, with the lambda of
the CompressAI tables (reference/tfci.md): loss = bpp + lambda * 255^2 * MSE
(on [0, 1] images, i.e. MSE on the 0-255 scale) or bpp + lambda *
(1 - MS-SSIM).
"""

from typing import Callable, Optional

import tensorflow as tf
import tensorflow_compression as tfc

from tfc_perception import _validation
from tfc_perception.models import base
from tfc_perception.models import coding

__all__ = ["FactorizedPrior", "QUALITY_LAMBDAS", "quality_config",
           "analysis_transform", "synthesis_transform"]

# CompressAI's lambdas for bmshj2018-factorized, qualities 1..8.
QUALITY_LAMBDAS = {
    "mse": (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800),
    "msssim": (2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.00),
}


def quality_config(quality: int, metric: str = "mse") -> dict:
  """num_filters, latent_channels, lmbda and distortion of a quality level.

  Args:
    quality: 1 (lowest rate) .. 8.
    metric: "mse" or "msssim" (or an alias, see
      tfc_perception.distances.registry).

  Returns:
    dict(num_filters, latent_channels, lmbda, distortion, quality).

  Raises:
    ValueError: quality not in 1..8, or a metric without a lambda table.
  """
  quality = _validation.check_int(quality, "quality", 1, 8)
  metric = base.canonical_distortion(metric)
  if metric not in QUALITY_LAMBDAS:
    raise ValueError(f"there is no lambda table for distortion {metric!r}; "
                     f"quality works with: {', '.join(QUALITY_LAMBDAS)}. Give "
                     "lmbda explicitly instead.")
  n, m = (128, 192) if quality <= 5 else (192, 320)
  return dict(num_filters=n, latent_channels=m, quality=quality,
              lmbda=QUALITY_LAMBDAS[metric][quality - 1], distortion=metric)


class FactorizedPrior(coding.ImageCoding, base.UniformNoiseBottleneck,
                      coding.ContinuousEntropyCoding, base.CompressionModel):
  """bmshj2018-factorized compressive autoencoder (Fig. 15).

  Args:
    lmbda: lambda of Eq. 3 (> 0); default 0.01 (between qualities 3 and 4 of
      the mse table).
    distortion: "mse" (255^2 * MSE on [0, 1]), "msssim" (1 - MS-SSIM; needs
      patches of at least 161 px for 5 scales), "nlpd", or a density one.
    num_filters: N (default 128).
    latent_channels: M (default 192).
    quality: informational (set by from_quality / build_model(quality=)).
    density_fn: callable x -> P(x) for the density-weighted distortions.
    seed: construction seed.
    **kwargs: tf.keras.Model arguments (name).
  """

  registry_name = "factorized"
  _coding_rank = 3

  def __init__(self, lmbda: float = 0.01, distortion: str = "mse",
               num_filters: int = 128, latent_channels: int = 192,
               quality: Optional[int] = None,
               density_fn: Optional[Callable] = None,
               seed: Optional[int] = None, **kwargs):
    super().__init__(lmbda=lmbda, distortion=distortion,
                     density_fn=density_fn, seed=seed, **kwargs)
    self.num_filters = _validation.check_int(num_filters, "num_filters", 1)
    self.latent_channels = _validation.check_int(latent_channels,
                                                 "latent_channels", 1)
    self.quality = quality
    n, m = self.num_filters, self.latent_channels

    self.analysis_transform = analysis_transform(n, m)
    self.synthesis_transform = synthesis_transform(n)
    self._init_entropy_coding(tfc.NoisyDeepFactorized(batch_shape=(m,)))
    self.analysis_transform.build((None, None, None, 3))
    self.synthesis_transform.build((None, None, None, m))
    self.built = True  # All weights exist (summary(), checkpoints).

  @classmethod
  def from_quality(cls, quality: int, metric: str = "mse", **kwargs):
    """The paper's model for a quality level (Fig. 15): N, M = 128, 192 for
    q 1-5 and 192, 320 for q 6-8; lambda from QUALITY_LAMBDAS[metric].

    Args:
      quality: 1..8.
      metric: "mse" or "msssim" (the training distortion).
      **kwargs: other constructor arguments; num_filters / latent_channels
        given here override the paper's N / M (e.g. small quick configs).

    Raises:
      ValueError: invalid quality/metric, or lmbda also given.
    """
    if kwargs.get("lmbda") is not None:
      raise ValueError("give either quality or lmbda, not both (quality sets "
                       "lambda from the table).")
    kwargs.pop("lmbda", None)
    config = quality_config(quality, metric)
    for key in ("num_filters", "latent_channels"):
      if kwargs.get(key) is not None:
        config[key] = kwargs.pop(key)
      else:
        kwargs.pop(key, None)
    kwargs.pop("distortion", None)
    return cls(**config, **kwargs)

  def get_config(self) -> dict:
    config = super().get_config()
    config.update(num_filters=self.num_filters,
                  latent_channels=self.latent_channels, quality=self.quality)
    return config

  # ------------------------------------------------------------ interface
  def analysis(self, x):
    """e(x): images [N, H, W, 3] (uint8 or float in [0, 1]) -> latent
    [N, ceil(H/16), ceil(W/16), M] float32 (input edge-padded to a multiple
    of 16)."""
    return self._latent(self._to_float_images(x))

  def quantize(self, y, training=False, seed=None):
    """Q(y): y + U(-0.5, 0.5) in training (stateless with `seed`), rounding
    at test time."""
    y = tf.cast(y, tf.float32)
    if training:
      return self._uniform_noise(y, seed)
    return self._hard_quantize(y)

  def synthesis(self, y_hat):
    """d(y_hat): latent [N, h, w, M] -> float32 [N, 16h, 16w, 3], nominal
    [0, 1], not clipped (crop to the image size yourself, or use
    reconstruct)."""
    return self._synthesize(y_hat)

  def _estimate(self, x, training, seed=None):
    x = self._to_float_images(x)
    y_tilde, bits = self._bottleneck(self._latent(x), training, seed)
    shape = tf.shape(x)
    x_hat = self._crop(self.synthesis(y_tilde), shape[1], shape[2])
    return x, x_hat, bits

  def compressed_dtypes(self):
    return (tf.string, tf.int32, tf.int32)


def analysis_transform(num_filters: int, latent_channels: int):
  """The bmshj2018 analysis transform: 4 x [5x5 conv, stride 2] (tfc
  SignalConv2D, zero "same" padding, bias), GDN after the first three.
  [N, H, W, 3] -> [N, H/16, W/16, latent_channels]."""
  def down(filters, i, gdn):
    return tfc.SignalConv2D(
        filters, (5, 5), name=f"layer_{i}", corr=True, strides_down=2,
        padding="same_zeros", use_bias=True,
        activation=tfc.GDN(name=f"gdn_{i}") if gdn else None)
  n, m = num_filters, latent_channels
  return tf.keras.Sequential(
      [down(n, 0, True), down(n, 1, True), down(n, 2, True),
       down(m, 3, False)], name="analysis")


def synthesis_transform(num_filters: int):
  """The bmshj2018 synthesis transform: 4 x [5x5 transposed conv, stride 2],
  inverse GDN after the first three. [N, h, w, M] -> [N, 16h, 16w, 3]."""
  def up(filters, i, igdn):
    return tfc.SignalConv2D(
        filters, (5, 5), name=f"layer_{i}", corr=False, strides_up=2,
        padding="same_zeros", use_bias=True,
        activation=tfc.GDN(name=f"igdn_{i}", inverse=True) if igdn else None)
  n = num_filters
  return tf.keras.Sequential(
      [up(n, 0, True), up(n, 1, True), up(n, 2, True), up(3, 3, False)],
      name="synthesis")

