"""FP16 ONNX: the numerical stand-in for TensorRT FP16 (and, on TensorRT 11, its only FP16 source,
built strongly typed). The network is exported in float16 (weights and activations); the `image` input
and every output stay float32 so callers do not change (`graphs.Float16Graph`).

Before converting, the largest absolute activation on calibration images is measured in float32; if
any exceeds FP16_SAFE_MAX the export is refused, because float16 saturates at 65504 and sums inside a
layer (convolution partial sums, normalization variances) run larger than the layer's output."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger("ifrt.export")

FP16_MAX = 65504.0
# A quarter of the float16 range: a 4x headroom for in-layer sums over the measured outputs.
FP16_SAFE_MAX = FP16_MAX / 4


class Fp16RangeError(ValueError):
    """An activation is too large for float16; the message names the layer and the value."""


@dataclass
class ActivationRange:
    largest: float
    layer: str


def largest_activation(model: torch.nn.Module, images: torch.Tensor, batch: int = 4) -> ActivationRange:
    """Largest |value| any leaf module outputs on `images` [N,1,H,W] (float32 forward)."""
    largest = ActivationRange(0.0, "")

    def hook(name):
        def record(_module, _inputs, output):
            tensors = output.values() if isinstance(output, dict) else (
                output if isinstance(output, (tuple, list)) else (output,))
            for t in tensors:
                if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel():
                    value = float(t.detach().abs().max())
                    if value > largest.largest or not np.isfinite(value):
                        largest.largest, largest.layer = value, name
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if not list(m.children())]
    try:
        model.eval()
        with torch.no_grad():
            for start in range(0, len(images), batch):
                model(images[start:start + batch])
    finally:
        for h in handles:
            h.remove()
    return largest


def check_fp16_range(model: torch.nn.Module, images: torch.Tensor, limit: float = FP16_SAFE_MAX) -> ActivationRange:
    """Raise Fp16RangeError when an activation on the calibration images is not safely inside float16."""
    found = largest_activation(model, images)
    if not np.isfinite(found.largest) or found.largest > limit:
        raise Fp16RangeError(
            f"FP16 refused: layer '{found.layer}' reaches |activation| = {found.largest:.6g} on the calibration "
            f"images, above the safe limit {limit:.6g} (float16 saturates at {FP16_MAX:.0f}); export fp32 "
            "instead, or retrain with stronger normalization/weight decay")
    return found


def fp16_sidecar(activation: ActivationRange) -> dict:
    """What the range check measured, for the fp16 file's sidecar."""
    return {"fp16_check": {"largest_activation": activation.largest, "layer": activation.layer,
                           "safe_limit": FP16_SAFE_MAX}}
