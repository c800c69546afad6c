"""`ifrt.Session` shared by threads (vendor software calling it from a pool): each graph is loaded once, however
many threads make its first call at once, and every thread gets the result a lone call gets."""

import threading
import time

import numpy as np
import pytest

import ifrt


def _frame(seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((64, 96)) * 3000 + 200).astype(np.uint16)


def _together(count: int, call) -> list:
    """`call(i)` on `count` threads released at once; their results in thread order."""
    start, results = threading.Barrier(count), [None] * count

    def work(i):
        start.wait()
        results[i] = call(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_threads_making_the_first_call_at_once_load_each_onnxruntime_graph_once(tiny_package, monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    loaded = []
    real = ort.InferenceSession

    def slow_to_load(path, *args, **kwargs):  # loading takes a while, as a large model's does
        loaded.append(path)
        time.sleep(0.2)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", slow_to_load)
    session = ifrt.Session(tiny_package, backend="ort")
    _together(6, lambda i: session.predict(_frame(i)))
    _together(6, lambda i: session.focus(_frame(i)))
    assert len(loaded) == 2  # full and focus; six threads each loaded both on the old code: 12


def test_threads_sharing_a_session_get_the_results_of_calls_made_one_at_a_time(tiny_package):
    session = ifrt.Session(tiny_package, backend="ort")
    alone = [session.predict(_frame(i), deblur=True) for i in range(6)]
    together = _together(6, lambda i: session.predict(_frame(i), deblur=True))
    for one, other in zip(alone, together, strict=True):
        np.testing.assert_array_equal(one.probabilities, other.probabilities)
        np.testing.assert_array_equal(one.quality_map, other.quality_map)
        np.testing.assert_array_equal(one.deblurred, other.deblurred)
