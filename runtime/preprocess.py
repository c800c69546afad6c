"""Native preprocessing: camera frame -> model input tensor [N, 1, h, w] (float32 or float16).

One call does channel pick, optional dark-frame and flat-field correction, normalization (see
``ifrt.normalize`` for the exact math the native code reproduces), optional resize, padding to a
multiple of 32 and optional tiling with overlap. The work runs in the C++ core (``ifrt._native``)
with the GIL released; ``device="cuda"`` runs the CUDA kernels instead (host arrays in and out).
``preprocess_tensor`` takes framework tensors (torch, CuPy, JAX, numpy: anything with ``__dlpack__``) in
and out without copies; CUDA tensors run asynchronously on the caller's stream.

Option reference (``PreprocessOptions``):

- ``channel``: channel picked from an H x W x C image.
- ``dark``, ``flat``: float arrays of the image's H x W; corrected = (raw - dark) / flat
  (flat is the illumination gain, normalized to mean 1).
- ``norm``: ``"percentile"`` (``p_low``..``p_high``, default 1 and 99.8), ``"minmax"``, or
  ``"fixed"`` (``lo``, ``hi``). Percentiles are computed on the corrected, full-size image.
- ``size``: (height, width) to resize to with ``resize`` = ``"bilinear"`` or ``"area"``.
- ``pad_multiple`` (32) and ``pad`` (``"reflect"``, ``"edge"``, ``"zero"``): bottom/right padding.
- ``tile``: (height, width) of tiles cut from the padded frame with ``overlap`` pixels shared by
  neighbours; the last tile on each axis ends at the frame edge. ``None`` gives one tile.
- ``dtype``: ``"float32"`` or ``"float16"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from ifrt import native
from ifrt.normalize import DEFAULT_P_HIGH, DEFAULT_P_LOW

__all__ = ["PreprocessOptions", "Preprocessed", "last_range", "percentile_range", "plan", "preprocess", "preprocess_into",
           "preprocess_tensor"]


@dataclass(frozen=True)
class PreprocessOptions:
    channel: int = 0
    dark: np.ndarray | None = field(default=None, repr=False)
    flat: np.ndarray | None = field(default=None, repr=False)
    norm: str = "percentile"
    p_low: float = DEFAULT_P_LOW
    p_high: float = DEFAULT_P_HIGH
    lo: float | None = None
    hi: float | None = None
    size: tuple[int, int] | None = None
    resize: str = "none"
    pad_multiple: int = 32
    pad: str = "reflect"
    tile: tuple[int, int] | None = None
    overlap: int = 0
    dtype: str = "float32"

    def to_native(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}  # no deep copy of dark/flat
        size, tile = d.pop("size"), d.pop("tile")
        if size is not None:
            d["out_height"], d["out_width"] = int(size[0]), int(size[1])
            if d["resize"] == "none":
                d["resize"] = "bilinear"
        if tile is not None:
            d["tile_height"], d["tile_width"] = int(tile[0]), int(tile[1])
        return {k: v for k, v in d.items() if v is not None}


@dataclass
class Preprocessed:
    """The model input and what is needed to map outputs back."""

    tensor: np.ndarray  # [N, 1, h, w]
    lo: float  # normalization range used (input units)
    hi: float
    plan: dict  # geometry: resized_*, frame_*, tile_*, tiles_y, tiles_x, overlap


def _options(options: PreprocessOptions | None, overrides: dict) -> PreprocessOptions:
    base = options or PreprocessOptions()
    return replace(base, **overrides) if overrides else base


def plan(image: np.ndarray, options: PreprocessOptions | None = None, **overrides) -> dict:
    """Output geometry (shape and tiles) for ``image`` without computing anything."""
    return native.load().preprocess_plan(image, _options(options, overrides).to_native())


def preprocess(image: np.ndarray, options: PreprocessOptions | None = None, *, device: str = "cpu",
               **overrides) -> Preprocessed:
    """Preprocess ``image``; keyword overrides replace fields of ``options``."""
    n = native.load()
    opts = _options(options, overrides).to_native()
    if device == "cpu":
        tensor, lo, hi = n.preprocess(image, opts)
    elif device == "cuda":
        if not n.has_cuda_kernels():
            raise native.NativeUnavailableError("ifrt was built without CUDA kernels; use device='cpu'")
        tensor, lo, hi = n.cuda_preprocess(image, opts)
    else:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return Preprocessed(tensor, lo, hi, n.preprocess_plan(image, opts))


def preprocess_into(image: np.ndarray, out: np.ndarray, options: PreprocessOptions | None = None,
                    **overrides) -> tuple[float, float]:
    """Preprocess into ``out`` (C-contiguous, shape ``plan(...)["shape"]``); returns (lo, hi)."""
    _, lo, hi = native.load().preprocess_into(image, out, _options(options, overrides).to_native())
    return lo, hi


def preprocess_tensor(image, out, options: PreprocessOptions | None = None, *, stream: int | None = None,
                      **overrides) -> tuple[float, float] | None:
    """Preprocess the DLPack tensor ``image`` into the DLPack tensor ``out`` in place (shape ``plan(...)["shape"]``,
    float32 or float16 as ``dtype`` says), without copies where the layout allows.

    Host tensors: returns (lo, hi); ``stream`` must be None. CUDA tensors (both on the current device): the
    kernels are enqueued on ``stream`` and None is returned; ``last_range(stream)`` waits and gives (lo, hi).
    ``stream`` is DLPack's consumer stream: None or 1 the legacy default stream, 2 the per-thread default
    stream, else a ``cudaStream_t`` (``torch.cuda.current_stream().cuda_stream``, which is 0 on torch's
    default stream: pass 1 there; 0 is refused). The tensors stay referenced until the stream has passed the
    kernels; under a CUDA graph capture, keep them alive as long as the graph."""
    return native.load().preprocess_dlpack(image, out, _options(options, overrides).to_native(), stream)


def last_range(stream: int | None = None) -> tuple[float, float]:
    """Wait for ``stream`` and return the (lo, hi) normalization range of its last CUDA ``preprocess_tensor``."""
    n = native.load()
    if not n.has_cuda_kernels():
        raise native.NativeUnavailableError("ifrt was built without CUDA kernels: only CUDA tensors have a "
                                            "range left on a stream; a host tensor's preprocess_tensor returns it")
    return n.cuda_last_range(stream)


def percentile_range(image: np.ndarray, p_low: float = DEFAULT_P_LOW, p_high: float = DEFAULT_P_HIGH,
                     channel: int = 0) -> tuple[float, float]:
    """Native equivalent of ``ifrt.normalize.percentile_range`` (exact; histogram for integers)."""
    return native.load().percentile_range(image, p_low, p_high, channel)
