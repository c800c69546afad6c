"""The C ABI (libifrt shipped in the wheel) gives the Python API's results, read through ctypes."""

import ctypes
from pathlib import Path

import numpy as np
import pytest

import ifrt
from ifrt import focus as F
from ifrt import preprocess as pp


class Image(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("dtype", ctypes.c_int), ("height", ctypes.c_int64),
                ("width", ctypes.c_int64), ("channels", ctypes.c_int64), ("row_stride", ctypes.c_int64),
                ("pixel_stride", ctypes.c_int64)]


class FocusOptions(ctypes.Structure):
    _fields_ = [("channel", ctypes.c_int64), ("tile_height", ctypes.c_int64), ("tile_width", ctypes.c_int64)]


class FocusMetrics(ctypes.Structure):
    _fields_ = [(name, ctypes.c_double) for name in F.METRICS]


DTYPE_CODES = {np.dtype(np.uint8): 1, np.dtype(np.uint16): 2, np.dtype(np.float32): 3}


@pytest.fixture(scope="module")
def lib():
    lib = ctypes.CDLL(str(next((Path(ifrt.__file__).parent / "lib").glob("libifrt.so*"))))
    lib.ifrt_last_error.restype = ctypes.c_char_p
    return lib


def _image(a: np.ndarray) -> Image:
    return Image(a.ctypes.data, DTYPE_CODES[a.dtype], a.shape[0], a.shape[1], a.shape[2] if a.ndim == 3 else 1,
                 a.strides[0], a.strides[1])


def test_focus_through_the_c_abi_equals_the_python_api(lib):
    frame = np.random.default_rng(0).integers(0, 4000, (100, 140, 2)).astype(np.uint16)
    handle = ctypes.c_void_p()
    assert lib.ifrt_focus_create(ctypes.byref(FocusOptions(1, 32, 32)), ctypes.byref(handle)) == 0
    tiles = (FocusMetrics * 20)()
    total = FocusMetrics()
    view = frame[:, 2:]  # a strided crop, read in place
    assert lib.ifrt_focus_compute(handle, ctypes.byref(_image(view)), ctypes.byref(total), tiles, 20) == 0
    lib.ifrt_focus_release(handle)
    expected = F.focus(view, tile=32, channel=1)
    assert {name: getattr(total, name) for name in F.METRICS} == expected.metrics
    got = np.array([[getattr(t, name) for name in F.METRICS] for t in tiles]).reshape(4, 5, 5)
    np.testing.assert_array_equal(got, expected.tiles)


def test_preprocess_through_the_c_abi_equals_the_python_api(lib):
    frame = np.random.default_rng(1).integers(0, 255, (50, 70)).astype(np.uint8)
    out = np.empty((1, 1, 64, 96), np.float32)
    lo, hi = ctypes.c_double(), ctypes.c_double()
    status = lib.ifrt_preprocess(ctypes.byref(_image(frame)), None, out.ctypes.data_as(ctypes.c_void_p),
                                 ctypes.c_size_t(out.nbytes), ctypes.byref(lo), ctypes.byref(hi))
    assert status == 0, lib.ifrt_last_error()
    expected = pp.preprocess(frame)
    assert (lo.value, hi.value) == (expected.lo, expected.hi)
    np.testing.assert_array_equal(out, expected.tensor)


def test_c_abi_errors_carry_status_and_message(lib):
    frame = np.zeros((8, 8), np.uint16)
    image = _image(frame)
    image.row_stride = 3
    handle = ctypes.c_void_p()
    assert lib.ifrt_focus_create(None, ctypes.byref(handle)) == 0
    assert lib.ifrt_focus_compute(handle, ctypes.byref(image), None, None, 0) == 1  # IFRT_ERR_INVALID_ARGUMENT
    assert b"row stride 3 bytes is invalid" in lib.ifrt_last_error()
    lib.ifrt_focus_release(handle)


def test_c_abi_preprocess_refuses_an_output_over_its_input(lib):
    buffer = np.random.default_rng(2).random(96 * 96).astype(np.float32)
    image = buffer.reshape(96, 96)[:70, :90]  # the output below would be written over these pixels
    lo, hi = ctypes.c_double(), ctypes.c_double()
    status = lib.ifrt_preprocess(ctypes.byref(_image(image)), None, buffer.ctypes.data_as(ctypes.c_void_p),
                                 ctypes.c_size_t(buffer.nbytes), ctypes.byref(lo), ctypes.byref(hi))
    assert status == 1
    assert lib.ifrt_last_error() == b"output buffer overlaps the image; preprocessing cannot write over what it reads"
    separate = np.empty_like(buffer)  # the same call with an output of its own works
    assert lib.ifrt_preprocess(ctypes.byref(_image(image)), None, separate.ctypes.data_as(ctypes.c_void_p),
                               ctypes.c_size_t(separate.nbytes), ctypes.byref(lo), ctypes.byref(hi)) == 0
