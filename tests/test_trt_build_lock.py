"""`ifrt export trt` and the native engine cache build one engine once: both hold a flock on `<engine>.lock`
from the up-to-date check to the written sidecar (the build itself needs TensorRT; the lock does not)."""

import fcntl
import logging
import threading

from ifrt.export.trt import engine_build_lock


def test_a_second_builder_of_one_engine_waits_for_the_first_and_says_so(tmp_path, caplog):
    engine = tmp_path / "cache" / "full-abc.engine"
    engine.parent.mkdir()
    entered = threading.Event()
    with open(f"{engine}.lock", "a+") as first:  # a build in progress, as the native cache holds it
        fcntl.flock(first, fcntl.LOCK_EX)

        def second_build() -> None:
            with engine_build_lock(engine):
                entered.set()

        with caplog.at_level(logging.WARNING, logger="ifrt.export.trt"):
            waiter = threading.Thread(target=second_build)
            waiter.start()
            assert not entered.wait(0.5)
            fcntl.flock(first, fcntl.LOCK_UN)
            waiter.join(timeout=30)
    assert entered.is_set()
    assert caplog.messages == [f"{engine}: another process is building this engine; waiting for it"]


def test_a_builder_alone_takes_the_lock_without_a_message(tmp_path, caplog):
    engine = tmp_path / "new" / "model.engine"
    with caplog.at_level(logging.WARNING, logger="ifrt.export.trt"), engine_build_lock(engine):
        with open(f"{engine}.lock") as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                taken = False
            except BlockingIOError:
                taken = True
    assert taken and caplog.messages == []
