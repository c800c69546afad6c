"""Classical focus metrics, for the whole image and per tile, computed natively in one pass.

The metrics (definitions in ``csrc/core/focus.h``) are what autofocus users know and the baseline
for the learned image-quality head: variance of the Laplacian, Tenengrad (Sobel energy), Brenner,
normalized variance and Vollath F4. Larger means sharper for all of them.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ifrt import native

__all__ = ["METRICS", "FocusReport", "focus", "focus_into"]

METRICS = ("var_laplacian", "tenengrad", "brenner", "normalized_variance", "vollath_f4")


@dataclass
class FocusReport:
    metrics: dict[str, float]  # global values by name
    tiles: np.ndarray  # [tiles_y, tiles_x, 5] float64, metrics in METRICS order

    def tile_map(self, name: str) -> np.ndarray:
        """One metric per tile, [tiles_y, tiles_x]."""
        return self.tiles[..., METRICS.index(name)]


def _tile_args(tile: int | tuple[int, int] | None) -> tuple[int, int]:
    if tile is None:
        return 0, 0
    if isinstance(tile, numbers.Integral):
        return int(tile), int(tile)
    return int(tile[0]), int(tile[1])


def focus(image: np.ndarray, tile: int | tuple[int, int] | None = None, channel: int = 0,
          device: str = "cpu") -> FocusReport:
    """Focus metrics of ``image`` (uint8, uint16 or float32; H x W or H x W x C)."""
    n = native.load()
    th, tw = _tile_args(tile)
    if device == "cpu":
        metrics, tiles = n.focus(image, channel, th, tw)
    elif device == "cuda":
        if not n.has_cuda_kernels():
            raise native.NativeUnavailableError("ifrt was built without CUDA kernels; use device='cpu'")
        metrics, tiles = n.cuda_focus(image, channel, th, tw)
    else:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return FocusReport(metrics, tiles)


def focus_into(image: np.ndarray, out: np.ndarray, tile: int | tuple[int, int] | None = None,
               channel: int = 0) -> dict[str, float]:
    """Per-tile metrics into ``out`` (float64 [tiles_y, tiles_x, 5]); returns the global metrics."""
    th, tw = _tile_args(tile)
    return native.load().focus_into(image, out, channel, th, tw)
