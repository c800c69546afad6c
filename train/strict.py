"""Config dataclasses from YAML/JSON dicts, refusing keys they do not know and values of the wrong kind, by
name (`train.epochs: expected an integer, got 'abc'`): a typo in a config is an error when the config is
read, not a silently ignored setting or a TypeError half-way through a run."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import TypeVar

T = TypeVar("T")

_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "text", list: "a list, e.g. [0, 1]",
          tuple: "a list, e.g. [0, 1]", dict: "a mapping, e.g. {key: value}"}


def dataclass_from_dict(cls: type[T], d: dict | None, what: str) -> T:
    """`cls(**d)`, after checking every key of `d` is a field of `cls` and every value has the kind its
    annotation names; `what` is the section the dict came from ("train", "data.degrade"), naming it in errors."""
    if d is not None and not isinstance(d, dict):
        raise ValueError(f"{what}: expected a mapping of settings, got {d!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    d = dict(d or {})
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{what}.{unknown[0]} is not a setting (known: {', '.join(sorted(known))})")
    hints = typing.get_type_hints(cls)
    for key, value in d.items():
        if not _is_kind(value, hints[key]):
            raise ValueError(f"{what}.{key}: expected {_describe(hints[key])}, got {value!r}")
    return cls(**d)


def _is_kind(value, annotation) -> bool:
    """Whether `value` fits `annotation` as far as a config can tell: the container, not its items (the
    config class checks ranges and items itself). A YAML integer is a number; a bool is not an integer."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_kind(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    kind = origin or annotation
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind in (list, tuple):
        return isinstance(value, (list, tuple))
    if kind in (str, dict):
        return isinstance(value, kind)
    return True  # an annotation a config cannot check (Any, a class of its own)


def _describe(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [_describe(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(dict.fromkeys(options)) + (" or null" if type(None) in typing.get_args(annotation) else "")
    return _KINDS.get(origin or annotation, getattr(annotation, "__name__", str(annotation)))
