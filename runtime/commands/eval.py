"""`ifrt eval`: evaluate and compare trained models on a held-out split (report JSON, Markdown, PNG)."""

from __future__ import annotations

import argparse

from ifrt.commands import int_at_least, warner


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="evaluate and compare trained models per blur level (needs ifrt[train])",
                              description="Degrade every held-out in-focus reference at every blur level and "
                                          "report diagnosis, image-quality and deblurring metrics.")
    p.add_argument("--model", action="append", required=True,
                   help="run folder (uses best/) or model folder; repeat to compare models (e.g. ST, flat, hier)")
    p.add_argument("--data", required=True, help="database folder holding manifest.csv")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--out", required=True, help="report folder: report.json, report.md, *.png")
    p.add_argument("--seed", type=int, default=1234, help="seed of the per-image, per-level degradations")
    p.add_argument("--max-images", type=int_at_least(1),
                   help="evaluate at most this many images (quick look); also caps the validation images the "
                        "calibration temperature is fitted on")
    p.add_argument("--degrade-from", metavar="RUN",
                   help="degrade the images as this training run did (its config.yaml); default: as every model "
                        "was trained when they all agree, else the data model's default; never the order of --model")
    p.add_argument("--deblur-images", type=int_at_least(0), default=16,
                   help="images for the deblurring comparison against Richardson-Lucy, per blur level for "
                        "Gaussian and defocus blur (0 = skip)")
    p.add_argument("--natural-draws", type=int_at_least(1), default=3,
                   help="noise/blur-kind draws per level and picture in the non-glomerulus quality check")
    p.add_argument("--no-calibration", action="store_true",
                   help="skip temperature scaling on the val split (with --split val the temperature is fitted on "
                        "the very images it scores, and the report says so)")
    p.add_argument("--no-natural-images", action="store_true",
                   help="skip the quality check on scikit-image's non-glomerulus pictures")
    p.set_defaults(func=run)


def check_splits(data: str, split: str, calibrate: bool) -> None:
    """Refuse, before any model runs, a database without rows in the evaluated split (or, for the calibration,
    in val), with the fix."""
    from pathlib import Path

    from ifrt.train.data.manifest import MANIFEST_NAME, read_manifest

    manifest = Path(data) / MANIFEST_NAME
    present = {row.split for row in read_manifest(manifest)}
    if split not in present:
        raise ValueError(f"{manifest}: no rows with split={split!r} (choose another with --split, or assign "
                         f"splits with `ifrt data split {data}`)")
    if calibrate and "val" not in present:
        raise ValueError(f"{manifest}: no rows with split='val' to calibrate on (pass --no-calibration)")


def run(args: argparse.Namespace) -> int:
    try:
        from ifrt.train.evaluate import evaluate, markdown
    except ImportError as exc:
        raise SystemExit(f"ifrt eval needs PyTorch: pip install 'ifrt[train]' ({exc})") from exc
    check_splits(args.data, args.split, calibrate=not args.no_calibration)
    report = evaluate(args.model, args.data, args.out, split=args.split, seed=args.seed, max_images=args.max_images,
                      deblur_images=args.deblur_images, calibrate=not args.no_calibration,
                      natural=not args.no_natural_images, natural_draws=args.natural_draws,
                      degrade_from=args.degrade_from,
                      warn=warner("ifrt eval"))
    print(markdown(report))
    return 0
