"""The live loop: `FrameQueue` hands frames from the reader thread to `run_live`, which checks each frame,
runs the focus path and emits one record per frame or event, with end-to-end latency and the best frame of a
Z sweep (`SweepTracker`)."""

from __future__ import annotations

import collections
import json
import math
import queue
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ifrt.live.sources import SUPPORTED_DTYPES, Frame, FrameSource, Notice, SourceLost
from ifrt.result import quality_text

# Normalized variance ranked best overall among classical autofocus functions for microscopy
# (Sun, Duthaler & Nelson 2004); it also ignores the exposure level, which changes along a sweep.
DEFAULT_SWEEP_METRIC = "normalized_variance"
DEFAULT_SWEEP_TOLERANCE = 0.02


def open_session(model=None, backend: str = "auto", *, threads: int = 1):
    """A `Session` for the live loop, with the backend chosen as `Session(model, backend)` chooses it (`auto`:
    the first backend that can load this model). When that is onnxruntime it gets `threads` inference threads
    (0: one per core). One is the default because the loop's other stages, native preprocessing and focus
    metrics, already use every core, and onnxruntime's idle worker threads spin between runs, taking CPU
    from those stages: with two threads on two cores a 2048x2048 frame cost 43 ms of CPU instead of 25."""
    from ifrt.session import Session

    return Session(model, backend=backend, per_backend={"ort": {"threads": threads or None}})




class FrameQueue:
    """Bounded hand-over from the reader thread to the inference loop.

    drop=True (latest frame wins): `put` on a full queue discards the oldest waiting frame and counts it
    in `dropped`. drop=False: `put` waits for room. Notices are never dropped for frames; they have their
    own bound (`max_notices`), beyond which the oldest is discarded and counted in `notices_dropped`."""

    def __init__(self, capacity: int = 1, *, drop: bool = True, max_notices: int = 256):
        if capacity < 1:
            raise ValueError(f"queue capacity must be at least 1, got {capacity}")
        self.capacity, self.drop = capacity, drop
        self._frames: collections.deque[Frame] = collections.deque()
        self._notices: collections.deque[Notice] = collections.deque(maxlen=max_notices)
        self._cond = threading.Condition()
        self._closed = False
        self.error: BaseException | None = None  # why the source ended, when it did not end normally
        self.dropped = 0
        self.notices_dropped = 0

    def put(self, item: Frame | Notice, stop: threading.Event | None = None) -> bool:
        """Hand over one item; False when the queue was closed (or `stop` set) while waiting for room."""
        with self._cond:
            if isinstance(item, Notice):
                if len(self._notices) == self._notices.maxlen:
                    self.notices_dropped += 1
                self._notices.append(item)
                self._cond.notify_all()
                return not self._closed
            while len(self._frames) >= self.capacity:
                if self._closed or (stop is not None and stop.is_set()):
                    return False
                if self.drop:
                    self._frames.popleft()
                    self.dropped += 1
                    break
                self._cond.wait(0.1)
            self._frames.append(item)
            self._cond.notify_all()
            return True

    def close(self, error: BaseException | None = None) -> None:
        with self._cond:
            self._closed = True
            if error is not None and self.error is None:
                self.error = error
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Frame | Notice | None:
        """The next notice, else the next frame; None once closed and drained; `queue.Empty` on timeout.
        A notice about a frame (a skipped input) waits for the frames read before it, so that events stay in
        stream order; other notices (a reconnection) come first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._notices and not (self._frames and self._notices[0].index is not None
                                          and self._notices[0].index > self._frames[0].index):
                    return self._notices.popleft()
                if self._frames:
                    item = self._frames.popleft()
                    self._cond.notify_all()
                    return item
                if self._closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise queue.Empty
                self._cond.wait(remaining)

    def __len__(self) -> int:
        with self._cond:
            return len(self._frames)


def start_reader(source: FrameSource, frames: FrameQueue, stop: threading.Event) -> threading.Thread:
    """Run `source` in a daemon thread, feeding `frames`; the queue is closed when the source ends, with
    `frames.error` set when it ended by failing."""

    def read() -> None:
        error = None
        try:
            for item in source.frames(stop):
                if not frames.put(item, stop):
                    break
        except SourceLost as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - any reader failure must end the loop with its reason
            error = SourceLost(f"{source.name}: reading failed: {type(exc).__name__}: {exc}")
        finally:
            frames.close(error)

    # A daemon: a camera read blocked in a driver cannot be interrupted and must not keep the process alive.
    thread = threading.Thread(target=read, name="ifrt-live-reader", daemon=True)
    thread.start()
    return thread




class FrameCheck:
    """Is a frame usable in this stream? The first usable frame fixes the stream's size and pixel type
    (unless given); a later frame that differs would make scores incomparable (a changed ROI, binning or
    bit depth), so it is skipped with the reason. `any_size` accepts every size (mixed files)."""

    def __init__(self, shape: tuple[int, int] | None = None, dtype=None, *, any_size: bool = False):
        self.shape = tuple(shape) if shape is not None else None
        self.dtype = np.dtype(dtype) if dtype is not None else None
        self.any_size = any_size

    def problem(self, image: np.ndarray, *, fix: bool = True) -> str | None:
        """None if `image` is usable, else why not (and what to do). With `fix`, a usable first frame fixes the
        stream's size and type at once; `run_live` passes False and calls `accept` once the model has analysed
        the frame, so that a first frame the model refuses (a 1x1 placeholder, NaN pixels) fixes nothing."""
        if not isinstance(image, np.ndarray):
            return f"not an image array ({type(image).__name__})"
        if image.ndim != 2:
            return f"shape {image.shape}: expected a single-channel H x W frame"
        if image.size == 0:
            return f"empty frame (shape {image.shape})"
        if image.dtype not in SUPPORTED_DTYPES:
            return f"{image.dtype} pixels are not supported (expected uint8, uint16 or float32)"
        if self.dtype is not None and image.dtype != self.dtype:
            return (f"{image.dtype.name} pixels, but this stream is {self.dtype.name}; did the camera's bit depth "
                    f"change? Restart ifrt live after changing camera settings")
        height, width = image.shape
        if self.shape is not None and not self.any_size and (height, width) != self.shape:
            return (f"{width}x{height} frame, but this stream is {self.shape[1]}x{self.shape[0]}; did the ROI or "
                    f"binning change? Restart ifrt live after changing camera settings (or use --any-size)")
        if fix:
            self.accept(image)
        return None

    def accept(self, image: np.ndarray) -> None:
        """`image` was analysed: if it is the stream's first, its size and pixel type are now the stream's."""
        if self.shape is None:
            self.shape = (image.shape[0], image.shape[1])
        if self.dtype is None:
            self.dtype = image.dtype


class LatencyRecorder:
    """End-to-end latencies in ms: the last `capacity` kept in a ring (memory stays flat over long runs)."""

    def __init__(self, capacity: int = 65536):
        self._ring = np.zeros(capacity, np.float64)
        self.count = 0

    def add(self, ms: float) -> None:
        self._ring[self.count % len(self._ring)] = ms
        self.count += 1

    def last(self, n: int | None = None) -> np.ndarray:
        """The most recent `n` (default: all kept) latencies, oldest first."""
        kept = min(self.count, len(self._ring))
        n = kept if n is None else min(n, kept)
        end = self.count % len(self._ring)
        idx = (np.arange(end - n, end)) % len(self._ring)
        return self._ring[idx] if kept else self._ring[:0]

    @staticmethod
    def percentiles(values: np.ndarray) -> dict[str, float | None]:
        if len(values) == 0:
            return {"p50": None, "p99": None, "max": None}
        p50, p99 = np.percentile(values, [50, 99])
        return {"p50": round(float(p50), 3), "p99": round(float(p99), 3), "max": round(float(values.max()), 3)}


@dataclass
class SweepTracker:
    """The best-focused frame of a Z sweep, updated frame by frame.

    Rule: among frames whose learned quality is within `tolerance` of the highest quality seen, the one
    with the largest classical `metric` wins; a frame alone in that band wins on quality. The learned score
    says which frames are in focus regardless of content; near the optimum it saturates (frames one or two
    Z steps apart score alike), and the classical metric, monotonic in sharpness for the same field, orders
    them. Only frames that can still win are kept: a frame with no more quality and no larger metric than an
    earlier one in the band leaves the band no later than it and never beats it. So memory does not grow
    with the sweep, nor when a field left in focus ties frame after frame for hours (what stays is bounded by
    the distinct qualities, rounded to 1e-6, within `tolerance`)."""

    tolerance: float = DEFAULT_SWEEP_TOLERANCE
    metric: str = DEFAULT_SWEEP_METRIC
    frames: int = 0
    top_quality: float = -math.inf
    _band: list[dict] = field(default_factory=list)  # the frames in the band that can still win, oldest first
    _tied: collections.Counter = field(default_factory=collections.Counter)  # frames in the band by quality

    def __post_init__(self):
        # A NaN or negative tolerance would leave every frame outside the band: a sweep that never picks.
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ValueError(f"sweep tolerance {self.tolerance}: give a quality difference of at least 0 "
                             f"(default {DEFAULT_SWEEP_TOLERANCE})")

    def add(self, index: int, label: str, quality: float, metrics: dict[str, float], **extra) -> bool:
        """Record one frame; True when it is now the best."""
        if self.metric not in metrics:
            raise KeyError(f"sweep metric {self.metric!r} missing from the frame's metrics "
                           f"({', '.join(metrics) or 'none computed'})")
        self.frames += 1
        quality = round(float(quality), 6)  # as reported in the frame's record, so the pick can be re-derived
        entry = {"frame": index, "label": label, "quality": quality,
                 self.metric: float(metrics[self.metric]), **extra}
        if quality > self.top_quality:
            self.top_quality = quality
            floor = self.top_quality - self.tolerance
            self._band = [e for e in self._band if e["quality"] >= floor]
            self._tied = collections.Counter({q: n for q, n in self._tied.items() if q >= floor})
        if quality >= self.top_quality - self.tolerance:
            self._tied[quality] += 1
            sharpness = entry[self.metric]
            if not any(e[self.metric] >= sharpness and e["quality"] >= quality for e in self._band):
                # No earlier frame beats this one while it stays in the band; those it beats never win now.
                self._band = [e for e in self._band if not (sharpness >= e[self.metric] and quality >= e["quality"])]
                self._band.append(entry)
        best = self.best()
        return best is not None and best["frame"] == index

    def offer(self, index: int, label: str, result, **extra) -> bool:
        """`add` a frame's `FocusResult`, unless its warnings say its quality means nothing (no structure above
        the pixel noise: an empty field, a closed shutter): such a frame never takes part. True when it is now
        the best."""
        return not result.warnings and self.add(index, label, result.quality, result.metrics, **extra)

    def best(self) -> dict | None:
        if not self._band:
            return None
        winner = max(self._band, key=lambda e: (e[self.metric], e["quality"]))
        tied = sum(self._tied.values())
        decided_by = "quality" if tied == 1 else f"{self.metric} (tie within quality {self.tolerance})"
        return {**winner, "decided_by": decided_by, "frames_compared": self.frames, "tied": tied}




@dataclass
class LiveOptions:
    size: int = 512  # focus graph input: the frame's longer side is downsampled to this
    channel: int = 0
    metric_tile: int | None = 256
    max_frames: int | None = None  # stop after this many analysed frames
    maps: bool = True  # per-tile quality and certainty maps in each record
    sweep: bool = False
    sweep_tolerance: float = DEFAULT_SWEEP_TOLERANCE
    sweep_metric: str = DEFAULT_SWEEP_METRIC
    stats_every: float = 5.0  # seconds between progress lines on stderr (0: none)
    queue_capacity: int = 1
    drop: bool | None = None  # None: latest frame wins for live sources, waiting for file sources
    expect_shape: tuple[int, int] | None = None
    any_size: bool = False
    warmup: bool = True  # one run of the focus graph on a blank size x size frame before reading starts
    stall_warning: float = 10.0  # live sources: say so when no frame came for this long (0: never)


@dataclass
class LiveSummary:
    source: str
    frames: int = 0  # analysed
    dropped: int = 0  # replaced in the queue by a newer frame before analysis
    skipped: int = 0  # unusable: wrong size or type, unreadable file, truncated frame
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    notices_dropped: int = 0
    elapsed_s: float = 0.0
    frames_per_s: float = 0.0
    latency_ms: dict = field(default_factory=dict)
    stop: str = "end of source"
    error: str | None = None  # set when the source was lost
    sweep_best: dict | None = None

    def to_dict(self) -> dict:
        d = {"event": "summary", "source": self.source, "frames": self.frames, "dropped": self.dropped,
             "skipped": self.skipped, "skipped_reasons": dict(self.skipped_reasons),
             "elapsed_s": round(self.elapsed_s, 3), "frames_per_s": round(self.frames_per_s, 3),
             "latency_ms": self.latency_ms, "stop": self.stop}
        if self.notices_dropped:
            d["notices_dropped"] = self.notices_dropped
        if self.error:
            d["error"] = self.error
        if self.sweep_best is not None:
            d["sweep_best"] = self.sweep_best
        return d


# A count or size standing alone ("3", "1.5", "2048x2048"), not a digit inside a word ("uint16", "P00012").
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:x\d+)*(?!\w)")


def _reason_key(reason: str) -> str:
    """Skip reasons grouped for the summary: standalone counts and sizes replaced by N (NxN for a frame size),
    so that "64x64 frame ..." and "32x32 frame ..." count together while pixel types stay readable."""
    return _NUMBER.sub(lambda m: "x".join("N" * (m.group().count("x") + 1)), reason)[:160]


def stderr_log(message: str) -> None:
    print(f"ifrt live: {message}", file=sys.stderr, flush=True)


def json_lines(stream=None) -> Callable[[dict], None]:
    """A sink writing one JSON object per line, flushed, so a consumer sees each frame at once."""

    def write(record: dict) -> None:
        out = stream or sys.stdout
        out.write(json.dumps(record, separators=(",", ":")) + "\n")
        out.flush()

    return write


class DeferredInterrupt:
    """Ctrl-C and SIGTERM end the loop between two records, not inside one: a KeyboardInterrupt raised while a
    record was being written left it out of the summary's count (or, on a pipe, half a line), and SIGTERM's
    default action (`docker stop`, systemd, a process supervisor) ended the process with no summary at all.
    Within the block the first SIGINT or SIGTERM is only noted in `stop` ("interrupted" or "terminated"), and
    the loop stops at its next turn; a second raises KeyboardInterrupt at once, for an analysis that hangs.
    Each signal is taken over only where its default handler is in place (the main
    thread, and no handler of the caller's), and that handler is put back on leaving."""

    REASONS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}
    DEFAULTS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}

    def __init__(self):
        self.stop: str | None = None  # why the first signal asked the loop to stop
        self._previous: dict[int, object] = {}

    def __enter__(self) -> DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            for signum, default in self.DEFAULTS.items():
                if signal.getsignal(signum) is default:
                    self._previous[signum] = signal.signal(signum, self._note)
        return self

    def _note(self, signum, frame) -> None:
        if self.stop is not None:
            raise KeyboardInterrupt
        self.stop = self.REASONS[signum]

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()


def run_live(session, source: FrameSource, sink: Callable[[dict], None], options: LiveOptions | None = None, *,
             log: Callable[[str], None] = stderr_log,
             viewer: Callable[[Frame, object, str], bool] | None = None) -> LiveSummary:
    """Analyse `source` until it ends, is lost, `max_frames` are analysed, the viewer closes or Ctrl-C.

    `sink` receives one record per analysed frame (`event: frame`), skipped input (`skipped`) and source
    notice (`notice`), then the sweep's best frame (`sweep_best`, with --sweep) and the summary
    (`summary`). `viewer(frame, result, status_line)` is called after each analysed frame; False stops. Ctrl-C
    stops it after the record in progress (`DeferredInterrupt`), with `stop` "interrupted", and SIGTERM with
    `stop` "terminated"."""
    with DeferredInterrupt() as interrupt:
        return _run_live(session, source, sink, options or LiveOptions(), log, viewer, interrupt)


def _run_live(session, source: FrameSource, sink: Callable[[dict], None], options: LiveOptions,
              log: Callable[[str], None], viewer: Callable[[Frame, object, str], bool] | None,
              interrupt: DeferredInterrupt) -> LiveSummary:
    drop = source.live if options.drop is None else options.drop
    frames = FrameQueue(options.queue_capacity, drop=drop)
    check = FrameCheck(options.expect_shape, any_size=options.any_size)
    sweep = SweepTracker(options.sweep_tolerance, options.sweep_metric) if options.sweep else None
    latencies = LatencyRecorder()
    summary = LiveSummary(source=source.name)
    stop = threading.Event()
    start = time.perf_counter()
    last_report, frames_at_report = start, 0
    last_item, stalled = start, False
    first_acquired = None
    if options.warmup:
        # The backend's first run allocates and plans for the shape; do it before the first real frame's clock.
        session.focus(np.zeros((options.size, options.size), np.uint16), size=options.size, metrics=False)
    reader = start_reader(source, frames, stop)

    def skip(index, label, reason: str) -> None:
        summary.skipped += 1
        key = _reason_key(reason)
        summary.skipped_reasons[key] = summary.skipped_reasons.get(key, 0) + 1
        log(f"skipped {label if label is not None else index}: {reason}")
        sink({"event": "skipped", "frame": index, "label": label, "reason": reason})

    def status_line() -> str:
        new_frames = summary.frames - frames_at_report
        rate = new_frames / max(time.perf_counter() - last_report, 1e-9)
        if new_frames:  # latency of the frames since the last line only, so an idle stream shows no stale value
            p = LatencyRecorder.percentiles(latencies.last(new_frames))
            latency = f"latency p50 {p['p50']:.1f} ms p99 {p['p99']:.1f} ms"
        elif latencies.count:
            latency = f"no new frame (the last one's latency {latencies.last(1)[0]:.1f} ms)"
        else:
            latency = "no latency yet"
        return (f"{summary.frames} frames, {rate:.1f} frames/s, {frames.dropped} dropped, {summary.skipped} skipped, "
                f"{latency}")

    try:
        while options.max_frames is None or summary.frames < options.max_frames:
            if interrupt.stop:
                summary.stop = interrupt.stop
                break
            try:
                item = frames.get(timeout=0.25)
            except queue.Empty:
                item = False  # nothing yet; fall through to the periodic report
            if item is None:
                break
            now = time.perf_counter()
            if item is not False:
                last_item, stalled = now, False
            elif source.live and options.stall_warning and not stalled and now - last_item >= options.stall_warning:
                # A camera whose read hangs in the driver never fails; the operator must still hear of it.
                stalled = True
                message = f"{source.name}: no frame for {now - last_item:.0f} s"
                log(message)
                sink({"event": "notice", "kind": "stalled", "message": message})
            if isinstance(item, Notice):
                if item.kind == "skipped":
                    skip(item.index, item.label, item.message)
                else:
                    log(item.message)
                    sink({"event": "notice", "kind": item.kind, "message": item.message})
            elif isinstance(item, Frame):
                problem = check.problem(item.image, fix=False)
                if problem is not None:
                    skip(item.index, item.label, problem)
                    continue
                try:
                    result = session.focus(item.image, size=options.size, channel=options.channel,
                                           metric_tile=options.metric_tile)
                except ValueError as exc:  # InputError: NaN pixels and the like
                    skip(item.index, item.label, str(exc).removeprefix("frame: "))
                    continue
                check.accept(item.image)
                record = {"event": "frame", "frame": item.index, "label": item.label, **result.to_dict(maps=options.maps)}
                record["dropped"] = frames.dropped
                if sweep is not None:
                    record["sweep_best"] = sweep.offer(item.index, item.label, result)
                    best = sweep.best()
                    record["sweep_best_frame"] = best["frame"] if best else None
                latency_ms = (time.perf_counter() - item.acquired) * 1e3
                record["timings_ms"]["latency"] = round(latency_ms, 3)
                sink(record)
                latencies.add(latency_ms)
                summary.frames += 1
                if first_acquired is None:
                    first_acquired = item.acquired
                if viewer is not None and viewer(item, result, status_line()) is False:
                    summary.stop = "window closed"
                    break
            now = time.perf_counter()
            if options.stats_every and now - last_report >= options.stats_every:
                log(status_line())
                last_report, frames_at_report = now, summary.frames
        else:
            summary.stop = f"--max-frames {options.max_frames} reached"
    except KeyboardInterrupt:
        summary.stop = interrupt.stop or "interrupted"
    except BrokenPipeError:
        summary.stop = "output closed"
    finally:
        stop.set()
        frames.close()
        reader.join(timeout=2.0)

    end = time.perf_counter()
    if frames.error is not None and summary.stop == "end of source":
        summary.stop = "source lost"
        summary.error = str(frames.error)
    summary.dropped = frames.dropped
    summary.notices_dropped = frames.notices_dropped
    summary.elapsed_s = end - start
    if summary.frames and first_acquired is not None:
        summary.frames_per_s = summary.frames / max(end - first_acquired, 1e-9)
    summary.latency_ms = {**LatencyRecorder.percentiles(latencies.last()), "frames": min(latencies.count, 65536)}
    if sweep is not None:
        summary.sweep_best = sweep.best()
    try:
        if summary.sweep_best is not None:
            sink({"event": "sweep_best", **summary.sweep_best})
        sink(summary.to_dict())
    except BrokenPipeError:
        pass
    return summary


def format_summary(summary: LiveSummary) -> str:
    p = summary.latency_ms
    latency = f"latency p50 {p['p50']:.1f} ms, p99 {p['p99']:.1f} ms" if p.get("p50") is not None else "no frames"
    line = (f"{summary.stop}: {summary.frames} frames in {summary.elapsed_s:.1f} s ({summary.frames_per_s:.1f} "
            f"frames/s), {summary.dropped} dropped, {summary.skipped} skipped, {latency}")
    if summary.sweep_best is not None:
        b = summary.sweep_best
        line += f"; best focus: {b['label']} (quality {quality_text(b['quality'])}, by {b['decided_by']})"
    return line
