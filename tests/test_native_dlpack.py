"""DLPack input and output: tensors of any framework are read and written in place."""

import numpy as np
import pytest

from ifrt import preprocess as pp
from ifrt.native import load

native = load()


def test_dlpack_tensors_give_the_numpy_result_in_place():
    img = np.random.default_rng(0).integers(0, 65535, (50, 70)).astype(np.uint16)
    out = np.empty((1, 1, 64, 96), np.float32)
    expected = pp.preprocess(img)
    assert native.preprocess_dlpack(img, out, {}) == (expected.lo, expected.hi)
    np.testing.assert_array_equal(out, expected.tensor)


def test_dlpack_reads_strided_views_and_writes_float16():
    base = np.random.default_rng(1).integers(0, 255, (90, 120, 3)).astype(np.uint8)
    view = base[::2, 1::3, 1]
    out = np.empty(pp.plan(view, tile=(32, 32), overlap=8)["shape"], np.float16)
    native.preprocess_dlpack(view, out, {"tile_height": 32, "tile_width": 32, "overlap": 8})
    np.testing.assert_array_equal(out, pp.preprocess(view, tile=(32, 32), overlap=8, dtype="float16").tensor)


def test_dlpack_accepts_a_capsule():
    img = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    out = np.empty((1, 1, 64, 64), np.float32)
    native.preprocess_dlpack(img.__dlpack__(), out.__dlpack__(), {"norm": "minmax"})
    np.testing.assert_array_equal(out, pp.preprocess(img, norm="minmax").tensor)


@pytest.mark.parametrize(("image", "out", "message"), [
    (np.zeros((40, 40), np.uint16), np.empty((1, 1, 32, 32), np.float32), "out: shape must be 1x1x64x64"),
    (np.zeros((40, 40), np.int32), np.empty((1, 1, 64, 64), np.float32), "DLPack dtype \\(code 0, 32 bits\\)"),
    (np.zeros((40, 40), np.uint16), np.empty((1, 1, 64, 64), np.float64), "out: DLPack dtype \\(code 2, 64 bits\\)"),
    (np.zeros((40, 40), np.uint16), [1, 2, 3], "out: expected an object with __dlpack__"),
])
def test_dlpack_bad_tensors_raise_clear_errors(image, out, message):
    with pytest.raises(native.NativeError, match=message):
        native.preprocess_dlpack(image, out, {})
