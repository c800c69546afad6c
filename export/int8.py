"""INT8 as explicit quantization: Q/DQ (QuantizeLinear/DequantizeLinear) pairs written into the ONNX,
with scales calibrated on images. This is the INT8 form TensorRT 11 accepts (it removed the implicit
INT8 calibrator) and TensorRT 10 builds too; onnxruntime runs the same file on the CPU, so the
quantized graph can be checked here before any GPU sees it.

Quantization is symmetric (zero points 0, which TensorRT requires), per output channel for weights,
with activation ranges from the 99.999th percentile of calibration activations (min-max lets rare
outliers waste the int8 range; it is used only when the percentile histograms cannot be built, and
the export report and the int8 sidecar record which was used)."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .graphs import INPUT_NAME

log = logging.getLogger("ifrt.export")

ACTIVATION_PERCENTILE = 99.999


@dataclass
class Int8Graph:
    path: Path
    # How the activation ranges were set: {"method": "percentile", "percentile": 99.999}, or
    # {"method": "minmax", "fallback_reason": ...} when the percentile histograms could not be built.
    calibration: dict


def describe_calibration(calibration: dict) -> str:
    """An `Int8Graph.calibration` record in a few words, for the export summary line."""
    if calibration["method"] == "percentile":
        return f"{calibration['percentile']:g}th-percentile ranges"
    return f"min-max ranges, percentile calibration failed: {calibration['fallback_reason']}"


class _Images:
    """onnxruntime's CalibrationDataReader protocol over [N,1,H,W] images, one per step."""

    def __init__(self, images: np.ndarray):
        self._items = iter([{INPUT_NAME: images[i:i + 1]} for i in range(len(images))])

    def get_next(self):
        return next(self._items, None)


def quantize_int8(fp32_path: str | Path, int8_path: str | Path, images: np.ndarray) -> Int8Graph:
    """Write the Q/DQ INT8 version of an fp32 ifrt ONNX, calibrated on `images` [N,1,H,W] float32.
    The ifrt metadata is kept, with `ifrt.precision` set to int8. Activation ranges are percentile ranges
    unless their histograms cannot be built; then min-max ranges are used for the whole graph, and the
    returned calibration record says so and why, so that the report does not promise percentile ranges."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ifrt.imageio import atomic_path

    from .onnx_export import set_metadata

    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    if len(images) == 0:
        raise ValueError("INT8 calibration needs at least one image")
    with tempfile.TemporaryDirectory(dir=int8_path.parent) as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "quantized.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)

        def quantize(method):
            # onnxruntime's calibrators print their progress; stdout carries the export's summary only.
            with contextlib.redirect_stdout(io.StringIO()):
                quantize_static(str(prepared), str(quantized), _Images(np.ascontiguousarray(images, np.float32)),
                                quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                                weight_type=QuantType.QInt8, per_channel=True, calibrate_method=method,
                                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                               "CalibPercentile": ACTIVATION_PERCENTILE})

        try:
            quantize(CalibrationMethod.Percentile)
            calibration = {"method": "percentile", "percentile": ACTIVATION_PERCENTILE}
        except ValueError as exc:
            # The percentile histogram cannot be built for an activation that is (nearly) constant on every
            # calibration image ("Too many bins for data range"); min-max ranges are defined for it.
            log.warning("%s: percentile calibration failed (%s); using min-max ranges", int8_path.name, exc)
            quantize(CalibrationMethod.MinMax)
            calibration = {"method": "minmax", "fallback_reason": str(exc)}
        model = onnx.load(str(quantized))
    props = {p.key: p.value for p in onnx.load(str(fp32_path), load_external_data=False).metadata_props}
    props["ifrt.precision"] = "int8"
    set_metadata(model, props)
    onnx.checker.check_model(model, full_check=True)
    with atomic_path(int8_path) as tmp_out:
        onnx.save(model, str(tmp_out))
    log.info("wrote int8 graph %s (%s calibration)", int8_path, calibration["method"])
    return Int8Graph(int8_path, calibration)
