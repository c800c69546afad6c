"""Triton model repository: layout, and configs that parse as Triton's ModelConfig protobuf."""

import numpy as np
import onnx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from ifrt.export.triton import write_repository


def _onnx(path, outputs):
    inp = onnx.helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, ["batch", 1, "height", "width"])
    outs = [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, s) for n, s in outputs]
    nodes = [onnx.helper.make_node("Identity", ["image"], [outs[0].name])]
    model = onnx.helper.make_model(onnx.helper.make_graph(nodes, "g", [inp], outs))
    entry = model.metadata_props.add()
    entry.key, entry.value = "ifrt.class_names", '["IgAN", "MN", "DN", "LN"]'
    onnx.save(model, str(path))
    return path


@pytest.fixture
def graphs(tmp_path):
    full = _onnx(tmp_path / "full.onnx", [("diagnosis_logits", ["batch", 4]), ("quality", ["batch"]),
                                          ("deblurred", ["batch", 1, "height", "width"])])
    focus = _onnx(tmp_path / "focus.onnx", [("quality", ["batch"])])
    return {"full": full, "focus": focus}


def _parse(path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_repository_has_one_versioned_model_per_graph(graphs, tmp_path):
    configs = write_repository(graphs, tmp_path / "repo", max_batch_size=16)
    assert sorted(c.parent.name for c in configs) == ["ifrt_focus", "ifrt_full"]
    assert (tmp_path / "repo/ifrt_full/1/model.onnx").read_bytes() == graphs["full"].read_bytes()


def test_config_parses_as_triton_model_config_with_dynamic_spatial_dims(graphs, tmp_path):
    write_repository(graphs, tmp_path / "repo", max_batch_size=16)
    config = _parse(tmp_path / "repo/ifrt_full/config.pbtxt")
    assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 16
    assert list(config.input[0].dims) == [1, -1, -1]
    outputs = {o.name: o for o in config.output}
    assert list(outputs["diagnosis_logits"].dims) == [4]
    assert list(outputs["quality"].dims) == [1] and list(outputs["quality"].reshape.shape) == []
    assert list(outputs["deblurred"].dims) == [1, -1, -1]
    assert config.parameters["ifrt.class_names"].string_value == '["IgAN", "MN", "DN", "LN"]'
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000


def test_an_engine_is_served_as_a_tensorrt_plan(graphs, tmp_path):
    engine = tmp_path / "full.engine"
    engine.write_bytes(np.arange(64, dtype=np.uint8).tobytes())
    write_repository(graphs, tmp_path / "repo", engines={"full": engine})
    assert _parse(tmp_path / "repo/ifrt_full/config.pbtxt").platform == "tensorrt_plan"
    assert (tmp_path / "repo/ifrt_full/1/model.plan").read_bytes() == engine.read_bytes()
    assert _parse(tmp_path / "repo/ifrt_focus/config.pbtxt").platform == "onnxruntime_onnx"


def test_zero_batch_size_is_rejected(graphs, tmp_path):
    with pytest.raises(ValueError, match="max_batch_size=0"):
        write_repository(graphs, tmp_path / "repo", max_batch_size=0)


def test_config_of_exported_graphs_matches_the_onnx_names_and_shapes(tiny_package, tmp_path):
    graphs = {"full": tiny_package / "full.onnx", "focus": tiny_package / "focus.onnx"}
    write_repository(graphs, tmp_path / "repo", max_batch_size=4)
    for graph, path in graphs.items():
        model = onnx.load(str(path))
        config = _parse(tmp_path / f"repo/ifrt_{graph}/config.pbtxt")
        expected = {v.name: [d.dim_value or -1 for d in v.type.tensor_type.shape.dim[1:]] or [1]
                    for v in list(model.graph.output)}
        assert {o.name: list(o.dims) for o in config.output} == expected
        assert [i.name for i in config.input] == ["image"] and list(config.input[0].dims) == [1, -1, -1]
        assert config.parameters["ifrt.graph"].string_value == graph
