"""INT8 by explicit Q/DQ quantization: the form TensorRT 11 accepts, checked on the CPU with onnxruntime."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from ifrt.export import calibration, trt_ops
from ifrt.export.int8 import describe_calibration, quantize_int8
from ifrt.export.metadata import decode_metadata
from ifrt.export.parity import onnx_outputs
from ifrt.model_package import DEFAULT_MODEL_DIR


@pytest.fixture(scope="module")
def int8_default(tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "full.int8.onnx"
    return quantize_int8(DEFAULT_MODEL_DIR / "full.onnx", out, calibration.synthetic(16, 256, seed=0).images)


def test_int8_graph_has_symmetric_qdq_pairs_and_keeps_the_metadata(int8_default):
    model = onnx.load(str(int8_default.path))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 10 and ops.count("DequantizeLinear") >= ops.count("QuantizeLinear")
    inits = {t.name: t for t in model.graph.initializer}
    zero_points = [inits[n.input[2]] for n in model.graph.node
                   if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2 and n.input[2] in inits]
    assert zero_points and all(not numpy_helper.to_array(z).any() for z in zero_points)  # TensorRT needs 0
    meta = decode_metadata({p.key: p.value for p in model.metadata_props})
    assert meta["precision"] == "int8" and meta["graph"] == "full"
    assert trt_ops.unsupported_operators(model) == []


def test_int8_default_model_keeps_most_diagnoses_on_unseen_images(int8_default):
    images = calibration.synthetic(16, 256, seed=1).images  # not the calibration images
    fp32 = onnx_outputs(DEFAULT_MODEL_DIR / "full.onnx", images)
    int8 = onnx_outputs(int8_default.path, images)
    agreement = float(np.mean(fp32["diagnosis_logits"].argmax(1) == int8["diagnosis_logits"].argmax(1)))
    assert agreement >= 0.8
    assert float(np.abs(fp32["quality"] - int8["quality"]).max()) <= 0.15


def test_int8_without_calibration_images_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least one image"):
        quantize_int8(DEFAULT_MODEL_DIR / "full.onnx", tmp_path / "x.onnx", np.zeros((0, 1, 64, 64), np.float32))


def test_int8_default_model_is_calibrated_on_percentile_ranges(int8_default):
    assert int8_default.calibration == {"method": "percentile", "percentile": 99.999}


def test_a_failed_percentile_calibration_is_recorded_as_a_min_max_fallback(tmp_path, monkeypatch):
    import onnxruntime.quantization as quantization

    real = quantization.quantize_static

    def without_percentile_histograms(*args, calibrate_method, **kwargs):
        if calibrate_method == quantization.CalibrationMethod.Percentile:
            raise ValueError("Too many bins for data range. Cannot create 2048 finite-sized bins.")
        return real(*args, calibrate_method=calibrate_method, **kwargs)

    monkeypatch.setattr(quantization, "quantize_static", without_percentile_histograms)
    graph = quantize_int8(DEFAULT_MODEL_DIR / "focus.onnx", tmp_path / "focus.int8.onnx",
                          calibration.synthetic(2, 64, seed=0).images)
    assert graph.calibration == {"method": "minmax", "fallback_reason": "Too many bins for data range. Cannot "
                                                                        "create 2048 finite-sized bins."}
    assert describe_calibration(graph.calibration).startswith("min-max ranges, percentile calibration failed: Too")
