"""Every CUDA kernel against the CPU path (run with `pytest -m gpu` on a machine with a GPU).

The kernels share their per-pixel functions with the CPU loops, so most results must be identical;
softmax (device expf, up to (6 + K) ulp per probability) and focus metrics (summation order, 1e-9
relative) are compared with stated tolerances.
"""

import ctypes
import threading
from pathlib import Path

import numpy as np
import pytest
from _dlpack_producer import KDL_CUDA, Producer

import ifrt
from ifrt import focus as F
from ifrt import postprocess as post
from ifrt import preprocess as pp
from ifrt.native import load

native = load()


def _gpu_available() -> bool:
    if not native.has_cuda_kernels():
        return False
    devices, _ = native.cuda_devices()
    return bool(devices)


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not _gpu_available(), reason="needs a CUDA GPU and a native module built with CUDA"),
]

DTYPES = [np.uint8, np.uint16, np.float32]


def _image(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        return (rng.standard_normal(shape) * 50 + 10).astype(np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


def _same(options, image):
    cpu = pp.preprocess(image, **options)
    gpu = pp.preprocess(image, device="cuda", **options)
    assert (gpu.lo, gpu.hi) == (cpu.lo, cpu.hi)
    np.testing.assert_array_equal(gpu.tensor, cpu.tensor)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (1, 333), (257, 3), (100, 77), (512, 512)])
@pytest.mark.parametrize("norm", [{}, {"norm": "minmax"}, {"norm": "fixed", "lo": 5.0, "hi": 900.0},
                                  {"p_low": 0.0, "p_high": 100.0}, {"p_low": 37.5, "p_high": 37.6}])
def test_cuda_preprocess_equals_cpu_for_dtypes_shapes_and_norms(dtype, shape, norm):
    _same(norm, _image(shape, dtype))


@pytest.mark.parametrize("options", [
    {"size": (64, 48), "resize": "bilinear"}, {"size": (300, 200), "resize": "bilinear"},
    {"size": (50, 40), "resize": "area"}, {"size": (33, 77), "resize": "area"},
    {"pad": "zero"}, {"pad": "edge"}, {"pad_multiple": 1}, {"dtype": "float16"},
    {"tile": (64, 64), "overlap": 16}, {"tile": (96, 128), "overlap": 8, "size": (150, 260), "resize": "area"},
])
def test_cuda_preprocess_equals_cpu_for_geometry_options(options):
    _same(options, _image((211, 317), np.uint16, seed=1))


def test_cuda_preprocess_with_channel_dark_and_flat_equals_cpu():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 4095, (120, 90, 3)).astype(np.uint16)[:, ::1, :]
    dark = rng.uniform(0, 50, (120, 90)).astype(np.float32)
    flat = rng.uniform(0.7, 1.3, (120, 90)).astype(np.float32)
    _same({"channel": 2, "dark": dark, "flat": flat}, img)
    _same({"channel": 1, "dark": dark, "norm": "minmax"}, img)


def test_cuda_preprocess_rejects_non_finite_pixels():
    img = np.ones((8, 8), np.float32)
    img[3, 3] = np.nan
    with pytest.raises(native.NativeError, match="non-finite"):
        pp.preprocess(img, device="cuda")


def test_cuda_softmax_matches_cpu_within_the_expf_error_bound():
    # Device expf is within 2 ulp, the host's within 1, so each exp differs by up to 3 ulp (ulp <= 2^-23
    # relative); a probability adds its own exp's 3, the sum's 3 plus K - 1 half-ulp roundings on each side, and
    # the two divisions' half ulps: (6 + K) ulp, 13 ulp = 1.55e-6 for K = 7. 2.5 ulp (3e-7) is not a bound.
    k = 7
    logits = np.random.default_rng(3).standard_normal((1000, k)).astype(np.float32) * 4
    for t in (0.5, 1.0, 2.5):
        np.testing.assert_allclose(post.softmax(logits, t, device="cuda"), post.softmax(logits, t),
                                   rtol=(6 + k) * 2.0**-23, atol=1e-9)


def test_cuda_blend_equals_cpu():
    # A 160 x 224 frame in 64 x 64 tiles with overlap 16 (step 48): 3 x 5 tiles.
    tiles = np.random.default_rng(4).random((15, 1, 64, 64), dtype=np.float32)
    cpu = post.blend_tiles(tiles, (160, 224), 16, (150, 220))
    np.testing.assert_array_equal(post.blend_tiles(tiles, (160, 224), 16, (150, 220), device="cuda"), cpu)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_cuda_denormalize_equals_cpu(dtype):
    y = (np.random.default_rng(5).standard_normal((70, 90)) * 0.7 + 0.4).astype(np.float32)
    cpu = post.denormalize(y, 12.0, 3000.5, dtype, (64, 80))
    np.testing.assert_array_equal(post.denormalize(y, 12.0, 3000.5, dtype, (64, 80), device="cuda"), cpu)
    y16 = y.astype(np.float16)
    np.testing.assert_array_equal(post.denormalize(y16, 0.0, 255.0, dtype, device="cuda"),
                                  post.denormalize(y16, 0.0, 255.0, dtype))


def test_cuda_kernels_write_every_column_of_rows_wider_than_65535_blocks():
    # 4,200,000 columns need 65,625 blocks of 64 threads; a grid capped at 65,535 blocks stopped at 4,194,240.
    width = 4_200_000
    _same({"pad_multiple": 1}, _image((1, width), np.uint16, seed=11))
    y = np.random.default_rng(12).standard_normal((1, width)).astype(np.float32)
    np.testing.assert_array_equal(post.denormalize(y, 3.0, 900.0, "uint16", device="cuda"),
                                  post.denormalize(y, 3.0, 900.0, "uint16"))
    q = np.random.default_rng(13).random((1, 7), dtype=np.float32)
    np.testing.assert_array_equal(post.upsample_quality_map(q, (1, width), device="cuda"),
                                  post.upsample_quality_map(q, (1, width)))


def test_cuda_quality_map_upsampling_equals_cpu():
    q = np.random.default_rng(6).random((1, 1, 16, 20), dtype=np.float32)
    np.testing.assert_array_equal(post.upsample_quality_map(q, (512, 640), device="cuda"),
                                  post.upsample_quality_map(q, (512, 640)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "tile"), [((1, 1), None), ((1, 500), 64), ((300, 2), None), ((257, 263), 32),
                                             ((1024, 768), 128), ((1000, 1100), 16)])
def test_cuda_focus_matches_cpu(dtype, shape, tile):
    # (1000, 1100) in 16-px tiles: 63 x 69 = 4,347 tiles, so each of the finishing block's 256 threads merges
    # a strided share of 16 or 17 tiles.
    img = _image(shape, dtype, seed=7)
    cpu = F.focus(img, tile=tile)
    gpu = F.focus(img, tile=tile, device="cuda")
    for name in F.METRICS:
        assert gpu.metrics[name] == pytest.approx(cpu.metrics[name], rel=1e-9, abs=1e-9), name
    np.testing.assert_allclose(gpu.tiles, cpu.tiles, rtol=1e-9, atol=1e-9)


def test_cuda_focus_takes_tiles_larger_than_the_image_as_the_cpu_does():
    # 2^40 x 2^40 tiles: their pixel count once wrapped to a grid of 0 blocks, which the launch refused.
    img = _image((300, 200), np.uint16, seed=14)
    cpu = F.focus(img, tile=1 << 40)
    gpu = F.focus(img, tile=1 << 40, device="cuda")
    assert gpu.tiles.shape == (1, 1, 5)
    np.testing.assert_allclose(gpu.tiles, cpu.tiles, rtol=1e-9, atol=1e-9)


def test_cuda_focus_of_a_non_finite_pixel_is_nan_where_the_cpu_refuses_it():
    img = np.ones((64, 64), np.float32)
    img[3, 3] = np.nan
    with pytest.raises(native.NativeError, match=r"pixel \(3, 3\) is not finite"):
        F.focus(img)
    gpu = F.focus(img, device="cuda")
    assert np.isnan(gpu.metrics["var_laplacian"]) and np.isnan(gpu.metrics["normalized_variance"])


def _torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    return torch


def _frame_on_device(torch, shape, seed, **options):
    """A float32 frame, its CPU preprocessing, the frame on the GPU and a float32 output tensor there."""
    img = _image(shape, np.float32, seed=seed)
    expected = pp.preprocess(img, **options)
    out = torch.empty(expected.tensor.shape, dtype=torch.float32, device="cuda")
    return img, expected, torch.from_numpy(img).cuda(), out


def test_cuda_dlpack_tensors_are_preprocessed_in_place_on_the_stream():
    # A created stream: torch's default stream has the handle 0, which DLPack disallows (1 names it).
    torch = _torch_cuda()
    # The frame is written on the default stream; __dlpack__ orders ours after it.
    _, expected, device_img, out = _frame_on_device(torch, (300, 200), 8, tile=(128, 128), overlap=32)
    stream = torch.cuda.Stream().cuda_stream
    assert native.preprocess_dlpack(device_img, out, {"tile_height": 128, "tile_width": 128, "overlap": 32},
                                    stream) is None
    assert native.cuda_last_range(stream) == (expected.lo, expected.hi)
    np.testing.assert_array_equal(out.cpu().numpy(), expected.tensor)


def test_cuda_dlpack_torch_default_stream_handle_0_is_refused_and_1_names_it():
    torch = _torch_cuda()
    _, expected, device_img, out = _frame_on_device(torch, (96, 64), 19)
    assert torch.cuda.current_stream().cuda_stream == 0
    with pytest.raises(native.NativeError, match=r"stream: 0 is not a stream DLPack allows .* pass 1"):
        native.preprocess_dlpack(device_img, out, {}, torch.cuda.current_stream().cuda_stream)
    assert native.preprocess_dlpack(device_img, out, {}, 1) is None
    assert native.cuda_last_range(1) == (expected.lo, expected.hi)
    np.testing.assert_array_equal(out.cpu().numpy(), expected.tensor)


def test_cuda_dlpack_tensors_the_kernels_cannot_follow_are_refused_by_name():
    torch = _torch_cuda()
    device_img = torch.from_numpy(_image((96, 64), np.float32, seed=10)).cuda().t()  # column-major
    out = torch.empty((1, 1, 64, 96), dtype=torch.float32, device="cuda")
    with pytest.raises(native.NativeError, match=r"image: strides \(1, 64\) elements .* pass a contiguous CUDA tensor"):
        native.preprocess_dlpack(device_img, out, {}, torch.cuda.Stream().cuda_stream)


def test_cuda_dlpack_capsules_are_released_only_after_the_stream_has_passed_the_kernels():
    # A producer learns from its deleter that the consumer is done with the memory; torch's caching allocator may
    # then hand a temporary's memory to its next allocation. The deleter ran when the call returned, with the
    # kernels still queued behind a busy stream: stream.query() was False inside it.
    torch = _torch_cuda()
    img, expected, device_img, out = _frame_on_device(torch, (512, 512), 17)
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    stream_done_at_release = []
    image = Producer(device_img.data_ptr(), img.shape, np.float32, KDL_CUDA, torch.cuda.current_device(),
                     on_delete=lambda: stream_done_at_release.append(stream.query()))
    with torch.cuda.stream(stream):
        torch.cuda._sleep(100_000_000)  # tens of milliseconds of GPU time ahead of the kernels
    assert native.preprocess_dlpack(image, out, {}, stream.cuda_stream) is None
    assert image.streams == [stream.cuda_stream]
    assert stream_done_at_release == []  # still in flight: kept
    assert native.cuda_last_range(stream.cuda_stream) == (expected.lo, expected.hi)  # waits, then releases
    assert stream_done_at_release == [True]
    np.testing.assert_array_equal(out.cpu().numpy(), expected.tensor)


class _Image(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("dtype", ctypes.c_int), ("height", ctypes.c_int64),
                ("width", ctypes.c_int64), ("channels", ctypes.c_int64), ("row_stride", ctypes.c_int64),
                ("pixel_stride", ctypes.c_int64)]


_FLOAT32, _RANGE_OF_LAST_PREPROCESS = 3, 1


def _libifrt():
    lib = ctypes.CDLL(str(next((Path(ifrt.__file__).parent / "lib").glob("libifrt.so*"))))
    lib.ifrt_last_error.restype = ctypes.c_char_p
    lib.ifrt_preprocess_cuda.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                         ctypes.c_void_p]
    lib.ifrt_denormalize_cuda.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_double, ctypes.c_double,
                                          ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    return lib


def _device_plane(tensor, row_stride=0):
    return _Image(tensor.data_ptr(), _FLOAT32, tensor.shape[-2], tensor.shape[-1], 1, row_stride, 0)


def test_cuda_denormalize_refuses_the_range_of_a_frame_with_non_finite_pixels_as_the_cpu_refuses_the_frame():
    torch = _torch_cuda()
    lib = _libifrt()
    frame = _image((40, 64), np.float32, seed=20)
    frame[5, 7] = np.nan
    with pytest.raises(native.NativeError, match="not finite"):
        pp.preprocess(frame)
    device_frame = torch.from_numpy(frame).cuda()
    tensor = torch.zeros((1, 1, 64, 64), dtype=torch.float32, device="cuda")
    back = torch.full((40, 64), 7.0, dtype=torch.float32, device="cuda")
    torch.cuda.synchronize()
    stream = torch.cuda.Stream().cuda_stream
    image = _device_plane(device_frame)
    assert lib.ifrt_preprocess_cuda(ctypes.byref(image), None, tensor.data_ptr(), tensor.nbytes, stream) == 0
    y = _Image(tensor.data_ptr(), _FLOAT32, 40, 64, 1, 64 * 4, 0)  # the frame's crop of the padded tensor
    status = lib.ifrt_denormalize_cuda(ctypes.byref(y), _RANGE_OF_LAST_PREPROCESS, 0.0, 0.0, back.data_ptr(), _FLOAT32,
                                       stream)
    assert status == 1  # IFRT_ERR_INVALID_ARGUMENT
    assert b"has non-finite pixels (NaN or inf, after dark/flat correction)" in lib.ifrt_last_error()
    torch.cuda.synchronize()
    assert bool((back == 7.0).all())


def test_cuda_first_call_inside_a_graph_capture_is_refused_and_runs_captured_after_a_warm_up():
    # A fresh thread and stream have no workspace; allocating it inside the caller's capture broke the capture.
    torch = _torch_cuda()
    lib = _libifrt()
    frame = _image((48, 64), np.float32, seed=21)
    expected = pp.preprocess(frame)
    device_frame = torch.from_numpy(frame).cuda()
    tensor = torch.zeros((1, 1, 64, 64), dtype=torch.float32, device="cuda")
    torch.cuda.synchronize()
    seen = {}

    def on_a_fresh_thread():
        stream = torch.cuda.Stream()
        image = _device_plane(device_frame)
        args = (ctypes.byref(image), None, tensor.data_ptr(), tensor.nbytes, stream.cuda_stream)
        with torch.cuda.stream(stream):
            refused = torch.cuda.CUDAGraph()
            refused.capture_begin()
            seen["first"] = lib.ifrt_preprocess_cuda(*args), lib.ifrt_last_error()
            refused.capture_end()  # raises when the capture was invalidated
            seen["warm_up"] = lib.ifrt_preprocess_cuda(*args)
            stream.synchronize()
            tensor.zero_()
            graph = torch.cuda.CUDAGraph()
            graph.capture_begin()
            seen["captured"] = lib.ifrt_preprocess_cuda(*args)
            graph.capture_end()
            graph.replay()
        stream.synchronize()

    errors = []
    thread = threading.Thread(target=lambda: _record_errors(on_a_fresh_thread, errors))
    thread.start()
    thread.join()
    assert errors == []
    status, message = seen["first"]
    assert status == 1
    assert b"would allocate it while the stream is being captured into a CUDA graph" in message
    assert (seen["warm_up"], seen["captured"]) == (0, 0)
    np.testing.assert_array_equal(tensor.cpu().numpy(), expected.tensor)


def _record_errors(body, errors):
    try:
        body()
    except Exception as e:  # the test thread asserts there were none
        errors.append(e)


def test_cuda_dlpack_default_stream_keeps_a_workspace_per_device():
    # The default stream's handle is the same on every device; a workspace keyed by it alone was allocated on
    # the first device and handed to the kernels on the second.
    torch = pytest.importorskip("torch")
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    img = _image((96, 64), np.float32, seed=15)
    expected = pp.preprocess(img)
    for device in (0, 1):
        with torch.cuda.device(device):
            src = torch.from_numpy(img).to(f"cuda:{device}")
            out = torch.empty(expected.tensor.shape, dtype=torch.float32, device=f"cuda:{device}")
            assert native.preprocess_dlpack(src, out, {}, 1) is None
            assert native.cuda_last_range(1) == (expected.lo, expected.hi)
            np.testing.assert_array_equal(out.cpu().numpy(), expected.tensor)


@pytest.mark.parametrize("options", [{}, {"norm": "minmax", "dtype": "float16"}, {"tile": (64, 64), "overlap": 16}])
def test_cuda_graph_replays_give_the_direct_result(options):
    img = _image((150, 130), np.float32, seed=9)
    expected = pp.preprocess(img, **options)
    tensor, lo, hi = native.cuda_preprocess_graph(img, pp.PreprocessOptions(**options).to_native(), 3)
    assert (lo, hi) == (expected.lo, expected.hi)
    np.testing.assert_array_equal(tensor, expected.tensor)


def test_cuda_dlpack_tensor_on_another_device_than_the_current_is_refused_naming_both():
    torch = pytest.importorskip("torch")
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    src = torch.from_numpy(_image((96, 64), np.float32, seed=16)).to("cuda:1")
    out = torch.empty((1, 1, 96, 64), dtype=torch.float32, device="cuda:1")
    with torch.cuda.device(0), pytest.raises(native.NativeError, match=r"image: tensor is on CUDA device 1, but the "
                                                                      r"current device is 0; call under "
                                                                      r"torch.cuda.device\(1\)"):
        native.preprocess_dlpack(src, out, {}, 1)
