"""Training and evaluation data (Hepburn et al., ICLR 2022).

- `tfc_perception.data.sources`: 2-D sources with exact densities (the
  Student-t of Fig. 11 and a uniform box, Fig. 13) as tfp distributions, and
  seeded tf.data streams of their samples.
- `tfc_perception.data.images`: image folders/globs -> random crops, and
  uniform-noise images (Sec. 5.2), as seeded tf.data pipelines.
- `tfc_perception.data.iqa`: full-reference IQA datasets (TID2013, score
  CSVs); import it explicitly.

Submodules are imported on first attribute access, so `import
tfc_perception.data` stays light.
"""

import importlib

__all__ = ["sources", "images"]


def __getattr__(name):
  if name in ("sources", "images", "iqa"):
    return importlib.import_module(f"{__name__}.{name}")
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
