"""Image files in and out: the one place that decodes and writes pixels for the whole product.

Reading: single-channel microscopy images as 2-D arrays of uint8, uint16 or float32.
- TIFF (8/16-bit, float, multi-page, OME-TIFF) through tifffile; `page` picks the page of a stack.
- PNG and JPEG through OpenCV; colour images (pseudo-coloured exports) are reduced to one channel by
  taking the per-pixel maximum, which keeps the signal of a single-fluorophore image whatever its colour.
- The format is recognised from the file's first bytes, not its name.
- Decompression-bomb guard: the width and height are read from the header and checked against
  `max_pixels` before any pixel is decoded.

Every problem raises `ImageReadError` whose message names the file, the problem and the fix.

Writing: `write_image_atomic`, `write_bytes_atomic`, `write_text_atomic` and `write_json_atomic`
write a temporary file in the destination folder and `os.replace` it into place, so a reader never
sees a half-written file and an interrupted run leaves no partial output. A set of files that must change
together (a checkpoint, a report, an export) is written into a `staging_folder` and moved in by
`move_staged`; a staged folder is swapped with the earlier one in one step where Linux and the file system
allow it (`exchange_paths`), so a server polling the target folder never finds the model gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import io
import json
import logging
import os
import re
import secrets
import shutil
import struct
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import tifffile

# 2**28 pixels (16384 x 16384) is far above any camera frame or stitched glomerulus crop we read,
# and bounds one decoded uint16 image to 512 MiB.
DEFAULT_MAX_PIXELS = 1 << 28

SUPPORTED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


class _WhileOpening(logging.Filter):
    """Drops tifffile's log records ("contains no pages", "invalid offset to first page") on a thread that is
    inside `open_tiff`: what is wrong with the file comes back as one ImageReadError naming it instead."""

    active = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.active, "depth", 0)


_TIFF_LOG_FILTER = _WhileOpening()
logging.getLogger("tifffile").addFilter(_TIFF_LOG_FILTER)


@contextlib.contextmanager
def open_tiff(path: str | os.PathLike) -> Iterator[tifffile.TiffFile]:
    """`tifffile.TiffFile(path)`, its log lines kept out of the output (see `_WhileOpening`)."""
    state = _TIFF_LOG_FILTER.active
    state.depth = getattr(state, "depth", 0) + 1
    try:
        with tifffile.TiffFile(path) as tif:
            yield tif
    finally:
        state.depth -= 1


class ImageReadError(ValueError):
    """A file that cannot be read as an ifrt image. `path` is the file, `problem` the reason."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def image_format(path: str | os.PathLike) -> str:
    """'tiff', 'png' or 'jpeg', from the file's magic bytes."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except FileNotFoundError:
        raise ImageReadError(path, "file not found (check the path)") from None
    except OSError as exc:
        raise ImageReadError(path, f"cannot open: {exc.strerror or exc}") from None
    if not head:
        raise ImageReadError(path, "file is empty (0 bytes); the image was not written completely")
    if head[:4] in _TIFF_MAGIC:
        return "tiff"
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head.startswith(_JPEG_MAGIC):
        return "jpeg"
    raise ImageReadError(path, "not a TIFF, PNG or JPEG file (unrecognised first bytes); "
                               "convert it to 16-bit TIFF")


def image_shape(path: str | os.PathLike, *, page: int = 0) -> tuple[int, int]:
    """(height, width) of one page, read from the header without decoding pixels."""
    path = Path(path)
    fmt = image_format(path)
    try:
        if fmt == "tiff":
            with open_tiff(path) as tif:
                tiff_page = _tiff_page(path, tif, page)
                return int(tiff_page.imagelength), int(tiff_page.imagewidth)
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
        return _png_shape(path, head) if fmt == "png" else _jpeg_shape(path, head)
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure becomes a named, readable error
        raise ImageReadError(path, f"cannot read the {fmt.upper()} header: {exc}") from None


def read_image(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS, page: int = 0) -> np.ndarray:
    """Decode one single-channel image as a 2-D uint8, uint16 or float32 array.

    float64 TIFFs are converted to float32; other pixel types are refused with the fix in the message.
    """
    path = Path(path)
    fmt = image_format(path)
    try:
        if fmt == "tiff":
            image = _read_tiff(path, page, max_pixels)
        else:
            image = _read_opencv(path, fmt, page, max_pixels)
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data from either decoder
        if "requires the 'imagecodecs' package" in str(exc):  # a sound file in a compression (LZW, JPEG, zstd
            codec = re.search(r"COMPRESSION\.(\w+)", str(exc))  # ...) that tifffile decodes through imagecodecs
            raise ImageReadError(path, f"its TIFF compression ({codec.group(1) if codec else exc}) needs the "
                                       "imagecodecs package, which is missing: pip install imagecodecs") from None
        raise ImageReadError(path, f"cannot decode {fmt.upper()} data ({exc}); the file is damaged or "
                                   "truncated, export it again") from None
    return _as_single_channel(path, image)


def _check_pixels(path: Path, shape: tuple[int, ...], max_pixels: int) -> None:
    height, width = int(shape[0]), int(shape[1])
    if height * width > max_pixels:
        raise ImageReadError(path, f"{width}x{height} = {height * width} pixels exceeds the limit of "
                                   f"{max_pixels} (raise --max-pixels, max_pixels= in Python, if the image "
                                   "is genuine)")
    if height == 0 or width == 0:
        raise ImageReadError(path, f"image has size {width}x{height}; nothing to read")


def _check_tile(path: Path, tiff_page, max_pixels: int) -> None:
    """A tiled page is decoded a whole tile at a time, and its header sets the tile's size apart from the
    image's: a 40x48 image may claim 16x134217744-pixel tiles, a 2 GB buffer for each."""
    if not tiff_page.is_tiled:
        return
    length, width, depth = int(tiff_page.tilelength), int(tiff_page.tilewidth), int(tiff_page.tiledepth or 1)
    if length * width * depth > max_pixels:
        raise ImageReadError(path, f"TIFF tiles of {width}x{length}{f'x{depth}' if depth > 1 else ''} = "
                                   f"{length * width * depth} pixels each exceed the limit of {max_pixels}; the file is "
                                   "damaged, or save it with smaller tiles")


def _tiff_page(path: Path, tif: tifffile.TiffFile, page: int):
    count = len(tif.pages)
    if count == 0:
        raise ImageReadError(path, "cannot find an image in the TIFF (damaged or truncated); export it again")
    if not -count <= page < count:
        raise ImageReadError(path, f"page {page} does not exist (the file has {count} page(s))")
    return tif.pages[page]


def _read_tiff(path: Path, page: int, max_pixels: int) -> np.ndarray:
    with open_tiff(path) as tif:
        tiff_page = _tiff_page(path, tif, page)
        _check_pixels(path, (tiff_page.imagelength, tiff_page.imagewidth), max_pixels)
        _check_tile(path, tiff_page, max_pixels)
        # Samples and depth multiply the decoded size too: a header may claim thousands per pixel.
        samples, depth = int(tiff_page.samplesperpixel), int(getattr(tiff_page, "imagedepth", 1) or 1)
        if samples > 4 or depth > 1:
            raise ImageReadError(path, f"{samples} samples per pixel and depth {depth} is not a single-channel "
                                       "image; save one channel per page")
        image = tiff_page.asarray()
        if image.ndim == 3 and tiff_page.samplesperpixel > 1 and image.shape[0] == tiff_page.samplesperpixel:
            image = np.moveaxis(image, 0, -1)  # planar (separate) samples -> height x width x samples
        return image


def _read_opencv(path: Path, fmt: str, page: int, max_pixels: int) -> np.ndarray:
    if page != 0:
        raise ImageReadError(path, f"page {page} does not exist ({fmt.upper()} files have one page)")
    data = path.read_bytes()
    shape = _png_shape(path, data) if fmt == "png" else _jpeg_shape(path, data)
    _check_pixels(path, shape, max_pixels)
    if fmt == "png":
        _check_png_chunks(path, data)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError(path, f"OpenCV could not decode the {fmt.upper()} data; the file is damaged "
                                   "or truncated, export it again")
    return image


def colour_maximum(image: np.ndarray) -> np.ndarray:
    """Per-pixel maximum of the first three channels of an H x W x 3|4 image: a pseudo-coloured export
    of one fluorophore has its signal in one channel, and the maximum keeps it. (Element-wise over the
    channel planes: numpy's reduction over a short last axis is about 20 times slower on a camera frame.)"""
    return np.maximum(np.maximum(image[:, :, 0], image[:, :, 1]), image[:, :, 2])


def _as_single_channel(path: Path, image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = colour_maximum(image)
    if image.ndim != 2:
        raise ImageReadError(path, f"shape {image.shape} is not a single-channel image; save one channel "
                                   "per page, or pass page= to pick one")
    if image.dtype == np.float64:
        image = image.astype(np.float32)
    if image.dtype not in SUPPORTED_DTYPES:
        raise ImageReadError(path, f"{image.dtype} pixels are not supported (expected uint8, uint16 or "
                                   "float32)")
    return np.ascontiguousarray(image)


def _png_shape(path: Path, data: bytes) -> tuple[int, int]:
    # IHDR is always the first chunk: 8-byte signature, 4-byte length, b"IHDR", width, height.
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageReadError(path, "PNG header is missing or damaged; export the image again")
    width, height = struct.unpack(">II", data[16:24])
    return height, width


def _check_png_chunks(path: Path, data: bytes) -> None:
    # OpenCV allocates what a chunk's length field claims before reading it, so a few hundred bytes
    # claiming a 2.8 GB chunk cost 2.8 GB: every length must fit in the bytes that follow it.
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I", data[pos:pos + 4])[0], data[pos + 4:pos + 8]
        if length > len(data) - pos - 12:
            raise ImageReadError(path, f"PNG chunk {kind!r} at byte {pos} claims {length} bytes, more than the "
                                       f"{max(len(data) - pos - 12, 0)} left in the file; the file is damaged or "
                                       "truncated, export it again")
        if kind == b"IEND":
            return
        pos += 12 + length


def _jpeg_shape(path: Path, data: bytes) -> tuple[int, int]:
    # Walk the marker segments to the first start-of-frame (SOF0..SOF15 except DHT, JPG and DAC).
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return height, width
        pos += 2 + length
    raise ImageReadError(path, "JPEG header has no frame size (damaged or truncated); export the image again")


# ---- atomic writes -----------------------------------------------------------------------------------

def sync_folder(folder: str | os.PathLike) -> None:
    """Make the renames into `folder` durable: fsync the folder itself, without which a power cut can lose a
    rename whose file was synced. Nothing where folders cannot be opened (Windows) or synced (file systems that
    answer EINVAL or ENOTSUP); another failure is raised, naming the folder."""
    directory = getattr(os, "O_DIRECTORY", None)
    if directory is None:
        return
    fd = os.open(folder, os.O_RDONLY | directory)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise OSError(exc.errno, exc.strerror or str(exc), str(folder)) from exc
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` (`.NAME.PID.RANDOM.tmp`, one per write, so two writers never share
    one); on success it replaces `path` (the folder synced, so the rename survives a power cut), on error it is
    removed. It is created as an ordinary new file, whose
    permissions the umask decides (a shared model or results folder stays readable to those it should be)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp_path
        os.replace(tmp_path, path)
        sync_folder(path.parent)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        # A refused write (a full disk) names no file, or the temporary one: name the file being written.
        if exc.filename in (None, str(tmp_path)):
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` through a synced temporary file and a rename: never a torn file."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj, *, indent: int = 2) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=True) + "\n")


# ---- a set of files replaced all or none ---------------------------------------------------------------

@contextlib.contextmanager
def staging_folder(target: str | os.PathLike, staging: str | os.PathLike) -> Iterator[Path]:
    """Yield the empty folder `staging`, in which a set of files bound for the folder `target` is written whole
    before `move_staged` moves it in; so a write the file system refuses (a full disk) leaves what `target`
    held as it was. `staging` must be on `target`'s file system (inside it or beside it), so that moving in is
    renames only, which a full disk does not refuse. One a killed run left is removed first, and it is removed
    on the way out with whatever is still in it. An OSError about a file in it names that file's place in
    `target` (`staging/ifrt_full/config.pbtxt` -> `target/ifrt_full/config.pbtxt`), the file the user asked
    for."""
    target, staging = Path(target), Path(staging)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except OSError as exc:
        staged = Path(exc.filename) if isinstance(exc.filename, (str, os.PathLike)) else None
        if staged is None or not staged.is_relative_to(staging) or staged == staging:
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(target / staged.relative_to(staging))) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# renameat2's flag that swaps two existing paths in one step (linux/fs.h), and its "relative to the current
# folder" descriptor (linux/fcntl.h).
RENAME_EXCHANGE = 2
AT_FDCWD = -100


@functools.cache
def _renameat2():
    """libc's `renameat2` (glibc 2.28 and later), or None where there is none (another system, an older or
    another C library)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def exchange_paths(first: str | os.PathLike, second: str | os.PathLike) -> bool:
    """Swap two existing paths on one file system in one rename (`renameat2(..., RENAME_EXCHANGE)`): at no
    instant does either name stand empty, and a crash leaves them swapped or not. Returns False, having
    changed nothing, where the swap is not available: no `renameat2` (not Linux, or a C library without it),
    or a kernel or file system that refuses the flag (ENOSYS, EINVAL: some FUSE and NFS mounts). Any other
    failure is raised as an OSError naming both paths."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


def move_staged(staging: Path, target: Path, names: list[str]) -> None:
    """Move `names` from `staging` into `target` by renames, in the order given (what a reader opens first goes
    last). A staged folder replaces the folder of its name whole, so none of the earlier one's files stays
    beside the new ones; the earlier one ends in `staging`, to be removed with it:
    - swapped with it in one rename (`exchange_paths`, Linux on a file system that supports it):
      `target/name` is the earlier folder or the new one at every instant, so a reader (a Triton server polling
      its repository) never finds it missing, and a crash leaves one or the other;
    - elsewhere, two renames (the earlier one into `staging/.replaced`, then the new one in): between them
      `target/name` is missing for a moment, and a crash there leaves it missing until the next run.
    A staged file replaces a file of its name in one rename; it does not replace a folder."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        staged, placed = staging / name, target / name
        if staged.is_dir() and placed.is_dir():
            if not exchange_paths(staged, placed):
                replaced = staging / ".replaced"
                replaced.mkdir(exist_ok=True)
                os.replace(placed, replaced / name)
                os.replace(staged, placed)
        else:
            os.replace(staged, placed)
        if placed.is_dir():
            sync_folder(placed)
    sync_folder(target)


def encode_image(array: np.ndarray, fmt: str, *, compression: str | None = None) -> bytes:
    """Encode a 2-D image as 'tiff' (uint8/uint16/float32) or 'png' (uint8/uint16) bytes.

    TIFFs carry no timestamp or description, so equal arrays give equal bytes.
    """
    array = np.asarray(array)
    if array.ndim != 2 and not (array.ndim == 3 and array.shape[2] == 3 and fmt == "png"):
        raise ValueError(f"expected a 2-D image, got shape {array.shape}")
    if fmt == "tiff":
        if array.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"{array.dtype} pixels are not supported (expected uint8, uint16 or float32)")
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, array, photometric="minisblack", metadata=None, compression=compression)
        return buffer.getvalue()
    if fmt == "png":
        if array.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"PNG holds uint8 or uint16 pixels, not {array.dtype}; save float images as TIFF")
        ok, encoded = cv2.imencode(".png", array)
        if not ok:
            raise ValueError("OpenCV could not encode the PNG")
        return encoded.tobytes()
    raise ValueError(f"unknown image format {fmt!r} (expected 'tiff' or 'png')")


def write_image_atomic(path: str | os.PathLike, array: np.ndarray, *, compression: str | None = None) -> Path:
    """Write `array` to `path` (.tif/.tiff or .png) atomically; returns the path."""
    suffix = Path(path).suffix.lower()
    fmt = {".tif": "tiff", ".tiff": "tiff", ".png": "png"}.get(suffix)
    if fmt is None:
        raise ValueError(f"{path}: cannot write {suffix or 'files without a suffix'} (use .tif or .png)")
    return write_bytes_atomic(path, encode_image(array, fmt, compression=compression))
