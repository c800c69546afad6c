"""Native focus metrics against OpenCV and numpy references, globally and per tile."""

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ifrt import focus as F
from ifrt.native import load

native = load()


def _reference_maps(img):
    """Per-pixel terms with OpenCV's default border (reflect 101), as float64."""
    a = img.astype(np.float64)
    lap = cv2.Laplacian(a, cv2.CV_64F, ksize=1)
    gx = cv2.Sobel(a, cv2.CV_64F, 1, 0, ksize=3)
    gy = cv2.Sobel(a, cv2.CV_64F, 0, 1, ksize=3)
    return a, lap, gx * gx + gy * gy


def reference(img, ty=None, tx=None):
    """Metrics of core/focus.h for the whole image or the tile window (ty, tx)."""
    a, lap, grad2 = _reference_maps(img)
    h, w = a.shape
    ys = slice(None) if ty is None else ty
    xs = slice(None) if tx is None else tx
    mask = np.zeros((h, w), bool)
    mask[ys, xs] = True
    bh, vh, nh = np.zeros((h, w)), np.zeros((h, w)), np.zeros((h, w))
    bh[:, :-2] = (a[:, 2:] - a[:, :-2]) ** 2 if w > 2 else 0
    vh[:, :-2] = a[:, :-2] * (a[:, 1:-1] - a[:, 2:]) if w > 2 else 0
    nh[:, :-2] = 1
    bv, vv, nv = np.zeros((h, w)), np.zeros((h, w)), np.zeros((h, w))
    bv[:-2, :] = (a[2:, :] - a[:-2, :]) ** 2 if h > 2 else 0
    vv[:-2, :] = a[:-2, :] * (a[1:-1, :] - a[2:, :]) if h > 2 else 0
    nv[:-2, :] = 1
    pairs = (nh + nv)[mask].sum()
    mean = a[mask].mean()
    return {
        "var_laplacian": lap[mask].var(),
        "tenengrad": grad2[mask].mean(),
        "brenner": (bh + bv)[mask].sum() / pairs if pairs else 0.0,
        "normalized_variance": a[mask].var() / mean if mean > 0 else 0.0,
        "vollath_f4": (vh + vv)[mask].sum() / pairs if pairs else 0.0,
    }


def _assert_metrics(got, expected, rel=1e-9):
    for name in F.METRICS:
        assert got[name] == pytest.approx(expected[name], rel=rel, abs=1e-9), name


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_global_metrics_match_opencv_and_numpy(dtype):
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.random((97, 131)), (0, 0), 2) * 200
    img = img.astype(dtype)
    _assert_metrics(F.focus(img).metrics, reference(img))


def test_variance_of_laplacian_is_opencv_laplacian_then_meanstddev():
    img = np.random.default_rng(1).integers(0, 65535, (64, 80)).astype(np.uint16)
    _, std = cv2.meanStdDev(cv2.Laplacian(img.astype(np.float64), cv2.CV_64F, ksize=1))
    assert F.focus(img).metrics["var_laplacian"] == pytest.approx(std[0, 0] ** 2, rel=1e-9)


def test_per_tile_metrics_use_neighbours_across_tile_borders():
    img = np.random.default_rng(2).integers(0, 4000, (70, 90)).astype(np.uint16)
    report = F.focus(img, tile=32)
    assert report.tiles.shape == (3, 3, 5)
    for i in range(3):
        for j in range(3):
            expected = reference(img, slice(32 * i, 32 * i + 32), slice(32 * j, 32 * j + 32))
            _assert_metrics(dict(zip(F.METRICS, report.tiles[i, j], strict=True)), expected)
    assert report.tile_map("brenner").shape == (3, 3)


def test_blur_lowers_every_metric():
    noise = np.random.default_rng(3).random((128, 128)).astype(np.float32) * 1000
    img = cv2.GaussianBlur(noise, (0, 0), 1.0)  # texture with some spatial correlation, like tissue
    sharp = F.focus(img).metrics
    blurred = F.focus(cv2.GaussianBlur(img, (0, 0), 3)).metrics
    for name in F.METRICS:
        assert blurred[name] < sharp[name], name


def test_flat_image_scores_zero():
    m = F.focus(np.full((20, 20), 500, np.uint16)).metrics
    assert m == {name: 0.0 for name in F.METRICS}


def test_focus_into_fills_the_callers_array():
    img = np.random.default_rng(4).integers(0, 255, (40, 40)).astype(np.uint8)
    out = np.empty((2, 2, 5))
    metrics = F.focus_into(img, out, tile=20)
    np.testing.assert_array_equal(out, F.focus(img, tile=20).tiles)
    assert metrics == F.focus(img).metrics


def test_channel_pick_and_strided_input():
    img = np.random.default_rng(5).integers(0, 255, (30, 40, 2)).astype(np.uint8)
    assert F.focus(img, channel=1).metrics == F.focus(np.ascontiguousarray(img[..., 1])).metrics


@pytest.mark.parametrize(("image", "kwargs", "message"), [
    (np.zeros((4, 4), np.int16), {}, "int16 pixels are not supported"),
    (np.zeros((4, 4, 2), np.uint8), {"channel": 2}, "channel 2 is out of range"),
    (np.zeros((4, 4), np.uint8), {"tile": (8, 0)}, "focus tile size 8x0 is invalid"),
    (np.where(np.eye(8, dtype=bool)[:, ::-1], np.nan, 1.0).astype(np.float32), {},
     r"pixel \(0, 7\) is not finite; focus metrics need finite values"),
    (np.pad(np.full((1, 1), np.inf, np.float32), ((3, 4), (5, 2)), constant_values=2.0), {"tile": (4, 4)},
     r"pixel \(3, 5\) is not finite"),
])
def test_bad_inputs_raise_clear_errors(image, kwargs, message):
    with pytest.raises(native.NativeError, match=message):
        F.focus(image, **kwargs)


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from([np.uint8, np.uint16, np.float32]),
    shape=st.sampled_from([(1, 1), (1, 7), (7, 1), (2, 2), (3, 3), (1, 3000), (3000, 1), (33, 65)]),
    seed=st.integers(0, 2**16),
)
def test_property_metrics_match_reference_for_odd_shapes(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    img = (rng.random(shape) * 250).astype(dtype)
    _assert_metrics(F.focus(img).metrics, reference(img), rel=1e-8)
