"""Draw one stain's image of one glomerulus: autofluorescence + deposits, lit and exposed like a microscope.

    image = exposure * illumination * (autofluorescence + sum_p weight_p * grade/3 * pattern_p) + stray
Autofluorescence is what every stain shows, positive or not: tubular epithelium (lipofuscin granules),
faint glomerular matrix, elastic laminae of arterioles. `exposure` maps the image's brightest structure
to a random fraction of full scale, as auto-exposure does, so a negative stain shows bright tubular
autofluorescence and absolute intensity alone says little about the diagnosis.
"""

from __future__ import annotations

import cv2
import numpy as np

from ifrt.train.data.anatomy import Anatomy, smooth_noise
from ifrt.train.data.pathology import Finding


def _granules(rng: np.random.Generator, density: np.ndarray, count: int, sigma: float,
              amplitude: float, spread: float = 0.4) -> np.ndarray:
    """`count` Gaussian granules of width `sigma` placed with probability proportional to `density`."""
    cdf = np.cumsum(density, dtype=np.float64, axis=None)
    if count <= 0 or cdf[-1] <= 0:
        return np.zeros_like(density)
    index = np.searchsorted(cdf, rng.random(count) * cdf[-1], side="right").clip(0, density.size - 1)
    heights = amplitude * rng.lognormal(0.0, spread, count)
    canvas = np.bincount(index, weights=heights, minlength=density.size).astype(np.float32)
    # Scaled so that an isolated granule peaks at its height.
    blurred = cv2.GaussianBlur(canvas.reshape(density.shape), (0, 0), sigma)
    return blurred * np.float32(2 * np.pi * sigma ** 2)


def _segments(rng: np.random.Generator, anatomy: Anatomy, involved: float) -> np.ndarray:
    """Mask of the tuft involved by deposits: everything, or smooth patches covering about `involved`."""
    if involved >= 1.0:
        return np.ones_like(anatomy.tuft)
    field = smooth_noise(rng, anatomy.size, 4)
    threshold = np.quantile(field[anatomy.tuft > 0.5], 1 - involved) if (anatomy.tuft > 0.5).any() else 0.0
    return np.clip((field - threshold) * 1.5 + 0.5, 0, 1).astype(np.float32)  # soft edges: lesions fade out


def deposits(rng: np.random.Generator, anatomy: Anatomy, finding: Finding) -> np.ndarray:
    """Specific staining of one finding, in units of a 3+ deposit (before exposure)."""
    u = anatomy.scale
    out = np.zeros_like(anatomy.tuft)
    amplitude = finding.grade / 3.0
    involved = _segments(rng, anatomy, finding.segmental)
    area = float(anatomy.tuft.sum()) / u ** 2  # tuft area in pixels-at-512

    for pattern, weight in finding.patterns.items():
        a = amplitude * weight
        if pattern == "insudative":
            a = max(a, finding.trapping / 3.0 * weight)
        if a <= 0:
            continue
        if pattern == "mesangial":
            density = anatomy.mesangium * involved
            fine = _granules(rng, density, int(area * rng.uniform(0.008, 0.03)), rng.uniform(0.9, 1.6) * u, a)
            n_clumps = int(area * rng.uniform(0.001, 0.006) * (0.3 + finding.clumpy))
            clumps = _granules(rng, cv2.GaussianBlur(density, (0, 0), 2 * u), n_clumps,
                               rng.uniform(2.0, 3.5) * u, a * 0.9)
            haze = cv2.GaussianBlur(density, (0, 0), 1.5 * u) * np.float32(a * rng.uniform(0.15, 0.4))
            out += fine + clumps + haze
        elif pattern == "capillary":
            density = anatomy.wall * involved
            count = int(float(density.sum()) / u ** 2 * rng.uniform(0.15, 0.4))
            beads = _granules(rng, density, count, rng.uniform(0.7, 1.1) * u, a * 0.7, spread=0.3)
            out += beads + density * np.float32(a * rng.uniform(0.15, 0.35))
        elif pattern == "linear":
            continuity = np.clip(1 + 0.2 * smooth_noise(rng, anatomy.size, 24), 0.5, 1.5)
            membranes = (anatomy.wall * involved + rng.uniform(0.3, 0.7) * anatomy.capsule
                         + rng.uniform(0.1, 0.45) * anatomy.tbm)
            out += cv2.GaussianBlur(membranes * continuity, (0, 0), 0.6 * u) * np.float32(a)
        elif pattern == "wireloop":
            for loops in anatomy.loop_walls:
                thick = cv2.GaussianBlur(loops * involved, (0, 0), 1.4 * u)
                out += np.clip(thick * 3.5, 0, 1) * np.float32(a * rng.uniform(0.8, 1.2))
        elif pattern == "tubular":
            density = anatomy.tbm + anatomy.vessel
            count = int(float(density.sum()) / u ** 2 * rng.uniform(0.02, 0.08))
            out += _granules(rng, density, count, rng.uniform(0.9, 1.5) * u, a * 0.8)
        elif pattern == "insudative":
            # Smudgy, uneven staining of hyaline nodules and scars, brightest at their rims.
            smudge = np.maximum(anatomy.sclerosis, anatomy.nodules)
            rim = np.clip(smudge - cv2.GaussianBlur(smudge, (0, 0), 4.0 * u), 0, 1)
            texture = np.clip(1 + 0.25 * smooth_noise(rng, anatomy.size, 96), 0.5, 1.5)
            stained = (0.7 * smudge + 0.8 * rim) * texture
            out += cv2.GaussianBlur(stained, (0, 0), 1.5 * u) * np.float32(a * rng.uniform(0.25, 0.6))
        elif pattern == "vascular":
            out += cv2.GaussianBlur(anatomy.vessel, (0, 0), 1.0 * u) * np.float32(a * rng.uniform(0.6, 1.0))
    return out


def autofluorescence(rng: np.random.Generator, anatomy: Anatomy) -> np.ndarray:
    """Stain-independent tissue autofluorescence, relative to a 3+ deposit."""
    u = anatomy.scale
    grain = cv2.GaussianBlur(rng.standard_normal(anatomy.tuft.shape).astype(np.float32), (0, 0), 1.2 * u)
    grain /= grain.std() + 1e-6
    tubular = anatomy.epithelium * np.float32(rng.uniform(0.05, 0.16)) * np.clip(0.75 + 0.3 * grain, 0.2, 2.0)
    # Lipofuscin: sparse bright granules in the tubular cytoplasm.
    count = int(float(anatomy.epithelium.sum()) / u ** 2 * rng.uniform(0.002, 0.01))
    tubular += _granules(rng, anatomy.epithelium, count, 0.9 * u, float(rng.uniform(0.05, 0.2)))
    glomerular = (0.5 * anatomy.wall + 0.6 * anatomy.mesangium + 0.4 * anatomy.sclerosis) * np.float32(rng.uniform(0.02, 0.06))
    membranes = (anatomy.capsule + anatomy.tbm) * np.float32(rng.uniform(0.02, 0.05))
    elastic = anatomy.vessel * np.float32(rng.uniform(0.05, 0.15))
    stroma = np.float32(rng.uniform(0.01, 0.03))
    return tubular + glomerular + membranes + elastic + stroma


def illumination(rng: np.random.Generator, size: int) -> np.ndarray:
    """Uneven widefield illumination: an off-centre vignette times a gentle smooth ripple."""
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) - size / 2) / size
    cy, cx = rng.uniform(-0.2, 0.2, 2)
    vignette = 1 - rng.uniform(0.15, 0.45) * ((yy - cy) ** 2 + (xx - cx) ** 2) / 0.5
    return (vignette * (1 + rng.uniform(0.0, 0.06) * smooth_noise(rng, size, 3))).astype(np.float32)


def tissue_edge(rng: np.random.Generator, anatomy: Anatomy) -> np.ndarray:
    """Mostly ones; in some sections the biopsy's edge crosses a corner of the frame (no tissue there)."""
    size = anatomy.size
    if rng.random() >= 0.2:
        return np.ones_like(anatomy.tuft)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) - size / 2)
    distance = xx * np.cos(angle) + yy * np.sin(angle) - rng.uniform(0.3, 0.45) * size
    mask = np.clip(0.5 - distance / (4 * anatomy.scale), 0, 1)
    return np.maximum(mask, anatomy.tuft).astype(np.float32)


def expose(rng: np.random.Generator, anatomy: Anatomy, specific: np.ndarray) -> np.ndarray:
    """Compose autofluorescence and deposits, light them, and auto-expose into [0, 1]."""
    tissue = (autofluorescence(rng, anatomy) + specific) * tissue_edge(rng, anatomy)
    lit = tissue * illumination(rng, anatomy.size)
    bright = float(np.percentile(lit[::4, ::4], 99.9)) + 1e-6
    exposure = rng.uniform(0.3, 0.85) / bright
    stray = rng.uniform(0.003, 0.015)
    return np.clip(lit * np.float32(exposure) + np.float32(stray), 0.0, 1.0).astype(np.float32)
