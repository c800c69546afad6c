"""ONNX export of the `full` and `focus` graphs: named I/O per the contract, dynamic batch and spatial
dims, metadata in `metadata_props`, full checker, graph simplification, and a sha256 sidecar."""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .graphs import INPUT_NAME, Float16Graph, graph_module
from .metadata import model_metadata, write_sidecar

log = logging.getLogger("ifrt.export")

# Opset 18: the newest that both TensorRT 10.x's parser (opsets 9..20) and current onnxruntime
# implement completely, and the dynamo exporter's native opset (no version conversion pass).
DEFAULT_OPSET = 18
# Largest spatial size the dynamic dims admit (in multiples of 32): 8192 px.
MAX_TILES = 256
MAX_BATCH = 256


@dataclass
class OnnxExportOptions:
    opset: int = DEFAULT_OPSET
    example_size: int = 256  # H = W of the tracing example; any multiple of 32
    dynamic_batch: bool = True
    dynamic_spatial: bool = True
    simplify: bool = True


def _dynamic_shapes(options: OnnxExportOptions) -> dict:
    from torch.export import Dim

    dims: dict[int, object] = {}
    if options.dynamic_batch:
        dims[0] = Dim("batch", min=1, max=MAX_BATCH)
    if options.dynamic_spatial:
        # H and W are declared as 32 * k so that the exported graph keeps the multiple-of-32 rule.
        dims[2] = 32 * Dim("height_tiles", min=1, max=MAX_TILES)
        dims[3] = 32 * Dim("width_tiles", min=1, max=MAX_TILES)
    return {"image": dims}


def _name_dynamic_dims(model, options: OnnxExportOptions) -> None:
    """Give the input's dynamic dims readable names (`batch`, `height`, `width`) for TensorRT profiles
    and Triton configs; the exporter names them after its symbols."""
    names = {0: "batch", 2: "height", 3: "width"}
    for inp in model.graph.input:
        if inp.name != INPUT_NAME:
            continue
        for index, dim in enumerate(inp.type.tensor_type.shape.dim):
            if dim.dim_param and index in names:
                dim.dim_param = names[index]


def export_graph(model: torch.nn.Module, record: dict, graph: str, path: str | Path,
                 options: OnnxExportOptions | None = None, precision: str = "fp32",
                 sidecar_extra: dict | None = None, weights_sha256: str | None = None) -> Path:
    """Export one graph of `model` to `path` (`precision` fp32, or fp16 inside with float32 I/O) and write
    `path.json` (sha256 + metadata; `weights_sha256` names the model.safetensors the model was loaded from)."""
    import onnx

    from ifrt.imageio import atomic_path

    options = options or OnnxExportOptions()
    if options.example_size % 32:
        raise ValueError(f"example_size={options.example_size} must be a multiple of 32")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision {precision!r} is unknown (expected fp32 or fp16)")
    module = graph_module(model, graph)
    if precision == "fp16":
        module = Float16Graph(module).eval()
    # A dynamic batch is traced at 2 (torch.export specializes a size-1 dim to a constant); a static one is 1.
    example = torch.rand(2 if options.dynamic_batch else 1, 1, options.example_size, options.example_size)
    with warnings.catch_warnings(), torch.no_grad(), _quiet_exporter_logs():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=list(module.output_names),
            opset_version=options.opset, dynamic_shapes=_dynamic_shapes(options), external_data=False,
            verbose=False, report=False)
    onnx_model = program.model_proto
    # The exporter writes its native opset and converts to the one asked for; when the conversion fails it
    # logs the error and keeps its own opset, which TensorRT or another runtime may not parse.
    produced = next((o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx")), None)
    if produced != options.opset:
        raise ValueError(f"--opset {options.opset}: the exporter could not convert the {graph} graph to opset "
                         f"{options.opset} (it wrote opset {produced}); choose an opset it converts to, e.g. "
                         f"{DEFAULT_OPSET} (the default)")
    if options.simplify:
        import onnxslim

        onnx_model = onnxslim.slim(onnx_model)
    _name_dynamic_dims(onnx_model, options)
    metadata = model_metadata(record, graph, precision, module.output_names, weights_sha256)
    set_metadata(onnx_model, metadata)
    onnx.checker.check_model(onnx_model, full_check=True)
    with atomic_path(path) as tmp:
        onnx.save(onnx_model, str(tmp))
    write_sidecar(path, metadata, sidecar_extra)
    log.info("exported %s graph to %s", graph, path)
    return path


# Without torchvision, torch's exporter logs one warning per torchvision operator it skips (the graphs use
# none of them); a failed opset conversion is logged with a traceback, and export_graph reports it in one line.
# Either would bury the export's own report.
_NOISY_LOGGERS = ("torch.onnx._internal.exporter._registration", "onnxscript.version_converter")
# Below opset 18 torch announces that it exports at 18 and converts; export_graph checks the opset it got and
# refuses a failed conversion itself. Only that message is dropped: the logger's others still show.
_OPSET_NOTICE_LOGGER = "torch.onnx._internal.exporter._compat"
_OPSET_NOTICE = "Setting ONNX exporter to use operator set version"


def _not_the_opset_notice(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_OPSET_NOTICE)


@contextlib.contextmanager
def _quiet_exporter_logs():
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    notices = logging.getLogger(_OPSET_NOTICE_LOGGER)
    notices.addFilter(_not_the_opset_notice)
    try:
        yield
    finally:
        notices.removeFilter(_not_the_opset_notice)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def set_metadata(onnx_model, metadata: dict[str, str]) -> None:
    """Replace this project's metadata_props entries, keeping anyone else's."""
    keep = [p for p in onnx_model.metadata_props if p.key not in metadata]
    del onnx_model.metadata_props[:]
    onnx_model.metadata_props.extend(keep)
    for key, value in sorted(metadata.items()):
        entry = onnx_model.metadata_props.add()
        entry.key, entry.value = key, value
