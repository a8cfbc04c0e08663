"""Rate-matched comparison (tfc_perception.evaluation.rate_match) on curves
whose interpolated values are computed by hand."""

import math

import numpy as np
import pytest

from tfc_perception.evaluation import rate_match


def test_interpolation_is_linear_in_log_rate_and_never_extrapolates():
  # 0.2 bpp is halfway between 0.1 and 0.4 in log(rate): ln 2 / ln 4 = 1/2.
  got = rate_match.interpolate([0.4, 0.1], [20.0, 10.0],
                               [0.1, 0.2, 0.4, 0.05, 0.5])
  np.testing.assert_allclose(got[:3], [10.0, 15.0, 20.0])
  assert np.isnan(got[3]) and np.isnan(got[4])
  # 0.3 bpp: weight ln(3)/ln(4) of the way from 0.1 to 0.4.
  w = math.log(3) / math.log(4)
  assert rate_match.interpolate([0.1, 0.4], [10.0, 20.0], 0.3) == \
      pytest.approx(10 + 10 * w)
  assert rate_match.bracket([0.1, 0.4, 0.2], 0.3) == (0.2, 0.4)
  assert rate_match.bracket([0.1, 0.4], 0.4) == (0.4, 0.4)
  assert all(math.isnan(r) for r in rate_match.bracket([0.1, 0.4], 0.6))


def test_bad_curves_are_refused():
  with pytest.raises(ValueError, match="> 0"):
    rate_match.interpolate([0.0, 0.1], [1, 2], 0.05)
  # Two models at one rate are one point of the curve: their mean.
  assert rate_match.interpolate([0.1, 0.1, 0.4], [1.0, 2.0, 3.0], 0.1) == 1.5
  with pytest.raises(ValueError, match="one length"):
    rate_match.interpolate([0.1, 0.2], [1], 0.1)


def test_match_to_reference_reads_every_family_at_the_reference_rates():
  curves = {
      "mse": {"rate": [0.2, 0.8], "d": [100.0, 25.0], "label": [1, 8]},
      # 0.2 bpp is the geometric midpoint of 0.1 and 0.4: (40 + 20) / 2;
      # 0.8 lies beyond this family's last model.
      "msssim": {"rate": [0.1, 0.4], "d": [40.0, 20.0], "label": [1, 8]},
  }
  rows = rate_match.match_to_reference("mse", curves, ["d"])
  by = {(r["reference"], r["family"]): r for r in rows}
  assert by[(1, "mse")]["d"] == 100.0 and by[(1, "mse")]["rate"] == 0.2
  m = by[(1, "msssim")]
  assert m["d"] == pytest.approx(30.0) and m["matched"]
  assert (m["rate_lo"], m["rate_hi"], m["label_lo"], m["label_hi"]) == (
      0.1, 0.4, 1, 8)
  # The Eq. 13 ratio at the common rate 0.2 bpp: D1 / D0 = 30 / 100.
  assert m["d"] / by[(1, "mse")]["d"] == pytest.approx(0.3)
  out = by[(8, "msssim")]
  assert not out["matched"] and math.isnan(out["d"])
  with pytest.raises(KeyError, match="reference family"):
    rate_match.match_to_reference("nlpd", curves, ["d"])
