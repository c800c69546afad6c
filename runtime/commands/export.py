"""`ifrt export TARGET`: turn a model into what edge boxes and servers run. Targets: `onnx` (full and
focus graphs, fp32 and optionally fp16, checked against torch), `trt` (a TensorRT engine plus its
sidecar), `triton` (a Triton model repository). torch, onnx and TensorRT are imported inside the
handlers, never at import."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ifrt.commands import int_at_least, warner


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a model: ONNX (onnx), TensorRT engine (trt), Triton (triton)")
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    _register_onnx(targets)
    _register_trt(targets)
    _register_triton(targets)


def _calibration_size(text: str) -> int:
    """An argparse type: the network's input sides are multiples of 32 (five stride-2 stages), and the export
    traces at least 64 (at 32 the tile count along each side is 1, which torch.export specializes to a
    constant, so the dynamic dims cannot be exported)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 64 or value % 32:
        raise argparse.ArgumentTypeError(f"{value} is not a multiple of 32 of at least 64 "
                                         f"(e.g. {max(64, value // 32 * 32)})")
    return value


def _graph_list(text: str) -> tuple[str, ...]:
    """An argparse type: one or more of the model's graphs, comma-separated, each once."""
    from ifrt.model_package import check_graph_names

    graphs = tuple(g.strip() for g in text.split(",") if g.strip())
    try:
        check_graph_names(graphs)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return graphs


def resolve_model_folder(path: str) -> str:
    """A run folder written by `ifrt train` stands for its best checkpoint (best/, else last/), as `ifrt eval`
    reads it; a model folder stands for itself."""
    from ifrt.model_package import checkpoint_of_run

    checkpoint = checkpoint_of_run(Path(path))
    if checkpoint != Path(path):
        print(f"note: {path} is a run folder; exporting its {checkpoint.name} checkpoint {checkpoint}", file=sys.stderr)
        return str(checkpoint)
    return path


# ---- onnx ----------------------------------------------------------------------------------------


def _register_onnx(targets: argparse._SubParsersAction) -> None:
    p = targets.add_parser(
        "onnx", help="trained model folder -> full.onnx + focus.onnx (+ .fp16.onnx), checked against torch",
        description="Export the full and focus graphs with dynamic batch and spatial dims and the model's "
                    "metadata, check each against torch on calibration images (fp32: max abs diff <= 1e-4 and "
                    "identical argmax; fp16: diagnosis and blur-level agreement >= 99.5%, quality within 0.005 "
                    "and the quality map within 0.02 of fp32, deblurred PSNR drift <= 0.1 dB, or >= 60 dB "
                    "against torch for --calib images without references), and write export_report.json. A graph "
                    "that fails its check is not kept, the others are (exit 1).")
    p.add_argument("model", help="model folder written by `ifrt train` (model.safetensors + model.json), or a run "
                                 "folder (its best/ checkpoint is exported)")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--fp16", action="store_true",
                   help="also write float16 graphs (float32 I/O), refused if activations approach the fp16 range")
    p.add_argument("--int8", action="store_true",
                   help="also write Q/DQ INT8 graphs calibrated on the calibration images (agreement reported)")
    p.add_argument("--calib", metavar="DIR",
                   help="calibration images: a folder or a dataset with manifest.csv (default: synthetic glomeruli)")
    p.add_argument("--calib-count", type=int_at_least(1), default=16, help="calibration images (default 16)")
    p.add_argument("--calib-size", type=_calibration_size, default=256,
                   help="calibration image side, a multiple of 32 of at least 64 (default 256)")
    p.add_argument("--graphs", type=_graph_list, default=("full", "focus"),
                   help="comma-separated graphs to export (default full,focus); the output folder keeps only "
                        "what this export writes")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18; TensorRT 10 parses 9..20)")
    p.add_argument("--static", action="store_true", help="fixed batch and spatial dims (the calibration size)")
    p.add_argument("--no-simplify", dest="simplify", action="store_false", help="skip onnxslim")
    p.set_defaults(func=run_onnx)


def run_onnx(args: argparse.Namespace) -> int:
    try:
        from ifrt.export.fp16 import Fp16RangeError
        from ifrt.export.int8 import describe_calibration
        from ifrt.export.onnx_export import OnnxExportOptions
        from ifrt.export.pipeline import ExportCheckError, export_onnx
    except ImportError as exc:
        print(f"ifrt export onnx: {exc.name or exc} is missing; install the export extra: "
              "pip install 'ifrt[export]'", file=sys.stderr)
        return 2
    options = OnnxExportOptions(opset=args.opset, example_size=args.calib_size, dynamic_batch=not args.static,
                                dynamic_spatial=not args.static, simplify=args.simplify)
    try:
        report = export_onnx(resolve_model_folder(args.model), args.out, fp16=args.fp16, int8=args.int8, calibration_source=args.calib,
                             calibration_count=args.calib_count, calibration_size=args.calib_size, graphs=args.graphs,
                             options=options)
    except (FileNotFoundError, ValueError) as exc:
        print(f"ifrt export onnx: {exc}", file=sys.stderr)
        return 2 if not isinstance(exc, Fp16RangeError) else 1
    except ExportCheckError as exc:
        print(f"ifrt export onnx: a graph failed its check and was not kept: {exc}", file=sys.stderr)
        return 1
    if report["removed"]:
        print(f"note: removed {', '.join(report['removed'])} of the earlier export in {args.out} (an export "
              "replaces the folder's graphs)", file=sys.stderr)
    for graph, entry in report["graphs"].items():
        diff = max(entry["fp32_vs_torch"]["max_abs_diff"].values())
        line = f"{graph}: {entry['file']} (max |onnx - torch| = {diff:.2e})"
        for precision in ("fp16", "int8"):
            if f"{precision}_vs_torch" in entry:
                agree = entry[f"{precision}_vs_torch"]["argmax_agreement"].get("diagnosis_logits")
                line += f", {entry[f'{precision}_file']}"
                line += f" (diagnosis agreement {agree:.1%})" if agree is not None else ""
        if "int8_file" in entry:
            line += f", int8 calibration: {describe_calibration(report['calibration']['int8'][graph])}"
        print(line)
    return 0


# ---- triton --------------------------------------------------------------------------------------


def _register_triton(targets: argparse._SubParsersAction) -> None:
    p = targets.add_parser("triton", help="ONNX graphs (and engines) -> a Triton model repository",
                           description="Write REPO/ifrt_full and REPO/ifrt_focus (config.pbtxt + 1/model.onnx, "
                                       "or 1/model.plan for a graph given an engine).")
    p.add_argument("onnx_dir", help="folder from `ifrt export onnx` (full.onnx, focus.onnx)")
    p.add_argument("-o", "--out", required=True, help="repository folder")
    p.add_argument("--fp16", action="store_true", help="serve the .fp16.onnx graphs")
    p.add_argument("--engine", action="append", default=[], metavar="GRAPH=PATH",
                   help="serve GRAPH from a TensorRT engine, e.g. full=full.engine (repeatable)")
    p.add_argument("--max-batch", type=int_at_least(1), default=8, help="Triton max_batch_size (default 8)")
    p.add_argument("--instances", type=int_at_least(1), default=1, help="model instances per GPU (default 1)")
    p.add_argument("--cpu", action="store_true", help="instance kind CPU instead of GPU")
    p.set_defaults(func=run_triton)


def run_triton(args: argparse.Namespace) -> int:
    try:
        from ifrt.export.triton import write_repository
    except ImportError as exc:
        print(f"ifrt export triton: {exc.name or exc} is missing; pip install 'ifrt[export]'", file=sys.stderr)
        return 2
    suffix = ".fp16.onnx" if args.fp16 else ".onnx"
    graphs = {g: Path(args.onnx_dir) / f"{g}{suffix}" for g in ("full", "focus")}
    graphs = {g: p for g, p in graphs.items() if p.is_file()}
    if not graphs:
        print(f"ifrt export triton: {args.onnx_dir}: no full{suffix} or focus{suffix} here "
              "(run `ifrt export onnx` first)", file=sys.stderr)
        return 2
    # The graphs go to a server as they are: verified against their sidecars and as one model first.
    from ifrt.model_package import ModelPackageError, open_model

    try:
        open_model(args.onnx_dir)
    except ModelPackageError as exc:
        print(f"ifrt export triton: {exc}", file=sys.stderr)
        return 2
    engines = {}
    for item in args.engine:
        graph, _, path = item.partition("=")
        if graph not in graphs or not Path(path).is_file():
            print(f"ifrt export triton: --engine {item}: expected GRAPH=PATH with GRAPH in {sorted(graphs)} "
                  "and an existing engine file", file=sys.stderr)
            return 2
        engines[graph] = Path(path)
    configs = write_repository(graphs, args.out, engines=engines, max_batch_size=args.max_batch,
                               instance_kind="KIND_CPU" if args.cpu else "KIND_GPU", instances=args.instances,
                               warn=warner("ifrt export triton"))
    for config in configs:
        print(f"wrote {config}")
    return 0


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
        if not Path(args.check).is_file():
            raise FileNotFoundError(f"{args.check}: engine file not found")
        reasons = check_engine(args.check, device=args.device, allow_same_model_gpu=args.allow_other_gpu)
    except (SidecarError, FileNotFoundError) as exc:
        print(f"ifrt export trt: {exc}", file=sys.stderr)
        if args.json:  # a script reading stdout gets the verdict whichever way the check fails
            print(json.dumps({"engine": args.check, "ok": False, "reasons": [str(exc)]}, indent=2))
        return 1
    if args.json:
        print(json.dumps({"engine": args.check, "ok": not reasons, "reasons": reasons}, indent=2))
    elif reasons:
        print(f"{args.check} cannot run here:", *(f"  - {r}" for r in reasons), sep="\n")
    else:
        print(f"{args.check} matches this GPU and TensorRT")
    return 1 if reasons else 0
