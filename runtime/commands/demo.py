"""`ifrt demo`: the bundled sample images through `ifrt infer` with the default model, ending in an
HTML report (thumbnails, quality maps, deblurred side-by-sides) to open in a browser."""

from __future__ import annotations

import argparse
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the bundled sample images and write an HTML report",
                              description="Run `ifrt infer` on the bundled sample images (diagnosis, focus quality, "
                                          "deblurring, quality-map overlays), print a table of the results and write "
                                          "OUT/report.html to open in a browser.")
    p.add_argument("-o", "--out", default="ifrt-demo", help="output folder (default ./ifrt-demo)")
    p.add_argument("--model", help="model folder (default: the bundled default model)")
    p.add_argument("--backend", default="auto", choices=["auto", "trt", "ort", "torch"],
                   help="inference backend (default auto: the first installed of trt, ort, torch)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ifrt.infer import latest_records, read_records, run_infer
    from ifrt.report import write_html_report
    from ifrt.result import quality_text
    from ifrt.session import Session
    from ifrt.sources import expand_sources

    console = Console()
    manifest = SAMPLES / "manifest.csv"
    sources = expand_sources([str(SAMPLES)], recursive=True)
    session = Session(args.model, backend=args.backend)
    out = Path(args.out)
    report = run_infer(session, sources, out, deblur=True, overlay=True, overwrite=True,
                       patient_manifest=manifest if manifest.is_file() else None)
    table = Table(title=f"ifrt demo: {len(sources)} sample images, backend {session.backend_name}")
    for column in ("image", "diagnosis", "quality", "blur level", "reliable", "ms"):
        table.add_column(column)
    for r in latest_records(read_records(out)):
        if r.get("status") == "ok":
            table.add_row(Path(r["source"]).name, r["diagnosis"], quality_text(r["quality"]), str(r["blur_level"]),
                          "yes" if r["reliable"] else "no", f"{r['timings_ms']['total']:.0f}")
    console.print(table)
    path = write_html_report(out, title="ifrt demo")
    console.print(f"report: {path.resolve()}")
    return report.exit_code
