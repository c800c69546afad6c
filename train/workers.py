"""The start of a worker process (a DataLoader worker in training, a pool worker of `ifrt data synth`).

Imports nothing but the standard library, so that the torch-free `ifrt.train.data` can use it too.
"""

from __future__ import annotations

import signal


def ignore_ctrl_c(worker_id: int | None = None) -> None:
    """Ignore SIGINT in a worker (DataLoader passes its `worker_id`, a pool initializer nothing). Ctrl-C at a
    terminal reaches the whole process group, and a worker it ended would fail the work the main process waits
    for; the main process alone decides when to stop, and stops the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
