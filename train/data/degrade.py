"""The degradation model: a sharp image as the microscope would record it, with its labels.

    observed = camera(photobleach * blur(sharp))

blur is one of three kinds, all on one severity scale (Gaussian-equivalent sigma, see `blur.py`):
- "gaussian": isotropic Gaussian PSF at the labelled level's sigma (IFVB-style discrete levels);
- "defocus":  the widefield defocus PSF whose sigma_eq equals the level's sigma;
- "spatial":  focus tilt / field curvature, sigma varying across the frame around the level's sigma.
camera is the Poisson-Gaussian sensor model of `noise.py`. Level 0 is in focus: no blur at all.

Used twice: by `synth.synthesize_database` to write the database, and on the fly by training-time
augmentation (a 512x512 frame takes a few tens of milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ifrt.train.data import blur, noise

KINDS = ("gaussian", "defocus", "spatial")
TILE = 32  # quality-map tile, matching the network's stride-32 quality_map output


@dataclass(frozen=True)
class DegradeConfig:
    # Gaussian-equivalent sigma (pixels) of each labelled blur level; level 0 must be 0 (in focus).
    sigmas: tuple[float, ...] = (0.0, 1.0, 2.0, 3.5, 5.0)
    # Each image's sigma is its level's sigma times (1 + U(-jitter, +jitter)); keeps the levels disjoint.
    sigma_jitter: float = 0.1
    # Probability of each blur kind when `kind` is not given (the rest is "gaussian").
    p_defocus: float = 0.25
    p_spatial: float = 0.25
    # Spatially varying blur: relative spread (std / mean) of sigma across the frame.
    spatial_spread: tuple[float, float] = (0.3, 0.7)
    # Defocus optics: objective NA, emission wavelength, pixel size in the sample plane.
    na: float = 0.5
    wavelength_um: float = 0.52
    pixel_um: float = 0.5
    # Camera: signal units per photoelectron (log-uniform range; 2,000-20,000 e- at full scale, a 16-bit
    # sCMOS exposed for fixed tissue), read noise (e- rms),
    # dark offset (fraction of the ADC range), ADC bit depth.
    gain: tuple[float, float] = (1 / 20000, 1 / 2000)
    read_noise: float = 2.0
    offset: float = 100 / 65535
    bit_depth: int = 16
    # Photobleaching: the whole frame dimmed by a factor drawn uniformly from this range.
    photobleach: tuple[float, float] = (0.6, 1.0)

    def __post_init__(self):
        if not self.sigmas or self.sigmas[0] != 0.0:
            raise ValueError(f"sigmas must start with 0.0 (level 0 is in focus), got {self.sigmas}")
        if any(b <= a for a, b in zip(self.sigmas, self.sigmas[1:], strict=False)):
            raise ValueError(f"sigmas must increase strictly, got {self.sigmas}")
        if not 0 <= self.p_defocus + self.p_spatial <= 1:
            raise ValueError("p_defocus + p_spatial must lie in [0, 1]")


@dataclass
class Degraded:
    image: np.ndarray        # float32 HxW on the sharp image's scale, noise and quantization applied
    blur_level: int          # the label: index into DegradeConfig.sigmas
    severity: float          # Gaussian-equivalent sigma in pixels (frame mean for "spatial")
    blur_map: np.ndarray     # float32 [H//32, W//32], per-tile severity in level units
    kind: str                # "gaussian" | "defocus" | "spatial" (always "gaussian" at level 0)
    adu: np.ndarray = field(repr=False)  # the raw sensor counts (uint8/uint16) behind `image`
    photobleach: float = 1.0
    gain: float = 0.0
    # The kernel that blurred the whole frame (gaussian, defocus; what a non-blind deconvolution is given);
    # None in focus and for spatially varying blur, which no single kernel describes.
    psf: np.ndarray | None = field(default=None, repr=False)

    def reference(self, sharp: np.ndarray) -> np.ndarray:
        """The in-focus frame at this frame's exposure, noise-free: `photobleach * sharp`. The deblurring
        target; dimming is part of the recording, not of the blur, and no network can undo an unknown one."""
        return np.asarray(sharp, np.float32) * np.float32(self.photobleach)


def blur_level_count(cfg: DegradeConfig = DegradeConfig()) -> int:
    return len(cfg.sigmas)


def sigma_to_level(sigma, cfg: DegradeConfig = DegradeConfig()):
    """Continuous level (level units) of a sigma: piecewise linear through the level sigmas."""
    grid = np.asarray(cfg.sigmas, np.float32)
    levels = np.arange(len(grid), dtype=np.float32)
    slope = levels[-1] - levels[-2]
    beyond = levels[-1] + (np.asarray(sigma, np.float32) - grid[-1]) / (grid[-1] - grid[-2]) * slope
    return np.where(np.asarray(sigma) > grid[-1], beyond, np.interp(sigma, grid, levels)).astype(np.float32)


def level_psf(kind: str, level: int, cfg: DegradeConfig = DegradeConfig()) -> np.ndarray:
    """The PSF of `kind` ("gaussian" or "defocus") at blur level `level` > 0's own sigma, without the
    per-image jitter: what a method that knows the kind and the level, but not the frame's exact blur,
    would deconvolve with."""
    if not 0 < level < blur_level_count(cfg):
        raise ValueError(f"blur level {level} has no PSF (expected 1..{blur_level_count(cfg) - 1})")
    sigma = cfg.sigmas[level]
    if kind == "gaussian":
        return blur.gaussian_psf(sigma)
    if kind == "defocus":
        return blur.defocus_kernel(sigma, na=cfg.na, wavelength_um=cfg.wavelength_um, pixel_um=cfg.pixel_um)
    raise ValueError(f"blur kind {kind!r} has no single PSF (expected gaussian or defocus)")


def degrade(sharp: np.ndarray, rng: np.random.Generator, cfg: DegradeConfig = DegradeConfig(),
            level: int | None = None, kind: str | None = None) -> Degraded:
    """Blur, dim and record `sharp` (float32 HxW in [0, 1]); random level and kind unless given."""
    sharp = np.asarray(sharp, np.float32)
    if sharp.ndim != 2:
        raise ValueError(f"degrade expects a 2-D image, got shape {sharp.shape}")
    levels = blur_level_count(cfg)
    if level is None:
        level = int(rng.integers(levels))
    if not 0 <= level < levels:
        raise ValueError(f"blur level {level} is outside 0..{levels - 1}")
    if kind is None:
        kind = str(rng.choice(KINDS, p=[1 - cfg.p_defocus - cfg.p_spatial, cfg.p_defocus, cfg.p_spatial]))
    if kind not in KINDS:
        raise ValueError(f"unknown blur kind {kind!r} (expected one of {', '.join(KINDS)})")

    sigma = cfg.sigmas[level] * (1 + rng.uniform(-cfg.sigma_jitter, cfg.sigma_jitter))
    tiles = (max(sharp.shape[0] // TILE, 1), max(sharp.shape[1] // TILE, 1))
    psf = None
    if level == 0:  # in focus: no blur of any kind (the kind drawn above still consumes its random draw)
        kind, blurred, severity = "gaussian", sharp, 0.0
        blur_map = np.zeros(tiles, np.float32)
    elif kind == "gaussian":
        blurred, severity, psf = blur.gaussian_blur(sharp, sigma), sigma, blur.gaussian_psf(sigma)
        blur_map = np.full(tiles, sigma_to_level(sigma, cfg), np.float32)
    elif kind == "defocus":
        blurred, psf = blur.defocus_blur(sharp, sigma, na=cfg.na, wavelength_um=cfg.wavelength_um,
                                         pixel_um=cfg.pixel_um)
        severity = blur.ee50_sigma(psf)
        blur_map = np.full(tiles, sigma_to_level(severity, cfg), np.float32)
    else:
        blurred, severity, blur_map = _spatial(sharp, sigma, rng, cfg, tiles)

    dim = float(rng.uniform(*cfg.photobleach))
    gain = float(np.exp(rng.uniform(np.log(cfg.gain[0]), np.log(cfg.gain[1]))))
    adu = noise.camera_adu(blurred * np.float32(dim), rng, gain=gain, read_noise=cfg.read_noise,
                           offset=cfg.offset, bit_depth=cfg.bit_depth)
    image = noise.adu_to_signal(adu, offset=cfg.offset, bit_depth=cfg.bit_depth)
    return Degraded(image=image, blur_level=level, severity=float(severity), blur_map=blur_map, kind=kind,
                    adu=adu, photobleach=dim, gain=gain, psf=psf)


def _spatial(sharp, sigma, rng, cfg, tiles):
    """Focus error varying across the frame: sigma_map = sigma * (1 + spread * field), mean kept at sigma."""
    spread = rng.uniform(*cfg.spatial_spread)
    sigma_map = np.clip(sigma * (1 + spread * blur.focus_field(sharp.shape, rng)), 0.0, None)
    sigma_map *= np.float32(sigma / max(float(sigma_map.mean()), 1e-6))
    grid = np.linspace(0.0, float(sigma_map.max()) + 1e-3, 9, dtype=np.float32)
    blurred = blur.varying_blur(sharp, sigma_map, grid)
    level_map = sigma_to_level(sigma_map, cfg)
    crop = level_map[:tiles[0] * TILE, :tiles[1] * TILE] if min(sharp.shape) >= TILE else level_map
    blur_map = crop.reshape(tiles[0], crop.shape[0] // tiles[0], tiles[1], crop.shape[1] // tiles[1]).mean(axis=(1, 3))
    return blurred, float(sigma_map.mean()), blur_map.astype(np.float32)
