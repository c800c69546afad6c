"""`ifrt train`: train the DeepMT-ND network (or a baseline) on a manifest database.

Multi-GPU / multi-node: `torchrun --nproc_per_node=N -m ifrt train ...` (DistributedDataParallel).
"""

from __future__ import annotations

import argparse
import json
import sys

from ifrt.commands import warner


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train the network on a database (needs ifrt[train])",
                              description="Train, or resume an interrupted run in the same --out folder.")
    p.add_argument("--data", required=True, help="database folder holding manifest.csv")
    p.add_argument("--config", help="YAML config (sections model, data, loss, train); e.g. train/configs/s.yaml")
    p.add_argument("--out", required=True, help="run folder: checkpoints, metrics.csv, TensorBoard logs")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (YAML syntax), e.g. --set model.variant=st --set data.levels=[0]; "
                        "a deeper key names one entry of a mapping: --set loss.weights.deblur=0.2")
    p.set_defaults(func=run)


def parse_overrides(items: list[str]) -> dict:
    import yaml

    overrides: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        path = key.split(".")
        if not sep or len(path) < 2 or not all(path):
            raise SystemExit(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. train.epochs=5")
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SystemExit(f"--set {item!r}: {part!r} was already set to a value, not a mapping")
        node[path[-1]] = yaml.safe_load(value)
    return overrides


def run(args: argparse.Namespace) -> int:
    try:
        import yaml

        from ifrt.train.trainer import TrainingInterrupted, load_config, train
    except ImportError as exc:
        raise SystemExit(f"ifrt train needs PyTorch: pip install 'ifrt[train]' ({exc})") from exc
    try:
        config = load_config(args.config, parse_overrides(args.set))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"{args.config}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from exc
    try:
        summary = train(args.data, config, args.out,
                        warn=warner("ifrt train"))
    except TrainingInterrupted as exc:  # checkpointed: the message says where a rerun resumes
        print(exc, file=sys.stderr)
        return 130
    print(json.dumps({k: v for k, v in summary.items() if k != "model"}, indent=2))
    return 0
