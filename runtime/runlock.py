"""One run at a time per output folder: the lock every `ifrt` command that writes a folder holds while it
writes (`ifrt infer`, `train`, `eval`, `export onnx`, `data synth|index|split`).

Two runs writing one folder would redo, overwrite or delete each other's files and leave a mix of both; the
second is refused instead, naming the folder, the holder's pid and the fix. The lock is the operating
system's (flock; a byte-range lock on Windows) on a hidden file in the folder, so a killed run does not leave
it held; the file itself stays, holding the last holder's pid.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path


class FolderInUseError(ValueError):
    """Another process holds the folder's run lock. The message names the folder, the holder and the fix."""


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, lock_name: str, command: str, fix: str,
                error: type[Exception] = FolderInUseError) -> Iterator[None]:
    """Hold `folder` (which must exist) for one run of `command` ("ifrt train"), through the lock file
    `lock_name` in it, which records the holder's pid and command. A second holder, in another process, is
    refused with `error`: "FOLDER is in use by another `COMMAND` (pid N); wait for it to finish or FIX", naming
    the holder's command (one lock file may serve several commands, as `ifrt data synth`, `index` and
    `split` share a dataset folder's)."""
    folder = Path(folder)
    handle = open(folder / lock_name, "a+", encoding="utf-8")
    try:
        try:
            _lock(handle)
        except OSError:
            holder = ""
            for _ in range(20):  # the holder writes its pid just after it takes the lock
                handle.seek(0)
                holder = handle.read().strip()
                if holder:
                    break
                time.sleep(0.05)
            pid, _, holder_command = holder.partition(" ")
            named = f" (pid {pid})" if pid else ""
            raise error(f"{folder} is in use by another `{holder_command or command}`{named}; wait for it to "
                        f"finish or {fix}") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()} {command}")
            handle.flush()
            yield
        finally:
            _unlock(handle)
    finally:
        handle.close()


WINDOWS = os.name == "nt"
# Windows locks a byte range from the file's position, and every run must lock the same byte: a fixed one,
# past the pid that the holder writes at the start, because a locked byte cannot be read by another process
# and a refused run reads the pid to name the holder.
WINDOWS_LOCK_BYTE = 1 << 20


def _lock(handle) -> None:
    """Take the run lock on the open lock file without waiting; OSError when another process holds it."""
    if WINDOWS:
        import msvcrt

        handle.seek(WINDOWS_LOCK_BYTE)  # "a+" opened it at its end, which moves as the holder writes its pid
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock(handle) -> None:
    """Release the run lock. A flock goes when the last descriptor of the open file closes, which a child
    process forked during the run (a data loader's worker) may still hold, so it is released explicitly; Windows
    asks that a byte-range lock be released before closing (otherwise it goes when the system gets to it)."""
    if WINDOWS:
        import msvcrt

        handle.seek(WINDOWS_LOCK_BYTE)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
