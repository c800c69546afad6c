"""Environment report for `ifrt doctor`: what is installed, what the native build contains, which GPUs
are visible, and for everything missing, how to get it (on a desktop and on a Jetson)."""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ifrt._version import __version__

MISSING = "missing"


def _dist_version(*dists: str) -> str:
    """Installed version of the first distribution found, read from metadata (no import)."""
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return MISSING


def jetson_release() -> str | None:
    """L4T release string on NVIDIA Jetson (from /etc/nv_tegra_release), None elsewhere."""
    path = Path("/etc/nv_tegra_release")
    try:
        return path.read_text().splitlines()[0].strip("# ").strip()
    except (OSError, IndexError):
        return None


def _opencv() -> str:
    try:
        import cv2
    except ImportError:
        return MISSING
    return cv2.__version__


def _onnxruntime() -> tuple[str, list[str]]:
    try:
        import onnxruntime
    except ImportError:
        return MISSING, []
    return onnxruntime.__version__, list(onnxruntime.get_available_providers())


def _native() -> dict[str, Any]:
    from ifrt.native import NativeUnavailableError, load

    try:
        native = load()
    except NativeUnavailableError as exc:
        return {"available": False, "error": str(exc), "gpus": [], "gpu_error": "native module missing"}
    info = dict(native.build_info())
    gpus, gpu_error = native.cuda_devices()
    info.update(available=True, gpus=list(gpus), gpu_error=gpu_error)
    return info


def _nvidia_smi_gpus() -> list[dict[str, str]]:
    """GPUs as the driver reports them; used when the native build has no CUDA."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,name,compute_cap,memory.total,uuid", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 5:
            gpus.append(dict(zip(["index", "name", "compute_capability", "memory", "uuid"], fields, strict=True)))
    return gpus


def nvidia_driver_present() -> bool:
    """Whether this machine has an NVIDIA driver to ask: the kernel module's version file, Jetson's integrated
    GPU, or the driver library. Without one, CUDA's own error ("driver version is insufficient") misleads."""
    if Path("/proc/driver/nvidia/version").exists() or jetson_release() is not None:
        return True
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def _gpu_error(native: dict[str, Any]) -> str:
    """Why no GPU is listed, in the words that fit this machine."""
    if native.get("available") and not nvidia_driver_present():
        return "no NVIDIA driver/GPU found"
    return native["gpu_error"]


def collect() -> dict[str, Any]:
    """Everything `ifrt doctor` reports, as plain JSON-able data."""
    ort_version, ort_providers = _onnxruntime()
    native = _native()
    gpus = native["gpus"] or _nvidia_smi_gpus()
    report: dict[str, Any] = {
        "ifrt": __version__,
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": f"{platform.system()} {platform.machine()}",
        "jetson": jetson_release(),
        "packages": {
            "numpy": _dist_version("numpy"),
            "opencv": _opencv(),
            "tifffile": _dist_version("tifffile"),
            "imagecodecs": _dist_version("imagecodecs"),
            "onnxruntime": ort_version,
            "safetensors": _dist_version("safetensors"),
            "torch": _dist_version("torch"),
            "onnx": _dist_version("onnx"),
            "tensorrt": _tensorrt_version(),
            "cuda-python": _dist_version("cuda-python", "cuda-bindings"),
        },
        "onnxruntime_providers": ort_providers,
        "native": {k: v for k, v in native.items() if k not in ("gpus", "gpu_error")},
        "gpus": gpus,
        "gpu_error": _gpu_error(native) if not gpus else "",
    }
    report["advice"] = advice(report)
    return report


def _tensorrt_version() -> str:
    version = _dist_version("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt_lean")
    if version == MISSING and importlib.util.find_spec("tensorrt") is not None:
        # JetPack installs the bindings as a Debian package without pip metadata.
        version = "installed (version unknown without import)"
    return version


def advice(report: dict[str, Any]) -> list[str]:
    """One line per missing piece: what it costs the user and the command that fixes it."""
    jetson = report["jetson"] is not None
    pkgs = report["packages"]
    native = report["native"]
    tips = []
    if not native.get("available"):
        tips.append("native module missing: reinstall from source with `pip install .` (needs g++ and cmake)")
    if pkgs["imagecodecs"] == MISSING:
        tips.append("imagecodecs missing: compressed TIFFs (LZW, JPEG, zstd) cannot be read; `pip install imagecodecs`")
    if pkgs["onnxruntime"] == MISSING:
        tips.append("onnxruntime missing: the `ort` backend is unavailable; `pip install onnxruntime`")
    if pkgs["torch"] == MISSING:
        where = ("the JetPack PyTorch wheel from NVIDIA (pip's torch has no Jetson CUDA build)" if jetson
                 else "`pip install 'ifrt[train]'`")
        tips.append(f"torch missing: training and the `torch` backend are unavailable; install {where}")
    if pkgs["onnx"] == MISSING:
        tips.append("onnx missing: `ifrt export` is unavailable; `pip install 'ifrt[export]'`")
    if pkgs["tensorrt"] == MISSING:
        where = ("`sudo apt install python3-libnvinfer nvidia-tensorrt` (JetPack)" if jetson
                 else "`pip install 'ifrt[trt]'`")
        tips.append(f"TensorRT missing: the `trt` backend and `ifrt export trt` are unavailable; install {where}")
    if pkgs["cuda-python"] == MISSING:
        tips.append("cuda-python missing: `ifrt export trt` cannot run its check on a built engine; "
                    "`pip install cuda-python` (included in `pip install 'ifrt[trt]'`)")
    if report["gpus"]:
        if native.get("available") and not native.get("with_cuda"):
            tips.append("a GPU is visible but the native module has no CUDA kernels: reinstall with nvcc on PATH "
                        "(`CMAKE_ARGS=-DIFRT_WITH_CUDA=ON pip install .`)")
        if native.get("available") and not native.get("with_tensorrt"):
            tips.append("the native TensorRT executor was not built: install TensorRT (headers and libraries) and "
                        "reinstall with `CMAKE_ARGS=-DTENSORRT_ROOT=/path/to/TensorRT pip install .`")
        if pkgs["onnxruntime"] != MISSING and "CUDAExecutionProvider" not in report["onnxruntime_providers"]:
            tips.append("onnxruntime has no CUDA provider: `pip install onnxruntime-gpu` for the GPU `ort` backend")
    return tips


def render(report: dict[str, Any]) -> None:
    """Print the report as tables for a person."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    table = Table(title=f"ifrt {report['ifrt']}", show_header=False)
    table.add_column("item", style="bold")
    table.add_column("value")
    table.add_row("python", f"{report['python']} ({report['executable']})")
    table.add_row("platform", report["platform"] + (f", Jetson {report['jetson']}" if report["jetson"] else ""))
    for name, version in report["packages"].items():
        style = "red" if version == MISSING else ""
        table.add_row(name, f"[{style}]{version}[/{style}]" if style else version)
    table.add_row("onnxruntime providers", ", ".join(report["onnxruntime_providers"]) or "-")
    native = report["native"]
    if native.get("available"):
        cuda = f"yes (CUDA {native['cuda_version']}, sm {native['cuda_archs']})" if native["with_cuda"] else "no"
        trt = f"yes (TensorRT {native['tensorrt_version']})" if native["with_tensorrt"] else "no"
        table.add_row("native CUDA kernels", cuda)
        table.add_row("native TensorRT executor", trt)
    else:
        table.add_row("native module", f"[red]{escape(native['error'])}[/red]")
    if report["gpus"]:
        for gpu in report["gpus"]:
            table.add_row(f"GPU {gpu['index']}", f"{gpu['name']} (compute {gpu['compute_capability']}) {gpu['uuid']}")
    else:
        table.add_row("GPUs", f"none visible ({report['gpu_error'] or 'no driver'})")
    console.print(table)
    if report["advice"]:
        console.print("[bold]To get what is missing:[/bold]")
        for tip in report["advice"]:
            console.print(f"  - {escape(tip)}")
    else:
        console.print("[green]everything ifrt can use is present[/green]")
