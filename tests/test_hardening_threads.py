"""Several threads computing at once get exactly the answers of one thread: the native CPU path
(preprocess, focus; the GIL is released inside) and a Session on the onnxruntime backend."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ifrt import focus, preprocess

THREADS = 4


def frames() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [(rng.random((300, 260)) * 4000 + 100).astype(np.uint16),
            (rng.random((128, 96)) * 255).astype(np.uint8),
            rng.random((200, 200)).astype(np.float32)]


def preprocess_frame(frame: np.ndarray):
    x = preprocess.preprocess(frame, tile=(128, 128), overlap=32)
    return np.asarray(x.tensor).copy(), x.lo, x.hi


def focus_frame(frame: np.ndarray):
    report = focus.focus(frame, tile=64)
    return dict(report.metrics), report.tiles.copy()


def in_threads(work, items):
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(work, items))


def test_preprocess_from_several_threads_equals_one_thread():
    jobs = frames() * 8
    expected = [preprocess_frame(f) for f in jobs]
    for (tensor, lo, hi), (want_tensor, want_lo, want_hi) in zip(in_threads(preprocess_frame, jobs), expected, strict=True):
        assert (lo, hi) == (want_lo, want_hi)
        np.testing.assert_array_equal(tensor, want_tensor)


def test_focus_from_several_threads_equals_one_thread():
    jobs = frames() * 8
    expected = [focus_frame(f) for f in jobs]
    for (metrics, tiles), (want_metrics, want_tiles) in zip(in_threads(focus_frame, jobs), expected, strict=True):
        assert metrics == want_metrics
        np.testing.assert_array_equal(tiles, want_tiles)


def test_one_session_predicting_from_several_threads_equals_one_thread(tiny_package):
    import ifrt

    session = ifrt.Session(tiny_package, backend="ort")
    images = [f for f in frames() if f.dtype != np.float32] * 4

    def predict(image):
        r = session.predict(image, deblur=True)
        return r.probabilities.copy(), r.quality, r.blur_level, r.quality_map.copy(), r.deblurred.copy()

    expected = [predict(image) for image in images]
    for got, want in zip(in_threads(predict, images), expected, strict=True):
        np.testing.assert_array_equal(got[0], want[0])
        assert got[1:3] == want[1:3]
        np.testing.assert_array_equal(got[3], want[3])
        np.testing.assert_array_equal(got[4], want[4])


@pytest.mark.parametrize("threads", [2, 8])
def test_focus_handles_many_threads_on_one_large_frame(threads):
    frame = (np.random.default_rng(5).random((1024, 1024)) * 60000).astype(np.uint16)
    want = focus_frame(frame)
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(focus_frame, [frame] * threads))
    for metrics, tiles in results:
        assert metrics == want[0]
        np.testing.assert_array_equal(tiles, want[1])
