"""Config dataclasses from YAML/JSON dicts, refusing keys they do not know (a typo in a config is an
error, not a silently ignored setting)."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

T = TypeVar("T")


def dataclass_from_dict(cls: type[T], d: dict | None, what: str) -> T:
    """`cls(**d)`, after checking every key of `d` is a field of `cls`; `what` names it in the error."""
    known = {f.name for f in dataclasses.fields(cls)}
    d = dict(d or {})
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{what} has unknown keys {unknown}")
    return cls(**d)
