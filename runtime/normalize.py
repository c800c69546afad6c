"""Intensity normalization: the numpy reference that the native kernels reproduce exactly.

The model sees every image through one affine map, ``out = (x - lo) * scale``, computed in float32
with ``lo`` and ``scale`` rounded to float32 first. The modes differ only in how ``lo`` and ``hi``
are chosen:

- ``percentile`` (the default, CSBDeep-style): ``lo, hi = numpy.percentile(img, [p_low, p_high],
  method="linear")`` over all pixels, with ``p_low=1`` and ``p_high=99.8`` unless the model's
  metadata says otherwise. Linear means: sort the ``n`` values into ``v``, take the virtual index
  ``i = (n - 1) * q`` with ``q = p/100`` (float64), and return ``v[floor(i)]`` interpolated towards
  the next value by ``g``, the fractional part of ``i``: ``v0 + (v1 - v0)*g`` for ``g < 0.5``,
  else ``v1 - (v1 - v0)*(1 - g)``, with ``v1 - v0`` taken in the pixel dtype (numpy's ``_lerp``).
- ``minmax``: ``lo, hi = img.min(), img.max()``.
- ``fixed``: ``lo`` and ``hi`` given by the caller (for example 0 and 65535 for raw 16-bit counts).

``scale = 1 / (hi - lo)``, or ``0`` when ``hi - lo <= FLAT_EPS``: an image without contrast (a
blank field, a saturated frame) maps to all zeros instead of amplifying noise by ``1 / eps``.
CSBDeep divides by ``hi - lo + 1e-20`` instead, which overflows float32 on flat images; away from
flat images the two agree to float32 rounding.

The inverse, used to bring the deblurred output back to the input's units, is
``x = y * (hi - lo) + lo`` (float32 arithmetic, ``hi - lo`` rounded to float32), then rounded to
nearest (ties to even) and clamped to the dtype's range for integer outputs.

Non-finite float input (NaN, inf) is rejected: a percentile of it is not meaningful.
This module imports only numpy; ``ifrt.preprocess`` runs the same math in the native core.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "FLAT_EPS",
    "DEFAULT_P_LOW",
    "DEFAULT_P_HIGH",
    "percentile_range",
    "minmax_range",
    "affine_from_range",
    "apply_range",
    "normalize_percentile",
    "normalize_minmax",
    "normalize_fixed",
    "denormalize",
]

#: Ranges ``hi - lo`` at or below this (in input units) count as flat: ``scale = 0``.
FLAT_EPS = 1e-6
DEFAULT_P_LOW = 1.0
DEFAULT_P_HIGH = 99.8

_SUPPORTED = (np.uint8, np.uint16, np.float32, np.float64)


def _checked(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.size == 0:
        raise ValueError(f"image is empty (shape {a.shape}); expected at least one pixel")
    if a.dtype.type not in _SUPPORTED:
        raise ValueError(f"{a.dtype} pixels are not supported (expected uint8, uint16 or float32)")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError("image contains NaN or inf; normalization needs finite pixel values")
    return a


def _check_percentiles(p_low: float, p_high: float) -> None:
    if not (0.0 <= p_low < p_high <= 100.0):
        raise ValueError(f"percentiles must satisfy 0 <= p_low < p_high <= 100, got p_low={p_low}, p_high={p_high}")


def percentile_range(img: np.ndarray, p_low: float = DEFAULT_P_LOW,
                     p_high: float = DEFAULT_P_HIGH) -> tuple[float, float]:
    """``(lo, hi)``: the p_low-th and p_high-th percentiles of all pixels (numpy "linear")."""
    _check_percentiles(p_low, p_high)
    a = _checked(img)
    lo, hi = np.percentile(a, [p_low, p_high], method="linear")
    return float(lo), float(hi)


def minmax_range(img: np.ndarray) -> tuple[float, float]:
    """``(lo, hi)``: the smallest and largest pixel."""
    a = _checked(img)
    return float(a.min()), float(a.max())


def affine_from_range(lo: float, hi: float) -> tuple[np.float32, np.float32]:
    """``(lo, scale)`` in float32 for ``out = (x - lo) * scale``; scale is 0 for a flat range."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi < lo:
        raise ValueError(f"normalization range must be finite with hi >= lo, got lo={lo}, hi={hi}")
    span = float(hi) - float(lo)
    scale = 1.0 / span if span > FLAT_EPS else 0.0
    return np.float32(lo), np.float32(scale)


def apply_range(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``(x - lo) * scale`` in float32, as the native kernel computes it."""
    a = np.asarray(img)
    lo32, scale32 = affine_from_range(lo, hi)
    return ((a.astype(np.float32) - lo32) * scale32).astype(np.float32, copy=False)


def normalize_percentile(img: np.ndarray, p_low: float = DEFAULT_P_LOW,
                         p_high: float = DEFAULT_P_HIGH) -> np.ndarray:
    """Map the p_low..p_high percentile range of ``img`` to 0..1 (float32, not clipped)."""
    lo, hi = percentile_range(img, p_low, p_high)
    return apply_range(img, lo, hi)


def normalize_minmax(img: np.ndarray) -> np.ndarray:
    """Map min..max of ``img`` to 0..1 (float32)."""
    lo, hi = minmax_range(img)
    return apply_range(img, lo, hi)


def normalize_fixed(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map the fixed range lo..hi to 0..1 (float32, not clipped)."""
    _checked(img)
    return apply_range(img, lo, hi)


def denormalize(y: np.ndarray, lo: float, hi: float, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """Inverse of :func:`apply_range`: ``y * (hi - lo) + lo`` in float32, back to ``dtype``.

    Integer dtypes are rounded to nearest (ties to even, C's ``rintf``) and clamped to the dtype's
    range; NaN maps to 0. float32 is clamped to +-FLT_MAX (no overflow to infinity); NaN stays NaN.
    """
    dtype = np.dtype(dtype)
    if dtype.type not in (np.uint8, np.uint16, np.float32):
        raise ValueError(f"{dtype} output is not supported (expected uint8, uint16 or float32)")
    lo32 = np.float32(lo)
    span32 = np.float32(float(hi) - float(lo))
    x = np.asarray(y, dtype=np.float32) * span32 + lo32
    if dtype.kind == "f":
        limit = np.finfo(np.float32).max
        return np.clip(x, -limit, limit).astype(dtype, copy=False)
    info = np.iinfo(dtype)
    x = np.where(np.isnan(x), np.float32(0), x)
    return np.clip(np.rint(x), info.min, info.max).astype(dtype)
