"""Typed, frozen configuration dataclasses (no TensorFlow).

The training spec (`train_spec.TrainSpec`) and the experiment configs are
frozen dataclasses whose annotations are the accepted types. This module
checks values against those annotations, builds instances from plain dicts
(JSON files) and applies dotted overrides (`--set train.steps=500`), with
errors that name the field and say what it accepts.

Supported annotations: int, float (ints are accepted and converted), str,
bool, Any, Optional[X], Tuple[X, ...] (lists are accepted and stored as
tuples, so configs stay immutable; a list of strings may also be given as
"a,b,c"), Dict[str, X] and nested dataclasses.
"""

import dataclasses
import math
import numbers
import typing
from typing import Any, Dict, Mapping

__all__ = ["check_value", "check_fields", "from_dict", "to_dict",
           "replace_dotted", "describe", "Checked"]


def describe(annotation) -> str:
  """Human-readable name of an annotation ("an integer", "a list of
  numbers", ...)."""
  origin = typing.get_origin(annotation)
  args = typing.get_args(annotation)
  if annotation is Any:
    return "any value"
  if annotation is bool:
    return "true or false"
  if annotation is int:
    return "an integer"
  if annotation is float:
    return "a number"
  if annotation is str:
    return "a string"
  if origin is typing.Union:
    parts = [describe(a) for a in args if a is not type(None)]
    text = " or ".join(parts)
    return text + " or null" if type(None) in args else text
  if origin in (tuple, list):
    inner = args[0] if args else Any
    return f"a list of {_plural(describe(inner))}"
  if origin is dict:
    return "a mapping"
  if dataclasses.is_dataclass(annotation):
    return f"a {annotation.__name__} section (a mapping)"
  return getattr(annotation, "__name__", str(annotation))


def _plural(text: str) -> str:
  for article in ("an ", "a "):
    if text.startswith(article):
      text = text[len(article):]
      break
  words = {"integer": "integers", "number": "numbers", "string": "strings",
           "true or false": "booleans", "any value": "values"}
  return words.get(text, text)


def check_value(value, annotation, name: str):
  """Returns `value` checked against (and normalised to) `annotation`.

  Raises:
    ValueError: with `name`, what it accepts and what it got.
  """
  origin = typing.get_origin(annotation)
  args = typing.get_args(annotation)
  bad = ValueError(f"{name} must be {describe(annotation)}, got {value!r}.")
  if annotation is Any:
    return value
  if origin is typing.Union:
    if value is None:
      if type(None) in args:
        return None
      raise bad
    errors = []
    for arg in args:
      if arg is type(None):
        continue
      try:
        return check_value(value, arg, name)
      except ValueError as e:
        errors.append(e)
    raise bad
  if annotation is bool:
    if isinstance(value, bool):
      return value
    raise bad
  if annotation is int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
      raise bad
    return int(value)
  if annotation is float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
      raise bad
    value = float(value)
    if math.isnan(value):
      raise bad
    return value
  if annotation is str:
    if not isinstance(value, str):
      raise bad
    return value
  if origin in (tuple, list):
    if isinstance(value, str) and args and args[0] is str:
      # "a,b,c" for a list of strings (as absl's list flags take it).
      value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(
        value, (list, tuple)):
      raise bad
    if origin is tuple and args and not (len(args) == 2 and
                                         args[1] is Ellipsis):
      if len(value) != len(args):
        raise bad
      return tuple(check_value(v, a, f"{name}[{i}]")
                   for i, (v, a) in enumerate(zip(value, args)))
    inner = args[0] if args else Any
    return tuple(check_value(v, inner, f"{name}[{i}]")
                 for i, v in enumerate(value))
  if origin is dict:
    if not isinstance(value, Mapping):
      raise bad
    inner = args[1] if len(args) == 2 else Any
    return {str(k): check_value(v, inner, f"{name}.{k}")
            for k, v in value.items()}
  if dataclasses.is_dataclass(annotation):
    if isinstance(value, annotation):
      return value
    if isinstance(value, Mapping):
      return from_dict(annotation, value, name)
    raise bad
  if isinstance(annotation, type):
    if isinstance(value, annotation):
      return value
    raise bad
  return value


def _hints(cls) -> Dict[str, Any]:
  return typing.get_type_hints(cls)


def check_fields(obj) -> None:
  """Checks and normalises every field of a (frozen) dataclass instance in
  place; call it from `__post_init__`."""
  hints = _hints(type(obj))
  prefix = getattr(obj, "_field_prefix", "")
  for f in dataclasses.fields(obj):
    value = check_value(getattr(obj, f.name), hints[f.name],
                        prefix + f.name)
    object.__setattr__(obj, f.name, value)


class Checked:
  """Base of config dataclasses: fields are checked against their
  annotations when an instance is made (including by
  `dataclasses.replace`)."""

  def __post_init__(self):
    check_fields(self)


def from_dict(cls, data: Mapping[str, Any], name: str = ""):
  """An instance of dataclass `cls` from a mapping (nested mappings for
  nested dataclass fields); missing keys take the defaults.

  Raises:
    ValueError: unknown keys (listing the accepted ones), missing required
      keys, or values of the wrong type.
  """
  if not isinstance(data, Mapping):
    raise ValueError(f"{name or cls.__name__} must be a mapping, got "
                     f"{data!r}.")
  fields = {f.name: f for f in dataclasses.fields(cls)}
  unknown = sorted(set(data) - set(fields))
  where = f"{name}: " if name else ""
  if unknown:
    raise ValueError(f"{where}unknown key(s) {unknown}; accepted: "
                     f"{', '.join(fields)}.")
  hints = _hints(cls)
  kwargs = {}
  for key, value in data.items():
    kwargs[key] = check_value(value, hints[key],
                              f"{name}.{key}" if name else key)
  missing = [k for k, f in fields.items() if k not in kwargs and
             f.default is dataclasses.MISSING and
             f.default_factory is dataclasses.MISSING]
  if missing:
    raise ValueError(f"{where}missing key(s) {missing}.")
  return cls(**kwargs)


def to_dict(obj) -> Dict[str, Any]:
  """A JSON-able dict of a dataclass instance (tuples become lists)."""
  def plain(v):
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
      return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, (list, tuple)):
      return [plain(x) for x in v]
    if isinstance(v, Mapping):
      return {k: plain(x) for k, x in v.items()}
    return v
  return plain(obj)


def replace_dotted(obj, key: str, value, _prefix: str = ""):
  """A copy of dataclass `obj` with the field at dotted `key` (e.g.
  "train.steps") set to `value`, type-checked against its annotation.

  Raises:
    KeyError: no such field (listing the fields at that level).
    ValueError: a value of the wrong type.
  """
  head, _, rest = key.partition(".")
  full = _prefix + key
  if not dataclasses.is_dataclass(obj):
    raise KeyError(f"override {full!r}: not a config section.")
  names = [f.name for f in dataclasses.fields(obj)]
  if head not in names:
    raise KeyError(f"override {full!r}: no such config key {head!r}; known "
                   f"keys here: {', '.join(names)}.")
  current = getattr(obj, head)
  if rest:
    if dataclasses.is_dataclass(current):
      new = replace_dotted(current, rest, value, f"{_prefix}{head}.")
    elif isinstance(current, Mapping):
      sub, _, deeper = rest.partition(".")
      if deeper or sub not in current:
        raise KeyError(f"override {full!r}: {head!r} has keys "
                       f"{', '.join(map(str, current))}.")
      new = dict(current)
      new[sub] = check_value(value, type(current[sub]) if current[sub]
                             is not None else Any, full)
    else:
      raise KeyError(f"override {full!r}: {head!r} is not a nested config "
                     "section.")
  else:
    new = check_value(value, _hints(type(obj))[head], full)
  return dataclasses.replace(obj, **{head: new})
