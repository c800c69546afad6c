"""Images the export checks run on (FP16 range, parity, INT8 calibration): from a folder or a dataset
manifest, or, without one, deterministic synthetic glomeruli with their sharp references."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ifrt.imageio import read_image
from ifrt.normalize import apply_range, normalize_percentile, percentile_range
from ifrt.sources import expand_sources


@dataclass
class CalibrationSet:
    images: np.ndarray  # [N,1,S,S] float32, normalized as the model expects
    sharp: np.ndarray | None  # matching in-focus references when known, same layout
    source: str


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    """Center-crop to a square and resize to size x size (area interpolation), then normalize."""
    h, w = image.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = np.ascontiguousarray(image[top:top + side, left:left + side]).astype(np.float32)
    resized = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA) if side != size else square
    return normalize_percentile(resized)


def from_files(source: str | Path, count: int, size: int) -> CalibrationSet:
    """Up to `count` images from a folder (recursively, sorted), a dataset's manifest.csv, or one image file."""
    source = Path(source)
    if source.is_file() and source.name == "manifest.csv" or (source / "manifest.csv").is_file():
        from ifrt.train.data.manifest import read_manifest

        manifest = source if source.is_file() else source / "manifest.csv"
        paths = [manifest.parent / row.path for row in read_manifest(manifest)]
    elif source.exists():
        paths = expand_sources([str(source)], recursive=True)
    else:
        raise FileNotFoundError(f"{source}: calibration source not found (expected a folder of images, a "
                                "dataset with manifest.csv or an image file)")
    if not paths:
        raise ValueError(f"{source}: no images found for calibration")
    step = max(len(paths) // count, 1)
    chosen = paths[::step][:count]
    images = np.stack([_fit(read_image(p), size) for p in chosen])[:, None]
    return CalibrationSet(images=images, sharp=None, source=str(source))


def synthetic(count: int, size: int, seed: int = 0) -> CalibrationSet:
    """Synthetic glomeruli over every class and blur level, each with its sharp reference."""
    from ifrt.train.data.degrade import DegradeConfig, blur_level_count, degrade
    from ifrt.train.data.synth import render_glomerulus

    rng = np.random.default_rng(seed)
    classes, stains = ("IgAN", "MN", "DN", "LN"), ("IgA", "IgG", "C3", "C1q")
    cfg = DegradeConfig()
    levels = blur_level_count(cfg)
    images, sharps = [], []
    for i in range(count):
        sharp = render_glomerulus(rng, classes[i % len(classes)], stains[(i // len(classes)) % len(stains)], size)
        degraded = degrade(sharp, rng, cfg, level=i % levels, kind="gaussian")
        # Input and reference share the input's affine map, so the deblurred output compares with the sharp image.
        lo, hi = percentile_range(degraded.image)
        images.append(apply_range(degraded.image, lo, hi))
        sharps.append(apply_range(sharp, lo, hi))
    return CalibrationSet(images=np.stack(images)[:, None], sharp=np.stack(sharps)[:, None],
                          source=f"synthetic (seed {seed})")
