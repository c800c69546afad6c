"""`ifrt export trt` without TensorRT: a clear message naming what to install, and exit code 2."""

import importlib.util

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                                reason="TensorRT is installed here; these tests are about machines without it")


def test_export_trt_without_tensorrt_names_the_extra_and_jetpack_and_exits_2(ifrt_cli, tmp_path):
    onnx = tmp_path / "full.onnx"
    onnx.write_bytes(b"\x08\x07")  # never parsed: the TensorRT check comes first
    proc = ifrt_cli("export", "trt", str(onnx))
    assert proc.returncode == 2, proc.stderr
    assert "TensorRT is not installed" in proc.stderr
    assert "pip install 'ifrt[trt]'" in proc.stderr
    assert "JetPack" in proc.stderr and "python3-libnvinfer" in proc.stderr
    assert not (tmp_path / "full.engine").exists()


def test_export_trt_check_reports_a_missing_engine_then_a_missing_sidecar_and_exits_1(ifrt_cli, tmp_path):
    engine = tmp_path / "full.engine"
    proc = ifrt_cli("export", "trt", "--check", str(engine))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"ifrt export trt: {engine}: engine file not found"
    engine.write_bytes(b"plan")
    proc = ifrt_cli("export", "trt", "--check", str(engine))
    assert proc.returncode == 1
    assert "full.engine.json: engine sidecar not found" in proc.stderr


def test_export_trt_missing_onnx_is_named_and_exits_2(ifrt_cli, tmp_path):
    proc = ifrt_cli("export", "trt", str(tmp_path / "absent.onnx"))
    assert proc.returncode == 2
    assert "absent.onnx: ONNX model not found" in proc.stderr


def test_export_trt_bad_profile_is_a_usage_error(ifrt_cli, tmp_path):
    onnx = tmp_path / "full.onnx"
    onnx.write_bytes(b"\x08\x07")
    proc = ifrt_cli("export", "trt", str(onnx), "--profile", "image:1x1x512/1x1x256/1x1x1024")
    assert proc.returncode == 2
    assert "dim 2 must satisfy min <= opt <= max" in proc.stderr


def test_export_without_target_is_a_usage_error_like_every_command_group(ifrt_cli):
    proc = ifrt_cli("export")
    assert proc.returncode == 2
    assert "ifrt export: error: the following arguments are required: TARGET" in proc.stderr


def test_tensorrt_engine_wrapper_without_executor_says_what_to_install(tmp_path):
    from ifrt.engine import TensorRTEngine, TensorRTUnavailableError
    from ifrt.native import load

    if hasattr(load(), "Engine"):
        pytest.skip("this native module has the TensorRT executor")
    with pytest.raises(TensorRTUnavailableError, match="built without the TensorRT executor.*JetPack"):
        TensorRTEngine.load(tmp_path / "full.engine")
