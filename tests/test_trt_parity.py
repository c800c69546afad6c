"""The engine-sidecar rules exist twice, in C++ (core/engine_sidecar.*, used by the native executor and
the C ABI) and in Python (ifrt.engine, used by `ifrt export trt`). They must agree on every engine:
same cache key, same mismatches, same sentences."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ifrt.engine import EngineBuildSpec, GpuIdentity, cache_key, make_sidecar, sidecar_mismatches
from ifrt.native import load

native = load()

GPUS = [GpuIdentity("Orin", "8.7", "GPU-12345678-90ab-cdef-1234-567890abcdef"),
        GpuIdentity("Orin", "8.7", "GPU-ffffffff-0000-0000-0000-000000000000"),
        GpuIdentity("NVIDIA GeForce RTX 4090", "8.9", "GPU-aaaaaaaa-0000-0000-0000-000000000000"),
        GpuIdentity("NVIDIA A10", "8.6", "GPU-bbbbbbbb-0000-0000-0000-000000000000"),
        GpuIdentity("NVIDIA GeForce RTX 3090", "8.6", "GPU-cccccccc-0000-0000-0000-000000000000")]

dims = st.lists(st.integers(1, 4096), min_size=4, max_size=4)


@st.composite
def profiles(draw):
    out = []
    for _ in range(draw(st.integers(0, 3))):
        a, b, c = sorted(draw(dims)), sorted(draw(dims)), sorted(draw(dims))
        lo = [min(x) for x in zip(a, b, c, strict=True)]
        hi = [max(x) for x in zip(a, b, c, strict=True)]
        out.append({draw(st.sampled_from(["image", "frame"])): {"min": lo, "opt": lo, "max": hi}})
    return out


specs = st.builds(
    EngineBuildSpec,
    onnx_sha256=st.sampled_from(["ab" * 32, "cd" * 32]),
    tensorrt_version=st.sampled_from(["10.3.0", "10.7.0", "11.1.0"]),
    gpu=st.sampled_from(GPUS),
    precision=st.sampled_from(["fp32", "fp16", "int8"]),
    profiles=profiles(),
    concurrency=st.integers(1, 3),
    workspace_bytes=st.sampled_from([0, 1 << 30, 6 << 30]),
    dla_core=st.sampled_from([-1, 0, 1]),
    external_data_sha256=st.sampled_from(["", "f" * 64]),
)


def sidecar_of(spec: EngineBuildSpec) -> dict:
    return make_sidecar(spec, engine_sha256="e" * 64, strongly_typed=spec.precision != "fp32",
                        ifrt_version="0.1.0", metadata={"class_names": "IgAN,MN,DN,LN", "note": "µm \u2713"})


@settings(max_examples=200, deadline=None)
@given(specs)
def test_cpp_and_python_compute_the_same_cache_key(spec):
    assert native.engine_cache_key(json.dumps(sidecar_of(spec))) == cache_key(spec)


@settings(max_examples=300, deadline=None)
@given(built=specs, asked=specs, allow=st.booleans(), engine_sha=st.sampled_from(["e" * 64, "d" * 64]))
def test_cpp_and_python_give_the_same_mismatches(built, asked, allow, engine_sha):
    sidecar = sidecar_of(built)
    want = dict(tensorrt_version=asked.tensorrt_version, gpu=asked.gpu, allow_same_model_gpu=allow,
                onnx_sha256=asked.onnx_sha256, external_data_sha256=asked.external_data_sha256,
                engine_sha256=engine_sha, precision=asked.precision,
                profiles=asked.profiles, concurrency=asked.concurrency, workspace_bytes=asked.workspace_bytes,
                dla_core=asked.dla_core)
    want_json = dict(want, gpu=vars(asked.gpu))
    assert native.sidecar_mismatches(json.dumps(sidecar), json.dumps(want_json)) == sidecar_mismatches(sidecar, **want)


def test_cpp_reads_what_python_writes_including_non_ascii_metadata():
    spec = EngineBuildSpec(onnx_sha256="ab" * 32, tensorrt_version="10.3.0", gpu=GPUS[0])
    text = json.dumps(sidecar_of(spec), indent=2)  # escapes non-ASCII as \\u sequences
    assert native.sidecar_mismatches(text, json.dumps({"tensorrt_version": "10.3.0"})) == []
    assert native.sidecar_mismatches(text, json.dumps({"tensorrt_version": "11.1.0"})) == [
        "built with TensorRT 10.3.0, this is TensorRT 11.1.0 (an engine loads only in the TensorRT version that built it)"]


def test_cpp_and_python_hash_the_same_external_data(tmp_path):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from ifrt.engine import external_data_sha256

    weights = numpy_helper.from_array(np.arange(4, dtype=np.float32), name="w")
    weights.ClearField("raw_data")
    weights.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "data/weights.bin"), ("offset", "0"), ("length", "16")):
        entry = weights.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], initializer=[weights])
    onnx_path = tmp_path / "model" / "full.onnx"
    onnx_path.parent.mkdir()
    onnx_path.write_bytes(helper.make_model(graph).SerializeToString())
    assert native.onnx_external_data_sha256(str(onnx_path)) == external_data_sha256(onnx_path)
    (tmp_path / "model" / "data").mkdir()
    (tmp_path / "model" / "data" / "weights.bin").write_bytes(bytes(16))
    digest = external_data_sha256(onnx_path)
    assert digest and native.onnx_external_data_sha256(str(onnx_path)) == digest
    # A hand-made entry (value before key), a name over 4096 bytes and a cut one: skipped or kept alike.
    odd = tmp_path / "odd.onnx"
    odd.write_bytes(b"\x12\x05a.bin\x0a\x08location" + b"\x0a\x08location\x12\x81\x20" + b"x" * 4097
                    + b"\x0a\x08location\x12\x7fcut")
    (tmp_path / "a.bin").write_bytes(b"a")
    assert native.onnx_external_data_sha256(str(odd)) == external_data_sha256(odd) != ""
