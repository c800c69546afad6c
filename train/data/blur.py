"""Optical blur: Gaussian, widefield defocus, and spatially varying blur across the frame.

Blur strength is always expressed as a Gaussian-equivalent sigma in pixels, so that the three kinds share
one severity scale and one set of labelled levels:
    sigma_eq = r50 / sqrt(2 ln 2)
where r50 is the radius holding half of the PSF's energy (for a Gaussian PSF, sigma_eq == sigma).
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

_EE50_PER_SIGMA = math.sqrt(2.0 * math.log(2.0))  # 50% encircled-energy radius of a unit Gaussian


def gaussian_psf(sigma: float) -> np.ndarray:
    """The isotropic Gaussian kernel of `sigma` pixels, out to 4 sigma, summing to 1 (float32)."""
    half = max(1, int(math.ceil(4 * sigma)))
    x = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    psf = np.outer(g, g)
    return (psf / psf.sum()).astype(np.float32)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Blur with an isotropic Gaussian PSF; sigma <= 0 returns the input unchanged."""
    if sigma <= 1e-3:
        return image
    return cv2.GaussianBlur(image, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma),
                            borderType=cv2.BORDER_REFLECT_101)


def ee50_sigma(psf: np.ndarray) -> float:
    """Gaussian-equivalent sigma (pixels) of a centred PSF, from its 50% encircled-energy radius."""
    half = psf.shape[0] // 2
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    radius = np.hypot(yy, xx).ravel()
    order = np.argsort(radius, kind="stable")
    energy = np.cumsum(psf.ravel()[order]) / psf.sum()
    r50 = float(np.interp(0.5, energy, radius[order]))
    return r50 / _EE50_PER_SIGMA


@functools.lru_cache(maxsize=256)
def defocus_psf(defocus_waves: float, *, na: float = 0.5, wavelength_um: float = 0.52, pixel_um: float = 0.5,
                size: int = 63) -> np.ndarray:
    """Widefield fluorescence PSF of a defocused objective (scalar, paraxial), integrated over pixels.

    The pupil is a disc of radius NA/lambda with the defocus phase exp(i 2 pi W20 rho^2), W20 in waves
    (W20 = dz NA^2 / (2 lambda) for an axial focus error dz); the intensity PSF is |FFT(pupil)|^2. It is
    computed at twice the pixel rate and each pixel integrates the light falling on it: the box one pixel
    wide centred on the optical axis (trapezoid rule over the fine samples at -1/2, 0, +1/2 pixel), so the
    kernel is centred on its middle element and symmetric, as a PSF with a centred pupil must be.
    Returns a float32 kernel of `size` x `size` that sums to 1.
    """
    oversample = 2
    n = 256
    df = 1.0 / (n * pixel_um / oversample)  # pupil-plane sample spacing, cycles per micron
    fy, fx = np.meshgrid(np.fft.fftfreq(n, d=1.0), np.fft.fftfreq(n, d=1.0), indexing="ij")
    rho = np.hypot(fy, fx) * n * df / (na / wavelength_um)  # normalised pupil radius
    pupil = np.where(rho <= 1.0, np.exp(2j * np.pi * defocus_waves * rho ** 2), 0.0)
    field = np.fft.fftshift(np.fft.ifft2(pupil))
    intensity = np.abs(field) ** 2  # the optical axis at sample n // 2 (even), of a periodic n x n field
    for axis in (0, 1):  # integrate over a pixel centred on each even sample
        intensity = 0.5 * intensity + 0.25 * (np.roll(intensity, 1, axis) + np.roll(intensity, -1, axis))
    binned = intensity[::oversample, ::oversample]
    centre = n // (2 * oversample)
    half = size // 2
    kernel = binned[centre - half:centre + half + 1, centre - half:centre + half + 1]
    kernel = (kernel / kernel.sum()).astype(np.float32)
    kernel.setflags(write=False)  # cached and shared: nobody may change it
    return kernel


@functools.lru_cache(maxsize=16)
def _defocus_table(na: float, wavelength_um: float, pixel_um: float) -> tuple[np.ndarray, np.ndarray]:
    """Monotone lookup from defocus (waves) to sigma_eq (pixels), used to hit a target severity."""
    waves = np.linspace(0.0, 4.0, 81)  # up to a ~17 px geometric blur radius at the defaults
    sigmas = np.array([ee50_sigma(defocus_psf(float(w), na=na, wavelength_um=wavelength_um,
                                              pixel_um=pixel_um)) for w in waves])
    return waves, np.maximum.accumulate(sigmas)


def defocus_waves_for_sigma(sigma: float, *, na: float = 0.5, wavelength_um: float = 0.52,
                            pixel_um: float = 0.5) -> float:
    """The defocus W20 (waves) whose PSF has Gaussian-equivalent sigma `sigma` (pixels)."""
    waves, sigmas = _defocus_table(na, wavelength_um, pixel_um)
    if sigma > sigmas[-1]:
        raise ValueError(f"defocus sigma {sigma:.2f} px exceeds the {sigmas[-1]:.2f} px this optics model "
                         "covers; lower the blur sigmas or raise pixel_um")
    return float(np.interp(sigma, sigmas, waves))


def defocus_blur(image: np.ndarray, sigma: float, *, na: float = 0.5, wavelength_um: float = 0.52,
                 pixel_um: float = 0.5) -> tuple[np.ndarray, np.ndarray | None]:
    """Blur with the defocus PSF of Gaussian-equivalent `sigma`; returns (image, the PSF it used), the PSF
    None for sigma 0 (no blur). `ee50_sigma` of the PSF is the severity actually reached.

    The defocus is rounded to 0.05 waves so that kernels are reused across images.
    """
    if sigma <= 1e-3:
        return image, None
    psf = defocus_kernel(sigma, na=na, wavelength_um=wavelength_um, pixel_um=pixel_um)
    return convolve(image, psf), psf


def defocus_kernel(sigma: float, *, na: float = 0.5, wavelength_um: float = 0.52, pixel_um: float = 0.5) -> np.ndarray:
    """The defocus PSF `defocus_blur` uses for Gaussian-equivalent `sigma` (> 0): the defocus that reaches it,
    rounded to 0.05 waves."""
    waves = round(defocus_waves_for_sigma(sigma, na=na, wavelength_um=wavelength_um, pixel_um=pixel_um) / 0.05) * 0.05
    return defocus_psf(waves, na=na, wavelength_um=wavelength_um, pixel_um=pixel_um)


def convolve(image: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """`image` convolved with the odd-sized `psf` centred on its middle element, mirrored borders
    (BORDER_REFLECT_101). A convolution, not OpenCV's correlation: a point source becomes the PSF itself,
    not its 180-degree rotation, which is what a deconvolution given the same PSF inverts."""
    if psf.shape[0] % 2 == 0 or psf.shape[1] % 2 == 0:
        raise ValueError(f"the PSF must have odd sides to have a middle element, got {psf.shape}")
    return cv2.filter2D(image, -1, np.ascontiguousarray(psf[::-1, ::-1]), borderType=cv2.BORDER_REFLECT_101)


def focus_field(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A zero-mean, unit-std focus-error pattern over the frame: a random tilt plus field curvature."""
    height, width = shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy = (yy - (height - 1) / 2) / max(height, width)
    xx = (xx - (width - 1) / 2) / max(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    tilt = np.cos(angle) * xx + np.sin(angle) * yy
    cy, cx = rng.uniform(-0.25, 0.25, size=2)
    curvature = (xx - cx) ** 2 + (yy - cy) ** 2
    mix = rng.uniform(0.0, 1.0)  # 0: pure tilt, 1: pure curvature
    field = (1 - mix) * tilt / (tilt.std() + 1e-6) + mix * curvature / (curvature.std() + 1e-6)
    field = field - field.mean()
    return (field / (field.std() + 1e-6)).astype(np.float32)


def varying_blur(image: np.ndarray, sigma_map: np.ndarray, sigma_grid: np.ndarray) -> np.ndarray:
    """Blur whose Gaussian sigma changes across the frame (`sigma_map`, pixels, same shape as image).

    The image is blurred once at each sigma in the ascending `sigma_grid`, and every pixel interpolates
    linearly between the two planes whose sigmas bracket its own.
    """
    stack = np.stack([gaussian_blur(image, float(s)) for s in sigma_grid])
    position = np.interp(sigma_map, sigma_grid, np.arange(len(sigma_grid), dtype=np.float32))
    lower = np.clip(np.floor(position).astype(np.intp), 0, len(sigma_grid) - 2)
    weight = (position - lower).astype(np.float32)
    below = np.take_along_axis(stack, lower[None], axis=0)[0]
    above = np.take_along_axis(stack, lower[None] + 1, axis=0)[0]
    return below + weight * (above - below)
