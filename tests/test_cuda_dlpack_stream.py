"""preprocess_dlpack as a DLPack consumer, checked without a GPU through producers written in the tests: the
stream it hands to __dlpack__ (DLPack: the consumer's stream; None or 1 the legacy default stream, 2 the
per-thread one, 0 disallowed for CUDA, only None for host memory), and each capsule's deleter run once.
`pytest -m gpu` (test_native_gpu.py) checks on a device that CUDA capsules are kept until the stream has passed
the kernels."""

import numpy as np
import pytest
from _dlpack_producer import KDL_CPU, KDL_CUDA, Producer

from ifrt import preprocess as pp
from ifrt.native import load

native = load()


def _frame():
    return np.random.default_rng(21).integers(0, 60000, (50, 70)).astype(np.uint16)


def _cuda_pair():
    """An image and an out tensor that say they are on CUDA device 0, the out one of the wrong shape: every
    call fails on the host, after both capsules are taken and before any CUDA call, on any machine."""
    image = Producer(0x1000, (50, 70), np.uint16, KDL_CUDA)
    out = Producer(0x2000, (1, 1, 32, 32), np.float32, KDL_CUDA)
    return image, out


def test_a_cpu_tensor_is_asked_for_without_a_stream_and_released_once_when_the_call_returns():
    frame = _frame()
    out = np.empty((1, 1, 64, 96), np.float32)
    image_producer, out_producer = Producer.of_array(frame), Producer.of_array(out)
    expected = pp.preprocess(frame)
    assert native.preprocess_dlpack(image_producer, out_producer, {}) == (expected.lo, expected.hi)
    assert (image_producer.streams, out_producer.streams) == ([None], [None])
    assert (image_producer.deleted, out_producer.deleted) == (1, 1)
    np.testing.assert_array_equal(out, expected.tensor)


@pytest.mark.parametrize("stream", [2, 1, 0x7F00_1234_5678])
def test_a_cuda_tensor_is_asked_for_on_the_callers_stream(stream):
    image, out = _cuda_pair()
    with pytest.raises(native.NativeError, match="out: shape must be 1x1x64x96"):
        native.preprocess_dlpack(image, out, {}, stream)
    assert (image.streams, out.streams) == ([stream], [stream])
    assert (image.deleted, out.deleted) == (1, 1)  # nothing was enqueued: released at once


def test_a_cuda_tensor_without_a_stream_is_on_the_legacy_default_stream():
    image, out = _cuda_pair()
    with pytest.raises(native.NativeError, match="out: shape must be"):
        native.preprocess_dlpack(image, out, {})
    assert (image.streams, out.streams) == ([None], [None])  # DLPack: None means the legacy default stream


@pytest.mark.parametrize("stream", [0, -1])
def test_stream_zero_and_negative_streams_are_refused_before_a_capsule_is_taken(stream):
    image, out = _cuda_pair()
    with pytest.raises(native.NativeError, match=rf"stream: {stream} is not a stream DLPack allows .* pass 1 for the "
                                                 r"legacy default stream, 2 for the per-thread default stream"):
        native.preprocess_dlpack(image, out, {}, stream)
    assert (image.streams, out.streams) == ([], [])


def test_a_stream_that_is_not_an_integer_is_refused_naming_its_type():
    image, out = _cuda_pair()
    with pytest.raises(native.NativeError, match="stream: expected None or an integer cudaStream_t, got str"):
        native.preprocess_dlpack(image, out, {}, "1")


def test_a_host_memory_tensor_given_a_stream_is_refused_naming_the_tensor():
    frame = Producer.of_array(_frame(), KDL_CPU)
    out = Producer.of_array(np.empty((1, 1, 64, 96), np.float32), KDL_CPU)
    with pytest.raises(native.NativeError, match=r"image: a tensor outside CUDA device memory \(DLPack device 1\) "
                                                 r"takes no stream; pass stream=None"):
        native.preprocess_dlpack(frame, out, {}, 1)
    assert frame.streams == []


def test_cuda_last_range_refuses_stream_zero():
    if not native.has_cuda_kernels():
        pytest.skip("native module built without CUDA kernels")
    with pytest.raises(native.NativeError, match="stream: 0 is not a stream DLPack allows"):
        native.cuda_last_range(0)
