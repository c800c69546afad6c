"""Whether an input file has changed: its size and modification time (nanoseconds), read from one stat.

`ifrt infer` records the state with each result and redoes an image whose file has changed since (re-acquired
under the same name); `ifrt live` reads a new file once its state has held still for a while (the writer is done).
"""

from __future__ import annotations

import os
from typing import NamedTuple


class FileState(NamedTuple):
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, stat: os.stat_result) -> FileState:
        return cls(stat.st_size, stat.st_mtime_ns)


def file_state(path: str | os.PathLike) -> FileState | None:
    """The file's state now; None when it cannot be read (removed, renamed, not allowed)."""
    try:
        return FileState.of(os.stat(path))
    except OSError:
        return None
