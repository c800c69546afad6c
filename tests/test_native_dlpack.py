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


def _frame(seed=3, shape=(70, 90)):
    return np.random.default_rng(seed).integers(0, 60000, shape).astype(np.uint16)


def _dlpack_result(image, **options):
    """preprocess_dlpack into a fresh float32 tensor, as (lo, hi), tensor."""
    out = np.empty(pp.plan(np.ascontiguousarray(image))["shape"], np.float32)
    lo_hi = native.preprocess_dlpack(image, out, options)
    return lo_hi, out


@pytest.mark.parametrize("layout", ["flipped", "column-major", "transposed channels", "broadcast rows", "read-only"])
def test_dlpack_reads_every_cpu_layout_as_its_contiguous_copy(layout):
    frame = _frame()
    image = {
        "flipped": lambda: frame[::-1, ::-1],
        "column-major": lambda: np.asfortranarray(frame),
        "transposed channels": lambda: np.moveaxis(np.stack([frame, frame // 2]), 0, -1),
        "broadcast rows": lambda: np.broadcast_to(frame[5], frame.shape),
        "read-only": lambda: np.frombuffer(frame.tobytes(), np.uint16).reshape(frame.shape),
    }[layout]()
    expected = pp.preprocess(np.ascontiguousarray(image))
    lo_hi, out = _dlpack_result(image)
    assert lo_hi == (expected.lo, expected.hi)
    np.testing.assert_array_equal(out, expected.tensor)


def test_dlpack_reads_torch_views_that_are_not_row_major():
    torch = pytest.importorskip("torch")
    frame = torch.from_numpy(_frame(shape=(90, 70)).astype(np.float32))
    for view in (frame.t(), frame[:, 3].expand(70, 90), frame.t()[::2]):
        expected = pp.preprocess(np.ascontiguousarray(view.numpy()))
        lo_hi, out = _dlpack_result(view)
        assert lo_hi == (expected.lo, expected.hi)
        np.testing.assert_array_equal(out, expected.tensor)


def test_dlpack_accepts_a_versioned_capsule():
    frame = _frame()
    out = np.empty((1, 1, 96, 96), np.float32)
    native.preprocess_dlpack(frame.__dlpack__(max_version=(1, 0)), out, {})
    np.testing.assert_array_equal(out, pp.preprocess(frame).tensor)


def test_dlpack_refuses_a_read_only_out_and_leaves_it_alone():
    out = np.zeros((1, 1, 96, 96), np.float32)
    out.setflags(write=False)
    with pytest.raises(native.NativeError, match="out: tensor is read-only"):
        native.preprocess_dlpack(_frame(), out, {})
    assert not out.any()


def test_dlpack_dtype_option_must_agree_with_the_out_tensor():
    frame = _frame()
    half = np.empty((1, 1, 96, 96), np.float16)
    with pytest.raises(native.NativeError, match="out: dtype float16 does not match the dtype option float32"):
        native.preprocess_dlpack(frame, half, {"dtype": "float32"})
    native.preprocess_dlpack(frame, half, {"dtype": "float16"})
    np.testing.assert_array_equal(half, pp.preprocess(frame, dtype="float16").tensor)


def test_dlpack_refuses_an_out_tensor_over_the_image():
    buffer = np.random.default_rng(5).random(96 * 96).astype(np.float32)
    with pytest.raises(native.NativeError, match="output buffer overlaps the image"):
        native.preprocess_dlpack(buffer.reshape(96, 96)[:70, :90], buffer.reshape(1, 1, 96, 96), {})


def test_preprocess_tensor_fills_a_torch_tensor_with_the_numpy_result():
    torch = pytest.importorskip("torch")
    frame = _frame(shape=(70, 90))
    out = torch.empty(tuple(pp.plan(frame, tile=(64, 64), overlap=16)["shape"]), dtype=torch.float16)
    lo_hi = pp.preprocess_tensor(torch.from_numpy(frame.astype(np.int32)).to(torch.float32), out,
                                 tile=(64, 64), overlap=16, dtype="float16")
    expected = pp.preprocess(frame.astype(np.float32), tile=(64, 64), overlap=16, dtype="float16")
    assert lo_hi == (expected.lo, expected.hi)
    np.testing.assert_array_equal(out.numpy(), expected.tensor)


def test_preprocess_tensor_refuses_a_stream_for_host_tensors_and_stream_0():
    frame = _frame(shape=(64, 64))
    out = np.empty((1, 1, 64, 64), np.float32)
    with pytest.raises(native.NativeError, match="takes no stream; pass stream=None"):
        pp.preprocess_tensor(frame, out, stream=1)
    with pytest.raises(native.NativeError, match="pass 1 for the legacy default stream"):
        pp.preprocess_tensor(frame, out, stream=0)


def test_last_range_refuses_stream_0_or_says_the_build_has_no_cuda_kernels():
    from ifrt.native import NativeUnavailableError
    if native.has_cuda_kernels():
        with pytest.raises(native.NativeError, match="stream: 0 is not a stream DLPack allows"):
            pp.last_range(0)
    else:
        with pytest.raises(NativeUnavailableError, match="built without CUDA kernels"):
            pp.last_range()
