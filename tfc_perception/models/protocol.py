"""The codec interface every compression model satisfies (`Codec`).

The learned codecs of the paper -- the 2-D autoencoder of Fig. 10
(`toy2d`), the factorized-prior model of Fig. 15 (`factorized`), the
soft-quantisation model of Fig. 17 (`softquant`) -- and tfc's pretrained
models loaded from their tfci metagraphs (`tfc_perception.pretrained`) all
have the same interface, so `induced`, the evaluators, `codec` and the
experiments work with any of them:

    y = model.analysis(x)                      # encoder e
    y_hat = model.quantize(y, training=False)  # quantiser Q (noise in training)
    x_hat = model.synthesis(y_hat)             # decoder d
    x_hat, bits = model(x, training=False)     # forward pass and rate estimate
    x_hat = model.reconstruct(x)               # test-time output
    model.finalize()                           # range coding tables, once
    compressed = model.compress(x)             # range-coded bit-strings (+ shapes)
    x_hat = model.decompress(*compressed)      # == reconstruct(x)
    model.rate_unit                            # "bpp" or "bits/sample"

`isinstance(model, Codec)` checks that these members exist (a
`typing.runtime_checkable` protocol checks presence, not signatures; the
tests check the behaviour). Density models (PixelCNN++, the DAE of Fig. 9)
are not codecs: they live in `tfc_perception.models.density`.
"""

import typing

__all__ = ["Codec"]


@typing.runtime_checkable
class Codec(typing.Protocol):
  """Analysis, quantisation, synthesis, rate and real compression."""

  rate_unit: str

  def analysis(self, x):
    """Latent y = e(x), before quantisation."""

  def quantize(self, y, training=False):
    """Q(y): noisy/soft in training, hard at test time."""

  def synthesis(self, y_hat):
    """x_hat = d(y_hat)."""

  def __call__(self, x, training=False):
    """(x_hat, bits): reconstruction and estimated bits per example."""

  def reconstruct(self, x):
    """The test-time reconstruction (what `decompress` returns)."""

  def finalize(self):
    """Builds the range coding tables from the current weights (see
    `tfc_perception.models.coding`); returns the model."""

  def compress(self, x):
    """A tuple of tensors: the bit-strings and side information."""

  def decompress(self, *compressed):
    """The reconstruction from `compress`'s tuple."""
