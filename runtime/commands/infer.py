"""`ifrt infer`: diagnosis, quality and (optionally) deblurring for files, folders, globs and list files."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "infer", help="diagnose, assess focus and deblur images (files, folders, globs, @lists)",
        description="Writes OUT/results.jsonl (one JSON line per image), OUT/summary.csv, and with --deblur / "
                    "--overlay the deblurred TIFFs and quality-map overlays. A bad file is recorded and the "
                    "run continues; the exit code is 1 if any image failed. A rerun skips finished images.")
    p.add_argument("sources", nargs="+", help="image files, folders, glob patterns, or @LIST (one path per line)")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--model", help="model folder (default: the bundled default model)")
    p.add_argument("--backend", default="auto", choices=["auto", "trt", "ort", "torch"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16"])
    p.add_argument("--recursive", action="store_true", help="search folders recursively")
    p.add_argument("--pages", choices=["first", "all"], default="first",
                   help="multi-page TIFFs: analyse the first page (default) or every page as its own image")
    p.add_argument("--deblur", action="store_true", help="write deblurred TIFFs (input dtype, metadata kept)")
    p.add_argument("--overlay", action="store_true", help="write quality-map overlay PNGs")
    p.add_argument("--no-maps", dest="maps", action="store_false", help="leave the per-tile maps out of the JSON")
    p.add_argument("--patient-from", metavar="REGEX|MANIFEST",
                   help="patient of each image: a regex over the path (group 'patient' or group 1), or a "
                        "manifest.csv; adds OUT/patients.json with patient diagnoses (the product of the images' class probabilities)")
    p.add_argument("--quality-threshold", type=float, default=0.5,
                   help="below this quality the diagnosis is marked unreliable (default 0.5)")
    p.add_argument("--tile", type=int, default=512, help="tile size for large frames (default 512)")
    p.add_argument("--overlap", type=int, default=64, help="tile overlap in pixels (default 64)")
    p.add_argument("--max-pixels", type=int, default=None, help="refuse images with more pixels (default 2^28)")
    p.add_argument("--overwrite", action="store_true", help="redo images already recorded as done")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class TransferSpeed(TextColumn):
        """Images per second."""

        def __init__(self) -> None:
            super().__init__("")

        def render(self, task) -> Text:
            return Text(f"{task.speed:.1f} img/s" if task.speed else "- img/s")

    from ifrt.backends import BackendUnavailableError
    from ifrt.infer import run_infer
    from ifrt.model_package import ModelPackageError
    from ifrt.session import Session
    from ifrt.sources import SourceError, expand_sources

    console = Console(stderr=True)
    try:
        sources = expand_sources(args.sources, recursive=args.recursive)
    except SourceError as exc:
        console.print(f"ifrt infer: {exc}", markup=False)
        return 2
    if not sources:
        console.print("ifrt infer: no images found in the given sources", markup=False)
        return 2
    patient_pattern = patient_manifest = None
    if args.patient_from:
        if args.patient_from.endswith(".csv") and Path(args.patient_from).is_file():
            patient_manifest = Path(args.patient_from)
        else:
            patient_pattern = args.patient_from
    options = {"backend": args.backend, "precision": args.precision, "tile": args.tile, "overlap": args.overlap,
               "quality_threshold": args.quality_threshold}
    if args.max_pixels:
        options["max_pixels"] = args.max_pixels
    try:
        session = Session(args.model, **options)
    except (ModelPackageError, BackendUnavailableError, ValueError) as exc:
        console.print(f"ifrt infer: {exc}", markup=False)
        return 2
    console.print(f"ifrt infer: {len(sources)} images, model {session.package.root.name}, "
                  f"backend {session.backend_name}", markup=False)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TransferSpeed(),
               TimeRemainingColumn()]
    with Progress(*columns, console=console, disable=args.quiet, transient=False) as bar:
        task = bar.add_task("infer", total=len(sources))

        def progress(index: int, total: int, _source: str) -> None:
            bar.update(task, completed=index, total=total)

        try:
            report = run_infer(session, sources, Path(args.out), deblur=args.deblur, overlay=args.overlay,
                               overwrite=args.overwrite, patient_pattern=patient_pattern,
                               patient_manifest=patient_manifest, maps=args.maps, pages=args.pages,
                           progress=progress)
        except OSError as exc:  # the output folder, not an image: a full disk, a lost mount, no permission
            bar.stop()
            console.print(f"ifrt infer: cannot write results in {args.out}: {exc}; the images finished so far "
                          "are recorded, free space (or fix the folder) and rerun to finish", markup=False)
            return 1
    for _source, reason in report.failed:
        console.print(f"failed: {reason}", markup=False)
    console.print(f"ifrt infer: {report.done} done, {report.skipped} already done, {len(report.failed)} failed"
                  + (", interrupted (rerun to finish)" if report.interrupted else "")
                  + f"; results in {args.out}", markup=False)
    return report.exit_code
