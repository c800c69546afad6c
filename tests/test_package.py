"""The foundation contract: light imports, a working `ifrt doctor`, the native module and libifrt."""

import ctypes
import json
import subprocess
import sys
from pathlib import Path

import ifrt
from ifrt import doctor


def test_import_ifrt_loads_no_torch_onnx_or_tensorrt():
    code = ("import sys, ifrt, ifrt.cli, ifrt.native; ifrt.native.load(); "
            "print(sorted(m for m in ('torch', 'onnx', 'tensorrt') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_doctor_json_reports_versions_native_build_and_exits_zero(ifrt_cli):
    proc = ifrt_cli("doctor", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ifrt"] == ifrt.__version__
    assert report["python"] == ".".join(map(str, sys.version_info[:3]))
    for name in ("numpy", "opencv", "onnxruntime", "torch", "tensorrt"):
        assert report["packages"][name], name
    assert "CPUExecutionProvider" in report["onnxruntime_providers"]
    assert report["native"]["available"] is True
    assert report["native"]["version"] == ifrt.__version__
    assert isinstance(report["gpus"], list)
    if not report["gpus"]:
        assert report["gpu_error"]  # an empty GPU list always says why


def test_doctor_human_output_names_every_component(ifrt_cli):
    proc = ifrt_cli("doctor")
    assert proc.returncode == 0, proc.stderr
    for word in ("numpy", "onnxruntime", "torch", "tensorrt", "native CUDA kernels"):
        assert word in proc.stdout


def _report(**packages):
    base = {"numpy": "2.0", "opencv": "4.10", "tifffile": "2024", "imagecodecs": "2026",
            "onnxruntime": "1.20", "safetensors": "0.4",
            "torch": "2.5", "onnx": "1.17", "tensorrt": "10.3", "cuda-python": "12"}
    base.update(packages)
    return {"jetson": None, "packages": base, "onnxruntime_providers": ["CPUExecutionProvider"],
            "native": {"available": True, "with_cuda": True, "with_tensorrt": True}, "gpus": []}


def test_doctor_advice_names_the_extra_for_missing_torch_and_tensorrt():
    tips = doctor.advice(_report(torch=doctor.MISSING, tensorrt=doctor.MISSING))
    assert any("torch missing" in t and "ifrt[train]" in t for t in tips)
    assert any("TensorRT missing" in t and "ifrt[trt]" in t for t in tips)


def test_doctor_advice_names_the_install_for_missing_imagecodecs():
    assert doctor.advice(_report()) == []
    assert doctor.advice(_report(imagecodecs=doctor.MISSING)) == [
        "imagecodecs missing: compressed TIFFs (LZW, JPEG, zstd) cannot be read; `pip install imagecodecs`"]


def test_doctor_advice_on_jetson_points_to_jetpack_packages():
    report = _report(torch=doctor.MISSING, tensorrt=doctor.MISSING)
    report["jetson"] = "R36 (release), REVISION: 4.3"
    tips = doctor.advice(report)
    assert any("JetPack PyTorch wheel" in t for t in tips)
    assert any("python3-libnvinfer" in t for t in tips)


def test_doctor_advice_flags_gpu_without_cuda_kernels():
    report = _report()
    report["native"]["with_cuda"] = False
    report["gpus"] = [{"index": 0, "name": "Orin", "compute_capability": "8.7", "uuid": "GPU-0"}]
    tips = doctor.advice(report)
    assert any("no CUDA kernels" in t for t in tips)
    assert any("onnxruntime-gpu" in t for t in tips)


def test_cli_without_command_prints_help_and_exits_2(ifrt_cli):
    proc = ifrt_cli()
    assert proc.returncode == 2
    assert "doctor" in proc.stdout


def test_c_abi_library_matches_python_package_version():
    lib_dir = Path(ifrt.__file__).parent / "lib"
    lib_path = next(lib_dir.glob("libifrt.so*"))
    lib = ctypes.CDLL(str(lib_path))
    lib.ifrt_version.restype = ctypes.c_char_p
    assert lib.ifrt_version().decode() == ifrt.__version__
    from ifrt.native import load

    assert lib.ifrt_has_cuda() == int(load().build_info()["with_cuda"])
    assert (Path(ifrt.__file__).parent / "include" / "ifrt" / "ifrt.h").is_file()


def test_doctor_advice_says_how_to_install_a_missing_cuda_python():
    tips = doctor.advice(_report(**{"cuda-python": doctor.MISSING}))
    assert any("cuda-python missing" in t and "pip install cuda-python" in t for t in tips)


def test_doctor_without_an_nvidia_driver_says_so_rather_than_cuda_s_version_error(monkeypatch):
    monkeypatch.setattr(doctor, "nvidia_driver_present", lambda: False)
    monkeypatch.setattr(doctor, "_nvidia_smi_gpus", lambda: [])
    monkeypatch.setattr(doctor, "_native", lambda: {
        "available": True, "gpus": [],
        "gpu_error": "CUDA driver version is insufficient for CUDA runtime version"})
    assert doctor.collect()["gpu_error"] == "no NVIDIA driver/GPU found"
