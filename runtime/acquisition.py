"""Focus results inside an acquisition: a hook for pycromanager's `Acquisition(image_process_fn=...)`.

    from pycromanager import Acquisition, multi_d_acquisition_events
    hook = ifrt.acquisition.focus_hook(ifrt.Session(), sweep=True)
    with Acquisition(directory="data", name="biopsy", image_process_fn=hook) as acq:
        acq.acquire(multi_d_acquisition_events(z_start=-5, z_end=5, z_step=0.5))
    hook.best()          # the best-focused image of the Z stack (see ifrt.live.SweepTracker)

pycromanager calls `hook(image, metadata)` for each image and saves/displays what it returns; the hook
adds the focus results to `metadata` under keys starting with `ifrt_` and returns `(image, metadata)`
with the pixels untouched. It never raises: an image it cannot analyse (or anything other than a numpy array)
gets `ifrt_error` with the reason and goes on to be saved. A colour image is analysed as its per-pixel maximum
over the colour channels, as `ifrt live` analyses one (or its `channel=`). pycromanager itself is not needed (nor imported) here; any acquisition software
that passes a numpy image and a dict can use the hook.

Metadata keys (prefix configurable): `ifrt_quality` (0..1, 1 = in focus), `ifrt_blur_level`,
`ifrt_blur_probabilities`, `ifrt_certainty` (mean over tiles), one `ifrt_<metric>` per classical focus
metric (`ifrt_var_laplacian`, `ifrt_tenengrad`, `ifrt_brenner`, `ifrt_normalized_variance`,
`ifrt_vollath_f4`), `ifrt_latency_ms`, `ifrt_backend`; with `maps=True` also `ifrt_quality_map` and
`ifrt_certainty_map` (nested lists, one value per 32x32 tile of the downsampled frame); with `sweep=True`
`ifrt_sweep_best` (this image is the best of its stack so far) and `ifrt_sweep_best_image` (the best so far,
None while no image of the stack has structure). An image with no structure above its pixel noise (an empty
field, a closed shutter) gets `ifrt_warnings` saying its quality means nothing, and never wins a sweep.
Values are plain Python numbers, strings and lists, so every metadata writer can serialize them.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np

from ifrt.live import DEFAULT_SWEEP_METRIC, DEFAULT_SWEEP_TOLERANCE, SweepTracker, single_channel
from ifrt.result import rounded_map

log = logging.getLogger("ifrt")

# pycromanager's metadata: 'Axes' holds the acquisition event's axes ({'z': 3, 'time': 0, ...}).
AXES_KEY = "Axes"
Z_AXIS = "z"
Z_POSITION_KEYS = ("ZPosition_um_Intended", "ZPosition_um")


def _axes(metadata: dict) -> dict:
    axes = metadata.get(AXES_KEY) if isinstance(metadata, dict) else None
    return axes if isinstance(axes, dict) else {}


class FocusHook:
    """`image_process_fn(image, metadata) -> (image, metadata)`; build it with `focus_hook`.

    With `sweep`, one `SweepTracker` per stack: images that share every axis but `z` (same time point,
    position, channel) belong to one stack. `best()` gives the best image of a stack."""

    def __init__(self, session, *, size: int = 512, channel: int | None = None, metric_tile: int | None = 256,
                 prefix: str = "ifrt_", maps: bool = False, sweep: bool = False,
                 sweep_tolerance: float = DEFAULT_SWEEP_TOLERANCE, sweep_metric: str = DEFAULT_SWEEP_METRIC):
        self.session, self.size, self.channel, self.metric_tile = session, size, channel, metric_tile
        self.prefix, self.maps = prefix, maps
        self.sweep, self.sweep_tolerance, self.sweep_metric = sweep, sweep_tolerance, sweep_metric
        if sweep:
            SweepTracker(sweep_tolerance, sweep_metric)  # refuses a tolerance now, not in the acquisition
        self.stacks: dict[tuple, SweepTracker] = {}
        self.images = 0  # analysed
        self.errors = 0  # could not be analysed (metadata has ifrt_error)
        # Acquisition software may call the hook from several threads: the counters and the sweeps change
        # under this lock; the analysis itself runs outside it, in parallel.
        self._lock = threading.Lock()
        self._calls = 0

    def _count(self, counter: str) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def __call__(self, image, metadata):
        start = time.perf_counter()
        with self._lock:
            index = self._calls
            self._calls += 1
        if not isinstance(metadata, dict):
            log.warning("ifrt focus hook: metadata is %s, not a dict; image passed through unanalysed",
                        type(metadata).__name__)
            self._count("errors")
            return image, metadata
        try:
            if not isinstance(image, np.ndarray):
                # Converted, a path would be a 0-d array of text, refused as "shape ()": say what came instead.
                what = f"the path {image!r}" if isinstance(image, (str, bytes, os.PathLike)) else \
                    f"a {type(image).__name__}"
                raise TypeError(f"got {what}, not an image (a numpy array); the hook analyses the pixels the "
                                "acquisition passes (a file: read it with ifrt.imageio.read_image)")
            # A colour frame is reduced as ifrt live reduces it: `channel`, or the per-pixel maximum.
            result = self.session.focus(single_channel(image, self.channel), size=self.size,
                                        metric_tile=self.metric_tile)
        except Exception as exc:  # noqa: BLE001 - the acquisition must go on whatever ifrt thinks of a frame
            self._count("errors")
            reason = str(exc).removeprefix("frame: ")
            metadata[f"{self.prefix}error"] = reason
            log.warning("ifrt focus hook: %s: %s", self._label(metadata, index), reason)
            return image, metadata
        self._count("images")
        p = self.prefix
        metadata[f"{p}quality"] = float(result.quality)
        metadata[f"{p}blur_level"] = int(result.blur_level)
        metadata[f"{p}blur_probabilities"] = [round(float(v), 6) for v in result.blur_probabilities]
        metadata[f"{p}certainty"] = float(np.mean(result.certainty))
        for name, value in result.metrics.items():
            metadata[f"{p}{name}"] = float(value)
        if self.maps:
            metadata[f"{p}quality_map"] = rounded_map(result.quality_map)
            metadata[f"{p}certainty_map"] = rounded_map(result.certainty)
        if result.warnings:
            metadata[f"{p}warnings"] = list(result.warnings)
        if self.sweep:
            z_um = self._z_position(metadata)
            extra = {"z_um": z_um} if z_um is not None else {}
            with self._lock:
                tracker = self.stacks.setdefault(self._stack(metadata),
                                                 SweepTracker(self.sweep_tolerance, self.sweep_metric))
                is_best = tracker.offer(index, self._label(metadata, index), result, **extra)
                best = tracker.best()
            metadata[f"{p}sweep_best"] = bool(is_best)
            metadata[f"{p}sweep_best_image"] = best["label"] if best else None
        metadata[f"{p}backend"] = str(self.session.backend_name)
        metadata[f"{p}latency_ms"] = round((time.perf_counter() - start) * 1e3, 3)
        return image, metadata

    def best(self, **axes) -> dict | None:
        """The best image of the stack with these axes (all but z; none needed for a single stack):
        label, quality, classical metric, z position when known, and what decided."""
        with self._lock:
            if not self.stacks:
                return None
            if not axes and len(self.stacks) == 1:
                return next(iter(self.stacks.values())).best()
            tracker = self.stacks.get(tuple(sorted((k, str(v)) for k, v in axes.items())))
            return tracker.best() if tracker is not None else None

    @staticmethod
    def _stack(metadata: dict) -> tuple:
        return tuple(sorted((k, str(v)) for k, v in _axes(metadata).items() if k != Z_AXIS))

    @staticmethod
    def _label(metadata: dict, index: int) -> str:
        axes = _axes(metadata)
        if axes:
            return ", ".join(f"{k}={v}" for k, v in sorted(axes.items(), key=lambda kv: kv[0] != Z_AXIS))
        return f"image {index}"

    @staticmethod
    def _z_position(metadata: dict) -> float | None:
        for key in Z_POSITION_KEYS:
            value = metadata.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        return None


def focus_hook(session, **options) -> FocusHook:
    """A pycromanager `image_process_fn` adding ifrt focus results to each image's metadata.

    session: an `ifrt.Session`. Options: `size` (focus graph input side, 512), `channel` (of a colour image;
    default the per-pixel maximum of its colour channels, as `ifrt live` takes), `metric_tile`,
    `prefix` ("ifrt_"), `maps` (add the per-tile maps), `sweep` (track the best-focused image of each
    Z stack), `sweep_tolerance`, `sweep_metric` (see `ifrt.live.SweepTracker`)."""
    return FocusHook(session, **options)
