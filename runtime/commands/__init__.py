"""`ifrt` subcommands. Each module defines `register(subparsers)`; imports of heavy dependencies
(torch, onnx, tensorrt) happen inside the handlers, never at module import."""

import argparse
import math

# Order is the order of `ifrt --help`.
COMMAND_MODULES = [
    "ifrt.commands.demo",
    "ifrt.commands.doctor",
    "ifrt.commands.infer",
    "ifrt.commands.data",
    "ifrt.commands.train",
    "ifrt.commands.eval",
    "ifrt.commands.export",
    "ifrt.commands.bench",
    "ifrt.commands.live",
]


def int_at_least(minimum: int, maximum: int | None = None):
    """An argparse type: an integer >= `minimum` (and <= `maximum` when given), refused at parse time (exit 2,
    with the usage) rather than failing deep inside a run."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
        return value

    return parse


def float_above(minimum: float):
    """An argparse type: a finite number > `minimum` (a frame rate, a duration), refused at parse time like
    `int_at_least`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value <= minimum:
            raise argparse.ArgumentTypeError(f"must be a number greater than {minimum:g}, got {text}")
        return value

    return parse
