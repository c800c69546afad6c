"""`ifrt` subcommands. Each module defines `register(subparsers)`; imports of heavy dependencies
(torch, onnx, tensorrt) happen inside the handlers, never at module import."""

from __future__ import annotations

import argparse
import math
import sys
import time

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


def warner(command: str):
    """The `warn` a command passes to a library call: prints `ifrt train: warning: TEXT` on stderr."""
    def warn(text: str) -> None:
        print(f"{command}: warning: {text}", file=sys.stderr, flush=True)
    return warn


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


def integer_list(minimum: int = 1, multiple_of: int = 1):
    """An argparse type: comma-separated integers (`--sizes 256,512`), each at least `minimum` and a multiple of
    `multiple_of`, refused at parse time like `int_at_least`, naming the first value that breaks the rule."""
    noun = f"multiples of {multiple_of}" if multiple_of > 1 else "integers"
    rule = f"positive {noun}" if minimum == 1 else f"{noun} of at least {minimum}"

    def parse(text: str) -> list[int]:
        try:
            values = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
        bad = [v for v in values if v < minimum or v % multiple_of]
        if not values or bad:
            raise argparse.ArgumentTypeError(f"{text!r}: give {rule}" + (f" (not {bad[0]})" if bad else ""))
        return values

    return parse


def float_above(minimum: float):
    """An argparse type: a finite number > `minimum` (a frame rate, a duration), refused at parse time like
    `int_at_least`."""
    return _finite_float(lambda value: value > minimum, f"greater than {minimum:g}")


def float_at_least(minimum: float):
    """An argparse type: a finite number >= `minimum` (a tolerance, a period where 0 means none), refused at parse
    time like `int_at_least`."""
    return _finite_float(lambda value: value >= minimum, f"of at least {minimum:g}")


def _finite_float(accept, rule: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(value) and accept(value)):
            raise argparse.ArgumentTypeError(f"must be a number {rule}, got {text}")
        return value

    return parse


LOG_SECONDS = 30.0  # how often a long command says how far it got when stderr is not a terminal


class ProgressReport:
    """A long command's progress on `console` (stderr): a rich bar on a terminal; elsewhere (a log file,
    nohup), where the bar is not drawn, a line every LOG_SECONDS, "PREFIX: N of M NOUN, R UNIT/s". A context
    manager; `update(done, total)` as work finishes, `stop()` before printing an error."""

    def __init__(self, console, description: str, prefix: str, *, noun: str, unit: str, quiet: bool = False):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        from rich.text import Text

        class Speed(TextColumn):
            def __init__(self) -> None:
                super().__init__("")

            def render(self, task) -> Text:
                return Text(f"{task.speed:.1f} {unit}/s" if task.speed else f"- {unit}/s")

        self.console, self.prefix, self.noun, self.unit, self.quiet = console, prefix, noun, unit, quiet
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Speed(),
                            TimeRemainingColumn(), console=console, disable=quiet or not console.is_terminal,
                            transient=False)
        self.task = self.bar.add_task(description, total=None)
        self.logged = time.monotonic()

    def __enter__(self) -> ProgressReport:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def update(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total)
        if not self.quiet and not self.console.is_terminal and time.monotonic() - self.logged >= LOG_SECONDS:
            self.logged = time.monotonic()
            speed = self.bar.tasks[0].speed
            self.console.print(f"{self.prefix}: {done} of {total} {self.noun}"
                               + (f", {speed:.1f} {self.unit}/s" if speed else ""), markup=False)

    def stop(self) -> None:
        self.bar.stop()
