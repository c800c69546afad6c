"""`ifrt bench live`: the live loop on synthetic focus-sweep frames, against torch eager and the camera's rate."""

from __future__ import annotations

import json
import os
import time

import numpy as np

from ifrt.live.loop import LatencyRecorder, LiveOptions, run_live
from ifrt.live.sources import ArraySource


def sweep_frames(size: int = 2048, count: int = 8, seed: int = 0) -> list[np.ndarray]:
    """uint16 `size` x `size` frames of one field through a focus sweep (Gaussian blur sigma 0 at the middle
    frame up to 4 px at the ends) with shot and read noise. The field tiles a synthetic glomerulus
    (`ifrt.train.data.synth.render_glomerulus`) or, when the training package is absent, smooth random
    structure."""
    import cv2

    rng = np.random.default_rng(seed)
    try:
        from ifrt.train.data.synth import render_glomerulus

        tile = render_glomerulus(rng, "IgAN", "IgA", 512).astype(np.float32)
    except ImportError:
        tile = cv2.GaussianBlur(rng.random((512, 512), dtype=np.float32), (0, 0), 4)
    tile = (tile - tile.min()) / max(float(tile.max() - tile.min()), 1e-6)
    reps = -(-size // tile.shape[0])
    scene = np.ascontiguousarray(np.tile(tile, (reps, reps))[:size, :size])
    middle = (count - 1) / 2
    frames = []
    for k in range(count):
        sigma = 4.0 * abs(k - middle) / max(middle, 1)
        blurred = cv2.GaussianBlur(scene, (0, 0), sigma) if sigma > 0 else scene
        electrons = 50 + 3000 * blurred
        counts = electrons + np.sqrt(electrons) * rng.standard_normal(scene.shape, dtype=np.float32)
        frames.append(np.clip(counts * 4 + 400 + 8 * rng.standard_normal(scene.shape, dtype=np.float32),
                              0, 65535).astype(np.uint16))
    return frames


def benchmark(session, *, size: int = 2048, frames: int = 150, fps: float = 30.0, focus_size: int = 512,
              baseline_session=None) -> dict:
    """`ifrt bench live`: frames/s and end-to-end latency of the live loop on synthetic `size` x `size` uint16
    frames, against the same focus path called in a plain loop (no reader thread, no queue) in this run.

    - sequential: `session.focus` frame after frame, the baseline.
    - pipeline: the live loop fed as fast as it takes frames (nothing dropped): the sustained rate.
    - camera: the live loop fed at `fps` by a reader thread (latest frame wins): analysed frames/s, frames
      dropped, and latency from frame arrival to record, as an operator sees it.
    Records are JSON-encoded as in headless `ifrt live` and discarded."""
    images = sweep_frames(size, count=8)
    options = LiveOptions(size=focus_size, stats_every=0)

    def encode(record: dict) -> None:
        json.dumps(record, separators=(",", ":"))

    def cpu_ms(cpu_s: float, n: int) -> float:
        return round(cpu_s / max(n, 1) * 1e3, 2)

    def sequential(s, n: int) -> dict:
        s.focus(images[0], size=focus_size)  # warm-up: graph load, allocations
        times = []
        cpu = time.process_time()
        for i in range(n):
            frame = images[i % len(images)].copy()
            t0 = time.perf_counter()
            encode(s.focus(frame, size=focus_size).to_dict())
            times.append((time.perf_counter() - t0) * 1e3)
        p = LatencyRecorder.percentiles(np.asarray(times))
        return {"frames": n, "frames_per_s": round(1e3 / float(np.median(times)), 2), "latency_ms": p,
                "cpu_ms_per_frame": cpu_ms(time.process_time() - cpu, n)}

    def live_run(source) -> dict:
        cpu = time.process_time()
        s = run_live(session, source, encode, options, log=lambda message: None)
        return {"frames": s.frames, "frames_per_s": round(s.frames_per_s, 2), "dropped": s.dropped,
                "latency_ms": s.latency_ms, "cpu_ms_per_frame": cpu_ms(time.process_time() - cpu, s.frames)}

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    baseline = sequential(session, min(frames, 30))
    pipeline = live_run(ArraySource(images, count=frames, live=False))
    camera = live_run(ArraySource(images, count=frames, fps=fps))
    camera["camera_fps"] = fps
    report = {
        "target": "live",
        "frame": {"shape": [size, size], "dtype": "uint16", "content": "synthetic glomerulus focus sweep"},
        "model": str(session.package.root),
        "backend": session.backend_name,
        "backend_device": getattr(session.backend, "device", None),
        "focus_size": focus_size,
        "sequential": baseline,
        "pipeline": pipeline,
        "camera": camera,
        "pipeline_over_sequential": round(pipeline["frames_per_s"] / baseline["frames_per_s"], 2),
        "target_frames_per_s": 15,
        "meets_target": pipeline["frames_per_s"] >= 15,
        # On a shared machine frames/s says as much about the neighbours as about ifrt: the process's CPU
        # time per frame and the load average (runnable processes, against `cpus`) say which it was.
        "cpus": os.cpu_count(),
        "load_average_1min": {"before": load_before,
                              "after": os.getloadavg()[0] if hasattr(os, "getloadavg") else None},
    }
    if baseline_session is not None:
        report[f"sequential_{baseline_session.backend_name}"] = sequential(baseline_session, min(frames, 10))
    return report
