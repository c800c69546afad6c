"""Camera model: Poisson-Gaussian noise, dark offset, gain and quantization to the sensor's bit depth.

For a signal s in [0, 1] (1.0 = the brightest level the exposure maps to the top of the ADC range):
    electrons = Poisson(s / gain) + Normal(0, read_noise)          # shot noise + read noise, in e-
    adu       = clip(round(offset_adu + electrons * gain * white_adu), 0, 2**bits - 1)
where white_adu = 2**bits - 1 - offset_adu. `gain` is in signal units per photoelectron (1/gain
photoelectrons make a signal of 1.0), so the noise level does not depend on the bit depth.

Poisson counts above POISSON_EXACT_BELOW electrons are drawn as lam + sqrt(lam) * z (the normal
approximation; skewness 1/sqrt(lam) < 0.16 there). The standard-normal field z is drawn first and for every
pixel, so two frames of one scene recorded with one seed share their noise wherever they are bright; that
keeps comparisons between blur levels of one scene free of noise-realisation luck, and is 4x faster than
exact sampling.
"""

from __future__ import annotations

import numpy as np

POISSON_EXACT_BELOW = 40.0


def adc_range(bit_depth: int, offset: float) -> tuple[float, float]:
    """(offset_adu, white_adu) for a sensor of `bit_depth` bits whose dark level is `offset` of full range."""
    if not 8 <= bit_depth <= 16:
        raise ValueError(f"bit depth {bit_depth} is not supported (expected 8 to 16)")
    full = float(2 ** bit_depth - 1)
    offset_adu = round(offset * full)
    return float(offset_adu), full - offset_adu


def camera_adu(signal: np.ndarray, rng: np.random.Generator, *, gain: float, read_noise: float,
               offset: float, bit_depth: int) -> np.ndarray:
    """Raw sensor counts (uint8 for 8-bit, else uint16) for a float signal in [0, 1]."""
    offset_adu, white_adu = adc_range(bit_depth, offset)
    expected = np.clip(signal, 0.0, None).astype(np.float32) / np.float32(gain)
    z = rng.standard_normal(signal.shape, dtype=np.float32)
    # Bright pixels: shot and read noise are both normal, so one draw carries their summed variance.
    electrons = expected + np.sqrt(expected + np.float32(read_noise ** 2)) * z
    dim = expected < POISSON_EXACT_BELOW
    electrons[dim] = rng.poisson(expected[dim]) + np.float32(read_noise) * z[dim]
    adu = np.rint(offset_adu + electrons * np.float32(gain * white_adu))
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.clip(adu, 0, 2 ** bit_depth - 1).astype(dtype)


def adu_to_signal(adu: np.ndarray, *, offset: float, bit_depth: int) -> np.ndarray:
    """Inverse of the ADC mapping (no noise removal): float32 signal on the input's [0, 1] scale."""
    offset_adu, white_adu = adc_range(bit_depth, offset)
    return ((adu.astype(np.float32) - np.float32(offset_adu)) / np.float32(white_adu)).astype(np.float32)


def signal_to_adu(signal: np.ndarray, *, offset: float, bit_depth: int) -> np.ndarray:
    """Noise-free quantization of a float signal to sensor counts (used for sharp references)."""
    offset_adu, white_adu = adc_range(bit_depth, offset)
    adu = np.rint(offset_adu + np.asarray(signal, np.float32) * np.float32(white_adu))
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.clip(adu, 0, 2 ** bit_depth - 1).astype(dtype)
