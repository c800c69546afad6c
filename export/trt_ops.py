"""Can TensorRT's ONNX parser take this graph? Operators are checked against the parser's support table
(`trt_onnx_operators.json`, with the TensorRT version it came from), and dynamic dims against what the
export declared (batch, height, width on the input)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

TABLE = Path(__file__).with_name("trt_onnx_operators.json")
DECLARED_DYNAMIC = {"batch", "height", "width"}


@cache
def support_table() -> dict:
    return json.loads(TABLE.read_text())


def graph_operators(onnx_model) -> set[str]:
    """Operator types of the main graph and all subgraphs (default domain only)."""
    ops: set[str] = set()

    def visit(graph):
        for node in graph.node:
            if node.domain in ("", "ai.onnx"):
                ops.add(node.op_type)
            for attr in node.attribute:
                if attr.g is not None and attr.g.node:
                    visit(attr.g)
                for sub in attr.graphs:
                    visit(sub)

    visit(onnx_model.graph)
    return ops


def unsupported_operators(onnx_model) -> list[str]:
    """Operators the TensorRT parser does not support (or does not know), sorted."""
    table = support_table()["operators"]
    return sorted(op for op in graph_operators(onnx_model) if not table.get(op, {}).get("supported", False))


def opset_supported(onnx_model) -> bool:
    low, high = support_table()["opset_range"]
    default = [o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx")]
    return bool(default) and low <= default[0] <= high


def input_dynamic_dims(onnx_model) -> dict[str, list[str]]:
    """Symbolic dims of each graph input, e.g. {'image': ['batch', 'height', 'width']}."""
    return {i.name: [d.dim_param for d in i.type.tensor_type.shape.dim if d.dim_param] for i in onnx_model.graph.input}
