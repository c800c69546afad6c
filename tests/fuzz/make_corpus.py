"""Seed corpus for the image-reader fuzzer, generated at fuzz time (nothing binary is committed).

Small images (a few hundred bytes to a few KB) in every variant `ifrt.imageio.read_image` meets:
8/16-bit and float TIFF, multi-page, BigTIFF, OME-TIFF, deflate-compressed, tiled, planar RGB,
PNG 8/16-bit grey and colour, JPEG grey and colour; then truncated and header-only copies of each,
and tiny files that claim a huge image (decompression bombs).

    python tests/fuzz/make_corpus.py OUT_DIR
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import tifffile


def _tiff(array: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **kwargs)
    return buffer.getvalue()


def _png(array: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", array)
    assert ok
    return data.tobytes()


def _jpeg(array: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", array, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return data.tobytes()


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming width x height 16-bit grey, with one tiny IDAT."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def tiff_bomb(width: int, height: int, samples: int = 1) -> bytes:
    """A classic little-endian TIFF whose one IFD claims width x height (x samples) uint16 pixels
    stored in a single 8-byte strip."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 16), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 0), (277, 3, 1, samples), (278, 4, 1, height), (279, 4, 1, 8)]
    ifd_offset = 8
    data_offset = ifd_offset + 2 + 12 * len(entries) + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_offset) + struct.pack("<H", len(entries)))
    for tag, kind, count, value in entries:
        value = data_offset if tag == 273 else value
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, count) + packed
    out += struct.pack("<I", 0) + b"\0" * 8
    return bytes(out)


def seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    u16 = (rng.random((24, 20)) * 4000 + 100).astype(np.uint16)
    u8 = (u16 >> 4).astype(np.uint8)
    f32 = u16.astype(np.float32) / 4000
    rgb = np.stack([u8, u8 // 2, u8 // 3], axis=-1)
    files = {
        "u8.tif": _tiff(u8),
        "u16.tif": _tiff(u16),
        "f32.tif": _tiff(f32),
        "f64.tif": _tiff(f32.astype(np.float64)),
        "u32.tif": _tiff(u16.astype(np.uint32)),
        "multipage.tif": _tiff(np.stack([u16, u16[::-1]]), photometric="minisblack"),
        "bigtiff.tif": _tiff(u16, bigtiff=True),
        "ome.tif": _tiff(u16[None], ome=True),
        "deflate.tif": _tiff(u16, compression="zlib"),
        "tiled.tif": _tiff(np.tile(u16, (2, 2)), tile=(16, 16)),
        "planar_rgb.tif": _tiff(np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate"),
        "rgb.tif": _tiff(rgb, photometric="rgb"),
        "u8.png": _png(u8),
        "u16.png": _png(u16),
        "rgb.png": _png(rgb),
        "grey.jpg": _jpeg(u8),
        "rgb.jpg": _jpeg(rgb),
        "bomb.png": png_bomb(1 << 20, 1 << 20),
        "bomb.tif": tiff_bomb(1 << 20, 1 << 20),
        "samples_bomb.tif": tiff_bomb(4096, 4096, samples=4096),
    }
    for name, data in list(files.items()):
        if "bomb" in name:
            continue
        files[f"truncated_{name}"] = data[: len(data) // 2]
        files[f"header_{name}"] = data[:64]
    return files


def main(out: str) -> int:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (folder / name).write_bytes(data)
    print(f"{len(list(folder.iterdir()))} seed files in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
