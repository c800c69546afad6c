"""cmake/FindTensorRT.cmake against fake TensorRT prefixes (headers and empty library files in tmp_path): the
tarball layout, the version-suffixed library names of TensorRT 10+ on Windows (nvinfer_10.lib, here as
libnvinfer_10.so), the JetPack layout, and the refusals (TensorRT 8.5, no ONNX parser). Each test configures
a CMake project with no languages, about a second."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CMAKE = shutil.which("cmake")
pytestmark = pytest.mark.skipif(CMAKE is None, reason="needs cmake on PATH")

# NvInferVersion.h as TensorRT writes it: 10.3 defines the numbers; 11.1 defines TRT_*_ENTERPRISE and
# NV_TENSORRT_* as those names.
CLASSIC_VERSION_HEADER = """#ifndef NV_INFER_VERSION_H
#define NV_INFER_VERSION_H
#define NV_TENSORRT_MAJOR {major} //!< TensorRT major version.
#define NV_TENSORRT_MINOR {minor} //!< TensorRT minor version.
#define NV_TENSORRT_PATCH {patch} //!< TensorRT patch version.
#define NV_TENSORRT_BUILD 26 //!< TensorRT build number.
#endif
"""
ENTERPRISE_VERSION_HEADER = """#ifndef NV_INFER_VERSION_H
#define NV_INFER_VERSION_H
#define TRT_MAJOR_ENTERPRISE {major}
#define TRT_MINOR_ENTERPRISE {minor}
#define TRT_PATCH_ENTERPRISE {patch}
#define TRT_BUILD_ENTERPRISE 106
#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE //!< TensorRT major version.
#define NV_TENSORRT_MINOR TRT_MINOR_ENTERPRISE //!< TensorRT minor version.
#define NV_TENSORRT_PATCH TRT_PATCH_ENTERPRISE //!< TensorRT patch version.
#endif
"""


def fake_tensorrt(prefix: Path, version=(10, 3, 0), include="include", lib="lib",
                  libraries=("nvinfer", "nvonnxparser"), name_suffix="") -> Path:
    """A TensorRT prefix: NvInfer.h (empty), NvInferVersion.h and empty lib<name><name_suffix>.so files."""
    major, minor, patch = version
    template = ENTERPRISE_VERSION_HEADER if major >= 11 else CLASSIC_VERSION_HEADER
    (prefix / include).mkdir(parents=True)
    (prefix / include / "NvInfer.h").write_text("")
    (prefix / include / "NvInferVersion.h").write_text(template.format(major=major, minor=minor, patch=patch))
    (prefix / lib).mkdir(parents=True)
    for name in libraries:
        (prefix / lib / f"lib{name}{name_suffix}.so").write_bytes(b"")
    return prefix


def find_tensorrt(tmp_path: Path, root: Path, env_root: Path | None = None) -> tuple[dict, str]:
    """Configures a project that runs find_package(TensorRT MODULE) with TENSORRT_ROOT=root (and the
    TENSORRT_ROOT environment variable env_root); returns what the module set, and the configure output."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "CMakeLists.txt").write_text(f"""cmake_minimum_required(VERSION 3.22...4.4)
project(find_tensorrt_check LANGUAGES NONE)
list(APPEND CMAKE_MODULE_PATH "{(REPO / 'cmake').as_posix()}")
find_package(TensorRT MODULE)
foreach(name TensorRT_FOUND TensorRT_VERSION TensorRT_INCLUDE_DIR TensorRT_LIBRARY TensorRT_ONNXPARSER_LIBRARY)
  message(STATUS "check: ${{name}}=[${{${{name}}}}]")
endforeach()
""")
    env = {k: v for k, v in os.environ.items() if k not in ("TENSORRT_ROOT", "CMAKE_PREFIX_PATH")}
    if env_root is not None:
        env["TENSORRT_ROOT"] = str(env_root)
    result = subprocess.run([CMAKE, "-S", str(project), "-B", str(tmp_path / "build"), f"-DTENSORRT_ROOT={root}"],
                            capture_output=True, text=True, timeout=120, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    found = dict(re.findall(r"check: (\w+)=\[(.*)\]", output))
    return found, output


def test_tarball_layout_is_found_with_its_version(tmp_path):
    prefix = fake_tensorrt(tmp_path / "TensorRT-10.3.0")
    found, output = find_tensorrt(tmp_path, prefix)
    assert found["TensorRT_FOUND"] == "TRUE", output
    assert found["TensorRT_VERSION"] == "10.3.0"
    assert found["TensorRT_INCLUDE_DIR"] == str(prefix / "include")
    assert found["TensorRT_LIBRARY"] == str(prefix / "lib" / "libnvinfer.so")
    assert found["TensorRT_ONNXPARSER_LIBRARY"] == str(prefix / "lib" / "libnvonnxparser.so")


@pytest.mark.parametrize("version", [(10, 3, 0), (11, 1, 0)], ids=["10.3", "11.1"])
def test_major_version_suffixed_library_names_are_found(tmp_path, version):
    # Windows' nvinfer_10.lib and nvonnxparser_10.lib, as find_library spells them on Linux.
    major = version[0]
    prefix = fake_tensorrt(tmp_path / "TensorRT", version=version, name_suffix=f"_{major}")
    found, output = find_tensorrt(tmp_path, prefix)
    assert found["TensorRT_FOUND"] == "TRUE", output
    assert found["TensorRT_VERSION"] == "{}.{}.{}".format(*version)
    assert found["TensorRT_LIBRARY"] == str(prefix / "lib" / f"libnvinfer_{major}.so")
    assert found["TensorRT_ONNXPARSER_LIBRARY"] == str(prefix / "lib" / f"libnvonnxparser_{major}.so")


def test_suffix_of_another_major_version_is_not_taken(tmp_path):
    prefix = fake_tensorrt(tmp_path / "TensorRT", version=(10, 3, 0), name_suffix="_11")
    found, output = find_tensorrt(tmp_path, prefix)
    assert found["TensorRT_FOUND"] == "FALSE"
    assert "TensorRT_LIBRARY" in output.split("Could NOT find TensorRT", 1)[1]


def test_tensorrt_root_wins_over_the_environment_root_with_plain_names(tmp_path):
    # Both hints, TENSORRT_ROOT first: its nvinfer_10 is taken, not the plain nvinfer of the other prefix.
    wanted = fake_tensorrt(tmp_path / "wanted", name_suffix="_10")
    other = fake_tensorrt(tmp_path / "other")
    found, output = find_tensorrt(tmp_path, wanted, env_root=other)
    assert found["TensorRT_FOUND"] == "TRUE", output
    assert found["TensorRT_LIBRARY"] == str(wanted / "lib" / "libnvinfer_10.so")
    assert found["TensorRT_ONNXPARSER_LIBRARY"] == str(wanted / "lib" / "libnvonnxparser_10.so")


def test_jetpack_layout_is_found(tmp_path):
    prefix = fake_tensorrt(tmp_path / "usr", include="include/aarch64-linux-gnu", lib="lib/aarch64-linux-gnu")
    found, output = find_tensorrt(tmp_path, prefix)
    assert found["TensorRT_FOUND"] == "TRUE", output
    assert found["TensorRT_VERSION"] == "10.3.0"
    assert found["TensorRT_INCLUDE_DIR"] == str(prefix / "include" / "aarch64-linux-gnu")
    assert found["TensorRT_LIBRARY"] == str(prefix / "lib" / "aarch64-linux-gnu" / "libnvinfer.so")


def test_tensorrt_8_5_is_not_found_saying_why(tmp_path):
    prefix = fake_tensorrt(tmp_path / "TensorRT-8.5.2", version=(8, 5, 2))
    found, output = find_tensorrt(tmp_path, prefix)
    assert found["TensorRT_FOUND"] == "FALSE"
    assert "TensorRT 8.5.2" in output and "is older than 10" in output, output


def test_prefix_without_the_onnx_parser_is_not_found(tmp_path):
    prefix = fake_tensorrt(tmp_path / "TensorRT", libraries=("nvinfer",))
    found, output = find_tensorrt(tmp_path, prefix)
    assert found["TensorRT_FOUND"] == "FALSE"
    assert found["TensorRT_LIBRARY"] == str(prefix / "lib" / "libnvinfer.so")
    assert "TensorRT_ONNXPARSER_LIBRARY" in output.split("Could NOT find TensorRT", 1)[1]
