"""Native postprocessing of model outputs: softmax with temperature, seamless tile blending, inverse
normalization of the deblurred image back to the input's dtype, quality-map upsampling.

Every function takes ``out=`` to write into a caller array (C-contiguous, exact shape and dtype)
instead of allocating, and ``device="cuda"`` to run the CUDA kernel (host arrays in and out).
The formulas are stated in ``csrc/core/postprocess.h``.
"""

from __future__ import annotations

import numpy as np

from ifrt import native

__all__ = ["softmax", "blend_tiles", "denormalize", "upsample_quality_map"]


def _fn(name: str, device: str):
    n = native.load()
    if device == "cpu":
        return getattr(n, name)
    if device == "cuda":
        if not n.has_cuda_kernels():
            raise native.NativeUnavailableError("ifrt was built without CUDA kernels; use device='cpu'")
        return getattr(n, "cuda_" + name)
    raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")


def softmax(logits: np.ndarray, temperature: float = 1.0, *, out: np.ndarray | None = None,
            device: str = "cpu") -> np.ndarray:
    """Class probabilities of [N, K] logits: softmax(logits / temperature) per row (float32)."""
    return _fn("softmax", device)(logits, temperature, out)


def blend_tiles(tiles: np.ndarray, frame_shape: tuple[int, int], overlap: int, shape: tuple[int, int] | None = None,
                *, out: np.ndarray | None = None, device: str = "cpu") -> np.ndarray:
    """Blend [N, 1, h, w] tiles laid out as by ``ifrt.preprocess`` back into the frame, cropped to ``shape``."""
    h, w = shape if shape is not None else (0, 0)
    return _fn("blend_tiles", device)(tiles, frame_shape[0], frame_shape[1], overlap, h, w, out)


def denormalize(y: np.ndarray, lo: float, hi: float, dtype: str | np.dtype = "float32",
                shape: tuple[int, int] | None = None, *, out: np.ndarray | None = None,
                device: str = "cpu") -> np.ndarray:
    """Map a normalized [H, W] image back to input units and ``dtype`` (rounded, clamped), cropped to ``shape``."""
    h, w = shape if shape is not None else (0, 0)
    return _fn("denormalize", device)(y, lo, hi, np.dtype(dtype).name, h, w, out)


def upsample_quality_map(quality_map: np.ndarray, shape: tuple[int, int], *, out: np.ndarray | None = None,
                         device: str = "cpu") -> np.ndarray:
    """Bilinear upsampling of a [h, w] (or [1, 1, h, w]) quality map to ``shape``."""
    return _fn("upsample_quality_map", device)(quality_map, shape[0], shape[1], out)
