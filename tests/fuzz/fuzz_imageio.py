"""atheris fuzzer for the image readers: random bytes as a file into `ifrt.imageio.read_image` and
`image_shape`.

Contract: every bad file raises `ImageReadError` (naming the file); nothing else escapes, nothing
crashes, hangs or decodes past the pixel limit. A decoded image is 2-D, of a supported dtype, and
within `max_pixels`. libFuzzer's -timeout and -rss_limit_mb catch hangs and decompression bombs.

    python tests/fuzz/make_corpus.py corpus/imageio
    python tests/fuzz/fuzz_imageio.py corpus/imageio -max_total_time=600 -rss_limit_mb=1024 -timeout=10
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["ifrt", "tifffile"]):
    from ifrt import imageio

MAX_PIXELS = 1 << 20
_folder = Path(tempfile.mkdtemp(prefix="ifrt-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))


def check_file(path: Path) -> None:
    """Read `path` as ifrt does; raise AssertionError (a finding) if the contract breaks."""
    try:
        image = imageio.read_image(path, max_pixels=MAX_PIXELS)
    except imageio.ImageReadError as exc:
        assert exc.path == str(path), f"ImageReadError names {exc.path!r}, not the file read"
    else:
        assert image.ndim == 2, image.shape
        assert image.dtype in imageio.SUPPORTED_DTYPES, image.dtype
        assert image.size <= MAX_PIXELS, image.shape
    try:
        imageio.image_shape(path)
    except imageio.ImageReadError:
        pass


def test_one_input(data: bytes) -> None:
    path = _folder / "input"
    path.write_bytes(data)
    check_file(path)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
