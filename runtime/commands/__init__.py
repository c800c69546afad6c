"""`ifrt` subcommands. Each module defines `register(subparsers)`; imports of heavy dependencies
(torch, onnx, tensorrt) happen inside the handlers, never at module import."""

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
