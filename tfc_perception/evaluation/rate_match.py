"""Rate-matched comparison of rate-distortion curves.

Two model families (e.g. MSE- and MS-SSIM-trained codecs, Eq. 13 of Hepburn
et al., ICLR 2022) are compared "at the same rate" only if their numbers are
taken at one rate. Models trained for the same quality level or rate bound do
not code at the same rate, so each family's curve is interpolated to common
rates:

- the common rates are the actual rates of the *reference* family's models
  (the Euclidean baseline of each comparison: the MSE-trained models);
- every other family's values are interpolated there, piecewise linearly in
  log(rate) between the two models whose rates bracket it (the usual axis of
  rate-distortion comparisons, as in Bjøntegaard's BD-rate);
- nothing is extrapolated: a rate outside a family's range gives NaN, and
  the comparison says so;
- models of one family that code at exactly the same rate are one point
  of its curve, the mean of their values.

Each matched value comes with the rates it was interpolated from
(`bracket`), so a report can print the actual rates beside each number.
"""

from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

__all__ = ["interpolate", "bracket", "match_to_reference"]


def _curve(rates, values, name: str = "curve") -> Tuple[np.ndarray, np.ndarray]:
  r = np.asarray(rates, np.float64).ravel()
  v = np.asarray(values, np.float64).ravel()
  if r.size == 0 or r.shape != v.shape:
    raise ValueError(f"{name}: rates and values must be non-empty and of one "
                     f"length, got {r.size} rates and {v.size} values.")
  if not np.all(np.isfinite(r)) or np.any(r <= 0):
    raise ValueError(f"{name}: rates must be finite and > 0 (bits per pixel), "
                     f"got {r.tolist()}.")
  # Models that code at exactly the same rate (e.g. undertrained ones, or
  # the same number of bytes) are one point of the curve: their mean.
  rates, inverse = np.unique(r, return_inverse=True)
  means = np.bincount(inverse, weights=v) / np.bincount(inverse)
  return rates, means


def interpolate(rates: Sequence[float], values: Sequence[float],
                targets) -> np.ndarray:
  """A curve's values at target rates, linear in log(rate), not extrapolated.

  Args:
    rates: the models' actual rates (> 0, any order; models at one rate
      count as one point, the mean of their values).
    values: one value per model (e.g. mean MSE, PSNR).
    targets: rate(s) at which to read the curve.

  Returns:
    float64 array shaped like `targets`: the interpolated values, NaN where
    a target lies outside [min(rates), max(rates)]. A single model gives its
    value at its own rate only.

  Raises:
    ValueError: empty or mismatched inputs, non-positive rates.
  """
  r, v = _curve(rates, values)
  t = np.asarray(targets, np.float64)
  out = np.full(t.shape, np.nan)
  inside = np.isfinite(t) & (t >= r[0]) & (t <= r[-1]) & (t > 0)
  out[inside] = np.interp(np.log(t[inside]), np.log(r), v)
  return out


def bracket(rates: Sequence[float], target: float) -> Tuple[float, float]:
  """The two rates of `rates` that `target` is interpolated between
  ((r, r) when it equals a model's rate; (nan, nan) outside the range)."""
  r = np.sort(np.asarray(rates, np.float64).ravel())
  if r.size == 0 or not np.isfinite(target) or target < r[0] or \
      target > r[-1]:
    return float("nan"), float("nan")
  hit = np.isclose(r, target, rtol=0, atol=0)
  if hit.any():
    return float(target), float(target)
  i = int(np.searchsorted(r, target))
  return float(r[i - 1]), float(r[i])


def match_to_reference(
    reference: str, curves: Mapping[str, Mapping[str, Sequence[float]]],
    keys: Sequence[str]) -> List[Dict]:
  """Every family's values at the actual rates of the reference family.

  Args:
    reference: the name of the reference family in `curves`.
    curves: family name -> {"rate": [...], key: [...] for key in keys, and
      optionally "label": [...] (e.g. the models' quality levels)}: one entry
      per model of the family.
    keys: the values to interpolate (e.g. ("mse", "psnr")).

  Returns:
    One dict per (reference model, family): reference (the reference
    model's label), rate (its actual rate: the common rate), family, the
    interpolated value of each key (NaN outside the family's rates),
    rate_lo / rate_hi (the family's actual rates it was interpolated
    between), label_lo / label_hi (their labels) and matched (whether the
    rate lies inside the family's range). The reference family itself is
    listed too, with its own values.

  Raises:
    KeyError: the reference family, or a key, is missing.
    ValueError: see `interpolate`.
  """
  if reference not in curves:
    raise KeyError(f"reference family {reference!r} not among "
                   f"{sorted(curves)}.")
  ref = curves[reference]
  rows = []
  ref_labels = list(ref.get("label", range(len(ref["rate"]))))
  for label, rate in zip(ref_labels, ref["rate"]):
    for family, curve in curves.items():
      for key in keys:
        if key not in curve:
          raise KeyError(f"family {family!r} has no {key!r} values.")
      labels = list(curve.get("label", range(len(curve["rate"]))))
      lo, hi = bracket(curve["rate"], rate)
      by_rate = {}
      for r, lab in zip(np.asarray(curve["rate"], np.float64).tolist(),
                        labels):
        by_rate.setdefault(r, lab)
      row = {"reference": label, "rate": float(rate), "family": family,
             "matched": bool(np.isfinite(lo)), "rate_lo": lo, "rate_hi": hi,
             "label_lo": by_rate.get(lo), "label_hi": by_rate.get(hi)}
      for key in keys:
        row[key] = float(interpolate(curve["rate"], curve[key], rate))
      rows.append(row)
  return rows
