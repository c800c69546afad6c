"""The two exported graphs and their output order: `full` (every contract output) and `focus` (the IQA
outputs only, for live feedback on a downsampled frame)."""

from __future__ import annotations

import copy

import torch
from torch import nn

FULL_OUTPUTS = ("diagnosis_logits", "blur_logits", "quality", "quality_map", "deblurred", "certainty")
FOCUS_OUTPUTS = ("blur_logits", "quality", "quality_map", "certainty")
GRAPHS = ("full", "focus")
INPUT_NAME = "image"


class ContractGraph(nn.Module):
    """Wraps a network whose forward returns a dict into one returning a tuple in a fixed output order,
    which is what ONNX export needs to name its outputs."""

    def __init__(self, network: nn.Module, output_names: tuple[str, ...]):
        super().__init__()
        self.network = network
        self.output_names = output_names

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.network(image)
        return tuple(outputs[name] for name in self.output_names)


class Float16Graph(nn.Module):
    """A ContractGraph computing in float16 with float32 input and outputs: the exported graph is natively
    half precision (what TensorRT 11 builds strongly typed), and callers keep float32 buffers."""

    def __init__(self, graph: ContractGraph):
        super().__init__()
        self.inner = copy.deepcopy(graph).half()
        self.output_names = graph.output_names

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(out.float() for out in self.inner(image.half()))


def graph_module(model: nn.Module, graph: str) -> ContractGraph:
    """The `full` or `focus` graph of a DeepMT-ND model, in eval mode, with its output names."""
    model = model.eval()
    if graph == "full":
        with torch.no_grad():
            names = tuple(model(torch.zeros(1, 1, 32, 32)).keys())
        order = tuple(n for n in FULL_OUTPUTS if n in names)
        return ContractGraph(model, order).eval()
    if graph == "focus":
        return ContractGraph(model.focus_model(), FOCUS_OUTPUTS).eval()
    raise ValueError(f"graph {graph!r} is unknown (expected one of {', '.join(GRAPHS)})")
