"""`ifrt live` and `ifrt bench live` from the command line, as a user runs them."""

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from ifrt import live
from ifrt.imageio import write_image_atomic


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def frames_of(size=(48, 64), count=3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(500 + 30000 * rng.random(size)).astype(np.uint16) for _ in range(count)]


def test_raw_frames_on_stdin_with_every_frame_give_one_json_line_each(ifrt_cli, tiny_package):
    data = b"".join(f.tobytes() for f in frames_of()) + b"\x01\x02\x03"
    proc = ifrt_cli("live", "-", "--raw", "64x48:uint16", "--every-frame", "--model", str(tiny_package),
                    "--backend", "ort", "--stats-every", "0", input=data.decode("latin-1"), encoding="latin-1")
    assert proc.returncode == 0, proc.stderr
    records = json_lines(proc.stdout)
    assert [r["frame"] for r in records if r["event"] == "frame"] == [0, 1, 2]
    assert [r["event"] for r in records] == ["frame", "frame", "frame", "skipped", "summary"]  # stream order
    skipped = [r for r in records if r["event"] == "skipped"]
    assert len(skipped) == 1 and "ended 3 bytes into frame 3" in skipped[0]["reason"]
    summary = records[-1]
    assert (summary["event"], summary["frames"], summary["skipped"]) == ("summary", 3, 1)
    assert summary["latency_ms"]["p99"] >= summary["latency_ms"]["p50"] > 0
    assert "latency p50" in proc.stderr


def write_video(path, count: int, fps: float):
    """An 8-bit MJPG video of `count` 64x64 frames of a focus sweep through a glomerulus field (skips the test
    where OpenCV cannot write one)."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 64), isColor=False)
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG video")
    frames = live.sweep_frames(size=64, count=count)
    scale = 255 / max(int(f.max()) for f in frames)
    for f in frames:
        writer.write(np.round(f * scale).astype(np.uint8))
    writer.release()
    return path


def test_video_file_with_max_frames_and_sweep(ifrt_cli, tiny_package, tmp_path):
    path = write_video(tmp_path / "sweep.avi", count=5, fps=10)
    proc = ifrt_cli("live", str(path), "--max-frames", "4", "--sweep", "--no-maps", "--model", str(tiny_package),
                    "--backend", "ort", "--stats-every", "0")
    assert proc.returncode == 0, proc.stderr
    records = json_lines(proc.stdout)
    analysed = [r for r in records if r["event"] == "frame"]
    assert len(analysed) == 4 and "quality_map" not in analysed[0]
    best = [r for r in records if r["event"] == "sweep_best"]
    assert len(best) == 1 and best[0]["frame"] == analysed[-1]["sweep_best_frame"]
    assert records[-1]["stop"] == "--max-frames 4 reached"
    assert "best focus: frame" in proc.stderr


def test_a_whole_video_file_ends_at_its_last_frame_with_exit_0(ifrt_cli, tiny_package, tmp_path):
    path = write_video(tmp_path / "sweep.avi", count=12, fps=10)
    proc = ifrt_cli("live", str(path), "--no-maps", "--model", str(tiny_package), "--backend", "ort",
                    "--stats-every", "0")
    assert proc.returncode == 0, proc.stderr
    summary = json_lines(proc.stdout)[-1]
    assert (summary["stop"], summary["frames"]) == ("end of source", 12)


def test_a_video_file_cut_short_part_way_is_a_lost_source_with_exit_1(ifrt_cli, tiny_package, tmp_path):
    # Before, a read failing half-way through the file was taken as its end: "end of source", exit 0.
    path = write_video(tmp_path / "sweep.avi", count=12, fps=10)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])  # the header still records 12 frames
    proc = ifrt_cli("live", str(path), "--no-maps", "--model", str(tiny_package), "--backend", "ort",
                    "--stats-every", "0")
    assert proc.returncode == 1, proc.stderr
    summary = json_lines(proc.stdout)[-1]
    assert summary["stop"] == "source lost"
    assert summary["error"] == (f"{path}: reading stopped after {summary['frames']} of the 12 frames the file "
                                "records; it is damaged or truncated there (copy or export it again)")
    assert 3 <= summary["frames"] <= 7


def test_looped_video_file_plays_again_until_max_frames(ifrt_cli, tiny_package, tmp_path):
    path = write_video(tmp_path / "clip.avi", count=3, fps=25)
    proc = ifrt_cli("live", str(path), "--loop", "--fps", "file", "--every-frame", "--max-frames", "8", "--no-maps",
                    "--model", str(tiny_package), "--backend", "ort", "--stats-every", "0")
    assert proc.returncode == 0, proc.stderr
    analysed = [r for r in json_lines(proc.stdout) if r["event"] == "frame"]
    assert [r["frame"] for r in analysed] == list(range(8))
    assert analysed[3]["label"] == "frame 0 (pass 2)" and analysed[7]["label"] == "frame 1 (pass 3)"


@pytest.mark.parametrize(("extra", "message"), [
    (["--loop"], "--loop applies to a video file, not to "),
    (["--fps", "30"], "--fps applies to a video file, not to "),
])
def test_video_only_options_on_another_source_are_refused(ifrt_cli, tmp_path, extra, message):
    folder = tmp_path / "watched"
    folder.mkdir()
    proc = ifrt_cli("live", str(folder), *extra)
    assert proc.returncode == 2 and message in proc.stderr


@pytest.mark.parametrize(("extra", "message"), [
    (["--max-frames", "-1"], "argument --max-frames: must be at least 1, got -1"),
    (["--max-frames", "0"], "argument --max-frames: must be at least 1, got 0"),
    (["--sweep", "--sweep-tolerance", "nan"], "argument --sweep-tolerance: must be a number of at least 0, got nan"),
    (["--sweep", "--sweep-tolerance", "-0.1"], "argument --sweep-tolerance: must be a number of at least 0, got -0.1"),
    (["--stats-every", "-1"], "argument --stats-every: must be a number of at least 0, got -1"),
    (["--reconnect", "-2"], "argument --reconnect: must be at least 0, got -2"),
    (["--backoff", "0"], "argument --backoff: must be a number greater than 0, got 0"),
    (["--threads", "-3"], "argument --threads: must be at least 0, got -3"),
])
def test_a_limit_that_would_silently_do_nothing_is_refused(ifrt_cli, tmp_path, extra, message):
    # Before, --max-frames -1 analysed nothing and exited 0, and a NaN or negative tolerance left --sweep without
    # a pick; each is refused before the model loads.
    image = write_image_atomic(tmp_path / "frame.tif", frames_of(count=1)[0])
    proc = ifrt_cli("live", str(image), *extra)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_a_frame_rate_that_is_not_a_number_is_refused(ifrt_cli, tmp_path):
    path = tmp_path / "clip.avi"
    path.write_bytes(b"not decoded before the option is checked")
    proc = ifrt_cli("live", str(path), "--fps", "fast")
    assert proc.returncode == 2 and "--fps fast: give a number of frames per second or 'file'" in proc.stderr


def test_watched_folder_that_disappears_stops_with_exit_1(tiny_package, tmp_path):
    watched = tmp_path / "incoming"
    watched.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "ifrt", "live", str(watched), "--model", str(tiny_package),
                             "--backend", "ort", "--stats-every", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []

    def collect():
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        # The model loads before watching starts; a file written too early would count as already there.
        while not any(line.startswith('{"event":"frame"') for line in lines) and time.monotonic() < deadline:
            write_image_atomic(watched / f"f{int(time.monotonic() * 1000)}.tif", frames_of(count=1)[0])
            time.sleep(0.5)
        for path in watched.iterdir():
            path.unlink()
        watched.rmdir()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    stderr = proc.stderr.read()
    assert proc.returncode == 1, stderr
    assert f"{watched}: the watched folder disappeared" in stderr
    summary = json.loads(lines[-1])
    assert summary["stop"] == "source lost" and summary["frames"] >= 1


def _looped_live(package, video, after_first_frame) -> tuple[str, list[str], int, str]:
    """`ifrt live VIDEO --loop` in a child: once its first frame line is out, `after_first_frame(proc)` acts on
    it; then (first line, every stdout line, exit status, stderr). The lines after the first are read through
    the same buffer as it."""
    proc = subprocess.Popen([sys.executable, "-m", "ifrt", "live", str(video), "--loop", "--no-maps", "--model",
                             str(package), "--backend", "ort", "--stats-every", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    try:
        first = proc.stdout.readline()
        after_first_frame(proc)
        lines = [first, *proc.stdout.read().splitlines()]
        proc.wait()
        stderr = proc.stderr.read()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    return first, lines, proc.returncode, stderr


def test_sigterm_ends_a_run_with_its_summary_and_exit_143(tiny_package, tmp_path):
    # docker stop, systemd and process supervisors send SIGTERM; before, it ended the process with no summary.
    path = write_video(tmp_path / "clip.avi", count=3, fps=25)
    first, lines, returncode, stderr = _looped_live(tiny_package, path, lambda proc: proc.send_signal(signal.SIGTERM))
    assert first.startswith('{"event":"frame"'), stderr
    assert returncode == 143, stderr
    summary = json.loads(lines[-1])
    assert (summary["event"], summary["stop"]) == ("summary", "terminated")
    assert summary["frames"] == sum(json.loads(line)["event"] == "frame" for line in lines)
    assert "ifrt live: terminated: " in stderr


def test_a_file_that_is_neither_an_image_nor_a_video_is_a_usage_error(ifrt_cli, tmp_path):
    # Before, it was tried as a video: "cannot open (is it a video file OpenCV can decode?)", source lost, exit 1.
    (tmp_path / "notes.txt").write_text("exposure 20 ms\n")
    proc = ifrt_cli("live", str(tmp_path / "notes.txt"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (f"ifrt live: {tmp_path / 'notes.txt'}: neither an image file (.tif, .tiff, .png, .jpg, "
                           ".jpeg) nor a video file OpenCV can open; ifrt live takes a camera index (0, 1, ...), a "
                           "video file, a folder to watch, an image file, or - with --raw WIDTHxHEIGHT:TYPE\n")
    assert proc.stdout == ""


def test_a_named_pipe_is_refused_with_what_it_is_and_how_to_read_it(ifrt_cli, tmp_path):
    # Before: "no such camera index, file or folder", for a pipe that exists.
    fifo = tmp_path / "frames.fifo"
    os.mkfifo(fifo)
    proc = ifrt_cli("live", str(fifo))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (f"ifrt live: {fifo}: a named pipe (FIFO), not a camera device, a regular file or a "
                           "folder; to read raw frames from it, give it as stdin: ifrt live - --raw "
                           f"WIDTHxHEIGHT:TYPE < {fifo}\n")
    assert proc.stdout == ""


def test_a_character_device_is_opened_as_a_camera(ifrt_cli, tiny_package):
    # /dev/video0 is a character device OpenCV opens as a camera; /dev/null is one that no camera answers.
    if not stat.S_ISCHR(os.stat("/dev/null").st_mode):
        pytest.skip("no character device /dev/null here")
    proc = ifrt_cli("live", "/dev/null", "--model", str(tiny_package), "--backend", "ort", "--reconnect", "0")
    assert proc.returncode == 1, proc.stderr
    assert "camera /dev/null: cannot open (is it connected, and not in use by another program?)" in proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["stop"] == "source lost"


def test_a_looped_video_removed_during_the_run_is_a_lost_source(tiny_package, tmp_path):
    # The first pass is playing when the file goes; the reader is at most a few frames ahead.
    path = write_video(tmp_path / "clip.avi", count=30, fps=25)
    _, lines, returncode, stderr = _looped_live(tiny_package, path, lambda proc: path.unlink())
    assert returncode == 1, stderr
    assert f"{path}: cannot reopen the video file for pass 2" in stderr
    summary = json.loads(lines[-1])
    assert (summary["stop"], summary["frames"]) == ("source lost", 30)


def test_missing_source_is_a_usage_error(ifrt_cli):
    proc = ifrt_cli("live")
    assert proc.returncode == 2
    assert "give a source: a camera index, a video file, a folder, or - with --raw" in proc.stderr


def test_stdin_without_a_frame_format_is_a_usage_error(ifrt_cli):
    proc = ifrt_cli("live", "-")
    assert proc.returncode == 2
    assert "--raw WIDTHxHEIGHT:TYPE" in proc.stderr


def test_raw_frames_above_the_pixel_limit_are_a_usage_error_before_reading(ifrt_cli):
    # Before, each frame's buffer was allocated in the reader thread: "stdin: reading failed: MemoryError: ",
    # exit 1, and without a memory limit the machine's memory.
    proc = ifrt_cli("live", "-", "--raw", "100000x100000:float32", input="")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == ("ifrt live: stdin: 100000x100000 = 10000000000 pixels per frame exceeds the limit of "
                           "268435456 (raise --max-pixels, max_pixels= in Python, if the frames are genuine)\n")
    assert proc.stdout == ""


def test_max_pixels_sets_the_limit_for_raw_frames(ifrt_cli):
    proc = ifrt_cli("live", "-", "--raw", "64x48:uint16", "--max-pixels", "3071", input="")
    assert proc.returncode == 2
    assert "stdin: 64x48 = 3072 pixels per frame exceeds the limit of 3071" in proc.stderr


def test_max_pixels_sets_the_limit_for_an_image_file(ifrt_cli, tmp_path):
    image = write_image_atomic(tmp_path / "frame.tif", frames_of(count=1)[0])
    proc = ifrt_cli("live", str(image), "--max-pixels", "3071")
    assert proc.returncode == 1  # as for any image file that cannot be read
    assert f"{image}: 64x48 = 3072 pixels exceeds the limit of 3071" in proc.stderr


def test_max_pixels_on_a_camera_is_refused(ifrt_cli):
    proc = ifrt_cli("live", "0", "--max-pixels", "1000000")
    assert proc.returncode == 2
    assert "--max-pixels applies to image files and raw frames; OpenCV decodes the frames of 0" in proc.stderr


def test_bench_live_reports_rates_and_latency_as_json(ifrt_cli, tiny_package):
    proc = ifrt_cli("bench", "live", "--model", str(tiny_package), "--backend", "ort", "--size", "256",
                    "--frames", "8", "--fps", "100")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["target"] == "live" and report["frame"]["shape"] == [256, 256]
    assert report["pipeline"]["frames"] == 8 and report["pipeline"]["dropped"] == 0
    assert report["camera"]["frames"] + report["camera"]["dropped"] == 8
    assert report["pipeline"]["latency_ms"]["p99"] >= report["pipeline"]["latency_ms"]["p50"] > 0
    assert report["sequential"]["frames_per_s"] > 0


def test_camera_that_cannot_be_opened_stops_with_exit_1(ifrt_cli, tiny_package):
    proc = ifrt_cli("live", "97", "--model", str(tiny_package), "--backend", "ort")
    assert proc.returncode == 1
    assert "camera 97: cannot open (is it connected, and not in use by another program?)" in proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["stop"] == "source lost"


def test_show_without_a_gui_build_of_opencv_says_what_to_install(ifrt_cli):
    import cv2

    if not re.search(r"GUI:\s+NONE", cv2.getBuildInformation()):
        pytest.skip("this OpenCV has a GUI")
    proc = ifrt_cli("live", "0", "--show")
    assert proc.returncode == 2
    assert "--show needs OpenCV with GUI support" in proc.stderr and "pip install opencv-python" in proc.stderr


def test_frame_size_below_32_is_refused_as_usage(ifrt_cli, tmp_path):
    write_image_atomic(tmp_path / "a.tif", frames_of()[0])
    proc = ifrt_cli("live", str(tmp_path / "a.tif"), "--size", "0")
    assert proc.returncode == 2
    assert "argument --size: must be at least 32, got 0" in proc.stderr and "Traceback" not in proc.stderr


def test_channel_of_an_image_file_is_refused_with_the_reason(ifrt_cli, tmp_path):
    write_image_atomic(tmp_path / "rgb.png", np.zeros((32, 32, 3), np.uint8))
    proc = ifrt_cli("live", str(tmp_path / "rgb.png"), "--channel", "1")
    assert proc.returncode == 2
    assert proc.stderr == (f"ifrt live: --channel applies to camera and video frames; {tmp_path / 'rgb.png'} is "
                           "read as one channel (a colour image file as the per-pixel maximum of its channels): "
                           "leave --channel out\n")


@pytest.mark.parametrize(("content", "reason"), [(b"", "file is empty (0 bytes)"),
                                                  (b"II*\x00garbage", "cannot find an image in the TIFF")])
def test_an_unreadable_image_file_exits_1_with_the_reason(ifrt_cli, tmp_path, content, reason):
    (tmp_path / "bad.tif").write_bytes(content)
    proc = ifrt_cli("live", str(tmp_path / "bad.tif"))
    assert proc.returncode == 1
    assert f"ifrt live: {tmp_path / 'bad.tif'}: {reason}" in proc.stderr


def test_an_image_file_that_cannot_be_analysed_exits_1_with_the_reason(ifrt_cli, tmp_path):
    write_image_atomic(tmp_path / "nan.tif", np.full((64, 64), np.nan, np.float32))
    proc = ifrt_cli("live", str(tmp_path / "nan.tif"), "--backend", "ort", "--stats-every", "0")
    assert proc.returncode == 1
    assert "4096 pixels are NaN or infinite" in proc.stderr
    assert f"ifrt live: {tmp_path / 'nan.tif'}: the image was not analysed (the reason is above)" in proc.stderr
    assert json_lines(proc.stdout)[-1]["frames"] == 0


def training_run_of(package, run):
    """A training run folder as `ifrt train` leaves it: weights and config under best/, no ONNX graphs."""
    (run / "best").mkdir(parents=True)
    for name in ("model.safetensors", "model.json"):
        shutil.copy(package / name, run / "best" / name)
    return run


def test_live_runs_a_training_run_folder_on_torch_under_auto(ifrt_cli, tiny_package, tmp_path):
    pytest.importorskip("torch")
    run = training_run_of(tiny_package, tmp_path / "run")
    write_image_atomic(tmp_path / "a.tif", frames_of((64, 64), count=1)[0])
    proc = ifrt_cli("live", str(tmp_path / "a.tif"), "--model", str(run), "--stats-every", "0")
    assert proc.returncode == 0, proc.stderr
    assert "backend torch" in proc.stderr
    assert [r["event"] for r in json_lines(proc.stdout)] == ["frame", "summary"]


def test_bench_live_runs_a_training_run_folder_on_torch_under_auto(ifrt_cli, tiny_package, tmp_path):
    pytest.importorskip("torch")
    run = training_run_of(tiny_package, tmp_path / "run")
    proc = ifrt_cli("bench", "live", "--model", str(run), "--size", "64", "--frames", "2", "--fps", "100")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["pipeline"]["frames"] == 2


def test_bench_live_with_a_model_that_no_backend_loads_gives_no_model_hint(ifrt_cli, tiny_package, tmp_path):
    run = training_run_of(tiny_package, tmp_path / "run")
    proc = ifrt_cli("bench", "live", "--model", str(run), "--backend", "ort", "--size", "64", "--frames", "2")
    assert proc.returncode == 2  # a run that cannot start
    assert "no fp32 ONNX graphs here" in proc.stderr and "give a model folder with --model" not in proc.stderr


def test_a_single_image_file_is_labelled_with_its_file_name(ifrt_cli, tiny_package, tmp_path):
    write_image_atomic(tmp_path / "slide 3.tif", frames_of((64, 64), count=1)[0])
    proc = ifrt_cli("live", str(tmp_path / "slide 3.tif"), "--model", str(tiny_package), "--backend", "ort",
                    "--stats-every", "0", "--no-maps")
    assert proc.returncode == 0, proc.stderr
    assert json_lines(proc.stdout)[0]["label"] == "slide 3.tif"
