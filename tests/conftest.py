import os
import subprocess
import sys

import pytest


def run_ifrt(*args: str, check: bool = False, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed `ifrt` command line in a subprocess (as a user would)."""
    env = dict(os.environ, **kwargs.pop("env", {}))
    return subprocess.run([sys.executable, "-m", "ifrt", *args], capture_output=True, text=True,
                          timeout=timeout, check=check, env=env, **kwargs)


@pytest.fixture
def ifrt_cli():
    return run_ifrt
