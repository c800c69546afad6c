"""Hostile image files: the decompression-bomb guard refuses a tiny file claiming a huge image before
any pixel is decoded, and every input the fuzzer found or was seeded with reads to a valid image or
raises ImageReadError, never anything else."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from ifrt.imageio import SUPPORTED_DTYPES, ImageReadError, read_image

REGRESSIONS = Path(__file__).parent / "fuzz_regressions" / "imageio"
sys.path.insert(0, str(Path(__file__).parent / "fuzz"))
from make_corpus import png_bomb, seeds, tiff_bomb  # noqa: E402


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any decoder is asked for pixels."""
    def refuse(*args, **kwargs):
        raise AssertionError("pixels were decoded before the size was checked")

    monkeypatch.setattr(cv2, "imdecode", refuse)
    monkeypatch.setattr(tifffile.TiffPage, "asarray", refuse)


@pytest.mark.parametrize("name, data", [("bomb.png", png_bomb(100_000, 100_000)),
                                        ("bomb.tif", tiff_bomb(100_000, 100_000))])
def test_tiny_file_claiming_a_huge_image_is_refused_before_decoding(tmp_path, no_decoding, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    assert path.stat().st_size < 200
    with pytest.raises(ImageReadError, match=r"100000x100000 = 10000000000 pixels exceeds the limit of 268435456"):
        read_image(path)


def test_tiff_claiming_thousands_of_samples_per_pixel_is_refused_before_decoding(tmp_path, no_decoding):
    # 4096 x 4096 passes the pixel limit, but 4096 uint16 samples per pixel would decode to 128 GiB.
    path = tmp_path / "samples.tif"
    path.write_bytes(tiff_bomb(4096, 4096, samples=4096))
    with pytest.raises(ImageReadError, match="4096 samples per pixel and depth 1 is not a single-channel image"):
        read_image(path)


def test_tiff_claiming_huge_tiles_is_refused_before_decoding(tmp_path, no_decoding):
    # A 32x32 image whose header claims 16 x 134217744-pixel tiles: each tile would decode into a 2 GiB buffer.
    path = tmp_path / "tiles.tif"
    tifffile.imwrite(path, np.zeros((32, 32), np.uint16), tile=(16, 16))
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags["TileLength"]
        offset, kind = tag.valueoffset, tag.dtype
    data = bytearray(path.read_bytes())
    assert kind == 4  # LONG: room for the value
    data[offset:offset + 4] = (134217744).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match=r"TIFF tiles of 16x134217744 = 2147483904 pixels each exceed the limit "
                                             r"of 268435456; the file is damaged, or save it with smaller tiles"):
        read_image(path)


def test_pixel_limit_is_configurable(tmp_path):
    path = tmp_path / "frame.tif"
    tifffile.imwrite(path, np.zeros((64, 64), np.uint16))
    with pytest.raises(ImageReadError, match="64x64 = 4096 pixels exceeds the limit of 4095"):
        read_image(path, max_pixels=4095)
    assert read_image(path, max_pixels=4096).shape == (64, 64)


def _read_or_refuse(path: Path) -> str:
    try:
        image = read_image(path, max_pixels=1 << 20)
    except ImageReadError as exc:
        assert exc.path == str(path)
        return "refused"
    assert image.ndim == 2 and image.dtype in SUPPORTED_DTYPES
    return "read"


@pytest.mark.parametrize("path", sorted(REGRESSIONS.iterdir()), ids=lambda p: p.name)
def test_fuzzer_regression_inputs_are_read_or_refused_cleanly(path):
    assert _read_or_refuse(path) in ("read", "refused")


def test_every_seed_variant_is_read_or_refused_cleanly(tmp_path):
    outcomes = {}
    for name, data in seeds().items():
        path = tmp_path / name
        path.write_bytes(data)
        outcomes[name] = _read_or_refuse(path)
    readable = {"u8.tif", "u16.tif", "f32.tif", "f64.tif", "multipage.tif", "bigtiff.tif", "ome.tif",
                "deflate.tif", "tiled.tif", "planar_rgb.tif", "rgb.tif", "u8.png", "u16.png", "rgb.png",
                "grey.jpg", "rgb.jpg"}
    assert {n for n, o in outcomes.items() if o == "read"} == readable


def test_png_chunk_claiming_more_bytes_than_the_file_has_is_refused_before_decoding(tmp_path, no_decoding):
    # Found by fuzzing: OpenCV allocated the 2.8 GB this 572-byte file's IDAT length claims.
    path = REGRESSIONS / "png-chunk-length-oom.png"
    with pytest.raises(ImageReadError, match=r"PNG chunk b'IDAT' at byte 33 claims 2852127235 bytes, more than the 527 left"):
        read_image(path)
