"""`ifrt infer`: diagnosis, quality and (optionally) deblurring for files, folders, globs and list files."""

from __future__ import annotations

import argparse
import contextlib
import errno
import math
from pathlib import Path

from ifrt.commands import ProgressReport, int_at_least


def _fraction(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a quality between 0 and 1")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "infer", help="diagnose, assess focus and deblur images (files, folders, globs, @lists)",
        description="Writes OUT/results.jsonl (one JSON line per image), OUT/summary.csv, OUT/run.json (the model "
                    "and options that made the results), and with --deblur / --overlay the deblurred TIFFs and "
                    "quality-map overlays. A bad file is recorded and the run continues; the exit code is 1 if "
                    "any image failed. A rerun skips finished images; it is refused when the model or options "
                    "differ from those in OUT/run.json (use --overwrite or another -o).")
    p.add_argument("sources", nargs="+",
                   help="image files, folders, glob patterns, or @LIST (one path per line, relative paths "
                        "starting from the list file's folder)")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--model", help="model folder (default: the bundled default model)")
    p.add_argument("--backend", default="auto", choices=["auto", "trt", "ort", "torch"],
                   help="inference backend; auto takes the fastest that loads the model: trt, ort, torch (default auto)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"],
                   help="the model's fp32, fp16 or int8 graphs (int8: those `ifrt export onnx --int8` writes; "
                        "TensorRT builds FP16 from fp32 graphs; default fp32)")
    p.add_argument("--recursive", action="store_true",
                   help="search folders recursively (the output folder is left out)")
    p.add_argument("--pages", choices=["first", "all"], default="first",
                   help="multi-page TIFFs: analyse the first page (default) or every page as its own image")
    p.add_argument("--deblur", action="store_true", help="write deblurred TIFFs (input dtype, metadata kept)")
    p.add_argument("--overlay", action="store_true", help="write quality-map overlay PNGs")
    p.add_argument("--no-maps", dest="maps", action="store_false", help="leave the per-tile maps out of the JSON")
    p.add_argument("--patient-from", metavar="REGEX|MANIFEST",
                   help="patient of each image: a regex over the path (group 'patient' or group 1), or a "
                        "manifest.csv; adds OUT/patients.json with patient diagnoses (the product of the images' "
                        "class probabilities)")
    p.add_argument("--quality-threshold", type=_fraction, default=0.5,
                   help="below this quality (0 to 1) the diagnosis is marked unreliable (default 0.5)")
    p.add_argument("--tile", type=int, default=512, help="tile size for large frames (default 512)")
    p.add_argument("--overlap", type=int, default=64, help="tile overlap in pixels (default 64)")
    p.add_argument("--max-pixels", type=int_at_least(1), default=None,
                   help="refuse images with more pixels (default 2^28)")
    p.add_argument("--overwrite", action="store_true", help="redo images already recorded as done")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _folder_problem(exc: OSError) -> str:
    """What is wrong with the output folder, in words, from the error that writing into it raised."""
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"permission denied ({exc.filename or exc})"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) and exc.filename:
        named = Path(exc.filename)
        blocking = next((folder for folder in (named, *named.parents) if folder.is_file()), named)
        return f"{blocking} is a file, not a folder"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "No space left on device"
    return exc.strerror or str(exc)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ifrt.backends import BackendUnavailableError
    from ifrt.infer import (
        InferSetupError,
        expand_pages,
        folder_lock,
        patient_sources,
        read_records,
        run_infer,
    )
    from ifrt.model_package import ModelPackageError
    from ifrt.session import Session
    from ifrt.sources import SourceError, collect_sources

    # soft_wrap: one message is one line whatever the terminal width, so logs can be grepped.
    console = Console(stderr=True, soft_wrap=True, highlight=False)

    def say(message: str) -> None:
        console.print(message, markup=False)

    out = Path(args.out)
    try:
        found = collect_sources(args.sources, recursive=args.recursive, exclude=out)
    except SourceError as exc:
        say(f"ifrt infer: {exc}")
        return 2
    if found.duplicates:
        say(f"ifrt infer: {found.duplicates} input(s) name a file already given (by another path); each file is "
            "analysed once")
    if not found.paths:
        for text, reason in found.missing:
            say(f"ifrt infer: {text}: {reason}")
        hint = "".join(f"; {folder} has only subfolders (use --recursive)" for folder in found.folders_with_subfolders)
        say(f"ifrt infer: no images found in the given sources{hint}")
        return 2
    patient_pattern = patient_manifest = None
    if args.patient_from:
        if args.patient_from.endswith(".csv"):
            patient_manifest = Path(args.patient_from)
            if not patient_manifest.is_file():
                say(f"ifrt infer: --patient-from {patient_manifest}: manifest not found")
                return 2
        else:
            patient_pattern = args.patient_from
    try:
        patient_sources(patient_pattern, patient_manifest)
    except InferSetupError as exc:
        say(f"ifrt infer: {exc}")
        return 2
    options = {"backend": args.backend, "precision": args.precision, "tile": args.tile, "overlap": args.overlap,
               "quality_threshold": args.quality_threshold}
    if args.max_pixels:
        options["max_pixels"] = args.max_pixels
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        say(f"ifrt infer: cannot write results in {out}: {_folder_problem(exc)}")
        return 2
    # The folder is held before the model loads: a busy folder is refused in a moment, not after the seconds
    # (and the GPU memory) that loading takes.
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(folder_lock(out))
        except InferSetupError as exc:
            say(f"ifrt infer: {exc}")
            return 2
        try:
            session = Session(args.model, **options)
        except (ModelPackageError, BackendUnavailableError, ValueError) as exc:
            say(f"ifrt infer: {exc}")
            return 2
        files = len(found.paths)
        counted = f"{files} images" if args.pages == "first" else \
            f"{files} file(s), {len(expand_pages(found.paths, args.pages))} pages"
        say(f"ifrt infer: {counted}, model {session.package.root.name}, backend {session.backend_name}")
        with ProgressReport(console, "infer", "ifrt infer", noun="analysed", unit="img", quiet=args.quiet) as bar:

            def progress(index: int, total: int, _source: str) -> None:
                bar.update(index, total)

            try:
                report = run_infer(session, found.paths, out, deblur=args.deblur, overlay=args.overlay,
                                   overwrite=args.overwrite, patient_pattern=patient_pattern,
                                   patient_manifest=patient_manifest, maps=args.maps, pages=args.pages,
                                   missing=found.missing, progress=progress, folder_locked=True)
            except InferSetupError as exc:
                bar.stop()
                say(f"ifrt infer: {exc}")
                return 2
            except OSError as exc:  # the output folder, not an image: a full disk, a lost mount, no permission
                bar.stop()
                try:
                    recorded = sum(r.get("status") == "ok" for r in read_records(out, maps=False))
                except OSError:
                    recorded = 0
                finished = "; the images finished so far are recorded, fix this and rerun to finish" if recorded else ""
                say(f"ifrt infer: cannot write results in {out}: {_folder_problem(exc)}{finished}")
                return 1
    for _source, reason in report.failed:
        say(f"failed: {reason}")
    if args.patient_from and not report.patients and report.done + report.skipped:
        say(f"ifrt infer: --patient-from {args.patient_from} matched none of the images, so no patients.json "
            "was written")
    elif report.patients and report.unmatched:
        say(f"ifrt infer: {report.unmatched} of {report.analysed} images matched no patient ({args.patient_from}); "
            "they are left out of patients.json")
    if report.changed:
        say(f"ifrt infer: {report.changed} image(s) changed since their recorded result and were analysed again")
    say(f"ifrt infer: {report.done} done, {report.skipped} already done, {len(report.failed)} failed"
        + (", interrupted (rerun to finish)" if report.interrupted else "") + f"; results in {args.out}")
    return report.exit_code
