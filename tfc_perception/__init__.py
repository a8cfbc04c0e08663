"""tfc_perception: perceptual distances, compressive autoencoders and their
agreement with human opinion.

A reproduction, as a library and command-line tools, of Hepburn, Laparra,
Santos-Rodriguez, Balle and Malo, "On the relation between statistical learning
and perceptual distances", ICLR 2022 (arXiv 2106.04427), built on
tensorflow-compression.

Subpackages follow the paper: `distances` (MSE/PSNR, MS-SSIM, NLPD,
density-weighted), `losses` (Keras losses of those distances), `models`
(compressive autoencoders trained with Eq. 3), `induced` (De, Dr, Din, Ds),
`data`, `stats`, `pretrained` and `experiments`.
"""

__version__ = "0.1.0"

# Before anything imports TensorFlow: oneDNN on unless the user chose
# (tfc_perception/_onednn.py).
from tfc_perception import _onednn  # noqa: E402

_onednn.enable()

import importlib as _importlib  # noqa: E402

_SUBMODULES = ("distances", "losses", "models", "induced", "data", "stats",
               "pretrained", "experiments", "training", "train_spec", "codec",
               "evaluation", "plotting")


def __getattr__(name):
  # Subpackages load on first use, so `import tfc_perception.train_spec`
  # (bin/train --help) does not start TensorFlow.
  if name in _SUBMODULES:
    return _importlib.import_module(f"tfc_perception.{name}")
  raise AttributeError(f"module 'tfc_perception' has no attribute {name!r}")
