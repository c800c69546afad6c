"""`ifrt doctor`: what is installed, what is missing, and how to get it."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("doctor", help="report versions, native build features, GPUs and what is missing",
                              description="Report the installed packages, what the native module was built with "
                                          "and the visible GPUs, with the command that installs each missing piece. "
                                          "Always exits 0.")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ifrt import doctor

    report = doctor.collect()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        doctor.render(report)
    return 0
