"""Native postprocessing: softmax, tile blending, inverse normalization, quality-map upsampling."""

import cv2
import numpy as np
import pytest
from scipy.special import softmax as scipy_softmax

from ifrt import normalize
from ifrt import postprocess as post
from ifrt import preprocess as pp
from ifrt.native import load

native = load()


def test_softmax_matches_scipy_at_several_temperatures():
    logits = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32) * 5
    for t in (0.5, 1.0, 3.0):
        np.testing.assert_allclose(post.softmax(logits, t), scipy_softmax(logits / t, axis=1), rtol=2e-6, atol=1e-7)


def test_softmax_is_stable_for_huge_logits():
    p = post.softmax(np.array([[1000.0, 1000.0, -1000.0]], np.float32))
    np.testing.assert_array_equal(p, [[0.5, 0.5, 0.0]])


def test_softmax_into_writes_the_callers_array():
    out = np.empty((1, 2), np.float32)
    post.softmax(np.array([[0.0, np.log(3.0)]], np.float32), out=out)
    np.testing.assert_allclose(out, [[0.25, 0.75]], rtol=1e-6)


def test_softmax_rejects_non_positive_temperature():
    with pytest.raises(native.NativeError, match="temperature 0.000000 must be > 0"):
        post.softmax(np.zeros((1, 3), np.float32), 0.0)


def test_blending_tiles_of_a_frame_gives_the_frame_back():
    img = np.random.default_rng(1).random((150, 200), dtype=np.float32)
    frame = pp.preprocess(img, norm="fixed", lo=0.0, hi=1.0).tensor[0, 0]
    tiled = pp.preprocess(img, norm="fixed", lo=0.0, hi=1.0, tile=(64, 64), overlap=16)
    out = post.blend_tiles(tiled.tensor, (tiled.plan["frame_height"], tiled.plan["frame_width"]), 16, (150, 200))
    np.testing.assert_allclose(out, frame[:150, :200], rtol=1e-6, atol=1e-7)


def test_blending_cross_fades_linearly_without_a_seam():
    # Two 1x8 tiles (values 0 and 1) over a 1x12 frame with overlap 4: origins 0 and 4.
    tiles = np.stack([np.zeros((1, 8)), np.ones((1, 8))]).astype(np.float32)[:, None]
    out = post.blend_tiles(tiles, (1, 12), 4)[0]
    np.testing.assert_allclose(out, [0, 0, 0, 0, 0.125, 0.375, 0.625, 0.875, 1, 1, 1, 1], atol=1e-7)


def test_an_axis_with_one_tile_ignores_an_overlap_as_large_as_the_tile():
    # 64-high frame cut into 64x96 tiles with overlap 80: one tile row (step 0 there), three columns
    # (step 16). Found by fuzz_capi_postprocess: the row lookup divided by the zero step.
    img = np.random.default_rng(3).random((64, 128), dtype=np.float32)
    tiled = pp.preprocess(img, norm="fixed", lo=0.0, hi=1.0, pad_multiple=1, tile=(64, 96), overlap=80)
    assert tiled.tensor.shape[0] == 3
    out = post.blend_tiles(tiled.tensor, (64, 128), 80)
    np.testing.assert_allclose(out, img, rtol=1e-6, atol=1e-7)


def test_blend_rejects_a_tile_count_that_does_not_fit_the_grid():
    with pytest.raises(native.NativeError, match="3 tiles given, the grid has 4"):
        post.blend_tiles(np.zeros((3, 1, 32, 32), np.float32), (48, 48), 16)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_denormalize_inverts_normalization_and_crops(dtype):
    rng = np.random.default_rng(2)
    img = rng.integers(0, 250, (50, 60)).astype(dtype)
    prep = pp.preprocess(img, norm="minmax")
    back = post.denormalize(prep.tensor[0, 0], prep.lo, prep.hi, dtype, (50, 60))
    assert back.dtype == np.dtype(dtype) and back.shape == (50, 60)
    np.testing.assert_allclose(back.astype(np.float64), img, atol=0.5 if dtype != "float32" else 1e-4)
    if dtype != "float32":
        np.testing.assert_array_equal(back, img)


def test_denormalize_clamps_to_the_dtype_range_and_reads_float16():
    y = np.array([[-1.0, 0.0, 0.5, 1.0, 2.0]], np.float16)
    out = post.denormalize(y, 0.0, 200.0, "uint8")
    np.testing.assert_array_equal(out, [[0, 0, 100, 200, 255]])
    np.testing.assert_array_equal(out, normalize.denormalize(y.astype(np.float32), 0.0, 200.0, np.uint8))


def test_denormalize_to_float32_clamps_to_the_largest_float32_and_keeps_nan():
    """Near the float32 limit, y * span + lo overflows: the result is the largest finite float32 (as integer
    outputs are clamped to their dtype's range), never infinity; a NaN output stays NaN."""
    y = np.array([[0.0, 0.5, 1.0, 1.2, 2.0, -2.0, -3.0, np.inf, -np.inf, np.nan]], np.float32)
    lo, hi = 1e38, 3e38
    with np.errstate(over="ignore", invalid="ignore"):
        raw = y * np.float32(hi - lo) + np.float32(lo)
    expected = np.clip(raw, -np.finfo(np.float32).max, np.finfo(np.float32).max)
    out = post.denormalize(y, lo, hi, "float32")
    np.testing.assert_array_equal(out, expected)
    assert np.isfinite(out[0, :-1]).all() and np.isnan(out[0, -1])
    assert out[0, 4] == np.finfo(np.float32).max and out[0, 6] == -np.finfo(np.float32).max
    with np.errstate(over="ignore", invalid="ignore"):
        np.testing.assert_array_equal(normalize.denormalize(y, lo, hi, np.float32), out)  # the numpy definition


@pytest.mark.parametrize(("src", "dst"), [((4, 4), (128, 128)), ((3, 5), (100, 37)), ((1, 1), (8, 8))])
def test_quality_map_upsampling_matches_opencv_bilinear(src, dst):
    q = np.random.default_rng(3).random(src, dtype=np.float32)
    out = post.upsample_quality_map(q[None, None], dst)
    ref = cv2.resize(q, (dst[1], dst[0]), interpolation=cv2.INTER_LINEAR).reshape(dst)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)


def test_softmax_in_place_is_allowed_and_a_shifted_output_is_refused():
    logits = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    expected = post.softmax(logits.copy())
    in_place = logits.copy()
    assert post.softmax(in_place, out=in_place) is not None
    np.testing.assert_array_equal(in_place, expected)
    buffer = np.zeros(7 * 4, np.float32)
    buffer[:24] = logits.ravel()
    with pytest.raises(native.NativeError, match="softmax: the output overlaps the logits without being the same"):
        post.softmax(buffer[:24].reshape(6, 4), out=buffer[4:].reshape(6, 4))


def test_denormalize_refuses_an_output_over_its_input_unless_in_place_float32():
    y = np.random.default_rng(1).random((32, 48)).astype(np.float32)
    expected = post.denormalize(y.copy(), 10.0, 1000.0, "float32")
    same = y.copy()
    post.denormalize(same, 10.0, 1000.0, "float32", out=same)
    np.testing.assert_array_equal(same, expected)
    buffer = y.ravel().copy()
    with pytest.raises(native.NativeError, match="denormalize: the output overlaps the input"):
        post.denormalize(buffer.reshape(32, 48), 10.0, 1000.0, "uint16",
                         out=buffer.view(np.uint16)[:32 * 48].reshape(32, 48))


def test_blend_and_upsample_refuse_an_output_over_their_input():
    buffer = np.random.default_rng(2).random(4 * 64 * 64).astype(np.float32)
    with pytest.raises(native.NativeError, match="blend_tiles: the output overlaps the tiles"):
        post.blend_tiles(buffer.reshape(4, 1, 64, 64), (96, 96), 32, out=buffer[:96 * 96].reshape(96, 96))
    with pytest.raises(native.NativeError, match="upsample_quality_map: the output overlaps the map"):
        post.upsample_quality_map(buffer[:6].reshape(2, 3), (64, 96), out=buffer[:64 * 96].reshape(64, 96))
