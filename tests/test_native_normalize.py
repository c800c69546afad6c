"""Normalization: the numpy reference (ifrt.normalize) and the native kernels agree bit for bit."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ifrt import normalize
from ifrt import preprocess as pp
from ifrt.native import load

native = load()

DTYPES = [np.uint8, np.uint16, np.float32]


def _image(rng, shape, dtype):
    if dtype == np.float32:
        return (rng.standard_normal(shape) * 100 + 20).astype(np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


def _normalized(img, **options):
    # The native output without padding: [1, 1, H, W] -> [H, W].
    return pp.preprocess(img, pad_multiple=1, **options).tensor[0, 0]


def test_reference_percentile_range_is_numpy_linear():
    img = np.arange(100, dtype=np.uint16).reshape(10, 10)
    assert normalize.percentile_range(img) == (0.99, 98.802)


def test_reference_maps_percentile_range_to_0_1():
    img = np.arange(1000, dtype=np.uint16).reshape(20, 50)
    out = normalize.normalize_percentile(img, 0.0, 100.0)
    assert out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == np.float32(999.0) * np.float32(1 / 999)


def test_reference_flat_image_maps_to_zeros():
    img = np.full((4, 5), 1234, np.uint16)
    assert normalize.percentile_range(img) == (1234.0, 1234.0)
    assert not normalize.normalize_percentile(img).any()


def test_reference_rejects_nan_and_bad_percentiles():
    with pytest.raises(ValueError, match="NaN or inf"):
        normalize.normalize_percentile(np.array([[1.0, np.nan]], np.float32))
    with pytest.raises(ValueError, match="p_low < p_high"):
        normalize.percentile_range(np.zeros((2, 2), np.uint8), 50, 10)
    with pytest.raises(ValueError, match="int32 pixels are not supported"):
        normalize.percentile_range(np.zeros((2, 2), np.int32))


@pytest.mark.parametrize("dtype", DTYPES)
def test_native_percentiles_equal_numpy_exactly(dtype):
    img = _image(np.random.default_rng(1), (123, 77), dtype)
    for p_low, p_high in [(1.0, 99.8), (0.0, 100.0), (2.5, 97.5), (49.99, 50.01)]:
        expected = tuple(float(v) for v in np.percentile(img, [p_low, p_high], method="linear"))
        assert native.percentile_range(img, p_low, p_high) == expected


@pytest.mark.parametrize("dtype", DTYPES)
def test_native_normalization_equals_reference_bit_for_bit(dtype):
    img = _image(np.random.default_rng(2), (64, 45), dtype)
    np.testing.assert_array_equal(_normalized(img), normalize.normalize_percentile(img))
    np.testing.assert_array_equal(_normalized(img, norm="minmax"), normalize.normalize_minmax(img))
    np.testing.assert_array_equal(_normalized(img, norm="fixed", lo=3.0, hi=200.0),
                                  normalize.normalize_fixed(img, 3.0, 200.0))


def test_native_flat_image_maps_to_zeros():
    assert not _normalized(np.full((3, 3), 7, np.uint8)).any()


def test_native_rejects_non_finite_pixels_with_the_position():
    img = np.ones((3, 4), np.float32)
    img[2, 1] = np.inf
    with pytest.raises(native.NativeError, match=r"pixel \(2, 1\) is not finite"):
        native.percentile_range(img)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_native_denormalize_equals_reference(dtype):
    rng = np.random.default_rng(3)
    y = (rng.standard_normal((37, 29)) * 0.6 + 0.5).astype(np.float32)
    ref = normalize.denormalize(y, 100.0, 240.5, dtype)
    np.testing.assert_array_equal(native.denormalize(y, 100.0, 240.5, dtype), ref)


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    h=st.sampled_from([1, 2, 3, 17, 64]),
    w=st.sampled_from([1, 2, 5, 31, 33, 300]),
    p=st.tuples(st.floats(0, 50), st.floats(50.001, 100)),
    seed=st.integers(0, 2**16),
)
def test_property_native_percentiles_match_numpy_for_any_shape(dtype, h, w, p, seed):
    img = _image(np.random.default_rng(seed), (h, w), dtype)
    expected = tuple(float(v) for v in np.percentile(img, list(p), method="linear"))
    assert native.percentile_range(img, p[0], p[1]) == expected
    np.testing.assert_array_equal(_normalized(img, p_low=p[0], p_high=p[1]),
                                  normalize.normalize_percentile(img, p[0], p[1]))
