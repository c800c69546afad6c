"""Native preprocessing against numpy, OpenCV and scikit-image references."""

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.measure import block_reduce

from ifrt import focus as focus_module
from ifrt import normalize, postprocess
from ifrt import preprocess as pp
from ifrt.native import load

native = load()
IDENTITY = {"norm": "fixed", "lo": 0.0, "hi": 1.0}  # output = pixel value, to test geometry alone


def _ramp(h, w, dtype=np.float32):
    return (np.arange(h * w, dtype=np.float64).reshape(h, w) % 1000).astype(dtype)


def test_output_is_nchw_padded_to_a_multiple_of_32():
    out = pp.preprocess(np.zeros((100, 77), np.uint16))
    assert out.tensor.shape == (1, 1, 128, 96) and out.tensor.dtype == np.float32
    assert out.plan["resized_height"] == 100 and out.plan["frame_width"] == 96


@pytest.mark.parametrize("mode", ["reflect", "edge"])
def test_padding_matches_numpy_pad(mode):
    img = _ramp(5, 7)
    out = pp.preprocess(img, pad_multiple=8, pad=mode, **IDENTITY).tensor[0, 0]
    np.testing.assert_array_equal(out, np.pad(img, ((0, 3), (0, 1)), mode=mode))


def test_reflect_padding_of_a_single_pixel_repeats_it():
    out = pp.preprocess(np.full((1, 1), 9.0, np.float32), **IDENTITY).tensor
    assert out.shape == (1, 1, 32, 32) and (out == 9.0).all()


def test_zero_padding_is_zero_in_normalized_units():
    out = pp.preprocess(np.full((3, 3), 200, np.uint8), pad_multiple=4, pad="zero", norm="fixed", lo=100,
                        hi=300).tensor[0, 0]
    assert (out[:3, :3] == 0.5).all() and (out[3, :] == 0).all() and (out[:, 3] == 0).all()


def test_channel_pick_from_interleaved_image():
    img = np.random.default_rng(0).integers(0, 65535, (40, 50, 3)).astype(np.uint16)
    for c in range(3):
        np.testing.assert_array_equal(pp.preprocess(img, channel=c).tensor,
                                      pp.preprocess(np.ascontiguousarray(img[..., c])).tensor)


def test_strided_views_are_read_in_place_and_match_a_copy():
    base = np.random.default_rng(1).integers(0, 255, (90, 120)).astype(np.uint8)
    view = base[5:80:2, 3:110:3]
    np.testing.assert_array_equal(pp.preprocess(view).tensor, pp.preprocess(view.copy()).tensor)
    np.testing.assert_array_equal(pp.preprocess(base[::-1]).tensor, pp.preprocess(base[::-1].copy()).tensor)


def test_column_major_arrays_are_read_like_their_c_order_copy():
    img = np.random.default_rng(5).integers(0, 4000, (70, 90)).astype(np.uint16)
    for transposed_view in (np.asfortranarray(img), img.T.copy().T):
        np.testing.assert_array_equal(pp.preprocess(transposed_view).tensor, pp.preprocess(img).tensor)


@pytest.mark.parametrize("stack", [np.zeros((1, 97, 131), np.uint16), np.zeros((3, 256, 256), np.float32)],
                         ids=["single-page", "three-planes"])
def test_a_channels_first_stack_is_refused_not_read_as_channels(stack):
    from ifrt import focus as F

    c, h, w = stack.shape
    message = rf"image: shape {c}x{h}x{w} would be {w} channels of {c}x{h} pixels; a channels-first stack"
    for call in (lambda: pp.preprocess(stack), lambda: F.focus(stack)):
        with pytest.raises(load().NativeError, match=message):
            call()
    with pytest.raises(load().NativeError, match=message):
        load().preprocess_dlpack(stack, np.empty((1, 1, 128, 160), np.float32), {})
    assert pp.preprocess(stack[0]).tensor.shape[-2:] == (-(-h // 32) * 32, -(-w // 32) * 32)


def test_dark_and_flat_correction_before_percentiles():
    rng = np.random.default_rng(2)
    img = rng.integers(100, 4000, (48, 40)).astype(np.uint16)
    dark = rng.uniform(90, 110, (48, 40)).astype(np.float32)
    flat = rng.uniform(0.8, 1.2, (48, 40)).astype(np.float32)
    corrected = (img.astype(np.float32) - dark) / flat
    out = pp.preprocess(img, dark=dark, flat=flat, pad_multiple=1)
    assert (out.lo, out.hi) == normalize.percentile_range(corrected)
    np.testing.assert_array_equal(out.tensor[0, 0], normalize.normalize_percentile(corrected))


def test_float16_output_is_the_rounded_float32_output():
    img = np.random.default_rng(3).integers(0, 65535, (70, 90)).astype(np.uint16)
    f32 = pp.preprocess(img).tensor
    f16 = pp.preprocess(img, dtype="float16").tensor
    assert f16.dtype == np.float16
    np.testing.assert_array_equal(f16, f32.astype(np.float16))


@pytest.mark.parametrize(("src", "dst"), [((64, 48), (32, 24)), ((50, 70), (123, 45)), ((7, 9), (1, 1)),
                                          ((1, 40), (1, 13)), ((33, 1), (8, 1))])
def test_bilinear_resize_matches_opencv(src, dst):
    img = np.random.default_rng(4).random(src, dtype=np.float32)
    out = pp.preprocess(img, size=dst, resize="bilinear", pad_multiple=1, **IDENTITY).tensor[0, 0]
    ref = cv2.resize(img, (dst[1], dst[0]), interpolation=cv2.INTER_LINEAR)
    # OpenCV rounds its interpolation weights differently: agreement to 1e-5 on [0, 1) data.
    np.testing.assert_allclose(out, ref.reshape(dst), rtol=0, atol=1e-5)


def test_area_resize_by_integer_factor_is_the_block_mean():
    img = np.random.default_rng(5).random((64, 96), dtype=np.float32)
    out = pp.preprocess(img, size=(16, 24), resize="area", pad_multiple=1, **IDENTITY).tensor[0, 0]
    np.testing.assert_allclose(out, block_reduce(img, (4, 4), np.mean), rtol=0, atol=2e-6)
    np.testing.assert_allclose(out, cv2.resize(img, (24, 16), interpolation=cv2.INTER_AREA), rtol=0, atol=2e-6)


def test_area_resize_by_fractional_factor_matches_opencv():
    img = np.random.default_rng(6).random((100, 70), dtype=np.float32)
    out = pp.preprocess(img, size=(30, 33), resize="area", pad_multiple=1, **IDENTITY).tensor[0, 0]
    ref = cv2.resize(img, (33, 30), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4)


def test_resize_then_normalize_uses_full_resolution_percentiles():
    img = np.random.default_rng(7).integers(0, 65535, (256, 256)).astype(np.uint16)
    out = pp.preprocess(img, size=(64, 64), resize="area")
    assert (out.lo, out.hi) == normalize.percentile_range(img)
    small = cv2.resize(img.astype(np.float32), (64, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(out.tensor[0, 0], normalize.apply_range(small, out.lo, out.hi), atol=1e-5)


def test_tiles_are_frame_windows_with_the_last_tile_at_the_edge():
    img = _ramp(100, 150)
    frame = pp.preprocess(img, **IDENTITY).tensor[0, 0]  # 128 x 160
    out = pp.preprocess(img, tile=(64, 64), overlap=16, **IDENTITY)
    plan = out.plan
    assert (plan["tiles_y"], plan["tiles_x"]) == (3, 3)  # origins y: 0, 48, 64; x: 0, 48, 96
    assert out.tensor.shape == (9, 1, 64, 64)
    for i, oy in enumerate([0, 48, 64]):
        for j, ox in enumerate([0, 48, 96]):
            np.testing.assert_array_equal(out.tensor[i * 3 + j, 0], frame[oy:oy + 64, ox:ox + 64])


def test_preprocess_into_writes_the_callers_array():
    img = np.random.default_rng(8).integers(0, 255, (40, 40)).astype(np.uint8)
    out = np.empty((1, 1, 64, 64), np.float32)
    lo, hi = pp.preprocess_into(img, out)
    expected = pp.preprocess(img)
    assert (lo, hi) == (expected.lo, expected.hi)
    np.testing.assert_array_equal(out, expected.tensor)


@pytest.mark.parametrize(("image", "options", "message"), [
    (np.zeros((4, 4), np.int32), {}, "int32 pixels are not supported"),
    (np.zeros((4, 4, 2, 2), np.uint8), {}, "expected an H x W or H x W x C array"),
    (np.zeros((0, 4), np.uint8), {}, "is empty"),
    (np.zeros((4, 4, 3), np.uint8), {"channel": 3}, "channel 3 is out of range"),
    (np.zeros((4, 4), np.uint8), {"p_low": 60.0, "p_high": 40.0}, "p_low < p_high"),
    (np.zeros((4, 4), np.uint8), {"size": (8, 8), "resize": "cubic"}, "unknown resize 'cubic'"),
    (np.zeros((4, 4), np.uint8), {"dark": np.zeros((3, 4))}, "dark: shape 3x4 does not match the image 4x4"),
    (np.zeros((4, 4), np.uint8), {"tile": (16, 16), "overlap": 16}, "tile_overlap 16"),
    (np.zeros((4, 4), np.uint8), {"pad_multiple": 0}, "pad_multiple must be >= 1"),
    (np.zeros((4, 4), np.uint8), {"dtype": "float64"}, "unknown dtype 'float64'"),
])
def test_bad_inputs_raise_clear_errors(image, options, message):
    with pytest.raises(native.NativeError, match=message):
        pp.preprocess(image, **options)


def test_wrong_output_array_is_rejected_with_the_expected_shape():
    img = np.zeros((40, 40), np.uint8)
    with pytest.raises(native.NativeError, match="output shape 1x1x32x32 should be 1x1x64x64"):
        pp.preprocess_into(img, np.empty((1, 1, 32, 32), np.float32))
    with pytest.raises(native.NativeError, match="output dtype float64 should be float32"):
        pp.preprocess_into(img, np.empty((1, 1, 64, 64), np.float64))


@settings(max_examples=50, deadline=None)
@given(
    dtype=st.sampled_from([np.uint8, np.uint16, np.float32]),
    shape=st.sampled_from([(1, 1), (1, 9), (9, 1), (31, 33), (3, 500), (500, 2), (65, 64)]),
    pad=st.sampled_from(["reflect", "edge"]),
    seed=st.integers(0, 2**16),
)
def test_property_native_equals_numpy_pipeline_for_odd_shapes(dtype, shape, pad, seed):
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        img = rng.standard_normal(shape).astype(np.float32)
    else:
        img = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    out = pp.preprocess(img, pad=pad)
    ph, pw = -shape[0] % 32, -shape[1] % 32
    ref = np.pad(normalize.normalize_percentile(img), ((0, ph), (0, pw)), mode=pad)
    np.testing.assert_array_equal(out.tensor[0, 0], ref)


@settings(max_examples=40, deadline=None)
@given(
    src=st.tuples(st.integers(1, 90), st.integers(1, 90)),
    dst=st.tuples(st.integers(1, 120), st.integers(1, 120)),
    seed=st.integers(0, 2**16),
)
def test_property_bilinear_resize_matches_opencv_for_any_sizes(src, dst, seed):
    img = np.random.default_rng(seed).random(src, dtype=np.float32)
    out = pp.preprocess(img, size=dst, resize="bilinear", pad_multiple=1, **IDENTITY).tensor[0, 0]
    ref = cv2.resize(img, (dst[1], dst[0]), interpolation=cv2.INTER_LINEAR).reshape(dst)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    src=st.tuples(st.integers(2, 120), st.integers(2, 120)),
    frac=st.tuples(st.floats(0.01, 1.0), st.floats(0.01, 1.0)),
    seed=st.integers(0, 2**16),
)
def test_property_area_shrink_matches_opencv_for_any_sizes(src, frac, seed):
    dst = (max(1, int(src[0] * frac[0])), max(1, int(src[1] * frac[1])))
    img = np.random.default_rng(seed).random(src, dtype=np.float32)
    out = pp.preprocess(img, size=dst, resize="area", pad_multiple=1, **IDENTITY).tensor[0, 0]
    ref = cv2.resize(img, (dst[1], dst[0]), interpolation=cv2.INTER_AREA).reshape(dst)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)


def test_a_broadcast_frame_is_read_as_its_values():
    # strides (0, 0): every pixel is the one element; read in place it would run past the buffer.
    constant = np.broadcast_to(np.uint16(7), (64, 96))
    result = pp.preprocess(constant, norm="minmax")
    assert (result.lo, result.hi) == (7.0, 7.0)
    rows = np.broadcast_to(np.arange(64, dtype=np.uint16)[:, None] * 500, (64, 96))
    np.testing.assert_array_equal(pp.preprocess(rows).tensor, pp.preprocess(np.ascontiguousarray(rows)).tensor)


@pytest.mark.parametrize("dtype", [">u2", ">f4"])
def test_big_endian_pixels_read_as_the_numbers_they_hold(dtype):
    frame = np.random.default_rng(4).integers(0, 60000, (64, 80)).astype(dtype)
    native_order = frame.astype(frame.dtype.newbyteorder("="))
    expected = pp.preprocess(native_order)
    result = pp.preprocess(frame)
    assert (result.lo, result.hi) == (expected.lo, expected.hi)
    np.testing.assert_array_equal(result.tensor, expected.tensor)
    assert focus_module.focus(frame).metrics == focus_module.focus(native_order).metrics
    y = expected.tensor[0, 0].astype(">f4")
    np.testing.assert_array_equal(postprocess.denormalize(y, 10, 1000, "uint16"),
                                  postprocess.denormalize(y.astype(np.float32), 10, 1000, "uint16"))
