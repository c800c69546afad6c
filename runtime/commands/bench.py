"""`ifrt bench`: speed measured against a baseline in the same run, printed as JSON.

Targets register in TARGETS, each a subcommand with only the options it uses (TARGET_OPTIONS); `ifrt bench
native` times the native kernels on a 2048x2048 uint16 frame against the equivalent numpy + OpenCV code and
against memcpy bandwidth; `ifrt bench live` runs the live loop on 2048x2048 uint16 frames against the focus
path called in a plain loop; `ifrt bench infer` times the full graph per backend, size and batch against
torch eager on the same model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import numpy as np

from ifrt.commands import float_above, int_at_least, integer_list

BACKEND_NAMES = ("trt", "ort", "torch")


def _median_ms(fn: Callable[[], object], repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def synthetic_frame(size: int, seed: int = 0) -> np.ndarray:
    """A 16-bit IF-like frame: smooth structure, bright deposits, camera noise."""
    import cv2

    rng = np.random.default_rng(seed)
    structure = cv2.GaussianBlur(rng.random((size, size), dtype=np.float32), (0, 0), 3)
    structure = (structure - structure.min()) / (structure.max() - structure.min() + 1e-12)
    deposits = (rng.random((size, size)) > 0.998).astype(np.float32)
    deposits = cv2.GaussianBlur(deposits, (0, 0), 2) * 40
    frame = 800 + 20000 * structure + 20000 * np.clip(deposits, 0, 1) + rng.normal(0, 60, (size, size))
    return np.clip(frame, 0, 65535).astype(np.uint16)


def memcpy_gbps(nbytes: int, repeat: int) -> float:
    """Host copy bandwidth, counting bytes read plus bytes written (GB/s)."""
    src = np.ones(nbytes, np.uint8)
    dst = np.empty_like(src)
    ms = _median_ms(lambda: np.copyto(dst, src), repeat)
    return 2 * nbytes / (ms * 1e-3) / 1e9


def bench_native(args: argparse.Namespace) -> dict:
    import cv2

    from ifrt import focus as F
    from ifrt import native
    from ifrt import preprocess as pp

    n = native.load()
    if args.threads:
        n.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)  # the same core budget for the OpenCV baseline
    frame = synthetic_frame(args.size)
    p_low, p_high = 1.0, 99.8
    out = np.empty(pp.plan(frame)["shape"], np.float32)

    def native_pre():
        pp.preprocess_into(frame, out, p_low=p_low, p_high=p_high)

    def numpy_opencv_pre():
        # What a Python pipeline does: np.percentile (CSBDeep), float conversion, affine, pad.
        lo, hi = np.percentile(frame, [p_low, p_high])
        x = (frame.astype(np.float32) - np.float32(lo)) * np.float32(1.0 / max(hi - lo, 1e-6))
        ph, pw = -frame.shape[0] % 32, -frame.shape[1] % 32
        return cv2.copyMakeBorder(x, 0, ph, 0, pw, cv2.BORDER_REFLECT_101)

    buf = np.empty(frame.shape, np.float32)

    def tuned_numpy_opencv_pre():
        # A tuned baseline: exact percentiles from cv2.calcHist, in-place affine into a reused buffer.
        hist = cv2.calcHist([frame], [0], None, [65536], [0, 65536]).ravel()
        cum = np.cumsum(hist)
        k = (frame.size - 1) * np.array([p_low, p_high]) / 100.0
        lo_prev, hi_prev = np.searchsorted(cum, np.floor(k), side="right")
        lo_next, hi_next = np.searchsorted(cum, np.minimum(np.floor(k) + 1, frame.size - 1), side="right")
        g = k - np.floor(k)
        lo = lo_prev + (lo_next - lo_prev) * g[0]
        hi = hi_prev + (hi_next - hi_prev) * g[1]
        np.subtract(frame, np.float32(lo), out=buf, dtype=np.float32)
        np.multiply(buf, np.float32(1.0 / max(hi - lo, 1e-6)), out=buf)

    # The native result must be the reference result before its time means anything.
    reference = numpy_opencv_pre()
    native_pre()
    max_abs_diff = float(np.abs(out[0, 0] - reference).max())

    repeat = args.repeat
    bandwidth = memcpy_gbps(64 << 20, repeat)
    t_native = _median_ms(native_pre, repeat)
    t_numpy = _median_ms(numpy_opencv_pre, repeat)
    t_tuned = _median_ms(tuned_numpy_opencv_pre, repeat)
    moved = frame.nbytes + out.nbytes  # one read of the frame, one write of the tensor
    native_gbps = moved / (t_native * 1e-3) / 1e9

    def native_focus():
        F.focus(frame)

    def native_focus_tiles():
        F.focus(frame, tile=256)

    def opencv_focus():
        mean, std = cv2.meanStdDev(cv2.Laplacian(frame, cv2.CV_64F))
        return float(std[0, 0]) ** 2

    cuda = None
    if n.has_cuda_kernels() and n.cuda_devices()[0]:
        # Device timings: kernel bandwidth as a fraction of a device-to-device copy in the same run.
        c = n.cuda_bench(frame, repeat)
        cuda = {key: round(value, 4) for key, value in c.items()}
        for key in ("preprocess", "normalize_only", "focus"):
            cuda[f"{key}_fraction_of_memcpy"] = round(c[f"{key}_gbps"] / c["memcpy_gbps"], 3)

    t_focus = _median_ms(native_focus, repeat)
    t_focus_tiles = _median_ms(native_focus_tiles, repeat)
    t_opencv_focus = _median_ms(opencv_focus, repeat)
    return {
        "target": "native",
        "frame": {"shape": list(frame.shape), "dtype": str(frame.dtype)},
        "threads": n.num_threads(),
        "repeat": repeat,
        "memcpy_gbps": round(bandwidth, 3),
        "preprocess": {
            "pipeline": f"percentile {p_low}..{p_high} normalization, pad to 32, float32 NCHW",
            "native_ms": round(t_native, 3),
            "numpy_opencv_ms": round(t_numpy, 3),
            "speedup_vs_numpy_opencv": round(t_numpy / t_native, 2),
            "tuned_numpy_opencv_ms": round(t_tuned, 3),
            "speedup_vs_tuned_numpy_opencv": round(t_tuned / t_native, 2),
            "native_gbps": round(native_gbps, 3),
            "fraction_of_memcpy": round(native_gbps / bandwidth, 3),
            "max_abs_diff_vs_numpy": max_abs_diff,
            "target_speedup": 2.0,
        },
        "focus": {
            "native_all_five_metrics_ms": round(t_focus, 3),
            "native_all_five_metrics_256px_tiles_ms": round(t_focus_tiles, 3),
            "opencv_laplacian_meanstddev_ms": round(t_opencv_focus, 3),
            "native_over_opencv": round(t_focus / t_opencv_focus, 2),
            "target_native_over_opencv": 1.5,
        },
        "cuda": cuda if cuda is not None else "no CUDA device (or a build without CUDA kernels)",
    }


def bench_live(args: argparse.Namespace) -> dict:
    """The live loop on synthetic 2048x2048 uint16 frames (see `ifrt.live.benchmark`)."""
    import importlib.util

    from ifrt.live import benchmark, open_session
    from ifrt.model_package import ModelPackageError
    from ifrt.session import Session

    try:
        session = open_session(args.model, backend=args.backend)  # as `ifrt live` opens it
    except (ModelPackageError, RuntimeError) as exc:
        # Reported as every command reports a run that cannot start: one line, exit 2.
        hint = "" if args.model else " (give a model folder with --model)"
        raise ValueError(f"{exc}{hint}") from None
    baseline = None
    if session.backend_name != "torch" and session.package.weights and importlib.util.find_spec("torch"):
        baseline = Session(args.model, backend="torch")  # torch eager on the same model, in the same run
    return benchmark(session, size=args.size, frames=args.frames, fps=args.fps, baseline_session=baseline)


def bench_infer(args: argparse.Namespace) -> dict:
    """Full-graph latency and throughput per backend, input size and batch, with torch eager on the same
    model as the baseline (`speedup_vs_torch` = torch ms / backend ms, same size and batch)."""
    from ifrt.backends import BackendUnavailableError, available_backends, create_backend
    from ifrt.model_package import open_model

    package = open_model(args.model)
    # torch eager is the baseline every speed-up is measured against, in this run: always measured.
    names = list(dict.fromkeys([*(args.backends or available_backends()), "torch"]))
    backends: dict[str, object] = {}
    for name in names:
        try:
            backends[name] = create_backend(package, name)
        except BackendUnavailableError as exc:
            if args.backends and name in args.backends:  # asked for by name: measuring the others instead misleads
                raise BackendUnavailableError(f"backend {name}: {exc}") from None
            backends[name] = str(exc)
    if not args.backends:
        for name in BACKEND_NAMES:
            backends.setdefault(name, "not available on this machine (`ifrt doctor` says what it needs)")
    for name, reason in backends.items():
        if isinstance(reason, str):
            print(f"ifrt bench infer: {name} not measured: {reason}", file=sys.stderr)
    sizes, batches = args.sizes, args.batches
    rng = np.random.default_rng(0)
    rows = []
    for size in sizes:
        for batch in batches:
            image = rng.random((batch, 1, size, size), dtype=np.float32)
            for name, backend in backends.items():
                if isinstance(backend, str):
                    continue
                ms = _median_ms(lambda b=backend, x=image: b.run("full", x), args.repeat)
                rows.append({"backend": name, "size": size, "batch": batch, "latency_ms": round(ms, 3),
                             "images_per_s": round(batch / (ms * 1e-3), 2)})
    torch_ms = {(r["size"], r["batch"]): r["latency_ms"] for r in rows if r["backend"] == "torch"}
    for r in rows:
        base = torch_ms.get((r["size"], r["batch"]))
        r["speedup_vs_torch"] = round(base / r["latency_ms"], 3) if base else None
    at_512 = [r["speedup_vs_torch"] for r in rows if (r["backend"], r["size"], r["batch"]) == ("ort", 512, 1)]
    return {"target": "infer", "model": str(package.root), "graph": "full", "repeat": args.repeat,
            "unavailable": {k: v for k, v in backends.items() if isinstance(v, str)}, "results": rows,
            # The goal, beside the measurement when this run made it (null when 512 px batch 1 was not run).
            "ort_over_torch_at_512": at_512[0] if at_512 else None, "target_ort_over_torch_at_512": 1.5}


def _backend_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKEND_NAMES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: give backends among {', '.join(BACKEND_NAMES)}")
    return names


TARGETS: dict[str, Callable[[argparse.Namespace], dict]] = {"native": bench_native, "live": bench_live,
                                                             "infer": bench_infer}

OPTIONS = {
    "--size": dict(type=int_at_least(32), default=2048, help="frame height and width (default 2048)"),
    "--repeat": dict(type=int_at_least(1), default=15,
                     help="timed runs per measurement; the median is reported (default 15)"),
    "--threads": dict(type=int_at_least(0), default=0,
                      help="CPU threads for the native kernels and the OpenCV baseline (default 0: all cores)"),
    "--model": dict(help="model folder (default: the bundled model)"),
    "--backend": dict(default="auto", choices=["auto", *BACKEND_NAMES], help="inference backend (default auto)"),
    "--frames": dict(type=int_at_least(1), default=150, help="frames per run (default 150)"),
    "--fps": dict(type=float_above(0), default=30.0, help="camera frame rate of the paced run (default 30)"),
    "--backends": dict(type=_backend_names,
                       help=f"comma-separated backends among {', '.join(BACKEND_NAMES)}; one that cannot run here "
                            "stops the run (default: every one installed, the others skipped with their reason; "
                            "torch, the baseline, is measured whatever is given)"),
    "--sizes": dict(type=integer_list(multiple_of=32), default=[256, 512],
                    help="input sizes, multiples of 32 as the network needs (default 256,512)"),
    "--batches": dict(type=integer_list(), default=[1, 4], help="batch sizes (default 1,4)"),
}

# The options each target uses; another target's option is refused by name rather than silently ignored.
TARGET_OPTIONS = {
    "native": ("--size", "--repeat", "--threads"),
    "live": ("--model", "--backend", "--size", "--frames", "--fps"),
    "infer": ("--model", "--backends", "--sizes", "--batches", "--repeat"),
}

TARGET_HELP = {
    "native": "native preprocessing and focus metrics on a SIZE x SIZE uint16 frame, vs numpy + OpenCV and memcpy",
    "live": "the live loop on SIZE x SIZE uint16 frames, vs the focus path called in a plain loop",
    "infer": "the full graph per backend, size and batch, vs torch eager on the same model",
}


class _NotForTarget(argparse.Action):
    """Another target's option: refused at parse time (exit 2), naming the options this target takes."""

    def __init__(self, option_strings, dest, taken: tuple[str, ...], **kwargs):
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS, **kwargs)
        self.taken = taken

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} is not an option of `{parser.prog}`, which takes {', '.join(self.taken)}")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="benchmarks with a baseline in the same run (JSON)",
                              description="Speed measured against a baseline in the same run, printed as JSON. "
                                          "`ifrt bench TARGET --help` lists the options of a target.")
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    for name in TARGETS:
        t = targets.add_parser(name, help=TARGET_HELP[name], description=f"{TARGET_HELP[name]} (JSON).")
        for option in TARGET_OPTIONS[name]:
            t.add_argument(option, **OPTIONS[option])
        for option in [o for o in OPTIONS if o not in TARGET_OPTIONS[name]]:
            t.add_argument(option, action=_NotForTarget, taken=TARGET_OPTIONS[name], dest=f"_not_{option[2:]}")
        t.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(json.dumps(TARGETS[args.target](args), indent=2))
    return 0
