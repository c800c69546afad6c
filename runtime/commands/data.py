"""`ifrt data`: synthesize, index, split, check and preview datasets (folder + manifest.csv).

Needs numpy, OpenCV and tifffile only (no torch); the implementations live in `ifrt.train.data` and are
imported inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from ifrt.commands import ProgressReport, int_at_least, integer_list
from ifrt.train.data import SYNTH_MAX_SIZE, SYNTH_MIN_SIZE


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def _numbers(text: str) -> list[float]:
    try:
        values = [float(v) for v in _names(text)]
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="synthesize, index, split, check and preview datasets",
                              description="Datasets are a folder of images plus manifest.csv (path, patient_id, "
                                          "stain, diagnosis, blur_level, sharp_path, split). Create one with "
                                          "synth or index, assign splits with split, validate it with check and "
                                          "look at it with preview.")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    s = sub.add_parser("synth", help="write a synthetic IFVB-like database (images + manifest.csv)",
                       description="Write a synthetic database of patients with a stain panel of glomerulus images, "
                                   "each degraded and labelled, split by patient into train, val and test. A folder "
                                   "that already holds a database is refused unless --force; one that an interrupted "
                                   "synth left is finished by the same command.")
    s.add_argument("out", help="output folder")
    s.add_argument("--force", action="store_true",
                   help="replace a database already in OUT: its manifest.csv, synth.json and images/, sharp/ and "
                        "blur_maps/ folders are deleted first (other files are kept)")
    s.add_argument("--patients", type=int_at_least(1), default=100,
                   help="number of patients (default 100; at least 3 to fill train, val and test)")
    s.add_argument("--images-per-patient", type=int_at_least(1), default=None,
                   help="images per patient, stains in turn (default: one per stain)")
    s.add_argument("--size", type=int_at_least(SYNTH_MIN_SIZE, SYNTH_MAX_SIZE), default=512,
                   help=f"image width and height in pixels, {SYNTH_MIN_SIZE} to {SYNTH_MAX_SIZE} (default 512)")
    s.add_argument("--bit-depth", type=int, default=16, help="camera bit depth, 8..16 (default 16)")
    s.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    s.add_argument("--classes", type=_names, default=None, help="comma-separated classes (default IgAN,MN,DN,LN)")
    s.add_argument("--proportions", type=_numbers, default=None, help="class proportions, e.g. 0.4,0.2,0.2,0.2")
    s.add_argument("--stains", type=_names, default=None, help="stain panel (default IgG,IgA,IgM,C3,C1q)")
    s.add_argument("--blur-levels", type=integer_list(minimum=0), default=None,
                   help="levels to draw from, e.g. 0,2,4 (default: all)")
    s.add_argument("--no-degrade", action="store_true", help="write sharp images only (blur level 0)")
    s.add_argument("--workers", type=int_at_least(1), default=None, help="processes (default: CPU count)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=run_synth)

    s = sub.add_parser("index", help="build manifest.csv from ROOT/<diagnosis>/<patient>/<image>",
                       description="Build manifest.csv from a folder laid out as ROOT/<diagnosis>/<patient>/<image>; "
                                   "files outside a patient folder are listed as skipped.")
    s.add_argument("root", help="dataset folder")
    s.add_argument("--out", default=None, help="manifest to write (default ROOT/manifest.csv)")
    s.add_argument("--force", action="store_true", help="replace an existing manifest")
    s.add_argument("--prefix-patients", action="store_true",
                   help="patient id = <diagnosis>/<patient> (when folder names repeat across diagnoses)")
    s.set_defaults(func=run_index)

    s = sub.add_parser("split", help="assign train/val/test by patient, stratified by diagnosis",
                       description="Assign each patient to train, val or test, stratified by diagnosis, so that no "
                                   "patient is in two splits. A split left empty (too few patients) is a warning.")
    s.add_argument("dataset", help="dataset folder or manifest CSV")
    s.add_argument("--by", choices=["patient"], default="patient", help="grouping unit (always patient)")
    s.add_argument("--fractions", type=_numbers, default=[0.7, 0.15, 0.15], help="train,val,test (default 0.7,0.15,0.15)")
    s.add_argument("--seed", type=int, default=0, help="shuffles the patients of each diagnosis (default 0)")
    s.add_argument("--out", default=None, help="manifest to write (default: update the input)")
    s.set_defaults(func=run_split)

    s = sub.add_parser("check", help="validate a dataset; lists every problem, exit 1 if any",
                       description="Read the manifest and every file it names and list every problem (columns, "
                                   "cells, blur levels, patient leakage, missing or unreadable files, pixels); "
                                   "exit 1 if there is any. Modifies nothing.")
    s.add_argument("dataset", help="dataset folder or manifest CSV")
    s.add_argument("--min-size", type=int, default=64, help="smallest acceptable width/height (default 64)")
    s.add_argument("--max-pixels", type=int_at_least(1), default=None,
                   help="decompression-bomb limit per image (default 2^28)")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(func=run_check)

    s = sub.add_parser("preview", help="contact sheet by class x blur level (PNG)",
                       description="Write a colour contact sheet with one row per diagnosis and one column per blur "
                                   "level, each cell one image of the dataset.")
    s.add_argument("dataset", help="dataset folder or manifest CSV")
    s.add_argument("--out", required=True, help="sheet to write (.png, or .jpg)")
    s.add_argument("--thumb", type=int_at_least(16, 1024), default=192, help="cell size in pixels, 16 to 1024 "
                   "(default 192)")
    s.set_defaults(func=run_preview)


def _fail(args: argparse.Namespace, message: str) -> int:
    """A usage error of `ifrt data ACTION`: one line on stderr, exit 2."""
    print(f"ifrt data {args.data_command}: {message}", file=sys.stderr)
    return 2


def _folder_as_manifest(out, name: str) -> str:
    """Why a folder cannot be the manifest `index` and `split` write (`name`: the file name to suggest)."""
    return f"--out {out} is a folder; give the manifest's file name (e.g. {out / name})"


def _warn_empty_splits(args: argparse.Namespace, rows, fractions) -> None:
    from ifrt.train.data.split import empty_splits

    empty = empty_splits(rows, fractions)
    if empty:
        patients = len({row.patient_id for row in rows})
        wanted = sum(f > 0 for f in fractions)
        print(f"ifrt data {args.data_command}: warning: no patient in {', '.join(empty)}: {patients} patient(s) "
              f"cannot fill {wanted} splits (give at least {wanted} patients); training needs val rows and "
              "`ifrt eval` test rows", file=sys.stderr)


def run_synth(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ifrt.train.data import pathology
    from ifrt.train.data.manifest import read_manifest
    from ifrt.train.data.split import DEFAULT_FRACTIONS
    from ifrt.train.data.synth import synthesize_database

    console = Console(stderr=True, soft_wrap=True, highlight=False)
    with ProgressReport(console, "synth", "ifrt data synth", noun="patients written", unit="patient",
                        quiet=args.quiet) as bar:
        try:
            manifest = synthesize_database(
                args.out, patients=args.patients, images_per_patient=args.images_per_patient, size=args.size,
                bit_depth=args.bit_depth, seed=args.seed, classes=args.classes or pathology.DEFAULT_CLASSES,
                proportions=args.proportions, stains=args.stains or pathology.DEFAULT_STAINS,
                blur_levels=args.blur_levels, degrade=not args.no_degrade, workers=args.workers,
                replace=args.force, progress=bar.update)
        except (ValueError, FileExistsError) as exc:
            bar.stop()
            return _fail(args, str(exc))
    _warn_empty_splits(args, read_manifest(manifest), DEFAULT_FRACTIONS)
    print(f"wrote {manifest}")
    return 0


def _warn_replaced(args: argparse.Namespace, manifest) -> None:
    """Say what `index --force` does not carry over from the manifest it replaces: splits and added columns."""
    from ifrt.train.data.manifest import COLUMNS, ManifestError, read_table

    try:
        header, table = read_table(manifest)
    except ManifestError:
        return
    lost = [name for name in header if name not in COLUMNS]
    if any(cells.get("split") for cells in table):
        lost.insert(0, "split")
    if lost:
        print(f"ifrt data {args.data_command}: warning: {manifest} is replaced by a new index; its "
              f"{', '.join(lost)} column(s) are not carried over (rerun `ifrt data split` for splits)", file=sys.stderr)


def _dataset_lock(args: argparse.Namespace, manifest):
    """Hold the folder of the manifest `index` or `split` writes (`ifrt.runlock`, shared with `synth`): a split
    that read the manifest before an index replaced it would otherwise write the old rows back over the new. A
    folder that does not exist yet is not held: the write creates it, or reading the dataset fails first."""
    import contextlib

    from ifrt.runlock import folder_lock
    from ifrt.train.data.manifest import DATA_LOCK

    if not manifest.parent.is_dir():
        return contextlib.nullcontext()
    return folder_lock(manifest.parent, DATA_LOCK, f"ifrt data {args.data_command}", "give --out a manifest in another folder")


def run_index(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ifrt.train.data.manifest import MANIFEST_NAME

    out = Path(args.out) if args.out else Path(args.root) / MANIFEST_NAME
    if out.is_dir():
        return _fail(args, _folder_as_manifest(out, MANIFEST_NAME))
    with _dataset_lock(args, out):
        return _index(args, out)


def _index(args: argparse.Namespace, out) -> int:
    from ifrt.train.data.index import index_folder
    from ifrt.train.data.manifest import ManifestError, write_manifest

    if out.exists() and not args.force:
        return _fail(args, f"{out} exists; pass --force to replace it")
    try:
        index = index_folder(args.root, manifest_dir=out.parent, prefix_patients=args.prefix_patients)
    except ManifestError as exc:
        return _fail(args, str(exc))
    for skipped in index.skipped:
        print(f"skipped {skipped}: not inside a patient folder (ROOT/<diagnosis>/<patient>/)", file=sys.stderr)
    for duplicate, first in index.duplicates:
        print(f"skipped {duplicate}: the same file as {first} (a link), listed once", file=sys.stderr)
    if index.ignored:
        print(f"ifrt data index: ignored {index.ignored} file(s) in patient folders that are not TIFF, PNG or JPEG",
              file=sys.stderr)
    if out.exists():
        _warn_replaced(args, out)
    write_manifest(out, index.rows)
    patients = len({r.patient_id for r in index.rows})
    print(f"wrote {out}: {len(index.rows)} images, {patients} patients")
    return 0


def run_split(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ifrt.train.data.manifest import manifest_path

    source = manifest_path(args.dataset)
    out = Path(args.out) if args.out else source
    if out.is_dir():
        return _fail(args, _folder_as_manifest(out, source.name))
    with _dataset_lock(args, out):
        return _split(args, source, out)


def _split(args: argparse.Namespace, source, out) -> int:
    from collections import Counter

    from ifrt.train.data.check import path_problem
    from ifrt.train.data.manifest import NO_ROWS, ManifestError, read_manifest, write_manifest
    from ifrt.train.data.split import split_rows

    try:
        rows = read_manifest(source)
        if not rows:
            return _fail(args, f"{source}: {NO_ROWS}")
        rows = split_rows(rows, tuple(args.fractions), args.seed)
    except (ManifestError, ValueError) as exc:
        return _fail(args, str(exc))
    _warn_empty_splits(args, rows, args.fractions)
    outside = [row.path for row in rows if path_problem(row.path)]
    if outside:
        print(f"ifrt data split: warning: {len(outside)} row(s) name a file outside the dataset folder (first: "
              f"{outside[0]}); `ifrt data check` reports them", file=sys.stderr)
    write_manifest(out, rows)
    patients = Counter(split for _, split in {(r.patient_id, r.split) for r in rows})
    print(f"wrote {out}: " + ", ".join(f"{name} {patients.get(name, 0)} patients" for name in ("train", "val", "test")))
    return 0


def run_check(args: argparse.Namespace) -> int:
    from ifrt.imageio import DEFAULT_MAX_PIXELS
    from ifrt.train.data.check import check_dataset
    from ifrt.train.data.manifest import manifest_path, missing_manifest

    manifest = manifest_path(args.dataset)
    if not manifest.is_file():  # nothing to check: the command cannot run (exit 2)
        return _fail(args, str(missing_manifest(manifest)))
    report = check_dataset(args.dataset, min_size=args.min_size, max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS)
    if args.json:
        print(json.dumps({"manifest": report.manifest, "rows": report.rows, "files": report.files,
                          "blur_levels": report.blur_levels, "ok": report.ok,
                          "problems": [{"file": p.file, "message": p.message} for p in report.problems]}, indent=2))
    else:
        for problem in report.problems:
            print(problem)
        verdict = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        levels = report.blur_levels
        found = f"blur levels {','.join(map(str, levels))}, " if levels else ""
        print(f"{report.manifest}: {report.rows} rows, {found}{report.files} files checked, {verdict}",
              file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1


def run_preview(args: argparse.Namespace) -> int:
    from ifrt.train.data.preview import preview_sheet

    try:
        out = preview_sheet(args.dataset, args.out, thumb=args.thumb)
    except ValueError as exc:  # a bad --out name or manifest; a write that fails is an OSError
        return _fail(args, str(exc))
    print(f"wrote {out}")
    return 0
