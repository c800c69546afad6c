"""`ifrt.live`: the hand-over queue, the sources, frame checks, the sweep rule and the live loop."""

import collections
import io
import json
import os
import re
import signal
import threading
import time

import numpy as np
import pytest

from ifrt import live
from ifrt.imageio import write_image_atomic
from ifrt.live import overlay as live_overlay


def frame(index: int, shape=(64, 64), dtype=np.uint16) -> live.Frame:
    return live.Frame(np.full(shape, index, dtype), index, f"frame {index}", 0.0)


def drain(source, stop=None) -> list:
    return list(source.frames(stop or threading.Event()))


def structured(shape=(64, 64), seed=0, dtype=np.uint16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (1000 + 20000 * rng.random(shape)).astype(dtype)


@pytest.fixture(scope="module")
def session(tiny_package):
    import ifrt

    return ifrt.Session(tiny_package, backend="ort")


# ---- FrameQueue --------------------------------------------------------------------------------------------


def test_latest_frame_wins_when_the_loop_is_behind():
    frames = live.FrameQueue(capacity=1, drop=True)
    for i in range(3):
        frames.put(frame(i))
    assert frames.get(timeout=0).index == 2
    assert frames.dropped == 2


def test_queue_holds_at_most_its_capacity():
    frames = live.FrameQueue(capacity=2, drop=True)
    for i in range(100):
        frames.put(frame(i))
    assert len(frames) == 2
    assert [frames.get(timeout=0).index for _ in range(2)] == [98, 99]
    assert frames.dropped == 98


def test_waiting_queue_loses_no_frame():
    frames = live.FrameQueue(capacity=1, drop=False)
    stop = threading.Event()

    def produce():
        for i in range(20):
            frames.put(frame(i), stop)
        frames.close()

    producer = threading.Thread(target=produce)
    producer.start()
    received = []
    while (item := frames.get(timeout=5)) is not None:
        received.append(item.index)
    producer.join()
    assert received == list(range(20))
    assert frames.dropped == 0


def test_notices_are_not_dropped_with_frames():
    frames = live.FrameQueue(capacity=1, drop=True)
    frames.put(frame(0))
    frames.put(live.Notice("reconnecting", "camera 0: reconnect attempt 1 of 5 failed"))
    frames.put(frame(1))
    assert isinstance(frames.get(timeout=0), live.Notice)
    assert frames.get(timeout=0).index == 1


def test_a_skipped_input_comes_after_the_frames_read_before_it():
    frames = live.FrameQueue(capacity=2, drop=False)
    frames.put(frame(0))
    frames.put(frame(1))
    frames.put(live.Notice("skipped", "the stream ended 100 bytes into frame 2", 2, "frame 2"))
    assert [frames.get(timeout=0).index for _ in range(3)] == [0, 1, 2]


def test_a_skipped_input_before_a_later_frame_comes_first():
    frames = live.FrameQueue(capacity=2, drop=False)
    frames.put(live.Notice("skipped", "unreadable", 0, "a.tif"))
    frames.put(frame(1))
    assert [frames.get(timeout=0).index for _ in range(2)] == [0, 1]


def test_closed_queue_drains_then_returns_none():
    frames = live.FrameQueue()
    frames.put(frame(7))
    frames.close()
    assert frames.get(timeout=0).index == 7
    assert frames.get(timeout=0) is None


# ---- raw frames on a stream --------------------------------------------------------------------------------


def test_raw_format_parses_width_height_and_type():
    assert live.parse_raw_format("2048x1536:uint16") == (2048, 1536, np.dtype(np.uint16))
    assert live.parse_raw_format("64X32:float32") == (64, 32, np.dtype(np.float32))


def test_raw_format_error_shows_the_expected_form():
    with pytest.raises(ValueError, match=r"expected WIDTHxHEIGHT:TYPE .*uint8, uint16, float32"):
        live.parse_raw_format("2048x2048:int32")


def test_raw_stream_yields_frames_and_reports_a_truncated_last_frame():
    frames = [structured((4, 6), seed=i) for i in range(3)]
    data = b"".join(f.tobytes() for f in frames) + b"\x00" * 5
    items = drain(live.RawStreamSource(io.BytesIO(data), 6, 4, np.uint16))
    assert [i.image.tolist() for i in items[:3]] == [f.tolist() for f in frames]
    assert isinstance(items[3], live.Notice) and items[3].kind == "skipped"
    assert "ended 5 bytes into frame 3, which needs 48 (6x4 uint16)" in items[3].message


def test_raw_frames_above_the_pixel_limit_are_refused_before_reading():
    class Unread(io.BytesIO):
        def readinto(self, buffer):
            raise AssertionError("the stream was read")

    with pytest.raises(ValueError, match=r"^stdin: 6x4 = 24 pixels per frame exceeds the limit of 23 \(raise "
                                         r"--max-pixels, max_pixels= in Python, if the frames are genuine\)$"):
        live.RawStreamSource(Unread(), 6, 4, np.uint16, max_pixels=23)
    assert live.RawStreamSource(Unread(), 6, 4, np.uint16, max_pixels=24).frame_bytes == 48


# ---- frame checks ------------------------------------------------------------------------------------------


def test_first_frame_fixes_the_stream_size():
    check = live.FrameCheck()
    assert check.problem(np.zeros((64, 64), np.uint16)) is None
    reason = check.problem(np.zeros((32, 48), np.uint16))
    assert reason.startswith("48x32 frame, but this stream is 64x64")


def test_unsupported_pixel_type_is_named():
    assert live.FrameCheck().problem(np.zeros((8, 8), np.int32)) == \
        "int32 pixels are not supported (expected uint8, uint16 or float32)"


def test_bit_depth_change_mid_stream_is_a_problem():
    check = live.FrameCheck()
    check.problem(np.zeros((8, 8), np.uint16))
    assert check.problem(np.zeros((8, 8), np.uint8)).startswith("uint8 pixels, but this stream is uint16")


def test_any_size_accepts_a_new_size():
    check = live.FrameCheck(any_size=True)
    check.problem(np.zeros((64, 64), np.uint16))
    assert check.problem(np.zeros((32, 32), np.uint16)) is None


def test_colour_camera_frame_becomes_single_channel():
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 1] = 200
    assert live.single_channel(bgr).tolist() == [[200] * 4] * 4


# ---- sweep rule --------------------------------------------------------------------------------------------


def test_sweep_best_is_the_highest_quality_when_alone_in_its_band():
    sweep = live.SweepTracker(tolerance=0.02, metric="normalized_variance")
    for i, q in enumerate([0.2, 0.5, 0.9, 0.6]):
        sweep.add(i, f"z{i}", q, {"normalized_variance": 10.0 - i})
    best = sweep.best()
    assert (best["frame"], best["decided_by"]) == (2, "quality")


def test_sweep_ties_in_quality_are_broken_by_the_classical_metric():
    sweep = live.SweepTracker(tolerance=0.02, metric="normalized_variance")
    sweep.add(0, "z0", 0.90, {"normalized_variance": 5.0})
    sweep.add(1, "z1", 0.91, {"normalized_variance": 7.0})
    sweep.add(2, "z2", 0.895, {"normalized_variance": 6.0})
    sweep.add(3, "z3", 0.70, {"normalized_variance": 99.0})
    best = sweep.best()
    assert best["frame"] == 1
    assert best["tied"] == 3
    assert best["decided_by"].startswith("normalized_variance")


def test_sweep_forgets_frames_that_fall_out_of_the_band():
    sweep = live.SweepTracker(tolerance=0.02)
    sweep.add(0, "z0", 0.5, {"normalized_variance": 100.0})
    assert sweep.add(1, "z1", 0.9, {"normalized_variance": 1.0}) is True
    assert sweep.best()["frame"] == 1
    assert sweep.best()["tied"] == 1


@pytest.mark.parametrize("tolerance", [float("nan"), -0.01])
def test_a_sweep_tolerance_that_would_never_pick_is_refused(tolerance):
    with pytest.raises(ValueError, match=r"sweep tolerance .*: give a quality difference of at least 0"):
        live.SweepTracker(tolerance=tolerance)


def test_sweep_of_a_field_left_in_focus_keeps_memory_flat():
    # A camera left on a focused field: every frame ties on quality, for hours. Only frames that can still win
    # are kept (and a count per distinct quality in the band); `tied` still counts them all.
    import tracemalloc

    sweep = live.SweepTracker(tolerance=0.02)
    rng = np.random.default_rng(0)
    sweep.add(0, "frame 0", 0.9, {"normalized_variance": 1.0})
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for index in range(1, 5000):
        quality = 0.9 + 0.0005 * rng.integers(0, 20)  # a saturated score, within the band
        sweep.add(index, f"frame {index}", quality, {"normalized_variance": rng.random()})
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 100_000
    assert sweep.best()["tied"] == 5000


def test_sweep_pick_is_that_of_the_rule_over_every_frame_kept():
    rng = np.random.default_rng(1)
    frames = [(i, round(0.8 + 0.1 * rng.random(), 6), float(rng.integers(0, 50))) for i in range(400)]
    sweep = live.SweepTracker(tolerance=0.02)
    for i, quality, sharpness in frames:
        is_best = sweep.add(i, f"z{i}", quality, {"normalized_variance": sharpness})
        seen = frames[:i + 1]
        top = max(q for _, q, _ in seen)
        band = [f for f in seen if f[1] >= top - 0.02]
        expected = max(band, key=lambda f: (f[2], f[1]))  # the first of equals, as max keeps it
        assert sweep.best()["frame"] == expected[0]
        assert sweep.best()["tied"] == len(band)
        assert is_best == (expected[0] == i)


# ---- camera: disconnect, reconnect, give up ----------------------------------------------------------------


class FakeCapture:
    """A capture that delivers `frames` frames and then fails reads, like an unplugged camera;
    `frames=None` is a device that cannot be opened."""

    def __init__(self, frames, shape=(64, 64)):
        self.left, self.shape, self.released = frames, shape, False

    def isOpened(self):  # noqa: N802 - OpenCV's name
        return self.left is not None and not self.released

    def read(self):
        if not self.isOpened() or self.left == 0:
            return False, None
        self.left -= 1
        return True, structured(self.shape, seed=self.left)

    def release(self):
        self.released = True


class FakeCameraDriver:
    """Connection i delivers `connections[i]` frames; between connections `failed_opens` opens fail;
    after the last connection the camera never comes back."""

    def __init__(self, connections, failed_opens=0):
        self.pending, self.failed_opens = list(connections), failed_opens
        self.captures: list[FakeCapture] = []
        self._to_fail = 0

    def open(self):
        if self._to_fail or not self.pending:
            self._to_fail = max(self._to_fail - 1, 0)
            capture = FakeCapture(None)
        else:
            capture = FakeCapture(self.pending.pop(0))
            self._to_fail = self.failed_opens
        self.captures.append(capture)
        return capture


def test_camera_reconnects_after_a_disconnect_and_continues():
    driver = FakeCameraDriver([3, 2], failed_opens=2)
    source = live.CaptureSource(driver.open, "camera 0", camera=True, reconnect=5, backoff=0.001)
    items = []
    with pytest.raises(live.SourceLost):
        for item in source.frames(threading.Event()):
            items.append(item)
    frames = [i for i in items if isinstance(i, live.Frame)]
    kinds = [i.kind for i in items if isinstance(i, live.Notice)]
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert kinds[:4] == ["disconnected", "reconnecting", "reconnecting", "reconnected"]


def test_camera_that_does_not_come_back_stops_with_a_message():
    driver = FakeCameraDriver([2])
    source = live.CaptureSource(driver.open, "camera 0", camera=True, reconnect=3, backoff=0.001)
    with pytest.raises(live.SourceLost, match=r"camera 0: disconnected after 2 frames and did not come back "
                                              r"\(3 reconnect attempts"):
        drain(source)
    assert all(c.released for c in driver.captures)


def test_camera_that_cannot_be_opened_says_so():
    source = live.CaptureSource(lambda: FakeCapture(None), "camera 3", camera=True)
    with pytest.raises(live.SourceLost, match="camera 3: cannot open"):
        drain(source)


def test_video_file_ends_without_reconnecting():
    driver = FakeCameraDriver([4])
    items = drain(live.CaptureSource(driver.open, "clip.avi", camera=False))
    assert len(items) == 4 and all(isinstance(i, live.Frame) for i in items)
    assert len(driver.captures) == 1 and driver.captures[0].released


def test_video_file_whose_reads_fail_well_before_its_recorded_count_is_lost():
    driver = FakeCameraDriver([40])
    source = live.CaptureSource(driver.open, "clip.avi", camera=False, frame_count=100)
    with pytest.raises(live.SourceLost, match=r"^clip\.avi: reading stopped after 40 of the 100 frames the file "
                                              r"records; it is damaged or truncated there"):
        drain(source)
    assert driver.captures[0].released


@pytest.mark.parametrize(("frames", "frame_count"), [
    (96, 100),  # within 5 % of an estimated count: its end
    (8, 10),  # within 2 frames of a short video's count
    (104, 100),  # more than the count: an underestimate
    (40, 0),  # no count recorded
    (40, float("nan")),
    (40, -1),
])
def test_video_file_that_stops_near_or_without_a_recorded_count_ends(frames, frame_count):
    driver = FakeCameraDriver([frames])
    items = drain(live.CaptureSource(driver.open, "clip.mkv", camera=False, frame_count=frame_count))
    assert len(items) == frames


def test_looped_video_file_reopens_and_plays_again_until_stopped():
    driver = FakeCameraDriver([3, 3, 3, 3])
    source = live.CaptureSource(driver.open, "clip.avi", camera=False, loop=True)
    stop, frames = threading.Event(), []
    for item in source.frames(stop):
        frames.append(item)
        if len(frames) == 7:
            stop.set()
    assert [f.index for f in frames] == list(range(7))
    assert [f.label for f in frames][2:5] == ["frame 2 (pass 1)", "frame 0 (pass 2)", "frame 1 (pass 2)"]
    assert source.passes == 2 and len(driver.captures) == 3 and all(c.released for c in driver.captures)
    assert not source.live  # every frame of a file is analysed unless it is paced


def test_looped_video_that_gives_no_frame_ends_instead_of_spinning():
    driver = FakeCameraDriver([0, 5])
    assert drain(live.CaptureSource(driver.open, "empty.avi", camera=False, loop=True)) == []
    assert len(driver.captures) == 1


def test_a_file_that_is_not_a_video_is_refused_when_the_source_is_made(tmp_path):
    (tmp_path / "notes.txt").write_text("exposure 20 ms\n")
    with pytest.raises(ValueError, match=r"notes\.txt: neither an image file \(\.tif, .*\) nor a video file "
                                         r"OpenCV can open; ifrt live takes a camera index"):
        live.video_source(tmp_path / "notes.txt")


def test_paced_video_file_delivers_frames_at_its_rate_and_is_live():
    driver = FakeCameraDriver([6])
    source = live.CaptureSource(driver.open, "clip.avi", camera=False, fps=50.0)
    assert source.live
    start = time.perf_counter()
    frames = drain(source)
    arrivals = np.array([f.acquired for f in frames]) - start
    assert len(frames) == 6
    # Frame n is not read before n / 50 s into the stream (a lower bound: a loaded machine may be later).
    assert np.all(arrivals >= np.arange(6) / 50.0)
    assert arrivals[-1] < 5.0


@pytest.mark.parametrize("fps", [0.0, -1.0, float("nan")])
def test_a_frame_rate_that_is_not_positive_is_refused(fps):
    with pytest.raises(ValueError, match="clip.avi: frame rate"):
        live.CaptureSource(lambda: None, "clip.avi", camera=False, fps=fps)


# ---- watched folder ----------------------------------------------------------------------------------------


def folder_stream(folder, **options):
    """Run a FolderSource in a thread, collecting items; returns (items, stop, thread, errors)."""
    return source_stream(live.FolderSource(folder, poll=0.01, settle=0.05, **options))


def source_stream(source):
    items, errors, stop = [], [], threading.Event()

    def run():
        try:
            for item in source.frames(stop):
                items.append(item)
        except live.SourceLost as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return items, stop, thread, errors


def wait_for(condition, timeout=10.0):
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return True
        done.wait(0.01)
    return condition()


def test_folder_reads_a_file_only_once_it_is_complete(tmp_path):
    image = structured((64, 64))
    (tmp_path / "old.tif").write_bytes(b"")  # present at start: ignored
    items, stop, thread, _ = folder_stream(tmp_path)
    encoded = io.BytesIO()
    import tifffile

    tifffile.imwrite(encoded, image)
    data = encoded.getvalue()
    path = tmp_path / "new.tif"
    with open(path, "wb") as fh:  # a writer that pauses half-way through the file
        fh.write(data[: len(data) // 2])
        fh.flush()
        threading.Event().wait(0.3)
        fh.write(data[len(data) // 2:])
    assert wait_for(lambda: items)
    stop.set()
    thread.join(5)
    assert len(items) == 1
    assert items[0].label == "new.tif"
    assert np.array_equal(items[0].image, image)


def test_folder_skips_an_unreadable_file_with_the_reason(tmp_path):
    items, stop, thread, _ = folder_stream(tmp_path, give_up=0.2)
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    write_image_atomic(tmp_path / "good.tif", structured())
    assert wait_for(lambda: len(items) == 2)
    stop.set()
    thread.join(5)
    skipped = [i for i in items if isinstance(i, live.Notice)]
    assert len(skipped) == 1 and skipped[0].label == "broken.png"
    assert skipped[0].message.startswith("not a TIFF, PNG or JPEG file")
    assert [i.label for i in items if isinstance(i, live.Frame)] == ["good.tif"]


def test_folder_gives_a_skipped_file_a_number_of_its_own(tmp_path):
    # Before, the skipped file had the number of the next frame read (both 0 here).
    items, stop, thread, _ = folder_stream(tmp_path, give_up=0.2)
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    assert wait_for(lambda: len(items) == 1)
    write_image_atomic(tmp_path / "good.tif", structured())
    assert wait_for(lambda: len(items) == 2)
    stop.set()
    thread.join(5)
    assert [(type(i).__name__, i.index, i.label) for i in items] == [("Notice", 0, "broken.png"),
                                                                      ("Frame", 1, "good.tif")]


def test_folder_that_disappears_ends_the_stream_with_a_message(tmp_path):
    watched = tmp_path / "incoming"
    watched.mkdir()
    items, stop, thread, errors = folder_stream(watched)
    write_image_atomic(watched / "a.tif", structured())
    assert wait_for(lambda: items)
    (watched / "a.tif").unlink()
    watched.rmdir()
    thread.join(5)
    assert not thread.is_alive()
    assert len(errors) == 1
    assert str(errors[0]) == f"{watched}: the watched folder disappeared (deleted, renamed or unmounted) after " \
                             "1 frames; stopping"


def tiff_bytes(image: np.ndarray) -> bytes:
    import tifffile

    encoded = io.BytesIO()
    tifffile.imwrite(encoded, image)
    return encoded.getvalue()


def test_folder_reads_a_file_rewritten_in_place_again_as_a_new_frame(tmp_path):
    items, stop, thread, _ = folder_stream(tmp_path, recheck=60)
    first, second = structured(seed=1), structured(seed=2)
    (tmp_path / "snap.tif").write_bytes(tiff_bytes(first))
    assert wait_for(lambda: len(items) == 1)
    (tmp_path / "snap.tif").write_bytes(tiff_bytes(second))  # the acquisition software overwrites its snapshot
    assert wait_for(lambda: len(items) == 2)
    stop.set()
    thread.join(5)
    assert [i.label for i in items] == ["snap.tif", "snap.tif"]
    assert [i.index for i in items] == [0, 1]
    assert np.array_equal(items[1].image, second)


def test_folder_reads_a_file_replaced_by_a_rename_again_as_a_new_frame(tmp_path):
    items, stop, thread, _ = folder_stream(tmp_path, recheck=60)
    write_image_atomic(tmp_path / "snap.tif", structured(seed=1))
    assert wait_for(lambda: len(items) == 1)
    write_image_atomic(tmp_path / "snap.tif", structured(seed=2))
    assert wait_for(lambda: len(items) == 2)
    stop.set()
    thread.join(5)
    assert np.array_equal(items[1].image, structured(seed=2))


def test_folder_reads_a_rewrite_of_a_file_present_at_the_start(tmp_path):
    (tmp_path / "old.tif").write_bytes(tiff_bytes(structured(seed=1)))
    items, stop, thread, _ = folder_stream(tmp_path, recheck=0.1)
    (tmp_path / "old.tif").write_bytes(tiff_bytes(structured(seed=2)))  # in place: the folder looks unchanged
    assert wait_for(lambda: items)
    stop.set()
    thread.join(5)
    assert len(items) == 1 and items[0].label == "old.tif"
    assert np.array_equal(items[0].image, structured(seed=2))


def test_folder_skips_an_empty_file_and_reads_it_once_written(tmp_path):
    items, stop, thread, _ = folder_stream(tmp_path, give_up=0.2)
    (tmp_path / "empty.tif").write_bytes(b"")
    assert wait_for(lambda: items)
    (tmp_path / "empty.tif").write_bytes(tiff_bytes(structured()))
    assert wait_for(lambda: len(items) == 2)
    stop.set()
    thread.join(5)
    assert isinstance(items[0], live.Notice) and items[0].label == "empty.tif"
    assert items[0].message == "file is empty (0 bytes); the image was not written completely"
    assert isinstance(items[1], live.Frame) and items[1].label == "empty.tif"


def test_folder_finds_a_file_added_within_the_tick_of_the_folders_time_stamp(tmp_path):
    items, stop, thread, _ = folder_stream(tmp_path, recheck=60)
    threading.Event().wait(0.1)  # the folder has been listed and its time stamp noted
    before = os.stat(tmp_path)
    write_image_atomic(tmp_path / "new.tif", structured())
    os.utime(tmp_path, ns=(before.st_atime_ns, before.st_mtime_ns))  # a coarse clock: the stamp did not move
    assert wait_for(lambda: items)
    stop.set()
    thread.join(5)
    assert [i.label for i in items] == ["new.tif"]


class CountingListing:
    """`os.scandir`'s iterator, counting the `stat()` calls made on its entries in `stats` by file name."""

    def __init__(self, listing, stats):
        self.listing, self.stats = listing, stats

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.listing.close()

    def __iter__(self):
        for entry in self.listing:
            yield CountingEntry(entry, self.stats)

    def close(self):
        self.listing.close()


class CountingEntry:
    def __init__(self, entry, stats):
        self.entry, self.stats = entry, stats
        self.name, self.path = entry.name, entry.path

    def stat(self, **options):
        self.stats[self.name] += 1
        return self.entry.stat(**options)

    def __getattr__(self, attribute):
        return getattr(self.entry, attribute)


def test_an_idle_folder_does_not_stat_the_files_already_there_at_every_poll(tmp_path, monkeypatch):
    old = [f"old_{i:02d}.tif" for i in range(50)]
    for name in old:
        (tmp_path / name).write_bytes(b"II*\0")
    source = live.FolderSource(tmp_path, poll=0.01, settle=0.05, recheck=60)
    stats = collections.Counter()
    scandir, stat = os.scandir, os.stat
    monkeypatch.setattr(os, "scandir", lambda path=".": CountingListing(scandir(path), stats))

    def counting_stat(path, *args, **kwargs):
        stats[os.path.basename(os.fspath(path))] += 1
        return stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting_stat)
    items, stop, thread, _ = source_stream(source)
    write_image_atomic(tmp_path / "new.tif", structured())
    assert wait_for(lambda: items)  # at least settle / poll = 5 polls went by
    stop.set()
    thread.join(5)
    assert stats["new.tif"] >= 2
    assert sum(stats[name] for name in old) == 0


def test_a_file_path_is_not_a_folder_to_watch(tmp_path):
    (tmp_path / "x.tif").write_bytes(b"")
    with pytest.raises(live.SourceLost, match="not a folder"):
        live.FolderSource(tmp_path / "x.tif")


# ---- latency ring ------------------------------------------------------------------------------------------


def test_latency_recorder_keeps_only_the_latest_values():
    recorder = live.LatencyRecorder(capacity=4)
    for ms in range(10):
        recorder.add(float(ms))
    assert recorder.last().tolist() == [6.0, 7.0, 8.0, 9.0]
    assert recorder.last(2).tolist() == [8.0, 9.0]
    assert recorder.count == 10


# ---- the loop, with the tiny model -------------------------------------------------------------------------


def run(session, source, **options):
    records = []
    summary = live.run_live(session, source, records.append, live.LiveOptions(stats_every=0, **options),
                            log=lambda message: None)
    json.dumps(records)  # every record is JSON
    return records, summary


def test_every_frame_is_analysed_or_counted_as_dropped(session):
    images = [structured(seed=i) for i in range(3)]
    records, summary = run(session, live.ArraySource(images, count=40, live=True))
    analysed = [r for r in records if r["event"] == "frame"]
    assert summary.frames == len(analysed)
    assert summary.frames + summary.dropped == 40
    assert records[-1]["event"] == "summary" and records[-1]["frames"] == summary.frames


def test_frame_record_has_scores_map_metrics_and_latency(session):
    records, summary = run(session, live.ArraySource([structured((128, 96))], count=1))
    record = records[0]
    assert record["event"] == "frame"
    assert 0.0 <= record["quality"] <= 1.0
    assert len(record["blur_probabilities"]) == session.package.blur_levels
    assert np.asarray(record["quality_map"]).shape == (4, 3)
    assert set(record["metrics"]) == {"var_laplacian", "tenengrad", "brenner", "normalized_variance", "vollath_f4"}
    assert record["timings_ms"]["latency"] > 0
    assert summary.latency_ms["p50"] is not None and summary.latency_ms["p99"] >= summary.latency_ms["p50"]


def test_wrong_size_and_dtype_frames_are_skipped_and_the_loop_continues(session):
    images = [structured(), structured((32, 32)), structured(dtype=np.float32).astype(np.int32), structured(seed=2)]
    records, summary = run(session, live.ArraySource(images, count=4, live=False))
    assert [r["frame"] for r in records if r["event"] == "frame"] == [0, 3]
    skipped = [r for r in records if r["event"] == "skipped"]
    assert [r["frame"] for r in skipped] == [1, 2]
    assert skipped[0]["reason"].startswith("32x32 frame, but this stream is 64x64")
    assert skipped[1]["reason"] == "int32 pixels are not supported (expected uint8, uint16 or float32)"
    assert summary.skipped == 2 and summary.frames == 2
    assert summary.skipped_reasons == {
        "NxN frame, but this stream is NxN; did the ROI or binning change? Restart ifrt live after changing "
        "camera settings (or use --any-size)": 1,
        "int32 pixels are not supported (expected uint8, uint16 or float32)": 1}


def test_a_first_frame_the_model_cannot_analyse_does_not_fix_the_stream_size(session):
    # A 1x1 placeholder file (or a NaN frame) landing first must not make every real frame "the wrong size".
    images = [structured((1, 1)), structured((64, 48), seed=1), structured((64, 48), seed=2)]
    records, summary = run(session, live.ArraySource(images, count=3, live=False))
    assert [r["frame"] for r in records if r["event"] == "frame"] == [1, 2]
    skipped = [r for r in records if r["event"] == "skipped"]
    assert [r["frame"] for r in skipped] == [0]
    assert skipped[0]["reason"].startswith("image is 1x1 pixels; the model needs at least 32x32")


def test_skip_reasons_are_grouped_by_their_counts_and_sizes_with_pixel_types_kept(session):
    stream = io.BytesIO(structured().tobytes() + b"\0" * 100)
    records, summary = run(session, live.RawStreamSource(stream, 64, 64, np.uint16))
    assert summary.frames == 1
    assert summary.skipped_reasons == {
        "the stream ended N bytes into frame N, which needs N (NxN uint16); the partial frame is ignored": 1}


def test_frame_with_nan_pixels_is_skipped(session):
    bad = structured(dtype=np.float32).astype(np.float32)
    bad[3, 3] = np.nan
    records, summary = run(session, live.ArraySource([structured(dtype=np.float32).astype(np.float32), bad],
                                                     count=2, live=False))
    skipped = [r for r in records if r["event"] == "skipped"]
    assert summary.frames == 1 and len(skipped) == 1
    assert skipped[0]["reason"].startswith("1 pixel is NaN or infinite")


def test_progress_lines_report_rate_drops_and_latency(session):
    messages = []
    live.run_live(session, live.ArraySource([structured()], count=3, live=False), lambda record: None,
                  live.LiveOptions(stats_every=1e-9), log=messages.append)
    assert len(messages) >= 1
    assert all(re.fullmatch(r"\d+ frames, [\d.]+ frames/s, 0 dropped, 0 skipped, "
                            r"(latency p50 [\d.]+ ms p99 [\d.]+ ms|no latency yet|no new frame "
                            r"\(the last one's latency [\d.]+ ms\))", m) for m in messages)


def test_progress_lines_while_no_frame_arrives_show_no_stale_latency(session):
    messages = []
    live.run_live(session, PausingCamera(pause=1.2), lambda record: None,
                  live.LiveOptions(stats_every=0.1, stall_warning=0), log=messages.append)
    idle = [m for m in messages if m.startswith("1 frames, 0.0 frames/s")]
    assert idle, messages
    assert all(re.fullmatch(r"1 frames, 0.0 frames/s, 0 dropped, 0 skipped, no new frame "
                            r"\(the last one's latency [\d.]+ ms\)", m) for m in idle), idle


class PausingCamera:
    """A live source that delivers a frame, goes silent for `pause` seconds, then delivers another."""

    name, live = "camera 0", True

    def __init__(self, pause):
        self.pause = pause

    def frames(self, stop):
        yield live.Frame(structured(), 0, "frame 0", time.perf_counter())
        stop.wait(self.pause)
        yield live.Frame(structured(), 1, "frame 1", time.perf_counter())


def test_a_silent_camera_is_reported_as_stalled(session):
    records, summary = run(session, PausingCamera(pause=1.5), stall_warning=0.3)
    assert [r["event"] for r in records] == ["frame", "notice", "frame", "summary"]
    assert records[1]["kind"] == "stalled" and records[1]["message"].startswith("camera 0: no frame for ")


class SlowSession:
    """The session, taking at least `seconds` per frame: an analysis slower than the acquisition."""

    def __init__(self, session, seconds):
        self.session, self.seconds = session, seconds

    def focus(self, frame, **options):
        time.sleep(self.seconds)
        return self.session.focus(frame, **options)


def test_files_waiting_for_a_slow_analysis_count_the_wait_in_their_latency(session, tmp_path):
    # Six files complete at once, 0.2 s of analysis each: the last is reported about 1.2 s after it was found
    # complete, and its latency must say so, not only the time since the reader got round to decoding it.
    for i in range(6):
        write_image_atomic(tmp_path / f"f{i}.tif", structured(seed=i))
    source = live.FolderSource(tmp_path, existing=True, poll=0.01, settle=0.05)
    records, summary = run(SlowSession(session, 0.2), source, max_frames=6, warmup=False)
    latencies = [r["timings_ms"]["latency"] for r in records if r["event"] == "frame"]
    assert len(latencies) == 6
    assert latencies[-1] >= 1000


def test_max_frames_stops_the_loop(session):
    records, summary = run(session, live.ArraySource([structured()], count=1000, live=False), max_frames=3)
    assert summary.frames == 3
    assert summary.stop == "--max-frames 3 reached"


def test_ctrl_c_while_a_record_goes_out_stops_after_it_with_every_record_counted(session):
    records = []

    def sink(record):
        records.append(record)
        if record["event"] == "frame" and record["frame"] == 2:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C while the third frame's line is being written

    summary = live.run_live(session, live.ArraySource([structured()], count=1000, live=False), sink,
                            live.LiveOptions(stats_every=0), log=lambda message: None)
    analysed = [r for r in records if r["event"] == "frame"]
    assert summary.stop == "interrupted"
    assert summary.frames == len(analysed) == 3
    assert records[-1]["event"] == "summary" and records[-1]["frames"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_interrupts_at_once(session):
    class HangingSession:
        package = session.package

        def focus(self, frame, **options):
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)  # the operator presses again: a backend that hangs must not trap them
            raise AssertionError("the second Ctrl-C did not interrupt the analysis")

    records = []
    summary = live.run_live(HangingSession(), live.ArraySource([structured()], count=1, live=False),
                            records.append, live.LiveOptions(stats_every=0, warmup=False), log=lambda message: None)
    assert summary.stop == "interrupted"
    assert [r["event"] for r in records] == ["summary"]


def test_sigterm_stops_after_the_record_in_progress_with_every_record_counted(session):
    records = []

    def sink(record):
        records.append(record)
        if record["event"] == "frame" and record["frame"] == 2:
            # Raised with SIGTERM's default action in place, it would end the test run itself.
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL, "SIGTERM would end the process"
            signal.raise_signal(signal.SIGTERM)  # docker stop while the third frame's line is being written

    summary = live.run_live(session, live.ArraySource([structured()], count=1000, live=False), sink,
                            live.LiveOptions(stats_every=0), log=lambda message: None)
    assert summary.stop == "terminated"
    assert summary.frames == len([r for r in records if r["event"] == "frame"]) == 3
    assert records[-1]["event"] == "summary" and records[-1]["stop"] == "terminated"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_sigterm_handler_of_the_callers_is_left_in_place(session):
    received = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        def sink(record):
            if record["event"] == "frame" and record["frame"] == 0:
                signal.raise_signal(signal.SIGTERM)

        summary = live.run_live(session, live.ArraySource([structured()], count=3, live=False), sink,
                                live.LiveOptions(stats_every=0), log=lambda message: None)
        assert received == [signal.SIGTERM]
        assert (summary.stop, summary.frames) == ("end of source", 3)
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_lost_camera_stops_the_loop_cleanly_with_the_reason(session):
    driver = FakeCameraDriver([3, 2], failed_opens=1)
    source = live.CaptureSource(driver.open, "camera 0", camera=True, reconnect=2, backoff=0.001)
    records, summary = run(session, source)
    assert summary.frames + summary.dropped == 5
    assert summary.stop == "source lost"
    assert summary.error.startswith("camera 0: disconnected after 5 frames and did not come back")
    notices = [r["kind"] for r in records if r["event"] == "notice"]
    assert notices[:3] == ["disconnected", "reconnecting", "reconnected"]
    assert records[-1]["error"] == summary.error


def test_sweep_reports_the_frame_the_rule_picks(session):
    images = live.sweep_frames(size=128, count=5)
    records, summary = run(session, live.ArraySource(images, count=5, live=False), sweep=True)
    analysed = [r for r in records if r["event"] == "frame"]
    expected = live.SweepTracker()
    for r in analysed:
        expected.add(r["frame"], r["label"], r["quality"], r["metrics"])
    best = [r for r in records if r["event"] == "sweep_best"]
    assert len(best) == 1
    assert best[0]["frame"] == expected.best()["frame"] == summary.sweep_best["frame"]
    assert analysed[-1]["sweep_best_frame"] == best[0]["frame"]


class _ScriptedSession:
    """Gives each frame the focus result scripted for it (frames are numbered by their first pixel)."""

    def __init__(self, results):
        self.results = results

    def focus(self, frame, **options):
        return self.results[int(frame.flat[0])]


def test_a_frame_without_structure_never_wins_a_sweep_however_high_its_quality():
    from ifrt.result import FocusResult

    def result(quality, sharpness, warnings=()):
        return FocusResult(quality=quality, blur_level=0, blur_probabilities=np.ones(5) / 5,
                           quality_map=np.ones((1, 1)), certainty=np.ones((1, 1)),
                           metrics={"normalized_variance": sharpness}, warnings=list(warnings))

    scripted = _ScriptedSession([result(0.5, 10.0), result(0.99, 50.0, ["no structure above the pixel noise"]),
                                 result(0.6, 20.0)])
    frames = [np.full((64, 64), i, np.uint16) for i in range(3)]
    records, summary = run(scripted, live.ArraySource(frames, count=3, live=False), sweep=True)
    analysed = [r for r in records if r["event"] == "frame"]
    assert [r["sweep_best"] for r in analysed] == [True, False, True]
    assert [r["sweep_best_frame"] for r in analysed] == [0, 0, 2]
    assert analysed[1]["warnings"] == ["no structure above the pixel noise"]
    assert summary.sweep_best["frame"] == 2


def test_overlay_is_a_colour_image_of_the_display_size(session):
    image = structured((256, 128))
    result = session.focus(image)
    canvas = live.render_overlay(image, result, "12 frames", display=128)
    assert canvas.shape == (128, 64, 3) and canvas.dtype == np.uint8


def test_overlay_text_is_wrapped_to_the_frame_width():
    import cv2

    status = "frame 2 (pass 13): 243 frames, 10.1 frames/s, 0 dropped, 0 skipped, latency p50 4.0 ms p99 8.4 ms"
    font = cv2.FONT_HERSHEY_SIMPLEX
    lines = live_overlay._wrap_text(cv2, ["quality 0.900", "", status], 260, font, 0.6)
    assert lines[0] == "quality 0.900" and len(lines) >= 3
    assert " ".join(lines[1:]) == status
    assert all(cv2.getTextSize(line, font, 0.6, 3)[0][0] <= 260 for line in lines)


class FakeGui:
    """The OpenCV window calls `OverlayWindow` makes, recorded; `keys` are what waitKey returns in turn."""

    def __init__(self, keys=(), visible=1.0):
        self.keys, self.visible, self.calls = list(keys), visible, []

    def install(self, monkeypatch):
        import cv2

        for name in ("namedWindow", "resizeWindow", "imshow", "destroyWindow"):
            monkeypatch.setattr(cv2, name, lambda *a, _n=name: self.calls.append((_n, a)))
        monkeypatch.setattr(cv2, "waitKey", lambda delay: self.keys.pop(0) if self.keys else -1)
        monkeypatch.setattr(cv2, "getWindowProperty", lambda title, prop: self.visible)


def test_overlay_window_shows_each_frame_until_q(session, monkeypatch):
    gui = FakeGui(keys=[-1, -1, ord("q")])
    gui.install(monkeypatch)
    window = live.OverlayWindow("ifrt live: test", size=64)
    summary = live.run_live(session, live.ArraySource([structured((96, 128))], count=10, live=False),
                            lambda record: None, live.LiveOptions(size=64, stats_every=0), viewer=window)
    window.close()
    names = [name for name, _ in gui.calls]
    assert summary.frames == 3 and summary.stop == "window closed"
    assert names == ["namedWindow", "resizeWindow", "imshow", "imshow", "imshow", "destroyWindow"]
    shown = [args[1] for name, args in gui.calls if name == "imshow"]
    assert all(s.shape == (96, 128, 3) and s.dtype == np.uint8 for s in shown)
    assert gui.calls[1][1] == ("ifrt live: test", 128, 96)


def test_closing_the_overlay_window_stops_the_loop(session, monkeypatch):
    FakeGui(visible=0.0).install(monkeypatch)
    window = live.OverlayWindow("ifrt live: test", size=64)
    summary = live.run_live(session, live.ArraySource([structured()], count=10, live=False), lambda record: None,
                            live.LiveOptions(size=64, stats_every=0), viewer=window)
    assert summary.frames == 1 and summary.stop == "window closed"
