"""The `ifrt` command line."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ifrt._version import __version__
from ifrt.commands import COMMAND_MODULES

# Errors a user causes and can fix (a missing file, a bad value, a backend not installed), by module and class
# name: they are looked up only in modules already imported, so the command line imports nothing heavy for them.
# OSError and ValueError (ImageReadError, ManifestError, ModelPackageError, InputError, json errors ...) count too.
USER_ERRORS = (
    ("ifrt.backends", "BackendUnavailableError"),
    ("ifrt.engine", "TensorRTUnavailableError"),
    ("ifrt.live", "SourceLost"),
    ("ifrt._native", "NativeError"),
    ("ifrt.export.trt", "EngineBuildError"),
    ("ifrt.export.pipeline", "ExportCheckError"),
    ("yaml", "YAMLError"),
    ("safetensors", "SafetensorError"),
)

TRACEBACK_VARIABLE = "IFRT_TRACEBACK"

# Exit codes of every command: 0 done; 1 done, but some inputs failed (an image `ifrt infer` could not read, the
# problems `ifrt data check` found); 2 could not run (a wrong command line, or a model, database, config or
# folder it needs is missing or invalid); 130 interrupted; 143 terminated by SIGTERM (`ifrt live`, after its
# summary); 141 standard output was closed (`ifrt doctor | head -1`), what a Unix tool stopped by SIGPIPE reports.
EXIT_CANNOT_RUN = 2
EXIT_OUTPUT_CLOSED = 141


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ifrt",
        description="Kidney immunofluorescence: diagnosis, focus feedback and deblurring in real time.",
        epilog=f"Errors print one line; set {TRACEBACK_VARIABLE}=1 for the full traceback.",
    )
    parser.add_argument("--version", action="version", version=f"ifrt {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    _record_command_names(parser)
    return parser


def _record_command_names(parser: argparse.ArgumentParser) -> None:
    """Give every (sub)command the default `command_name` = its prog ("ifrt data preview"), so that an error
    names the command it came from; the deepest subcommand parsed sets it last."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                subparser.set_defaults(command_name=subparser.prog)
                _record_command_names(subparser)


def is_user_error(exc: BaseException) -> bool:
    """True for an error in the user's input or environment, which one line explains; programming errors
    (TypeError, KeyError, ...) keep their traceback."""
    if isinstance(exc, (OSError, ValueError)):
        return True
    for module_name, class_name in USER_ERRORS:
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


def error_message(exc: BaseException) -> str:
    """One line that names the file when the error knows it: `nocfg.yaml: No such file or directory`."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        files = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        message = f"{files}: {exc.strerror}"
    else:
        message = str(exc) or type(exc).__name__
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # here, so that a closed pipe is caught below and not reported at interpreter exit
        return code
    except BrokenPipeError:
        # The reader went away: say nothing more, and point stdout at /dev/null so that the interpreter's own
        # flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OUTPUT_CLOSED
    except KeyboardInterrupt:
        print(f"{getattr(args, 'command_name', 'ifrt')}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if not is_user_error(exc) or os.environ.get(TRACEBACK_VARIABLE) == "1":
            raise
        print(f"{args.command_name}: {error_message(exc)}", file=sys.stderr)
        return EXIT_CANNOT_RUN


if __name__ == "__main__":
    sys.exit(main())
