"""`ifrt live`: focus feedback on a stream of frames, next to the microscope.

    source --(reader thread)--> FrameQueue --(inference loop)--> Session.focus --> records (JSON lines / overlay)

- Sources (`CaptureSource` for an OpenCV camera or video file, `FolderSource` for image files as they land,
  `RawStreamSource` for raw frames on a pipe) yield `Frame`s and `Notice`s from `frames(stop)`; a source that
  stops delivering for good raises `SourceLost` with the reason.
- `FrameQueue` is the bounded hand-over between the reader thread and the inference loop. Sources that cannot
  wait (a camera, a pipe fed by one) get latest-frame-wins: a new frame replaces the oldest waiting one and the
  replaced frame is counted as dropped. Sources that can wait (files) block the reader instead, so every file
  is analysed. Either way memory holds at most `capacity` frames.
- `run_live` checks each frame (size and pixel type against the stream's first frame), runs the focus path
  and emits one record per frame or event; a bad frame is skipped with its reason and the loop continues.
- End-to-end latency runs from the moment a frame is available to ifrt (the camera read returned, the file
  was found complete, the pipe delivered the last byte) to the moment its record goes to the output.
- `SweepTracker` picks the best-focused frame of a Z sweep: the highest learned quality, with the classical
  metric breaking ties between frames whose quality is within `tolerance` of the best.

Nothing here needs a GUI: `--show` uses `OverlayWindow`, which needs OpenCV with HighGUI (opencv-python,
not the headless build) and is only imported when asked for.
"""

from __future__ import annotations

import collections
import json
import math
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISDIR
from typing import Protocol

import numpy as np

from ifrt.filestate import FileState, file_state
from ifrt.imageio import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, ImageReadError, colour_maximum, read_image
from ifrt.result import quality_text

SUPPORTED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
RAW_DTYPES = {"uint8": np.uint8, "uint16": np.uint16, "float32": np.float32}

# Normalized variance ranked best overall among classical autofocus functions for microscopy
# (Sun, Duthaler & Nelson 2004); it also ignores the exposure level, which changes along a sweep.
DEFAULT_SWEEP_METRIC = "normalized_variance"
DEFAULT_SWEEP_TOLERANCE = 0.02


class SourceLost(RuntimeError):
    """The source stopped delivering frames and could not be recovered; the message says why and what to do."""


@dataclass
class Frame:
    image: np.ndarray
    index: int  # position in the source's sequence, from 0
    label: str  # what the operator knows the frame as: "frame 12", a file name
    acquired: float  # time.perf_counter() when the frame became available; latency starts here


@dataclass
class Notice:
    """Something the operator should know that is not a frame: a skipped input, a reconnection."""

    kind: str  # "skipped", "disconnected", "reconnecting", "reconnected"
    message: str
    index: int | None = None
    label: str | None = None


class FrameSource(Protocol):
    name: str
    live: bool  # True: frames come at the source's pace and cannot wait (latest frame wins)

    def frames(self, stop: threading.Event) -> Iterator[Frame | Notice]: ...


def single_channel(image: np.ndarray, channel: int | None = None) -> np.ndarray:
    """A camera frame as H x W: pick `channel`, or take the per-pixel maximum of a colour frame (as
    `ifrt.imageio` does for pseudo-coloured exports). Other shapes pass through for the frame check."""
    if image.ndim == 3:
        if image.shape[2] == 1:
            return image[:, :, 0]
        if channel is not None and channel < image.shape[2]:
            return image[:, :, channel]
        if image.shape[2] in (3, 4):
            return colour_maximum(image)
    return image


# ---- sources ---------------------------------------------------------------------------------------------


class Capture(Protocol):
    """What `CaptureSource` needs of `cv2.VideoCapture` (tests pass a fake)."""

    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's name

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


class CaptureSource:
    """Frames from a camera (`camera=True`) or a video file through an OpenCV-style capture.

    A camera that stops delivering frames is released and reopened up to `reconnect` times, waiting
    `backoff`, 2 x `backoff`, ... (at most `max_backoff`) seconds between attempts; then `SourceLost`.
    A video file ends, or with `loop` is reopened and played again from its first frame (a replayed
    acquisition for demos and soak tests). With `fps` a video file delivers its frames at that rate,
    as the camera that recorded it did: the source is then live (latest frame wins, late frames are
    dropped) instead of every frame being analysed."""

    def __init__(self, open_capture: Callable[[], Capture], name: str, *, camera: bool, reconnect: int = 5,
                 backoff: float = 0.5, max_backoff: float = 8.0, channel: int | None = None, loop: bool = False,
                 fps: float | None = None):
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"{name}: frame rate {fps} must be a positive number")
        self.open_capture, self.name, self.camera = open_capture, name, camera
        self.loop, self.fps = loop and not camera, None if camera else fps
        self.live = camera or self.fps is not None
        self.reconnect, self.backoff, self.max_backoff, self.channel = reconnect, backoff, max_backoff, channel
        self.passes = 0  # completed plays of a looped video file

    def _open(self) -> Capture | None:
        try:
            capture = self.open_capture()
        except Exception:  # noqa: BLE001 - a driver error while opening is "not available yet"
            return None
        if capture is not None and capture.isOpened():
            return capture
        if capture is not None:
            capture.release()
        return None

    def _read(self, capture: Capture) -> np.ndarray | None:
        try:
            ok, image = capture.read()
        except Exception:  # noqa: BLE001 - OpenCV raises from some drivers on unplug
            return None
        return image if ok and image is not None else None

    def frames(self, stop: threading.Event) -> Iterator[Frame | Notice]:
        capture = self._open()
        if capture is None:
            what = "is it connected, and not in use by another program?" if self.camera else \
                "is it a video file OpenCV can decode?"
            raise SourceLost(f"{self.name}: cannot open ({what})")
        index = first_of_pass = 0
        start = time.perf_counter()
        try:
            while not stop.is_set():
                if self.fps is not None and stop.wait(max(0.0, start + index / self.fps - time.perf_counter())):
                    return
                image = self._read(capture)
                if image is not None:
                    label = f"frame {index}" if not self.loop else f"frame {index - first_of_pass} (pass {self.passes + 1})"
                    yield Frame(single_channel(image, self.channel), index, label, time.perf_counter())
                    index += 1
                    continue
                if not self.camera:
                    if not self.loop or index == first_of_pass:
                        return  # end of the video file (or a file that gives no frame at all)
                    capture.release()
                    capture = self._open()
                    if capture is None:
                        raise SourceLost(f"{self.name}: cannot reopen the video file for pass {self.passes + 2}")
                    self.passes += 1
                    first_of_pass = index
                    continue
                capture.release()
                capture = None
                yield Notice("disconnected", f"{self.name}: no frame after {index} frames; the camera may have "
                                             f"been disconnected, reconnecting")
                capture = yield from self._reconnect(stop, index)
                if capture is None:
                    return  # stopped while waiting
        finally:
            if capture is not None:
                capture.release()

    def _reconnect(self, stop: threading.Event, index: int) -> Generator[Notice, None, Capture | None]:
        waited = 0.0
        for attempt in range(1, self.reconnect + 1):
            delay = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
            if stop.wait(delay):
                return None
            waited += delay
            capture = self._open()
            if capture is not None:
                yield Notice("reconnected", f"{self.name}: reconnected after {waited:.1f} s "
                                            f"(attempt {attempt} of {self.reconnect})")
                return capture
            yield Notice("reconnecting", f"{self.name}: reconnect attempt {attempt} of {self.reconnect} failed")
        raise SourceLost(f"{self.name}: disconnected after {index} frames and did not come back "
                         f"({self.reconnect} reconnect attempts over {waited:.1f} s); check the camera's cable "
                         f"and power, then start ifrt live again")


def camera_source(index: int, **options) -> CaptureSource:
    import cv2

    def open_camera():
        capture = cv2.VideoCapture(index)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # where the driver allows it, it too keeps only the newest frame
        return capture

    return CaptureSource(open_camera, f"camera {index}", camera=True, **options)


def video_source(path: str | os.PathLike, *, fps: float | str | None = None, **options) -> CaptureSource:
    """A video file; `fps="file"` plays it at the frame rate recorded in it, a number at that rate."""
    import cv2

    if fps == "file":
        capture = cv2.VideoCapture(str(path))
        try:
            recorded = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
        finally:
            capture.release()
        if not (math.isfinite(recorded) and recorded > 0):
            raise ValueError(f"{path}: the file records no frame rate; give one, e.g. --fps 30")
        fps = recorded
    return CaptureSource(lambda: cv2.VideoCapture(str(path)), str(path), camera=False,
                         fps=None if fps is None else float(fps), **options)


@dataclass
class _Pending:
    stat: FileState  # at the last look
    since: float  # when `stat` was first seen
    failed: str | None = None  # last read error, kept until the file changes or we give up


class FolderSource:
    """New image files in `folder`, in the order they are completed.

    A file is read once its size and modification time have not changed for `settle` seconds (a writer
    still appending keeps changing them). If it still cannot be decoded (a writer that paused mid-file, an
    empty file), it is retried when it changes, and skipped with the decoder's reason after `give_up` seconds
    without change. A file rewritten under a name already read or skipped (acquisition software overwriting
    one snapshot file) is a new frame by the same rule. Hidden files and temporary names (`.x.tmp`, `x.part`)
    are ignored. Files present at the start are ignored unless `existing`; their rewrites are new frames. A
    folder that disappears (deleted, renamed, drive unmounted) ends the stream with `SourceLost`.

    The cost of a poll does not grow with the files already there: the folder is listed only when its time
    stamp changed (a file was added, removed or renamed), and only new and pending files and the last
    `recent_files` read are stat'ed. A rewrite in place leaves the folder's time stamp alone, so every
    `recheck` seconds every file is stat'ed too, which finds rewrites of older files."""

    live = False
    recent_files = 32  # files read last, looked at every poll for a rewrite
    # A change within the same tick of the file system's clock as the listing before it (ticks are up to 2 s, on
    # FAT) leaves the folder's time stamp as it was, so until a listing is made that long after the stamp, the
    # folder is listed again every `fresh_relist` seconds, changed or not.
    fresh_ns = 2_000_000_000
    fresh_relist = 0.5

    def __init__(self, folder: str | os.PathLike, *, poll: float = 0.1, settle: float = 0.2, give_up: float = 10.0,
                 recheck: float = 30.0, existing: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.folder = Path(folder)
        self.name = str(self.folder)
        if not self.folder.is_dir():
            raise SourceLost(f"{self.folder}: not a folder (ifrt live watches a folder for new image files)")
        self.poll, self.settle, self.give_up, self.recheck = poll, settle, give_up, recheck
        self.max_pixels = max_pixels
        # Files already there when watching starts are not new; remember them now, not when reading starts.
        self._present = {} if existing else self._scan(0)

    def _lost(self, exc: OSError, frames: int) -> SourceLost:
        if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
            return SourceLost(f"{self.folder}: the watched folder disappeared (deleted, renamed or unmounted) "
                              f"after {frames} frames; stopping")
        return SourceLost(f"{self.folder}: the watched folder cannot be read any more "
                          f"({exc.strerror or exc}) after {frames} frames; stopping")

    def _stamp(self, frames: int) -> tuple[int, int]:
        """The folder's (inode, mtime_ns): it changes when a file is added, removed or renamed."""
        try:
            st = os.stat(self.folder)
        except OSError as exc:
            raise self._lost(exc, frames) from None
        if not S_ISDIR(st.st_mode):
            raise self._lost(NotADirectoryError(), frames)
        return st.st_ino, st.st_mtime_ns

    def _list(self, frames: int) -> list[os.DirEntry]:
        """The image files in the folder, without a stat each (the directory listing says which are files)."""
        try:
            with os.scandir(self.folder) as listing:
                entries = list(listing)
        except OSError as exc:
            raise self._lost(exc, frames) from None
        images = []
        for entry in entries:
            name = entry.name
            if name.startswith(".") or not name.lower().endswith(IMAGE_SUFFIXES):
                continue
            try:
                if entry.is_file():
                    images.append(entry)
            except OSError:
                continue  # removed between listing and looking
        return images

    def _scan(self, frames: int) -> dict[str, FileState]:
        """The state of every image file in the folder."""
        found = {}
        for entry in self._list(frames):
            try:
                found[entry.name] = FileState.of(entry.stat())
            except OSError:
                continue  # removed between listing and stat
        return found

    def _stat(self, name: str) -> FileState | None:
        """The state of one file, None once it is gone."""
        return file_state(os.path.join(self.folder, name))

    def frames(self, stop: threading.Event) -> Iterator[Frame | Notice]:
        known = dict(self._present)  # name -> FileState when read, skipped or found at the start
        recent: dict[str, None] = {}  # the last `recent_files` names read or skipped, oldest first
        pending: dict[str, _Pending] = {}
        index = 0
        stamp = None  # the folder's (inode, mtime_ns) at the last poll
        last_full, last_list = time.monotonic(), -math.inf
        listed_ns = 0  # the wall clock at the last listing, to compare with the folder's time stamp

        def remember(name: str, stat: FileState) -> None:
            known[name] = stat
            recent.pop(name, None)
            recent[name] = None
            if len(recent) > self.recent_files:
                del recent[next(iter(recent))]

        while not stop.is_set():
            now = time.monotonic()
            folder = self._stamp(index)
            listed: set[str] | None = None  # every image file's name, when the folder was listed in this poll
            young = listed_ns - folder[1] < self.fresh_ns and now - last_list >= self.fresh_relist
            if now - last_full >= self.recheck:
                last_full, last_list, listed_ns = now, now, time.time_ns()
                looked = self._scan(index)
                listed = set(looked)
            elif folder != stamp or young:
                last_list, listed_ns = now, time.time_ns()
                listed = {entry.name for entry in self._list(index)}
                looked = {name: self._stat(name) for name in listed if name not in known and name not in pending}
            else:
                looked = {}
            stamp = folder
            if listed is not None:
                for name in [name for name in known if name not in listed]:
                    del known[name]
                    recent.pop(name, None)
                for name in [name for name in pending if name not in listed]:
                    del pending[name]  # removed before it was complete
            for name in [*pending, *recent]:
                if name not in looked and (listed is None or name in listed):
                    looked[name] = self._stat(name)
            ready = []
            for name, stat in looked.items():
                if stat is None:  # removed since the listing
                    known.pop(name, None)
                    recent.pop(name, None)
                    pending.pop(name, None)
                    continue
                if name in known:
                    if known[name] == stat:
                        continue
                    del known[name]  # rewritten: a new frame once complete, as a new file is
                entry = pending.get(name)
                if entry is None or entry.stat != stat:
                    pending[name] = _Pending(stat, now)
                    continue
                if now - entry.since < self.settle:
                    continue
                if entry.failed is not None:
                    if now - entry.since >= self.give_up:
                        del pending[name]
                        remember(name, stat)
                        yield Notice("skipped", entry.failed, index, name)
                    continue
                ready.append((stat.mtime_ns, name))
            for _, name in sorted(ready):
                if stop.is_set():
                    return
                acquired = time.perf_counter()
                try:
                    image = read_image(self.folder / name, max_pixels=self.max_pixels)
                except ImageReadError as exc:
                    pending[name].failed = exc.problem  # the record's label names the file
                    continue
                remember(name, pending.pop(name).stat)
                yield Frame(image, index, name, acquired)
                index += 1
            stop.wait(self.poll)


def parse_raw_format(spec: str) -> tuple[int, int, np.dtype]:
    """'2048x2048:uint16' -> (width, height, dtype)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*:\s*(\w+)\s*", spec)
    if not match or match.group(3) not in RAW_DTYPES:
        raise ValueError(f"--raw {spec!r}: expected WIDTHxHEIGHT:TYPE with TYPE one of "
                         f"{', '.join(RAW_DTYPES)}, e.g. 2048x2048:uint16")
    width, height = int(match.group(1)), int(match.group(2))
    if width <= 0 or height <= 0:
        raise ValueError(f"--raw {spec!r}: width and height must be positive")
    return width, height, np.dtype(RAW_DTYPES[match.group(3)])


class RawStreamSource:
    """Headerless frames of `width` x `height` pixels of `dtype` (native byte order, rows contiguous) read
    back to back from a binary stream, e.g. a camera program piping into `ifrt live - --raw 2048x2048:uint16`."""

    live = True

    def __init__(self, stream, width: int, height: int, dtype, name: str = "stdin"):
        self.stream, self.width, self.height, self.dtype = stream, width, height, np.dtype(dtype)
        self.name = name
        self.frame_bytes = width * height * self.dtype.itemsize

    def frames(self, stop: threading.Event) -> Iterator[Frame | Notice]:
        index = 0
        while not stop.is_set():
            buffer = bytearray(self.frame_bytes)
            view, got = memoryview(buffer), 0
            while got < self.frame_bytes:
                n = self.stream.readinto(view[got:])
                if not n:
                    break
                got += n
            if got == 0:
                return
            if got < self.frame_bytes:
                yield Notice("skipped", f"the stream ended {got} bytes into frame {index}, which needs "
                                        f"{self.frame_bytes} ({self.width}x{self.height} {self.dtype.name}); "
                                        f"the partial frame is ignored", index, f"frame {index}")
                return
            image = np.frombuffer(buffer, self.dtype).reshape(self.height, self.width)
            yield Frame(image, index, f"frame {index}", time.perf_counter())
            index += 1


class ArraySource:
    """In-memory frames, e.g. synthetic frames for `ifrt bench live`. `count` frames cycling through
    `images`, each copied into a new buffer as a camera delivers one; `fps` paces them like a camera
    (None: as fast as they are taken). `labels`, one per image, name the frames as the operator knows them
    (an image file's name, as folder mode labels its files); without them frames are "frame 0", "frame 1"..."""

    def __init__(self, images: Iterable[np.ndarray], *, count: int, fps: float | None = None,
                 name: str = "synthetic", live: bool | None = None, labels: Iterable[str] | None = None):
        self.images, self.count, self.fps, self.name = list(images), count, fps, name
        self.labels = None if labels is None else list(labels)
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError(f"{name}: {len(self.labels)} labels for {len(self.images)} images")
        self.live = fps is not None if live is None else live

    def frames(self, stop: threading.Event) -> Iterator[Frame | Notice]:
        start = time.perf_counter()
        for index in range(self.count):
            if stop.is_set():
                return
            if self.fps:
                delay = start + index / self.fps - time.perf_counter()
                if delay > 0 and stop.wait(delay):
                    return
            image = self.images[index % len(self.images)].copy()
            label = f"frame {index}" if self.labels is None else self.labels[index % len(self.labels)]
            yield Frame(image, index, label, time.perf_counter())


# ---- session -------------------------------------------------------------------------------------------


def open_session(model=None, backend: str = "auto", *, threads: int = 1):
    """A `Session` for the live loop, with the backend chosen as `Session(model, backend)` chooses it (`auto`:
    the first backend that can load this model). When that is onnxruntime it gets `threads` inference threads
    (0: one per core). One is the default because the loop's other stages, native preprocessing and focus
    metrics, already use every core, and onnxruntime's idle worker threads spin between runs, taking CPU
    from those stages: with two threads on two cores a 2048x2048 frame cost 43 ms of CPU instead of 25."""
    from ifrt.session import Session

    return Session(model, backend=backend, per_backend={"ort": {"threads": threads or None}})


# ---- hand-over -------------------------------------------------------------------------------------------


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


# ---- per-frame checks, statistics, sweep -----------------------------------------------------------------


class FrameCheck:
    """Is a frame usable in this stream? The first usable frame fixes the stream's size and pixel type
    (unless given); a later frame that differs would make scores incomparable (a changed ROI, binning or
    bit depth), so it is skipped with the reason. `any_size` accepts every size (mixed files)."""

    def __init__(self, shape: tuple[int, int] | None = None, dtype=None, *, any_size: bool = False):
        self.shape = tuple(shape) if shape is not None else None
        self.dtype = np.dtype(dtype) if dtype is not None else None
        self.any_size = any_size

    def problem(self, image: np.ndarray) -> str | None:
        """None if `image` is usable, else why not (and what to do)."""
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
        if self.shape is None:
            self.shape = (height, width)
        if self.dtype is None:
            self.dtype = image.dtype
        return None


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
    them. Only frames in the band are kept, so memory does not grow with the sweep."""

    tolerance: float = DEFAULT_SWEEP_TOLERANCE
    metric: str = DEFAULT_SWEEP_METRIC
    frames: int = 0
    top_quality: float = -math.inf
    _band: list[dict] = field(default_factory=list)

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
            self._band = [e for e in self._band if e["quality"] >= self.top_quality - self.tolerance]
        if quality >= self.top_quality - self.tolerance:
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
        decided_by = "quality" if len(self._band) == 1 else f"{self.metric} (tie within quality {self.tolerance})"
        return {**winner, "decided_by": decided_by, "frames_compared": self.frames, "tied": len(self._band)}


# ---- the loop --------------------------------------------------------------------------------------------


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


def run_live(session, source: FrameSource, sink: Callable[[dict], None], options: LiveOptions | None = None, *,
             log: Callable[[str], None] = stderr_log,
             viewer: Callable[[Frame, object, str], bool] | None = None) -> LiveSummary:
    """Analyse `source` until it ends, is lost, `max_frames` are analysed, the viewer closes or Ctrl-C.

    `sink` receives one record per analysed frame (`event: frame`), skipped input (`skipped`) and source
    notice (`notice`), then the sweep's best frame (`sweep_best`, with --sweep) and the summary
    (`summary`). `viewer(frame, result, status_line)` is called after each analysed frame; False stops."""
    options = options or LiveOptions()
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
                problem = check.problem(item.image)
                if problem is not None:
                    skip(item.index, item.label, problem)
                    continue
                try:
                    result = session.focus(item.image, size=options.size, channel=options.channel,
                                           metric_tile=options.metric_tile)
                except ValueError as exc:  # InputError: NaN pixels and the like
                    skip(item.index, item.label, str(exc).removeprefix("frame: "))
                    continue
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
        summary.stop = "interrupted"
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


# ---- overlay window --------------------------------------------------------------------------------------


def render_overlay(image: np.ndarray, result, status: str = "", *, size: int = 512, display: int = 1024) -> np.ndarray:
    """The frame (contrast-stretched to 8 bits, longer side `display`) with the per-tile quality map blended
    over it (red = blurred, green = in focus) and the scores as text. BGR uint8, for `cv2.imshow`."""
    import cv2

    height, width = image.shape[:2]
    scale = min(1.0, display / max(height, width))
    shown = cv2.resize(image, (max(round(width * scale), 1), max(round(height * scale), 1)),
                       interpolation=cv2.INTER_AREA) if scale < 1.0 else image
    lo, hi = np.percentile(shown, [1.0, 99.8])
    gray = np.clip((shown.astype(np.float32) - lo) * (255.0 / max(float(hi - lo), 1e-6)), 0, 255).astype(np.uint8)
    canvas = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)

    # The map has one cell per 32 pixels of the downsampled (then padded) frame the focus graph saw.
    model_scale = min(1.0, size / max(height, width))
    seen_h, seen_w = max(round(height * model_scale), 1), max(round(width * model_scale), 1)
    quality = np.clip(np.asarray(result.quality_map, np.float32), 0, 1)
    cells = cv2.resize(quality, (quality.shape[1] * 32, quality.shape[0] * 32), interpolation=cv2.INTER_NEAREST)
    cells = cv2.resize(cells[:seen_h, :seen_w], (canvas.shape[1], canvas.shape[0]), interpolation=cv2.INTER_NEAREST)
    colour = np.zeros_like(canvas)
    colour[..., 1] = (cells * 255).astype(np.uint8)
    colour[..., 2] = ((1 - cells) * 255).astype(np.uint8)
    canvas = cv2.addWeighted(canvas, 0.7, colour, 0.3, 0)

    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, 0.6
    lines = _wrap_text(cv2, [f"quality {quality_text(result.quality)}  blur level {result.blur_level}  "
                             f"certainty {float(np.mean(result.certainty)):.2f}", status],
                       canvas.shape[1] - 20, font, font_scale)
    for i, text in enumerate(lines):
        origin = (10, 28 + 26 * i)
        cv2.putText(canvas, text, origin, font, font_scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(canvas, text, origin, font, font_scale, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def _wrap_text(cv2, texts: list[str], width: int, font: int, font_scale: float) -> list[str]:
    """Non-empty `texts` broken after ", " or ": " so that each line fits `width` pixels where it can."""
    lines = []
    for text in filter(None, texts):
        pieces = re.split(r"(?<=[,:]) ", text)
        line = pieces[0]
        for piece in pieces[1:]:
            if cv2.getTextSize(f"{line} {piece}", font, font_scale, 3)[0][0] <= width:
                line = f"{line} {piece}"
            else:
                lines.append(line)
                line = piece
        lines.append(line)
    return lines


class OverlayWindow:
    """`--show`: an OpenCV window with `render_overlay`; q or Esc (or closing the window) stops."""

    def __init__(self, title: str, *, size: int = 512):
        import cv2

        self.title, self.size, self.sized = title, size, False
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise RuntimeError("--show needs OpenCV with GUI support, and this OpenCV has none (the headless "
                               "build): pip install opencv-python, or run without --show for JSON lines") from None

    def __call__(self, frame: Frame, result, status: str) -> bool:
        import cv2

        canvas = render_overlay(frame.image, result, f"{frame.label}: {status}", size=self.size)
        if not self.sized:  # open at the overlay's size; the user may resize the window afterwards
            cv2.resizeWindow(self.title, canvas.shape[1], canvas.shape[0])
            self.sized = True
        cv2.imshow(self.title, canvas)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            return False
        return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        import cv2

        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass


# ---- benchmark (`ifrt bench live`) -----------------------------------------------------------------------


def sweep_frames(size: int = 2048, count: int = 8, seed: int = 0) -> list[np.ndarray]:
    """uint16 `size` x `size` frames of one field through a focus sweep (Gaussian blur sigma 0 at the middle
    frame up to 4 px at the ends) with shot and read noise. The field tiles a synthetic glomerulus
    (`ifrt.train.data.synth.render_glomerulus`) or, when the training package is absent, smooth random
    structure."""
    import cv2

    rng = np.random.default_rng(seed)
    try:
        from ifrt.train.data.synth import render_glomerulus

        tile = render_glomerulus(rng, "IgAN", "IgA", 512).astype(np.float32)
    except ImportError:
        tile = cv2.GaussianBlur(rng.random((512, 512), dtype=np.float32), (0, 0), 4)
    tile = (tile - tile.min()) / max(float(tile.max() - tile.min()), 1e-6)
    reps = -(-size // tile.shape[0])
    scene = np.ascontiguousarray(np.tile(tile, (reps, reps))[:size, :size])
    middle = (count - 1) / 2
    frames = []
    for k in range(count):
        sigma = 4.0 * abs(k - middle) / max(middle, 1)
        blurred = cv2.GaussianBlur(scene, (0, 0), sigma) if sigma > 0 else scene
        electrons = 50 + 3000 * blurred
        counts = electrons + np.sqrt(electrons) * rng.standard_normal(scene.shape, dtype=np.float32)
        frames.append(np.clip(counts * 4 + 400 + 8 * rng.standard_normal(scene.shape, dtype=np.float32),
                              0, 65535).astype(np.uint16))
    return frames


def benchmark(session, *, size: int = 2048, frames: int = 150, fps: float = 30.0, focus_size: int = 512,
              baseline_session=None) -> dict:
    """`ifrt bench live`: frames/s and end-to-end latency of the live loop on synthetic `size` x `size` uint16
    frames, against the same focus path called in a plain loop (no reader thread, no queue) in this run.

    - sequential: `session.focus` frame after frame, the baseline.
    - pipeline: the live loop fed as fast as it takes frames (nothing dropped): the sustained rate.
    - camera: the live loop fed at `fps` by a reader thread (latest frame wins): analysed frames/s, frames
      dropped, and latency from frame arrival to record, as an operator sees it.
    Records are JSON-encoded as in headless `ifrt live` and discarded."""
    images = sweep_frames(size, count=8)
    options = LiveOptions(size=focus_size, stats_every=0)

    def encode(record: dict) -> None:
        json.dumps(record, separators=(",", ":"))

    def cpu_ms(cpu_s: float, n: int) -> float:
        return round(cpu_s / max(n, 1) * 1e3, 2)

    def sequential(s, n: int) -> dict:
        s.focus(images[0], size=focus_size)  # warm-up: graph load, allocations
        times = []
        cpu = time.process_time()
        for i in range(n):
            frame = images[i % len(images)].copy()
            t0 = time.perf_counter()
            encode(s.focus(frame, size=focus_size).to_dict())
            times.append((time.perf_counter() - t0) * 1e3)
        p = LatencyRecorder.percentiles(np.asarray(times))
        return {"frames": n, "frames_per_s": round(1e3 / float(np.median(times)), 2), "latency_ms": p,
                "cpu_ms_per_frame": cpu_ms(time.process_time() - cpu, n)}

    def live_run(source) -> dict:
        cpu = time.process_time()
        s = run_live(session, source, encode, options, log=lambda message: None)
        return {"frames": s.frames, "frames_per_s": round(s.frames_per_s, 2), "dropped": s.dropped,
                "latency_ms": s.latency_ms, "cpu_ms_per_frame": cpu_ms(time.process_time() - cpu, s.frames)}

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    baseline = sequential(session, min(frames, 30))
    pipeline = live_run(ArraySource(images, count=frames, live=False))
    camera = live_run(ArraySource(images, count=frames, fps=fps))
    camera["camera_fps"] = fps
    report = {
        "target": "live",
        "frame": {"shape": [size, size], "dtype": "uint16", "content": "synthetic glomerulus focus sweep"},
        "model": str(session.package.root),
        "backend": session.backend_name,
        "backend_device": getattr(session.backend, "device", None),
        "focus_size": focus_size,
        "sequential": baseline,
        "pipeline": pipeline,
        "camera": camera,
        "pipeline_over_sequential": round(pipeline["frames_per_s"] / baseline["frames_per_s"], 2),
        "target_frames_per_s": 15,
        "meets_target": pipeline["frames_per_s"] >= 15,
        # On a shared machine frames/s says as much about the neighbours as about ifrt: the process's CPU
        # time per frame and the load average (runnable processes, against `cpus`) say which it was.
        "cpus": os.cpu_count(),
        "load_average_1min": {"before": load_before,
                              "after": os.getloadavg()[0] if hasattr(os, "getloadavg") else None},
    }
    if baseline_session is not None:
        report[f"sequential_{baseline_session.backend_name}"] = sequential(baseline_session, min(frames, 10))
    return report
