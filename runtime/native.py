"""Access to the compiled core `ifrt._native`, with an actionable error when it is missing."""

from __future__ import annotations

import functools
from types import ModuleType


class NativeUnavailableError(ImportError):
    """The compiled module could not be imported (not built, or built for another Python)."""


@functools.cache
def load() -> ModuleType:
    """Return the `ifrt._native` module or raise NativeUnavailableError saying how to fix it."""
    try:
        from ifrt import _native
    except ImportError as exc:
        raise NativeUnavailableError(
            f"the ifrt native module could not be loaded ({exc}); reinstall with `pip install .` from "
            "the source tree so that CMake builds it (needs a C++17 compiler and cmake)"
        ) from exc
    return _native
