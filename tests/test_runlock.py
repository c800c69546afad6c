"""One run at a time per output folder (`ifrt.runlock`): a second holder is refused naming the folder, the
holder's pid and command, and the fix; the lock goes with the process that held it."""

import os
import signal
import subprocess
import sys

import pytest
from _folder_holder import held_by_another_process

from ifrt.runlock import FolderInUseError, folder_lock


def test_a_second_holder_is_refused_naming_the_folder_the_holders_pid_and_the_fix(tmp_path):
    with held_by_another_process(tmp_path, ".x.lock", "ifrt train") as pid:
        with pytest.raises(FolderInUseError) as refused:
            with folder_lock(tmp_path, ".x.lock", "ifrt train", "give another --out"):
                pass
    assert str(refused.value) == (f"{tmp_path} is in use by another `ifrt train` (pid {pid}); wait for it to "
                                  "finish or give another --out")


def test_the_refusal_names_the_holders_command_when_commands_share_a_lock(tmp_path):
    with held_by_another_process(tmp_path, ".ifrt-data.lock", "ifrt data index") as pid:
        with pytest.raises(FolderInUseError, match=rf"in use by another `ifrt data index` \(pid {pid}\)"):
            with folder_lock(tmp_path, ".ifrt-data.lock", "ifrt data split", "try again"):
                pass


def test_the_lock_is_free_again_when_its_holder_ends(tmp_path):
    with held_by_another_process(tmp_path, ".x.lock", "ifrt eval"):
        pass
    with folder_lock(tmp_path, ".x.lock", "ifrt eval", ""):
        assert (tmp_path / ".x.lock").read_text() == f"{os.getpid()} ifrt eval"


def test_a_killed_holder_leaves_the_folder_free(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, pathlib, time\nfrom ifrt.runlock import folder_lock\n"
                               f"with folder_lock(pathlib.Path({str(tmp_path)!r}), '.x.lock', 'ifrt train', ''):\n"
                               "    print('held', flush=True)\n    time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    with folder_lock(tmp_path, ".x.lock", "ifrt train", ""):
        pass
