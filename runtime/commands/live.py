"""`ifrt live SOURCE`: focus feedback while acquiring. SOURCE is a camera index (0) or device (/dev/video0), a
video file, a folder watched for new image files, or `-` with `--raw WxH:TYPE` for raw frames on stdin (an image
file gives one frame). JSON lines on
stdout (one per frame), progress and messages on stderr; `--show` opens an overlay window instead of
printing frames. Exit status: 0 when the source ended or a limit was reached, 1 when the source was lost
(camera gone, folder removed, video file damaged part-way) or a single image file could not be analysed, 2 for a usage error, 130 after
Ctrl-C, 143 after SIGTERM (`docker stop`, systemd), 128 + the signal as a shell reports it; either way the
frame in progress and the summary are written first."""

from __future__ import annotations

import argparse
import stat
import sys
from pathlib import Path

from ifrt.commands import float_above, float_at_least, int_at_least


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "live", help="focus feedback on a camera, video, watched folder or raw stream (JSON lines or a window)",
        description="Analyse frames as they arrive: learned focus quality, blur level, certainty, per-tile quality "
                    "map and classical focus metrics, with end-to-end latency. A reader thread hands frames to "
                    "the analysis through a one-frame queue: for a camera or a pipe the latest frame wins and "
                    "replaced frames are counted as dropped; files are all analysed.")
    p.add_argument("source", nargs="?", default=None,
                   help="camera index (0, 1, ...) or device (/dev/video0), video file, folder to watch, image file (one frame), "
                        "or - for stdin (with --raw)")
    p.add_argument("--raw", metavar="WxH:TYPE",
                   help="raw headerless frames on stdin, e.g. 2048x2048:uint16 (TYPE: uint8, uint16, float32)")
    p.add_argument("--model", help="model folder (default: the bundled model)")
    p.add_argument("--backend", default="auto", choices=["auto", "trt", "ort", "torch"], help="inference backend")
    p.add_argument("--threads", type=int_at_least(0), default=1,
                   help="onnxruntime inference threads (default 1: preprocessing and metrics use every core; "
                        "0: one per core)")
    p.add_argument("--size", type=int_at_least(32), default=512,
                   help="longer side the frame is downsampled to for the focus graph (default 512)")
    p.add_argument("--channel", type=int_at_least(0), default=None,
                   help="camera, video: channel of a colour frame to analyse (default: the per-pixel maximum of "
                        "the colour channels, as image files are read)")
    p.add_argument("--max-frames", type=int_at_least(1), default=None, help="stop after this many analysed frames")
    p.add_argument("--sweep", action="store_true",
                   help="Z sweep: report the best-focused frame (highest learned quality; the classical metric "
                        "breaks ties within --sweep-tolerance)")
    p.add_argument("--sweep-tolerance", type=float_at_least(0), default=0.02,
                   help="quality difference under which frames count as tied (default 0.02)")
    p.add_argument("--sweep-metric", default="normalized_variance",
                   choices=["var_laplacian", "tenengrad", "brenner", "normalized_variance", "vollath_f4"],
                   help="classical metric that breaks ties (default normalized_variance)")
    p.add_argument("--no-maps", dest="maps", action="store_false", help="leave the per-tile maps out of the JSON")
    p.add_argument("--show", action="store_true", help="overlay window (needs OpenCV with GUI: opencv-python)")
    p.add_argument("--stats-every", type=float_at_least(0), default=5.0, help="seconds between progress lines on stderr "
                                                                   "(0: none; default 5)")
    p.add_argument("--any-size", action="store_true",
                   help="accept frames of any size (default: frames must match the stream's first frame)")
    p.add_argument("--every-frame", action="store_true",
                   help="camera, stdin: analyse every frame, the reader waiting for the analysis instead of "
                        "replacing waiting frames (for recorded streams; a live camera would fall behind)")
    p.add_argument("--max-pixels", type=int_at_least(1), default=None,
                   help="image files, raw frames: refuse frames with more pixels, before reading them (default 2^28)")
    p.add_argument("--existing", action="store_true", help="folder: also analyse the files already there")
    p.add_argument("--loop", action="store_true",
                   help="video file: play it again from the start when it ends (demos, soak tests); stop with "
                        "Ctrl-C or --max-frames")
    p.add_argument("--fps", metavar="RATE",
                   help="video file: deliver frames at RATE per second, or at the rate recorded in the file "
                        "with 'file', as a camera would (latest frame wins; default: analyse every frame)")
    p.add_argument("--reconnect", type=int_at_least(0), default=5, help="camera: reconnect attempts before stopping (default 5)")
    p.add_argument("--backoff", type=float_above(0), default=0.5,
                   help="camera: first wait before reconnecting, doubled each attempt up to 8 s (default 0.5)")
    p.set_defaults(func=run)


def file_kind(path: Path) -> str | None:
    """What a path that is neither a regular file nor a folder is ("character device", "named pipe (FIFO)",
    ...), None for a regular file, a folder or nothing at all."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    for test, kind in ((stat.S_ISCHR, "character device"), (stat.S_ISFIFO, "named pipe (FIFO)"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return kind
    return None


def is_image_file(source: str | None) -> bool:
    from ifrt.imageio import IMAGE_SUFFIXES

    return source not in (None, "-") and Path(source).is_file() and Path(source).suffix.lower() in IMAGE_SUFFIXES


def open_source(args: argparse.Namespace):
    from ifrt import live
    from ifrt.imageio import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, read_image

    source = args.source
    path = Path(source) if source not in (None, "-") else None
    is_video = path is not None and path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES
    special = file_kind(path) if path is not None else None
    # A video device (/dev/video0 and its stable udev names) is a character device: OpenCV opens it as a camera.
    is_device = special == "character device"
    for flag, given in (("--loop", args.loop), ("--fps", args.fps is not None)):
        if given and not is_video:
            raise ValueError(f"{flag} applies to a video file, not to {'stdin' if path is None else source}")
    if args.max_pixels is not None and (is_video or is_device or (source or "").isdigit()):
        raise ValueError(f"--max-pixels applies to image files and raw frames; OpenCV decodes the frames of "
                         f"{source} before ifrt sees their size: leave --max-pixels out")
    max_pixels = args.max_pixels or DEFAULT_MAX_PIXELS
    if args.raw:
        if source not in (None, "-"):
            raise ValueError(f"--raw reads frames from stdin; give - as the source, not {source!r}")
        width, height, dtype = live.parse_raw_format(args.raw)
        return live.RawStreamSource(sys.stdin.buffer, width, height, dtype, max_pixels=max_pixels)
    if source is None:
        raise ValueError("give a source: a camera index, a video file, a folder, or - with --raw WxH:TYPE")
    if source == "-":
        raise ValueError("stdin needs the frame format: --raw WIDTHxHEIGHT:TYPE, e.g. --raw 2048x2048:uint16")
    if source.isdigit() or is_device:
        return live.camera_source(int(source) if source.isdigit() else source, reconnect=args.reconnect,
                                  backoff=args.backoff, channel=args.channel)
    if special is not None:
        # A pipe has no container saying the frames' size and type: only --raw can read it (as stdin).
        fix = (f"to read raw frames from it, give it as stdin: ifrt live - --raw WIDTHxHEIGHT:TYPE < {source}"
               if special == "named pipe (FIFO)" else
               "ifrt live takes a camera index (0, 1, ...) or device (/dev/video0), a video file, a folder to "
               "watch, an image file, or - with --raw WIDTHxHEIGHT:TYPE")
        raise ValueError(f"{source}: a {special}, not a camera device, a regular file or a folder; {fix}")
    if args.channel is not None and not is_video:
        raise ValueError(f"--channel applies to camera and video frames; {source} is read as one channel (a colour "
                         "image file as the per-pixel maximum of its channels): leave --channel out")
    if path.is_dir():
        return live.FolderSource(path, existing=args.existing, max_pixels=max_pixels)
    if is_image_file(source):
        # One frame; errors name the file, and so does the frame's label.
        return live.ArraySource([read_image(path, max_pixels=max_pixels)], count=1, name=str(path),
                                labels=[path.name])
    if is_video:
        fps = args.fps
        if fps is not None and fps != "file":
            try:
                fps = float(fps)
            except ValueError:
                raise ValueError(f"--fps {fps}: give a number of frames per second or 'file'") from None
        return live.video_source(path, fps=fps, loop=args.loop, channel=args.channel)
    raise ValueError(f"{source}: no such camera index, file or folder")


def run(args: argparse.Namespace) -> int:
    from ifrt import live
    from ifrt.imageio import ImageReadError
    from ifrt.model_package import ModelPackageError

    try:
        source = open_source(args)
    except ImageReadError as exc:  # the one image file given cannot be analysed: not a usage error
        print(f"ifrt live: {exc}", file=sys.stderr)
        return 1
    except (ValueError, live.SourceLost) as exc:
        print(f"ifrt live: {exc}", file=sys.stderr)
        return 2
    viewer = None
    if args.show:
        try:
            viewer = live.OverlayWindow(f"ifrt live: {source.name}", size=args.size)
        except RuntimeError as exc:
            print(f"ifrt live: {exc}", file=sys.stderr)
            return 2
    try:
        session = live.open_session(args.model, backend=args.backend, threads=args.threads)
    except (ModelPackageError, RuntimeError, ValueError) as exc:
        print(f"ifrt live: {exc}", file=sys.stderr)
        return 2
    options = live.LiveOptions(size=args.size, max_frames=args.max_frames, maps=args.maps,
                               sweep=args.sweep, sweep_tolerance=args.sweep_tolerance,
                               sweep_metric=args.sweep_metric, stats_every=args.stats_every, any_size=args.any_size,
                               drop=False if args.every_frame else None)
    sink = write = live.json_lines()
    if viewer is not None:
        # With a window, stdout keeps the events and the summary; per-frame lines would flood a terminal.
        def sink(record: dict) -> None:
            if record["event"] != "frame":
                write(record)
    live.stderr_log(f"{source.name} -> model {session.package.root}, backend {session.backend_name}")
    try:
        summary = live.run_live(session, source, sink, options, viewer=viewer)
    finally:
        if viewer is not None:
            viewer.close()
    live.stderr_log(live.format_summary(summary))
    if summary.error:
        live.stderr_log(summary.error)
        return 1
    if is_image_file(args.source) and not summary.frames and summary.skipped:
        live.stderr_log(f"{args.source}: the image was not analysed (the reason is above)")
        return 1
    return {"interrupted": 130, "terminated": 143}.get(summary.stop, 0)
