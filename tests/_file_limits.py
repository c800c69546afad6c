"""Real refused writes for the fault tests: a child process whose files cannot grow past a size."""

import resource
import signal


def file_size_limit(limit: int):
    """A `preexec_fn` for a child process whose files cannot grow past `limit` bytes: the kernel refuses the rest
    of a write (EFBIG, "File too large"), as a full disk refuses it (ENOSPC), and the child is not killed by
    SIGXFSZ for it."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply
