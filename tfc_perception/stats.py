"""Agreement between a distance and human opinion: SRCC, PLCC, KRCC.

Observation 5 of Hepburn et al. (ICLR 2022, Fig. 3) is measured by the rank
correlation between a distance (PSNR, MS-SSIM, NLPD, or a distance induced by a
compressive autoencoder, Dr / Din) and the mean opinion scores (MOS) of an IQA
dataset such as TID2013. This module implements the conventions of the IQA
literature (see ../shared/reference/iqa.md):

- |SRCC| (Spearman), |KRCC| (Kendall tau-b) and |PLCC| (Pearson), as absolute
  values, plus "oriented" signed values: positive when the metric agrees with
  the human ordering (a lower-is-better distance is negated first).
- PLCC is reported twice, and labelled: `plcc` on the raw scores (no fit) and
  `plcc_logistic` after the 5-parameter logistic mapping used by VQEG
  (Sheikh et al. 2006):
      q(s) = b1 * (0.5 - 1 / (1 + exp(b2 * (s - b3)))) + b4 * s + b5.
- Percentile-bootstrap confidence intervals (seeded) and a per-distortion-type
  breakdown.

All computations use scipy.stats / scipy.optimize.
"""

import math
import warnings
from typing import Any, Dict, Optional, Sequence

import numpy as np
from scipy import optimize
from scipy import stats as sps

from tfc_perception import _checks

__all__ = ["vqeg_logistic", "fit_logistic", "correlations",
           "correlation_rows", "spearman", "pearson"]


def _test(scipy_test, a, b):
  """(statistic, p) of a scipy correlation test; (nan, nan) for fewer than 3
  points or a constant sample."""
  a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
  if a.size != b.size:
    raise ValueError(f"a and b must have the same length; got {a.size} and "
                     f"{b.size}.")
  if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
    return math.nan, math.nan
  r = scipy_test(a, b)
  return float(r.statistic), float(r.pvalue)


def spearman(a, b):
  """Spearman's ρ between two samples and its two-sided p-value
  (scipy.stats.spearmanr).

  Returns:
    (rho, p) as floats; (nan, nan) for fewer than 3 points or a constant
    sample (no ranking exists).

  Raises:
    ValueError: different lengths.
  """
  return _test(sps.spearmanr, a, b)


def pearson(a, b):
  """Pearson's r and its two-sided p-value (scipy.stats.pearsonr); (nan,
  nan) for fewer than 3 points or a constant sample.

  Raises:
    ValueError: different lengths.
  """
  return _test(sps.pearsonr, a, b)


def vqeg_logistic(s, b1, b2, b3, b4, b5):
  """The VQEG 5-parameter logistic q(s) (Sheikh et al. 2006, Eq. 1).

  Args:
    s: array of objective scores.
    b1, b2, b3, b4, b5: the parameters.

  Returns:
    Predicted subjective scores, same shape as `s`.
  """
  s = np.asarray(s, dtype=np.float64)
  z = np.clip(b2 * (s - b3), -500.0, 500.0)  # exp overflow guard
  return b1 * (0.5 - 1.0 / (1.0 + np.exp(z))) + b4 * s + b5


def _as_1d(values, name: str) -> np.ndarray:
  if isinstance(values, (str, bytes)) or values is None:
    raise TypeError(f"{name} must be a 1-D array of numbers, got "
                    f"{type(values).__name__}.")
  arr = np.asarray(values)
  if arr.ndim != 1:
    raise ValueError(f"{name} must be 1-D (one value per image pair); got "
                     f"shape {arr.shape}.")
  if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(
      arr.dtype, np.complexfloating):
    raise ValueError(f"{name} must be real numbers; got dtype {arr.dtype}.")
  arr = arr.astype(np.float64)
  if not np.all(np.isfinite(arr)):
    bad = np.flatnonzero(~np.isfinite(arr))
    raise ValueError(f"{name} contains {bad.size} NaN/Inf value(s) (first at "
                     f"index {bad[0]}); remove those pairs first.")
  return arr


def fit_logistic(scores, mos, maxfev: int = 20000) -> Dict[str, Any]:
  """Fits the VQEG 5-parameter logistic mapping scores -> MOS.

  Args:
    scores: 1-D array of objective scores (any orientation).
    mos: 1-D array of subjective scores, same length (>= 6).
    maxfev: maximum function evaluations of scipy.optimize.curve_fit.

  Returns:
    {"params": [b1..b5], "converged": bool, "predicted": array}. When the
    least-squares fit does not converge, the best linear fit is used instead
    (b1 = 0) and "converged" is False.

  Raises:
    ValueError: mismatched lengths, fewer than 6 points, non-finite values.
  """
  s = _as_1d(scores, "scores")
  y = _as_1d(mos, "mos")
  if s.size != y.size:
    raise ValueError(f"scores and mos must have the same length; got {s.size} "
                     f"and {y.size}.")
  if s.size < 6:
    raise ValueError("the 5-parameter logistic fit needs at least 6 points; "
                     f"got {s.size}.")
  sd = float(np.std(s))
  if sd == 0.0:
    return {"params": [0.0, 0.0, 0.0, 0.0, float(np.mean(y))],
            "converged": False, "predicted": np.full_like(y, np.mean(y))}
  r = np.corrcoef(s, y)[0, 1]
  sign = 1.0 if (np.isnan(r) or r >= 0) else -1.0
  p0 = [sign * (np.max(y) - np.min(y)), 1.0 / sd, float(np.median(s)), 0.0,
        float(np.mean(y))]
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      params, _ = optimize.curve_fit(vqeg_logistic, s, y, p0=p0,
                                     maxfev=maxfev)
    pred = vqeg_logistic(s, *params)
    if not np.all(np.isfinite(pred)):
      raise RuntimeError("non-finite prediction")
    return {"params": [float(p) for p in params], "converged": True,
            "predicted": pred}
  except (RuntimeError, optimize.OptimizeWarning, ValueError):
    slope, intercept = np.polyfit(s, y, 1)
    return {"params": [0.0, 0.0, 0.0, float(slope), float(intercept)],
            "converged": False, "predicted": slope * s + intercept}


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Pearson r along axis 1 of two [B, n] arrays."""
  a = a - a.mean(axis=1, keepdims=True)
  b = b - b.mean(axis=1, keepdims=True)
  den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
  with np.errstate(invalid="ignore", divide="ignore"):
    return (a * b).sum(axis=1) / den


def _basic(s: np.ndarray, y: np.ndarray) -> Dict[str, float]:
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # constant input -> nan, reported as nan
    return {"srcc": float(sps.spearmanr(s, y)[0]),
            "plcc": float(sps.pearsonr(s, y)[0]) if s.size >= 2 else math.nan,
            "krcc": float(sps.kendalltau(s, y)[0])}


def correlations(scores, mos, lower_is_better: bool,
                 types: Optional[Sequence] = None,
                 n_bootstrap: int = 1000, confidence: float = 0.95,
                 seed: int = 0, logistic: bool = True) -> Dict[str, Any]:
  """Correlation of a metric with human opinion, as in Fig. 3 of the paper.

  Args:
    scores: 1-D array, the metric per image pair (e.g. PSNR, Dr, Din).
    mos: 1-D array, the subjective score per pair, higher = better quality
      (for DMOS datasets pass -DMOS, or just read the absolute values).
    lower_is_better: True for distances (MSE, NLPD, Dr, Din), False for
      similarities (PSNR, MS-SSIM). Only the signed ("oriented") values
      depend on it: scores are negated when True, so that an oriented
      correlation is positive when the metric agrees with the observers.
    types: optional sequence of distortion-type labels (one per pair) for the
      per-type breakdown.
    n_bootstrap: number of bootstrap resamples of the pairs for the
      percentile confidence intervals (0 disables them).
    confidence: level of the intervals, in (0, 1).
    seed: seed of the bootstrap resampling (numpy default_rng).
    logistic: whether to fit the VQEG 5-parameter logistic for
      `plcc_logistic`.

  Returns:
    A JSON-serialisable dict with
      n, lower_is_better,
      srcc, plcc, plcc_logistic, krcc: absolute values (|rho|); `plcc` is
        on the raw scores (no fit), `plcc_logistic` after the logistic fit
        (NaN with fewer than 6 pairs),
      srcc_oriented, plcc_oriented, krcc_oriented: signed, positive = agrees,
      ci: {metric: [low, high]} percentile-bootstrap intervals of the
        absolute values (for plcc_logistic the fit of the full sample is kept
        fixed and the (prediction, MOS) pairs are resampled),
      ci_level, n_bootstrap, seed,
      logistic: {"model": "vqeg5", "params": [b1..b5], "converged": bool},
      per_type: {type: {n, srcc, plcc, krcc, srcc_oriented}} (if `types`).

  Raises:
    ValueError: mismatched lengths, fewer than 3 pairs, non-finite values,
      bad confidence or n_bootstrap.
    TypeError: non-array inputs, non-bool lower_is_better.
  """
  s = _as_1d(scores, "scores")
  y = _as_1d(mos, "mos")
  if s.size != y.size:
    raise ValueError(f"scores and mos must have the same length; got {s.size} "
                     f"and {y.size}.")
  if s.size < 3:
    raise ValueError(f"correlations need at least 3 pairs; got {s.size}.")
  if not isinstance(lower_is_better, (bool, np.bool_)):
    raise TypeError("lower_is_better must be True (distances) or False "
                    f"(similarities), got {lower_is_better!r}.")
  n_bootstrap = _checks.check_int(n_bootstrap, "n_bootstrap", 0)
  if not 0.0 < float(confidence) < 1.0:
    raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
  if types is not None:
    types = np.asarray(types)
    if types.shape != (s.size,):
      raise ValueError(f"types must have one label per pair ({s.size}); got "
                       f"shape {types.shape}.")
  oriented = -s if lower_is_better else s

  basic = _basic(oriented, y)
  result: Dict[str, Any] = {"n": int(s.size),
                            "lower_is_better": bool(lower_is_better)}
  for k in ("srcc", "plcc", "krcc"):
    result[k] = abs(basic[k])
    result[k + "_oriented"] = basic[k]
  if logistic and s.size < 6:
    pred = None
    result["plcc_logistic"] = math.nan
    result["logistic"] = {"model": "vqeg5", "params": None,
                          "converged": False,
                          "fitted_on": "not fitted: fewer than 6 pairs"}
  elif logistic:
    fit = fit_logistic(oriented, y)
    pred = fit["predicted"]
    result["plcc_logistic"] = abs(_basic(pred, y)["plcc"])
    result["logistic"] = {"model": "vqeg5", "params": fit["params"],
                          "converged": fit["converged"],
                          "fitted_on": "oriented scores"}
  else:
    pred = None
    result["plcc_logistic"] = math.nan

  result["ci_level"] = float(confidence)
  result["n_bootstrap"] = int(n_bootstrap)
  result["seed"] = int(seed)
  if n_bootstrap > 0:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, s.size, size=(n_bootstrap, s.size))
    bs, by = oriented[idx], y[idx]
    srcc_b = _pearson_rows(sps.rankdata(bs, axis=1), sps.rankdata(by, axis=1))
    plcc_b = _pearson_rows(bs, by)
    krcc_b = np.array([sps.kendalltau(a, b)[0] for a, b in zip(bs, by)])
    samples = {"srcc": srcc_b, "plcc": plcc_b, "krcc": krcc_b}
    if pred is not None:
      samples["plcc_logistic"] = _pearson_rows(pred[idx], by)
    alpha = (1.0 - confidence) / 2.0
    result["ci"] = {}
    for k, v in samples.items():
      v = np.abs(v[np.isfinite(v)])
      result["ci"][k] = ([float(np.quantile(v, alpha)),
                          float(np.quantile(v, 1.0 - alpha))]
                         if v.size else [math.nan, math.nan])
  if types is not None:
    per_type = {}
    for t in sorted(set(types.tolist()), key=str):
      m = types == t
      if m.sum() < 3:
        per_type[str(t)] = {"n": int(m.sum()), "srcc": math.nan,
                            "plcc": math.nan, "krcc": math.nan,
                            "srcc_oriented": math.nan}
        continue
      b = _basic(oriented[m], y[m])
      per_type[str(t)] = {"n": int(m.sum()), "srcc": abs(b["srcc"]),
                          "plcc": abs(b["plcc"]), "krcc": abs(b["krcc"]),
                          "srcc_oriented": b["srcc"]}
    result["per_type"] = per_type
  return result


def correlation_rows(result: Dict[str, Any], **labels) -> Dict[str, Any]:
  """Flattens a `correlations` result into one CSV row.

  Args:
    result: the dict returned by `correlations`.
    **labels: leading columns (e.g. model=..., distance=...).

  Returns:
    A flat dict: labels, n, srcc, srcc_lo, srcc_hi, plcc (no fit), plcc_lo,
    plcc_hi, plcc_logistic, plcc_logistic_lo, plcc_logistic_hi, krcc, krcc_lo,
    krcc_hi, srcc_oriented, logistic_converged.
  """
  if not isinstance(result, dict) or "srcc" not in result:
    raise ValueError("result must be the dict returned by correlations().")
  row = dict(labels)
  row["n"] = result["n"]
  ci = result.get("ci", {})
  for k in ("srcc", "plcc", "plcc_logistic", "krcc"):
    row[k] = result[k]
    lo, hi = ci.get(k, [math.nan, math.nan])
    row[k + "_lo"], row[k + "_hi"] = lo, hi
  row["srcc_oriented"] = result["srcc_oriented"]
  if "n_nonfinite_excluded" in result:
    row["n_nonfinite_excluded"] = result["n_nonfinite_excluded"]
  row["logistic_converged"] = result.get("logistic", {}).get("converged")
  return row


def _main(argv=None) -> None:
  """python -m tfc_perception.stats --mos MOS.txt --scores S.txt [...]:
  correlations of one-value-per-line score files (e.g. the TID2013 authors'
  metrics_values/PSNR.txt against mos.txt), printed as JSON."""
  import argparse  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(
      prog="python -m tfc_perception.stats",
      description="Correlation of per-pair scores with MOS (one number per "
                  "line, same order).")
  parser.add_argument("--mos", required=True, help="MOS file (e.g. mos.txt)")
  parser.add_argument("--scores", required=True, nargs="+",
                      help="score file(s), one value per line")
  parser.add_argument("--lower_is_better", action="store_true",
                      help="the scores are distances")
  parser.add_argument("--bootstrap", type=int, default=1000)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  mos = np.loadtxt(args.mos, ndmin=1)
  for path in args.scores:
    r = correlations(np.loadtxt(path, ndmin=1), mos,
                     lower_is_better=args.lower_is_better,
                     n_bootstrap=args.bootstrap, seed=args.seed)
    row = correlation_rows(r, scores=path)
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                      for k, v in row.items()}))


if __name__ == "__main__":
  _main()
