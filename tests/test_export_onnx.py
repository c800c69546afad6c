"""ONNX export: contract names and dims, metadata, torch parity, FP16 checks, TensorRT operator support."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from _onnx_faults import onnx_outputs_shifted

from ifrt.export import fp16, pipeline, trt_ops
from ifrt.export.graphs import FOCUS_OUTPUTS, FULL_OUTPUTS
from ifrt.export.metadata import decode_metadata, sha256_file
from ifrt.export.onnx_export import OnnxExportOptions


@pytest.fixture(scope="module")
def model_dir(tiny_package):
    return tiny_package


@pytest.fixture(scope="module")
def exported(tiny_package):
    return tiny_package, json.loads((tiny_package / "export_report.json").read_text())


def test_full_graph_has_contract_names_and_dynamic_dims(exported):
    out, _ = exported
    model = onnx.load(str(out / "full.onnx"))
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == list(FULL_OUTPUTS)
    assert trt_ops.input_dynamic_dims(model) == {"image": ["batch", "height", "width"]}


def test_focus_graph_has_only_iqa_outputs(exported):
    out, _ = exported
    model = onnx.load(str(out / "focus.onnx"))
    assert [o.name for o in model.graph.output] == list(FOCUS_OUTPUTS)


def test_metadata_props_carry_classes_levels_normalization_and_version(exported):
    out, _ = exported
    meta = decode_metadata({p.key: p.value for p in onnx.load(str(out / "full.onnx")).metadata_props})
    assert meta["class_names"] == ["IgAN", "MN", "DN", "LN"]
    assert meta["class_prior"] == pytest.approx([0.4, 0.3, 0.2, 0.1])
    assert meta["blur_levels"] == 5
    assert meta["normalization"] == {"kind": "percentile", "p_low": 1.0, "p_high": 99.8, "clip": False}
    assert meta["input_size_rule"]["multiple_of"] == 32
    assert meta["graph"] == "full" and meta["precision"] == "fp32"
    assert len(meta["training_config_sha256"]) == 64


def test_training_record_hash_follows_the_model_and_not_its_card(exported):
    from ifrt.export.metadata import config_hash

    out, _ = exported
    record = json.loads((out / "model.json").read_text())
    meta = decode_metadata({p.key: p.value for p in onnx.load(str(out / "full.onnx")).metadata_props})
    assert meta["training_config_sha256"] == config_hash(record)
    assert config_hash({**record, "card": {"intended_use": "rewritten"}}) == config_hash(record)
    assert config_hash({**record, "epoch": record.get("epoch", 0) + 1}) != config_hash(record)
    assert config_hash({**record, "model": {**record["model"], "blur_levels": 4}}) != config_hash(record)


def test_sidecar_records_the_onnx_sha256(exported):
    out, _ = exported
    sidecar = json.loads((out / "full.onnx.json").read_text())
    assert sidecar["sha256"] == sha256_file(out / "full.onnx")
    assert sidecar["metadata"]["graph"] == "full"


def test_fp32_onnx_matches_torch_within_1e_4_with_identical_argmax(exported):
    _, report = exported
    for graph in ("full", "focus"):
        parity = report["graphs"][graph]["fp32_vs_torch"]
        assert max(parity["max_abs_diff"].values()) <= 1e-4, parity
        assert all(v == 1.0 for v in parity["argmax_agreement"].values()), parity


def test_onnx_runs_at_a_size_other_than_the_tracing_example(exported):
    out, _ = exported
    session = ort.InferenceSession(str(out / "full.onnx"), providers=["CPUExecutionProvider"])
    outputs = dict(zip(FULL_OUTPUTS, session.run(None, {"image": np.zeros((3, 1, 96, 160), np.float32)}), strict=True))
    assert outputs["deblurred"].shape == (3, 1, 96, 160)
    assert outputs["quality_map"].shape == (3, 1, 3, 5)
    assert outputs["quality"].shape == (3,)


def test_fp16_graph_keeps_float32_io_and_agrees_with_torch(exported):
    out, report = exported
    model = onnx.load(str(out / "full.fp16.onnx"))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in model.graph.output)
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    fp16_report = report["graphs"]["full"]["fp16_vs_torch"]
    assert fp16_report["argmax_agreement"]["diagnosis_logits"] >= 0.995
    assert fp16_report["deblurred_psnr"]["drift_db"] <= 0.1


def test_fp16_is_refused_when_an_activation_exceeds_the_safe_range(model_dir):
    from ifrt.train.model import load_model

    model = load_model(model_dir)
    images = torch.full((2, 1, 64, 64), 1e6)  # far outside normalized range: activations explode
    with pytest.raises(fp16.Fp16RangeError, match=r"FP16 refused: layer '.+' reaches \|activation\|"):
        fp16.check_fp16_range(model, images)


def test_each_fp16_sidecar_records_the_range_of_its_own_graph(exported):
    from ifrt.export import calibration
    from ifrt.train.model import load_model

    out, report = exported
    model = load_model(out)
    images = torch.from_numpy(calibration.synthetic(report["calibration"]["images"],
                                                    report["calibration"]["size"]).images)
    focus_layers = {name for name, _ in model.focus_model().named_modules()}
    for graph, network in (("full", model), ("focus", model.focus_model())):
        check = json.loads((out / f"{graph}.fp16.onnx.json").read_text())["fp16_check"]
        expected = fp16.largest_activation(network, images)
        assert check["layer"] == expected.layer
        assert check["largest_activation"] == pytest.approx(expected.largest, rel=1e-6)
        assert report["graphs"][graph]["fp16_check"]["layer"] == expected.layer
    focus_check = json.loads((out / "focus.fp16.onnx.json").read_text())["fp16_check"]
    assert focus_check["layer"] in focus_layers


def test_every_operator_is_supported_by_the_tensorrt_parser(exported):
    out, report = exported
    assert trt_ops.support_table()["tensorrt_version"].startswith("10.")
    for name in ("full.onnx", "focus.onnx", "full.fp16.onnx", "focus.fp16.onnx"):
        model = onnx.load(str(out / name))
        assert trt_ops.unsupported_operators(model) == [], name
        assert trt_ops.opset_supported(model), name


def test_an_unsupported_operator_is_reported():
    node = onnx.helper.make_node("Unique", ["x"], ["y"])
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("x", 1, [4])],
                                   [onnx.helper.make_tensor_value_info("y", 1, [None])])
    assert trt_ops.unsupported_operators(onnx.helper.make_model(graph)) == ["Unique"]


def test_a_broken_graph_is_removed_and_reported(model_dir, tmp_path, monkeypatch):
    from ifrt.export import parity

    monkeypatch.setattr(pipeline, "onnx_outputs", onnx_outputs_shifted(parity.onnx_outputs, "quality", 1e-3))
    with pytest.raises(pipeline.ExportCheckError, match="full: quality differs from torch by 0.001"):
        pipeline.export_onnx(model_dir, tmp_path, calibration_count=2, calibration_size=64, graphs=("full",),
                             options=OnnxExportOptions(example_size=64))
    assert not (tmp_path / "full.onnx").exists()
    assert json.loads((tmp_path / "export_report.json").read_text())["problems"]


def test_export_to_another_folder_makes_it_a_complete_model_folder(model_dir, tmp_path):
    import ifrt

    out = tmp_path / "onnx"
    report = pipeline.export_onnx(model_dir, out, calibration_count=1, calibration_size=64, graphs=("focus",),
                                  options=OnnxExportOptions(example_size=64))
    for name in ("model.json", "model.safetensors"):
        assert (out / name).read_bytes() == (model_dir / name).read_bytes()
        assert report["model_files"][name] == sha256_file(model_dir / name)
    assert json.loads((out / "export_report.json").read_text())["model_files"] == report["model_files"]
    assert ifrt.Session(out, backend="torch").backend_name == "torch"


def test_export_in_place_records_no_copied_model_files(exported):
    _, report = exported
    assert "model_files" not in report


def test_only_the_opset_notice_of_torchs_exporter_is_silenced(caplog):
    import logging

    from ifrt.export import onnx_export

    compat = logging.getLogger("torch.onnx._internal.exporter._compat")
    with caplog.at_level(logging.WARNING), onnx_export._quiet_exporter_logs():
        compat.warning("Setting ONNX exporter to use operator set version %s because ...", 18)
        compat.warning("Some other exporter warning")
    assert caplog.messages == ["Some other exporter warning"]
