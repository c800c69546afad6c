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

The code: `sources.py` (the sources), `loop.py` (`FrameQueue`, the checks, the statistics, `SweepTracker` and
`run_live`), `overlay.py` (`--show`) and `bench.py` (`ifrt bench live`).
"""

from ifrt.live.bench import benchmark, sweep_frames
from ifrt.live.loop import (
    DEFAULT_SWEEP_METRIC,
    DEFAULT_SWEEP_TOLERANCE,
    FrameCheck,
    FrameQueue,
    LatencyRecorder,
    LiveOptions,
    LiveSummary,
    SweepTracker,
    format_summary,
    json_lines,
    open_session,
    run_live,
    start_reader,
    stderr_log,
)
from ifrt.live.overlay import OverlayWindow, render_overlay
from ifrt.live.sources import (
    RAW_DTYPES,
    SUPPORTED_DTYPES,
    ArraySource,
    CaptureSource,
    FolderSource,
    Frame,
    FrameSource,
    Notice,
    RawStreamSource,
    SourceLost,
    camera_source,
    parse_raw_format,
    single_channel,
    video_source,
)

__all__ = [
    "DEFAULT_SWEEP_METRIC", "DEFAULT_SWEEP_TOLERANCE", "RAW_DTYPES", "SUPPORTED_DTYPES", "ArraySource",
    "CaptureSource", "FolderSource", "Frame", "FrameCheck", "FrameQueue", "FrameSource", "LatencyRecorder",
    "LiveOptions", "LiveSummary", "Notice", "OverlayWindow", "RawStreamSource", "SourceLost", "SweepTracker", "benchmark",
    "camera_source", "format_summary", "json_lines", "open_session", "parse_raw_format", "render_overlay",
    "run_live", "single_channel", "start_reader", "stderr_log", "sweep_frames", "video_source",
]
