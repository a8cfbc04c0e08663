"""Validation of plain Python values (no TensorFlow): integers, positive
numbers, choices. `tfc_perception._validation` re-exports them next to the
tensor checks, so there is one of each in the library.

Each check raises ValueError (TypeError for the wrong Python type where
noted) with a message that names the value and says what is accepted.
"""

import math
import numbers
from typing import Iterable, Optional

__all__ = ["check_int", "check_positive", "check_choice"]


def check_int(value, name: str, minimum: Optional[int] = None,
              maximum: Optional[int] = None) -> int:
  """Returns `value` as int; fails unless it is an integer (not a bool, not
  a float) within [minimum, maximum].

  Raises:
    ValueError: not an integer, or out of range.
  """
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise ValueError(f"{name} must be an integer"
                     f"{_range(minimum, maximum)}, got {value!r}.")
  value = int(value)
  if (minimum is not None and value < minimum) or (
      maximum is not None and value > maximum):
    raise ValueError(f"{name} must be an integer{_range(minimum, maximum)}, "
                     f"got {value}.")
  return value


def _range(minimum, maximum) -> str:
  if minimum is not None and maximum is not None:
    return f" in {minimum}..{maximum}"
  if minimum is not None:
    return f" >= {minimum}"
  if maximum is not None:
    return f" <= {maximum}"
  return ""


def check_positive(value, name: str, allow_zero: bool = False) -> float:
  """Returns `value` as float, failing unless it is a (strictly) positive
  finite number.

  Raises:
    TypeError: not a number (bools are not numbers here).
    ValueError: not finite, or negative (or zero without allow_zero).
  """
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise TypeError(f"{name} must be a number, got {type(value).__name__}.")
  value = float(value)
  if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
    bound = ">= 0" if allow_zero else "> 0"
    raise ValueError(f"{name} must be finite and {bound}, got {value}.")
  return value


def check_choice(value, name: str, choices: Iterable):
  """Fails unless `value` is one of `choices`; returns it."""
  choices = tuple(choices)
  if value not in choices:
    raise ValueError(f"Unknown {name} {value!r}; accepted: "
                     f"{', '.join(map(repr, choices))}.")
  return value
