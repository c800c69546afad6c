"""Another process holding a folder's run lock (`ifrt.runlock.folder_lock`), as a running command holds it."""

import contextlib
import subprocess
import sys
from pathlib import Path


@contextlib.contextmanager
def held_by_another_process(folder: Path, lock_name: str, command: str):
    """Yield the pid of a child process that holds `folder`'s lock `lock_name` as `command` until the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys, pathlib\nfrom ifrt.runlock import folder_lock\n"
                               f"with folder_lock(pathlib.Path({str(folder)!r}), {lock_name!r}, {command!r}, ''):\n"
                               "    print('held', flush=True)\n    sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        yield holder.pid
    finally:
        holder.communicate("")
