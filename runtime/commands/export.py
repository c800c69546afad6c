"""`ifrt export TARGET`: turn a model into what edge boxes and servers run. Targets: `trt` (a
TensorRT engine plus its sidecar). TensorRT is imported inside the handler, never at import."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a model: TensorRT engine (trt)")
    targets = p.add_subparsers(dest="target", metavar="TARGET")
    _register_trt(targets)
    p.set_defaults(func=lambda args: _no_target(p))


def _no_target(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


# ---- trt -----------------------------------------------------------------------------------------


def _register_trt(targets: argparse._SubParsersAction) -> None:
    p = targets.add_parser(
        "trt", help="ONNX -> TensorRT engine (model.engine + model.engine.json sidecar)",
        description="Build a TensorRT engine on this GPU from an ONNX model and write the sidecar that "
                    "records what it is valid for (TensorRT version, GPU, precision, profiles, ONNX sha256). "
                    "With --check, say whether an existing engine can run here.")
    p.add_argument("onnx", nargs="?", help="the ONNX model (for fp16 on TensorRT 11: the FP16 ONNX)")
    p.add_argument("-o", "--output", help="engine path (default: the ONNX path with .engine)")
    p.add_argument("--cache-dir", help="write into an engine cache folder instead, under the name the native "
                                       "runtime's cache looks for (<stem>-<key>.engine)")
    precision = p.add_mutually_exclusive_group()
    precision.add_argument("--fp16", dest="precision", action="store_const", const="fp16",
                           help="half precision (default)")
    precision.add_argument("--fp32", dest="precision", action="store_const", const="fp32", help="full precision")
    precision.add_argument("--int8", dest="precision", action="store_const", const="int8",
                           help="INT8 from a Q/DQ-quantized ONNX")
    p.set_defaults(precision="fp16")
    p.add_argument("--profile", action="append", default=[], metavar="INPUT:MIN/OPT/MAX",
                   help="an optimization profile, e.g. image:1x1x256x256/1x1x512x512/4x1x1024x1024 "
                        "(repeat for several; join inputs of one profile with ',')")
    p.add_argument("--concurrency", type=int, default=1,
                   help="copies of each profile = threads that may infer one shape range at once (default 1)")
    p.add_argument("--workspace", type=float, default=0.0, metavar="GIB",
                   help="builder workspace limit in GiB (default: TensorRT's)")
    p.add_argument("--timing-cache", metavar="PATH", help="timing cache file, read and updated (faster rebuilds)")
    p.add_argument("--dla-core", type=int, default=-1, help="Jetson DLA core, with GPU fallback (default: GPU only)")
    p.add_argument("--device", type=int, default=0, help="CUDA device index (default 0)")
    p.add_argument("--force", action="store_true", help="rebuild even when an up-to-date engine exists")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the check run on a test image after building")
    p.add_argument("--check", metavar="ENGINE",
                   help="only check ENGINE's sidecar against this GPU and TensorRT; exit 0 if it can run here, 1 if not")
    p.add_argument("--allow-other-gpu", action="store_true",
                   help="with --check: accept an engine built on another GPU of the same model")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_trt)


def run_trt(args: argparse.Namespace) -> int:
    from ifrt.engine import SidecarError, TensorRTUnavailableError, parse_profile

    try:
        if args.check:
            return _check_engine(args)
        if not args.onnx:
            print("ifrt export trt: give an ONNX model (or --check ENGINE)", file=sys.stderr)
            return 2
        from ifrt.export.trt import EngineBuildError, TrtBuildConfig, export_engine

        try:
            profiles = [parse_profile(text) for text in args.profile]
        except ValueError as exc:
            print(f"ifrt export trt: {exc}", file=sys.stderr)
            return 2
        cfg = TrtBuildConfig(precision=args.precision, profiles=profiles, concurrency=args.concurrency,
                             workspace_bytes=int(args.workspace * (1 << 30)), timing_cache=args.timing_cache,
                             dla_core=args.dla_core, device=args.device)
        try:
            result = export_engine(args.onnx, args.output, cache_dir=args.cache_dir, cfg=cfg, force=args.force,
                                   verify=args.verify)
        except FileNotFoundError as exc:
            print(f"ifrt export trt: {exc}", file=sys.stderr)
            return 2
        except (EngineBuildError, SidecarError) as exc:
            print(f"ifrt export trt: {exc}", file=sys.stderr)
            return 1
    except TensorRTUnavailableError as exc:
        print(f"ifrt export trt: {exc}", file=sys.stderr)
        return 2

    s = result.sidecar
    if args.json:
        print(json.dumps({"engine": str(result.engine_path), "sidecar": str(result.sidecar_path),
                          "built": result.built, "seconds": round(result.seconds, 2), **s}, indent=2))
    else:
        verb = "wrote" if result.built else "kept (up to date)"
        size_mb = result.engine_path.stat().st_size / 1e6
        print(f"{verb} {result.engine_path} ({size_mb:.1f} MB) + {result.sidecar_path.name}: TensorRT "
              f"{s['tensorrt_version']}, {s['precision']}, {s['gpu']['name']} ({s['gpu']['compute_capability']}), "
              f"{result.seconds:.0f} s")
    return 0


def _check_engine(args: argparse.Namespace) -> int:
    from ifrt.engine import SidecarError, check_engine

    try:
        reasons = check_engine(args.check, device=args.device, allow_same_model_gpu=args.allow_other_gpu)
    except (SidecarError, FileNotFoundError) as exc:
        print(f"ifrt export trt: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"engine": args.check, "ok": not reasons, "reasons": reasons}, indent=2))
    elif reasons:
        print(f"{args.check} cannot run here:", *(f"  - {r}" for r in reasons), sep="\n")
    else:
        print(f"{args.check} matches this GPU and TensorRT")
    return 1 if reasons else 0
