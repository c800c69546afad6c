"""Frame sources of the live loop: an OpenCV camera or video file (`CaptureSource`), image files as they land
in a folder (`FolderSource`), raw frames on a pipe (`RawStreamSource`) and in-memory frames (`ArraySource`).
Each yields `Frame`s and `Notice`s from `frames(stop)`; a source that stops delivering for good raises
`SourceLost` with the reason."""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR
from typing import Protocol

import numpy as np

from ifrt.filestate import FileState, file_state
from ifrt.imageio import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, ImageReadError, colour_maximum, read_image

SUPPORTED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
RAW_DTYPES = {"uint8": np.uint8, "uint16": np.uint16, "float32": np.float32}


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
    dropped) instead of every frame being analysed.

    `frame_count`, the number of frames the video file's container records (0: unknown), tells the end of a
    file from a read that failed before it (a file damaged or cut short part-way): a play that stops well
    short of that count raises `SourceLost` instead of ending."""

    # A container's frame count can be an estimate: OpenCV reports the duration times the frame rate where the
    # container records no count (Matroska, MPEG-TS, a raw stream), a few frames off, more for a variable rate.
    # A play that stops within this share of the count (and at least `end_frames` frames) is taken as the end.
    end_share = 0.05
    end_frames = 2

    def __init__(self, open_capture: Callable[[], Capture], name: str, *, camera: bool, reconnect: int = 5,
                 backoff: float = 0.5, max_backoff: float = 8.0, channel: int | None = None, loop: bool = False,
                 fps: float | None = None, frame_count: float = 0):
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"{name}: frame rate {fps} must be a positive number")
        self.open_capture, self.name, self.camera = open_capture, name, camera
        self.loop, self.fps = loop and not camera, None if camera else fps
        self.live = camera or self.fps is not None
        self.reconnect, self.backoff, self.max_backoff, self.channel = reconnect, backoff, max_backoff, channel
        self.passes = 0  # completed plays of a looped video file
        # NaN, a negative or a zero count is an unknown one: never take a stop for damage then.
        self.frame_count = int(frame_count) if not camera and math.isfinite(frame_count) and frame_count > 0 else 0

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
                    self._check_end(index - first_of_pass)
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

    def _check_end(self, reached: int) -> None:
        """A read of the video file failed after `reached` frames of this play: its end, or `SourceLost` when
        the container records a count well beyond it (the file is damaged or truncated there)."""
        if not self.frame_count:
            return
        if self.frame_count - reached > max(self.end_frames, self.end_share * self.frame_count):
            raise SourceLost(f"{self.name}: reading stopped after {reached} of the {self.frame_count} frames the "
                             f"file records; it is damaged or truncated there (copy or export it again)")

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


def camera_source(index: int | str, **options) -> CaptureSource:
    """A camera by OpenCV index (0, 1, ...) or by device path (`/dev/video0`, a stable udev name such as
    `/dev/v4l/by-id/...`, which stays with the camera when others are plugged in)."""
    import cv2

    def open_camera():
        capture = cv2.VideoCapture(index)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # where the driver allows it, it too keeps only the newest frame
        return capture

    return CaptureSource(open_camera, f"camera {index}", camera=True, **options)


def video_source(path: str | os.PathLike, *, fps: float | str | None = None, **options) -> CaptureSource:
    """A video file; `fps="file"` plays it at the frame rate recorded in it, a number at that rate. A file OpenCV
    cannot open as a video (a text file, a codec it lacks) is refused here with ValueError, before the run
    starts; a video that fails later (damaged part-way, removed while looping) ends its stream with `SourceLost`."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        opened = capture.isOpened()
        recorded = capture.get(cv2.CAP_PROP_FPS) if opened else 0.0
        frame_count = capture.get(cv2.CAP_PROP_FRAME_COUNT) if opened else 0.0
    finally:
        capture.release()
    if not opened:
        raise ValueError(f"{path}: neither an image file ({', '.join(IMAGE_SUFFIXES)}) nor a video file OpenCV can "
                         "open; ifrt live takes a camera index (0, 1, ...), a video file, a folder to watch, an "
                         "image file, or - with --raw WIDTHxHEIGHT:TYPE")
    if fps == "file":
        if not (math.isfinite(recorded) and recorded > 0):
            raise ValueError(f"{path}: the file records no frame rate; give one, e.g. --fps 30")
        fps = recorded
    return CaptureSource(lambda: cv2.VideoCapture(str(path)), str(path), camera=False,
                         fps=None if fps is None else float(fps), frame_count=frame_count, **options)


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
        # Every file taken, read or skipped, gets its own number, as a frame the loop skips keeps its own: a
        # skipped record never shares its "frame" with the next analysed one.
        index = 0
        read = 0  # files read as frames, for the message when the folder goes
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
            # Files found complete in this poll are available now: a file that then waits for the analysis of
            # those before it (the reader blocked on a full queue) counts that wait in its latency.
            found = time.perf_counter()
            folder = self._stamp(read)
            listed: set[str] | None = None  # every image file's name, when the folder was listed in this poll
            young = listed_ns - folder[1] < self.fresh_ns and now - last_list >= self.fresh_relist
            if now - last_full >= self.recheck:
                last_full, last_list, listed_ns = now, now, time.time_ns()
                looked = self._scan(read)
                listed = set(looked)
            elif folder != stamp or young:
                last_list, listed_ns = now, time.time_ns()
                listed = {entry.name for entry in self._list(read)}
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
                        index += 1
                    continue
                ready.append((stat.mtime_ns, name))
            for _, name in sorted(ready):
                if stop.is_set():
                    return
                try:
                    image = read_image(self.folder / name, max_pixels=self.max_pixels)
                except ImageReadError as exc:
                    pending[name].failed = exc.problem  # the record's label names the file
                    continue
                remember(name, pending.pop(name).stat)
                yield Frame(image, index, name, found)
                index += 1
                read += 1
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
    back to back from a binary stream, e.g. a camera program piping into `ifrt live - --raw 2048x2048:uint16`.
    A frame size above `max_pixels` is refused before anything is read: each frame is one buffer of that size,
    and a mistyped size (100000x100000) would otherwise fail deep inside the reader or take the machine's memory."""

    live = True

    def __init__(self, stream, width: int, height: int, dtype, name: str = "stdin", *,
                 max_pixels: int = DEFAULT_MAX_PIXELS):
        if width * height > max_pixels:
            raise ValueError(f"{name}: {width}x{height} = {width * height} pixels per frame exceeds the limit of "
                             f"{max_pixels} (raise --max-pixels, max_pixels= in Python, if the frames are genuine)")
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
