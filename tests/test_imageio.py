"""Image reading and atomic writing: formats, pixel types, the pixel limit and the error messages."""

import contextlib
import ctypes
import errno
import os
import stat

import cv2
import numpy as np
import pytest
import tifffile

from ifrt import imageio
from ifrt.imageio import (
    ImageReadError,
    atomic_path,
    exchange_paths,
    image_shape,
    move_staged,
    read_image,
    staging_folder,
    write_image_atomic,
    write_json_atomic,
    write_text_atomic,
)


@pytest.fixture
def ramp16():
    return (np.arange(48 * 64, dtype=np.uint32) * 20).astype(np.uint16).reshape(48, 64)


def test_uint16_tiff_round_trips_bit_exactly(tmp_path, ramp16):
    path = write_image_atomic(tmp_path / "a.tif", ramp16)
    image = read_image(path)
    assert image.dtype == np.uint16
    np.testing.assert_array_equal(image, ramp16)


def test_uint8_png_round_trips_bit_exactly(tmp_path):
    ramp = np.arange(40 * 30, dtype=np.uint16).reshape(30, 40).astype(np.uint8)
    image = read_image(write_image_atomic(tmp_path / "a.png", ramp))
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, ramp)


def test_uint16_png_keeps_16_bits(tmp_path, ramp16):
    np.testing.assert_array_equal(read_image(write_image_atomic(tmp_path / "a.png", ramp16)), ramp16)


def test_float32_tiff_is_read_as_float32(tmp_path):
    data = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    tifffile.imwrite(tmp_path / "f.tif", data)
    image = read_image(tmp_path / "f.tif")
    assert image.dtype == np.float32
    np.testing.assert_array_equal(image, data)


def test_jpeg_is_read_as_uint8_with_its_size(tmp_path):
    cv2.imwrite(str(tmp_path / "a.jpg"), np.full((30, 50), 100, np.uint8))
    image = read_image(tmp_path / "a.jpg")
    assert image.shape == (30, 50) and image.dtype == np.uint8
    assert image_shape(tmp_path / "a.jpg") == (30, 50)


def test_page_selects_an_image_of_a_multipage_tiff(tmp_path):
    stack = np.stack([np.full((8, 9), k, np.uint16) for k in range(3)])
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    assert read_image(tmp_path / "stack.tif", page=2)[0, 0] == 2
    assert read_image(tmp_path / "stack.tif").shape == (8, 9)


def test_missing_page_names_the_page_count(tmp_path):
    tifffile.imwrite(tmp_path / "one.tif", np.zeros((8, 8), np.uint16))
    with pytest.raises(ImageReadError, match=r"page 3 does not exist \(the file has 1 page"):
        read_image(tmp_path / "one.tif", page=3)


def test_ome_tiff_channel_pages_are_read(tmp_path):
    channels = np.stack([np.full((16, 16), 10 * (k + 1), np.uint16) for k in range(2)])
    tifffile.imwrite(tmp_path / "x.ome.tif", channels, ome=True, metadata={"axes": "CYX"})
    assert read_image(tmp_path / "x.ome.tif", page=1)[0, 0] == 20


def test_rgb_png_becomes_its_brightest_channel(tmp_path):
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 1] = 200  # a green FITC export
    cv2.imwrite(str(tmp_path / "green.png"), rgb)
    image = read_image(tmp_path / "green.png")
    assert image.shape == (10, 12) and int(image.max()) == 200


def test_planar_rgb_tiff_becomes_its_brightest_channel(tmp_path):
    planes = np.zeros((3, 8, 9), np.uint16)
    planes[1] = 700
    tifffile.imwrite(tmp_path / "rgb.tif", planes, photometric="rgb", planarconfig="separate")
    image = read_image(tmp_path / "rgb.tif")
    assert image.shape == (8, 9) and int(image.max()) == 700


def test_uint32_pixels_are_refused_with_the_supported_types(tmp_path):
    tifffile.imwrite(tmp_path / "x.tif", np.zeros((8, 8), np.uint32))
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / "x.tif")
    assert str(info.value) == f"{tmp_path / 'x.tif'}: uint32 pixels are not supported (expected uint8, uint16 or float32)"
    assert info.value.path == str(tmp_path / "x.tif")


def test_pixel_limit_refuses_before_decoding(tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((100, 200), np.uint16))
    decoded = []
    monkeypatch.setattr(tifffile.TiffPage, "asarray", lambda *a, **k: decoded.append(1))
    with pytest.raises(ImageReadError, match=r"200x100 = 20000 pixels exceeds the limit of 10000"):
        read_image(tmp_path / "big.tif", max_pixels=10_000)
    assert decoded == []


def test_png_pixel_limit_uses_the_header(tmp_path, monkeypatch):
    cv2.imwrite(str(tmp_path / "big.png"), np.zeros((100, 200), np.uint8))
    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail("decoded a PNG over the pixel limit"))
    with pytest.raises(ImageReadError, match="exceeds the limit"):
        read_image(tmp_path / "big.png", max_pixels=10_000)


def test_jpeg_pixel_limit_uses_the_frame_header(tmp_path, monkeypatch):
    cv2.imwrite(str(tmp_path / "big.jpg"), np.zeros((100, 200), np.uint8))
    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail("decoded a JPEG over the pixel limit"))
    with pytest.raises(ImageReadError, match=r"200x100 = 20000 pixels exceeds the limit"):
        read_image(tmp_path / "big.jpg", max_pixels=10_000)


def test_empty_file_is_reported_as_empty(tmp_path):
    (tmp_path / "zero.tif").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"zero.tif: file is empty \(0 bytes\)"):
        read_image(tmp_path / "zero.tif")


def test_missing_file_is_reported_as_not_found(tmp_path):
    with pytest.raises(ImageReadError, match=r"nope.tif: file not found"):
        read_image(tmp_path / "nope.tif")


def test_unknown_format_is_recognised_by_content_not_name(tmp_path):
    (tmp_path / "notes.tif").write_text("hello, this is text")
    with pytest.raises(ImageReadError, match="not a TIFF, PNG or JPEG file"):
        read_image(tmp_path / "notes.tif")


def test_truncated_tiff_is_a_named_decode_error(tmp_path, ramp16):
    data = (write_image_atomic(tmp_path / "full.tif", ramp16)).read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[:200])
    with pytest.raises(ImageReadError, match=r"cut.tif: cannot"):
        read_image(tmp_path / "cut.tif")


def test_truncated_png_is_a_named_decode_error(tmp_path, ramp16):
    data = write_image_atomic(tmp_path / "full.png", ramp16).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:60])
    with pytest.raises(ImageReadError, match=r"cut.png: "):
        read_image(tmp_path / "cut.png")


def test_equal_arrays_write_equal_tiff_bytes(tmp_path, ramp16):
    first = write_image_atomic(tmp_path / "a.tif", ramp16).read_bytes()
    second = write_image_atomic(tmp_path / "b.tif", ramp16.copy()).read_bytes()
    assert first == second


def test_atomic_write_leaves_no_temporary_file(tmp_path, ramp16):
    write_image_atomic(tmp_path / "a.tif", ramp16)
    write_text_atomic(tmp_path / "a.csv", "x\n")
    write_json_atomic(tmp_path / "a.json", {"b": 1})
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "a.json", "a.tif"]


def test_a_refused_write_names_the_file_being_written_and_leaves_no_temporary(tmp_path, ramp16, monkeypatch):
    def disk_full(fd):  # what a full disk does when the data reaches it: an errno, no file name
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError) as info:
        write_image_atomic(tmp_path / "deblurred.tif", ramp16)
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(tmp_path / "deblurred.tif"))
    assert os.listdir(tmp_path) == []


def _recording_fsync(monkeypatch, folder_answer=None):
    """os.fsync that records ('folder' | 'file', the names in tmp folder at that moment), and answers a folder's
    sync with `folder_answer` (an errno to raise) when given."""
    calls, real = [], os.fsync

    def fsync(fd):
        is_folder = stat.S_ISDIR(os.fstat(fd).st_mode)
        calls.append("folder" if is_folder else "file")
        if is_folder and folder_answer is not None:
            raise OSError(folder_answer, os.strerror(folder_answer))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def test_an_atomic_write_syncs_the_file_then_the_folder_after_the_rename(tmp_path, monkeypatch):
    calls = _recording_fsync(monkeypatch)
    write_text_atomic(tmp_path / "results.csv", "x\n")
    assert calls == ["file", "folder"]


def test_a_folder_the_file_system_cannot_sync_is_accepted_and_another_failure_names_the_folder(tmp_path, monkeypatch):
    _recording_fsync(monkeypatch, folder_answer=errno.EINVAL)
    assert write_text_atomic(tmp_path / "a.csv", "x\n").read_text() == "x\n"
    monkeypatch.undo()
    _recording_fsync(monkeypatch, folder_answer=errno.EIO)
    with pytest.raises(OSError) as info:
        write_text_atomic(tmp_path / "b.csv", "y\n")
    assert (info.value.errno, info.value.filename) == (errno.EIO, str(tmp_path))


def test_moving_staged_files_in_syncs_the_target_folder(tmp_path, monkeypatch):
    staging, target = tmp_path / ".staging", tmp_path / "out"
    staging.mkdir()
    (staging / "a.txt").write_text("a")
    calls = _recording_fsync(monkeypatch)
    move_staged(staging, target, ["a.txt"])
    assert calls == ["folder"] and (target / "a.txt").read_text() == "a"


def test_interrupted_write_keeps_the_previous_file_and_no_temporary(tmp_path):
    target = write_text_atomic(tmp_path / "m.csv", "old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["m.csv"]


# ---- staging_folder and move_staged: a set of files replaced all or none ------------------------------------

def _files_in(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_write_refused_in_the_staging_folder_names_the_target_file_and_leaves_the_target_as_it_was(tmp_path,
                                                                                                      monkeypatch):
    target = tmp_path / "report"
    write_text_atomic(target / "report.json", "old\n")
    staging = tmp_path / ".report.staging"

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError) as info, staging_folder(target, staging) as staged:
        write_text_atomic(staged / "report.json", "new\n")
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(target / "report.json"))
    assert _files_in(target) == {"report.json": b"old\n"}
    assert not staging.exists()


def test_an_error_about_a_file_outside_the_staging_folder_keeps_its_name(tmp_path):
    with pytest.raises(FileNotFoundError) as info, staging_folder(tmp_path / "out", tmp_path / ".staging"):
        (tmp_path / "source.onnx").read_bytes()
    assert info.value.filename == str(tmp_path / "source.onnx")


def test_a_staging_folder_a_killed_run_left_is_emptied_before_use(tmp_path):
    (tmp_path / ".staging").mkdir()
    (tmp_path / ".staging" / "half.onnx").write_bytes(b"half a graph")
    with staging_folder(tmp_path / "out", tmp_path / ".staging") as staged:
        assert os.listdir(staged) == []


def test_a_staged_folder_replaces_the_folder_of_its_name_whole(tmp_path):
    target = tmp_path / "repo"
    write_text_atomic(target / "ifrt_full" / "1" / "model.plan", "old engine")
    write_text_atomic(target / "other" / "config.pbtxt", "another model")
    with staging_folder(target, target / ".staging") as staged:
        write_text_atomic(staged / "ifrt_full" / "1" / "model.onnx", "new graph")
        move_staged(staged, target, ["ifrt_full"])
    assert _files_in(target) == {"ifrt_full/1/model.onnx": b"new graph", "other/config.pbtxt": b"another model"}


def test_staged_files_move_in_the_order_given_and_a_file_does_not_replace_a_folder(tmp_path):
    target = tmp_path / "last"
    (target / "trainer.json").mkdir(parents=True)
    with pytest.raises(IsADirectoryError) as info, staging_folder(target, tmp_path / ".last.staging") as staged:
        write_text_atomic(staged / "model.json", "weights' config")
        write_text_atomic(staged / "trainer.json", "resume point")
        move_staged(staged, target, ["model.json", "trainer.json"])
    assert info.value.filename == str(target / "trainer.json")
    assert (target / "model.json").read_text() == "weights' config"


def _earlier_and_staged_model(tmp_path):
    """REPO/ifrt_full of an earlier export, and a new one staged beside the repository."""
    target, staging = tmp_path / "repo", tmp_path / ".repo.staging"
    write_text_atomic(target / "ifrt_full" / "config.pbtxt", "earlier config")
    write_text_atomic(staging / "ifrt_full" / "config.pbtxt", "new config")
    return target, staging


@pytest.fixture
def swappable(tmp_path):
    """Skips where this file system (or system) cannot swap two folders in one rename."""
    first, second = tmp_path / ".probe-a", tmp_path / ".probe-b"
    first.mkdir()
    second.mkdir()
    if not exchange_paths(first, second):
        pytest.skip("no renameat2(RENAME_EXCHANGE) here")
    first.rmdir()
    second.rmdir()


def test_a_staged_folder_is_swapped_with_the_earlier_one_so_the_target_folder_is_never_missing(tmp_path, monkeypatch,
                                                                                              swappable):
    target, staging = _earlier_and_staged_model(tmp_path)
    present_after_each_rename, real_replace = [], os.replace

    def replace(source, destination):
        real_replace(source, destination)
        present_after_each_rename.append((target / "ifrt_full").is_dir())

    monkeypatch.setattr(os, "replace", replace)
    move_staged(staging, target, ["ifrt_full"])
    assert False not in present_after_each_rename
    assert (target / "ifrt_full" / "config.pbtxt").read_text() == "new config"
    assert (staging / "ifrt_full" / "config.pbtxt").read_text() == "earlier config"  # removed with the staging folder


def _renameat2_refusing(code):
    def renameat2(*args):
        ctypes.set_errno(code)
        return -1
    return renameat2


@pytest.mark.parametrize("renameat2", [None, _renameat2_refusing(errno.EINVAL), _renameat2_refusing(errno.ENOSYS)],
                         ids=["absent", "EINVAL", "ENOSYS"])
def test_without_the_swap_a_staged_folder_replaces_the_earlier_one_by_two_renames(tmp_path, monkeypatch, renameat2):
    target, staging = _earlier_and_staged_model(tmp_path)
    monkeypatch.setattr(imageio, "_renameat2", lambda: renameat2)
    move_staged(staging, target, ["ifrt_full"])
    assert _files_in(target) == {"ifrt_full/config.pbtxt": b"new config"}
    assert _files_in(staging) == {".replaced/ifrt_full/config.pbtxt": b"earlier config"}


@pytest.mark.skipif(imageio._renameat2() is None, reason="no renameat2 here")
def test_a_swap_refused_for_another_reason_is_an_error_naming_both_paths(tmp_path):
    (tmp_path / "staged").mkdir()
    with pytest.raises(FileNotFoundError) as info:
        exchange_paths(tmp_path / "staged", tmp_path / "missing")
    assert (info.value.filename, info.value.filename2) == (str(tmp_path / "staged"), str(tmp_path / "missing"))


def test_unsupported_pixel_type_is_refused_on_write(tmp_path):
    with pytest.raises(ValueError, match="int64 pixels are not supported"):
        write_image_atomic(tmp_path / "m.tif", np.zeros((4, 4), np.int64))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("compression", ["lzw", "zstd", "jpeg"])
def test_compressed_tiffs_are_read(tmp_path, compression):
    image = (np.arange(64 * 80).reshape(64, 80) % 251).astype(np.uint8)
    tifffile.imwrite(tmp_path / "field.tif", image, compression=compression)
    decoded = read_image(tmp_path / "field.tif")
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    if compression != "jpeg":  # lossy
        np.testing.assert_array_equal(decoded, image)


def test_opencv_lzw_tiff_is_read(tmp_path, ramp16):
    cv2.imwrite(str(tmp_path / "field.tif"), ramp16)  # OpenCV writes LZW by default
    assert tifffile.TiffFile(tmp_path / "field.tif").pages[0].compression == 5
    np.testing.assert_array_equal(read_image(tmp_path / "field.tif"), ramp16)


def test_a_codec_tifffile_lacks_is_named_with_the_install(tmp_path, monkeypatch):
    import ifrt.imageio as imageio

    tifffile.imwrite(tmp_path / "field.tif", np.zeros((64, 64), np.uint8))

    def without_imagecodecs(*args):
        raise ValueError("<COMPRESSION.LZW: 5> requires the 'imagecodecs' package")

    monkeypatch.setattr(imageio, "_read_tiff", without_imagecodecs)
    with pytest.raises(ImageReadError, match=r"field.tif: its TIFF compression \(LZW\) needs the imagecodecs package, "
                                             r"which is missing: pip install imagecodecs"):
        read_image(tmp_path / "field.tif")


def test_a_broken_tiff_is_one_error_without_tifffile_log_lines(tmp_path, caplog):
    import logging

    tifffile.imwrite(tmp_path / "ok.tif", np.zeros((40, 40), np.uint16))
    data = (tmp_path / "ok.tif").read_bytes()
    (tmp_path / "broken.tif").write_bytes(data[:4] + (0xE70E7000).to_bytes(4, "little") + data[8:])
    with caplog.at_level(logging.DEBUG, logger="tifffile"):
        with pytest.raises(ImageReadError, match="broken.tif"):
            read_image(tmp_path / "broken.tif")
        assert not [r for r in caplog.records if r.name == "tifffile"]
        with contextlib.suppress(tifffile.TiffFileError):
            tifffile.TiffFile(tmp_path / "broken.tif").close()  # outside ifrt, tifffile's own logging is kept
        assert [r for r in caplog.records if r.name == "tifffile"]
