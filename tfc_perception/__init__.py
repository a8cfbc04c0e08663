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

from tfc_perception import distances  # noqa: F401  (light: TF only)
